# The watchdog: judges a running context from outside the protocol.
#
# It runs in the runner's main thread (the owner's C loop runs in another
# thread of the same process, the other processes are separate programs)
# and samples the shared state every `period` with one C call
# (aio_drv_sample): the owner's position and since when, its poll count,
# the bottom halves scheduled, whether the notifier (and the rescue fd) is
# readable, how many live processes are inside a protocol call, the sum of
# their operation counts, and the owner loop's busy streak.  It never
# touches notify_me, notified, a BH flag or the notifier during a sample.
#
# Lost wakeup: the owner waits with an infinite timeout, a BH is pending,
# the notifier is not readable (so nothing the kernel holds will wake it),
# no live process is inside bh_schedule / aio_notify / aio_poll (so nobody
# is about to), and this stays exactly so -- same poll count, same
# operation counts, same event_sets -- for `lost_ns`.  A state like that
# can only end by rescue.  Rescue: ctx.rescue() writes the owner's rescue
# eventfd, which its ppoll watches besides the notifier; the owner wakes,
# runs the BH, and the run goes on.
#
# Busy loop: the owner's C loop counts consecutive blocking polls that the
# notifier woke, that made no progress, and during which nobody wrote the
# notifier.  When that streak is at least `busy_k` at one sample and has
# grown by `busy_k` more at a sample `busy_confirm_ns` later, with nobody
# inside a protocol call at either sample and no operation by anybody in
# between, the notifier is readable with nothing left that will clear it.
# (A notifier preempted between its event_set and its notified=1 makes the
# owner spin too -- a transient of every strategy with that order -- but it
# is inside aio_notify all along, and the streak stops when it resumes.)  Rescue: drain the notifier with read() outside the strategy's hooks.
#
# Each finding records a snapshot (notify_me, notified, the notifier's
# readability, the pending BHs, the owner's position, every process's slot)
# and is counted; findings that resolve on their own before the threshold
# are counted as near misses, with the longest one, to show how close a run
# came.
from __future__ import annotations

import time

import attrs

from aiocore._context import POSITIONS

SAMPLE_FIELDS = (
    "now", "pos", "since", "wait_timeout", "poll_seq", "pending", "first_pending",
    "readable", "rescue_readable", "in_protocol", "ops", "streak", "streak_seq0",
    "alive", "dead_in_protocol", "event_sets", "notify_me", "notified", "owner_iters",
    "wakeups", "dispatches",
)
_F = {n: i for i, n in enumerate(SAMPLE_FIELDS)}
POS_WAIT_INFINITE = POSITIONS.index("wait_infinite")

ROLE_NAMES = {1: "owner", 2: "notifier", 3: "foreign", 4: "pool-worker", 5: "guest",
              6: "fd-writer", 7: "timer-racer"}
PROC_POS_NAMES = ("none", "idle", "waiting", "in_schedule", "in_notify", "in_poll", "away",
                  "paused", "working", "exited", "owner")


@attrs.define
class Finding:
    kind: str  # "lost-wakeup" | "busy-loop"
    at: float  # seconds since the run started
    duration_ms: float  # how long the state held before the rescue
    snapshot: dict


