# notified-blocking: QEMU b37548fc ("aio: Do aio_notify_accept only during
# blocking aio_poll", 2018).
#
# A non-blocking aio_poll (as bdrv_drain's loops do) that accepts a
# notification clears the EventNotifier, and a blocking aio_poll of the home
# thread that the notification was meant for may then sleep.  From this
# commit on, only a blocking aio_poll -- the one that set notify_me, in the
# home thread (foreign pollers were gone by 2018) -- calls
# aio_notify_accept.  The hooks are otherwise those of 05e514b1, RMWs on
# notify_me included, so ARMv8 can still lose the wake-up.
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


class NotifiedBlocking(Strategy):
    """aio_notify_accept only in blocking aio_poll (QEMU b37548fc)."""

    name = "notified-blocking"
    origin = "qemu b37548fc (2018)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = False
    accept_nonblocking = False
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
