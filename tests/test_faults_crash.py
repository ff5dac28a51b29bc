"""Faults: notifiers killed with -9 at random instants of bh_schedule / aio_notify."""
from __future__ import annotations

import os
import time

import pytest

import aiocore

#: Notifier processes killed per strategy (AIOCORE_KILLS for more).
KILLS = int(os.environ.get("AIOCORE_KILLS", "120"))
N_BH = 8

# Attaches once, then forks notifiers that hammer bh_schedule/notify in a
# loop and SIGKILLs each at a random instant (0-8 ms after it starts).
SPAWNER = """
import os, random, sys, aiocore
from aiocore._faults._breakpoint import fork_hammering_notifier, kill_notifier
name, kills, n_bh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = aiocore.AioContext.attach(name)
rnd = random.Random(os.getpid())
print("ready", flush=True)
killed = 0
for i in range(kills):
    pid = fork_hammering_notifier(ctx, n_bh)
    kill_notifier(pid, delay_s=rnd.random() * 0.008)
    killed += 1
print("killed", killed, flush=True)
"""

# A healthy notifier after the massacre: every schedule it makes must run.
HEALTHY = """
import sys, time, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
n_bh = int(sys.argv[2])
for i in range(3000):
    ctx.bh_schedule(i % n_bh)
    if i % 100 == 0:
        time.sleep(0.001)
print("done", flush=True)
"""

LATE = """
import sys, time, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
time.sleep(0.3)
ctx.bh_schedule(0)
print("scheduled", flush=True)
"""


def _poll_while(ctx, running, failsafe_ns=20_000_000, limit=120.0):
    """Blocking aio_poll (a failsafe timer bounds each wait) while running()."""
    t = ctx.timer_new(lambda: None)
    end = time.monotonic() + limit
    try:
        while running():
            assert time.monotonic() < end, f"owner loop did not finish; {ctx.counters()}"
            ctx.timer_mod_ns(t, ctx.clock_ns() + failsafe_ns)
            ctx.aio_poll(True)
    finally:
        ctx.timer_free(t)


def _drain(ctx):
    for _ in range(1000):
        if not ctx.counters().bh_pending:
            return
        ctx.aio_poll(False)
    raise AssertionError(f"bottom halves stay pending: {ctx.counters()}")


def test_notifiers_killed_at_random_instants_never_hang_or_corrupt_the_owner(procs, passing_strategy):
    """Many notifiers killed mid-schedule: the owner keeps running, every counted schedule runs once, and the protocol state recovers."""
    with aiocore.AioContext.create(passing_strategy, n_bh=N_BH) as ctx:
        runs = [0] * N_BH
        for i in range(N_BH):
            assert ctx.bh_new(lambda i=i: runs.__setitem__(i, runs[i] + 1)) == i

        # 1. The massacre, with the owner polling throughout.
        sp = procs.start(SPAWNER, ctx.name, KILLS, N_BH)
        assert sp.stdout.readline().strip() == "ready", sp.stderr.read()
        _poll_while(ctx, lambda: sp.poll() is None)
        out = procs.finish(sp)
        assert f"killed {KILLS}" in out

        # 2. The run continues: a healthy notifier's work is all done.
        hp = procs.start(HEALTHY, ctx.name, N_BH)
        _poll_while(ctx, lambda: hp.poll() is None)
        assert "done" in procs.finish(hp)
        _drain(ctx)

        # 3. Accounting.  A notifier killed between its xchg of bh->scheduled
        # and the count after it leaves a 0->1 schedule that is dispatched but
        # was never counted: at most one per kill, never the other way round
        # (a counted schedule that is never dispatched would be lost work).
        c = ctx.counters()
        assert c.bh_pending == 0
        uncounted = c.bh_dispatches + c.bh_cancels - c.bh_schedules
        assert 0 <= uncounted <= KILLS, c
        assert sum(runs) == c.bh_dispatches, (runs, c)
        for i in range(N_BH):
            st = ctx.bh_stats(i)
            assert 0 <= st["dispatches"] + st["cancels"] - st["schedules"] <= KILLS, (i, st)
            assert st["scheduled"] == 0

        # 4. The protocol state recovered: with nothing pending, a blocking
        # poll sleeps until its timer (no busy loop) ...
        t = ctx.timer_new(lambda: None)
        ctx.aio_poll(False)
        ctx.aio_poll(False)
        t0 = time.monotonic()
        ctx.timer_mod_ns(t, ctx.clock_ns() + 150_000_000)
        while ctx.aio_poll(True) is False:
            pass
        slept = time.monotonic() - t0
        assert slept >= 0.12, f"blocking poll returned after {slept:.3f}s with nothing to do: {ctx.snapshot()}"
        snap = ctx.snapshot()
        assert snap.notify_me == 0 and not snap.notifier_readable, snap
        # ... and a schedule from another process wakes an infinite wait.
        lp = procs.start(LATE, ctx.name)
        t0 = time.monotonic()
        ctx.timer_mod_ns(t, ctx.clock_ns() + 10_000_000_000)   # failsafe only
        before = runs[0]
        while runs[0] == before:
            ctx.aio_poll(True)
        woke = time.monotonic() - t0
        assert woke < 5, f"the owner slept {woke:.1f}s through a cross-process schedule"
        assert "scheduled" in procs.finish(lp)
        ctx.timer_free(t)


