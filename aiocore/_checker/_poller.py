# The skeletons the checker's processes run, as instruction lists: the home
# poller's aio_poll in its two shapes (aiocore/_compiler/_skeleton.py is the spec, the C
# in aio_core.c the other implementation of it), the glib path, the foreign
# poller, the notifiers, and what a crashed process leaves behind.
#
# Each skeleton step starts with a local no-op labelled with its name
# (Builder.step), so Proc.steps maps pc -> step, every instruction's `where`
# names the step it belongs to ("poll_end/accept"), and _steps.py can list the
# steps a path passes (the drift test against the C's AIO_STEP log).  As in
# the C (aio_poll_2015.c, aio_poll_polling.c), a step's label comes before
# its condition: every aio_poll passes every step, in order; what a step did
# on a path (a hook ran, the ppoll ran) is reported by _steps.py beside it.
#
# The polling skeleton (QEMU today, util/aio-posix.c aio_poll):
#
#   compute_timeout  timeout = aio_compute_timeout: timeout_zero, BH flags
#   poll_handlers    if timeout != 0: 0..POLL_ROUNDS rounds (CHOOSE: poll_ns
#                    may be 0, polling may stop at any time), each the
#                    notifier poll (timeout_zero, else atomic_read(notified):
#                    aio_context_notifier_poll) and the BH flags; a success
#                    -> timeout 0.  (QEMU's poll handlers are the context's
#                    notifier and the owner's fds; the BH flags are read here
#                    by the spec too.  A run of QEMU whose poll reads all
#                    returned 0 is the model's run with 0 rounds, so the extra
#                    reads add behaviours, hide none.)
#   poll_begin       use_notify_me = timeout != 0: the poll_begin hook
#   last_look        the notifier poll again: non-zero -> timeout 0
#   wait             only if timeout != 0 (the home poller always blocks; no
#                    fd handler without poll_cb: need_wait is false)
#   poll_end         use_notify_me ? the poll_end hook : the accept hook
#   adjust           adjust_polling_time: timing only, nothing to explore
#   dispatch         as in 2015; on_event only if a ppoll ran and saw the
#                    notifier readable
#
# Crash-stop faults (faults="crash"): a notifier or the foreign poller may
# crash before any of its visible instructions (the explorer's crash move, to
# Proc.crash) and, under tso/arm, before any store (a CHOOSE with one target,
# because a store enters the buffer as a local step).  What happens to the
# dead process's store buffer: it drains.  Stores already executed sit in the
# CPU's store buffer (x86, ARM), which keeps draining to memory when the
# process is killed -- the kill is an interrupt and an exit path on that CPU,
# not a loss of its buffer -- so a run where they are lost is not physical.
# The crashed process therefore keeps its buffer and its stores commit later.
#
# Recovery (recovery=True; the core's aio_recovery.h): the owner watches the
# attached processes' pidfds.  A death makes "ev bit 1" readable (DEATH, in
# the crash tail), and only after the dead process's buffer has drained: the
# kernel's exit path on the dead CPU (spinlocks, the pidfd wake-up) orders
# the process's earlier stores before the pidfd is seen readable, as any
# wake-up does.  That order is load-bearing on ARM: with the death visible
# before the drain, always-notified, explicit-mb and selfpipe lose a wake-up
# (the dead notifier's xchg of the BH flag is still in flight when dispatch
# re-checks it).  Dropping the dead process's buffer instead of draining it
# changes no verdict of the built-ins (measured, config home, 2015): the
# drain is chosen because it is what the hardware does.  The home poller's
# wait also wakes on it; right after the
# wait, if a death was seen (DTAC reads and clears the bit): one
# unconditional event_test_and_clear; then dispatch re-checks every BH flag
# as it always does.
from __future__ import annotations

from .._compiler import _skeleton
from ._program import (
    BR, CHOOSE, DEATH, DONE, DRAIN, DTAC, ETAC, INFINITE, JMP, READ, RMW, SC, SET, STOP, TSO,
    WAIT, _Builder, _rmw_fn,
)


