# qemu-2018-b37548fc-before: the protocol b37548fc ("aio: Do
# aio_notify_accept only during blocking aio_poll") found, QEMU 2.7-3.0.
#
# 05e514b1's notify and accept, compiled with C11 RMWs (a0aa44b4), and the
# notifier's poll handler of the polling mode (4a1cba38, 2016-12), which
# returns atomic_read(&ctx->notified): a blocking aio_poll raises notify_me
# first, then reads `notified` in its poll phase and the BH flags in
# aio_compute_timeout.  aio_notify_accept still runs after every aio_poll,
# blocking or not, and a thread other than the home thread may still call
# aio_poll on the context.
#
# The hang b37548fc fixed (Red Hat bugzilla 1562750, booting many VMs at
# once on RHV): the main thread's bdrv_drained_end re-enables the
# IOThread's external fds and calls aio_notify, then bdrv_set_aio_context
# runs a non-blocking aio_poll on the IOThread's context, whose
# aio_notify_accept clears the event; the IOThread stays in ppoll with the
# virtio queue's fd still excluded and the guest's read of the MBR never
# completes.
#
# Encoding.  The 2016 skeleton raised notify_me before its poll phase and
# its timeout; aiocore's 2015 skeleton (poll_begin, then compute_timeout
# with timeout_zero first) is that skeleton with at most one poll round.
# aiocore's polling skeleton is 44277bf9's and is not declared.
from aiocore import Strategy

from ._bh import CancelMb2017
from ._record import Entry


class AcceptAfterEveryPoll(CancelMb2017, Strategy):
    """05e514b1's notify/accept with C11 RMWs and the notifier poll handler; accept after every aio_poll (QEMU before b37548fc, 2016-2018)."""

    name = "qemu-2018-b37548fc-before"
    origin = ('qemu b37548fcd1b8ac2e88e185a395bef851f3fc4e65^ (before 2018-08-09 "aio: Do '
              'aio_notify_accept only during blocking aio_poll"): a non-blocking aio_poll from the '
              'main thread steals the IOThread\'s event (bz1562750, RHV hosts)')
    foreign_pollers = True
    accept_nonblocking = True
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"},
        "gsource": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"},
    }

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
        # The notifier's poll handler (event_notifier_poll, 4a1cba38).
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
    strategy=AcceptAfterEveryPoll.name,
    commit="b37548fcd1b8ac2e88e185a395bef851f3fc4e65",
    date="2018-08-09",
    title="aio: Do aio_notify_accept only during blocking aio_poll",
    author="Fam Zheng",
    side="before",
    changed="(The state before the commit.) 05e514b1's aio_notify/aio_notify_accept with C11 RMWs "
            "on notify_me; the notifier's poll handler reads ctx->notified (polling mode, "
            "4a1cba38); aio_notify_accept after every aio_poll; foreign aio_poll allowed.",
    bug="A non-blocking aio_poll from the main thread (bdrv_set_aio_context) clears the event that "
        "bdrv_drained_end's aio_notify wrote for the IOThread, which hangs in ppoll; the guest's "
        "virtio-blk read never completes (Red Hat bugzilla 1562750).",
    effect="fixed",
    arch="x86_64 RHV hosts (the architecture is not stated; RHV ran on x86_64)",
    history={"2015": {"tso": "lost-wakeup"}},
    disagreement="The checker's pending work is a scheduled bottom half, which any poller that "
                 "steals the event runs itself, and its foreign poller always blocks; "
                 "bz1562750's work was the IOThread's own fd set (external handlers re-enabled by "
                 "a bare aio_notify), which only the home thread can act on, stolen by a "
                 "non-blocking poll.  The ARM lost wake-up it finds is Launchpad 1805256's "
                 "window, also present in this code.",
    refs=("Message-Id 20180809132259.18402-3-famz@redhat.com", "Red Hat bugzilla 1562750",
          "polling mode: 4a1cba38 (2016-12-01)", "after: qemu-2018-b37548fc"),
    encoding="2016-2020 polling skeleton as aiocore's 2015 skeleton with timeout_zero (at most "
             "one poll round, notify_me raised first).",
)