class Watchdog:
    def __init__(self, ctx, *, lost_ms=10.0, busy_k=200, busy_confirm_ms=2.0, keep=5):
        self.ctx = ctx
        self.lib = ctx._lib
        self.c = ctx._c
        self.ffi = ctx._ffi
        self.lost_ns = int(lost_ms * 1e6)
        self.busy_k = busy_k
        self.busy_confirm_ns = int(busy_confirm_ms * 1e6)
        self.keep = keep
        self._buf = self.ffi.new("int64_t[24]")
        self.t0 = None
        self.lost_wakeups = 0
        self.busy_loops = 0
        self.crash_rescues = 0
        self.near_misses = 0
        self.longest_near_miss_ms = 0.0
        self.findings: list[Finding] = []
        self.first_finding_s: float | None = None
        self.samples = 0
        self._lost_since = None
        self._lost_key = None
        self._lost_samples = 0
        self._rescued_seq = None
        self._busy_cand = None
        self._busy_done_seq0 = None
        self.last = None

    def sample(self):
        self.lib.aio_drv_sample(self.c, self._buf, len(SAMPLE_FIELDS))
        b = self._buf
        return [int(b[i]) for i in range(len(SAMPLE_FIELDS))]

    def snapshot(self, s) -> dict:
        """The shared state now, for the report of a finding."""
        snap = attrs.asdict(self.ctx.snapshot())
        ids = self.ffi.new("int32_t[16]")
        n = self.lib.aio_drv_pending(self.c, ids, 16)
        snap["pending_bhs"] = [int(ids[i]) for i in range(min(n, 16))]
        snap["pending_count"] = int(n)
        snap["busy_streak"] = s[_F["streak"]]
        procs = []
        out = self.ffi.new("int64_t[6]")
        for i in range(64):
            if self.lib.aio_drv_proc_get(self.c, i, out) > 0:
                procs.append(
                    dict(
                        slot=i,
                        pid=int(out[0]),
                        role=ROLE_NAMES.get(int(out[1]), str(int(out[1]))),
                        position=PROC_POS_NAMES[int(out[2])] if 0 <= out[2] < len(PROC_POS_NAMES) else str(int(out[2])),
                        ops=int(out[3]),
                        alive=bool(out[5]),
                    )
                )
        snap["processes"] = procs
        return snap

    def _record(self, kind, s, held_ns):
        at = (s[_F["now"]] - self.t0) / 1e9 if self.t0 else 0.0
        if self.first_finding_s is None:
            self.first_finding_s = at
        if len(self.findings) < self.keep:
            self.findings.append(Finding(kind, at, held_ns / 1e6, self.snapshot(s)))

    def step(self) -> list[str]:
        """Take one sample and act on it; returns the kinds found now."""
        s = self.sample()
        self.samples += 1
        if self.t0 is None:
            self.t0 = s[_F["now"]]
        self.last = s
        found = []
        now = s[_F["now"]]
        seq = s[_F["poll_seq"]]
        if self._rescued_seq is not None and seq != self._rescued_seq:
            self._rescued_seq = None

        # -- lost wakeup --
        stuck = (
            s[_F["pos"]] == POS_WAIT_INFINITE
            and s[_F["pending"]] > 0
            and not s[_F["readable"]]
            and not s[_F["rescue_readable"]]
            and s[_F["in_protocol"]] == 0
            and self._rescued_seq is None
        )
        if stuck:
            key = (seq, s[_F["ops"]], s[_F["event_sets"]], s[_F["dead_in_protocol"]])
            if self._lost_since is None or key != self._lost_key:
                self._lost_since, self._lost_key, self._lost_samples = now, key, 1
            else:
                self._lost_samples += 1
                held = now - self._lost_since
                if held >= self.lost_ns:
                    if s[_F["dead_in_protocol"]]:
                        # A process died inside a protocol call: not the
                        # strategy's fault; rescue all the same.
                        self.crash_rescues += 1
                        kind = "crash-rescue"
                    else:
                        self.lost_wakeups += 1
                        kind = "lost-wakeup"
                    self._record(kind, s, held)
                    self.ctx.rescue()
                    self._rescued_seq = seq
                    self._lost_since = None
                    found.append(kind)
        else:
            if self._lost_since is not None and self._lost_samples >= 2:
                self.near_misses += 1
                self.longest_near_miss_ms = max(self.longest_near_miss_ms, (now - self._lost_since) / 1e6)
            self._lost_since = None

        # -- busy loop --
        streak, seq0 = s[_F["streak"]], s[_F["streak_seq0"]]
        if streak >= self.busy_k and s[_F["in_protocol"]] == 0 and seq0 != self._busy_done_seq0:
            cand = self._busy_cand
            if cand is None or cand[0] != seq0 or cand[2] != s[_F["ops"]] or cand[3] != s[_F["event_sets"]]:
                self._busy_cand = (seq0, streak, s[_F["ops"]], s[_F["event_sets"]], now)
            elif streak - cand[1] >= self.busy_k and now - cand[4] >= self.busy_confirm_ns:
                # K more fruitless wake-ups between two samples where nobody
                # was inside a protocol call and nobody did anything: not a
                # notifier preempted between its event_set and notified=1
                # (that is a transient every strategy with that order has).
                self.busy_loops += 1
                self._record("busy-loop", s, now - cand[4])
                self.lib.aio_drv_drain_notifier(self.c)
                self._busy_done_seq0 = seq0
                self._busy_cand = None
                found.append("busy-loop")
        else:
            self._busy_cand = None
        return found

    def run_for(self, seconds, period=0.002, tick=None, tick_every=0.1, should_stop=None):
        """Sample until `seconds` have passed (or should_stop() is true)."""
        end = time.monotonic() + seconds
        next_tick = time.monotonic()
        while True:
            t = time.monotonic()
            if t >= end or (should_stop is not None and should_stop()):
                return
            self.step()
            if tick is not None and t >= next_tick:
                tick(self)
                next_tick = t + tick_every
            time.sleep(period)


__all__ = ["Watchdog", "Finding", "SAMPLE_FIELDS"]
