"""The skeletons of the C core and of the checker cannot drift apart: both mark the named steps of
aiocore._compiler._skeleton.STEPS (AIO_STEP in C, Proc.steps in the checker), and along the same path of one
blocking aio_poll they pass the same steps and agree on what ran."""
import inspect

import pytest

import aiocore
from aiocore._compiler import _plugins, _skeleton
from aiocore._checker._steps import SCENARIOS, Scenario, skeleton_steps
from aiocore._checker._steps import home_steps as _home_steps

STRATEGIES = ("notified", "always-notified", "selfpipe", "late-clear", "explicit-mb")


def _ir(name):
    return _plugins.get(name).ir


#: A pending BH, as a strategy with a BH list sees it: QEMU's flags word with PENDING |
#: SCHEDULED (always-notified, util/async.c since 8c6b0356) and the BH on ctx->bh_list
#: (links are ids + 1).  A single-flag strategy reads any non-zero value as scheduled.
LISTED_PENDING = {"bh0": 3, "bh_list": 1}


def _listed(changes):
    return {**changes, **LISTED_PENDING} if changes.get("bh0") else changes


def home_steps(ir, skeleton, scenario):
    """_steps.home_steps, with the scenario's pending BH listed for a strategy that walks a list."""
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    if "claim_list" in ir.optional:
        sc = Scenario(sc.name, sc.text, {step: _listed(ch) for step, ch in sc.at.items()}, sc.rounds,
                      _listed(sc.on_block))
    return _home_steps(ir, skeleton, sc)


# --- the checker half ----------------------------------------------------------------


@pytest.mark.parametrize("skeleton", _skeleton.SKELETONS)
@pytest.mark.parametrize("name", STRATEGIES)
def test_checker_labels_exactly_the_skeleton_steps_in_order(skeleton, name):
    assert skeleton_steps(_ir(name), skeleton) == _skeleton.STEPS[skeleton]


@pytest.mark.parametrize("skeleton", _skeleton.SKELETONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_path_passes_every_step_in_order(skeleton, scenario):
    """As in the C, each step is marked before its condition: every aio_poll passes all."""
    assert home_steps(_ir("always-notified"), skeleton, scenario).steps == _skeleton.STEPS[skeleton]


@pytest.mark.parametrize("name", ["always-notified", "notified"])
def test_polling_paths_run_what_the_spec_says(name):
    """What each step did on each path, as _skeleton.py specifies the polling skeleton."""
    ir = _ir(name)
    idle = home_steps(ir, "polling", "idle")
    assert idle.ran("poll_handlers", f"busy-poll up to {_skeleton.POLL_ROUNDS}")
    assert idle.ran("poll_begin", "poll_begin") and idle.ran("wait", "ppoll")
    assert idle.ran("poll_end", "poll_end") and idle.ran("poll_end", "accept")
    no_poll = home_steps(ir, "polling", "idle-no-polling")
    assert "poll_handlers" not in no_poll.did and no_poll.ran("wait", "ppoll")
    # a BH pending at compute_timeout: timeout 0, no busy-poll, no notify_me, no system call,
    # and aio_notify_accept instead of poll_end
    bh = home_steps(ir, "polling", "bh-pending")
    assert set(bh.did) == {"compute_timeout", "poll_end", "dispatch"}, bh.did
    assert bh.did["poll_end"] == ("accept",)
    # notified seen while busy-polling: no notify_me, no system call
    inpoll = home_steps(ir, "polling", "notified-in-poll")
    assert "poll_begin" not in inpoll.did and "wait" not in inpoll.did
    assert inpoll.did["poll_end"] == ("accept",)
    # seen by the last look only: notify_me was raised (so poll_end), but no system call
    last = home_steps(ir, "polling", "notified-at-last-look")
    assert last.ran("poll_begin", "poll_begin") and "wait" not in last.did
    assert last.ran("poll_end", "poll_end")


def test_2015_paths_always_make_the_system_call():
    for scenario in SCENARIOS:
        p = home_steps(_ir("notified"), "2015", scenario)
        assert p.ran("wait", "ppoll") and p.ran("poll_begin", "poll_begin"), scenario


def test_on_event_runs_only_after_a_ppoll_that_saw_the_notifier():
    ir = _ir("always-notified")  # on_event = event_notifier_test_and_clear
    assert home_steps(ir, "polling", "event-readable").ran("dispatch", "on_event")
    # readable, but a BH pending makes the timeout 0: no ppoll ran, so no on_event
    p = home_steps(ir, "polling", Scenario("x", "", at={"compute_timeout": {"event": 1, "bh0": 1}}))
    assert "wait" not in p.did and not p.ran("dispatch", "on_event")


# --- the C half --------------------------------------------------------------------------
#
# One blocking aio_poll of the C core, built with the step log (AIO_STEP_LOG), on a path the
# checker also runs; the steps it logs and whether it made a system call (counter
# polls_no_syscall) must be the checker's.  The C paths, and the checker scenario each matches:
#   a BH pending before aio_poll         -> "bh-pending" (timeout 0: no notify_me, no ppoll)
#   a timer 300 us ahead, nothing else   -> "idle" (a non-zero timeout: poll phase, notify_me,
#                                           the last look, a ppoll; the model has no timers,
#                                           its idle wait is infinite and a notify ends it)

C_CASES = [("2015", "notified"), ("2015", "always-notified"), ("polling", "always-notified"),
           ("polling", "selfpipe")]


def _bh_pending(ctx):
    ctx.bh_schedule(ctx.bh_new(lambda: None))


def _timer(ctx):
    ctx.timer_mod_ns(ctx.timer_new(lambda: None), ctx.clock_ns() + 300_000)


C_PATHS = {"bh-pending": _bh_pending, "idle": _timer}


def _c_api_or_fail():
    params = inspect.signature(aiocore.AioContext.create).parameters
    missing = [p for p in ("skeleton", "_step_log") if p not in params]
    if not hasattr(aiocore.AioContext, "_steps"):
        missing.append("AioContext._steps")
    if missing:
        pytest.fail("the C step-log API is missing: AioContext.create(strategy, skeleton=..., "
                    "_step_log=True) and ctx._steps() (the native helper's branch adds them); "
                    f"missing here: {missing}")
    return {"_undeclared_ok": True} if "_undeclared_ok" in params else {}


@pytest.mark.parametrize("path", sorted(C_PATHS))
@pytest.mark.parametrize("skeleton,name", C_CASES, ids=[f"{s}-{n}" for s, n in C_CASES])
def test_c_and_checker_pass_the_same_steps(skeleton, name, path):
    # the drift test is about the skeleton, not about which strategies declare it
    extra = _c_api_or_fail()
    want = home_steps(_ir(name), skeleton, path)
    with aiocore.AioContext.create(name, skeleton=skeleton, _step_log=True, **extra) as ctx:
        ctx._steps()
        C_PATHS[path](ctx)
        before = ctx.counters()
        ctx.aio_poll(True)
        got = tuple(ctx._steps())
        after = ctx.counters()
    assert got == want.steps
    no_syscall = after.polls_no_syscall - before.polls_no_syscall
    assert no_syscall == (0 if want.ran("wait", "ppoll") else 1), (skeleton, name, want.did)
