# qemu-2018-b37548fc: "aio: Do aio_notify_accept only during blocking
# aio_poll" (QEMU 3.0, with 70232b52 "aio-posix: Don't count ctx->notifier
# as progress when polling").
#
# aio_notify_accept moves into the blocking branch of aio_poll, after
# notify_me -= 2, and a blocking aio_poll must run in the context's home
# thread (an assert).  An event is consumed only by the poller it was
# written for.  70232b52, the patch before it, stops counting the
# notifier's poll handler as progress, so that a non-blocking aio_poll
# that no longer accepts does not report progress forever.
#
# Still C11 RMWs on notify_me with relaxed reads of the BH flags after
# them: the ARMv8.0 window a0aa44b4 opened is there, and it is in this code
# that it was reported (Launchpad 1805256, November 2018), fixed by
# 5710a3e0 in 2020.
from aiocore import Strategy

from ._bh import CancelMb2017
from ._record import Entry


class AcceptOnlyBlocking(CancelMb2017, Strategy):
    """aio_notify_accept only in a blocking aio_poll of the home thread (QEMU b37548fc, 2018)."""

    name = "qemu-2018-b37548fc"
    origin = ('qemu b37548fcd1b8ac2e88e185a395bef851f3fc4e65 (2018-08-09) "aio: Do '
              'aio_notify_accept only during blocking aio_poll": fixes bz1562750 (RHV, x86_64); '
              'the ARMv8.0 hang of Launchpad 1805256 remains')
    foreign_pollers = False
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}

    def notify(s):
        # Write bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="the atomic_add in aio_poll or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_notifier_test_and_clear()

    def timeout_zero(s):
        # The notifier's poll handler: a hit zeroes the timeout, it is not
        # progress (70232b52, e30cffa0).
        return s.atomic_read(s.notified)

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


RECORD = Entry(
    strategy=AcceptOnlyBlocking.name,
    commit="b37548fcd1b8ac2e88e185a395bef851f3fc4e65",
    date="2018-08-09",
    title="aio: Do aio_notify_accept only during blocking aio_poll",
    author="Fam Zheng",
    side="after",
    changed="aio_notify_accept runs only in a blocking aio_poll, after notify_me -= 2; blocking "
            "aio_poll asserts it runs in the home thread (with 70232b52: a notifier poll hit is "
            "not progress).",
    bug="Fixes bz1562750 (a non-blocking aio_poll stealing the IOThread's event).  The ARMv8.0 "
        "window of a0aa44b4 remains: Launchpad 1805256, qemu-img convert hanging on a HiSilicon "
        "D06 (November 2018), fixed by 5710a3e0.",
    effect="fixed",
    arch="x86_64 RHV hosts (bz1562750, inferred); aarch64 (Launchpad 1805256, still open here)",
    history={"2015": {"arm": "lost-wakeup"}},
    refs=("Message-Id 20180809132259.18402-3-famz@redhat.com", "70232b52 (same series)",
          "Launchpad 1805256", "before: qemu-2018-b37548fc-before", "built-in: notified-blocking"),
    encoding="2016-2020 polling skeleton as aiocore's 2015 skeleton with timeout_zero.",
)
