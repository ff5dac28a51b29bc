# The conformance suite a strategy must pass to be used natively:
#
#     pytest --pyargs aiocore.conformance --aio-strategy NAME
#
# Each test runs under every strategy --aio-strategy selects (see plugin.py).
# The cross-process tests start an *unrelated* Python process (subprocess,
# not fork) that attaches by name, as any client of the context would.  A
# strategy that loses a wake-up must fail here rather than hang the run, so
# every blocking aio_poll is bounded by a safety timer, and a poll that only
# the timer ended is reported as a lost wake-up.
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from aiocore._checker import DEFAULT_MODELS

SAFETY_S = 10.0
SCHEDULES = 20_000


def _child(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(p: subprocess.Popen, timeout=60) -> str:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"child did not finish: {err}") from None
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{err}"
    return out


_SCHEDULER = """
    import sys
    from aiocore import AioContext
    name, bh, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with AioContext.attach(name) as ctx:
        sched = ctx.bh_schedule
        for _ in range(n):
            sched(bh)
"""

_WAKER = """
    import sys, time
    from aiocore import AioContext
    name, bh, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with AioContext.attach(name) as ctx:
        for _ in range(rounds):
            # Schedule only once the owner sleeps with an infinite timeout, so
            # the wake-up has to come through the strategy's notify.
            deadline = time.monotonic() + 10
            while ctx.snapshot().position != "wait_infinite":
                if time.monotonic() > deadline:
                    sys.exit("owner never went to sleep")
                time.sleep(0.001)
            ctx.bh_schedule(bh)
            while ctx.bh_stats(bh)["scheduled"]:
                time.sleep(0.001)
"""


def _safety_timer(ctx):
    fired = []
    t = ctx.timer_new(lambda: fired.append(True))
    return t, fired


def test_describe_sanity(aio_strategy_info):
    """The description traces to a stable IR with a notify hook, commented fences, C and Promela."""
    from aiocore._compiler._codegen import generate_c
    from aiocore._compiler._ir import HOOKS, Fence, MbSet, walk
    from aiocore._compiler._promela import generate_promela
    from aiocore._compiler._strategy import describe

    info = aio_strategy_info
    if info.ir is None:
        pytest.skip(f"{info.name} is hand-written C: there is no description to trace")
    again = describe(info.cls)
    assert again.fingerprint == info.ir.fingerprint
    doc = json.loads(json.dumps(info.ir.to_json()))
    assert set(doc["hooks"]) == set(HOOKS)
    assert info.ir.hooks["notify"], "notify does nothing"
    for h, body in info.ir.hooks.items():
        for s in walk(body):
            if isinstance(s, (Fence, MbSet)):
                assert s.pairs.strip(), f"{h}: a fence without a pairing note"
    c = generate_c(info.ir)
    assert info.ir.fingerprint in c and "strategy_notify(AioContext *ctx)" in c
    assert "never lost_wakeup" in generate_promela(info.ir)
    from aiocore._checker import _matrix

    for sk in _matrix.judged_skeletons(info):
        declared = _matrix.declared_verdicts(info, sk)
        for model in ("sc", "tso", "arm"):
            assert declared.get(model) in ("pass", "lost-wakeup", "busy-loop", "lost-work"), (
                f"{info.name} declares no verdict for {model} on the {sk} skeleton")


def test_trace_faithful(aio_strategy_info):
    """The compiled C logs the same primitives as the Python description on every path."""
    from aiocore._compiler import _load, _plugins
    from aiocore._compiler._trace import check_strategy

    if aio_strategy_info.ir is None:
        # The hand-written reference must do what 21a03d17's description says.
        assert aio_strategy_info.name == _plugins.HANDWRITTEN
        report = check_strategy(
            _plugins.get("unconditional"), ffi_lib=_load.load_trace(aio_strategy_info)
        )
    else:
        report = check_strategy(aio_strategy_info)
    assert report.uncovered == {}, f"branch arms never reached: {report.uncovered}"
    assert report.scripts >= len(report.hooks)


def test_compiled_module_carries_fingerprint(aio_context, aio_strategy_info):
    """A context under the strategy records the description's fingerprint in its header."""
    if aio_strategy_info.ir is not None:
        assert aio_context.fingerprint == aio_strategy_info.ir.fingerprint
    assert aio_context.strategy == aio_strategy_info.name


def _counted(info):
    """Whether the core's per-BH counts are exact for the strategy (RMWs on the BH's
    word, the core's claim and cancel): else only dispatches are counted."""
    return info.ir is None or info.ir.bh_counted


