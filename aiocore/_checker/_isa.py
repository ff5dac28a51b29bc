"""The instructions aiocore's memory models assume for each primitive, per target.

aiocore's C spells every primitive of ``aio_prims.h`` with GCC's ``__atomic``
builtins; the compiler picks the instructions.  The memory models judge those
instructions, not the C: ``tso`` the x86-64 code, ``arm-llsc`` the ARMv8.0
code, ``arm-lse`` the ARMv8.1 code, and ``arm`` (their union) GCC's default
aarch64 build, whose read-modify-writes call libgcc helpers that use the LSE
instruction where the CPU has it and the LL/SC loop where it does not.  This
table is what GCC 12 (Debian 12: gcc 12.2.0 and gcc-aarch64-linux-gnu 12.2.0)
emits, with the native build's flags (``-O2 -std=gnu11 -fPIC ...``) plus the
target's, measured by ``tests/test_compiled_isa.py``, which cross-compiles the
primitives and every built-in strategy's hooks and fails if the code differs:

====================  ==============================  =======================  =====================  ===========================
primitive             x86-64 (tso)                    aarch64-llsc (arm-llsc)  aarch64-lse (arm-lse)  aarch64-default (arm)
====================  ==============================  =======================  =====================  ===========================
atomic_read           mov (load)                      ldr                      ldr                    ldr
atomic_set            mov (store)                     str                      str                    str
atomic_load_acquire   mov (load)                      ldar                     ldar                   ldar
atomic_store_release  mov (store)                     stlr                     stlr                   stlr
atomic_xchg           xchg                            ldaxr; stlxr             swpal                  bl __aarch64_swp4_acq_rel
atomic_cmpxchg        lock cmpxchg                    ldaxr; stlxr             casal                  bl __aarch64_cas4_acq_rel
atomic_fetch_add      lock xadd                       ldaxr; stlxr             ldaddal                bl __aarch64_ldadd4_acq_rel
atomic_fetch_sub      lock xadd                       ldaxr; stlxr             ldaddal                bl __aarch64_ldadd4_acq_rel
atomic_fetch_or       mov (load); lock cmpxchg        ldaxr; stlxr             ldsetal                bl __aarch64_ldset4_acq_rel
atomic_fetch_and      mov (load); lock cmpxchg        ldaxr; stlxr             ldclral                bl __aarch64_ldclr4_acq_rel
atomic_add            lock add                        ldaxr; stlxr             ldaddal                bl __aarch64_ldadd4_acq_rel
atomic_sub            lock sub                        ldaxr; stlxr             ldaddal                bl __aarch64_ldadd4_acq_rel
atomic_or             lock or                         ldaxr; stlxr             ldsetal                bl __aarch64_ldset4_acq_rel
atomic_and            lock and                        ldaxr; stlxr             ldclral                bl __aarch64_ldclr4_acq_rel
smp_mb                lock or $0,(%rsp)               dmb ish                  dmb ish                dmb ish
smp_wmb               (nothing)                       dmb ish                  dmb ish                dmb ish
smp_rmb               (nothing)                       dmb ishld                dmb ishld              dmb ishld
atomic_mb_set         mov (store); lock or $0,(%rsp)  dmb ish; str; dmb ish    dmb ish; str; dmb ish  dmb ish; str; dmb ish
smp_mb__before_rmw    (nothing)                       dmb ish                  dmb ish                dmb ish
smp_mb__after_rmw     (nothing)                       dmb ish                  dmb ish                dmb ish
====================  ==============================  =======================  =====================  ===========================

How to read it:

- A cell is the sequence of memory-ordering instructions and plain memory
  accesses of the primitive, in program order (arithmetic, branches and the
  stack frame left out); ``ldaxr; stlxr`` is the retry loop (``cbnz`` back
  to the ``ldaxr``), with **no** ``dmb`` after it: on ARMv8.0 a seq_cst RMW
  does not order a later plain load or store (the 2020 hang, QEMU 5710a3e0).
  The LSE ``...al`` instructions do: a later load waits for them.
- ``atomic_*_sub`` is the add of the negation (``neg``; with a constant,
  the negated constant), ``atomic_*_and`` on LSE is ``ldclral`` of the
  complement (``mvn``); on x86 ``atomic_fetch_or`` / ``atomic_fetch_and``
  (result used) are a ``lock cmpxchg`` loop after a plain load of the
  expected value (x86 has no fetch-or), the void forms a single ``lock or``
  / ``lock and``.  Under x86-TSO every lock-prefixed instruction and
  ``xchg`` with memory is an atomic RMW and a full fence, whichever one
  the compiler picks (in context it may pick ``lock bts`` and the like).
- ``smp_mb`` on x86 is ``lock or $0,(%rsp)`` (GCC >= 11; older GCC and
  ``mfence`` are the same full fence to ``tso``, and are accepted).
  ``smp_wmb`` is a C11 release fence and ``smp_rmb`` an acquire fence:
  compiler barriers only on x86, and on aarch64 ``dmb ish`` (a *full*
  barrier, not Linux's ``dmb ishst``) and ``dmb ishld``.  A release fence and
  a seq_cst fence are the same ``dmb ish`` on aarch64.
- ``atomic_load_acquire`` is ``ldar`` on every aarch64 profile, also with
  ``-march=armv8.1-a`` (``ldapr``, the weaker RCpc load, needs ``+rcpc``);
  an ``ldapr`` in the code would not be what ``arm-*`` model.
- The default build (``-moutline-atomics``, GCC >= 10) calls one helper per
  RMW: libgcc's helper tests ``__aarch64_have_lse_atomics`` and runs either
  the lse cell's instruction or the llsc cell's loop (the test disassembles
  libgcc.a to check it), which is why ``arm`` is the union of ``arm-llsc``
  and ``arm-lse``.  Loads, stores and fences are inline, as in the other
  two columns.
- ``smp_mb__before_rmw`` / ``smp_mb__after_rmw`` are QEMU's (ff00bed1): a
  compiler barrier on x86, whose RMWs are lock-prefixed full fences, and
  ``dmb ish`` on aarch64, where an RMW is not a fence for later accesses.
- There is no ``atomic_mb_read`` in aiocore's vocabulary (QEMU's
  ``qatomic_mb_read`` is accepted as ``atomic_load_acquire``).

The core's own instrumentation (``AIO_COUNTER_ADD`` in ``aio_notifier.h``,
``aio_bh_note``'s count of 0->1 schedules) is a *relaxed* 64-bit add inside
``event_notifier_set`` / ``event_notifier_test_and_clear`` / ``aio_bh_note``:
``lock add`` on x86 (a full fence there, which the checker's ``home`` process
models), ``ldxr; stxr`` on llsc, ``ldadd`` on lse and
``bl __aarch64_ldadd8_relax`` by default (``CORE_COUNTER_ADD``).  It orders
nothing on aarch64 and is not a primitive of the strategy.

This module holds the table as data (``TARGETS``, ``PRIMITIVES``,
``sequence``), renders it (``render_table``), and checks objdump output
against it (``parse_objdump``, ``check_primitive``, ``check_hook``); it
compiles nothing and imports nothing else of aiocore.
"""
from __future__ import annotations

