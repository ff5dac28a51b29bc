# bug2: the seeds' Promela model with -DBUG2 -- known bad.
#
# Optimizing event_notifier_set the way 05e514b1 optimized the clear: write
# the event only if ctx->notified is clear.  But notified may be left set
# after the poller cleared the event (the accept's xchg and its read of the
# notifier are two steps), and then every later aio_notify skips the write
# while the poller sleeps: a lost wake-up.  Hence the comment 05e514b1 put in
# aio.h: "event_notifier_set *cannot* be optimized the same way".
#
# The notify_me handshake is 5710a3e0's (relaxed single-writer notify_me and
# an explicit smp_mb, correct on every memory model), so that the only bug is
# the one named: the verdict is the same under SC, TSO and ARM.  Hence no
# foreign pollers either (notify_me has a single writer).
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


class Bug2(Strategy):
    """event_set only if !notified: a wake-up is lost (Promela BUG2)."""

    name = "bug2"
    origin = "Promela model of qemu 05e514b1, -DBUG2, on 5710a3e0's barriers (known bad)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = False
    accept_nonblocking = False
    expected = {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}

    def notify(s):
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll (poll_begin, prepare)")
        if s.atomic_read(s.notify_me):
            if not s.atomic_read(s.notified):
                s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
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