def test_bh_exactly_once_across_processes(aio_context, aio_strategy_info):
    """Two unrelated processes schedule one BH; each 0->1 schedule runs exactly once."""
    ctx = aio_context
    runs = []
    bh = ctx.bh_new(lambda: runs.append(1))
    timer, fired = _safety_timer(ctx)
    kids = [_child(_SCHEDULER, ctx.name, bh, SCHEDULES) for _ in range(2)]
    deadline = time.monotonic() + 120
    while any(k.poll() is None for k in kids):
        assert time.monotonic() < deadline, "schedulers did not finish"
        ctx.timer_mod_ns(timer, ctx.clock_ns() + 50_000_000)
        ctx.aio_poll(blocking=True)
    for k in kids:
        _finish(k)
    while ctx.aio_poll(blocking=False):
        pass
    st = ctx.bh_stats(bh)
    c = ctx.counters()
    assert 1 <= len(runs) == st["dispatches"] <= 2 * SCHEDULES, (len(runs), st)
    assert c.bh_pending == 0
    if _counted(aio_strategy_info):
        assert st["dispatches"] == st["schedules"] and c.lost_work == 0, st


def test_blocking_poll_wakes_on_cross_process_schedule(aio_context):
    """A blocking aio_poll sleeping with an infinite timeout wakes when another process schedules."""
    ctx = aio_context
    runs = []
    bh = ctx.bh_new(lambda: runs.append(time.monotonic()))
    rounds = 5
    kid = _child(_WAKER, ctx.name, bh, rounds)
    try:
        for i in range(rounds):
            # No timer may be armed (the wait must be infinite); a lost
            # wake-up is ended by rescue(), a channel outside the protocol,
            # from a watchdog thread, and counted.
            done = threading.Event()
            th = threading.Thread(target=lambda: done.wait(SAFETY_S) or ctx.rescue(), daemon=True)
            t0 = time.monotonic()
            th.start()
            while len(runs) <= i and time.monotonic() - t0 < SAFETY_S:
                ctx.aio_poll(blocking=True)
            done.set()
            th.join()
            assert len(runs) > i, f"round {i}: the BH never ran"
    finally:
        _finish(kid)
    c = ctx.counters()
    assert c.rescues == 0, f"{c.rescues} lost wake-up(s): the poller slept {SAFETY_S} s with the BH pending"
    assert c.wakeups >= rounds


def test_gsource_path_dispatches_cross_process_schedules(aio_context, aio_strategy_info):
    """prepare/wait/check/dispatch, as glib drives it, runs BHs scheduled by another process."""
    ctx = aio_context
    runs = []
    bh = ctx.bh_new(lambda: runs.append(1))
    timer, fired = _safety_timer(ctx)
    kid = _child(_SCHEDULER, ctx.name, bh, 2000)
    deadline = time.monotonic() + 60
    while kid.poll() is None:
        assert time.monotonic() < deadline
        ctx.timer_mod_ns(timer, ctx.clock_ns() + 50_000_000)
        ready, timeout = ctx.prepare()
        ctx.wait(0 if ready else timeout)
        ctx.check()
        ctx.dispatch()
    _finish(kid)
    for _ in range(3):
        ctx.prepare()
        ctx.wait(0)
        ctx.check()
        ctx.dispatch()
    st = ctx.bh_stats(bh)
    assert len(runs) == st["dispatches"] >= 1
    if _counted(aio_strategy_info):
        assert st["dispatches"] == st["schedules"] and ctx.counters().lost_work == 0, st


def test_idle_poll_does_not_spin(aio_context):
    """With nothing scheduled, a blocking poll sleeps until its timer: no busy loop."""
    ctx = aio_context
    bh = ctx.bh_new(lambda: None)
    ctx.bh_schedule(bh)  # leave the notifier in whatever state a schedule leaves it
    ctx.aio_poll(blocking=True)
    while ctx.aio_poll(blocking=False):
        pass
    timer, fired = _safety_timer(ctx)
    before = ctx.counters().polls
    t0 = time.monotonic()
    ctx.timer_mod_ns(timer, ctx.clock_ns() + 100_000_000)
    while not fired and time.monotonic() - t0 < 5:
        ctx.aio_poll(blocking=True)
    polls = ctx.counters().polls - before
    assert fired
    assert polls <= 5, f"{polls} polls in 100 ms with nothing to do: the notifier stays readable"


