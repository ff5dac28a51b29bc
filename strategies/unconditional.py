# unconditional: QEMU 21a03d17 ("AioContext: fix broken placement of
# event_notifier_test_and_clear", 2015).
#
# The clear moves out of the notifier's fd handler to right after ppoll, in
# every aio_poll, blocking or not, before any handler runs: whoever consumes
# the wake-up then also dispatches what it announced.  notify_me is still
# written with seq_cst RMWs (atomic_add / atomic_sub), which order the later
# relaxed reads of the bottom-half flags on x86 but not on ARMv8 -- the 2020
# aarch64 hang that 5710a3e0 fixed.
#
# The C generated from this description is measured against the hand-written
# strategy_unconditional.h ("unconditional-c") in the benchmarks.
#
# Skeletons: 2015 only.  Its notify never sets notified, so on the polling skeleton
# a notify can leave nothing the poll phase or the last look reads: the
# polling skeleton computes the timeout (reads the BH flags) *before*
# raising notify_me, so a bh_schedule whose notify reads notify_me == 0
# after compute_timeout and the poll phase but before poll_begin is seen
# by nobody, and the last look (notified) finds 0: the owner blocks with
# the BH pending (lost wake-up).  `aiocore check --skeleton polling`
# shows the trace.
from aiocore._compiler._strategy import Strategy


class Unconditional(Strategy):
    """event_notifier_test_and_clear right after ppoll in every aio_poll (QEMU 21a03d17)."""

    name = "unconditional"
    origin = "qemu 21a03d17 (2015)"
    skeletons = ("2015",)
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                     "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}}
    foreign_pollers = True
    accept_nonblocking = True
    # ARM, per profile: lost on arm-llsc, not on arm-lse.  aio_poll raises
    # notify_me with a seq_cst RMW and then reads the BH flags with plain
    # loads; compiled as an LDAXR/STLXR loop, the STLXR may become visible
    # after those loads are satisfied (a release orders only what precedes
    # it), so the notifier's smp_mb and read of notify_me can see 0 while the
    # poller saw no BH: store buffering through an RMW, the shape of 5710a3e0's
    # 2020 hang.  LSE's LDADDAL/LDSETAL is ordered before every later access.
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup",
                "arm-llsc": "lost-wakeup", "arm-lse": "pass"}

    def notify(s):
        s.smp_mb(pairs="atomic_add in aio_poll (poll_begin) or atomic_or in aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

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
