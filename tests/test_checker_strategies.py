"""Strategies the project has never seen get the verdicts their code deserves."""
import pytest

from aiocore._checker import Bounds, ModelError, check_ir, supported_configs, worst
from aiocore._compiler._strategy import Strategy, describe

MODELS = ("sc", "tso", "arm", "arm-llsc", "arm-lse")


def verdicts(cls, configs=None, bounds=Bounds()):
    ir = describe(cls)
    configs = configs or supported_configs(ir)
    return {m: worst(check_ir(ir, m, c, bounds, want_trace=False).verdict for c in configs) for m in MODELS}


class _ExplicitMbBase(Strategy):
    """5710a3e0's hooks, as a base for variants."""

    name = "t-explicit-mb"

    def notify(s):
        s.smp_mb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="accept")

    def accept(s):
        if s.atomic_xchg(s.notified, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


class NotifierWithoutMb(_ExplicitMbBase):
    """The fence is missing on the notifier's side instead of the poller's."""

    name = "t-notifier-no-mb"

    def notify(s):
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="accept")


class NotifierWmbOnly(_ExplicitMbBase):
    """smp_wmb where smp_mb is needed: orders the two stores, not the store and the load."""

    name = "t-notifier-wmb"

    def notify(s):
        s.smp_wmb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()
            s.atomic_mb_set(s.notified, 1, pairs="accept")


class UnconditionalFixed(Strategy):
    """21a03d17 with an smp_mb after the atomic_add: right on ARM too."""

    name = "t-unconditional-mb"

    def notify(s):
        s.smp_mb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_add(s.notify_me, 2)
        s.smp_mb(pairs="notify")

    def poll_end(s):
        s.atomic_sub(s.notify_me, 2)
        s.accept()

    def prepare(s):
        s.atomic_or(s.notify_me, 1)
        s.smp_mb(pairs="notify")

    def check(s):
        s.atomic_and(s.notify_me, ~1)
        s.accept()


class XchgAsFence(Strategy):
    """A seq_cst RMW on another location used as the fence after a plain store to notify_me."""

    name = "t-xchg-fence"

    def notify(s):
        s.smp_mb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.atomic_xchg(s.notified, 0)  # a full fence on x86, not for later loads on ARM

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.event_test_and_clear()


class PollerWmb(_ExplicitMbBase):
    """smp_wmb after writing notify_me where smp_mb is needed: store->load stays unordered."""

    name = "t-poller-wmb"

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_wmb(pairs="notify")


class PollerRmb(_ExplicitMbBase):
    """smp_rmb after writing notify_me: dmb ishld orders loads only, so the store may still be late."""

    name = "t-poller-rmb"

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_rmb(pairs="notify")


class SelfPipeNoDrain(Strategy):
    """Write the notifier on every schedule and never read it."""

    name = "t-no-drain"

    def notify(s):
        s.event_set()


class AlwaysZeroTimeout(Strategy):
    """timeout_zero always says 'do not block': the poller spins."""

    name = "t-spin"

    def notify(s):
        s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_end(s):
        s.accept()

    def timeout_zero(s):
        return 1


class CancelOwnBh(Strategy):
    """A schedule hook that takes its BH back: the 0->1 schedule is never dispatched."""

    name = "t-cancel"

    def schedule(s):
        if s.atomic_xchg(s.bh_scheduled, 1) == 0:
            s.notify()
            s.atomic_xchg(s.bh_scheduled, 0)

    def notify(s):
        s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_end(s):
        s.accept()

    def check(s):
        s.accept()


class NoPrepare(_ExplicitMbBase):
    """explicit-mb without prepare: the glib path never announces that it may block."""

    name = "t-no-prepare"
    prepare = None


