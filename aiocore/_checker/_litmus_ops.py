"""The litmus op language, checked and normalised once for every back end.

A litmus program is a list of threads, each a list of operations (tuples).
The first nine are the project's original litmus ops (aiocore._checker.litmus);
the rest complete the seq_cst RMWs of the primitive vocabulary and add a
control dependency:

    ("st", loc, v)                     atomic_set (relaxed store)
    ("st_rel", loc, v)                 atomic_store_release
    ("ld", loc, reg)                   atomic_read (relaxed load) into reg
    ("ld_acq", loc, reg)               atomic_load_acquire into reg
    ("xchg", loc, v[, reg])            atomic_xchg; reg gets the old value
    ("cmpxchg", loc, old, new[, reg])  atomic_cmpxchg: writes new only if the
                                       location held old; reg gets the old value
    ("add", loc, v)  ("sub", loc, v)   atomic_add / atomic_sub (result discarded)
    ("or", loc, v)   ("and", loc, v)   atomic_or / atomic_and (result discarded)
    ("fetch_add", loc, v, reg)         atomic_fetch_add; reg gets the old value
    ("fetch_sub", loc, v, reg)         atomic_fetch_sub
    ("fetch_or", loc, v, reg)          atomic_fetch_or
    ("fetch_and", loc, v, reg)         atomic_fetch_and
    ("mb",) ("wmb",) ("rmb",)          smp_mb / smp_wmb / smp_rmb
    ("br", reg)                        a conditional branch on reg to the next
                                       op, as `if (atomic_read(p))` compiles:
                                       every later op of the thread is control
                                       dependent on the load that wrote reg

Every RMW is seq_cst.  Locations are identifiers, all initially 0; values are
ints in [0, 65536) and memory holds uint32_t (sub wraps modulo 2**32).  A
register is written by exactly one op of the program, and ``br`` names a
register written earlier in its own thread.  An outcome is a valuation of the
registers in ``Program.registers`` order followed by the final value of each
location in ``Program.locations`` order (``Program.keys`` names them: "r0", ...,
"[x]", ...).
"""
from __future__ import annotations

import re

import attrs

#: op name -> the operand kinds after the name ("reg?" = optional register).
SIGNATURES = {
    "st": ("loc", "val"),
    "st_rel": ("loc", "val"),
    "ld": ("loc", "reg"),
    "ld_acq": ("loc", "reg"),
    "xchg": ("loc", "val", "reg?"),
    "cmpxchg": ("loc", "val", "val", "reg?"),
    "add": ("loc", "val"),
    "sub": ("loc", "val"),
    "or": ("loc", "val"),
    "and": ("loc", "val"),
    "fetch_add": ("loc", "val", "reg"),
    "fetch_sub": ("loc", "val", "reg"),
    "fetch_or": ("loc", "val", "reg"),
    "fetch_and": ("loc", "val", "reg"),
    "mb": (),
    "wmb": (),
    "rmb": (),
    "br": ("reg",),
}
LOADS = ("ld", "ld_acq")
STORES = ("st", "st_rel")
FENCES = ("mb", "wmb", "rmb")
#: The RMWs, each a seq_cst read-modify-write; ARITH[kind] is its arithmetic.
RMWS = ("xchg", "cmpxchg", "add", "sub", "or", "and", "fetch_add", "fetch_sub", "fetch_or", "fetch_and")
ARITH = {
    "xchg": "xchg", "add": "add", "fetch_add": "add", "sub": "sub", "fetch_sub": "sub",
    "or": "or", "fetch_or": "or", "and": "and", "fetch_and": "and", "cmpxchg": "cas",
}
MASK = 0xFFFFFFFF
MAX_VALUE = 1 << 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class LitmusError(ValueError):
    """A litmus program the op language does not accept."""


@attrs.define(frozen=True)
class Op:
    """One normalised op: ``kind``, and what it needs of loc/value/expected/reg."""

    kind: str
    loc: str | None = None
    value: int | None = None      # stored / operand / cmpxchg's new value
    expected: int | None = None   # cmpxchg's old value
    reg: str | None = None        # the register it writes (br: reads)


@attrs.define(frozen=True)
class Program:
    """A checked litmus program."""

    threads: tuple  # tuple[tuple[Op, ...], ...]
    registers: tuple  # register names, in program order
    locations: tuple  # location names, in order of first use

    @property
    def keys(self) -> tuple:
        """The names of an outcome's components: registers, then "[loc]"."""
        return self.registers + tuple(f"[{x}]" for x in self.locations)


