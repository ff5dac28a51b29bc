# Faithfulness: does the compiled C do what the Python description says?
#
# A strategy is written once, in Python, and reaches the machine as C
# generated from its IR.  Three things must agree on every path through every
# hook: the Python description run concretely (_concrete.run_concrete), the
# IR interpreted directly (what the model checker and the Promela export
# see), and the compiled C.  The C is compiled in its trace build
# (aio_trace.c, AIO_TRACE): each primitive appends (op, field, written, read,
# expected) to a log and every reading primitive returns the next value of a
# script instead of touching memory.  Running all three on the same script
# and comparing the logs exactly checks the tracer, the code generator and
# the C macros at once.
#
# Scripts are enumerated depth first: run the C with a script prefix; if the
# hook read more values than the prefix had, branch on every value of a
# small domain for the next read.  Every combination of read values over
# the domain is tried, so every path the domain can reach is covered; the
# report says which branch arms were never taken (with the default domain,
# none for the built-in strategies).
#
# Some spellings differ on purpose and are normalized before comparing:
# * a void RMW on the BH's word (atomic_add & co.) is emitted as its fetch
#   form in the hooks that count it, to keep the old value for aio_bh_note
#   (_codegen.C_OP_FOR_BH): both logs say the fetch form;
# * bh_flags is bh_scheduled's other name (the C logs one field);
# * event_test_and_clear returns whether the notifier was readable: the C
#   logs the raw scripted value, Python the boolean.
#
# Retry loops run at most TRACE_RETRY_CAP attempts in the trace build
# (aio_prims.h AIO_RETRY), and in the Python and IR runs compared with it,
# so that a loop of n attempts does not multiply the scripts by 5^(reads*n):
# the first attempt, a retry and the loop running out are all covered.
from __future__ import annotations

import attrs

from . import _ir
from ._codegen import C_OP_FOR_BH
from .._errors import AioError
from ._concrete import _exec_stmt, run_concrete_ret

#: Operation codes of the trace log (aio_prims.h, enum AIO_OP_*).
OPS = {
    1: "atomic_read",
    2: "atomic_set",
    3: "atomic_load_acquire",
    4: "atomic_store_release",
    5: "atomic_xchg",
    6: "atomic_cmpxchg",
    7: "atomic_fetch_add",
    8: "atomic_fetch_sub",
    9: "atomic_fetch_or",
    10: "atomic_fetch_and",
    11: "atomic_add",
    12: "atomic_sub",
    13: "atomic_or",
    14: "atomic_and",
    15: "smp_mb",
    16: "smp_wmb",
    17: "smp_rmb",
    18: "event_set",
    19: "event_test_and_clear",
    20: "smp_mb__before_rmw",
    21: "smp_mb__after_rmw",
}
_NONREADING = {"atomic_set", "atomic_store_release", "smp_mb", "smp_wmb", "smp_rmb", "event_set",
               "smp_mb__before_rmw", "smp_mb__after_rmw"}

#: Read values tried at every read: small values, and one with the high bits
#: set (what ~1 and wraparound produce).
DEFAULT_DOMAIN = (0, 1, 2, 3, 0xFFFFFFFE)
MAX_SCRIPTS = 50_000
MAX_LOG = 256
#: Attempts of a retry loop in the trace build (AIO_RETRY there).
TRACE_RETRY_CAP = 2


class Unfaithful(AioError):
    """The compiled C of a strategy does not do what its description says."""


def field_name(code: int, own_fields) -> str | None:
    if code == -1:
        return None
    if code in (0, 1, 2):
        return _ir.CORE_FIELDS[code]
    if code == 7:
        return "event"
    if code == 8:
        return "bh_next"
    if code == 9:
        return "bh_list"
    i = code - 3
    if 0 <= i < len(own_fields):
        return own_fields[i]
    return f"<unknown field {code}>"


def run_c(ffi, lib, hook: str, script, own_fields=()):
    """Run one hook of a trace build: (normalized log, return value)."""
    n = len(script)
    cscript = ffi.new("uint32_t[]", [v & _ir.MASK32 for v in script] or [0])
    log = ffi.new("aio_trace_rec[]", MAX_LOG)
    ret = ffi.new("int32_t *")
    k = lib.aio_trace_run(_ir.HOOKS.index(hook), cscript, n, log, MAX_LOG, ret)
    if k == -1:
        raise Unfaithful(f"hook {hook}: more than {MAX_LOG} primitives in one run")
    if k < 0:
        raise AioError(f"aio_trace_run({hook}) failed: {k}")
    out = []
    for i in range(k):
        r = log[i]
        op = OPS.get(r.op, f"<op {r.op}>")
        field = field_name(r.field, own_fields)
        written = None if r.written < 0 else int(r.written)
        read = None if r.read < 0 else int(r.read)
        if op == "event_set":
            field = None  # Python logs the event_set without a field
        if op == "event_test_and_clear":
            read = int(bool(read))
        rec = (op, field, written, read)
        if op == "atomic_cmpxchg":
            rec += (None if r.expected < 0 else int(r.expected),)
        out.append(rec)
    return out, int(ret[0]) & _ir.MASK32


def reads_of(log) -> int:
    """How many scripted values a log consumed."""
    return sum(1 for rec in log if rec[0] not in _NONREADING)


def _normalize_py(log):
    """A log (Python's, the IR's or the C's) in the spelling compared."""
    out = []
    for rec in log:
        if rec[1] == "bh_flags":
            rec = (rec[0], "bh_scheduled") + tuple(rec[2:])
        if rec[1] == "bh_scheduled" and rec[0] in C_OP_FOR_BH:
            rec = (C_OP_FOR_BH[rec[0]],) + tuple(rec[1:])
        out.append(tuple(rec))
    return out


