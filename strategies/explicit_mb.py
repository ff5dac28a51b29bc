# explicit-mb: QEMU 5710a3e0 ("async: use explicit memory barriers", 2020).
#
# The aarch64 hang: atomic_add(&ctx->notify_me, 2) is a seq_cst RMW, which
# on ARMv8 (ldaxr/stlxr) does not order the relaxed reads of the bottom-half
# flags that follow it, so aio_poll can miss a BH while aio_notify misses
# notify_me.  notify_me has a single writer (the home thread), so the commit
# relaxes the writes to atomic_read/atomic_set (release when clearing) and
# puts an explicit smp_mb between writing notify_me and computing the
# timeout, pairing with the smp_mb in aio_notify.
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


class ExplicitMb(Strategy):
    """Relaxed single-writer notify_me with an explicit smp_mb (QEMU 5710a3e0)."""

    name = "explicit-mb"
    origin = "qemu 5710a3e0 (2020)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = False
    accept_nonblocking = False
    expected = {"sc": "pass", "tso": "pass", "arm": "pass",
                "arm-llsc": "pass", "arm-lse": "pass"}

    def notify(s):
        # Write e.g. bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll (poll_begin, prepare)")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        # Write ctx->notify_me before computing the timeout (reading
        # bottom half flags, etc.).
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def poll_end(s):
        # Finish the poll before clearing the flag.
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def check(s):
        # Finish computing the timeout before clearing the flag.
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()