import functools
import re
from collections import Counter

import attrs


@attrs.frozen
class Target:
    """A code-generation profile: the compiler, its flags, and the model that judges the code."""

    name: str
    model: str
    cc: str
    objdump: str
    flags: tuple[str, ...]


TARGETS = {
    t.name: t
    for t in (
        Target("x86-64", "tso", "gcc", "objdump", ()),
        Target("aarch64-llsc", "arm-llsc", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump",
               ("-march=armv8-a", "-mno-outline-atomics")),
        Target("aarch64-lse", "arm-lse", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump",
               ("-march=armv8.1-a",)),
        Target("aarch64-default", "arm", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump", ()),
    )
}
_X86, _LLSC, _LSE, _DEFAULT = TARGETS


@attrs.frozen
class Primitive:
    """One primitive of aio_prims.h: its C arguments (the field first) and C11 meaning."""

    name: str
    args: tuple[str, ...]
    returns: bool
    c11: str


_RMW = "seq_cst read-modify-write"
PRIMITIVES = (
    Primitive("atomic_read", ("p",), True, "relaxed load"),
    Primitive("atomic_set", ("p", "v"), False, "relaxed store"),
    Primitive("atomic_load_acquire", ("p",), True, "acquire load"),
    Primitive("atomic_store_release", ("p", "v"), False, "release store"),
    Primitive("atomic_xchg", ("p", "v"), True, _RMW),
    Primitive("atomic_cmpxchg", ("p", "old", "new_"), True, _RMW),
    Primitive("atomic_fetch_add", ("p", "v"), True, _RMW),
    Primitive("atomic_fetch_sub", ("p", "v"), True, _RMW),
    Primitive("atomic_fetch_or", ("p", "v"), True, _RMW),
    Primitive("atomic_fetch_and", ("p", "v"), True, _RMW),
    Primitive("atomic_add", ("p", "v"), False, _RMW),
    Primitive("atomic_sub", ("p", "v"), False, _RMW),
    Primitive("atomic_or", ("p", "v"), False, _RMW),
    Primitive("atomic_and", ("p", "v"), False, _RMW),
    Primitive("smp_mb", (), False, "seq_cst fence"),
    Primitive("smp_wmb", (), False, "release fence"),
    Primitive("smp_rmb", (), False, "acquire fence"),
    Primitive("atomic_mb_set", ("p", "v"), False, "smp_wmb; atomic_set; smp_mb"),
    Primitive("smp_mb__before_rmw", (), False, "seq_cst fence where an RMW is not one"),
    Primitive("smp_mb__after_rmw", (), False, "seq_cst fence where an RMW is not one"),
)
PRIMITIVE_NAMES = tuple(p.name for p in PRIMITIVES)

_LLSC_RMW = "ldaxr; stlxr"
_MB_X86 = "lock or $0,(%rsp)"


def _helper(op: str) -> str:
    return f"bl __aarch64_{op}4_acq_rel"


# Per primitive: (x86-64, aarch64-llsc, aarch64-lse, aarch64-default).  A
# cell is "tok; tok", alternatives separated by " | " (the first is GCC 12's).
_CELLS = {
    "atomic_read": ("mov (load)", "ldr", "ldr", "ldr"),
    "atomic_set": ("mov (store)", "str", "str", "str"),
    "atomic_load_acquire": ("mov (load)", "ldar", "ldar", "ldar"),
    "atomic_store_release": ("mov (store)", "stlr", "stlr", "stlr"),
    "atomic_xchg": ("xchg", _LLSC_RMW, "swpal", _helper("swp")),
    "atomic_cmpxchg": ("lock cmpxchg", _LLSC_RMW, "casal", _helper("cas")),
    "atomic_fetch_add": ("lock xadd", _LLSC_RMW, "ldaddal", _helper("ldadd")),
    "atomic_fetch_sub": ("lock xadd", _LLSC_RMW, "ldaddal", _helper("ldadd")),
    "atomic_fetch_or": ("mov (load); lock cmpxchg", _LLSC_RMW, "ldsetal", _helper("ldset")),
    "atomic_fetch_and": ("mov (load); lock cmpxchg", _LLSC_RMW, "ldclral", _helper("ldclr")),
    "atomic_add": ("lock add", _LLSC_RMW, "ldaddal", _helper("ldadd")),
    "atomic_sub": ("lock sub", _LLSC_RMW, "ldaddal", _helper("ldadd")),
    "atomic_or": ("lock or", _LLSC_RMW, "ldsetal", _helper("ldset")),
    "atomic_and": ("lock and", _LLSC_RMW, "ldclral", _helper("ldclr")),
    "smp_mb": (f"{_MB_X86} | mfence", "dmb ish", "dmb ish", "dmb ish"),
    "smp_wmb": ("", "dmb ish", "dmb ish", "dmb ish"),
    "smp_rmb": ("", "dmb ishld", "dmb ishld", "dmb ishld"),
    "atomic_mb_set": (f"mov (store); {_MB_X86} | mov (store); mfence",
                      "dmb ish; str; dmb ish", "dmb ish; str; dmb ish", "dmb ish; str; dmb ish"),
    # QEMU ff00bed1: a compiler barrier on x86 (its RMWs are full fences), dmb ish on aarch64
    "smp_mb__before_rmw": ("", "dmb ish", "dmb ish", "dmb ish"),
    "smp_mb__after_rmw": ("", "dmb ish", "dmb ish", "dmb ish"),
}

#: The core's relaxed 64-bit counter add (AIO_COUNTER_ADD, aio_bh_note), per target.
CORE_COUNTER_ADD = {
    _X86: "lock add",
    _LLSC: "ldxr; stxr",
    _LSE: "ldadd | stadd",
    _DEFAULT: "bl __aarch64_ldadd8_relax",
}

def counter_add(target: str) -> tuple[str, ...]:
    """The sequence GCC 12 emits for the core's relaxed counter add on `target`."""
    return _alternatives(CORE_COUNTER_ADD[target])[0]


#: Tokens that are plain accesses (in a primitive's cell, ignored in a hook's count).
PLAIN = frozenset({"mov (load)", "mov (store)", "ldr", "str"})


def _alternatives(cell: str) -> tuple[tuple[str, ...], ...]:
    return tuple(
        tuple(t.strip() for t in alt.split(";") if t.strip()) for alt in cell.split("|")
    )


def sequence(primitive: str, target: str) -> tuple[str, ...]:
    """The instruction sequence GCC 12 emits for `primitive` on `target` (the table's cell)."""
    return alternatives(primitive, target)[0]


def alternatives(primitive: str, target: str) -> tuple[tuple[str, ...], ...]:
    """Every sequence the target's model accepts for `primitive`, GCC 12's first."""
    if primitive not in _CELLS:
        raise KeyError(f"no primitive {primitive!r} in the table (it has {', '.join(PRIMITIVE_NAMES)})")
    if target not in TARGETS:
        raise KeyError(f"no target {target!r} (targets: {', '.join(TARGETS)})")
    return _alternatives(_CELLS[primitive][list(TARGETS).index(target)])


def render_table() -> str:
    """The table as the module docstring states it (reStructuredText simple table)."""
    head = ["primitive"] + [f"{t} ({TARGETS[t].model})" for t in TARGETS]
    rows = [
        [p] + ["; ".join(sequence(p, t)) or "(nothing)" for t in TARGETS] for p in PRIMITIVE_NAMES
    ]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([rule, fmt(head), rule] + [fmt(r) for r in rows] + [rule])


# ---------------------------------------------------------------------------
# Reading objdump's output


@attrs.frozen
class Insn:
    """One disassembled instruction: address, mnemonic, operands, the call target if any."""

    addr: int
    mnemonic: str
    operands: str
    target: str | None


_FUNC = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\t(\S+)\s*(.*)$")
_RELOC = re.compile(r"^\s*[0-9a-f]+: (R_\w+)\s+([^\s+-]+)")
_SYMREF = re.compile(r"<([^>+]+)>")
_BRANCH = re.compile(r"^(b|bl|b\.\w+|cbn?z|tbn?z|call|jmp|j[a-z]+)$")


def parse_objdump(text: str) -> dict[str, list[Insn]]:
    """``objdump -dr --no-show-raw-insn`` text -> {function: [Insn, ...]}.

    A branch's or call's target is the relocation's symbol when there is one
    (an object file's external calls), else the ``<symbol>`` objdump
    printed when it names a function's start (not ``<f+0x10>``).  A
    ``lock`` prefix is kept in the mnemonic (``lock cmpxchg``)."""
    funcs: dict[str, list[Insn]] = {}
    cur = None
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(2), [])
            continue
        if cur is None:
            continue
        r = _RELOC.match(line)
        if r:
            if cur and _BRANCH.match(cur[-1].mnemonic.split()[-1]):
                cur[-1] = attrs.evolve(cur[-1], target=r.group(2))
            continue
        m = _INSN.match(line)
        if not m:
            continue
        mnem = m.group(2)
        # Comments: aarch64's "// #1", x86's "# 7 <f+0x7>" (never an operand).
        ops = re.sub(r"\s+#\s.*$", "", m.group(3).split("//")[0]).strip()
        if mnem == "lock":
            head, _, ops = ops.partition(" ")
            mnem = "lock " + head
        s = _SYMREF.search(ops)
        target = s.group(1) if s and _BRANCH.match(mnem) else None
        cur.append(Insn(int(m.group(1), 16), mnem, ops.strip(), target))
    return funcs


