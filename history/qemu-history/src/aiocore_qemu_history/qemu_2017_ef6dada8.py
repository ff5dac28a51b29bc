# qemu-2017-ef6dada8: "util/async: use atomic_mb_set in qemu_bh_cancel"
# (QEMU 2.11).
#
# qemu_bh_cancel clears bh->scheduled with atomic_mb_set: the store, then
# a full barrier, so that the canceller's later reads (the thread pool's
# re-scan of req->state) come after the clear is visible -- the same
# acquire-like ordering aio_bh_poll's xchg gives the claim.  A schedule
# that lands before the clear is seen by the re-scan; one that lands after
# it sets the flag again and the BH runs once more.
from aiocore import Strategy

from ._bh import CancelMb2017
from ._record import Entry


class CancelWithMb(CancelMb2017, Strategy):
    """qemu_bh_cancel with atomic_mb_set (QEMU ef6dada8, 2017)."""

    name = "qemu-2017-ef6dada8"
    origin = ('qemu ef6dada8b44e1e7c4bec5c1115903af9af415b50 (2017-11-08) "util/async: use '
              'atomic_mb_set in qemu_bh_cancel": fixes b7a745dc\'s erased schedule (requests stuck '
              'forever; architecture not stated)')
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

    def timeout_zero(s):
        # The notifier's poll handler (polling mode, 4a1cba38).
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
    strategy=CancelWithMb.name,
    commit="ef6dada8b44e1e7c4bec5c1115903af9af415b50",
    date="2017-11-08",
    title="util/async: use atomic_mb_set in qemu_bh_cancel",
    author="Sergio Lopez",
    side="after",
    changed="qemu_bh_cancel clears bh->scheduled with atomic_mb_set (store-release, smp_mb; "
            "xchg on x86) instead of a plain store.",
    bug="Fixes b7a745dc's erased schedule: the completion BH's re-scan reading req->state before "
        "its cancel is visible, a request left THREAD_DONE and never completed.",
    effect="fixed",
    arch="not stated",
    mode="cancel-reread",
    mode_expected={"2015": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}},
    refs=("Message-id 20171108063447.2842-1-slp@redhat.com", "before: qemu-2017-b7a745dc"),
    encoding="Notify side: qemu-2018-b37548fc-before's (2016-2018).",
)