def _br_nonzero(b: _Builder, slot, where, text):
    """A branch to be patched: jump to a target if slot != 0."""
    pc = b.emit(None, where, text)
    b.p.uses[pc] = frozenset({slot})
    return pc, slot


def _patch_nonzero(b: _Builder, br, target):
    pc, slot = br
    # BR falls through when its condition holds and jumps when it does not
    b.patch(pc, (BR, (lambda s: lambda e: 1 if e[s] == 0 else 0)(slot), target))


def _notifier_poll(b: _Builder, ir, where):
    """aio_context_notifier_poll: the strategy's timeout_zero, else
    atomic_read(notified).  Returns the branch taken when it is non-zero."""
    if ir.has_timeout_zero:
        tz = b.slot(f"{where}.timeout_zero")
        b.hook("timeout_zero", ret_slot=tz)
        return _br_nonzero(b, tz, where, "if timeout_zero() -> timeout 0")
    r = b.slot(f"{where}.notified")
    loc = b.locs["notified"]
    b.emit((READ, loc, False, r), where, "atomic_read(notified)")
    return _br_nonzero(b, r, where, "if notified -> timeout 0")


def _bh_polls(b: _Builder, where):
    """A relaxed read of every BH flag; the branches taken when one is set."""
    out = []
    for k, loc in enumerate(b.bh_locs):
        r = b.slot(f"{where}.bh{k}")
        b.emit((READ, loc, False, r), where, f"atomic_read({b.loc_name(loc)})")
        out.append(_br_nonzero(b, r, where, f"if bh{k} scheduled -> timeout 0"))
    return out


def _compute_timeout(b: _Builder, ir, tslot):
    """aio_compute_timeout: timeout_zero, then every BH flag (relaxed)."""
    zero = []
    if ir.has_timeout_zero:
        tz = b.slot("timeout_zero.ret")
        b.hook("timeout_zero", ret_slot=tz)
        zero.append(_br_nonzero(b, tz, "compute_timeout", "if timeout_zero() -> timeout 0"))
    zero += _bh_polls(b, "compute_timeout")
    b.emit((SET, tslot, lambda e: INFINITE), "compute_timeout", "timeout = infinite")
    j = b.emit(None, "compute_timeout", "")
    z = b.emit((SET, tslot, lambda e: 0), "compute_timeout", "timeout = 0")
    b.patch(j, (JMP, b.here()))
    for br in zero:
        _patch_nonzero(b, br, z)


def _wait(b: _Builder, tslot, rslot, where, text):
    b.fence("smp_mb", where, "(ppoll: system call)")
    uses = {tslot} if tslot >= 0 else set()
    b.emit((WAIT, tslot, rslot), where, text, uses)
    b.syscall_after(where, "(end of system call)")


def _recover(b: _Builder):
    """aio_recovery_after_wait: a death seen -> one unconditional
    event_test_and_clear (dispatch then re-checks every BH flag)."""
    d = b.slot("recovery.died")
    b.emit((DTAC, d), "recovery", "died = an attached process's pidfd readable (read, clear)")
    br = b.emit(None, "recovery", "if died")
    b.p.uses[br] = frozenset({d})
    b.fence("smp_mb", "recovery", "(event_notifier_test_and_clear: system call)")
    b.emit((ETAC, -1), "recovery", "event_notifier_test_and_clear() (unconditional)")
    b.syscall_after("recovery", "(end of system call)")
    b.patch(br, (BR, (lambda s: lambda e: e[s])(d), b.here()))


def _dispatch(b: _Builder, rslot):
    """aio_dispatch: claim every pending BH, then on_event if readable."""
    for k, loc in enumerate(b.bh_locs):
        r = b.slot(f"dispatch.bh{k}")
        b.emit((READ, loc, False, r), "dispatch", f"atomic_read({b.loc_name(loc)})")
        br = b.emit(None, "dispatch", "")
        if b.model == TSO:
            b.fence("smp_mb", "dispatch", "(xchg: lock prefix)")
        c = b.slot(f"dispatch.claim{k}")
        b.emit((RMW, loc, _rmw_fn("atomic_xchg"), lambda e: 0, None, c, k), "dispatch",
               f"claim = atomic_xchg({b.loc_name(loc)}, 0)")
        b.patch(br, (BR, (lambda s: lambda e: e[s])(r), b.here()))
        b.p.uses[br] = frozenset({r})
    br = b.emit(None, "dispatch", "if the notifier was readable -> on_event")
    b.hook("on_event")
    b.patch(br, (BR, (lambda s: lambda e: e[s])(rslot), b.here()))
    b.p.uses[br] = frozenset({rslot})


