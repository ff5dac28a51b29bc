# polling-flag: QEMU's protocol of today (601829f8 + 44277bf9: aio_notify
# always sets `notified`, aio_notify_accept clears it), with the blocking
# aio_poll announcing itself in a strategy-private shared field, `polling`,
# instead of adding 2 to notify_me.  notify_me keeps its GSource role (bit 0,
# set by prepare).  aio_notify writes the EventNotifier if either says that
# the poller may sleep.
#
# Both skeletons: every notify leaves `notified` set, which is what the
# polling skeleton's busy-poll phase and its last look before blocking read
# (timeout_zero), so a notify that saw neither flag raised is still seen.
#
# Only the home process polls (foreign_pollers stays False), so `polling`
# has a single writer and plain atomic_set / atomic_store_release suffice,
# exactly as 5710a3e0 argues for notify_me.  The smp_mb after writing it
# pairs with the smp_mb in notify: the store-buffering pattern with a fence
# on both sides, correct on every memory model.  Written in QEMU's spelling
# (qatomic_*), which aiocore accepts as well as the pre-2020 one.
from aiocore import Strategy

EVERYWHERE = {"sc": "pass", "tso": "pass", "arm": "pass"}


class PollingFlag(Strategy):
    """QEMU's notified protocol with aio_poll's announcement in a private flag instead of notify_me += 2."""

    name = "polling-flag"
    origin = "aiocore example plugin (variant of qemu 601829f8 + 44277bf9)"
    shared = ("polling",)
    skeletons = ("2015", "polling")
    accept_nonblocking = True
    expected = EVERYWHERE  # on the 2015 skeleton
    expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass"}}

    def notify(s):
        # Write bh->scheduled before notified.
        s.smp_wmb(pairs="smp_mb in accept")
        s.qatomic_set(s.notified, 1)
        # Write notified before reading the flags.
        s.smp_mb(pairs="smp_mb in poll_begin / prepare")
        if s.qatomic_read(s.polling) | s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        # Clear notified before reading the BH flags.
        s.smp_mb(pairs="smp_wmb in notify")

    def timeout_zero(s):
        # aio_context_notifier_poll: a notify since the last accept.
        return s.qatomic_read(s.notified)

    def on_event(s):
        s.event_notifier_test_and_clear()

    def poll_begin(s):
        s.qatomic_set(s.polling, 1)
        # Write the flag before computing the timeout (reading BH flags).
        s.smp_mb(pairs="smp_mb in notify")

    def poll_end(s):
        # Finish the poll before clearing the flag.
        s.qatomic_store_release(s.polling, 0)
        s.accept()

    def prepare(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in notify")

    def check(s):
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) & ~1)
        s.accept()
