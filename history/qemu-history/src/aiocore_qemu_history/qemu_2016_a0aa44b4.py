# qemu-2016-a0aa44b4: "include/qemu/atomic.h: default to __atomic functions"
# (QEMU 2.6).
#
# No line of the AioContext changed: QEMU's atomic_add/sub/or/and became
# C11 seq_cst RMWs (__atomic_fetch_*), which on ARMv8.0 are an
# ldaxr/stlxr loop with no barrier after it.  05e514b1's protocol, compiled
# from then on, lets aio_poll's atomic_add(&notify_me, 2) be passed by its
# relaxed reads of the bottom-half flags while aio_notify, after its
# smp_mb, still reads notify_me == 0: each side misses the other and the
# poller sleeps with a BH pending.  Latent for years; the hang that was
# finally reported (Launchpad 1805256, qemu-img convert on a 96-core
# HiSilicon D06, about half of the runs) was fixed by 5710a3e0 (2020).
# With LSE atomics (ldaddal & co., ARMv8.1) later loads are ordered and
# the window closes.
#
# The strategy is qemu-2015-05e514b1 with today's meaning of the RMWs:
# the plain atomic_add of aiocore's vocabulary, no trailing barrier.
from aiocore import Strategy

from ._bh import XchgFlag2015
from ._record import Entry


class DefaultToAtomic(XchgFlag2015, Strategy):
    """05e514b1's protocol compiled with C11 seq_cst RMWs: no barrier after atomic_add on ARMv8.0 (QEMU a0aa44b4, 2016)."""

    name = "qemu-2016-a0aa44b4"
    origin = ('qemu a0aa44b488b3601415d55041e4619aef5f3a4ba8 (2016-01-28) "include/qemu/atomic.h: '
              'default to __atomic functions": exposes a lost wake-up on ARMv8.0 (aarch64 hang, '
              'Launchpad 1805256, fixed by 5710a3e0)')
    foreign_pollers = True
    accept_nonblocking = True
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"},
        "gsource": {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"},
    }

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
    strategy=DefaultToAtomic.name,
    commit="a0aa44b488b3601415d55041e4619aef5f3a4ba8",
    date="2016-01-28",
    title="include/qemu/atomic.h: default to __atomic functions",
    author="Alex Bennée",
    side="after",
    changed="QEMU's atomic_add/sub/or/and become __atomic_fetch_*(SEQ_CST): on ARMv8.0 an "
            "ldaxr/stlxr loop without the trailing dmb the __sync builtins had.  No change to the "
            "AioContext's source.",
    bug="Exposes the store-buffering window between atomic_add(&notify_me) and the relaxed reads "
        "of the BH flags; reported in 2018 as qemu-img convert hanging about half of the time on a "
        "HiSilicon D06 (Launchpad 1805256), fixed by 5710a3e0.",
    effect="exposed",
    arch="aarch64 (ARMv8.0 ldaxr/stlxr RMWs)",
    history={"2015": {"arm": "lost-wakeup"}},
    refs=("Launchpad 1805256", "osbuild issue 482", "before: qemu-2015-05e514b1",
          "fixed by qemu-2020-5710a3e0"),
    encoding="05e514b1's hooks with plain seq_cst RMWs; the polling mode and the later "
             "accept changes are left out to isolate the compilation change.",
)
