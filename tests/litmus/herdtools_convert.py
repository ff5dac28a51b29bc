"""Translate herdtools7's own litmus tests into aiocore's litmus op language.

Used once, by build_corpus.py, to bring programs the project did not write
into tests/litmus/corpus.json; the tests read the JSON, not this.

A test translates when every instruction of it has an op (see the table in
aiocore/_checker/_herd.py, read backwards):

  AArch64   MOV Wd,#k (a constant)   STR/STLR   LDR/LDAR   DMB SY|ISH -> mb
            DMB LD|ISHLD -> rmb      SWPAL -> xchg   CASAL -> cmpxchg
            L: LDAXR Wr,[x]; STLXR Ws,Wv,[x]; CBNZ Ws,L -> xchg (GCC's llsc loop)
            LDADDAL -> fetch_add     LDSETAL -> fetch_or
            CBZ/CBNZ Wr,L or CMP Wr,#k; B.cond L, with L the next instruction -> br
  ARM       the same with ARMv7 names (DMB -> mb; BNE/BEQ to the next line -> br)
  X86       MOV [x],$k / MOV r,[x] / MFENCE / XCHG [x],r (r a constant) / LOCK ADD [x],$k

Anything else (DMB ST, DSB, ISB, address or data dependencies, plain or
half-ordered RMWs such as SWP, SWPA, CAS, LDADD, exclusives, non-zero initial
memory, conditions other than a conjunction of equalities) leaves the test
out, with the reason.  DMB SY, DMB ISH, DSB SY and DSB ISH are the same
barrier in aarch64.cat (dmb.full: "litmus tests are unable to distinguish
between DMB and DSB"), as are DMB LD, DMB ISHLD and DSB LD (dmb.ld); ARMv7's
DMB and DSB are DMB SY.  build_corpus.py runs herd7 on each AArch64 original
too, and keeps a translation only if herd7 gives it the original's verdict.
"""
from __future__ import annotations

import re

MASK = 0xFFFFFFFF


class Skip(Exception):
    """The test has something the op language cannot say."""


def _split(text):
    """(arch, name, init text, thread columns, condition text)."""
    text = re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)
    lines = text.splitlines()
    arch, name = lines[0].split()[0], lines[0].split()[1]
    body = "\n".join(lines[1:])
    i, j = body.index("{"), body.index("}")
    init = body[i + 1:j]
    rest = body[j + 1:].strip().splitlines()
    m = next((k for k, ln in enumerate(rest) if re.match(r"\s*(~?exists|forall|locations|filter)", ln)), None)
    if m is None:
        raise Skip("no condition")
    prog, cond = rest[:m], "\n".join(rest[m:])
    rows = [[c.strip() for c in ln.strip().rstrip(";").split("|")] for ln in prog if ln.strip()]
    if not rows or not all(re.match(r"P\d+$", c) for c in rows[0]):
        raise Skip("no P0 | P1 header")
    cols = [[r[t] if t < len(r) else "" for r in rows[1:]] for t in range(len(rows[0]))]
    return arch, name, init, [[i for i in c if i] for c in cols], cond


def _condition(cond, regname, locs):
    if "locations" in cond or "filter" in cond:
        cond = re.sub(r"(locations|filter)\s*\[[^]]*\]", "", cond).strip()
    m = re.match(r"\s*(~?exists|forall)\s*(.*)$", cond, re.S)
    if not m:
        raise Skip(f"condition {cond!r}")
    quant, prop = m.group(1), m.group(2).strip()
    if quant == "forall":
        raise Skip("a forall condition")
    while prop.startswith("(") and prop.endswith(")"):
        prop = prop[1:-1].strip()
    if "\\/" in prop or "~" in prop or "(" in prop:
        raise Skip(f"condition {prop!r} is not a conjunction")
    regs, final = {}, {}
    for atom in prop.split("/\\"):
        a = re.match(r"\s*(?:(\d+):([A-Za-z0-9%_]+)|\[?([a-z][a-z0-9_]*)\]?)\s*=\s*(-?\d+)\s*$", atom)
        if not a:
            raise Skip(f"condition atom {atom!r}")
        v = int(a.group(4)) & MASK
        if a.group(1) is not None:
            key = (int(a.group(1)), re.sub(r"^[RW](\d+)$", r"X\1", a.group(2).upper().lstrip("%")))
            if key not in regname:
                raise Skip(f"condition on {atom.strip()!r}, not a loaded register")
            regs[regname[key]] = v
        else:
            if a.group(3) not in locs:
                raise Skip(f"condition on location {a.group(3)!r} no op touches")
            final[a.group(3)] = v
    return quant, regs, final


