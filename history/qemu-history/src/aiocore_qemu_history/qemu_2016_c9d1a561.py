# qemu-2016-c9d1a561: "block: only call aio_poll on the current thread's
# AioContext" (QEMU 2.8).
#
# bdrv_drain stops polling another thread's AioContext and instead waits
# for a dummy one-shot BH in its own; for that, aio_bh_schedule_oneshot
# must wake the context it inserts into, and the commit adds aio_notify
# after the insertion (one line in async.c).  The hang the commit's
# message is about is bdrv_drain's own, not the missing notify.
from aiocore import Strategy

from ._bh import OneshotNotify2016
from ._record import Entry


class OneshotNotifies(OneshotNotify2016, Strategy):
    """aio_bh_schedule_oneshot followed by aio_notify (QEMU c9d1a561, 2016)."""

    name = "qemu-2016-c9d1a561"
    origin = ('qemu c9d1a56174339b0afdef63b7d151b38f4bb6dae5 (2016-10-27) "block: only call '
              'aio_poll on the current thread\'s AioContext": aio_bh_schedule_oneshot notifies '
              '(fixes 5b8bb359\'s silent one-shot)')
    foreign_pollers = True
    accept_nonblocking = True
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
    strategy=OneshotNotifies.name,
    commit="c9d1a56174339b0afdef63b7d151b38f4bb6dae5",
    date="2016-10-27",
    title="block: only call aio_poll on the current thread's AioContext",
    author="Paolo Bonzini",
    side="after",
    changed="aio_bh_schedule_oneshot calls aio_notify after inserting the BH (bdrv_drain waits "
            "for a dummy one-shot BH in its own context instead of polling another thread's).",
    bug="Fixes the silent one-shot of 5b8bb359 (never reported as such); the commit's own hang is "
        "bdrv_drain missing the last in-flight request completed in the I/O thread.  The ARMv8.0 "
        "window of a0aa44b4 is still there.",
    effect="fixed",
    arch="not stated",
    mode="oneshot",
    mode_expected={"2015": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}},
    refs=("before: qemu-2016-5b8bb359",),
    encoding="Notify side: qemu-2016-a0aa44b4's.",
)
