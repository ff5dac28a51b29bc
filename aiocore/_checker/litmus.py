"""Litmus tests: small straight-line programs run through the checker's
memory models, to show that each model allows exactly the classic outcomes.

A program is a list of threads, each a list of operations:

    ("st", loc, value)            atomic_set (relaxed store)
    ("st_rel", loc, value)        atomic_store_release
    ("ld", loc, reg)              atomic_read (relaxed load) into reg
    ("ld_acq", loc, reg)          atomic_load_acquire
    ("xchg", loc, value[, reg])   atomic_xchg (seq_cst RMW)
    ("add", loc, value)           atomic_add (seq_cst RMW, result discarded)
    ("mb",) ("wmb",) ("rmb",)     smp_mb / smp_wmb / smp_rmb

All locations start at 0.  ``outcomes(model, threads)`` returns the set of
final register valuations, each a tuple ordered as ``registers(threads)``;
``allowed(model, threads, **regs)`` says whether one valuation is reachable.

The table of DESIGN.md, as the tests check it:

    litmus                                   sc         tso        arm
    SB      (W x; R y || W y; R x -> 0,0)    forbidden  allowed    allowed
    SB+mb                                    forbidden  forbidden  forbidden
    SB with seq_cst RMW stores, no fence     forbidden  forbidden  allowed
    MP      (W d; W f || R f; R d -> 1,0)    forbidden  forbidden  allowed
    MP+wmb/rmb                               forbidden  forbidden  forbidden
"""
from __future__ import annotations

from .._compiler import _ir
from ._explore import Explorer
from ._program import DONE, MODEL_CODES, Proc, Program, _Builder, analyse

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


def registers(threads) -> list[str]:
    regs = []
    for t in threads:
        for op in t:
            if op[0] in ("ld", "ld_acq") or (op[0] == "xchg" and len(op) > 3 and op[3]):
                r = op[3] if op[0] == "xchg" else op[2]
                if r not in regs:
                    regs.append(r)
    return regs


def _stmts(ops):
    out = []
    for op in ops:
        k = op[0]
        if k == "st":
            out.append(_ir.Write("atomic_set", op[1], _ir.Const(op[2])))
        elif k == "st_rel":
            out.append(_ir.Write("atomic_store_release", op[1], _ir.Const(op[2])))
        elif k == "ld":
            out.append(_ir.Read("atomic_read", op[1], op[2]))
        elif k == "ld_acq":
            out.append(_ir.Read("atomic_load_acquire", op[1], op[2]))
        elif k == "xchg":
            dst = op[3] if len(op) > 3 else None
            out.append(_ir.Rmw("atomic_xchg", op[1], _ir.Const(op[2]), dst))
        elif k == "add":
            out.append(_ir.Rmw("atomic_add", op[1], _ir.Const(op[2])))
        elif k in ("mb", "wmb", "rmb"):
            out.append(_ir.Fence(f"smp_{k}", "litmus"))
        else:
            raise ValueError(f"unknown litmus operation {op!r}")
    return out


def build(model: str, threads) -> tuple[Program, dict]:
    m = MODEL_CODES[model]
    locs = {}
    for t in threads:
        for op in t:
            if len(op) > 1 and op[1] not in locs:
                locs[op[1]] = len(locs)
    names = list(locs)
    ir = _ir.StrategyIR(name="litmus", hooks={}, fields=tuple(names))
    procs, regslots = [], []
    for k, ops in enumerate(threads):
        p = Proc(f"T{k}", "litmus")
        b = _Builder(p, ir, m, locs, ())
        b._names = names
        tmap = {}
        b._body(_stmts(ops), "litmus", None, tmap, None, [], 0)
        b.emit((DONE,), "litmus", "done", set(tmap.values()))
        analyse(p, m)
        procs.append(p)
        regslots.append(tmap)
    return Program(m, names, (), procs, "litmus", "litmus"), regslots


def outcomes(model: str, threads) -> set[tuple]:
    """Every final valuation of the registers (in registers() order)."""
    prog, regslots = build(model, threads)
    ex = Explorer(prog)
    regs = registers(threads)
    init = ex.initial()
    seen = {init}
    stack = [init]
    out = set()
    while stack:
        s = stack.pop()
        succ = ex.successors(s)
        if not succ:
            mem, ev, owed, procs = ex.decode(s)
            if all(prog.procs[i].code[p[0]][0] == DONE and not p[2] for i, p in enumerate(procs)):
                vals = {}
                for i, p in enumerate(procs):
                    for r, slot in regslots[i].items():
                        vals[r] = p[1][slot]
                out.add(tuple(vals[r] for r in regs))
        for _, t in succ:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return out


def allowed(model: str, threads, **regs) -> bool:
    """Is this final valuation of (some of) the registers reachable?"""
    names = registers(threads)
    for o in outcomes(model, threads):
        if all(o[names.index(r)] == v for r, v in regs.items()):
            return True
    return False
