"""The checker judges QEMU's bottom-half contract (issue 23): a schedule's payload must reach a later callback."""
# Every notifier writes a payload (its schedule's sequence number) with a
# plain store before each schedule; a callback reads it.  Lost work is an end
# state where some BH's last payload was never read.  The e8d3b1a2-style
# coalescing bug is the acceptance test: sc pass, tso (and arm) lost work.
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aiocore import Strategy
from aiocore._checker import Bounds, check_ir, supported_configs, worst
from aiocore._checker._assemble import build
from aiocore._checker._program import ModelError
from aiocore._compiler._strategy import describe

sys.path.insert(0, str(Path(__file__).resolve().parent / "outsiders"))
from outsider_bh import ListedFlags, PlainScheduled, XchgScheduled  # noqa: E402

P, LW, LWK = "pass", "lost-wakeup", "lost-work"


def _worst(cls, model, skeleton="2015", **kw):
    ir = describe(cls)
    return worst(check_ir(ir, model, c, want_trace=False, skeleton=skeleton, **kw).verdict
                 for c in supported_configs(ir, skeleton))


@pytest.mark.parametrize("cls,expected", [
    (PlainScheduled, {"sc": P, "tso": LWK}),
    (XchgScheduled, {"sc": P, "tso": P}),
    (ListedFlags, {"sc": P, "tso": P}),
], ids=lambda x: getattr(x, "name", ""))
def test_bottom_half_verdicts(cls, expected):
    """Plain stores to bh->scheduled lose work on x86 only; e8d3b1a2's xchg and today's list do not."""
    assert {m: _worst(cls, m) for m in expected} == expected


def test_plain_scheduled_loses_work_on_arm_too():
    """The coalescing bug needs only store->load reordering, which ARM has as well."""
    assert check_ir(describe(PlainScheduled), "arm", "home", want_trace=False).verdict == LWK


def test_coalescing_counterexample_is_e8d3b1a2():
    """The tso trace: the claim's store of 0 waits in the poller's buffer, the callback reads the old
    payload, the notifier's schedule sees the flag still set and coalesces; nothing runs again."""
    r = check_ir(describe(PlainScheduled), "tso", "home")
    assert r.verdict == LWK
    steps = r.trace[:-1]
    cb = [i for i, s in enumerate(steps) if "callback starts" in s["op"]]
    assert cb, r.format_trace()
    last_cb = steps[cb[-1]]
    assert "bh0.scheduled=0" in " ".join(last_cb["buffers"].get("home", []))  # the claim's store waits
    after = steps[cb[-1] + 1:]
    coalesce = [s for s in after if s["process"].startswith("notifier") and "atomic_read(bh0.scheduled)"
                in s["op"] and s["result"] == "read 1"]
    assert coalesce, r.format_trace()
    assert "no callback that started after it read it" in r.explanation
    end = r.trace[-1]["state"]
    assert end["memory"]["bh0.scheduled"] == 0 and "asleep" in end["processes"]["home"]


def test_correct_strategies_stay_clean_on_the_payload():
    """Every built-in keeps its verdict: the payload adds no finding to a correct BH side (spot check)."""
    from aiocore._compiler import _plugins

    for name, model in (("explicit-mb", "arm"), ("always-notified", "tso"), ("selfpipe", "sc")):
        ir = _plugins.get(name).ir
        assert worst(check_ir(ir, model, c, want_trace=False).verdict for c in supported_configs(ir)) == P


class _PlainTwoPollers(PlainScheduled):
    """2014's plain claim with a second poller: two claims may both read the flag set."""

    name = "t-plain-two-pollers"
    foreign_pollers = True


@pytest.mark.parametrize("engine", ["c", "python"])
def test_a_double_dispatch_counterexample_shows_both_callbacks(engine):
    """The trace of a double dispatch ends with the second callback start, each start after its own claim
    read the flag set (the state it leads to may have been reached first without it)."""
    r = check_ir(describe(_PlainTwoPollers), "sc", "foreign", engine=engine)
    assert r.verdict == LWK and "started twice" in r.explanation, r.explanation
    steps = r.trace[:-1]
    starts = [s for s in steps if "callback starts" in s["op"]]
    assert [s["process"] for s in starts] == ["home", "foreign"], r.format_trace()
    assert starts[-1] is steps[-1], r.format_trace()
    for who in ("home", "foreign"):
        claims = [s for s in steps if s["process"] == who and s["where"] == "dispatch/claim"
                  and "atomic_read(bh0.scheduled)" in s["op"]]
        assert claims and claims[-1]["result"] == "read 1", r.format_trace()


class _ReviewAccept(ListedFlags):
    """Today's upstream with aio_notify_accept as `notified = 0; smp_wmb()` (a 2020 review variant)."""

    name = "t-review-list"
    skeletons = ("2015", "polling")
    accept_nonblocking = True

    def notify(s):
        s.smp_wmb(pairs="accept")
        s.atomic_set(s.notified, 1)
        s.smp_mb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.atomic_set(s.notified, 0)
        s.smp_wmb(pairs="notify")

    def on_event(s):
        s.event_test_and_clear()

    def notifier_poll(s):
        return s.atomic_read(s.notified)

    def last_look(s):
        return s.atomic_read(s.notified)


