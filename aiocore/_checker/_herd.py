"""Litmus programs (the op language of aiocore._checker._litmus_ops) as herd7 tests.

``to_herd(threads, target, final=None, **regs)`` writes a herd7 litmus file
whose ``exists`` clause asks for the given register values and final memory;
``run_herd`` runs herd7 7.57 on it and returns every outcome it allows;
``herd_witness`` asks only whether the ``exists`` outcome is allowed, for
programs too long to list every outcome of.
Targets and the model each is run with (``herd_args``):

    aarch64-llsc   AArch64, ARMv8.0 code (LDAXR/STLXR loops)  -model aarch64.cat
    aarch64-lse    AArch64, ARMv8.1 code (LSE atomics)         -model aarch64.cat
    x86            X86_64          -model x86tso.cat -archcheck false -optace true
    sc             the x86 file    -model sc.cat -optace true

``-optace true`` (herd7's documented "do not generate candidate executions
that fail the uniproc test") is needed for x86tso.cat and sc.cat: their
uniproc axiom is ``acyclic po-loc | com``, and herd7 7.57 puts the read and the
write of one instruction (XCHG, LOCK ADD, LOCK CMPXCHG) in no po, only in its
intra-instruction order.  Under the default (``-optace iico``) they then allow
executions no x86 machine has: both XCHGs of ``xchg x,1 || xchg x,2`` reading
the other's value, or ``sub x,2 || fetch_add x,2`` ending with r0=0 and x=2
(each RMW reading the other's write).  With ``-optace true`` the uniproc test
uses that order.  aarch64.cat needs no option: its ``aob`` orders an RMW's
read before its write.  ``-archcheck false``: x86tso.cat names the X86
architecture; it judges X86_64 tests the same way (herd7's X86 has no CMPXCHG).

The instructions are those GCC 12 emits for the project's primitives
(aiocore/_csrc/aio_prims.h, `-O2`; checked with aarch64-linux-gnu-gcc 12.2
for `-march=armv8-a -mno-outline-atomics` and `-march=armv8.1-a`, and gcc 12.2
for x86-64):

  op                 primitive             llsc                        lse           x86-64
  st                 atomic_set            STR                         STR           MOV
  st_rel             atomic_store_release  STLR                        STLR          MOV
  ld                 atomic_read           LDR                         LDR           MOV
  ld_acq             atomic_load_acquire   LDAR                        LDAR          MOV
  xchg               atomic_xchg           LDAXR; STLXR                SWPAL         XCHG
  cmpxchg            atomic_cmpxchg        LDAXR; CMP; B.NE; STLXR     CASAL         LOCK CMPXCHG
  add / fetch_add    atomic_(fetch_)add    LDAXR; ADD; STLXR           LDADDAL       LOCK ADD / LOCK XADD
  sub / fetch_sub    atomic_(fetch_)sub    LDAXR; SUB; STLXR           LDADDAL(-v)   LOCK SUB / LOCK XADD(-v)
  or / fetch_or      atomic_(fetch_)or     LDAXR; ORR; STLXR           LDSETAL       LOCK OR / CMPXCHG loop
  and / fetch_and    atomic_(fetch_)and    LDAXR; AND; STLXR           LDCLRAL(~v)   LOCK AND / CMPXCHG loop
  mb                 smp_mb                DMB ISH                     DMB ISH       LOCK OR $0,(%rsp): written MFENCE
  wmb                smp_wmb               DMB ISH                     DMB ISH       nothing
  rmb                smp_rmb               DMB ISHLD                   DMB ISHLD     nothing
  br                 if (atomic_read(..))  CBNZ Wr, next               CBNZ          CMP $0; JNE next

How the file says it to herd7, where herd7 differs from the table:

* llsc: GCC's loop is `LDAXR; op; STLXR Ws; CBNZ Ws, retry`.  The file holds
  one iteration, LDAXR; op; STLXR Ws, and every outcome herd7 reports with a
  status register Ws = 1 (a failed store-exclusive) is dropped: the loop
  retries those.  The CBNZ on the status is left out: aarch64.cat creates no
  dependency from a store-exclusive's status (``[~range(lxsx)]; rf-reg``), so
  it orders nothing.  cmpxchg's B.NE skips the STLXR, as GCC's does.
* lse: GCC's void forms write a real register (LDADDAL W1, W1), never WZR, so
  the reads keep their acquire semantics (aarch64.cat's NoRet is not used).
* x86: herd7 7.57's X86_64 has no XADD and takes LOCK only on ADD, XOR,
  INC/DEC, XCHG and CMPXCHG.  So sub is LOCK ADD of -v, and or, and and the
  fetch_ forms are written as GCC's own CMPXCHG loop for fetch_or (MOV eax,
  (x); MOV t, eax; op t; LOCK CMPXCHG (x), t -- herd7's operand order) with
  one iteration, a failed CMPXCHG setting a status register whose outcomes
  are dropped.  Under
  x86tso.cat a locked RMW is a full fence whichever instruction it is, and the
  plain load before it adds no ordering the locked read does not have, so the
  verdicts are those of LOCK XADD / LOCK OR.  smp_mb is MFENCE (GCC writes
  `lock orq $0,(%rsp)`, a locked RMW on a private location: the same order).

Register names: the op language's registers become X0.. (AArch64) or
ebx, edx, ... (x86); the ``locations`` clause lists every register, status
register and location, so herd7's ``States`` are full outcomes.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import attrs

from ._litmus_ops import LitmusError, MASK, Program, init_values, matches, outcome_filter, parse

TARGETS = ("aarch64-llsc", "aarch64-lse", "x86", "sc")
#: target -> the model file herd7 runs it with.
MODEL_FILES = {"aarch64-llsc": "aarch64.cat", "aarch64-lse": "aarch64.cat",
               "x86": "x86tso.cat", "sc": "sc.cat"}
#: The checker's model names for each herd7 target.
TARGET_OF_MODEL = {"arm-llsc": "aarch64-llsc", "arm-lse": "aarch64-lse", "tso": "x86", "sc": "sc"}

_LSE_OP = {"xchg": "SWPAL", "add": "LDADDAL", "fetch_add": "LDADDAL", "sub": "LDADDAL",
           "fetch_sub": "LDADDAL", "or": "LDSETAL", "fetch_or": "LDSETAL", "and": "LDCLRAL",
           "fetch_and": "LDCLRAL"}
_LLSC_OP = {"add": "ADD", "fetch_add": "ADD", "sub": "SUB", "fetch_sub": "SUB",
            "or": "ORR", "fetch_or": "ORR", "and": "AND", "fetch_and": "AND"}
_X86_REGS = ("ebx", "edx", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d",
             "r14d", "r15d")
_ARM_ADDR0, _ARM_SCRATCH, _ARM_MAXREG = 20, (16, 17), 15
# Names herd7 would read as a register (of AArch64 or x86) or a keyword: such a
# location is spelled with a trailing underscore in the file ("bh" -> "bh_").
_RESERVED = re.compile(
    r"([xwrv][0-9]+|[xw]zr|sp|pc|[er]?[abcd]x|[er]?[sd]il?|[er]?[sb]pl?|[abcd][lh]|r[0-9]+[dwb]?|[er]?ip|"
    r"[cdefgs]s|exists|forall|locations|filter|true|false|and|or|not|cases|with)\Z", re.I)


def herd_location(x: str) -> str:
    """The name a location has in the herd7 file."""
    return x + "_" if _RESERVED.match(x) else x


@attrs.define(frozen=True)
class HerdTest:
    """A litmus file and how to read herd7's answer back."""

    text: str
    target: str
    keys: tuple          # outcome components, as Program.keys
    herd_keys: tuple     # herd7's name for each (e.g. "0:X0", "x")
    status_keys: tuple   # herd7 registers that must end 0 (the RMW succeeded)