def _init(init, arch):
    addr, const = {}, {}
    for item in re.split(r"[;\n]", init):
        item = re.sub(r"\s*([:=])\s*", r"\1", item.strip())
        if not item:
            continue
        m = re.match(r"(?:(\d+):)?%([A-Za-z0-9_]+)\s*=\s*([a-z]\w*)$", item)
        if m and arch == "ARM":  # ARMv7's symbolic registers: %x0=x
            addr[(None, "X_" + m.group(2).upper())] = m.group(3)
            continue
        m = re.match(r"(\d+):%?([A-Za-z0-9_]+)\s*=\s*(\S+)$", item)
        if m:
            t, r, v = int(m.group(1)), _regnum(m.group(2), arch), m.group(3)
            if re.match(r"-?\d+$", v):
                const[(t, r)] = int(v)
            else:
                addr[(t, r)] = v
            continue
        m = re.match(r"(?:int\s+|uint\d+_t\s+)?([a-z][a-z0-9_]*)\s*=\s*(-?\d+)$", item)
        if m:
            if int(m.group(2)) != 0:
                raise Skip(f"initial memory {item!r} is not 0")
            continue
        raise Skip(f"initial state {item!r}")
    return addr, const


def _regnum(r, arch):
    r = r.upper()
    if r.startswith("X_"):
        return r
    if arch in ("ARM", "PPC"):
        m = re.match(r"R(\d+)$", r)
        if m:
            return int(m.group(1))
    if arch == "AArch64":
        m = re.match(r"[XW](\d+)$", r)
        if m:
            return int(m.group(1))
        if r in ("WZR", "XZR"):
            return "ZR"
    return r


_ARM_RMW = {"SWPAL": "xchg", "LDADDAL": "fetch_add", "LDSETAL": "fetch_or"}


