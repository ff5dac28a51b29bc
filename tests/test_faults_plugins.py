"""Faults: fuzzed strategy descriptions (Hypothesis) never crash the compiler, the checker or a native run."""
from __future__ import annotations

import os
import uuid

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aiocore  # noqa: E402
from aiocore._context import _aio as _context
from aiocore._compiler import _ir  # noqa: E402
from aiocore._errors import StrategyError  # noqa: E402
from aiocore._compiler._strategy import Strategy, StrategyInfo, describe  # noqa: E402

#: Examples per test (AIOCORE_FUZZ_EXAMPLES scales both).
SCALE = float(os.environ.get("AIOCORE_FUZZ_EXAMPLES", "1"))

FIELDS = ("notify_me", "notified", "extra")  # + bh_scheduled in schedule
HOOKS = ("notify", "accept", "poll_begin", "poll_end", "prepare", "check", "on_event", "schedule")

# --- a tiny language of hook bodies, interpreted over the builder ``s`` -----------

values = st.one_of(
    st.integers(0, 3),
    st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, -1, 2**31 - 1]),
    st.just("last"),  # the last value read (or 0 if none)
)


def stmt(depth):
    leaf = st.one_of(
        st.tuples(st.just("read"), st.sampled_from(_ir.READ_KINDS), st.sampled_from(FIELDS)),
        st.tuples(st.just("write"), st.sampled_from(_ir.WRITE_KINDS), st.sampled_from(FIELDS), values),
        st.tuples(st.just("rmw"), st.sampled_from(_ir.RMW_KINDS), st.sampled_from(FIELDS), values),
        st.tuples(st.just("fence"), st.sampled_from(_ir.FENCE_KINDS)),
        st.tuples(st.just("mbset"), st.sampled_from(FIELDS), values),
        st.tuples(st.just("event_set")),
        st.tuples(st.just("etac")),
        st.tuples(st.just("call"), st.sampled_from(HOOKS)),
    )
    if depth == 0:
        return leaf
    body = st.lists(stmt(depth - 1), max_size=3)
    return st.one_of(leaf, st.tuples(st.just("if"), st.sampled_from(["last", "last==0", "last&2"]), body, body))


# Malformed pieces: each must be rejected with a StrategyError.
MALFORMED = st.sampled_from([
    ("unknown-prim",), ("fence-no-pairs",), ("field-as-value",), ("too-big",), ("bh-plain-write",),
    ("raise",), ("return",), ("int-of-read",), ("bad-field-arg",), ("loop-on-read",),
])


def _run(body, s, hook):
    last = 0
    for x in body:
        op = x[0]
        v = (lambda a: last if a == "last" else a)
        f = (lambda name: getattr(s, name))
        if op == "read":
            last = getattr(s, x[1])(f(x[2]))
        elif op == "write":
            getattr(s, x[1])(f(x[2]), v(x[3]))
        elif op == "rmw":
            if x[1] == "atomic_cmpxchg":
                r = s.atomic_cmpxchg(f(x[2]), v(x[3]), 1)
            else:
                r = getattr(s, x[1])(f(x[2]), v(x[3]))
            last = r if r is not None else last
        elif op == "fence":
            getattr(s, x[1])(pairs="fuzz")
        elif op == "mbset":
            s.atomic_mb_set(f(x[1]), v(x[2]))
        elif op == "event_set":
            s.event_set()
        elif op == "etac":
            last = s.event_test_and_clear()
        elif op == "call":
            if x[1] != hook:
                getattr(s, x[1])()
        elif op == "if":
            c = last if x[1] == "last" else (last == 0 if x[1] == "last==0" else last & 2)
            if isinstance(c, int):
                c = bool(c)
            _run(x[2] if c else x[3], s, hook)
        elif op == "unknown-prim":
            s.atomic_inc(s.notify_me)
        elif op == "fence-no-pairs":
            s.smp_mb()
        elif op == "field-as-value":
            s.atomic_set(s.notify_me, s.notified)
        elif op == "too-big":
            s.atomic_set(s.notify_me, 2**40)
        elif op == "bh-plain-write":
            s.atomic_set(s.bh_scheduled, 1)
        elif op == "raise":
            raise KeyError("a bug in the plugin")
        elif op == "return":
            return 1
        elif op == "int-of-read":
            int(s.atomic_read(s.notify_me))
        elif op == "bad-field-arg":
            s.atomic_read("notify_me")
        elif op == "loop-on-read":
            while s.atomic_read(s.notify_me):
                pass


