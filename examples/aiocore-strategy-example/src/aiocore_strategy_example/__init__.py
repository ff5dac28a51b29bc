# polling-flag: QEMU 5710a3e0's protocol ("explicit-mb"), with the blocking
# aio_poll announcing itself in a strategy-private shared field, `polling`,
# instead of adding 2 to notify_me.  notify_me keeps its GSource role (bit 0,
# set by prepare).  aio_notify writes the EventNotifier if either says that
# the poller may sleep.
#
# Only the home process polls (foreign_pollers stays False), so `polling`
# has a single writer and plain atomic_set / atomic_store_release suffice,
# exactly as 5710a3e0 argues for notify_me.  The smp_mb after writing it
# pairs with the smp_mb at the top of notify: the store-buffering pattern
# with a fence on both sides, correct on every memory model.
from aiocore import Strategy


class PollingFlag(Strategy):
    """explicit-mb with aio_poll's announcement in a private flag instead of notify_me += 2."""

    name = "polling-flag"
    origin = "aiocore example plugin (variant of qemu 5710a3e0)"
    shared = ("polling",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # Write bh->scheduled before reading the flags.
        s.smp_mb(pairs="smp_mb in poll_begin / prepare")
        if s.atomic_read(s.polling) | s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.polling, 1)
        # Write the flag before computing the timeout (reading BH flags).
        s.smp_mb(pairs="smp_mb in notify")

    def poll_end(s):
        # Finish the poll before clearing the flag.
        s.atomic_store_release(s.polling, 0)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()