def _aarch64_thread(t, code, addr, const, regname, labels_ok):
    ops, vals, loaded = [], {}, {}
    vals.update({r: v for (tt, r), v in const.items() if tt == t})

    def val(r):
        r = _regnum(r, "AArch64")
        if r == "ZR":
            return 0
        if r in loaded or r not in vals:
            raise Skip(f"P{t}: stores register {r}, not a constant (a data dependency)")
        return vals[r]

    def loc(a):
        m = re.match(r"\[\s*([XW]\d+|X_\w+)\s*\]$", a.strip(), re.I)
        if not m:
            raise Skip(f"P{t}: address {a!r} (an address dependency or offset)")
        n = _regnum(m.group(1), "AArch64")
        for key in ((t, n), (None, n)):
            if key in addr:
                return addr[key]
        raise Skip(f"P{t}: {a} holds no location")

    def dest(r):
        n = _regnum(r, "AArch64")
        if n == "ZR":
            raise Skip(f"P{t}: a load into the zero register")
        name = f"r{t}_{n}"
        regname[(t, f"X{n}")] = name
        loaded[n] = name
        vals.pop(n, None)
        return name

    i = 0
    while i < len(code):
        ins = code[i]
        m = re.match(r"(\w+):\s*$", ins)
        if m:
            loop = [c.replace(" ", "").upper() for c in code[i + 1:i + 4]]
            lx = re.match(r"LDAXR(W\d+),(\[X\d+\])$", loop[0]) if len(loop) == 3 else None
            sx = re.match(r"STLXR(W\d+),(W\d+),(\[X\d+\])$", loop[1]) if lx else None
            if sx and sx.group(3) == lx.group(2) and loop[2] == f"CBNZ{sx.group(1)},{m.group(1).upper()}":
                # GCC's atomic_xchg: Loop: LDAXR Wr; STLXR Ws, Wv; CBNZ Ws, Loop
                v = val(sx.group(2))
                ops.append(("xchg", loc(lx.group(2)), v, dest(lx.group(1))))
                i += 4
                continue
            i += 1
            continue
        op, _, args = ins.partition(" ")
        op = op.upper()
        a = [x.strip() for x in re.split(r",(?![^\[]*\])", args)] if args else []
        if op == "NOP":
            pass
        elif op == "MOV" and a[1].startswith("#"):
            n = _regnum(a[0], "AArch64")
            vals[n] = int(a[1][1:], 0)
            loaded.pop(n, None)
        elif op in ("STR", "STLR"):
            ops.append(("st" if op == "STR" else "st_rel", loc(a[1]), val(a[0])))
        elif op in ("LDR", "LDAR"):
            ops.append(("ld" if op == "LDR" else "ld_acq", loc(a[1]), dest(a[0])))
        elif op in ("DMB", "DSB") and a[0].upper() in ("SY", "ISH"):
            ops.append(("mb",))
        elif op in ("DMB", "DSB") and a[0].upper() in ("LD", "ISHLD"):
            ops.append(("rmb",))
        elif op in _ARM_RMW:
            v = val(a[0])
            ops.append((_ARM_RMW[op], loc(a[2]), v, dest(a[1])) if _ARM_RMW[op] != "xchg"
                       else ("xchg", loc(a[2]), v, dest(a[1])))
        elif op == "CASAL":
            exp, new = val(a[0]), val(a[1])
            ops.append(("cmpxchg", loc(a[2]), exp, new, dest(a[0])))
        elif op in ("CBZ", "CBNZ") or (op == "CMP" and i + 1 < len(code)):
            if op == "CMP":
                if not (a[1].startswith("#") or _regnum(a[1], "AArch64") == _regnum(a[0], "AArch64")):
                    raise Skip(f"P{t}: {ins!r}")
                nxt = code[i + 1].split()
                if not re.match(r"B\.\w+$", nxt[0], re.I):
                    raise Skip(f"P{t}: {ins!r} not followed by a branch")
                target, i = nxt[1], i + 1
            else:
                target = a[1]
            n = _regnum(a[0], "AArch64")
            if n not in loaded:
                raise Skip(f"P{t}: branch on {a[0]}, not a loaded register")
            if not (i + 1 < len(code) and re.match(rf"{re.escape(target)}:\s*$", code[i + 1])):
                raise Skip(f"P{t}: branch to {target} skips instructions")
            ops.append(("br", loaded[n]))
        else:
            raise Skip(f"P{t}: instruction {ins!r}")
        i += 1
    return ops


def _arm_thread(t, code, addr, const, regname):
    """ARMv7 syntax (herding-cats/arm): R registers, DMB, BNE/BEQ."""
    conv = []
    for ins in code:
        ins = re.sub(r"%(\w+)", lambda m: "X_" + m.group(1).upper(), ins)
        ins = re.sub(r"\bR(\d+)\b", r"W\1", ins)
        op = ins.split()[0].upper() if ins.split() else ""
        if op in ("DMB", "DSB") and ins.strip().upper() in ("DMB", "DSB"):
            ins = op + " SY"
        elif op in ("BNE", "BEQ"):
            ins = "B." + op[1:] + " " + ins.split()[1]
        elif op in ("DSB", "ISB", "DMB"):
            raise Skip(f"P{t}: instruction {ins!r}")
        conv.append(ins)
    return _aarch64_thread(t, conv, addr, const, regname, True)


