# Concrete runs of a strategy's Python description.
#
# The trace build of the generated C (aiocore/_compiler/_trace.py) logs every primitive
# the compiled hooks execute, with the values their reads returned.  To check
# that the C does what the Python says, the same hook is run here with those
# values scripted: each emitted statement is interpreted as it comes (reads
# return the scripted value, branches are decided on the values so far), and
# the resulting log is compared entry by entry with the C's.
from __future__ import annotations

from typing import Callable

from . import _ir
from .._errors import StrategyError
from ._strategy import _MACHINERY_CODE, Sym, _Builder, _expr, _PathTracer


class _ConcreteTracer(_PathTracer):
    """Runs a hook with scripted read results, logging every primitive."""

    def __init__(self, reads: Callable[[str, str], int], retry_cap=None):
        super().__init__(())
        self.reads = reads
        self.env = {}
        self.retry_cap = retry_cap

    def value(self, name):
        return Sym(self, _ir.Tmp(name))

    def decide(self, e):
        return bool(_ir.eval_expr(e, self.env))

    def retry(self, limit):
        # Concretely a retry loop loops (at most retry_cap times: the trace
        # build's AIO_RETRY clamps every loop the same way).
        n = limit if self.retry_cap is None else min(limit, self.retry_cap)
        for _ in range(n):
            yield None


def run_concrete(cls, hook, reads: Callable[[str, str], int], retry_cap=None) -> list[tuple]:
    """Run one hook of the Python description with scripted read values.

    ``reads(op, field)`` supplies the value every reading primitive returns
    (for event_test_and_clear, field is "event").  Returns the log as tuples
    (op, field, value_written, value_read), calls to other hooks followed
    into, in the format the C trace build writes.
    """
    return run_concrete_ret(cls, hook, reads, retry_cap)[0]


def run_concrete_ret(cls, hook, reads: Callable[[str, str], int], retry_cap=None) -> tuple[list[tuple], int]:
    """run_concrete, also giving the hook's return value (a value hook's,
    e.g. timeout_zero's or claim's; 0 for the other hooks), masked to 32
    bits.  ``retry_cap`` bounds every retry loop (None: its own limit)."""
    log = []

    def execute(h):
        # Re-run the hook, interpreting emitted statements as they come.
        fn = getattr(cls, h, None)
        if fn is None:
            return 0
        t = _ConcreteTracer(reads, retry_cap)
        b = _Builder(cls, t, h)

        def emit(s):
            _exec_stmt(s, t.env, log, reads, execute)

        t.emit = emit
        ret = fn(b)
        return _ir.eval_expr(_expr(ret), t.env) if ret is not None else 0

    ret = execute(hook)
    return log, ret & _ir.MASK32


def _exec_stmt(s, env, log, reads, execute):
    ev = lambda e: _ir.eval_expr(e, env)  # noqa: E731
    if isinstance(s, _ir.Read):
        v = reads(s.kind, s.field) & _ir.MASK32
        env[s.dst] = v
        log.append((s.kind, s.field, None, v))
    elif isinstance(s, _ir.Write):
        log.append((s.kind, s.field, ev(s.value), None))
    elif isinstance(s, _ir.Rmw):
        v = reads(s.kind, s.field) & _ir.MASK32
        if s.dst is not None:
            env[s.dst] = v
        operand = ev(s.value)
        if s.kind == "atomic_cmpxchg":
            log.append((s.kind, s.field, operand, v, ev(s.expected)))
        else:
            log.append((s.kind, s.field, operand, v))
    elif isinstance(s, _ir.Fence):
        log.append((s.kind, None, None, None))
    elif isinstance(s, _ir.MbSet):
        log.append(("smp_wmb", None, None, None))
        log.append(("atomic_set", s.field, ev(s.value), None))
        log.append(("smp_mb", None, None, None))
    elif isinstance(s, _ir.EventSet):
        log.append(("event_set", None, None, None))
    elif isinstance(s, _ir.EventTestAndClear):
        v = 1 if reads("event_test_and_clear", "event") else 0
        if s.dst is not None:
            env[s.dst] = v
        log.append(("event_test_and_clear", "event", None, v))
    elif isinstance(s, _ir.Call):
        execute(s.hook)
    else:  # pragma: no cover - branches are decided, not emitted, concretely
        raise StrategyError(f"cannot execute {s!r}")


# The concrete tracer's frames are machinery too (see _PathTracer.new_tmp).
for _v in vars(_ConcreteTracer).values():
    if callable(_v) and hasattr(_v, "__code__"):
        _MACHINERY_CODE.add(_v.__code__)
del _v
