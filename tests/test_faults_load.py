"""Faults under load: a 64-process notifier storm against one owner."""
from __future__ import annotations

import os
import time

import pytest

import aiocore

#: Storm length in seconds (AIOCORE_STORM_SECONDS=300 for a five-minute storm).
STORM_SECONDS = float(os.environ.get("AIOCORE_STORM_SECONDS", "10"))
NPROCS = int(os.environ.get("AIOCORE_STORM_PROCS", "64"))
#: A blocking poll that waits this long while a bottom half is pending is a
#: lost wakeup (the failsafe timer ends it so the test can report it).
STALL_S = 2.0

# Attaches once and forks NPROCS notifiers: each schedules its own bottom
# half (and a shared one) and notifies, half of them in tight loops, half
# with jitter; at the end each makes one last schedule, so that every
# process's final 0->1 must be dispatched for the accounting to add up.
STORM = """
import os, random, sys, time, aiocore
name, nprocs, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ctx = aiocore.AioContext.attach(name)
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + seconds
kids = []
for i in range(nprocs):
    pid = os.fork()
    if pid == 0:
        rnd = random.Random(i)
        mine, shared = 1 + i, 0
        tight = i % 2 == 0
        n = 0
        sched, notify = ctx.bh_schedule, ctx.notify
        while time.monotonic() < end:
            for _ in range(200):
                sched(mine)
                sched(shared)
                notify()
            n += 600
            if not tight:
                time.sleep(rnd.random() * 0.002)
        sched(mine)
        os._exit(0)
    kids.append(pid)
bad = 0
for pid in kids:
    _, st = os.waitpid(pid, 0)
    bad += os.waitstatus_to_exitcode(st) != 0
print("done", len(kids), bad, flush=True)
"""


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.stress
def test_64_process_notifier_storm_loses_nothing_and_stays_bounded(procs):
    """64 notifier processes hammer one owner: no lost work or wakeup, counters add up, owner RSS stays bounded."""
    import subprocess

    with aiocore.AioContext.create("unconditional-c", n_bh=NPROCS + 1) as ctx:
        runs = [0] * (NPROCS + 1)
        for i in range(NPROCS + 1):
            assert ctx.bh_new(lambda i=i: runs.__setitem__(i, runs[i] + 1)) == i
        failsafe = ctx.timer_new(lambda: None)
        sp = procs.start(STORM, ctx.name, NPROCS, STORM_SECONDS, stdin=subprocess.PIPE)
        assert sp.stdout.readline().strip() == "ready", sp.stderr.read()
        # Warm up the owner loop before measuring its memory.
        for _ in range(100):
            ctx.aio_poll(False)
        rss0 = _rss_kib()
        sp.stdin.write("go\n")
        sp.stdin.flush()
        stalls, polls = [], 0
        deadline = time.monotonic() + STORM_SECONDS + 120
        while sp.poll() is None:
            assert time.monotonic() < deadline, "the storm did not end"
            ctx.timer_mod_ns(failsafe, ctx.clock_ns() + int(STALL_S * 1e9))
            t0 = time.monotonic()
            ctx.aio_poll(True)
            polls += 1
            if time.monotonic() - t0 >= STALL_S * 0.95 and ctx.counters().bh_pending:
                stalls.append(ctx.snapshot())
        out = procs.finish(sp)
        assert out.split()[-3:] == ["done", str(NPROCS), "0"], out
        for _ in range(1000):
            if not ctx.counters().bh_pending:
                break
            ctx.aio_poll(False)
        rss1 = _rss_kib()
        c = ctx.counters()
        ctx.timer_free(failsafe)

    assert not stalls, f"lost wakeups (blocking poll slept {STALL_S}s with work pending): {stalls[:3]}"
    assert c.bh_pending == 0 and c.bh_cancels == 0
    assert c.lost_work == 0 and c.bh_schedules == c.bh_dispatches, c
    assert sum(runs) == c.bh_dispatches, (sum(runs), c)
    assert all(r > 0 for r in runs), "some notifier's bottom half never ran"
    assert c.polls >= polls and c.notifies > NPROCS * 200, c
    # Bounded memory: the owner loop allocates nothing that stays.
    assert rss1 - rss0 < 16 * 1024, f"owner RSS grew {rss0} -> {rss1} KiB over the storm"
