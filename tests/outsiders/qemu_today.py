# Strategies written for the tests the way a QEMU developer would write them
# today: hooks copied from util/async.c and util/aio-posix.c in QEMU's own
# spelling (qatomic_read, qatomic_set, smp_mb__after_rmw, qatomic_set_mb,
# event_notifier_set, ...), declaring both skeletons.  Like
# outsider_strategies.py they import only aiocore's public Strategy base and
# share no code with strategies/; tests/outsiders/install.py installs this
# module as a distribution of its own.  Each declares what its author
# believed, nothing more.
#
#   qemu-today        upstream's protocol (aio_notify sets notified, then a
#                     full barrier, then reads notify_me; aio_notify_accept
#                     clears it and fences), spelled as QEMU spells it:
#                     correct on both skeletons and every model.
#   after-rmw-notify  aio_notify "saves" its full barrier: the schedule's
#                     fetch_or is a full barrier on x86 and smp_mb__after_rmw()
#                     makes it one on ARM, so the author follows the store to
#                     `notified` with smp_mb__after_rmw() instead of smp_mb().
#                     But the store comes *after* the RMW: on x86
#                     smp_mb__after_rmw() is a compiler barrier, the store of
#                     notified may still sit in the store buffer while
#                     notify_me is read.  On the 2015 skeleton nothing reads
#                     notified before sleeping (the BH flags are read after
#                     poll_begin's fence), so only the polling skeleton's last
#                     look misses it: a lost wake-up under tso, on polling
#                     only (on ARM the macro is a full fence, and it passes).
#   accept-wmb        upstream, except that aio_notify_accept ends with
#                     smp_wmb() where upstream has smp_mb(): the clearing of
#                     notified may become visible after a notifier's
#                     notified = true.  Harmless on 2015 (poll_begin's fence
#                     precedes the reads of the BH flags); on polling, the
#                     last look reads only `notified`: a lost wake-up under
#                     tso and arm.
from aiocore import Strategy

BOTH = ("2015", "polling")
PASS = {"sc": "pass", "tso": "pass", "arm": "pass"}


class _Upstream(Strategy):
    """util/async.c and util/aio-posix.c of today, in QEMU's spelling (no
    override of notify/accept here: each strategy below writes its own)."""

    skeletons = BOTH
    accept_nonblocking = True  # aio_notify_accept runs after every wait
    expected = PASS
    expected_skeletons = {"polling": PASS}

    def schedule(s):
        # aio_bh_enqueue: old_flags = qatomic_fetch_or(&bh->flags, BH_PENDING)
        if not s.qatomic_fetch_or(s.bh_scheduled, 1):
            s.notify()

    def timeout_zero(s):
        # aio_context_notifier_poll
        return s.qatomic_read(s.notified)

    def on_event(s):
        # aio_context_notifier_cb
        s.event_notifier_test_and_clear()

    def poll_begin(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) + 2)
        # Write ctx->notify_me before computing the timeout (reading bottom
        # half flags, etc.).
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def poll_end(s):
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.qatomic_set(s.notify_me, s.qatomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in aio_notify()")

    def check(s):
        s.qatomic_store_release(s.notify_me, s.qatomic_read(s.notify_me) & ~1)
        s.accept()


class QemuToday(_Upstream):
    """Upstream's aio_notify / aio_notify_accept, spelled as QEMU spells them."""

    name = "qemu-today"
    origin = "tests: util/async.c of today, copied in QEMU's spelling"

    def notify(s):
        # Write e.g. bh->flags before writing ctx->notified.
        s.smp_wmb(pairs="smp_mb in aio_notify_accept()")
        s.qatomic_set(s.notified, 1)
        # Write ctx->notified before reading ctx->notify_me.
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll")
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        # Order the clearing of notified before reads of the BH flags.
        s.smp_mb(pairs="smp_wmb in aio_notify()")


class AfterRmwNotify(_Upstream):
    """aio_notify's full barrier replaced by smp_mb__after_rmw() after a plain store."""

    name = "after-rmw-notify"
    origin = "tests: smp_mb__after_rmw() used after a plain store (a compiler barrier on x86)"

    def notify(s):
        s.smp_wmb(pairs="smp_mb in aio_notify_accept()")
        s.qatomic_set(s.notified, 1)
        # The author's reasoning: the fetch_or in bh_schedule is a full
        # barrier on x86, and this makes it one on ARM.
        s.smp_mb__after_rmw()
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        s.smp_mb(pairs="smp_wmb in aio_notify()")


class AcceptWmb(_Upstream):
    """aio_notify_accept ending with smp_wmb() instead of smp_mb()."""

    name = "accept-wmb"
    origin = "tests: aio_notify_accept's smp_mb written as smp_wmb"

    def notify(s):
        s.smp_wmb(pairs="smp_mb in aio_notify_accept()")
        s.qatomic_set(s.notified, 1)
        s.smp_mb(pairs="smp_mb in aio_ctx_prepare or aio_poll")
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.qatomic_set(s.notified, 0)
        s.smp_wmb(pairs="smp_wmb in aio_notify()")


#: entry-point name -> class name (what the distribution registers).
ENTRY_POINTS = {
    "qemu-today": "QemuToday",
    "after-rmw-notify": "AfterRmwNotify",
    "accept-wmb": "AcceptWmb",
}