_X86_SIZED = re.compile(r"^(lock )?(add|sub|or|and|xor|xadd|cmpxchg|inc|dec|neg|not|bts|btr|btc|xchg)[bwlq]?$")
_X86_STACK = re.compile(r"\(%[re]sp\)|\(%[re]bp\)|\(%[re]sp,|\(%[re]bp,")
_ARM_LSE = re.compile(
    r"^(swp|casp?|ld(?:add|clr|eor|set|smax|smin|umax|umin)|st(?:add|clr|eor|set|smax|smin|umax|umin))"
    r"(al|a|l)?([bh]?)$"
)
_ARM_ORDERED = re.compile(r"^(ldar|ldapr|ldapur|ldlar|stlr|stlur|stllr|ld(?:a)?x[rp]|st(?:l)?x[rp])[bh]?$")
_ARM_PLAIN_LD = re.compile(r"^(ldr|ldur|ldp|ldnp)(s?[bhw])?$")
_ARM_PLAIN_ST = re.compile(r"^(str|stur|stp|stnp)[bh]?$")
_ATOMIC_CALL = ("__aarch64_", "__atomic_", "__sync_")


def _x86_token(i: Insn, plain: bool) -> str | None:
    m, ops = i.mnemonic, i.operands
    if m in ("mfence", "lfence", "sfence"):
        return m
    if m in ("call", "jmp") and i.target and i.target.startswith(_ATOMIC_CALL):
        return f"call {i.target}"
    sized = _X86_SIZED.match(m)
    if sized and (sized.group(1) or sized.group(2) == "xchg"):
        if "(" not in ops:  # xchg %ax,%ax is a nop
            return None
        base = (sized.group(1) or "") + sized.group(2)
        if base == "lock or" and re.match(r"^\$0x0,(-?0x[0-9a-f]+)?\(%rsp\)$", ops):
            return _MB_X86
        return base
    if m.startswith("lock"):
        return m
    if plain and m.startswith("mov") and "(" in ops and not _X86_STACK.search(ops) and "(%rip)" not in ops:
        return "mov (store)" if ops.rstrip().endswith(")") else "mov (load)"
    return None


