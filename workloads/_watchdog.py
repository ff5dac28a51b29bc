# The watchdog: judges a running context from outside the protocol.
#
# It runs in the runner's main thread (the owner's C loop runs in another
# thread of the same process, the other processes are separate programs)
# and takes, every `period`, one consistent snapshot of the shared state
# with one C call (aio_drv_snap, aiocore/_csrc/aio_drv_watch.c: the process
# slots, the owner's position, the BH flags, the notifier's readability,
# then the owner and the slots again, retried until both reads agree).  It
# never touches notify_me, notified, a BH flag or the notifier while it
# looks.  Two kinds of detectors judge the snapshots, and are counted apart:
#
# The exact detectors (findings are STATES, as the model checker's are):
#
# - lost wakeup: in one consistent snapshot, the owner waits in ppoll with
#   an infinite timeout (or a finite one, while a bottom half is already
#   pending: it sleeps beyond pending work), a BH is scheduled, the
#   notifier is not readable, and no live process is inside a protocol call
#   (bh_schedule, aio_notify, a foreign aio_poll) that could still make it
#   readable.  Reported as soon as it holds, whatever wakes the owner later
#   (an unrelated notify, a timer, the rescue), with the snapshot.
# - busy loop: two consistent snapshots in a row where the notifier is
#   readable, no BH is pending, nobody is inside a protocol call and nobody
#   wrote the notifier in between (no event_set), while the owner completed
#   at least two polls, each woken by the notifier without progress (its
#   busy streak spans both): a readable notifier nobody will clear.  On
#   the polling skeleton, an owner spinning in its poll phase on purpose
#   (position "polling") completes no poll while it spins: it is counted
#   as `polling_spins`, never as a busy loop.
# - lost work (QEMU's bottom-half contract, DESIGN.md "Lost work"): in one
#   consistent snapshot, a payload whose schedule returned (a thread-pool
#   worker's completion, the virtio guest's ring head) that no callback has
#   read, while that BH's word is clear, nobody is inside a protocol call
#   and the owner is not dispatching: no callback that could see it can
#   start unless somebody schedules again (aio_drv_watch.c, drv_unseen).
#   Once per payload.
#
# The time-based detectors (the second signal, as before): the same lost
# wakeup state held exactly -- same poll count, same operation counts,
# same event_sets -- for `lost_ns`; the owner's busy streak grown by
# `busy_k` fruitless wake-ups between two samples `busy_confirm_ns` apart
# with nobody in a protocol call.  They do the rescue: ctx.rescue() writes
# the owner's rescue eventfd (its ppoll watches it besides the notifier),
# or the notifier is drained with read() outside the strategy's hooks.  A
# state the exact detector saw that ends on its own before the threshold is
# still a lost wakeup (an exact one): something unrelated woke the owner.
from __future__ import annotations

import time

import attrs

from aiocore._context._aio import POSITIONS

SAMPLE_FIELDS = (
    "now", "pos", "since", "wait_timeout", "poll_seq", "pending", "first_pending",
    "readable", "rescue_readable", "in_protocol", "ops", "streak", "streak_seq0",
    "alive", "dead_in_protocol", "event_sets", "notify_me", "notified", "owner_iters",
    "wakeups", "dispatches", "consistent", "retries",
    "unseen", "unseen_bh", "unseen_due", "unseen_seen",
)
_F = {n: i for i, n in enumerate(SAMPLE_FIELDS)}
POS_WAIT_INFINITE = POSITIONS.index("wait_infinite")
POS_WAIT_TIMED = POSITIONS.index("wait_timed")
POS_POLLING = POSITIONS.index("polling") if "polling" in POSITIONS else -1
POS_DISPATCH = POSITIONS.index("dispatch")

ROLE_NAMES = {1: "owner", 2: "notifier", 3: "foreign", 4: "pool-worker", 5: "guest",
              6: "fd-writer", 7: "timer-racer"}
PROC_POS_NAMES = ("none", "idle", "waiting", "in_schedule", "in_notify", "in_poll", "away",
                  "paused", "working", "exited", "owner")
#: Which protocol call a position is inside.
IN_CALL = {"in_schedule": "bh_schedule", "in_notify": "aio_notify", "in_poll": "aio_poll"}
MAX_PROCS = 64


@attrs.define
class Finding:
    kind: str  # "lost-wakeup" | "busy-loop" | "lost-work" | "crash-rescue"
    detector: str  # "state" (exact) | "timeout" (held for the threshold)
    at: float  # seconds since the run started
    duration_ms: float  # how long the state had held when reported
    snapshot: dict


