# late-clear: QEMU eabc9779 ("AioContext: fix broken ctx->dispatching
# optimization", 2015).
#
# The commit that introduced ctx->notify_me.  aio_poll announces that it may
# block (notify_me += 2), aio_notify only writes the EventNotifier when
# someone may be sleeping; but the EventNotifier is still cleared by its own
# fd handler (aio_context_notifier_cb -> event_notifier_test_and_clear), that
# is during dispatch, long after ppoll returned.  With a second, temporary
# poller (bdrv_drain from another thread, under the AioContext lock) the
# handler of one poller can eat a wake-up that was meant for the other: the
# bug 21a03d17 fixed.  With one poller it is correct under SC and TSO.
#
# Skeletons: 2015 only.  Its notify never sets notified, so on the polling skeleton
# a notify can leave nothing the poll phase or the last look reads: the
# polling skeleton computes the timeout (reads the BH flags) *before*
# raising notify_me, so a bh_schedule whose notify reads notify_me == 0
# after compute_timeout and the poll phase but before poll_begin is seen
# by nobody, and the last look (notified) finds 0: the owner blocks with
# the BH pending (lost wake-up).  `aiocore check --skeleton polling`
# shows the trace.
from aiocore._compiler._strategy import Strategy


class LateClear(Strategy):
    """Clear the EventNotifier in its fd handler, during dispatch (QEMU eabc9779)."""

    name = "late-clear"
    origin = "qemu eabc9779 (2015)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = True
    accept_nonblocking = False
    # ARM, per profile: lost on arm-llsc, not on arm-lse.  aio_poll raises
    # notify_me with a seq_cst RMW and then reads the BH flags with plain
    # loads; compiled as an LDAXR/STLXR loop, the STLXR may become visible
    # after those loads are satisfied (a release orders only what precedes
    # it), so the notifier's smp_mb and read of notify_me can see 0 while the
    # poller saw no BH: store buffering through an RMW, the shape of 5710a3e0's
    # 2020 hang.  LSE's LDADDAL/LDSETAL is ordered before every later access.
    expected = {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup", "arm-llsc": "lost-wakeup", "arm-lse": "pass"},
        "gsource": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup", "arm-llsc": "lost-wakeup",
                    "arm-lse": "pass"},
        "foreign": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup", "arm-llsc": "lost-wakeup",
                    "arm-lse": "lost-wakeup"},
    }

    def notify(s):
        s.smp_mb(pairs="atomic_add in aio_poll (poll_begin) or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def poll_begin(s):
        s.atomic_add(s.notify_me, 2)

    def poll_end(s):
        s.atomic_sub(s.notify_me, 2)

    def prepare(s):
        s.atomic_or(s.notify_me, 1)

    def check(s):
        s.atomic_and(s.notify_me, ~1)

    def on_event(s):
        s.event_test_and_clear()
