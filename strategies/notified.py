# notified: QEMU 05e514b1 ("AioContext: optimize clearing the
# EventNotifier", 2015) -- the commit of the seeds.
#
# aio_notify rarely sets the EventNotifier (thanks to notify_me), yet
# 21a03d17 made every aio_poll pay a read() system call to clear it.  The
# "notified" flag is a userspace fast path: aio_notify sets it after the
# event (atomic_mb_set), aio_notify_accept clears it with an xchg and only
# reads the notifier if it was set.  Setting the event conditionally as well
# is wrong (that is BUG2 of the formal model, strategy bug2), and so is
# setting the flag before the event (BUG1, strategy bug1).
#
# Skeletons: 2015 only.  Its notify sets notified only when it saw notify_me raised, so on the polling skeleton
# a notify can leave nothing the poll phase or the last look reads: the
# polling skeleton computes the timeout (reads the BH flags) *before*
# raising notify_me, so a bh_schedule whose notify reads notify_me == 0
# after compute_timeout and the poll phase but before poll_begin is seen
# by nobody, and the last look (notified) finds 0: the owner blocks with
# the BH pending (lost wake-up).  `aiocore check --skeleton polling`
# shows the trace.
from aiocore._compiler._strategy import Strategy


class Notified(Strategy):
    """Skip event_notifier_test_and_clear unless aio_notify set the event (QEMU 05e514b1)."""

    name = "notified"
    origin = "qemu 05e514b1 (2015)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = True
    accept_nonblocking = True
    # ARM, per profile: lost on arm-llsc, not on arm-lse.  aio_poll raises
    # notify_me with a seq_cst RMW and then reads the BH flags with plain
    # loads; compiled as an LDAXR/STLXR loop, the STLXR may become visible
    # after those loads are satisfied (a release orders only what precedes
    # it), so the notifier's smp_mb and read of notify_me can see 0 while the
    # poller saw no BH: store buffering through an RMW, the shape of 5710a3e0's
    # 2020 hang.  LSE's LDADDAL/LDSETAL is ordered before every later access.
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup",
                "arm-llsc": "lost-wakeup", "arm-lse": "pass"}

    def notify(s):
        s.smp_mb(pairs="atomic_add in aio_poll (poll_begin) or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_add(s.notify_me, 2)

    def poll_end(s):
        s.atomic_sub(s.notify_me, 2)
        s.accept()

    def prepare(s):
        s.atomic_or(s.notify_me, 1)

    def check(s):
        s.atomic_and(s.notify_me, ~1)
        s.accept()
