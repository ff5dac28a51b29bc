# QEMU's bottom-half side in each era, as mixins the entries combine with
# their notify side.  Written against aiocore's bottom-half hooks (issue 23):
# schedule, schedule_oneshot, cancel, claim (returns non-zero to run the
# callback), bh_pending (what aio_compute_timeout and the poll rounds see),
# claim_list (the list aio_bh_poll walks).  The fields are the BH in hand:
# s.bh_scheduled (QEMU's bool before 2020) alias s.bh_flags (its flags word
# since), s.bh_next (its list link), s.bh_self (what a list holds).
#
#   PlainFlag2014    924fe129 .. e8d3b1a2: check-then-set with plain stores
#   XchgFlag2015     e8d3b1a2 .. ef6dada8: atomic_xchg on both sides, cancel
#                    still a plain store
#   Oneshot2016      5b8bb359: aio_bh_schedule_oneshot publishes a fresh BH
#                    under the list lock and does not notify
#   OneshotNotify2016  c9d1a561: ... and calls aio_notify after the unlock
#   CancelMb2017     ef6dada8: qemu_bh_cancel is atomic_mb_set(&scheduled, 0)
#   FlagsList2020    8c6b0356: a flags word and a lock-free list; aio_notify
#                    on every schedule; relaxed reads of the flags
#   FlagsList2025    5142397c: the same, flags read with load-acquire
from __future__ import annotations

#: QEMUBH's flags (util/async.c since 8c6b0356).
BH_PENDING, BH_SCHEDULED, BH_DELETED, BH_ONESHOT, BH_IDLE = 1, 2, 4, 8, 16

#: The cmpxchg loop of QSLIST_INSERT_HEAD_ATOMIC is unbounded in QEMU; the
#: checker needs a bound, and with the bounds of `aiocore check` (at most
#: four notifiers) no more than this many attempts can fail in a row.
INSERT_ATTEMPTS = 8


class PlainFlag2014:
    """bh->scheduled as a plain bool (924fe129, June 2014, to e8d3b1a2, April 2015)."""

    def schedule(s):
        # "Already scheduled": return on a plain read, with no barrier
        # between the caller's writes and this read.
        if s.atomic_read(s.bh_scheduled):
            return
        # The BH's context is loaded first (924fe129), then the data and
        # bh->idle are ordered before the flag.
        s.smp_mb(pairs="the smp_rmb after the clear in aio_bh_poll")
        s.atomic_set(s.bh_scheduled, 1)
        s.notify()

    def claim(s):
        # aio_bh_poll: a plain read, a plain clear, then only a read barrier
        # before the callback.
        if s.atomic_read(s.bh_scheduled):
            s.atomic_set(s.bh_scheduled, 0)
            s.smp_rmb(pairs="the smp_mb in qemu_bh_schedule")
            return 1
        return 0

    def cancel(s):
        s.atomic_set(s.bh_scheduled, 0)


class XchgFlag2015:
    """atomic_xchg on bh->scheduled in qemu_bh_schedule and aio_bh_poll (e8d3b1a2, 2015)."""

    def schedule(s):
        if s.atomic_xchg(s.bh_scheduled, 1) == 0:
            s.notify()

    def claim(s):
        # aio_bh_poll: `!bh->deleted && atomic_xchg(&bh->scheduled, 0)`,
        # no relaxed read first.
        return s.atomic_xchg(s.bh_scheduled, 0)

    def cancel(s):
        # qemu_bh_cancel: still a plain store (until ef6dada8, 2017).
        s.atomic_set(s.bh_scheduled, 0)


class Oneshot2016(XchgFlag2015):
    """aio_bh_schedule_oneshot without aio_notify (5b8bb359, 2016-10-03)."""

    def schedule_oneshot(s):
        # A new BH, scheduled and deleted from birth, linked at the head of
        # ctx->first_bh under ctx->bh_lock (smp_wmb before the link; the
        # unlock releases it): a store-release of the flag, and nothing else.
        s.atomic_store_release(s.bh_scheduled, 1)


class OneshotNotify2016(XchgFlag2015):
    """aio_bh_schedule_oneshot followed by aio_notify (c9d1a561, 2016-10-27)."""

    def schedule_oneshot(s):
        s.atomic_store_release(s.bh_scheduled, 1)
        s.notify()


class CancelMb2017(OneshotNotify2016):
    """qemu_bh_cancel with atomic_mb_set (ef6dada8, 2017-11-08)."""

    def cancel(s):
        # The consumer cancels, so the clear must come before its later
        # reads of the data (thread-pool.c's req->state).
        s.atomic_mb_set(s.bh_scheduled, 0, pairs="the xchg in qemu_bh_schedule")


class FlagsList2020:
    """A flags word and a lock-free list of pending BHs (8c6b0356, 2020)."""

    def enqueue(s, new_flags):
        # aio_bh_enqueue: set PENDING with the new flags; the BH that was not
        # pending goes on ctx->bh_list (QSLIST_INSERT_HEAD_ATOMIC's cmpxchg
        # loop); aio_notify in any case.
        old = s.atomic_fetch_or(s.bh_flags, BH_PENDING | new_flags)
        if not old & BH_PENDING:
            for _ in s.retry(INSERT_ATTEMPTS):
                head = s.atomic_read(s.bh_list)
                s.atomic_set(s.bh_next, head)
                if s.atomic_cmpxchg(s.bh_list, head, s.bh_self) == head:
                    break
        s.notify()

    def schedule(s):
        s.enqueue(BH_SCHEDULED)

    def schedule_oneshot(s):
        s.enqueue(BH_SCHEDULED | BH_ONESHOT)

    def cancel(s):
        s.atomic_and(s.bh_flags, ~BH_SCHEDULED)

    def claim_list(s):
        # QSLIST_MOVE_ATOMIC in aio_bh_poll: the whole list at once.
        return s.atomic_xchg(s.bh_list, 0)

    def claim(s):
        # aio_bh_dequeue: clear PENDING, SCHEDULED and IDLE; call the BH if
        # it was scheduled (and not deleted).
        old = s.atomic_fetch_and(s.bh_flags, ~(BH_PENDING | BH_SCHEDULED | BH_IDLE))
        return (old & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED

    def bh_pending(s):
        # aio_compute_bh_timeout and aio_ctx_check: a plain C read of the
        # flags until 5142397c.
        return (s.atomic_read(s.bh_flags) & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED


class FlagsList2025(FlagsList2020):
    """The flags read with load-acquire in the timeout and glib's check (5142397c, 2025)."""

    def bh_pending(s):
        return (s.atomic_load_acquire(s.bh_flags) & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED
