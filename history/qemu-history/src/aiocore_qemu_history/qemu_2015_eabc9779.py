# qemu-2015-eabc9779: "AioContext: fix broken ctx->dispatching
# optimization" (QEMU 2.4-rc).
#
# ctx->notify_me replaces ctx->dispatching and says the opposite: "a poller
# may be about to sleep".  A blocking aio_poll adds 2 to it before computing
# its timeout and subtracts 2 after ppoll; the GSource path sets bit 0 in
# prepare and clears it in check.  aio_notify writes the EventNotifier only
# if notify_me is non-zero.  A count, so two pollers on one context no
# longer overwrite each other's flag: the 0ceb849b hang is gone.
#
# The EventNotifier is still cleared by its own fd handler during dispatch
# (the "late clear").  With a second poller on the context, that poller's
# dispatch can eat an event written for the home thread, which then sleeps
# with work pending: the hang 21a03d17 fixed, three patches later in the
# same series, again on aarch64 KVM.
#
# 2015 semantics: atomic_add/sub/or/and were __sync builtins, full barriers
# (_era.Sync2015).
from aiocore import Strategy

from ._era import Sync2015
from ._bh import XchgFlag2015
from ._record import Entry


class FixDispatching(Sync2015, XchgFlag2015, Strategy):
    """notify_me counts the pollers that may sleep; the event is cleared during dispatch (QEMU eabc9779, 2015)."""

    name = "qemu-2015-eabc9779"
    origin = ('qemu eabc977973103527bbb8fed69c91cfaa6691f8ab (2015-07-21) "AioContext: fix broken '
              'ctx->dispatching optimization": fixes 0ceb849b\'s hang on aarch64 KVM, leaves a '
              'second poller able to eat the event')
    foreign_pollers = True
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "pass", "arm": "pass"},
        "gsource": {"sc": "pass", "tso": "pass", "arm": "pass"},
    }

    def notify(s):
        # Write bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="the atomic_add in aio_poll or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()

    def poll_begin(s):
        s.sync_add(s.notify_me, 2)

    def poll_end(s):
        s.sync_sub(s.notify_me, 2)

    def prepare(s):
        s.sync_or(s.notify_me, 1)

    def check(s):
        s.sync_and(s.notify_me, ~1)

    def on_event(s):
        s.event_notifier_test_and_clear()


RECORD = Entry(
    strategy=FixDispatching.name,
    commit="eabc977973103527bbb8fed69c91cfaa6691f8ab",
    date="2015-07-21",
    title="AioContext: fix broken ctx->dispatching optimization",
    author="Paolo Bonzini",
    side="after",
    changed="ctx->notify_me (blocking aio_poll += 2, GSource bit 0) replaces ctx->dispatching; "
            "aio_notify writes the EventNotifier only if notify_me is non-zero; the notifier's fd "
            "handler still clears it during dispatch.",
    bug="Fixes 0ceb849b's hang (hang until the next key press, more than half of the boots); "
        "leaves the second poller eating the event, the hang fixed by 21a03d17.",
    effect="fixed",
    arch="aarch64 KVM",
    history={"2015": {"arm": "lost-wakeup"}},
    refs=("Message-id 1437487673-23740-4-git-send-email-pbonzini@redhat.com",
          "before: qemu-2014-0ceb849b", "after: qemu-2015-21a03d17", "built-in: late-clear"),
    encoding="2015 RMWs with their trailing full barrier (__sync builtins).",
)