def _arm_token(i: Insn, plain: bool) -> str | None:
    m, ops = i.mnemonic, i.operands
    if m in ("dmb", "dsb"):
        return f"{m} {ops.split()[0] if ops else ''}".strip()
    if m == "isb":
        return m
    if m in ("bl", "b") and i.target and i.target.startswith(_ATOMIC_CALL):
        return f"bl {i.target}"
    lse = _ARM_LSE.match(m)
    if lse:
        regs = [r.strip() for r in ops.split(",")]
        # An acquiring LSE load whose destination is the zero register loses
        # its acquire semantics (ARMv8 ARM, LD<op>A/AL): not what is modelled.
        if lse.group(2) in ("a", "al") and not lse.group(1).startswith("cas") and len(regs) > 1 and regs[1] in ("wzr", "xzr"):
            return f"{m} (zr destination: not acquire)"
        return m
    if _ARM_ORDERED.match(m):
        return m
    if plain and "[" in ops and not re.search(r"\[(sp|x29)\b", ops):
        if _ARM_PLAIN_LD.match(m):
            return "ldr"
        if _ARM_PLAIN_ST.match(m):
            return "str"
    return None


def tokens(target: str, insns, *, plain: bool = True) -> list[str]:
    """The memory-ordering instructions (and, with `plain`, the plain
    accesses off the stack) of `insns`, as the table spells them."""
    tok = _x86_token if target == _X86 else _arm_token
    return [t for t in (tok(i, plain) for i in insns) if t is not None]


