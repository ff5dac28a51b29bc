# qemu-2020-5710a3e0: "async: use explicit memory barriers" (QEMU 5.0).
#
# notify_me has one writer (the home thread; 0dc165c1 and 3c18a92d made
# sure of it), so aio_poll and aio_ctx_prepare write it with a relaxed
# read and store and then an explicit smp_mb before reading the bottom-half
# flags; the decrements become store-release.  aio_notify's smp_mb now
# pairs with a fence on the other side on every architecture, not with an
# RMW that ARMv8.0 does not order against later loads: Launchpad 1805256's
# hang (qemu-img convert on aarch64) is fixed.
from aiocore import Strategy

from ._bh import FlagsList2020
from ._record import Entry


class ExplicitBarriers(FlagsList2020, Strategy):
    """Relaxed single-writer notify_me with an explicit smp_mb (QEMU 5710a3e0, 2020)."""

    name = "qemu-2020-5710a3e0"
    origin = ('qemu 5710a3e09f9b85801e5ce70797a4a511e5fc9e2c (2020-04-07) "async: use explicit '
              'memory barriers": fixes the aarch64 hang of Launchpad 1805256 (HiSilicon D06)')
    foreign_pollers = False
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # Write bh->scheduled before reading ctx->notify_me.
        s.smp_mb(pairs="smp_mb in aio_poll (poll_begin) or aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()
            s.atomic_mb_set(s.notified, 1, pairs="atomic_xchg in aio_notify_accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_notifier_test_and_clear()

    def timeout_zero(s):
        # The notifier's poll handler.
        return s.atomic_read(s.notified)

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        # Write notify_me before reading the bottom-half flags.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def poll_end(s):
        # The poll is over before notify_me drops.
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        # Write notify_me before computing the timeout.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def check(s):
        # The timeout is computed before notify_me drops.
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


RECORD = Entry(
    strategy=ExplicitBarriers.name,
    commit="5710a3e09f9b85801e5ce70797a4a511e5fc9e2c",
    date="2020-04-07",
    title="async: use explicit memory barriers",
    author="Paolo Bonzini",
    side="after",
    changed="notify_me is written by its single writer with atomic_read/atomic_set plus smp_mb "
            "(raising) and store-release (lowering) instead of seq_cst RMWs.",
    bug="Fixes the store-buffering window between the RMW on notify_me and the relaxed reads of "
        "the BH flags: qemu-img convert hanging about half of the time on a 96-core aarch64 "
        "HiSilicon D06 (Launchpad 1805256); tested on aarch64 and x86.",
    effect="fixed",
    arch="aarch64 (HiSilicon D06)",
    history={"2015": {"arm": "pass"}},
    refs=("Message-Id 20200407140746.8041-6-pbonzini@redhat.com", "Launchpad 1805256",
          "before: qemu-2018-b37548fc", "built-in: explicit-mb"),
    encoding="2016-2020 polling skeleton as aiocore's 2015 skeleton with timeout_zero.",
)
