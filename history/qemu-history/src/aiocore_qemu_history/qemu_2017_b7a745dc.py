# qemu-2017-b7a745dc: "thread-pool: add missing qemu_bh_cancel in
# completion function" (QEMU 2.9).
#
# thread_pool_completion_bh, after running a request's callback, cancels
# its own BH and re-scans the request list instead of rescheduling itself
# (3c80ca15's self-reschedule made the main loop spin).  qemu_bh_cancel is
# a plain store of bh->scheduled = 0 -- written for a producer withdrawing
# its own schedule, now run by the consumer: the re-scan's read of
# req->state may be satisfied before the cancel's store is visible, so a
# worker's `req->state = THREAD_DONE; qemu_bh_schedule()` landing in
# between is both unseen and erased.  The request is never completed ("all
# operations pending on it will get stuck forever", ef6dada8).
#
# Notify side: the polling-era protocol of qemu-2018-b37548fc-before.  The
# checker run the commit is about: callbacks that cancel their BH and read
# again (RECORD.mode "cancel-reread").
from aiocore import Strategy

from ._bh import OneshotNotify2016
from ._record import Entry


class CompletionCancels(OneshotNotify2016, Strategy):
    """The consumer calls qemu_bh_cancel, still a plain store (QEMU b7a745dc, 2017)."""

    name = "qemu-2017-b7a745dc"
    origin = ('qemu b7a745dc33a18377bb4a8dfe54d1df01ea60bf66 (2017-03-16) "thread-pool: add missing '
              'qemu_bh_cancel in completion function": exposes the plain-store cancel (requests '
              'stuck forever, fixed by ef6dada8)')
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
    strategy=CompletionCancels.name,
    commit="b7a745dc33a18377bb4a8dfe54d1df01ea60bf66",
    date="2017-03-16",
    title="thread-pool: add missing qemu_bh_cancel in completion function",
    author="Peter Lieven",
    side="after",
    changed="thread_pool_completion_bh cancels its own BH and re-scans the requests instead of "
            "rescheduling itself; qemu_bh_cancel is a plain store of bh->scheduled = 0.",
    bug="The consumer's plain cancel can erase a worker's schedule whose data (req->state) the "
        "re-scan read too early: the request and all I/O behind it stuck forever (analysed in "
        "ef6dada8, \"this loop lacks a HW memory barrier\").",
    effect="introduced",
    arch="not stated (the reordering, a store then a load, is one x86 allows)",
    mode="cancel-reread",
    mode_expected={"2015": {"sc": "pass", "tso": "lost-work", "arm": "lost-work"}},
    refs=("Fixes: 3c80ca15", "fixed by qemu-2017-ef6dada8"),
    encoding="Notify side: qemu-2018-b37548fc-before's (2016-2018).",
)