class AcquireRelease(Strategy):
    """Publish with a release store / observe with an acquire load, and full fences for the handshake."""

    name = "t-acqrel"

    def notify(s):
        s.smp_mb(pairs="poll_begin")
        if s.atomic_load_acquire(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_store_release(s.notify_me, 2)
        s.smp_mb(pairs="notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, 0)
        s.accept()

    def prepare(s):
        s.atomic_store_release(s.notify_me, 1)
        s.smp_mb(pairs="notify")

    def check(s):
        s.atomic_store_release(s.notify_me, 0)
        s.accept()


class CmpxchgAnnounce(UnconditionalFixed):
    """Announce with atomic_cmpxchg (0 -> 2) instead of an add."""

    name = "t-cmpxchg"

    def poll_begin(s):
        s.atomic_cmpxchg(s.notify_me, 0, 2)
        s.smp_mb(pairs="notify")

    def poll_end(s):
        s.atomic_cmpxchg(s.notify_me, 2, 0)
        s.accept()


def _all(v):
    return {m: v for m in MODELS}


def _arm(sc, tso, llsc, lse):
    """Verdicts with the ARM profiles apart; arm is the worse of the two."""
    arm = llsc if llsc != "pass" else lse
    return {"sc": sc, "tso": tso, "arm": arm, "arm-llsc": llsc, "arm-lse": lse}


EXPECT = [
    (_ExplicitMbBase, _all("pass")),
    # the schedule hook's xchg is a locked instruction: a full fence on x86; on ARM an
    # LDAXR/STLXR loop orders nothing after its store, SWPAL (LSE) orders everything
    (NotifierWithoutMb, _arm("pass", "pass", "lost-wakeup", "pass")),
    # smp_wmb is a release fence in this project's C: GCC emits `dmb ish` for it on aarch64,
    # which orders the store before the load (Linux's smp_wmb, `dmb ishst`, would not);
    # on x86 it is a compiler barrier, so the poller's store may pass its load
    (NotifierWmbOnly, _arm("pass", "pass", "pass", "pass")),
    (PollerWmb, _arm("pass", "lost-wakeup", "pass", "pass")),
    # `dmb ishld` orders earlier loads only: the notify_me store may still be late
    (PollerRmb, _arm("pass", "lost-wakeup", "lost-wakeup", "lost-wakeup")),
    (UnconditionalFixed, _all("pass")),
    (XchgAsFence, _arm("pass", "pass", "lost-wakeup", "pass")),
    (SelfPipeNoDrain, _all("busy-loop")),
    (AlwaysZeroTimeout, _all("busy-loop")),
    (CancelOwnBh, _all("lost-work")),
    (AcquireRelease, _all("pass")),
    (CmpxchgAnnounce, _all("pass")),
]


@pytest.mark.parametrize("cls,expected", EXPECT, ids=[c.name for c, _ in EXPECT])
def test_unseen_strategy_verdicts(cls, expected):
    """A strategy written outside the project gets the verdict its code deserves on every model."""
    assert verdicts(cls, configs=("home",)) == expected


def test_missing_prepare_fails_only_in_gsource():
    """Without prepare the glib path never sets notify_me: gsource loses wake-ups, aio_poll does not."""
    ir = describe(NoPrepare)
    assert check_ir(ir, "sc", "home", want_trace=False).verdict == "pass"
    assert check_ir(ir, "sc", "gsource", want_trace=False).verdict == "lost-wakeup"


def test_foreign_config_needs_foreign_pollers():
    """The foreign config is offered only to strategies that declare foreign pollers."""
    ir = describe(_ExplicitMbBase)
    assert "foreign" not in supported_configs(ir)
    with pytest.raises(ModelError):
        check_ir(ir, "sc", "foreign")


def test_event_is_level_triggered_and_sleeper_rechecks():
    """A wake-up cleared by someone else before the sleeper runs is lost (ppoll re-checks readiness)."""

    class EatsOwnWakeup(Strategy):
        """The notifier clears the event right after setting it."""

        name = "t-eat"

        def notify(s):
            s.smp_mb(pairs="poll_begin")
            if s.atomic_read(s.notify_me):
                s.event_set()
                s.event_test_and_clear()

        def poll_begin(s):
            s.atomic_add(s.notify_me, 2)

        def poll_end(s):
            s.atomic_sub(s.notify_me, 2)

    r = check_ir(describe(EatsOwnWakeup), "sc", "home", Bounds(notifiers=1, schedules=1))
    assert r.verdict == "lost-wakeup"


def test_event_set_publishes_earlier_stores_on_arm():
    """A store before event_set is visible to a poller that saw the notifier (the syscall is a fence)."""
    # selfpipe-like with no fence at all: correct only because event_set / the wait order memory
    class Bare(Strategy):
        """Always set, drain after the wait, nothing else."""

        name = "t-bare"

        def notify(s):
            s.event_set()

        def poll_end(s):
            s.event_test_and_clear()

    assert verdicts(Bare, configs=("home",))["arm"] == "pass"


def test_bounds_change_exploration():
    """More notifiers or schedules explore more states (the bounds are real)."""
    ir = describe(_ExplicitMbBase)
    small = check_ir(ir, "tso", "home", Bounds(notifiers=1, schedules=1), want_trace=False)
    big = check_ir(ir, "tso", "home", Bounds(notifiers=2, schedules=2), want_trace=False)
    assert big.states > small.states > 0


def test_bug2_needs_three_notifications():
    """bug2's lost wake-up takes three notifications: 1x2 passes, 1x3 and 2x2 (the default) fail."""
    from aiocore._compiler import _plugins

    ir = _plugins.get("bug2").ir
    assert check_ir(ir, "sc", "home", Bounds(notifiers=1, schedules=2), want_trace=False).verdict == "pass"
    assert check_ir(ir, "sc", "home", Bounds(notifiers=1, schedules=3), want_trace=False).verdict == "lost-wakeup"
    assert check_ir(ir, "sc", "home", Bounds(notifiers=2, schedules=2), want_trace=False).verdict == "lost-wakeup"


@pytest.mark.parametrize("model", MODELS)
def test_rmw_after_own_rmw_same_location(model):
    """A hook doing two RMWs on one location in a row is explored to the end on every model."""
    r = check_ir(describe(CancelOwnBh), model, "home", Bounds(notifiers=2, schedules=2), want_trace=False)
    assert r.verdict == "lost-work" and "deadlock" not in r.other
