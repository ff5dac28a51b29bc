# always-notified: upstream QEMU today -- util/async.c and util/aio-posix.c as
# they stand at the end of 2025 (last protocol change 5142397c, 2025-10),
# in QEMU's spelling (qatomic_*, event_notifier_*).
#
# The wake-up side is 601829f8 + 44277bf9 (2020).  aio_notify always sets
# ctx->notified, and only then -- after an smp_mb -- looks at notify_me to
# decide whether to write the EventNotifier.  aio_notify_accept merely clears
# notified and fences; the EventNotifier is cleared by its own fd handler
# (aio_context_notifier_cb).  notified is read at exactly two sites: the
# notifier's poll handler (aio_context_notifier_poll, each busy-poll round)
# and aio_poll's last look after raising notify_me.  aio_compute_timeout --
# and so GSource prepare -- never reads it: no compute_timeout hook.
#
# The bottom-half side is 8c6b0356 (2020) with 5142397c's acquire reads
# (2025).  A BH has a flags word: aio_bh_enqueue sets PENDING plus the new
# flags with qatomic_fetch_or, pushes a BH that was not pending onto
# ctx->bh_list with QSLIST_INSERT_HEAD_ATOMIC's cmpxchg loop, and calls
# aio_notify every time.  aio_bh_poll takes the whole list with one
# qatomic_xchg and clears each BH's PENDING | SCHEDULED | IDLE with
# qatomic_fetch_and before calling it; qemu_bh_cancel clears SCHEDULED with
# qatomic_and; aio_compute_bh_timeout and aio_ctx_check read the flags with
# qatomic_load_acquire.  Synchronization between a schedule and its callback
# rides on the list: the insertion's cmpxchg and aio_bh_poll's xchg
# (QEMU's comments since 8dd48650).
#
# The one departure QEMU forces on aiocore: QSLIST_INSERT_HEAD_ATOMIC's loop
# is unbounded; here it is bounded at INSERT_ATTEMPTS attempts, more than
# the checker's notifiers can make fail in a row.  Left out as outside the
# model: BH_DELETED / BH_IDLE (no deletes, no idle BHs), the slice list of
# nested aio_bh_poll, icount's record/replay kick.
#
# Skeletons: 2015 and polling.  Every notify leaves notified set before it
# looks at notify_me, so the poll phase and the last look see each notify
# whether or not notify_me was raised yet: the strategy QEMU's polling mode
# was written for.
from aiocore._compiler._strategy import Strategy

#: QEMUBH's flags.
BH_PENDING, BH_SCHEDULED, BH_DELETED, BH_ONESHOT, BH_IDLE = 1, 2, 4, 8, 16
#: Bound of the insertion's cmpxchg retry loop (unbounded in QEMU).
INSERT_ATTEMPTS = 8


class AlwaysNotified(Strategy):
    """util/async.c and util/aio-posix.c of today: notified always set and polled, BH flags on a lock-free list (upstream)."""

    name = "always-notified"
    origin = "qemu 601829f8 + 44277bf9 (2020), BH list 8c6b0356 (2020), acquire reads 5142397c (2025): upstream today"
    skeletons = ("2015", "polling")
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource.
    expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass",
                                     "arm-llsc": "pass", "arm-lse": "pass"}}
    foreign_pollers = False
    accept_nonblocking = True  # aio_notify_accept after every wait
    expected = {"sc": "pass", "tso": "pass", "arm": "pass",
                "arm-llsc": "pass", "arm-lse": "pass"}

    # --- util/async.c: aio_notify, aio_notify_accept, the notifier ---------

    def notify(s):
        # Write e.g. ctx->bh_list before writing ctx->notified.
        s.smp_wmb(pairs="smp_mb in aio_notify_accept()")
        s.qatomic_set(s.notified, 1)
        # Write ctx->notified (and ctx->bh_list) before reading notify_me.
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll")
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        # Order the poll handler's reads of notified and this clear before
        # reads of e.g. the bottom-half flags.
        s.smp_mb(pairs="smp_wmb in aio_notify()")

    def notifier_poll(s):
        # aio_context_notifier_poll: a relaxed read is enough to kick the
        # event loop; aio_notify_accept synchronizes with the producers.
        return s.qatomic_read(s.notified)

    def on_event(s):
        # aio_context_notifier_cb
        s.event_notifier_test_and_clear()

    # --- util/async.c: the GSource ------------------------------------------

    def prepare(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) | 1)
        # Write notify_me before computing the timeout (reading BH flags).
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def check(s):
        # Finish computing the timeout before clearing the flag.
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) & ~1)
        s.accept()

    # --- util/aio-posix.c: aio_poll ----------------------------------------

    def poll_begin(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) + 2)
        # Write notify_me before reading notified (the last look).
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def last_look(s):
        # "Don't block if aio_notify() was called."
        return s.qatomic_read(s.notified)

    def poll_end(s):
        # Finish the poll before clearing the flag.
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) - 2)
        s.accept()

    # --- util/async.c: the bottom halves -------------------------------------

    def enqueue(s, new_flags):
        # aio_bh_enqueue.  The fetch_or synchronizes with the fetch_and in
        # aio_bh_dequeue: the insertion starts after PENDING is set.
        old = s.qatomic_fetch_or(s.bh_flags, BH_PENDING | new_flags)
        if not old & BH_PENDING:
            # QSLIST_INSERT_HEAD_ATOMIC: the BH becomes visible to
            # aio_bh_poll here, with what was written before the schedule.
            for _ in s.retry(INSERT_ATTEMPTS):
                head = s.qatomic_read(s.bh_list)
                s.qatomic_set(s.bh_next, head)
                if s.qatomic_cmpxchg(s.bh_list, head, s.bh_self) == head:
                    break
        s.notify()

    def schedule(s):
        s.enqueue(BH_SCHEDULED)

    def schedule_oneshot(s):
        s.enqueue(BH_SCHEDULED | BH_ONESHOT)

    def cancel(s):
        s.qatomic_and(s.bh_flags, ~BH_SCHEDULED)

    def claim_list(s):
        # QSLIST_MOVE_ATOMIC in aio_bh_poll.
        return s.qatomic_xchg(s.bh_list, 0)

    def claim(s):
        # aio_bh_dequeue: the removal finishes before PENDING is reset.
        old = s.qatomic_fetch_and(s.bh_flags, ~(BH_PENDING | BH_SCHEDULED | BH_IDLE))
        return (old & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED

    def bh_pending(s):
        # aio_compute_bh_timeout, aio_ctx_check.
        return (s.qatomic_load_acquire(s.bh_flags) & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED
