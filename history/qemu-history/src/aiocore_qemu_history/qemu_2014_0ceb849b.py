# qemu-2014-0ceb849b: "AioContext: speed up aio_notify" (QEMU 2.1 cycle).
#
# The first conditional aio_notify.  A plain boolean, ctx->dispatching, says
# "an aio_poll is running its handlers, it will look at the bottom halves
# again before it sleeps"; aio_notify skips the EventNotifier while it is
# set.  aio_poll clears it (with a full barrier) before a blocking ppoll and
# sets it around dispatch; the GSource path leaves it alone.
#
# The flaw, found a year later on aarch64 KVM (eabc9779's message has the
# trace): the flag is per context, not per poller.  When a second thread
# runs aio_poll on the same context (a VCPU thread in bdrv_drain, possible
# since the AioContext lock is dropped around ppoll) while the home thread
# sleeps, the second thread's dispatch sets `dispatching`, a worker's
# qemu_bh_schedule skips the write, and the sleeper is never woken.  No
# memory model is involved: the checker finds it under SC, config foreign,
# with 2015's bottom half (qemu-2015-e8d3b1a2); with this entry's 2014 one
# the same run's worst verdict is lost work (RECORD.disagreement).
#
# Encoding.  `dispatching` is a private shared field (0 at creation, as
# g_source_new zeroed the context).  poll_begin is aio_set_dispatching(ctx,
# false) of a blocking aio_poll (plain store, then smp_mb); poll_end is
# aio_set_dispatching(ctx, true) before the handlers run.  QEMU's aio_poll
# restored the caller's value at its very end; the skeleton has no hook
# there, so `dispatching` stays set between two polls of the home thread,
# which only skips writes while that thread is awake and about to look at
# the bottom halves again (its next poll_begin clears the flag behind an
# smp_mb).  The notifier's fd handler clears the event during dispatch.
# The bottom-half side is 924fe129's plain check-then-set (PlainFlag2014),
# the one of July 2014.
from aiocore import Strategy

from ._bh import PlainFlag2014
from ._record import Entry


class SpeedUpAioNotify(PlainFlag2014, Strategy):
    """aio_notify skips the EventNotifier while ctx->dispatching is set (QEMU 0ceb849b, 2014).

    Introduced a lost wake-up with two pollers on one context, seen as hangs
    on aarch64 KVM and fixed by eabc9779 (2015).
    """

    name = "qemu-2014-0ceb849b"
    origin = ('qemu 0ceb849bd336a5f9b6e1ed56d45cf5773d251ad8 (2014-07-07) "AioContext: speed up '
              'aio_notify": introduces a lost wake-up with a second poller, seen on aarch64 KVM')
    shared = ("dispatching",)
    foreign_pollers = True
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "lost-work", "tso": "lost-work", "arm": "lost-work"}
    expected_configs = {
        "home": {"sc": "pass", "tso": "lost-work", "arm": "lost-work"},
        "gsource": {"sc": "pass", "tso": "lost-work", "arm": "lost-work"},
    }

    def notify(s):
        # Write bh->scheduled before reading ctx->dispatching.
        s.smp_mb(pairs="smp_mb in aio_set_dispatching (poll_begin)")
        if not s.atomic_read(s.dispatching):
            s.event_notifier_set()

    def poll_begin(s):
        # aio_set_dispatching(ctx, !blocking) of a blocking aio_poll.
        s.atomic_set(s.dispatching, 0)
        # Write ctx->dispatching before reading bh->scheduled.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def poll_end(s):
        # aio_set_dispatching(ctx, true) before the handlers run.
        s.atomic_set(s.dispatching, 1)

    def on_event(s):
        s.event_notifier_test_and_clear()


RECORD = Entry(
    strategy=SpeedUpAioNotify.name,
    commit="0ceb849bd336a5f9b6e1ed56d45cf5773d251ad8",
    date="2014-07-07",
    title="AioContext: speed up aio_notify",
    author="Paolo Bonzini",
    side="after",
    changed="aio_notify writes the EventNotifier only if ctx->dispatching is clear; aio_poll clears "
            "it (plain store, smp_mb) before a blocking ppoll and sets it around dispatch.",
    bug="A poller in another thread sets `dispatching` while the home thread sleeps; a worker's "
        "qemu_bh_schedule skips the write and the home thread hangs in ppoll(-1) (a hang until the "
        "next key press).",
    effect="introduced",
    arch="aarch64 KVM (found in 2015; eabc9779 notes infinite timeouts are rarer on x86)",
    history={"2015": {"arm": "lost-wakeup"}},
    disagreement="The checker reports each run's worst verdict: 2014's plain bottom-half flag "
                 "(924fe129's) loses work on tso and arm, which ranks above the lost wake-up (the "
                 "dispatching hang itself is the foreign lost wake-up qemu-2015-e8d3b1a2 shows with "
                 "the same notify side), and its sc lost work (foreign only) is two aio_bh_poll "
                 "running at once, both plain claims taking the same schedule, which QEMU excluded "
                 "(async.c forbids concurrent aio_bh_poll; its callers held the BQL or the "
                 "AioContext lock) and the checker's foreign poller, whose lock only orders memory, "
                 "does not.",
    refs=("fixed by eabc9779 (2015-07-21)", "docs/aio_notify.promela (new in this commit)"),
    encoding="aio_poll's final restore of the caller's `dispatching` has no hook: the flag stays "
             "set between two polls of the home thread.  Bottom-half side: 924fe129's plain flag.",
)