def _ppc_thread(t, code, addr, const, regname):
    """Power syntax (herding-cats/ppc campaign): li, stw, lwz, sync, cmpw; beq."""
    conv = []
    for ins in code:
        m = re.match(r"(\w+)\s*(.*)$", ins)
        op, args = m.group(1).lower(), [x.strip() for x in m.group(2).split(",")] if m.group(2) else []
        r = [re.sub(r"^r(\d+)$", r"W\1", x) for x in args]
        if re.match(r"\w+:$", ins):
            conv.append(ins)
        elif op == "li":
            conv.append(f"MOV {r[0]},#{args[1]}")
        elif op in ("stw", "lwz") and re.match(r"0\(r\d+\)$", args[1]):
            base = re.match(r"0\(r(\d+)\)", args[1]).group(1)
            conv.append(f"{'STR' if op == 'stw' else 'LDR'} {r[0]},[X{base}]")
        elif op == "sync":
            conv.append("DMB SY")
        elif op == "cmpw" and args[0] == args[1]:
            conv.append(f"CMP {r[0]},{r[1]}")
        elif op in ("beq", "bne"):
            conv.append(f"B.{op[1:].upper()} {args[0]}")
        else:
            raise Skip(f"P{t}: instruction {ins!r}")
    return _aarch64_thread(t, conv, addr, const, regname, True)


def _x86_thread(t, code, addr, regname):
    ops, vals, loaded = [], {}, {}
    for ins in code:
        op, _, args = ins.partition(" ")
        op = op.upper()
        a = [x.strip() for x in args.split(",")] if args else []
        mem = [re.match(r"\[\s*([a-z]\w*)\s*\]$", x) for x in a]
        if op == "MOV" and mem[0] and a[1].startswith("$"):
            ops.append(("st", mem[0].group(1), int(a[1][1:])))
        elif op == "MOV" and mem[1]:
            name = f"r{t}_{a[0].upper()}"
            regname[(t, a[0].upper())] = name
            loaded[a[0].upper()] = name
            ops.append(("ld", mem[1].group(1), name))
        elif op == "MOV" and a[1].startswith("$"):
            vals[a[0].upper()] = int(a[1][1:])
        elif op == "MFENCE":
            ops.append(("mb",))
        elif op == "XCHG" and (mem[0] or mem[1]):
            m, r = (mem[0], a[1]) if mem[0] else (mem[1], a[0])
            if r.upper() not in vals:
                raise Skip(f"P{t}: {ins!r} exchanges a register that is not a constant")
            name = f"r{t}_{r.upper()}"
            regname[(t, r.upper())] = name
            ops.append(("xchg", m.group(1), vals.pop(r.upper()), name))
        elif op == "LOCK" and a == [] and False:
            pass
        else:
            raise Skip(f"P{t}: instruction {ins!r}")
    return ops


def convert(text: str):
    """(name, threads, regs, final) for a herdtools7 litmus test, or Skip."""
    try:
        arch, name, init, cols, cond = _split(text)
    except (ValueError, IndexError) as e:
        raise Skip(f"unreadable test ({e})") from None
    regname = {}
    if arch in ("AArch64", "ARM"):
        addr, const = _init(init, arch)
        if arch == "ARM":
            threads = [_arm_thread(t, c, addr, const, regname) for t, c in enumerate(cols)]
        else:
            threads = [_aarch64_thread(t, c, addr, const, regname, True) for t, c in enumerate(cols)]
    elif arch == "PPC":
        addr, const = _init(init, arch)
        threads = [_ppc_thread(t, c, addr, const, regname) for t, c in enumerate(cols)]
    elif arch == "X86":
        for item in re.split(r"[;\n]", init):
            if item.strip() and not re.match(r"\s*[a-z]\w*\s*=\s*0\s*$", item):
                raise Skip(f"initial state {item.strip()!r}")
        threads = [_x86_thread(t, c, {}, regname) for t, c in enumerate(cols)]
    else:
        raise Skip(f"architecture {arch}")
    for t, ops in enumerate(threads):
        if not ops:
            threads[t] = []
    locs = {op[1] for ops in threads for op in ops if len(op) > 1 and op[0] != "br"}
    quant, regs, final = _condition(cond, regname, locs)
    if not any(threads):
        raise Skip("no memory access")
    return name, [t for t in threads], regs, final
