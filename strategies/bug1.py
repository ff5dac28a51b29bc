# bug1: the seeds' Promela model with -DBUG1 -- known bad.
#
# aio_notify sets ctx->notified *before* the EventNotifier.  An
# aio_notify_accept that runs in between sees notified, clears it and reads
# the (still quiet) notifier; then the event is written, with notified clear,
# and no later accept will ever read it: the notifier stays readable and the
# poller spins (busy loop).  "CHECK_REQ does not detect this bug!", as the
# model says -- no wake-up is lost.
#
# The notify_me handshake is 5710a3e0's (relaxed single-writer notify_me and
# an explicit smp_mb, correct on every memory model), so that the only bug is
# the one named: the verdict is the same under SC, TSO and ARM.  Hence no
# foreign pollers either (notify_me has a single writer).
#
# Skeletons: 2015 only.  On the polling skeleton the checker's shortest
# counterexample is the same busy loop; a lost wake-up is reachable too.  Its
# notify sets notified only when it saw notify_me raised, so on the polling
# skeleton a notify can leave nothing the poll phase or the last look reads: the
# polling skeleton computes the timeout (reads the BH flags) *before*
# raising notify_me, so a bh_schedule whose notify reads notify_me == 0
# after compute_timeout and the poll phase but before poll_begin is seen
# by nobody, and the last look (notified) finds 0: the owner blocks with
# the BH pending (lost wake-up).  `aiocore check --skeleton polling`
# shows the trace.
from aiocore._compiler._strategy import Strategy


class Bug1(Strategy):
    """notified=1 before event=1: the notifier stays readable forever (Promela BUG1)."""

    name = "bug1"
    origin = "Promela model of qemu 05e514b1, -DBUG1, on 5710a3e0's barriers (known bad)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "busy-loop", "tso": "busy-loop", "arm": "busy-loop",
                                     "arm-llsc": "busy-loop", "arm-lse": "busy-loop"}}
    foreign_pollers = False
    accept_nonblocking = False
    expected = {"sc": "busy-loop", "tso": "busy-loop", "arm": "busy-loop",
                "arm-llsc": "busy-loop", "arm-lse": "busy-loop"}

    def notify(s):
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll (poll_begin, prepare)")
        if s.atomic_read(s.notify_me):
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")
            s.event_set()

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