# --- recovery (AioContext.create(..., recovery=True), aio_recovery.h) -------------------------------

from aiocore._faults import _breakpoint as B  # noqa: E402


def _stop_after_event_set(strategy, recovery, *, gsource=False):
    """The owner asleep; a notifier of the breakpoint build stops right after
    event_notifier_set (before notified = 1) and is SIGKILLed there."""
    with aiocore.AioContext.create(strategy, n_bh=2, recovery=recovery) as ctx:
        ran = []
        ctx.bh_new(lambda: ran.append(1))
        p = B._notifier(ctx.name)
        owner = B.GSourceLoop(ctx) if gsource else B.OwnerLoop(ctx)
        try:
            B.wait_asleep(ctx)
            p.stdin.write("count schedule\n")
            p.stdin.flush()
            prims = p.stdout.readline().split()[1:]
            while ran == [] or ctx.counters().bh_pending:
                time.sleep(0.001)
            B.wait_asleep(ctx)
            k = prims.index("event_set") + 2   # stop before the primitive after event_set
            before = ctx.counters().recoveries
            p.stdin.write(f"stop {k} schedule\n")
            p.stdin.flush()
            B.wait_stopped(p.pid)
            B.kill_stopped(p)
            st = B.classify_owner(ctx, recoveries_before=before if recovery else None)
            return st, ctx.counters(), ran, prims[k - 1]
        finally:
            owner.stop()
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)


@pytest.mark.parametrize("strategy", ["notified", "notified-blocking", "explicit-mb"])
def test_notifier_killed_between_event_set_and_notified_busy_loops_the_owner_without_recovery(strategy, no_fd_leak):
    """The notified family: killed between event_set and notified = 1, the owner spins with the notifier readable and nothing pending."""
    st, c, ran, prim = _stop_after_event_set(strategy, False)
    assert prim in ("smp_wmb", "atomic_set", "store_release"), prim
    assert st.verdict == "busy-loop", st
    assert st.readable and st.pending == 0 and st.polls_per_window > 20, st
    assert c.recoveries == 0


@pytest.mark.parametrize("strategy", ["notified", "notified-blocking", "explicit-mb"])
def test_recovery_clears_the_notifier_a_dead_notifier_left_readable(strategy, no_fd_leak):
    """With recovery the same kill costs one recovery: the notifier is cleared and the owner sleeps again, nothing lost."""
    st, c, ran, _ = _stop_after_event_set(strategy, True)
    assert st.verdict == "fine", st
    assert not st.readable and st.position == "wait_infinite" and st.polls_per_window == 0, st
    assert c.recoveries == 1, c
    assert len(ran) == 2 and c.bh_pending == 0, (ran, c)   # the dry run's BH and the killed one's


def test_recovery_on_the_gsource_path(no_fd_leak):
    """The GSource path (prepare / wait / check / dispatch) recovers from the same kill."""
    st, c, ran, _ = _stop_after_event_set("notified", True, gsource=True)
    assert st.verdict == "fine", st
    assert c.recoveries == 1 and c.gsource_iterations > 0, c


def test_recovery_is_recorded_in_the_header(no_fd_leak):
    """create(recovery=True) is in the header (info(), `aiocore info --json`); the default is off; a non-bool is refused."""
    import json
    import subprocess
    import sys

    with aiocore.AioContext.create("notified", recovery=True) as ctx:
        assert ctx.info().recovery is True
        out = subprocess.run([sys.executable, "-m", "aiocore._cli", "info", ctx.name, "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        d = json.loads(out.stdout)
        assert d["header"]["recovery"] is True and d["counters"]["recoveries"] == 0, d
    with aiocore.AioContext.create("notified") as ctx:
        assert ctx.info().recovery is False
    with pytest.raises(ValueError, match="recovery must be a bool"):
        aiocore.AioContext.create("notified", recovery="yes")


IDLE_CHILD = """
import sys, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
print("attached", flush=True)
if sys.argv[2] == "close":
    ctx.close()
    print("closed", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("how", ["close", "kill"])
def test_a_clean_close_is_no_death_a_kill_is_one(no_fd_leak, how):
    """An attached process that closes and exits costs no recovery and frees its slot; one killed while attached costs exactly one."""
    import signal
    import subprocess
    import sys

    with aiocore.AioContext.create("notified", recovery=True) as ctx:
        owner = B.OwnerLoop(ctx)
        p = subprocess.Popen([sys.executable, "-c", IDLE_CHILD, ctx.name, how], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "attached"
            if how == "close":
                assert p.stdout.readline().strip() == "closed"
                p.communicate(timeout=30)   # EOF on stdin: it exits
            else:
                p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
            want = 0 if how == "close" else 1
            end = time.monotonic() + 10
            while ctx.counters().recoveries < want and time.monotonic() < end:
                time.sleep(0.005)
            B.wait_asleep(ctx)
            time.sleep(0.05)   # a second recovery, if any, would have run by now
            assert ctx.counters().recoveries == want, ctx.counters()
            snap = ctx.snapshot()
            assert not snap.notifier_readable and snap.position == "wait_infinite", snap
        finally:
            owner.stop()
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)   # closes its pipes


def test_owner_leaves_its_wait_position_before_a_recovery_is_counted(no_fd_leak):
    """Once `recoveries` has moved the owner is no longer at its wait position
    (it shows "recovery"), so whoever frees a dead notifier's slot on seeing
    the count never leaves the watchdog an owner "asleep" with the dead
    notifier's BH pending: the GSource path, stopped right after its wait."""
    import signal
    import subprocess
    import sys

    with aiocore.AioContext.create("notified", recovery=True) as ctx:
        p = subprocess.Popen([sys.executable, "-c", IDLE_CHILD, ctx.name, "kill"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "attached"
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
            ctx.prepare()
            ctx.wait(None)            # returns: the death is seen (no notify came)
            assert ctx.counters().recoveries == 1
            assert ctx.snapshot().position == "recovery"
            ctx.check()
            ctx.dispatch()
            assert ctx.snapshot().position == "idle" and ctx.counters().recoveries == 1
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)


@pytest.mark.parametrize("strategy", ["notified", "unconditional"])
def test_random_kills_with_recovery_leave_no_busy_loop_and_no_lost_wakeup(strategy, no_fd_leak):
    """Notifiers forked by one attached process and killed at random instants: each death is recovered once, and after each the owner sleeps with nothing pending (benchmarks/crash_kills.py, small)."""
    from aiocore._faults._kills import random_kills

    r = random_kills(strategy, 30, recovery=True, seed=7)
    assert r.failures == 0, r
    assert r.fine == 30 and r.recoveries == 30, r
