# always-notified: QEMU 601829f8 + 44277bf9 (2020), upstream today.
#
# aio_notify always sets ctx->notified, and only then -- after an smp_mb --
# looks at notify_me to decide whether to write the EventNotifier.  The flag
# is polled in userspace (aio_context_notifier_poll returns it, which makes
# aio_poll's timeout zero: the timeout_zero hook), aio_notify_accept merely
# clears it and fences, and the EventNotifier goes back to being cleared by
# its own fd handler (aio_context_notifier_cb).  That is safe now because a
# wake-up is never consumed through the notifier alone: whoever clears
# ctx->notified orders that before reading the bottom-half flags.
#
# Skeletons: 2015 and polling.  notify sets notified unconditionally (before
# looking at notify_me), so the poll phase and the last look -- both read
# notified through timeout_zero, aio_context_notifier_poll -- see every
# notify, whether or not notify_me was raised yet: this is the strategy
# QEMU's polling mode was written for.
from aiocore._compiler._strategy import Strategy


class AlwaysNotified(Strategy):
    """notified is always set and polled; the notifier's handler clears the event (upstream)."""

    name = "always-notified"
    origin = "qemu 601829f8 + 44277bf9 (2020), upstream today"
    skeletons = ("2015", "polling")
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass"}}
    foreign_pollers = False
    accept_nonblocking = True
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # Write e.g. bh->scheduled before writing ctx->notified.
        s.smp_wmb(pairs="smp_mb in aio_notify_accept()")
        s.atomic_set(s.notified, 1)
        # Write ctx->notified (and bh->scheduled) before reading notify_me.
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll (poll_begin, prepare)")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.atomic_set(s.notified, 0)
        # Order the clearing of ctx->notified before reads of e.g. the
        # bottom-half flags.
        s.smp_mb(pairs="smp_wmb in aio_notify()")

    def timeout_zero(s):
        # aio_context_notifier_poll: no need for load-acquire, this only
        # kicks the event loop; aio_notify_accept synchronizes.
        return s.atomic_read(s.notified)

    def on_event(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()
