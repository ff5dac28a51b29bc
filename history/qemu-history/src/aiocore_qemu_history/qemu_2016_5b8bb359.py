# qemu-2016-5b8bb359: "async: add aio_bh_schedule_oneshot" (QEMU 2.8).
#
# aio_bh_schedule_oneshot creates a bottom half that is scheduled and
# deleted from birth and links it into the context's list under the list
# lock; aio_bh_poll runs it once and frees it.  It does not call
# aio_notify: a blocking aio_poll whose timeout was computed before the
# insertion sleeps with the one-shot BH pending.  No memory model is
# needed for that, and no report exists: in the three weeks before
# c9d1a561 added the notify, the callers ran in loops that iterated anyway.
#
# Notify side: 05e514b1's, compiled with C11 RMWs (a0aa44b4).  The checker
# run the commit is about: every schedule a one-shot (RECORD.mode).
from aiocore import Strategy

from ._bh import Oneshot2016
from ._record import Entry


class AddOneshot(Oneshot2016, Strategy):
    """aio_bh_schedule_oneshot publishes a BH without aio_notify (QEMU 5b8bb359, 2016)."""

    name = "qemu-2016-5b8bb359"
    origin = ('qemu 5b8bb3595a2941e9408021f1080e60ce86d677d2 (2016-10-03) "async: add '
              'aio_bh_schedule_oneshot": introduces a one-shot BH published without aio_notify '
              '(no report; fixed by c9d1a561)')
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
    strategy=AddOneshot.name,
    commit="5b8bb3595a2941e9408021f1080e60ce86d677d2",
    date="2016-10-03",
    title="async: add aio_bh_schedule_oneshot",
    author="Paolo Bonzini",
    side="after",
    changed="New aio_bh_schedule_oneshot: a BH scheduled and deleted from birth, linked into "
            "ctx->first_bh under ctx->bh_lock, run once and freed; no aio_notify.",
    bug="A one-shot BH inserted after a blocking aio_poll computed its timeout is not noticed: a "
        "lost wake-up with no memory-model subtlety.  Never reported; c9d1a561 added the notify "
        "three weeks later for bdrv_drain's dummy BH.",
    effect="introduced",
    arch="none (never reported)",
    mode="oneshot",
    mode_expected={"2015": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup"}},
    refs=("fixed by qemu-2016-c9d1a561",),
    encoding="Notify side: qemu-2016-a0aa44b4's.  The one-shot's publication (plain stores and "
             "smp_wmb under the list lock) is a store-release of its flag.",
)
