# qemu-2020-8c6b0356: "util/async: make bh_aio_poll() O(1)" (QEMU 5.0).
#
# The bottom-half side of QEMU today.  A BH carries a flags word (PENDING,
# SCHEDULED, DELETED, ONESHOT, IDLE); qemu_bh_schedule sets PENDING |
# SCHEDULED with atomic_fetch_or and, if PENDING was clear, pushes the BH
# on ctx->bh_list with a cmpxchg retry loop; then it calls aio_notify
# *every time*, not only on the 0 -> 1 edge.  aio_bh_poll takes the whole
# list with one atomic_xchg and clears each BH's flags with
# atomic_fetch_and before calling it; qemu_bh_cancel clears SCHEDULED with
# atomic_and.  Only enqueued BHs are walked, hence O(1) in the number of
# BHs created.
#
# The notify side is b37548fc's (seq_cst RMWs on notify_me, accept only in
# a blocking aio_poll): the ARMv8.0 window of Launchpad 1805256 is still
# there, until 5710a3e0 two months later.
#
# Encoding: the bottom-half side is _bh.FlagsList2020 (the cmpxchg loop
# bounded at INSERT_ATTEMPTS attempts).
from aiocore import Strategy

from ._bh import FlagsList2020
from ._record import Entry


class BhListO1(FlagsList2020, Strategy):
    """A BH flags word and a lock-free list, aio_notify on every schedule; b37548fc's notify side (QEMU 8c6b0356, 2020)."""

    name = "qemu-2020-8c6b0356"
    origin = ('qemu 8c6b0356b53977bcfdea5299db07884915425b0c (2020-02-21) "util/async: make '
              'bh_aio_poll() O(1)": no bug (a 9% CPU profile); the ARMv8.0 hang of Launchpad '
              '1805256 remains')
    foreign_pollers = False
    accept_nonblocking = False
    skeletons = ("2015",)
    # ARMv8 exactly (issue 21): the list head is read with atomic_rcu_read, which GCC
    # compiles to LDAR (consume is promoted to acquire), and ARMv8 orders the
    # atomic_add's STLXR before a later LDAR ([L]; po; [A]): the compute_timeout of
    # this commit cannot read the BH before notify_me is visible.
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}


    def notify(s):
        # Write bh->flags before reading ctx->notify_me.
        s.smp_mb(pairs="the atomic_add in aio_poll or atomic_or in aio_ctx_prepare")
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
    strategy=BhListO1.name,
    commit="8c6b0356b53977bcfdea5299db07884915425b0c",
    date="2020-02-21",
    title="util/async: make bh_aio_poll() O(1)",
    author="Stefan Hajnoczi",
    side="after",
    changed="BH flags word set with atomic_fetch_or, a lock-free bh_list (cmpxchg push, xchg of "
            "the whole list in aio_bh_poll, fetch_and of each BH's flags); aio_notify on every "
            "schedule; qemu_bh_cancel is atomic_and.",
    bug="None (performance: aio_compute_timeout and aio_bh_poll were 9% of a CPU profile with "
        "hundreds of virtio-blk queues).  One semantic change: qemu_bh_delete notifies.",
    effect="none",
    arch="not stated",
    # Launchpad 1805256 (aarch64) is still open in this code.
    history={"2015": {"arm": "lost-wakeup"}},
    refs=("Message-id 20200221093951.1414693-1-stefanha@redhat.com",
          "documented by 8dd48650 (2023): synchronization is through bh_list"),
    disagreement="ARMv8 orders a release store before a later acquire load (RCsc: STLXR then "
                 "LDAR): the aio_poll of this commit reads ctx->bh_list with atomic_rcu_read "
                 "(LDAR) before any BH flag, so the atomic_add's store is visible first and the "
                 "checker finds no lost wake-up on either ARM profile in the 2015 skeleton's "
                 "configs; the window of Launchpad 1805256 needs a plain load after the add.",
    encoding="2016-2020 polling skeleton as aiocore's 2015 skeleton with timeout_zero; the "
             "insertion's cmpxchg loop bounded at 8 attempts.",
)