def rmw_new(kind: str, old: int, value: int, expected: int | None = None) -> int | None:
    """The value an RMW of ``kind`` writes over ``old`` (None: a failed cmpxchg writes nothing)."""
    a = ARITH[kind]
    if a == "xchg":
        return value
    if a == "cas":
        return value if old == expected else None
    if a == "add":
        return (old + value) & MASK
    if a == "sub":
        return (old - value) & MASK
    if a == "or":
        return old | value
    return old & value


def _name(what, x, op):
    if not isinstance(x, str) or not _NAME.match(x):
        raise LitmusError(f"{op!r}: the {what} must be an identifier, not {x!r}")
    return x


def parse(threads) -> Program:
    """Check a program in the op language and normalise it (LitmusError if it is not one)."""
    if isinstance(threads, Program):
        return threads
    if not isinstance(threads, (list, tuple)) or not threads:
        raise LitmusError(f"a litmus program is a non-empty list of threads, not {threads!r}")
    regs, locs, out = [], [], []
    for t, ops in enumerate(threads):
        if not isinstance(ops, (list, tuple)):
            raise LitmusError(f"thread {t} must be a list of ops, not {ops!r}")
        mine, norm = set(), []
        for op in ops:
            if not isinstance(op, (list, tuple)) or not op or not isinstance(op[0], str):
                raise LitmusError(f"thread {t}: an op is a tuple (name, ...), not {op!r}")
            kind = op[0]
            if kind not in SIGNATURES:
                raise LitmusError(f"thread {t}: unknown litmus op {kind!r} in {op!r}; "
                                  f"known: {', '.join(SIGNATURES)}")
            sig = SIGNATURES[kind]
            need = sum(1 for s in sig if not s.endswith("?"))
            if not need <= len(op) - 1 <= len(sig):
                raise LitmusError(f"thread {t}: {op!r} has {len(op) - 1} operands; {kind} takes "
                                  f"({', '.join(sig)})")
            f = {"loc": None, "vals": [], "reg": None}
            for s, x in zip(sig, op[1:]):
                if s == "loc":
                    f["loc"] = _name("location", x, op)
                elif s == "val":
                    if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < MAX_VALUE:
                        raise LitmusError(f"thread {t}: {op!r}: a value is an int in [0, {MAX_VALUE}), "
                                          f"not {x!r}")
                    f["vals"].append(x)
                elif x is not None:  # reg / reg?
                    f["reg"] = _name("register", x, op)
            reg = f["reg"]
            if kind == "br":
                if reg not in mine:
                    raise LitmusError(f"thread {t}: {op!r} branches on {reg!r}, which no earlier op "
                                      f"of this thread writes")
            elif reg is not None:
                if reg in regs:
                    raise LitmusError(f"thread {t}: {op!r} writes register {reg!r} a second time; "
                                      f"give each op its own register")
                regs.append(reg)
                mine.add(reg)
            if f["loc"] is not None and f["loc"] not in locs:
                locs.append(f["loc"])
            vals = f["vals"]
            if kind == "cmpxchg":
                norm.append(Op(kind, f["loc"], vals[1], vals[0], reg))
            else:
                norm.append(Op(kind, f["loc"], vals[0] if vals else None, None, reg))
        out.append(tuple(norm))
    clash = set(regs) & set(locs)
    if clash:
        raise LitmusError(f"{sorted(clash)} name both a register and a location")
    return Program(tuple(out), tuple(regs), tuple(locs))


def outcome_filter(prog: Program, final=None, regs=None):
    """(index, value) pairs an outcome must match: ``regs`` by name, ``final`` by location."""
    want = []
    for r, v in (regs or {}).items():
        if r not in prog.registers:
            raise LitmusError(f"no op writes register {r!r}; registers: {list(prog.registers)}")
        want.append((prog.registers.index(r), v & MASK))
    for x, v in (final or {}).items():
        if x not in prog.locations:
            raise LitmusError(f"final names {x!r}, which no op touches; locations: {list(prog.locations)}")
        want.append((len(prog.registers) + prog.locations.index(x), v & MASK))
    return want


def init_values(prog: Program, init=None) -> tuple:
    """The initial value of each location, in ``prog.locations`` order:
    ``init`` maps a location to its value (0 where it does not say).  Only
    the counterexample parts of aiocore._checker._export use it: a part
    starts from the memory the part before it left."""
    vals = dict.fromkeys(prog.locations, 0)
    for x, v in (init or {}).items():
        if x not in vals:
            raise LitmusError(f"init names {x!r}, which no op touches; locations: {list(prog.locations)}")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MASK:
            raise LitmusError(f"init: {x!r} must start with an int in [0, {MASK}], not {v!r}")
        vals[x] = v
    return tuple(vals[x] for x in prog.locations)


def matches(outcome: tuple, want) -> bool:
    """Does an outcome satisfy an outcome_filter?"""
    return all(outcome[i] == v for i, v in want)
