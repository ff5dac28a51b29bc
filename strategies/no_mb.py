# no-mb: explicit-mb (QEMU 5710a3e0) without the smp_mb after writing
# notify_me -- known bad.
#
# With relaxed writes to notify_me, nothing orders the store to notify_me
# before the loads of the bottom-half flags in compute_timeout: the
# store-buffering pattern of the commit message, with one fence missing.  It
# passes under SC and fails wherever stores can wait in a store buffer (TSO,
# the x86 this project runs on) or be reordered (ARM).
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


class NoMb(Strategy):
    """explicit-mb without the smp_mb after writing notify_me (known bad)."""

    name = "no-mb"
    origin = "qemu 5710a3e0 (2020) minus its smp_mb in aio_poll (known bad)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = False
    accept_nonblocking = False
    expected = {"sc": "pass", "tso": "lost-wakeup", "arm": "lost-wakeup",
                "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}

    def notify(s):
        s.smp_mb(pairs="nothing on the poller's side: the smp_mb after writing notify_me is missing")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()