def check_primitive(target: str, primitive: str, funcs: dict[str, list[Insn]],
                    fn_prefix: str = "isa_") -> str | None:
    """None if function ``isa_<primitive>`` compiled to the table's sequence
    for `target` (or an accepted alternative); else what differs."""
    fn = fn_prefix + primitive
    if fn not in funcs:
        return f"{target}: no function {fn} in the disassembly"
    got = tuple(tokens(target, funcs[fn]))
    allowed = alternatives(primitive, target)
    if got in allowed:
        return None
    want = " | ".join("; ".join(a) or "(nothing)" for a in allowed)
    return f"{target}: {primitive} compiled to {'; '.join(got) or '(nothing)'}, the {TARGETS[target].model} model assumes {want}"


def ordering_class(target: str, token: str) -> str | None:
    """What the model sees in `token` (None: an instruction the model does
    not know for this target, which check_hook reports)."""
    if target == _X86:
        if token in (_MB_X86, "mfence"):
            return "full fence"
        if token == "xchg" or token.startswith("lock "):
            return "locked RMW (full fence)"
        return None
    return token if token in _known(target) else None


@functools.cache
def _known(target: str) -> frozenset:
    known = {t for p in PRIMITIVE_NAMES for alt in alternatives(p, target) for t in alt}
    known |= {t for alt in _alternatives(CORE_COUNTER_ADD[target]) for t in alt}
    return frozenset(known - PLAIN)


