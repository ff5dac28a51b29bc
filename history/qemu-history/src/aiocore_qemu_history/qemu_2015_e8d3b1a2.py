# qemu-2015-e8d3b1a2: "aio: strengthen memory barriers for bottom half
# scheduling" (QEMU 2.3).
#
# The bottom-half side becomes two RMWs: qemu_bh_schedule sets
# bh->scheduled with atomic_xchg (no early "already scheduled?" return on a
# plain read) and notifies only on the 0 -> 1 edge; aio_bh_poll claims with
# atomic_xchg(&bh->scheduled, 0) before calling the callback.  Both fix
# store -> load reorderings, so x86 was exposed as well as aarch64:
#   * a schedule that found the flag already set returned without a
#     barrier, so the callback already running could miss what the
#     scheduler wrote before it (the thread pool's req->state): a hang;
#   * the claim's plain clear could become visible only after the callback
#     returned, so a schedule in between saw 1 and did nothing.
# The bottom-half side is _bh.XchgFlag2015 (qemu_bh_cancel stays a plain
# store until ef6dada8).
#
# The notify side is unchanged from 0ceb849b (ctx->dispatching), whose
# lost wake-up with a second poller was still there: eabc9779 (July 2015)
# fixed it.  Hooks as in qemu-2014-0ceb849b.
from aiocore import Strategy

from ._bh import XchgFlag2015
from ._record import Entry


class StrengthenBhBarriers(XchgFlag2015, Strategy):
    """atomic_xchg on bh->scheduled in schedule and claim; notify still skips while dispatching (QEMU e8d3b1a2, 2015)."""

    name = "qemu-2015-e8d3b1a2"
    origin = ('qemu e8d3b1a25f284cdf9705b7cf0412281cc9ee3a36 (2015-04-07) "aio: strengthen memory '
              'barriers for bottom half scheduling": fixes a coalesced schedule and a weak claim '
              '(I/O hangs) seen on x86_64 and aarch64')
    shared = ("dispatching",)
    foreign_pollers = True
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "lost-wakeup", "tso": "lost-wakeup", "arm": "lost-wakeup"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "pass", "arm": "pass"},
        "gsource": {"sc": "pass", "tso": "pass", "arm": "pass"},
    }

    def notify(s):
        # Write bh->scheduled before reading ctx->dispatching.
        s.smp_mb(pairs="smp_mb in aio_set_dispatching (poll_begin)")
        if not s.atomic_read(s.dispatching):
            s.event_notifier_set()

    def poll_begin(s):
        s.atomic_set(s.dispatching, 0)
        # Write ctx->dispatching before reading bh->scheduled.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def poll_end(s):
        s.atomic_set(s.dispatching, 1)

    def on_event(s):
        s.event_notifier_test_and_clear()


RECORD = Entry(
    strategy=StrengthenBhBarriers.name,
    commit="e8d3b1a25f284cdf9705b7cf0412281cc9ee3a36",
    date="2015-04-07",
    title="aio: strengthen memory barriers for bottom half scheduling",
    author="Paolo Bonzini",
    side="after",
    changed="qemu_bh_schedule sets bh->scheduled with atomic_xchg and notifies on the 0->1 edge; "
            "aio_bh_poll claims with atomic_xchg(&bh->scheduled, 0).",
    bug="Fixes two store->load races: a schedule coalescing into a running callback without a "
        "barrier (the thread pool's req->state missed) and a claim whose clear is published after "
        "the callback; both seen as I/O hangs.",
    effect="fixed",
    arch="x86_64 (reproduced within 15 minutes, IvyBridge/Haswell) and aarch64 (libguestfs tests)",
    # The bottom-half bugs are gone; the dispatching hang of 0ceb849b was
    # still seen on aarch64 until eabc9779.
    history={"2015": {"arm": "lost-wakeup"}},
    refs=("Message-id 1428419779-26062-1-git-send-email-pbonzini@redhat.com",
          "before: qemu-2014-924fe129", "notify side: qemu-2014-0ceb849b"),
    encoding="Notify side as qemu-2014-0ceb849b.",
)
