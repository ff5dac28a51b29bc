# Bottom-half strategies written for the tests as an outsider would write
# them against aiocore's bottom-half hooks (issue 23): they import only
# aiocore's public Strategy base and share no code with strategies/.  The
# tests install them with the other outsiders (tests/outsiders/install.py)
# and let the checker and `aiocore stress` judge them.
from aiocore import Strategy

#: QEMU's QEMUBH::flags bits (util/async.c since 2020).
BH_PENDING, BH_SCHEDULED = 1, 2


class _FencedNotify(Strategy):
    """A notify side that is right on every model (5710a3e0's), so that what
    the checker finds in a subclass is its bottom-half side's."""

    def notify(s):
        s.smp_mb(pairs="the smp_mb after raising notify_me in poll_begin / prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="the xchg of notified in accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="the smp_mb at the top of notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="the smp_mb at the top of notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


class PlainScheduled(_FencedNotify):
    """bh->scheduled as a plain flag: a schedule that finds it set returns
    before any fence, and aio_bh_poll clears it with a plain store followed by
    nothing stronger than smp_rmb.  A schedule can then coalesce into a bottom
    half whose callback is already running and has already read the data the
    schedule published: two stores, two loads, no full fence between them."""

    name = "plain-scheduled"
    origin = "tests: QEMU's bottom halves from 924fe12 (2014-06) to e8d3b1a2 (2015-04)"
    expected = {"sc": "pass", "tso": "lost-work", "arm": "lost-work"}

    def schedule(s):
        if s.atomic_read(s.bh_scheduled):
            return  # already scheduled: nothing to do
        s.smp_mb(pairs="the smp_rmb in claim: the data before the flag")
        s.atomic_set(s.bh_scheduled, 1)
        s.notify()

    def claim(s):
        if s.atomic_read(s.bh_scheduled):
            s.atomic_set(s.bh_scheduled, 0)
            s.smp_rmb(pairs="the smp_mb in schedule: the flag before the data")
            return 1
        return 0

    def cancel(s):
        s.atomic_set(s.bh_scheduled, 0)


class XchgScheduled(PlainScheduled):
    """The same bottom halves with e8d3b1a2's fix: an xchg on both sides."""

    name = "xchg-scheduled"
    origin = "tests: QEMU's bottom halves after e8d3b1a2 (2015)"
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def schedule(s):
        if s.atomic_xchg(s.bh_scheduled, 1) == 0:
            s.notify()

    def claim(s):
        if s.atomic_read(s.bh_scheduled):
            return s.atomic_xchg(s.bh_scheduled, 0)
        return 0


class ListedFlags(_FencedNotify):
    """Today's bottom halves (util/async.c since 2020): flags set with
    fetch_or and cleared with fetch_and, a lock-free list of pending BHs
    (inserted with a cmpxchg loop, taken whole with one xchg), and a
    cancel that clears BH_SCHEDULED only."""

    name = "listed-flags"
    origin = "tests: QEMU's bottom-half list (2020-) on 5710a3e0's notify"
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def schedule(s):
        old = s.atomic_fetch_or(s.bh_flags, BH_PENDING | BH_SCHEDULED)
        if not old & BH_PENDING:
            for _ in s.retry(8):
                head = s.atomic_read(s.bh_list)
                s.atomic_set(s.bh_next, head)
                if s.atomic_cmpxchg(s.bh_list, head, s.bh_self) == head:
                    break
        s.notify()

    def claim_list(s):
        return s.atomic_xchg(s.bh_list, 0)

    def claim(s):
        old = s.atomic_fetch_and(s.bh_flags, ~(BH_PENDING | BH_SCHEDULED))
        return old & BH_SCHEDULED

    def bh_pending(s):
        return s.atomic_load_acquire(s.bh_flags) & BH_SCHEDULED

    def cancel(s):
        s.atomic_and(s.bh_flags, ~BH_SCHEDULED)


#: entry-point name -> class name (what the distribution registers).
ENTRY_POINTS = {
    "plain-scheduled": "PlainScheduled",
    "xchg-scheduled": "XchgScheduled",
    "listed-flags": "ListedFlags",
}