def _check_target(target):
    if target not in TARGETS:
        raise LitmusError(f"unknown herd7 target {target!r}; targets: {', '.join(TARGETS)}")


def _columns(name, cols, init, keys, status, exists):
    width = [max([len(f"P{i}")] + [len(s) for s in c]) for i, c in enumerate(cols)]
    rows = max(len(c) for c in cols)
    lines = [name, "{", " " + " ".join(init), "}",
             " " + " | ".join(f"P{i}".ljust(width[i]) for i in range(len(cols))) + " ;"]
    for r in range(rows):
        cells = [(c[r] if r < len(c) else "").ljust(width[i]) for i, c in enumerate(cols)]
        lines.append(" " + " | ".join(cells) + " ;")
    lines.append("locations [" + " ".join(f"{k};" for k in keys + status) + "]")
    lines.append("exists (" + (" /\\ ".join(exists) if exists else "true") + ")")
    return "\n".join(lines) + "\n"


def _aarch64(prog: Program, lse: bool):
    cols, init, herd_regs, status = [], [], {}, []
    for t, ops in enumerate(prog.threads):
        code, addr, nreg = [], {}, [0]
        s1, s2 = (f"W{r}" for r in _ARM_SCRATCH)
        # W0-W15, then the registers neither scratch nor an address of this thread
        # (long programs: the counterexamples of aiocore._checker._export)
        nloc = len({op.loc for op in ops if op.loc is not None})
        free = [*range(_ARM_MAXREG + 1), *(r for r in range(_ARM_MAXREG + 1, 31)
                                           if r not in _ARM_SCRATCH and not _ARM_ADDR0 <= r < _ARM_ADDR0 + nloc)]

        def reg(name=None):
            if nreg[0] >= len(free):
                raise LitmusError(f"thread {t} needs more than {len(free)} AArch64 registers")
            n = free[nreg[0]]
            nreg[0] += 1
            if name is not None:
                herd_regs[name] = (t, n)
            return f"W{n}"

        def xa(loc):
            if loc not in addr:
                if len(addr) > 29 - _ARM_ADDR0:
                    raise LitmusError(f"thread {t} touches more than {30 - _ARM_ADDR0} locations")
                addr[loc] = f"X{_ARM_ADDR0 + len(addr)}"
                init.append(f"{t}:{addr[loc]}={loc};")
            return f"[{addr[loc]}]"

        for k, op in enumerate(ops):
            kd = op.kind
            if kd in ("st", "st_rel"):
                code += [f"MOV {s1},#{op.value}", f"{'STR' if kd == 'st' else 'STLR'} {s1},{xa(op.loc)}"]
            elif kd in ("ld", "ld_acq"):
                code.append(f"{'LDR' if kd == 'ld' else 'LDAR'} {reg(op.reg)},{xa(op.loc)}")
            elif kd in ("mb", "wmb"):
                code.append("DMB ISH")
            elif kd == "rmb":
                code.append("DMB ISHLD")
            elif kd == "br":
                code += [f"CBNZ W{herd_regs[op.reg][1]},LB{t}x{k}", f"LB{t}x{k}:"]
            elif kd == "cmpxchg":
                r = reg(op.reg)
                if lse:
                    code += [f"MOV {r},#{op.expected}", f"MOV {s1},#{op.value}", f"CASAL {r},{s1},{xa(op.loc)}"]
                else:
                    st = reg()
                    status.append(f"{t}:X{st[1:]}")
                    code += [f"LDAXR {r},{xa(op.loc)}", f"CMP {r},#{op.expected}", f"B.NE LC{t}x{k}",
                             f"MOV {s1},#{op.value}", f"STLXR {st},{s1},{xa(op.loc)}", f"LC{t}x{k}:"]
            else:  # the other RMWs
                r = reg(op.reg)  # the old value (a scratch-like register for the void forms)
                v = op.value
                if lse:
                    if kd in ("sub", "fetch_sub"):
                        v = -v
                    elif kd in ("and", "fetch_and"):
                        v = ~v
                    code += [f"MOV {s1},#{v}", f"{_LSE_OP[kd]} {s1},{r},{xa(op.loc)}"]
                else:
                    st = reg()
                    status.append(f"{t}:X{st[1:]}")
                    if kd == "xchg":
                        code += [f"MOV {s1},#{v}", f"LDAXR {r},{xa(op.loc)}", f"STLXR {st},{s1},{xa(op.loc)}"]
                    else:
                        code += [f"MOV {s1},#{v}", f"LDAXR {r},{xa(op.loc)}",
                                 f"{_LLSC_OP[kd]} {s2},{r},{s1}", f"STLXR {st},{s2},{xa(op.loc)}"]
        cols.append(code or ["NOP"])
    herd_keys = tuple(f"{herd_regs[r][0]}:X{herd_regs[r][1]}" for r in prog.registers)
    return cols, init, herd_keys + prog.locations, tuple(status)


def _x86(prog: Program):
    cols, init, herd_regs, status = [], [], {}, []
    for t, ops in enumerate(prog.threads):
        code, free = [], list(_X86_REGS)

        def reg(name=None):
            if not free:
                raise LitmusError(f"thread {t} needs more than {len(_X86_REGS)} x86 registers")
            r = free.pop(0)
            if name is not None:
                herd_regs[name] = (t, r)
            return f"%{r}"

        def cas_loop(op, k, arith, v):
            # GCC's fetch_or loop, one iteration: a failed CMPXCHG sets the status.
            st = reg()
            status.append(f"{t}:{_x86_64bit(st[1:])}")
            out = reg(op.reg) if op.reg else None
            code.extend([f"movl ({op.loc}),%eax", "movl %eax,%ecx", f"{arith} ${v},%ecx",
                         f"lock cmpxchgl ({op.loc}),%ecx", f"je LX{t}x{k}", f"movl $1,{st}", f"LX{t}x{k}:"])
            if out:
                code.append(f"movl %eax,{out}")

        for k, op in enumerate(ops):
            kd = op.kind
            if kd in ("st", "st_rel"):
                code.append(f"movl ${op.value},({op.loc})")
            elif kd in ("ld", "ld_acq"):
                code.append(f"movl ({op.loc}),{reg(op.reg)}")
            elif kd == "mb":
                code.append("mfence")
            elif kd in ("wmb", "rmb"):
                pass  # a compiler barrier only
            elif kd == "br":
                code += [f"cmpl $0,%{herd_regs[op.reg][1]}", f"jne LB{t}x{k}", f"LB{t}x{k}:"]
            elif kd == "xchg":
                r = reg(op.reg) if op.reg else reg()
                code += [f"movl ${op.value},{r}", f"xchgl {r},({op.loc})"]
            elif kd == "cmpxchg":
                code += [f"movl ${op.expected},%eax", f"movl ${op.value},%ecx", f"lock cmpxchgl ({op.loc}),%ecx"]
                if op.reg:
                    code.append(f"movl %eax,{reg(op.reg)}")
            elif kd == "add":
                code.append(f"lock addl ${op.value},({op.loc})")
            elif kd == "sub":
                code.append(f"lock addl ${-op.value},({op.loc})")
            else:  # or, and, fetch_*: one CMPXCHG-loop iteration
                arith = {"or": "orl", "and": "and", "add": "addl", "sub": "addl"}[kd.replace("fetch_", "")]
                cas_loop(op, k, arith, -op.value if kd == "fetch_sub" else op.value)
        cols.append(code or ["nop"])
    for x in prog.locations:
        init.append(f"{x}=0;")
    herd_keys = tuple(f"{t}:{_x86_64bit(r)}" for t, r in (herd_regs[n] for n in prog.registers))
    return cols, init, herd_keys + prog.locations, tuple(status)


def _x86_64bit(r):
    return {"ebx": "rbx", "edx": "rdx", "esi": "rsi", "edi": "rdi"}.get(r, r[:-1])


def to_herd_test(threads, target: str, final=None, *, test_name: str = "aiocore", init=None,
                 **regs) -> HerdTest:
    """to_herd, with what run_herd needs to read herd7's states back."""
    name = test_name
    _check_target(target)
    prog = parse(threads)
    want = outcome_filter(prog, final, regs)
    start = dict(zip((herd_location(x) for x in prog.locations), init_values(prog, init)))
    if not re.match(r"[A-Za-z0-9_.+\-]+\Z", name):
        raise LitmusError(f"a herd7 test name is letters, digits and _.+-, not {name!r}")
    keys = prog.keys
    prog = Program(tuple(tuple(attrs.evolve(op, loc=None if op.loc is None else herd_location(op.loc)) for op in ops)
                         for ops in prog.threads), prog.registers, tuple(herd_location(x) for x in prog.locations))
    if target.startswith("aarch64"):
        cols, lines, herd_keys, status = _aarch64(prog, target == "aarch64-lse")
        head = f"AArch64 {name}"
        lines += [f"{x}={v};" for x, v in start.items() if v]
    else:
        cols, lines, herd_keys, status = _x86(prog)
        head = f"X86_64 {name}"
        lines = [f"{x}={start[x]};" for x in prog.locations]
    exists = [f"{herd_keys[i]}={v}" for i, v in want] + [f"{s}=0" for s in status]
    text = _columns(head, cols, lines, herd_keys, status, exists)
    return HerdTest(text, target, keys, herd_keys, status)


def to_herd(threads, target: str, final=None, *, test_name: str = "aiocore", **regs) -> str:
    """A herd7 litmus file for the program on ``target`` asking for the given outcome.

    ``regs`` are register values, ``final`` maps a location to its final value
    (``test_name`` names the test in the file);
    the ``exists`` clause also asks that every RMW succeeded (see the module
    docstring).  Run it with ``herd7 -model <MODEL_FILES[target]>``.
    """
    return to_herd_test(threads, target, final, test_name=test_name, **regs).text


def herd_binary() -> str | None:
    """The herd7 on PATH (or $HERD7), or None."""
    return os.environ.get("HERD7") or shutil.which("herd7")


def herd_args(target: str) -> list:
    """herd7's arguments for a target, before the file name."""
    _check_target(target)
    # x86tso.cat is written for herd7's X86 tests; -archcheck false lets it judge X86_64 ones (the
    # X86_64 default, x86tso-mixed.cat, gives the same verdicts on this corpus: see benchmarks/herd_corpus.py).
    extra = ["-archcheck", "false"] if target == "x86" else []
    if target in ("x86", "sc"):
        extra += ["-optace", "true"]
    return ["-model", MODEL_FILES[target], *extra]