def make_strategy(hooks: dict, *, foreign=False, accept_nb=False, name=None):
    ns = {
        "name": name or "fz-" + uuid.uuid4().hex[:10],
        "origin": "hypothesis",
        "shared": ("extra",),
        "foreign_pollers": foreign,
        "accept_nonblocking": accept_nb,
        "__doc__": "A fuzzed strategy.",
    }
    for h, body in hooks.items():
        ns[h] = (lambda body, h: lambda s: _run(body, s, h))(body, h)
    return type("Fuzzed", (Strategy,), ns)


hook_maps = st.dictionaries(st.sampled_from(HOOKS), st.lists(stmt(2), max_size=5), max_size=6).map(
    lambda d: {"notify": d.pop("notify", [("event_set",)]), **d}
)


def _verdict(ir, model="sc"):
    """The checker's verdict (home config, tight bounds) -- or a clear ModelError."""
    try:
        from aiocore import _checker
    except ImportError:
        return None
    bounds = _checker.Bounds(notifiers=1, schedules=1, foreign_notifiers=1, foreign_schedules=1,
                             max_states=20_000)
    try:
        r = _checker.check_ir(ir, model, "home", bounds, want_trace=True)
    except _checker.ModelError as e:
        assert str(e)
        return "model-error"
    assert r.verdict in _checker.VERDICT_ORDER or (r.verdict == "unknown" and r.truncated), r.verdict
    if r.verdict not in ("pass", "unknown"):
        assert r.trace, "a failing verdict comes with a trace"
    return r.verdict


@settings(max_examples=int(200 * SCALE), deadline=None, suppress_health_check=list(HealthCheck))
@given(hooks=hook_maps, foreign=st.booleans(), accept_nb=st.booleans(), bad=st.none() | MALFORMED,
       where=st.sampled_from(HOOKS), model=st.sampled_from(["sc", "tso", "arm"]))
def test_fuzzed_descriptions_compile_to_c_and_a_verdict_or_are_rejected(hooks, foreign, accept_nb, bad, where,
                                                                       model):
    """Random (and malformed) descriptions give IR, C, Promela and a checker verdict, or a StrategyError."""
    from aiocore._compiler._codegen import generate_c
    from aiocore._compiler._promela import generate_promela

    if bad is not None:
        hooks = {**hooks, where: list(hooks.get(where, [])) + [bad]}
    cls = make_strategy(hooks, foreign=foreign, accept_nb=accept_nb)
    try:
        ir = describe(cls)
    except StrategyError as e:
        assert str(e).strip(), e
        hypothesis.event(f"rejected: {str(e).split(':')[0][:40]}")
        return
    c = generate_c(ir, origin="hypothesis", doc="fuzz")
    assert "strategy_notify" in c
    try:
        generate_promela(ir, origin="hypothesis", doc="fuzz")
    except StrategyError as e:
        assert str(e)
    hypothesis.event(f"verdict: {_verdict(ir, model)}")


@settings(max_examples=int(8 * SCALE), deadline=None, suppress_health_check=list(HealthCheck))
@given(hooks=hook_maps, foreign=st.booleans(), accept_nb=st.booleans())
def test_fuzzed_descriptions_run_natively(monkeypatch, hooks, foreign, accept_nb):
    """A fuzzed description that describes compiles (cached by fingerprint) and survives a short native run."""
    from aiocore._compiler._build import load_cached
    from aiocore._compiler._codegen import generate_c

    cls = make_strategy(hooks, foreign=foreign, accept_nb=accept_nb, name="fuzzed")
    try:
        ir = describe(cls)
    except StrategyError:
        return
    # A description that describes must compile: a C error here is a codegen bug.
    ffi, lib = load_cached(f"fuzzed-{ir.fingerprint}", generate_c(ir, origin="hypothesis", doc="fuzz"))
    info = StrategyInfo(name="fuzzed", origin="hypothesis", source="fuzz[fuzzed]", status="ok",
                        expected={}, cls=cls, ir=ir, foreign_pollers=ir.foreign_pollers)
    monkeypatch.setattr(_context, "load_strategy", lambda name: (info, ffi, lib))
    with aiocore.AioContext.create("fuzzed", n_bh=4, n_timers=4) as ctx:
        bh = ctx.bh_new(lambda: None)
        t = ctx.timer_new(lambda: None)
        for i in range(20):
            ctx.bh_schedule(bh)
            ctx.notify()
            ctx.timer_mod_ns(t, ctx.clock_ns() + 2_000_000)   # bounds every wait
            ctx.aio_poll(i % 2 == 0)
            if i % 5 == 0:
                # The strategy may never set the event: only the timer ends a wait.
                ctx.timer_mod_ns(t, ctx.clock_ns() + 2_000_000)
                ctx.gsource_iteration()
        c = ctx.counters()
        # Whatever the strategy does, the core's accounting holds.
        assert c.bh_schedules == c.bh_dispatches + c.bh_cancels + c.bh_pending, c
    monkeypatch.undo()
