"""Random kills: notifiers SIGKILLed at random instants of their loop, and
the owner's state checked after each (benchmarks/crash_kills.py).

A spawner process attaches once and, per kill, forks a notifier that loops
on bh_schedule / aio_notify, SIGKILLs it after a random 0-2 ms
(_breakpoint.kill_notifier) and waits for the owner's side to look.  The
owner (this process, _breakpoint.OwnerLoop) sleeps in infinite blocking
aio_polls throughout.  After each kill: with recovery, the counter
``recoveries`` must move (the death was seen); then the owner's state is
classified from the segment (_breakpoint.classify_owner): ``busy-loop``
(iterating, notifier readable, nothing pending), ``lost-wakeup`` (asleep, a
BH pending, notifier not readable) or ``fine``.
"""
from __future__ import annotations

import subprocess
import sys
import time

import attrs

from . import _breakpoint as B

N_BH = 4

SPAWNER = r"""
import random, sys, aiocore
from aiocore._faults._breakpoint import fork_hammering_notifier, kill_notifier
name, kills, seed, n_bh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = aiocore.AioContext.attach(name)
rnd = random.Random(seed)
print("ready", flush=True)
for i in range(kills):
    if sys.stdin.readline().strip() != "next":
        break
    pid = fork_hammering_notifier(ctx, n_bh)
    kill_notifier(pid, delay_s=rnd.random() * 0.002)
    print("killed", flush=True)
"""


@attrs.frozen
class KillRun:
    """The outcome of one strategy's random kills."""

    strategy: str
    recovery: bool
    kills: int
    fine: int
    busy_loops: int
    lost_wakeups: int
    unsettled: int
    recoveries: int
    seconds: float
    first_failure: str = ""

    @property
    def failures(self) -> int:
        return self.busy_loops + self.lost_wakeups + self.unsettled


def random_kills(strategy: str, kills: int, *, recovery: bool = True, seed: int = 1,
                 skeleton: str = "2015", window: float = 0.005) -> KillRun:
    """Kill ``kills`` notifiers at random instants; classify the owner after each."""
    from .._context._aio import AioContext

    t0 = time.monotonic()
    counts = {v: 0 for v in (*B.VERDICTS, "unsettled")}
    first = ""
    with AioContext.create(strategy, n_bh=N_BH, recovery=recovery, skeleton=skeleton) as ctx:
        for _ in range(N_BH):
            ctx.bh_new(lambda: None)
        sp = subprocess.Popen([sys.executable, "-c", SPAWNER, ctx.name, str(kills), str(seed),
                               str(N_BH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        owner = B.OwnerLoop(ctx)
        try:
            if sp.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the spawner did not start: {sp.communicate(timeout=10)[1]}")
            for i in range(kills):
                before = ctx.counters().recoveries
                sp.stdin.write("next\n")
                sp.stdin.flush()
                if sp.stdout.readline().strip() != "killed":
                    raise RuntimeError(f"the spawner stopped: {sp.communicate(timeout=10)[1]}")
                st = B.classify_owner(ctx, recoveries_before=before if recovery else None,
                                      window=window)
                counts[st.verdict if st.verdict in counts else "unsettled"] += 1
                if st.verdict != "fine" and not first:
                    first = f"kill {i}: {st}"
                if not recovery and st.verdict != "fine":
                    ctx.notify()   # unstick the owner (a later notify would) for the next kill
            recoveries = ctx.counters().recoveries
        finally:
            try:
                owner.stop()
            finally:
                if sp.poll() is None:
                    sp.kill()
                sp.communicate(timeout=10)
    return KillRun(strategy, recovery, kills, counts["fine"], counts["busy-loop"],
                   counts["lost-wakeup"], counts["unsettled"], recoveries,
                   time.monotonic() - t0, first)


def expected_to_pass(model: str = "tso", skeleton: str = "2015") -> list[str]:
    """Built-ins whose checker verdict with crash-stop faults and recovery is
    pass (config home, default bounds)."""
    from .._checker import DEFAULT_BOUNDS, check_ir
    from .._compiler._plugins import registry

    out = []
    for info in registry():
        if info.status != "ok" or info.ir is None or not info.source.startswith("aiocore["):
            continue
        if skeleton not in info.skeletons:
            continue
        r = check_ir(info.ir, model, "home", DEFAULT_BOUNDS, want_trace=False,
                     skeleton=skeleton, faults="crash", recovery=True)
        if r.verdict == "pass":
            out.append(info.name)
    return sorted(out)