def _counterexample(row) -> str:
    res = row.result
    if res is None or not res.trace:
        return ""
    return (f"\nshortest counterexample ({row.info.name}, skeleton {row.skeleton}, {row.model}, "
            f"config {row.config}; {res.notifiers} notifier(s) x {res.schedules} schedule(s)):\n"
            + res.format_trace())


@pytest.mark.parametrize("model", DEFAULT_MODELS)  # arm: judged per profile too
def test_checker_confirms_the_declared_verdict(aio_strategy_info, aio_judged_skeleton, model):
    """The model checker, at its default bounds, finds exactly the verdict the strategy declares
    for each skeleton, model and config (worst over its configs); a search cut short is never
    taken for a pass; a mismatch comes with the checker's counterexample."""
    import attrs

    from aiocore._checker import _matrix

    info = aio_strategy_info
    sk = aio_judged_skeleton
    opts = attrs.evolve(_matrix.DEFAULT_OPTIONS, skeleton=sk)
    rows = _matrix.plan([info], (model,), opts=opts)
    assert rows, f"{info.name}: no config to check on the {sk} skeleton"
    _matrix.run(rows, jobs=1, opts=opts)
    rows = _matrix.with_profiles(rows)  # an arm run is judged per profile too
    summaries = _matrix.assess(rows, opts)
    for r in rows:
        assert r.status != "error", f"{info.name} {sk} {model} {r.config}: {r.error}"
        assert r.status != "UNKNOWN", r.unknown_text()
        assert r.status != "MISMATCH", (
            f"{info.name} on the {sk} skeleton, {r.model}, config {r.config}: the checker finds "
            f"{r.result.verdict}, expected {r.expected}" + _counterexample(r))
    for s in summaries:
        if s.status != "MISMATCH":
            continue
        mine = [r for r in rows if r.model == s.model]
        worst = next((r for r in mine if r.result is not None and r.result.verdict == s.verdict), None)
        why = (_counterexample(worst) if worst is not None and s.verdict != "pass" else
               f"\nno interleaving within the bounds fails ({', '.join(s.configs)})")
        pytest.fail(f"{info.name} on the {sk} skeleton, {s.model}: the checker finds {s.verdict} (worst "
                    f"over {','.join(s.configs)}), the strategy declares {s.expected}" + why,
                    pytrace=False)


def test_native_campaign_matches_the_tso_expectation(aio_strategy_info, aio_skeleton, aio_stress_budget):
    """A short native campaign per skeleton (aiocore stress's, guided by the checker): a strategy
    declared to pass on tso (this machine) shows no finding; one declared to fail is caught in
    its budget; where the checker contradicts the declaration, the counterexample is given."""
    import json as _json

    try:
        import aiocore_workloads as W
        from aiocore_workloads import _campaign
    except ImportError:
        pytest.skip("aiocore_workloads (the stress workloads) is not installed")
    info = aio_strategy_info
    if info.ir is None:
        pytest.skip(f"{info.name} is handwritten C: the campaign's checker guidance needs its IR")
    sk = aio_skeleton
    traffics = [i.workload for i in W.registry() if i.status == "ok"]
    c = _campaign.run(info.name, traffics, aio_stress_budget, seed=int(time.time() * 1000), skeleton=sk)
    assert not c.counts()["error"], [e for r in c.runs for e in r.errors]
    predicted = [p for p in c.predictions if p.fails]
    told = "; ".join(p.label() for p in predicted) or "nothing"
    trace = next((f"\nthe checker's counterexample ({p.config}, tso):\n{p.trace}" for p in predicted
                  if p.trace), "")
    where = f"on the {sk} skeleton"
    if c.expected == "pass":
        first = next((f for r in c.runs for f in r.findings), None)
        assert c.verdict == "pass", (
            f"{info.name} is declared to pass on tso {where} but shows {c.verdict} natively after "
            f"{c.seconds:.1f} s on {c.first_arm.where() if c.first_arm else '?'}; the checker "
            f"predicted {told}; snapshot: "
            f"{_json.dumps(first.snapshot if first else None, default=str)[:2000]}{trace}")
    else:
        assert c.expected in c.observed(), (
            f"{info.name} is declared {c.expected} on tso {where} but {c.seconds:.1f} s of native "
            f"stress ({len(c.runs)} slices) did not catch it; the checker predicts {told} (a longer "
            f"--aio-stress-budget?)")
    wrong = c.checker_disagrees()
    assert not wrong, (f"{info.name} is declared {c.expected} on tso {where}, the checker finds "
                       f"{wrong}{trace}")