def expected_classes(target: str, calls: Counter) -> Counter:
    """The ordering instructions a body with these primitive calls (and
    ``CORE_COUNTER_ADD`` for the key "counter_add") compiles to on `target`."""
    out = Counter()
    for name, n in calls.items():
        seq = counter_add(target) if name == "counter_add" else sequence(name, target)
        for t in seq:
            if t not in PLAIN:
                out[ordering_class(target, t)] += n
    return out


def closure(funcs: dict[str, list[Insn]], root: str) -> list[str]:
    """`root` and the local functions it calls or jumps to (gcc outlines
    cold paths: strategy_notify.part.0, event_notifier_test_and_clear.isra.0)."""
    seen, todo = [], [root]
    while todo:
        f = todo.pop()
        if f in seen or f not in funcs:
            continue
        seen.append(f)
        todo.extend(i.target for i in funcs[f] if i.target and i.target in funcs)
    return seen


def check_hook(target: str, funcs: dict[str, list[Insn]], root: str,
               expected: Counter | None) -> list[str]:
    """What is wrong with the compiled hook `root` (and what it calls) on
    `target`: every ordering instruction must be one the table has for the
    target, and, when `expected` (from expected_classes) is given, their
    counts must be the C's.  An empty list: the code is what is modelled."""
    if root not in funcs:
        return [f"{target}: no function {root} in the disassembly"]
    problems, got = [], Counter()
    for f in closure(funcs, root):
        for i in funcs[f]:
            t = tokens(target, [i], plain=False)
            if not t:
                continue
            c = ordering_class(target, t[0])
            if c is None:
                why = "" if t[0] in f"{i.mnemonic} {i.operands}" else f" ({t[0]})"
                problems.append(
                    f"{target}: {root}: {f}+{i.addr:#x} `{i.mnemonic} {i.operands}`{why} is not an "
                    f"instruction the {TARGETS[target].model} model has for any primitive"
                )
            else:
                got[c] += 1
    if expected is not None and got != expected:
        problems.append(
            f"{target}: {root}: ordering instructions {dict(sorted(got.items()))}, but the C's "
            f"primitives compile to {dict(sorted(expected.items()))} by the table"
        )
    return problems


