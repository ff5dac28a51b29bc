# qemu-2020-601829f8-v3: the series of 601829f8 + 44277bf9 as posted,
# before review: aio_notify_accept clears `notified` and issues smp_wmb.
#
# The commit's trailer records that Paolo Bonzini pointed out in review
# that the barrier in aio_notify_accept must be a full one: the clear of
# `notified` has to be ordered before the *reads* of the bottom-half flags
# that follow, a store -> load order that smp_wmb (a compiler barrier on
# x86, a release fence in C11) does not give.  The merged code has smp_mb.
# Never shipped; kept as the review variant the record mentions.
#
# What the checker finds: no lost wake-up, on either skeleton, with the
# bottom-half side of the same year (8c6b0356).  Between every
# aio_notify_accept and the next read of a BH flag, aio_bh_poll takes the
# list with atomic_xchg -- a full barrier on x86 (and QEMU's smp_wmb is
# itself dmb ish on ARM) -- so the clear is ordered before those reads
# anyway.  Without the list (a BH as one flag, aiocore's core before issue
# 23) the same notify/accept hooks lose a wake-up under tso on the polling
# skeleton: the accept's clear of `notified`, still in the poller's store
# buffer, lands after a notifier's notified = 1; the poller's next
# aio_compute_timeout had read the BH flag before the notifier set it, the
# notifier read notify_me before the poller raised it, and the last look
# reads the cleared `notified`: the poller sleeps with the BH pending.
from ._record import Entry
from .qemu_2020_44277bf9 import NotifyMeDisabledWhilePolling


class AcceptWithWmb(NotifyMeDisabledWhilePolling):
    """44277bf9 as posted: aio_notify_accept clears notified with only smp_wmb after it (review variant, never merged)."""

    name = "qemu-2020-601829f8-v3"
    origin = ('qemu 601829f88e0eff8f54fa08b7a69b0774a9c259c8 as posted (v3, 2020-08): '
              'aio_notify_accept with smp_wmb, corrected to smp_mb in review; never merged')

    # The merged series (qemu-2020-44277bf9) but for the barrier in
    # aio_notify_accept, and so what notify's barrier pairs with.

    def notify(s):
        # The bottom-half flags are written before notified.
        s.smp_wmb(pairs="smp_wmb in aio_notify_accept")
        s.atomic_set(s.notified, 1)
        # notified is written before notify_me is read.
        s.smp_mb(pairs="smp_mb in aio_poll (poll_begin) or aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.atomic_set(s.notified, 0)
        # As posted: a write barrier only.
        s.smp_wmb(pairs="smp_wmb in aio_notify")


RECORD = Entry(
    strategy=AcceptWithWmb.name,
    commit="601829f88e0eff8f54fa08b7a69b0774a9c259c8",
    date="2020-08-06",
    title="async: always set ctx->notified in aio_notify() (as posted)",
    author="Stefan Hajnoczi",
    side="posted",
    changed="As 601829f8 + 44277bf9, but aio_notify_accept is notified = 0; smp_wmb.",
    bug="Found in review: the commit's trailer records Paolo Bonzini's remark on the smp_wmb() in "
        "aio_notify_accept (garbled there as \"should be smp_wb()\"), and the merged code has smp_mb "
        "there, commented as ordering the clear of notified before the reads of the BH flags; the "
        "posted text itself is not in the archive read.  Never shipped, never observed.",
    effect="none",
    arch="none (review)",
    history={"polling": {"tso": "lost-wakeup"}},
    disagreement="The review's objection (the clear of notified not ordered before the reads of "
                 "the BH flags, a store->load order x86 does not keep) holds for the hooks alone, "
                 "and the checker shows the lost wake-up with a BH that is one flag; with the "
                 "bottom-half list of 8c6b0356 that the series was posted on, aio_bh_poll's "
                 "atomic_xchg of bh_list follows every accept before any flag is read and orders "
                 "the clear, so the posted code loses no wake-up.",
    refs=("601829f8's trailer", "merged: qemu-2020-601829f8, qemu-2020-44277bf9"),
)
