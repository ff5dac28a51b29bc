# qemu-2014-924fe129: "aio: fix qemu_bh_schedule() bh->ctx race condition"
# (QEMU 2.1 cycle).
#
# The fix: qemu_bh_schedule loads bh->ctx before it publishes
# bh->scheduled, and the barrier before the publication becomes smp_mb
# (it now orders a load too), because the callback may run, delete and
# free the BH as soon as the flag is visible.  A use-after-free, reported
# as a crash; the BH's lifetime is not part of aiocore's model.
#
# What the commit left, and the reason it is in the corpus: the bottom-half
# side of 2014, a plain bool bh->scheduled with a check-then-set schedule
# and a plain clear in aio_bh_poll (PlainFlag2014).  A schedule that finds
# the flag set returns on a plain read, with no barrier between the data it
# wrote and that read, while the callback that is running may already have
# read the data: the bug e8d3b1a2 fixed in 2015, reproduced on x86_64 in 15
# minutes and on aarch64 by libguestfs's tests.  aiocore's lost-work
# property is that contract: a schedule after which no callback that starts
# later sees its payload.
#
# The notify side is 2014's: aio_notify writes the EventNotifier
# unconditionally, and the notifier's fd handler clears it during dispatch
# (0ceb849b, a month later, made it conditional).
from aiocore import Strategy

from ._bh import PlainFlag2014
from ._record import Entry


class BhCtxRace(PlainFlag2014, Strategy):
    """Plain check-then-set of bh->scheduled, the context loaded before it; an unconditional event write (QEMU 924fe129, 2014)."""

    name = "qemu-2014-924fe129"
    origin = ('qemu 924fe1293c3e7a3c787bbdfb351e7f168caee3e9 (2014-06-03) "aio: fix qemu_bh_schedule() '
              'bh->ctx race condition": fixes a use-after-free; keeps the plain bh->scheduled whose '
              'coalescing e8d3b1a2 fixed (hangs on x86_64 and aarch64)')
    foreign_pollers = False
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "lost-work", "arm": "lost-work"}

    def notify(s):
        s.event_notifier_set()

    def on_event(s):
        s.event_notifier_test_and_clear()


RECORD = Entry(
    strategy=BhCtxRace.name,
    commit="924fe1293c3e7a3c787bbdfb351e7f168caee3e9",
    date="2014-06-03",
    title="aio: fix qemu_bh_schedule() bh->ctx race condition",
    author="Stefan Hajnoczi",
    side="after",
    changed="qemu_bh_schedule reads bh->ctx before setting bh->scheduled, with smp_mb instead of "
            "smp_wmb before the plain store; the rest of the 2014 bottom half is unchanged (plain "
            "check-then-set, plain clear and smp_rmb in aio_bh_poll, plain cancel).",
    bug="Fixes a use-after-free (a callback freeing its BH before aio_notify(bh->ctx)), reported "
        "as a crash by Stefan Priebe.  Leaves the coalescing race of the plain flag, fixed by "
        "e8d3b1a2 after hangs on x86_64 and aarch64.",
    effect="fixed",
    arch="not stated for the crash; the coalescing race: x86_64 and aarch64 (e8d3b1a2's message)",
    history={"2015": {"tso": "lost-work", "arm": "lost-work"}},
    refs=("next: qemu-2015-e8d3b1a2",),
    encoding="The BH lifetime (delete, free) is outside the model: the entry stands for the "
             "bottom-half side the commit left.",
)