def poller_2015(b: _Builder, ir, foreign: bool, recovery: bool):
    """aio_poll of QEMU 2.4-2.8 (blocking), for the home or the foreign poller."""
    tslot = b.slot("timeout")
    rslot = b.slot("readable")
    head = b.here()
    stop = None
    if foreign:
        stop = b.emit(None, "aio_poll", "the temporary poller may leave here")
        b.fence("lock_acquire", "aio_poll", "aio_context_acquire()")
    b.step("poll_begin")
    b.fence("tso", "aio_poll", "(counters: lock-prefixed adds)")
    b.hook("poll_begin")
    b.step("compute_timeout")
    _compute_timeout(b, ir, tslot)
    if foreign:
        b.fence("lock_release", "aio_poll", "aio_context_release()")
    b.step("wait")
    _wait(b, tslot, rslot, "wait", "ppoll(notifier, timeout)")
    if recovery:
        _recover(b)
    if foreign:
        b.fence("lock_acquire", "aio_poll", "aio_context_acquire()")
    b.step("poll_end")
    b.hook("poll_end")
    b.step("dispatch")
    _dispatch(b, rslot)
    b.fence("tso", "aio_poll", "(counters: lock-prefixed adds)")
    if foreign:
        b.fence("lock_release", "aio_poll", "aio_context_release()")
    b.cur_step = None
    b.emit((JMP, head), "aio_poll", "")
    if foreign:
        done = b.emit((DONE,), "aio_poll", "left")
        b.patch(stop, (STOP, done))


def gsource_poller(b: _Builder, ir, recovery: bool):
    """The glib path (aio_ctx_prepare / check / dispatch), the same on both
    skeletons: prepare; compute_timeout; ppoll(timeout); check; ppoll(0) (the
    one whose readiness dispatch uses); [lock add]; dispatch."""
    tslot = b.slot("timeout")
    rslot = b.slot("readable")
    head = b.here()
    b.step("poll_begin")
    b.hook("prepare")
    b.step("compute_timeout")
    _compute_timeout(b, ir, tslot)
    b.step("wait")
    _wait(b, tslot, -1, "wait", "ppoll(notifier, timeout)")
    if recovery:
        _recover(b)
    b.step("poll_end")
    b.hook("check")
    _wait(b, -1, rslot, "check", "ppoll(notifier, 0)")
    b.fence("tso", "dispatch", "(counters: lock-prefixed add)")
    b.step("dispatch")
    _dispatch(b, rslot)
    b.cur_step = None
    b.emit((JMP, head), "aio_poll", "")


