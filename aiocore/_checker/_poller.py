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
    BR, CBREAD, CHOOSE, DEATH, DONE, DRAIN, DTAC, ETAC, INFINITE, JMP, READ, SC, SET, STOP,
    WAIT, WRITE, _Builder,
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


def _site(b: _Builder, ir, site, where):
    """A timeout site (aiocore._compiler._ir.TIMEOUT_SITES): the strategy's hook for it
    (or timeout_zero), else the core's default -- atomic_read(notified) for
    the notifier poll and the last look (aio_context_notifier_poll), nothing
    for compute_timeout.  The branch taken when it is non-zero, or None."""
    hook = ir.site(site)
    if hook is not None:
        r = b.slot(f"{where}.{hook}")
        b.hook(hook, ret_slot=r)
        return _br_nonzero(b, r, where, f"if {hook}() -> timeout 0")
    if site == "compute_timeout":
        return None
    r = b.slot(f"{where}.notified")
    loc = b.locs["notified"]
    b.emit((READ, loc, False, r), where, "atomic_read(notified)")
    return _br_nonzero(b, r, where, "if notified -> timeout 0")


def _notifier_poll(b: _Builder, ir, where):
    """aio_context_notifier_poll (the notifier_poll site, in the busy-poll
    rounds) or the last look (the last_look site): the branch taken when it
    says "do not block"."""
    return _site(b, ir, "last_look" if where == "last_look" else "notifier_poll", where)


def _walk(b: _Builder, ir, where, head_slot, visit):
    """The BHs a poller looks at: every BH in id order (no claim_list hook),
    or the strategy's list from the value in head_slot, each step reading the
    link (acquire: it stands for the address dependency of following a
    pointer, as the C's walk does) -- bounded by the number of BHs, as the
    C's is.  visit(k, bh) emits what is done with BH k."""
    if not ir.has_list:
        for k, bh in enumerate(b.bhs):
            visit(k, bh, None)
        return
    n = len(b.bhs)
    done = []
    for step in range(n):
        step_end = []
        for k, bh in enumerate(b.bhs):
            br = b.emit(None, where, f"if the list's next is bh{k}", {head_slot})
            nxt = b.slot(f"{where}.next{k}.{step}")
            visit(k, bh, nxt)
            step_end.append(b.emit(None, where, ""))
            b.patch(br, (BR, (lambda s, v: lambda e: 1 if e[s] == v else 0)(head_slot, bh.self_value),
                         b.here()))
        done.append(b.emit(None, where, "end of the list"))
        for pc in step_end:
            b.patch(pc, (JMP, b.here()))
    for pc in done:
        b.patch(pc, (JMP, b.here()))


def _read_link(b: _Builder, bh, dst, head_slot, where, k):
    b.emit((READ, bh.next, True, dst), where, f"next = bh{k}->next (the list's link)")
    b.emit((SET, head_slot, (lambda d: lambda e: e[d])(dst)), where, "follow it", {dst})


def _bh_polls(b: _Builder, ir, where):
    """bh_pending on each BH the poller looks at; the branches taken when one
    is pending."""
    out = []
    head = -1
    if ir.has_list:
        head = b.slot(f"{where}.list")
        b.emit((READ, b.locs["bh_list"], True, head), where, "p = bh_list (the list's head)")

    def visit(k, bh, nxt):
        r = b.slot(f"{where}.bh{k}")
        b.hook("bh_pending", bh=bh, ret_slot=r)
        out.append(_br_nonzero(b, r, where, f"if bh{k} pending -> timeout 0"))
        if nxt is not None:
            _read_link(b, bh, nxt, head, where, k)

    _walk(b, ir, where, head, visit)
    return out


def _compute_timeout(b: _Builder, ir, tslot):
    """aio_compute_timeout: the compute_timeout site, then bh_pending on each BH."""
    zero = []
    br = _site(b, ir, "compute_timeout", "compute_timeout")
    if br is not None:
        zero.append(br)
    zero += _bh_polls(b, ir, "compute_timeout")
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


def _dispatch(b: _Builder, ir, rslot):
    """aio_dispatch: aio_bh_poll -- claim_list if the strategy keeps a list,
    then on each BH it yields (else on every BH) the strategy's claim, and if
    it says so the callback starts (CBREAD: it reads the BH's payload) --
    then on_event if the notifier was readable."""
    head = -1
    if ir.has_list:
        head = b.slot("dispatch.list")
        b.hook("claim_list", ret_slot=head)

    def visit(k, bh, nxt):
        if nxt is not None:
            # the link first: once claimed, the BH may be put on a list again
            b.emit((READ, bh.next, True, nxt), "dispatch", f"next = bh{k}->next (the list's link)")
        c = b.slot(f"dispatch.claim{k}")
        b.hook("claim", bh=bh, ret_slot=c)
        br = b.emit(None, "dispatch", f"if claimed -> bh{k}'s callback", {c})
        v = b.slot(f"dispatch.payload{k}")
        b.emit((CBREAD, bh.payload, k, v, True), "dispatch",
               f"bh{k}'s callback starts: payload = atomic_read(bh{k}.payload)")
        if b.callback == "cancel-reread":
            # thread-pool.c since b7a745dc: done with what it saw, the callback
            # cancels its own BH and looks at the requests again
            b.hook("cancel", bh=bh)
            b.emit((CBREAD, bh.payload, k, v, False), "dispatch",
                   f"bh{k}'s callback, after qemu_bh_cancel: payload = atomic_read(bh{k}.payload)")
        b.patch(br, (BR, (lambda s: lambda e: e[s])(c), b.here()))
        if nxt is not None:
            b.emit((SET, head, (lambda d: lambda e: e[d])(nxt)), "dispatch", "follow the link", {nxt})

    _walk(b, ir, "dispatch", head, visit)
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
    _dispatch(b, ir, rslot)
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
    _dispatch(b, ir, rslot)
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
        successes += _bh_polls(b, ir, "poll_handlers")
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
    _dispatch(b, ir, rslot)
    b.cur_step = None
    b.emit((JMP, head), "aio_poll", "")


def notifier(b: _Builder, ir, bhs, schedules, oneshot=False):
    """bh_schedule up to `schedules` times: the notifier may leave before any
    of them, as the seeds' notifier does.  (Exploring "up to" rather than
    "exactly" K schedules costs a few percent more states and makes the
    breadth-first counterexample use no more notifications than it needs.)
    Before its j-th schedule it writes the payload j with a plain store: the
    data the callback must see (QEMU's contract, DESIGN.md "Lost work").
    With one BH (bh mode "reuse") it reschedules it with the schedule hook;
    with one per schedule ("oneshot") each is a fresh BH scheduled once with
    schedule_oneshot (aio_bh_schedule_oneshot), its payload 1."""
    stops = []
    for j in range(1, schedules + 1):
        bh = bhs[j - 1] if oneshot else bhs[0]
        k = bh.self_value - 1
        v = 1 if oneshot else j
        stops.append(b.emit(None, "notifier", "the notifier may leave here"))
        b.emit((WRITE, bh.payload, False, (lambda x: lambda e: x)(v), True), "notifier",
               f"atomic_set(bh{k}.payload, {v}) (what the callback must see)")
        b.hook("schedule_oneshot" if oneshot else "schedule", bh=bh)
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

