# qemu-2020-601829f8: "async: always set ctx->notified in aio_notify()"
# (QEMU 5.2).
#
# aio_notify sets ctx->notified on every call, before it looks at
# notify_me (smp_wmb before the store, smp_mb after it), and writes the
# EventNotifier only if notify_me is set.  aio_notify_accept no longer
# touches the event: it clears `notified` and fences, so that its later
# reads of the bottom-half flags come after the clear.  The event goes
# back to being cleared by the notifier's own fd handler during dispatch,
# which is safe now that only the home thread polls.  This patch alone
# changes no behaviour visible to a poller (aio_poll still raises
# notify_me before polling and accepts only when blocking); it prepares
# 44277bf9, which polls with notify_me down.
#
# In review Paolo Bonzini pointed out that the barrier in
# aio_notify_accept must be smp_mb, not smp_wmb (qemu-2020-601829f8-v3
# is the posted version).
from aiocore import Strategy

from ._bh import FlagsList2020
from ._record import Entry


class AlwaysSetNotified(FlagsList2020, Strategy):
    """aio_notify always sets notified; accept clears it and fences; the event is cleared in dispatch (QEMU 601829f8, 2020)."""

    name = "qemu-2020-601829f8"
    origin = ('qemu 601829f88e0eff8f54fa08b7a69b0774a9c259c8 (2020-08-06) "async: always set '
              'ctx->notified in aio_notify()": no bug, prepares 44277bf9')
    foreign_pollers = False
    accept_nonblocking = False
    skeletons = ("2015",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        # The bottom-half flags are written before notified.
        s.smp_wmb(pairs="smp_mb in aio_notify_accept")
        s.atomic_set(s.notified, 1)
        # notified is written before notify_me is read.
        s.smp_mb(pairs="smp_mb in aio_poll (poll_begin) or aio_ctx_prepare")
        if s.atomic_read(s.notify_me):
            s.event_notifier_set()

    def accept(s):
        s.atomic_set(s.notified, 0)
        # notified is cleared before the bottom-half flags are read.
        s.smp_mb(pairs="smp_wmb in aio_notify")

    def timeout_zero(s):
        # The notifier's poll handler (aio_context_notifier_poll, c13be5a1).
        return s.atomic_read(s.notified)

    def on_event(s):
        # The notifier's fd handler (aio_context_notifier_cb).
        s.event_notifier_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        # Write notify_me before reading the bottom-half flags.
        s.smp_mb(pairs="smp_mb in aio_notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="smp_mb in aio_notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


RECORD = Entry(
    strategy=AlwaysSetNotified.name,
    commit="601829f88e0eff8f54fa08b7a69b0774a9c259c8",
    date="2020-08-06",
    title="async: always set ctx->notified in aio_notify()",
    author="Stefan Hajnoczi",
    side="after",
    changed="aio_notify: smp_wmb; notified = 1; smp_mb; event only if notify_me.  "
            "aio_notify_accept: notified = 0; smp_mb (no event access).  The notifier's fd handler "
            "clears the event.",
    bug="None (prepares 44277bf9).",
    effect="none",
    arch="not stated",
    refs=("Message-id 20200806131802.569478-3-stefanha@redhat.com", "c13be5a1 (same series)",
          "posted version: qemu-2020-601829f8-v3", "next: qemu-2020-44277bf9"),
    encoding="The aio_poll of the time (notify_me raised before polling, accept only when "
             "blocking) as aiocore's 2015 skeleton with timeout_zero.",
)
