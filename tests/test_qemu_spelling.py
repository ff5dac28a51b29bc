"""QEMU's spellings of the primitives (qatomic_*, qatomic_set_mb, qatomic_mb_read,
smp_mb__before_rmw / smp_mb__after_rmw, event_notifier_*) are the same primitives: same IR,
same fingerprint, C in one spelling; smp_mb__*_rmw is a full fence on ARM only."""
from __future__ import annotations

import pytest

from aiocore import Strategy
from aiocore._checker import DEFAULT_BOUNDS, check_ir
from aiocore._compiler._codegen import generate_c
from aiocore._compiler._strategy import describe
from aiocore._compiler._trace import check_strategy


# One description, written twice: the pre-2020 spelling and QEMU's of today
# (the same source lines, so that the IRs' value names agree).
SOURCE = """
class Upstream(Strategy):
    name = "spell-{tag}"
    skeletons = ("2015", "polling")
    accept_nonblocking = True

    def schedule(s):
        if not s.{a}fetch_or(s.bh_scheduled, 1):
            s.notify()

    def notify(s):
        s.smp_wmb(pairs="smp_mb in accept")
        s.{a}set(s.notified, 1)
        s.smp_mb(pairs="smp_mb in poll_begin")
        if s.{a}read(s.notify_me):
            s.{ev}set()

    def accept(s):
        s.{a}set(s.notified, 0)
        s.smp_mb(pairs="smp_wmb in notify")

    def timeout_zero(s):
        return s.{a}read(s.notified)

    def on_event(s):
        s.{ev}test_and_clear()

    def poll_begin(s):
        s.{a}set(s.notify_me, s.{a}read(s.notify_me) + 2)
        s.smp_mb(pairs="smp_mb in notify")

    def poll_end(s):
        s.{a}store_release(s.notify_me, s.{a}read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.{mbset}(s.notify_me, s.{mbread}(s.notify_me) | 1, pairs="smp_mb in notify")

    def check(s):
        s.{a}xchg(s.notify_me, s.{a}cmpxchg(s.notify_me, 1, 0) & ~1)
        s.{a}and(s.notify_me, 3)
        s.accept()
"""


def _spelled(tag, **names):
    ns = {"Strategy": Strategy}
    exec(SOURCE.format(tag=tag, **names), ns)
    return ns["Upstream"]


Pre2020 = _spelled("old", a="atomic_", ev="event_", mbset="atomic_mb_set", mbread="atomic_load_acquire")
Today = _spelled("new", a="qatomic_", ev="event_notifier_", mbset="qatomic_set_mb", mbread="qatomic_mb_read")
Today2020 = _spelled("new2020", a="qatomic_", ev="event_notifier_", mbset="qatomic_mb_set",
                     mbread="qatomic_load_acquire")


def test_qemu_spelling_is_the_same_ir():
    """Written with qatomic_* / event_notifier_*, a strategy traces to the same IR and fingerprint."""
    old, new, mid = describe(Pre2020), describe(Today), describe(Today2020)
    assert old.hooks == new.hooks == mid.hooks
    assert old.fingerprint == new.fingerprint == mid.fingerprint


def test_generated_c_uses_one_spelling():
    """The C of a QEMU-spelled strategy is in one spelling (aiocore's), with no qatomic_ left."""
    c = generate_c(describe(Today))
    assert "atomic_read(" in c and "qatomic_" not in c


def test_set_mb_needs_no_pairs_note():
    """qatomic_set_mb(p, v), as QEMU writes it (no note), is atomic_mb_set with a default note."""

    class SetMb(Pre2020):
        name = "spell-setmb"

        def prepare(s):
            s.qatomic_set_mb(s.notify_me, s.qatomic_read(s.notify_me) | 1)

    (st,) = [x for x in describe(SetMb).hooks["prepare"] if type(x).__name__ == "MbSet"]
    assert "qatomic_set_mb" in st.pairs


class AfterRmw(Pre2020):
    """notify's full barrier written as smp_mb__after_rmw() after a plain store."""

    name = "spell-after-rmw"

    def notify(s):
        s.smp_wmb(pairs="smp_mb in accept")
        s.qatomic_set(s.notified, 1)
        s.smp_mb__after_rmw()
        if s.qatomic_read(s.notify_me):
            s.event_notifier_set()


def test_mb_after_rmw_is_a_fence_on_arm_only():
    """smp_mb__after_rmw() is a compiler barrier on x86 and a full fence on ARM (QEMU ff00bed1):
    used after a plain store it loses a wake-up under tso on the polling skeleton, not under arm."""
    ir = describe(AfterRmw)
    v = {(sk, m): check_ir(ir, m, "home", DEFAULT_BOUNDS, skeleton=sk).verdict
         for sk in ("2015", "polling") for m in ("sc", "tso", "arm")}
    assert v[("polling", "tso")] == "lost-wakeup"
    assert v[("polling", "sc")] == v[("polling", "arm")] == "pass"
    assert v[("2015", "tso")] == v[("2015", "arm")] == "pass"


def test_mb_before_rmw_makes_an_llsc_rmw_a_fence():
    """smp_mb__before_rmw() / smp_mb__after_rmw() around poll_begin's RMW fix explicit-mb's ARM
    hang the way QEMU does it: pass on every model."""

    class Fixed(Pre2020):
        name = "spell-rmw-fixed"

        def notify(s):
            s.smp_mb(pairs="smp_mb__after_rmw in poll_begin")
            if s.qatomic_read(s.notify_me):
                s.event_notifier_set()
                s.qatomic_set_mb(s.notified, 1)

        def accept(s):
            if s.qatomic_xchg(s.notified, 0):
                s.event_notifier_test_and_clear()

        timeout_zero = None
        on_event = None

        def poll_begin(s):
            s.qatomic_add(s.notify_me, 2)
            s.smp_mb__after_rmw()

    class Broken(Fixed):
        name = "spell-rmw-broken"

        def poll_begin(s):
            s.qatomic_add(s.notify_me, 2)

    fixed, broken = describe(Fixed), describe(Broken)
    assert check_ir(broken, "arm", "home", DEFAULT_BOUNDS).verdict == "lost-wakeup"
    for m in ("sc", "tso", "arm"):
        assert check_ir(fixed, m, "home", DEFAULT_BOUNDS).verdict == "pass", m


@pytest.mark.parametrize("cls", [Today, AfterRmw], ids=lambda c: c.name)
def test_qemu_spelled_c_is_faithful(cls):
    """The trace build of the generated C logs what the QEMU-spelled description does, on every path."""
    from aiocore._compiler._strategy import StrategyInfo

    ir = describe(cls)
    info = StrategyInfo(name=cls.name, origin="", source="tests", status="ok", expected={}, cls=cls, ir=ir)
    report = check_strategy(info)
    assert report.uncovered == {}
