"""Litmus tests through the protocol checker's own memory models.

A program in the op language of aiocore._checker._litmus_ops (a list of
threads, each a list of ops such as ``("st", "x", 1)``, ``("ld_acq", "f",
"r0")``, ``("xchg", "x", 1, "r1")``, ``("mb",)``, ``("br", "r0")``) is
compiled into the checker's instruction set (one straight-line process per
thread, fences lowered per model exactly as the protocol's are) and explored
by the same Explorer the protocol checker runs: ``sc``, ``tso``, and the
ARMv8 windows of _window.py for ``arm-llsc`` and ``arm-lse``; ``arm`` is
their union.

An outcome is a tuple: the registers in program order, then the final value
of every location in order of first use (``_litmus_ops.Program.keys``), as
the axiomatic checker (_axiomatic.py) and herd7's recorded verdicts
(tests/litmus/corpus.json) give them: tests/test_checker_litmus.py holds the
three against each other.

DESIGN.md's table, as the tests check it:

    litmus                                   sc         tso        arm
    SB      (W x; R y || W y; R x -> 0,0)    forbidden  allowed    allowed
    SB+mb                                    forbidden  forbidden  forbidden
    SB with seq_cst RMW stores, no fence     forbidden  forbidden  allowed (LL/SC only)
    MP      (W d; W f || R f; R d -> 1,0)    forbidden  forbidden  allowed
    MP+wmb/rmb                               forbidden  forbidden  forbidden
"""
from __future__ import annotations

from .._compiler._meta import MODELS, PROFILES
from ._litmus_ops import LitmusError, Program as LitmusProgram, matches, outcome_filter, parse
from ._program import (
    ARM, BR, CTRL, DONE, DRAIN, MODEL_CODES, READ, RESET, RMW, TSO, WRITE, Proc, Program, _rmw_fn,
    analyse,
)
from ._window import explorer


SB = [[("st", "x", 1), ("ld", "y", "r0")], [("st", "y", 1), ("ld", "x", "r1")]]
SB_MB = [[("st", "x", 1), ("mb",), ("ld", "y", "r0")], [("st", "y", 1), ("mb",), ("ld", "x", "r1")]]
SB_RMW = [[("xchg", "x", 1), ("ld", "y", "r0")], [("xchg", "y", 1), ("ld", "x", "r1")]]
MP = [[("st", "d", 1), ("st", "f", 1)], [("ld", "f", "r0"), ("ld", "d", "r1")]]
MP_WMB_RMB = [[("st", "d", 1), ("wmb",), ("st", "f", 1)], [("ld", "f", "r0"), ("rmb",), ("ld", "d", "r1")]]

#: name -> (program, the outcome that is forbidden or allowed, {model: allowed?})
TABLE = {
    "SB": (SB, {"r0": 0, "r1": 0}, {"sc": False, "tso": True, "arm": True}),
    "SB+mb": (SB_MB, {"r0": 0, "r1": 0}, {"sc": False, "tso": False, "arm": False}),
    "SB+rmw": (SB_RMW, {"r0": 0, "r1": 0}, {"sc": False, "tso": False, "arm": True}),
    "MP": (MP, {"r0": 1, "r1": 0}, {"sc": False, "tso": False, "arm": True}),
    "MP+wmb+rmb": (MP_WMB_RMB, {"r0": 1, "r1": 0}, {"sc": False, "tso": False, "arm": False}),
}

_RMW_NAMES = {
    "xchg": "atomic_xchg", "cmpxchg": "atomic_cmpxchg", "add": "atomic_add", "sub": "atomic_sub",
    "or": "atomic_or", "and": "atomic_and", "fetch_add": "atomic_fetch_add",
    "fetch_sub": "atomic_fetch_sub", "fetch_or": "atomic_fetch_or", "fetch_and": "atomic_fetch_and",
}


def registers(threads) -> list[str]:
    """The registers an outcome starts with, in program order."""
    return list(parse(threads).registers)


def _const(v):
    return lambda e: v