def polling_poller(b: _Builder, ir, recovery: bool):
    """aio_poll of QEMU today (blocking), the steps of _skeleton.STEPS["polling"]."""
    rounds = _skeleton.POLL_ROUNDS
    tslot = b.slot("timeout")
    rslot = b.slot("readable")
    unm = b.slot("use_notify_me")
    nz = (lambda s: lambda e: 1 if e[s] != 0 else 0)
    head = b.here()
    b.step("compute_timeout")
    # No "(counters: lock-prefixed adds)" fence here, unlike poller_2015: on
    # this skeleton the home owner's counters are plain stores
    # (aio_poll_polling.c, aio_own_count), as QEMU has no counters at all.
    b.emit((SET, rslot, lambda e: 0), "aio_poll", "readable = no ppoll yet")
    _compute_timeout(b, ir, tslot)

    # try_poll_mode: max_ns = min(timeout, poll_ns); nothing if it is 0
    b.step("poll_handlers")
    skip = b.emit(None, "try_poll_mode", "if timeout != 0 -> try_poll_mode")
    b.p.uses[skip] = frozenset({tslot})
    choose = b.emit(None, "try_poll_mode", "poll_ns: how long to busy-poll")
    round_starts = []
    successes = []
    for r in range(rounds):
        round_starts.append(b.here())
        successes.append(_notifier_poll(b, ir, "poll_handlers"))
        successes += _bh_polls(b, "poll_handlers")
    j = b.emit(None, "poll_handlers", "")
    zero = b.emit((SET, tslot, lambda e: 0), "poll_handlers", "progress: timeout = 0")
    for br in successes:
        _patch_nonzero(b, br, zero)
    ph_end = b.here()
    b.patch(j, (JMP, ph_end))
    b.patch(skip, (BR, nz(tslot), ph_end))
    targets = tuple(round_starts[rounds - n] for n in range(rounds, 0, -1)) + (ph_end,)
    texts = tuple(f"busy-polls {n} round(s)" for n in range(rounds, 0, -1)) + (
        "does not busy-poll (poll_ns is 0)",)
    b.patch(choose, (CHOOSE, targets, texts))

    # use_notify_me = timeout != 0; if so the poll_begin hook
    b.step("poll_begin")
    b.emit((SET, unm, nz(tslot)), "aio_poll", "use_notify_me = timeout != 0", {tslot})
    br = b.emit(None, "aio_poll", "if use_notify_me", {unm})
    b.hook("poll_begin")
    b.patch(br, (BR, nz(unm), b.here()))

    # "Don't block if aio_notify() was called"
    b.step("last_look")
    br = b.emit(None, "last_look", "if use_notify_me", {unm})
    ll = _notifier_poll(b, ir, "last_look")
    j = b.emit(None, "last_look", "")
    ll_zero = b.emit((SET, tslot, lambda e: 0), "last_look", "aio_notify() was called: timeout = 0")
    _patch_nonzero(b, ll, ll_zero)
    b.patch(j, (JMP, b.here()))
    b.patch(br, (BR, nz(unm), b.here()))

    # the wait only if timeout != 0 (need_wait is false: no fd without poll_cb)
    b.step("wait")
    br = b.emit(None, "aio_poll", "if timeout != 0", {tslot})
    _wait(b, tslot, rslot, "wait", "ppoll(notifier, timeout)")
    if recovery:
        _recover(b)
    b.patch(br, (BR, nz(tslot), b.here()))

    # use_notify_me ? poll_end (notify_me -= 2, accept) : aio_notify_accept
    b.step("poll_end")
    br = b.emit(None, "aio_poll", "if use_notify_me", {unm})
    b.hook("poll_end")
    j = b.emit(None, "poll_end", "")
    b.patch(br, (BR, nz(unm), b.here()))
    b.hook("accept")
    b.patch(j, (JMP, b.here()))

    b.step("adjust")  # adjust_polling_time: timing only
    b.step("dispatch")
    _dispatch(b, rslot)
    b.cur_step = None
    b.emit((JMP, head), "aio_poll", "")


def notifier(b: _Builder, ir, bh, schedules):
    """bh_schedule up to `schedules` times: the notifier may leave before any
    of them, as the seeds' notifier does.  (Exploring "up to" rather than
    "exactly" K schedules costs a few percent more states and makes the
    breadth-first counterexample use no more notifications than it needs.)"""
    stops = []
    for _ in range(schedules):
        stops.append(b.emit(None, "notifier", "the notifier may leave here"))
        b.hook("schedule", bh=bh)
    done = b.emit((DONE,), "notifier", "done")
    for pc in stops:
        b.patch(pc, (STOP, done))


def crash_tail(b: _Builder, recovery: bool):
    """Where a crashed process goes: its buffer drains; with recovery, the
    owner's pidfd of it then becomes readable."""
    b.cur_step = None
    b.crash_points = False
    start = b.here()
    if recovery:
        if b.model != SC:
            b.emit((DRAIN,), "crashed", "(its store buffer drains, then the kernel's exit path)")
        b.emit((DEATH,), "crashed", "its pidfd becomes readable (the owner may learn of the death)")
    b.emit((DONE,), "crashed", "crashed")
    b.p.crash = start

