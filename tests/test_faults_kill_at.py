"""Faults: a notifier stopped at each primitive of its hook and SIGKILLed there, matched with the checker.

For every built-in strategy, every stopping point k of bh_schedule (and of
aio_notify), with and without recovery: the owner sleeps in an infinite
blocking aio_poll, a notifier of the breakpoint build stops just before its
k-th primitive (aio_breakpoint.h) and is killed there, and the owner's state
is read from the segment (aiocore/_faults/_breakpoint.py: lost-wakeup, busy-loop or
fine).  The checker's ``faults="crash"`` run of the same configuration (one
notifier scheduling once, home, tso: this machine) must agree:

* every failure the crash adds to the crash-free run (crash verdicts minus
  the crash-free ones) is reproduced natively at some k, and
* no native failure is one the checker's crash run does not find.

On the 2015 skeleton the two sets are equal for every built-in.
"""
from __future__ import annotations

import pytest

from aiocore._faults import _breakpoint as B

try:
    from aiocore._compiler._plugins import registry

    BUILTINS = sorted(i.name for i in registry()
                      if i.status == "ok" and i.ir is not None and i.source.startswith("aiocore["))
    POLLING = sorted(i.name for i in registry()
                     if i.name in BUILTINS and "polling" in i.skeletons)
except Exception:  # pragma: no cover - a broken registry fails test_plugins instead
    BUILTINS, POLLING = [], []

def _native(strategy, op, recovery, skeleton):
    # Segment names come from AIOCORE_NAME_PREFIX (per xdist worker, conftest).
    points = B.kill_at_each_point(strategy, op, recovery=recovery, skeleton=skeleton)
    assert points, f"{strategy}: {op} ran no primitive"
    unsettled = [p for p in points if p.state.verdict not in B.VERDICTS]
    assert not unsettled, f"{strategy}: the owner never settled: {unsettled}"
    return points, frozenset(p.state.verdict for p in points if p.state.verdict != "fine")


def _table(points):
    return ", ".join(f"k={p.k} {p.prim}: {p.state.verdict}" for p in points)


@pytest.mark.parametrize("recovery", [False, True], ids=["plain", "recovery"])
@pytest.mark.parametrize("strategy", BUILTINS)
def test_kill_at_each_point_of_bh_schedule_matches_the_checker(strategy, recovery, no_fd_leak):
    """Killing a notifier at each primitive of bh_schedule leaves the owner exactly as the checker's crash verdicts say (2015 skeleton)."""
    points, native = _native(strategy, "schedule", recovery, "2015")
    crash, crash_free = B.checker_crash_verdicts(strategy, recovery=recovery, skeleton="2015")
    added = crash - crash_free
    assert added <= native <= crash, (
        f"{strategy} recovery={recovery}: native {sorted(native)}, checker crash {sorted(crash)}, "
        f"crash-free {sorted(crash_free)}; {_table(points)}")
    if recovery:
        assert all(p.state.recoveries == 1 for p in points), _table(points)
    else:
        assert all(p.state.recoveries == 0 for p in points), _table(points)


@pytest.mark.parametrize("recovery", [False, True], ids=["plain", "recovery"])
@pytest.mark.parametrize("strategy", POLLING)
def test_kill_at_each_point_on_the_polling_skeleton_matches_the_checker(strategy, recovery):
    """On the polling skeleton too, the crash's own failures are reproduced natively and none the checker lacks."""
    points, native = _native(strategy, "schedule", recovery, "polling")
    crash, crash_free = B.checker_crash_verdicts(strategy, recovery=recovery, skeleton="polling")
    assert crash - crash_free <= native <= crash, (
        f"{strategy} recovery={recovery}: native {sorted(native)}, checker crash {sorted(crash)}, "
        f"crash-free {sorted(crash_free)}; {_table(points)}")


@pytest.mark.parametrize("recovery", [False, True], ids=["plain", "recovery"])
@pytest.mark.parametrize("strategy", BUILTINS)
def test_kill_at_each_point_of_aio_notify(strategy, recovery):
    """A notifier killed inside a bare aio_notify never loses work; without recovery it busy-loops the owner only where bh_schedule's kill does, with recovery never."""
    points, native = _native(strategy, "notify", recovery, "2015")
    assert "lost-wakeup" not in native, _table(points)   # nothing was scheduled
    if recovery:
        assert not native, _table(points)
    else:
        crash, _ = B.checker_crash_verdicts(strategy, recovery=False, skeleton="2015")
        assert native <= crash, (sorted(native), sorted(crash), _table(points))
