"""Internals of the checker: lowering per model, the reductions, memoization, the state space itself."""
import random

import pytest

from aiocore._compiler import _plugins
from aiocore._checker import Bounds, check_ir
from aiocore._checker._window import explorer as Explorer
from aiocore._checker._assemble import build
from aiocore._checker._program import DRAIN, MARK, READ, RESET, RMW, STOP

MODELS = ("sc", "tso", "arm")
#: the models a Program is built for (arm is two runs, one per profile)
BUILT = ("sc", "tso", "arm-llsc", "arm-lse")


def _ops(prog, who="home"):
    p = next(p for p in prog.procs if p.name == who)
    return [ins[0] for ins in p.code]


def test_fences_lowered_per_model():
    """smp_mb disappears under SC, drains under TSO; on ARM smp_wmb is dmb ish (a drain) and smp_rmb dmb ishld."""
    ir = _plugins.get("always-notified").ir  # notify: smp_wmb; atomic_set; smp_mb; ...
    sc, tso, llsc, lse = (build(ir, m, "home", 1, 1) for m in BUILT)
    assert DRAIN not in _ops(sc, "notifier0") and MARK not in _ops(sc, "notifier0")
    assert DRAIN in _ops(tso, "notifier0") and MARK not in _ops(tso, "notifier0")

    def lowered(prog, fence):
        return {ins[0] for p in prog.procs for ins, (_, text) in zip(p.code, p.labels) if text == f"{fence}()"}

    assert lowered(tso, "smp_wmb") == set() and lowered(tso, "smp_mb") == {DRAIN}
    for arm in (llsc, lse):
        assert lowered(arm, "smp_wmb") == {DRAIN} and lowered(arm, "smp_mb") == {DRAIN}
        assert MARK not in _ops(arm, "notifier0")
        assert RESET in _ops(arm) and RESET not in _ops(tso)


def test_leave_choice_is_folded_into_next_operation():
    """A notifier's choice to leave is an extra move of its next RMW, not a step of its own."""
    prog = build(_plugins.get("notified").ir, "sc", "home", 1, 2)
    p = prog.procs[1]
    assert STOP not in [ins[0] for ins in p.code]
    assert p.exits and all(p.code[pc][0] in (RMW, READ, DRAIN) for pc in p.exits)


@pytest.mark.parametrize("name", ["late-clear", "bug2", "always-notified", "selfpipe"])
@pytest.mark.parametrize("model", BUILT)
def test_memoized_moves_equal_direct_computation(name, model):
    """Per-process move memoization gives exactly the successors computed from scratch."""
    ir = _plugins.get(name).ir
    config = "foreign" if ir.foreign_pollers else "home"
    ex = Explorer(build(ir, model, config, 1, 2))
    r = ex.explore()
    rng = random.Random(7)
    states = list(r.parent)
    for s in rng.sample(states, min(1500, len(states))):
        memo = sorted(t for _, t in ex.successors(s))
        direct = sorted(t for _, t in ex.successors(s, verbose=True))
        assert memo == direct


def test_exploration_is_deterministic():
    """Two runs of the same check explore the same number of states and find the same trace."""
    ir = _plugins.get("bug1").ir
    a = check_ir(ir, "arm", "home")
    b = check_ir(ir, "arm", "home")
    assert (a.states, a.verdict, a.trace) == (b.states, b.verdict, b.trace)


def test_tso_keeps_sc_behaviours_and_arm_keeps_tso_behaviours():
    """Weaker models only add behaviours: every SC failure is a TSO failure, every TSO failure an ARM one."""
    order = ("pass", "lost-wakeup", "busy-loop", "lost-work")
    for info in _plugins.registry():
        if info.ir is None:
            continue
        v = [check_ir(info.ir, m, "home", Bounds(notifiers=1, schedules=2), want_trace=False).other for m in MODELS]
        assert set(v[0]) <= set(v[1]) <= set(v[2]), (info.name, v)
        assert all(k in order for k in v[2]), v


def test_interned_states_are_small_tuples():
    """A stored state is a flat tuple of ints (shared part + one id per process)."""
    ex = Explorer(build(_plugins.get("notified").ir, "arm-llsc", "home", 2, 2))
    s = ex.initial()
    assert len(s) == 1 + len(ex.prog.procs) and all(isinstance(x, int) for x in s)


def test_max_states_truncates():
    """A run stopped by max_states says so instead of claiming a verdict it did not establish."""
    r = check_ir(_plugins.get("explicit-mb").ir, "arm", "home", Bounds(max_states=500), want_trace=False)
    assert r.truncated and not r.complete and r.stopped_by == "max-states"
    assert r.verdict == "unknown"


def test_store_buffer_forwarding_and_commit_in_trace():
    """Under TSO a store waits in the buffer and its later visibility is a step of its own."""
    r = check_ir(_plugins.get("no-mb").ir, "tso", "home", Bounds(notifiers=1, schedules=1))
    commits = [s for s in r.trace if s["where"] == "store buffer"]
    assert commits and "becomes visible" in commits[0]["op"]
    assert any("into its store buffer" in t for s in r.trace for t in s.get("then", []))