def lost_wakeup_state(s) -> bool:
    """A consistent snapshot `s` (a SAMPLE_FIELDS list) is a lost wakeup."""
    pos = s[_F["pos"]]
    asleep = pos == POS_WAIT_INFINITE or (pos == POS_WAIT_TIMED and s[_F["wait_timeout"]] > 0)
    return bool(
        s[_F["consistent"]] and asleep and s[_F["pending"]] > 0
        and not s[_F["readable"]] and not s[_F["rescue_readable"]]
        and s[_F["in_protocol"]] == 0 and s[_F["dead_in_protocol"]] == 0
    )


def lost_work_state(s) -> bool:
    """A consistent snapshot `s` shows a payload nobody will see (drv_unseen)."""
    return bool(
        s[_F["consistent"]] and s[_F["unseen"]] > 0 and s[_F["pos"]] != POS_DISPATCH
        and s[_F["in_protocol"]] == 0 and s[_F["dead_in_protocol"]] == 0
    )


def busy_loop_states(a, b) -> bool:
    """Two consistent snapshots a (earlier) and b are a busy loop."""
    if a is None or not (a[_F["consistent"]] and b[_F["consistent"]]):
        return False
    for s in (a, b):
        if not s[_F["readable"]] or s[_F["pending"]] or s[_F["in_protocol"]] or s[_F["dead_in_protocol"]]:
            return False
    # Nobody wrote the notifier in between (event_sets), yet the owner was
    # woken by it, fruitlessly, on every poll since before `a` (its streak):
    # a correct owner clears the notifier on its first wake-up.
    return (
        a[_F["event_sets"]] == b[_F["event_sets"]]
        and b[_F["poll_seq"]] - a[_F["poll_seq"]] >= 2
        and b[_F["streak"]] >= 2 and b[_F["streak_seq0"]] <= a[_F["poll_seq"]]
    )


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
        self._buf = self.ffi.new("int64_t[32]")
        self._procs = self.ffi.new(f"int64_t[{4 * MAX_PROCS}]")
        self._nprocs = 0
        self.t0 = None
        # exact (state) findings
        self.lost_wakeups = 0
        self.busy_loops = 0
        self.lost_works = 0
        self._lost_work_keys = set()
        # time-based findings (the second signal; they rescue)
        self.lost_wakeups_timed = 0
        self.busy_loops_timed = 0
        self.crash_rescues = 0
        self.polling_spins = 0
        self.inconsistent = 0
        self.near_misses = 0
        self.longest_near_miss_ms = 0.0
        self.findings: list[Finding] = []
        self.first_finding_s: float | None = None
        self.samples = 0
        self._lost_since = None
        self._lost_key = None
        self._lost_samples = 0
        self._exact_lost_key = None
        self._rescued_seq = None
        self._busy_cand = None
        self._busy_done_seq0 = None
        self._busy_exact_seq0 = None
        self._prev = None
        self.last = None

    @property
    def found(self) -> int:
        """Findings of either detector (crash rescues are not findings)."""
        return (self.lost_wakeups + self.busy_loops + self.lost_works + self.lost_wakeups_timed
                + self.busy_loops_timed)

    def sample(self):
        self._nprocs = self.lib.aio_drv_snap(self.c, self._buf, len(SAMPLE_FIELDS), self._procs, MAX_PROCS)
        b = self._buf
        return [int(b[i]) for i in range(len(SAMPLE_FIELDS))]

    def processes(self) -> list[dict]:
        """The process slots of the last snapshot (consistent with it)."""
        out = []
        p = self._procs
        for k in range(max(0, self._nprocs)):
            pos = int(p[4 * k + 2])
            name = PROC_POS_NAMES[pos] if 0 <= pos < len(PROC_POS_NAMES) else str(pos)
            out.append(dict(slot=int(p[4 * k]), role=ROLE_NAMES.get(int(p[4 * k + 1]), str(int(p[4 * k + 1]))),
                            position=name, in_call=IN_CALL.get(name), ops=int(p[4 * k + 3])))
        return out

    def snapshot(self, s) -> dict:
        """The report of a finding: the consistent snapshot `s`, its process
        slots, and the pending BHs' ids (read just after it)."""
        snap = {n: s[_F[n]] for n in SAMPLE_FIELDS if n not in ("streak_seq0",)}
        pos = s[_F["pos"]]
        snap["position"] = POSITIONS[pos] if 0 <= pos < len(POSITIONS) else f"?{pos}"
        snap["processes"] = self.processes()
        ids = self.ffi.new("int32_t[16]")
        n = self.lib.aio_drv_pending(self.c, ids, 16)
        snap["pending_bhs"] = [int(ids[i]) for i in range(min(n, 16))]  # read just after
        snap["pending_count"] = s[_F["pending"]]
        snap["notifier_readable"] = bool(s[_F["readable"]])
        if s[_F["unseen"]]:
            snap["unseen_payload"] = dict(bh=s[_F["unseen_bh"]], due=s[_F["unseen_due"]],
                                          seen=s[_F["unseen_seen"]], count=s[_F["unseen"]])
        return snap

    def _record(self, kind, detector, s, held_ns):
        at = (s[_F["now"]] - self.t0) / 1e9 if self.t0 else 0.0
        if kind != "crash-rescue" and self.first_finding_s is None:
            self.first_finding_s = at
        if len(self.findings) < self.keep:
            self.findings.append(Finding(kind, detector, at, held_ns / 1e6, self.snapshot(s)))

    def step(self) -> list[str]:
        """Take one snapshot and act on it; returns the kinds found now."""
        s = self.sample()
        self.samples += 1
        if self.t0 is None:
            self.t0 = s[_F["now"]]
        self.last = s
        found = []
        now = s[_F["now"]]
        seq = s[_F["poll_seq"]]
        if not s[_F["consistent"]]:
            self.inconsistent += 1
        if self._rescued_seq is not None and seq != self._rescued_seq:
            self._rescued_seq = None

        # -- lost wakeup, exact: the state, once per wait of the owner --
        if lost_wakeup_state(s) and self._rescued_seq is None:
            key = (seq, s[_F["since"]])
            if key != self._exact_lost_key:
                self._exact_lost_key = key
                self.lost_wakeups += 1
                self._record("lost-wakeup", "state", s, max(0, now - s[_F["since"]]))
                found.append("lost-wakeup")

        # -- lost work, exact: a due payload nobody will see, once per payload --
        if lost_work_state(s):
            key = (s[_F["unseen_bh"]], s[_F["unseen_due"]])
            if key not in self._lost_work_keys:
                self._lost_work_keys.add(key)
                self.lost_works += 1
                self._record("lost-work", "state", s, 0)
                found.append("lost-work")

        # -- lost wakeup, time-based (rescues) --
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
                        self.lost_wakeups_timed += 1
                        kind = "lost-wakeup"
                    self._record(kind, "timeout", s, held)
                    self.ctx.rescue()
                    self._rescued_seq = seq
                    self._lost_since = None
                    found.append(kind)
        else:
            if self._lost_since is not None and self._lost_samples >= 2:
                self.near_misses += 1
                self.longest_near_miss_ms = max(self.longest_near_miss_ms, (now - self._lost_since) / 1e6)
            self._lost_since = None

        # -- busy loop, exact: two snapshots in a row --
        prev, self._prev = self._prev, s
        streak, seq0 = s[_F["streak"]], s[_F["streak_seq0"]]
        if busy_loop_states(prev, s):
            if seq0 != self._busy_exact_seq0:
                self._busy_exact_seq0 = seq0
                self.busy_loops += 1
                self._record("busy-loop", "state", s, max(0, now - prev[_F["now"]]))
                found.append("busy-loop")
        elif (s[_F["consistent"]] and s[_F["pos"]] == POS_POLLING and s[_F["readable"]]
              and not s[_F["pending"]] and prev is not None and prev[_F["poll_seq"]] == seq):
            self.polling_spins += 1  # spinning in its poll phase on purpose

        # -- busy loop, time-based (rescues) --
        if streak >= self.busy_k and s[_F["in_protocol"]] == 0 and seq0 != self._busy_done_seq0:
            cand = self._busy_cand
            if cand is None or cand[0] != seq0 or cand[2] != s[_F["ops"]] or cand[3] != s[_F["event_sets"]]:
                self._busy_cand = (seq0, streak, s[_F["ops"]], s[_F["event_sets"]], now)
            elif streak - cand[1] >= self.busy_k and now - cand[4] >= self.busy_confirm_ns:
                # K more fruitless wake-ups between two samples where nobody
                # was inside a protocol call and nobody did anything: not a
                # notifier preempted between its event_set and notified=1
                # (that is a transient every strategy with that order has).
                self.busy_loops_timed += 1
                self._record("busy-loop", "timeout", s, now - cand[4])
                self.lib.aio_drv_drain_notifier(self.c)
                self._busy_done_seq0 = seq0
                self._busy_cand = None
                found.append("busy-loop")
        else:
            self._busy_cand = None
        return found

    def run_for(self, seconds, period=0.0005, tick=None, tick_every=0.1, should_stop=None):
        """Snapshot until `seconds` have passed (or should_stop() is true)."""
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


__all__ = ["Watchdog", "Finding", "SAMPLE_FIELDS", "lost_wakeup_state", "busy_loop_states",
           "lost_work_state"]
