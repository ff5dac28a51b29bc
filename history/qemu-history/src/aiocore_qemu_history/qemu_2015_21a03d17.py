# qemu-2015-21a03d17: "AioContext: fix broken placement of
# event_notifier_test_and_clear" (QEMU 2.4-rc).
#
# The EventNotifier is cleared right after ppoll returns, in every aio_poll
# (blocking or not, home thread or not), and in the GSource check; the
# notifier's fd handler does nothing.  A poller now clears only an event it
# is about to act on: it dispatches the bottom halves right after, so an
# event written for another poller is never consumed without its work being
# done.  The commit message says it is "a bit of a big hammer" (a read
# system call per iteration) that 05e514b1 optimizes.
#
# 2015 semantics: atomic_add/sub/or/and were __sync builtins, full barriers
# (_era.Sync2015).  With today's seq_cst RMWs the same hooks lose a wake-up
# on ARMv8.0 (the built-in `unconditional` shows it); see qemu-2016-a0aa44b4.
from aiocore import Strategy

from ._era import Sync2015
from ._bh import XchgFlag2015
from ._record import Entry


class FixTestAndClearPlacement(Sync2015, XchgFlag2015, Strategy):
    """event_notifier_test_and_clear right after ppoll in every aio_poll (QEMU 21a03d17, 2015)."""

    name = "qemu-2015-21a03d17"
    origin = ('qemu 21a03d17f2edb1e63f7137d97ba355cc6f19d79f (2015-07-21) "AioContext: fix broken '
              'placement of event_notifier_test_and_clear": fixes a second poller eating the event '
              '(hang on aarch64 KVM)')
    foreign_pollers = True
    accept_nonblocking = True
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # Write bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="the atomic_add in aio_poll or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.event_notifier_test_and_clear()

    def poll_begin(s):
        s.sync_add(s.notify_me, 2)

    def poll_end(s):
        s.sync_sub(s.notify_me, 2)
        s.accept()

    def prepare(s):
        s.sync_or(s.notify_me, 1)

    def check(s):
        s.sync_and(s.notify_me, ~1)
        s.accept()


RECORD = Entry(
    strategy=FixTestAndClearPlacement.name,
    commit="21a03d17f2edb1e63f7137d97ba355cc6f19d79f",
    date="2015-07-21",
    title="AioContext: fix broken placement of event_notifier_test_and_clear",
    author="Paolo Bonzini",
    side="after",
    changed="event_notifier_test_and_clear runs right after ppoll in every aio_poll and in "
            "aio_ctx_check; the notifier's fd handler becomes a no-op.",
    bug="Fixes a VCPU thread's aio_poll clearing the event written for the main I/O thread, which "
        "then sleeps in ppoll with the completion BH pending (three-thread trace in the message).",
    effect="fixed",
    arch="aarch64 KVM (reported and tested by Richard W.M. Jones)",
    history={"2015": {"arm": "pass"}},
    refs=("Message-id 1437487673-23740-6-git-send-email-pbonzini@redhat.com",
          "docs/aio_notify_bug.promela (new in this commit)", "before: qemu-2015-eabc9779",
          "built-in: unconditional"),
    encoding="2015 RMWs with their trailing full barrier (__sync builtins).",
)