def _scripted(script):
    it = iter(script)

    def reads(op, field):
        return next(it, 0)

    return reads


_BREAK = object()


def run_ir(ir: _ir.StrategyIR, hook: str, script, arms=None, retry_cap=TRACE_RETRY_CAP):
    """Interpret the IR of a hook on a script: (log, return value).  `arms`,
    if given, collects the (id(If), taken) pairs visited.  Retry loops run
    at most ``retry_cap`` attempts (None: their own limit)."""
    reads = _scripted(script)
    log: list = []

    def execute(h):
        env: dict = {}
        r = _exec_body(ir.hooks.get(h, ()), env)
        return None if r is _BREAK else r

    def _exec_body(body, env):
        for s in body:
            if isinstance(s, _ir.If):
                taken = bool(_ir.eval_expr(s.cond, env))
                if arms is not None:
                    arms.add((id(s), taken))
                r = _exec_body(s.then if taken else s.orelse, env)
                if r is not None:
                    return r
            elif isinstance(s, _ir.Loop):
                n = s.limit if retry_cap is None else min(s.limit, retry_cap)
                for _ in range(n):
                    r = _exec_body(s.body, env)
                    if r is _BREAK:
                        break
                    if r is not None:
                        return r
            elif isinstance(s, _ir.Break):
                return _BREAK
            elif isinstance(s, _ir.Return):
                return _ir.eval_expr(s.value, env)
            else:
                _exec_stmt(s, env, log, reads, execute)
        return None

    ret = execute(hook)
    return log, (ret or 0) & _ir.MASK32


def all_arms(ir: _ir.StrategyIR, hook: str, seen=None) -> set:
    """Every (id(If), arm) of a hook and the hooks it calls."""
    seen = set() if seen is None else seen
    if hook in seen:
        return set()
    seen.add(hook)
    out = set()
    for s in _ir.walk(ir.hooks.get(hook, ())):
        if isinstance(s, _ir.If):
            out |= {(id(s), True), (id(s), False)}
        elif isinstance(s, _ir.Call):
            out |= all_arms(ir, s.hook, seen)
    return out


@attrs.frozen
class HookReport:
    hook: str
    scripts: int
    arms: int
    uncovered: int


@attrs.frozen
class Report:
    strategy: str
    hooks: tuple  # of HookReport

    @property
    def scripts(self) -> int:
        return sum(h.scripts for h in self.hooks)

    @property
    def uncovered(self) -> dict:
        return {h.hook: h.uncovered for h in self.hooks if h.uncovered}


def _explain(hook, script, py, ir_log, c, py_ret, ir_ret, c_ret) -> str:
    lines = [f"hook {hook}, read values {list(script)}:"]
    width = max(len(py), len(c), len(ir_log))
    for i in range(width):
        a = py[i] if i < len(py) else "-"
        b = ir_log[i] if i < len(ir_log) else "-"
        d = c[i] if i < len(c) else "-"
        mark = "  " if a == b == d else "!!"
        lines.append(f"  {mark} python {a}   ir {b}   C {d}")
    if not py_ret == ir_ret == c_ret:
        lines.append(f"  !! returned: python {py_ret}, ir {ir_ret}, C {c_ret}")
    return "\n".join(lines)


def check_hook(cls, ir, ffi, lib, hook, domain=DEFAULT_DOMAIN) -> HookReport:
    """Compare Python, IR and C on every script of `domain` values for one
    hook; raises Unfaithful on the first difference."""
    own = tuple(ir.fields[len(_ir.CORE_FIELDS):])
    arms: set = set()
    stack = [()]
    done = 0
    while stack:
        script = stack.pop()
        c_log, c_ret = run_c(ffi, lib, hook, script, own)
        n = reads_of(c_log)
        if n > len(script):
            stack.extend(script + (d,) for d in reversed(domain))
            continue
        done += 1
        if done > MAX_SCRIPTS:
            raise Unfaithful(f"hook {hook}: more than {MAX_SCRIPTS} scripts; use a smaller domain")
        py_log, py_ret = run_concrete_ret(cls, hook, _scripted(script), TRACE_RETRY_CAP)
        py_log = _normalize_py(py_log)
        ir_log, ir_ret = run_ir(ir, hook, script, arms)
        ir_log = _normalize_py(ir_log)
        c_log = _normalize_py(c_log)
        if not (py_log == ir_log == c_log and py_ret == ir_ret == c_ret):
            raise Unfaithful(
                f"{ir.name}: the compiled C differs from the description\n"
                + _explain(hook, script, py_log, ir_log, c_log, py_ret, ir_ret, c_ret)
            )
    total = all_arms(ir, hook)
    return HookReport(hook, done, len(total), len(total - arms))


def check_strategy(info, *, domain=DEFAULT_DOMAIN, ffi_lib=None) -> Report:
    """Faithfulness of every hook of an installed strategy (a StrategyInfo
    from _plugins.get) against its compiled trace build.

    With ffi_lib, that trace build is checked against info's description
    instead (e.g. the hand-written unconditional-c against the description
    of unconditional); fingerprints are then not compared."""
    from ._load import load_trace

    if info.ir is None or info.cls is None:
        raise AioError(f"{info.name} has no Python description to compare with")
    ffi, lib = ffi_lib or load_trace(info)
    got = ffi.string(lib.aio_strategy_fingerprint()).decode()
    if ffi_lib is None and got != info.ir.fingerprint:
        raise Unfaithful(
            f"{info.name}: trace build has fingerprint {got}, description {info.ir.fingerprint}"
        )
    hooks = tuple(check_hook(info.cls, info.ir, ffi, lib, h, domain) for h in _ir.HOOKS)
    return Report(info.name, hooks)