class _ReviewAcceptNoList(_ReviewAccept):
    """The same, its bottom halves written the core's default way (no list, no xchg of one)."""

    name = "t-review-nolist"
    schedule = Strategy.schedule
    claim = Strategy.claim
    bh_pending = Strategy.bh_pending
    cancel = Strategy.cancel
    claim_list = None


def test_the_lists_rmw_decides_the_review_variant():
    """Written literally the review variant loses a wake-up under tso on the polling skeleton; the
    list's xchg in aio_bh_poll (a locked instruction) supplies the fence it lacks."""
    assert check_ir(describe(_ReviewAcceptNoList), "tso", "home", want_trace=False,
                    skeleton="polling").verdict == LW
    assert check_ir(describe(_ReviewAccept), "tso", "home", want_trace=False,
                    skeleton="polling").verdict == P
    assert check_ir(describe(_ReviewAcceptNoList), "sc", "home", want_trace=False,
                    skeleton="polling").verdict == P


class _PlainCancel(XchgScheduled):
    """qemu_bh_cancel as a plain store, called by the consumer (thread-pool.c, b7a745dc..ef6dada8)."""

    name = "t-plain-cancel"


class _MbCancel(XchgScheduled):
    """ef6dada8: atomic_mb_set(&bh->scheduled, 0)."""

    name = "t-mb-cancel"

    def cancel(s):
        s.atomic_mb_set(s.bh_scheduled, 0, pairs="the xchg in schedule")


def test_a_consumer_cancel_needs_a_full_barrier():
    """A callback that cancels its BH and looks again erases a schedule under tso unless the cancel
    is a full barrier (ef6dada8); listed-flags' atomic_and is one."""
    kw = dict(callback="cancel-reread", want_trace=False)
    assert check_ir(describe(_PlainCancel), "tso", "home", **kw).verdict == LWK
    assert check_ir(describe(_PlainCancel), "sc", "home", **kw).verdict == P
    assert check_ir(describe(_MbCancel), "tso", "home", **kw).verdict == P
    assert check_ir(describe(ListedFlags), "tso", "home", **kw).verdict == P


class _OneshotNoNotify(ListedFlags):
    """5b8bb359's one-shot BH: put on the list without aio_notify."""

    name = "t-oneshot-quiet"

    def schedule_oneshot(s):
        s.atomic_fetch_or(s.bh_flags, 3)
        for _ in s.retry(8):
            head = s.atomic_read(s.bh_list)
            s.atomic_set(s.bh_next, head)
            if s.atomic_cmpxchg(s.bh_list, head, s.bh_self) == head:
                break


def test_oneshot_schedules_are_checked():
    """bh mode oneshot: each schedule is a fresh BH through schedule_oneshot; without a notify it is lost."""
    kw = dict(bh_mode="oneshot", want_trace=False)
    assert check_ir(describe(_OneshotNoNotify), "sc", "home", **kw).verdict == LW
    assert check_ir(describe(ListedFlags), "sc", "home", **kw).verdict == P
    prog = build(describe(ListedFlags), "sc", "home", 2, 2, bh_mode="oneshot")
    assert len(prog.bh_locs) == 4 and prog.bh_owner == (1, 1, 2, 2)


def test_unknown_modes_are_refused():
    """A bh mode or callback the checker does not know is an error naming the known ones."""
    with pytest.raises(ModelError, match="unknown bh mode"):
        build(describe(ListedFlags), "sc", "home", 1, 1, bh_mode="twice")
    with pytest.raises(ModelError, match="callbacks: read, cancel-reread"):
        build(describe(ListedFlags), "sc", "home", 1, 1, callback="sleep")


def test_a_crashed_notifiers_last_schedule_is_not_owed():
    """A notifier killed inside its schedule owes nothing for it: with recovery, a correct strategy passes."""
    assert check_ir(describe(XchgScheduled), "tso", "home", Bounds(notifiers=1, schedules=2),
                    want_trace=False, faults="crash", recovery=True).verdict == P


@pytest.mark.parametrize("model", ["sc", "tso"])
def test_payload_stores_take_no_step_of_their_own(model):
    """On sc and tso a payload store becomes visible with the notifier's next move or store, so no
    counterexample step is a payload becoming visible, nor a notifier only deciding to stay."""
    from aiocore._compiler import _plugins

    r = check_ir(_plugins.get("bug2").ir, model, "home")
    assert r.verdict == LW
    for s in r.trace[:-1]:
        assert not (s["where"] == "store buffer" and s["op"].startswith("bh") and "payload" in s["op"]
                    and "," not in s["op"]), r.format_trace()
        assert s["result"] != "stays", r.format_trace()
