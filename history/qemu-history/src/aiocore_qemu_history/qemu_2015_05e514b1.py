# qemu-2015-05e514b1: "AioContext: optimize clearing the EventNotifier"
# (QEMU 2.4-rc).
#
# aio_notify remembers that it wrote the EventNotifier in ctx->notified
# (after the write, with a full barrier); aio_notify_accept reads the event
# only if it takes notified from 1 to 0 with atomic_xchg.  The read system
# call disappears from iterations nobody notified.  The commit's Promela
# model (the seeds' aio_notify_accept.promela) shows the two orders that
# fail: notified before the event (a busy loop) and an event write skipped
# when notified is set (a lost wake-up).
#
# 2015 semantics: atomic_add/sub/or/and were __sync builtins, full barriers
# (_era.Sync2015).  qemu-2016-a0aa44b4 is the same protocol as compiled
# once QEMU switched to C11 atomics.
from aiocore import Strategy

from ._era import Sync2015
from ._bh import XchgFlag2015
from ._record import Entry


class OptimizeClearing(Sync2015, XchgFlag2015, Strategy):
    """ctx->notified says whether aio_notify wrote the event; accept reads it only then (QEMU 05e514b1, 2015)."""

    name = "qemu-2015-05e514b1"
    origin = ('qemu 05e514b1d4d5bd4209e2c8bbc76ff05c85a235f3 (2015-07-21) "AioContext: optimize '
              'clearing the EventNotifier": an optimization, 3000 reboots on aarch64 KVM; an x86 '
              'virtio-net slowdown bisected to it (LP 1668829)')
    foreign_pollers = True
    accept_nonblocking = True
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # Write bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="the atomic_add in aio_poll or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
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
    strategy=OptimizeClearing.name,
    commit="05e514b1d4d5bd4209e2c8bbc76ff05c85a235f3",
    date="2015-07-21",
    title="AioContext: optimize clearing the EventNotifier",
    author="Paolo Bonzini",
    side="after",
    changed="aio_notify sets ctx->notified (atomic_mb_set) after writing the event; "
            "aio_notify_accept reads the event only if atomic_xchg(&notified, 0) returned 1.",
    bug="None fixed (an optimization); survived over 3000 reboots on aarch64 KVM.  Later bisected "
        "as the cause of an x86 virtio-net throughput regression (Launchpad 1668829): a cost, not "
        "a hang.",
    effect="none",
    arch="aarch64 KVM (tested); x86 (performance report)",
    history={"2015": {"arm": "pass"}},
    refs=("Message-id 1437487673-23740-7-git-send-email-pbonzini@redhat.com",
          "docs/aio_notify_accept.promela (new in this commit)", "Launchpad 1668829",
          "built-in: notified"),
    encoding="2015 RMWs with their trailing full barrier (__sync builtins).",
)