def herd_version(herd: str | None = None) -> str:
    """herd7's version line (e.g. "7.57, Rev: 30fad54...")."""
    herd = herd or herd_binary()
    if not herd:
        raise FileNotFoundError("herd7 not installed")
    return subprocess.run([herd, "-version"], capture_output=True, text=True, check=True).stdout.strip()


_STATE = re.compile(r"([^\s;=]+)\s*=\s*(-?\d+|0x[0-9a-fA-F]+)\s*;")


def parse_states(out: str, test: HerdTest) -> set:
    """The outcomes (as Program.keys tuples) in herd7's output, failed RMWs dropped."""
    lines = out.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("States "))
    except StopIteration:
        raise RuntimeError(f"herd7 printed no States:\n{out}") from None
    n = int(lines[start].split()[1])
    got = set()
    for ln in lines[start + 1:start + 1 + n]:
        vals = {k.strip("[]"): int(v, 0) & MASK for k, v in _STATE.findall(ln)}
        if any(vals.get(s, 0) != 0 for s in test.status_keys):
            continue
        try:
            got.add(tuple(vals[k.strip("[]")] for k in test.herd_keys))
        except KeyError as e:
            raise RuntimeError(f"herd7's state {ln!r} lacks {e}") from None
    return got


def run_herd(threads, target: str, *, herd_path: str | None = None, timeout: float = 120):
    """herd7's outcomes for the program (or a HerdTest) on ``target`` (a set of Program.keys tuples)."""
    herd = herd_path or herd_binary()
    if not herd:
        raise FileNotFoundError("herd7 not installed")
    test = threads if isinstance(threads, HerdTest) else to_herd_test(threads, target)
    with tempfile.TemporaryDirectory(prefix="aiocore-herd-") as tmp:
        path = os.path.join(tmp, "test.litmus")
        with open(path, "w") as f:
            f.write(test.text)
        p = subprocess.run([herd, *herd_args(test.target), path], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or "States" not in p.stdout:
        raise RuntimeError(f"herd7 failed on\n{test.text}\n{p.stdout}{p.stderr}")
    return parse_states(p.stdout, test)


def herd_allowed(threads, target: str, final=None, *, herd_path: str | None = None, init=None,
                 **regs) -> bool:
    """Does herd7 allow this outcome of the program on ``target``?  ``init``
    maps a location to its initial value (default 0)."""
    prog = parse(threads)
    want = outcome_filter(prog, final, regs)
    test = to_herd_test(prog, target, init=init)
    return any(matches(o, want) for o in run_herd(test, target, herd_path=herd_path))


#: What herd_witness adds to herd_args: stop at the first execution the
#: ``exists`` clause holds in, and drop the candidates that fail the uniproc
#: test while generating them (not after).  Both only spare work: every
#: execution found is one herd7 would list without them.
WITNESS_ARGS = ("-speedcheck", "fast", "-optace", "true")
_POSITIVE = re.compile(r"^Positive: (\d+) Negative: (\d+)", re.M)


def herd_witness(threads, target: str, final=None, *, herd_path: str | None = None,
                 timeout: float = 600, init=None, **regs) -> bool:
    """herd_allowed for long programs (the counterexamples of
    aiocore._checker._export, 20-40 accesses, where listing every outcome
    takes herd7 hours): herd7 is asked the test's own ``exists`` clause with
    WITNESS_ARGS, so a witness ends the search.  A witness is conclusive; no
    witness is confirmed by herd_allowed (without the pruning) before False
    is returned."""
    herd = herd_path or herd_binary()
    if not herd:
        raise FileNotFoundError("herd7 not installed")
    test = to_herd_test(threads, target, final, init=init, **regs)
    args = list(herd_args(target))
    if "-optace" in args:  # x86, sc: their own -optace true
        k = args.index("-optace")
        del args[k:k + 2]
    with tempfile.TemporaryDirectory(prefix="aiocore-herd-") as tmp:
        path = os.path.join(tmp, "test.litmus")
        with open(path, "w") as f:
            f.write(test.text)
        p = subprocess.run([herd, *args, *WITNESS_ARGS, path], capture_output=True, text=True,
                           timeout=timeout)
    m = _POSITIVE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"herd7 failed on\n{test.text}\n{p.stdout}{p.stderr}")
    if int(m.group(1)) > 0:
        return True
    return herd_allowed(threads, target, final, herd_path=herd, init=init, **regs)