def build(model: str, threads, protocol_branches: bool = False) -> tuple[Program, list, LitmusProgram]:
    """(checker Program, per thread {register: slot}, the parsed litmus program).

    ``protocol_branches``: each ``br`` becomes the protocol's own branch
    instruction (BR, both ways to the next op) instead of the litmus CTRL
    marker, so that the protocol checker's handling of branches on pending
    loads (waiting, or speculating: _window._speculate) can be held against
    herd7 on the corpus."""
    if model not in MODEL_CODES:
        raise LitmusError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    m = MODEL_CODES[model]
    prog = parse(threads)
    locs = {x: k for k, x in enumerate(prog.locations)}
    procs, regslots = [], []
    for t, ops in enumerate(prog.threads):
        p = Proc(f"T{t}", "litmus")
        slots = {}

        def emit(ins, text, uses=()):
            p.code.append(ins)
            p.labels.append(("litmus", text))
            p.uses.append(frozenset(uses))

        def slot(reg):
            if reg is None:
                return -1
            p.slot_names.append(reg)
            slots[reg] = len(p.slot_names) - 1
            return slots[reg]

        for op in ops:
            k = op.kind
            if k in ("st", "st_rel"):
                emit((WRITE, locs[op.loc], k == "st_rel", _const(op.value)), f"{k} {op.loc} {op.value}")
            elif k in ("ld", "ld_acq"):
                emit((READ, locs[op.loc], k == "ld_acq", slot(op.reg)), f"{op.reg} = {k} {op.loc}")
            elif k in _RMW_NAMES:
                if m == TSO:  # lock prefix: the store buffer drains first
                    emit((DRAIN,), "lock prefix")
                exp = None if op.expected is None else _const(op.expected)
                emit((RMW, locs[op.loc], _rmw_fn(_RMW_NAMES[k]), _const(op.value), exp, slot(op.reg), -1),
                     f"{op.reg or ''} {k} {op.loc}")
            elif k == "mb" and m != 0 or k == "wmb" and m >= ARM:  # dmb ish / mfence
                emit((DRAIN,), k)
            elif k == "rmb" and m >= ARM:  # dmb ishld
                emit((RESET,), k)
            elif k == "br" and m >= ARM and protocol_branches:
                s_ = slots[op.reg]
                emit((BR, lambda env, s_=s_: env[s_] != 0, len(p.code) + 1), f"if {op.reg}", {s_})
            elif k == "br" and m >= ARM:  # a control dependency for the later stores
                emit((CTRL, slots[op.reg]), f"br {op.reg}")
        emit((DONE,), "done", set(slots.values()))
        analyse(p, m)
        procs.append(p)
        regslots.append(slots)
    return Program(m, list(prog.locations), (), procs, "litmus", "litmus"), regslots, prog


def _outcomes(model: str, threads, speculate=None) -> set:
    """speculate None: litmus branches (CTRL); True/False: protocol branches,
    speculated or waiting for their loads."""
    cprog, regslots, prog = build(model, threads, protocol_branches=speculate is not None)
    ex = explorer(cprog)
    ex.set_speculation(bool(speculate))
    init = ex.initial()
    seen = {init}
    stack = [init]
    out = set()
    while stack:
        s = stack.pop()
        succ = ex.successors(s)
        if not succ:
            mem, _ev, _owed, procs = ex.decode(s)
            if all(cprog.procs[i].code[p[0]][0] == DONE and not p[2] for i, p in enumerate(procs)):
                vals = {}
                for i, p in enumerate(procs):
                    for r, slot in regslots[i].items():
                        vals[r] = p[1][slot]
                out.add(tuple(vals[r] for r in prog.registers) + tuple(mem))
        for _, t in succ:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return out


def outcomes(model: str, threads) -> set[tuple]:
    """Every outcome the model allows: register values, then final memory."""
    if model == "arm":
        return _outcomes("arm-llsc", threads) | _outcomes("arm-lse", threads)
    return _outcomes(model, threads)


def allowed(model: str, threads, final=None, **regs) -> bool:
    """Does the model allow an outcome with these register values (and final memory)?"""
    prog = parse(threads)
    want = outcome_filter(prog, final, regs)
    return any(matches(o, want) for o in outcomes(model, prog))


def profiles(threads, final=None, **regs) -> tuple:
    """The ARM profiles that allow the outcome."""
    return tuple(m for m in PROFILES if allowed(m, threads, final, **regs))
