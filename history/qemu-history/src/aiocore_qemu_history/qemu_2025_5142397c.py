# qemu-2025-5142397c: "async: access bottom half flags with qatomic_read"
# (QEMU 10.2; Cc qemu-stable) -- and with it, QEMU's protocol as of today.
#
# aio_compute_bh_timeout and aio_ctx_check read bh->flags with
# qatomic_load_acquire instead of plain C reads: TSAN reported data races
# on the flags (gitlab issues 2749 and 851); the acquire makes what was
# written before qemu_bh_schedule visible to whoever sees the flag.  A
# data race found by a tool, not a reported hang.
#
# Everything else is the protocol of 601829f8 + 44277bf9 (2020) on the
# bottom-half side of 8c6b0356 (2020), spelled as util/async.c and
# util/aio-posix.c spell it since the qatomic_ rename (d73415a3): this
# entry is upstream today (the built-in always-notified is the same
# protocol).  The notifier's poll handler and aio_poll's last look read
# `notified`; aio_compute_timeout, and so GSource prepare, never does.
from aiocore import Strategy

from ._bh import FlagsList2025
from ._record import Entry


class FlagsAcquire(FlagsList2025, Strategy):
    """Bottom-half flags read with load-acquire; upstream's protocol of today (QEMU 5142397c, 2025)."""

    name = "qemu-2025-5142397c"
    origin = ('qemu 5142397c79330aab9bef3230991c8ac0c251110f (2025-10-13) "async: access bottom half '
              'flags with qatomic_read": fixes data races on bh->flags reported by TSAN (gitlab '
              '#2749, #851); upstream today')
    foreign_pollers = False
    accept_nonblocking = True
    skeletons = ("2015", "polling")
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}
    expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass"}}

    def notify(s):
        # Write e.g. ctx->bh_list before ctx->notified.
        s.smp_wmb(pairs="smp_mb in aio_notify_accept")
        s.qatomic_set(s.notified, 1)
        # Write ctx->notified (and ctx->bh_list) before reading notify_me.
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll")
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        # Order the clear (and the poll handler's reads of notified) before
        # the reads of the bottom-half flags.
        s.smp_mb(pairs="smp_wmb in aio_notify")

    def notifier_poll(s):
        # aio_context_notifier_poll: a relaxed read is enough to kick the
        # loop; aio_notify_accept synchronizes.
        return s.qatomic_read(s.notified)

    def last_look(s):
        # aio_poll: "don't block if aio_notify() was called".
        return s.qatomic_read(s.notified)

    def on_event(s):
        # aio_context_notifier_cb.
        s.event_notifier_test_and_clear()

    def poll_begin(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) + 2)
        # Write notify_me before reading notified (the last look).
        s.smp_mb(pairs="smp_mb in aio_notify")

    def poll_end(s):
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) | 1)
        # Write notify_me before computing the timeout.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def check(s):
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) & ~1)
        s.accept()


RECORD = Entry(
    strategy=FlagsAcquire.name,
    commit="5142397c79330aab9bef3230991c8ac0c251110f",
    date="2025-10-13",
    title="async: access bottom half flags with qatomic_read",
    author="Paolo Bonzini",
    side="after",
    changed="aio_compute_bh_timeout (bh_list and every slice) and aio_ctx_check read bh->flags "
            "with qatomic_load_acquire instead of plain reads.",
    bug="Fixes data races on bh->flags reported by TSAN running test-aio-multithread (gitlab "
        "issues 2749 and 851): undefined behaviour in C, no reported hang.",
    effect="fixed",
    arch="any (a data race found by TSAN)",
    refs=("cherry-picked to stable as 4e58c5bf", "built-in: always-notified (upstream today)"),
    encoding="Upstream's util/async.c and util/aio-posix.c at the end of 2025 (511c62a2, the last "
             "change to them, is a polling heuristic outside the model).",
)