# ---------------------------------------------------------------------------
# Reading the C: which primitives each hook calls


def strip_c_comments(c: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", c, flags=re.S)


def _bodies(c: str, head: str) -> dict[str, str]:
    """{name: body} of the functions whose definition matches `head`
    (a regex whose group 1 is the name, ending just before the '{')."""
    out = {}
    for m in re.finditer(head + r"\s*\{", c):
        depth, i = 1, m.end()
        while depth and i < len(c):
            depth += {"{": 1, "}": -1}.get(c[i], 0)
            i += 1
        out[m.group(1)] = c[m.end():i - 1]
    return out


_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def helper_counter_adds(notifier_h: str) -> dict[str, int]:
    """{helper: relaxed counter adds} of aio_notifier.h's native (non-trace)
    helpers, read from its text; raises ValueError if a helper uses an
    atomic the table has no row for."""
    native = strip_c_comments(notifier_h.split("#else /* AIO_TRACE */")[0])
    out = {}
    for name, body in _bodies(native, r"static\s+inline\s+\w+\s+(\w+)\s*\([^)]*\)").items():
        adds = len(re.findall(r"\bAIO_COUNTER_ADD\s*\(", body))
        for a in re.finditer(r"__atomic_(\w+)\s*\(([^;]*)", body):
            if a.group(1) != "fetch_add" or "__ATOMIC_RELAXED" not in a.group(2):
                raise ValueError(f"aio_notifier.h: {name} uses __atomic_{a.group(1)} "
                                 f"({a.group(2).strip()}), which the ISA table does not map")
            adds += 1
        out[name] = adds
    return out


def hook_calls(hooks_c: str, helpers: dict[str, int]) -> dict[str, Counter | None]:
    """{hook: Counter of primitive calls, "counter_add" for the core's
    counters} of a strategy's C hooks (``static ... strategy_NAME(...)``),
    with the hooks it calls expanded.  None where a hook or helper is
    reached twice: gcc may outline it once, so the static count of its
    instructions is not determinable from the C."""
    c = strip_c_comments(hooks_c)
    bodies = _bodies(c, r"static\s+\w+\s+strategy_(\w+)\s*\([^)]*\)")

    def expand(hook, seen_calls):
        out = Counter()
        for m in _CALL.finditer(bodies[hook]):
            name = m.group(1)
            if name in PRIMITIVE_NAMES:
                out[name] += 1
            elif name in helpers or (name.startswith("strategy_") and name[9:] in bodies):
                if name in seen_calls:
                    raise _Ambiguous
                seen_calls.add(name)
                out += expand(name[9:], seen_calls) if name.startswith("strategy_") else Counter()
                out["counter_add"] += helpers.get(name, 0)
        return out

    result = {}
    for hook in bodies:
        try:
            result[hook] = +expand(hook, set())
        except _Ambiguous:
            result[hook] = None
    return result


class _Ambiguous(Exception):
    pass


def primitives_c(prelude: str = "") -> str:
    """A C file with one non-inlined function ``isa_<primitive>`` per row of
    the table, each doing only that primitive on a uint32_t field (the type
    of the segment's fields); `prelude` goes after aio_prims.h (to redefine
    a primitive for a negative check)."""
    lines = ["#include <stdint.h>", '#include "aio_prims.h"', prelude,
             "#define ISA_NOINLINE __attribute__((noinline, used))"]
    for p in PRIMITIVES:
        params = ", ".join(("uint32_t *" if a == "p" else "uint32_t ") + a for a in p.args) or "void"
        call = f"{p.name}({', '.join(p.args)})"
        body = f"return {call};" if p.returns else f"{call};"
        lines.append(f"ISA_NOINLINE {'uint32_t' if p.returns else 'void'} isa_{p.name}({params}) {{ {body} }}")
    return "\n".join(lines) + "\n"
