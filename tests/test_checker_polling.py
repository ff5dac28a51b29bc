"""The checker on the polling skeleton (QEMU's aio_poll of today): reference verdicts, counterexamples."""
import shutil

import pytest

from aiocore._compiler import _plugins, _skeleton
from aiocore._checker import check_ir
from aiocore._checker import spin as S
from aiocore._compiler._promela import generate_promela
from aiocore._checker._assemble import build
from aiocore._checker._program import CHOOSE, READ, ModelError

MODELS = ("sc", "tso", "arm")
P, LW, BL = "pass", "lost-wakeup", "busy-loop"

# Config home on the polling skeleton.  compute_timeout reads the BH flags
# before notify_me is raised and the last look reads only `notified`, so every
# strategy whose notify leaves no trace but the event when notify_me was 0 loses
# a wake-up, even under SC.
POLLING_HOME = {
    "late-clear": {"sc": LW, "tso": LW, "arm": LW},
    "unconditional": {"sc": LW, "tso": LW, "arm": LW},
    "notified": {"sc": LW, "tso": LW, "arm": LW},
    "notified-blocking": {"sc": LW, "tso": LW, "arm": LW},
    "explicit-mb": {"sc": LW, "tso": LW, "arm": LW},
    "always-notified": {"sc": P, "tso": P, "arm": P},
    "bug1": {"sc": BL, "tso": BL, "arm": BL},
    "bug2": {"sc": LW, "tso": LW, "arm": LW},
    "no-mb": {"sc": LW, "tso": LW, "arm": LW},
    "selfpipe": {"sc": P, "tso": P, "arm": P},
}

# The worst over the polling skeleton's configs (home, gsource): what
# `expected_skeletons = {"polling": ...}` declares.  gsource (the glib path)
# is the same on both skeletons, so it never makes a verdict worse here.
POLLING = POLLING_HOME

CASES = [(n, m) for n in POLLING for m in MODELS]


def _ir(name):
    info = _plugins.get(name)
    assert info.ir is not None, name
    return info.ir


@pytest.mark.parametrize("name,model", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_polling_reference_verdict(name, model):
    """Config home on the polling skeleton gives the table's verdict, and the worst over
    (home, gsource) is the table's too."""
    ir = _ir(name)
    home = check_ir(ir, model, "home", want_trace=False, skeleton="polling")
    gsrc = check_ir(ir, model, "gsource", want_trace=False, skeleton="polling")
    assert not home.truncated and not gsrc.truncated
    assert home.verdict == POLLING_HOME[name][model]
    order = ("pass", "lost-wakeup", "busy-loop", "lost-work")
    assert max(home.verdict, gsrc.verdict, key=order.index) == POLLING[name][model]


@pytest.mark.parametrize("name", ["notified", "always-notified", "late-clear"])
@pytest.mark.parametrize("model", MODELS)
def test_gsource_path_is_the_same_on_both_skeletons(name, model):
    """The glib path does not change with the skeleton: same program, same state space."""
    ir = _ir(name)
    a = check_ir(ir, model, "gsource", want_trace=False, skeleton="2015")
    b = check_ir(ir, model, "gsource", want_trace=False, skeleton="polling")
    assert (a.verdict, a.states) == (b.verdict, b.states)


@pytest.mark.parametrize("model", MODELS)
def test_always_notified_passes_polling(model):
    """Upstream's strategy passes the polling skeleton in every config it has, every model."""
    for config in ("home", "gsource"):
        r = check_ir(_ir("always-notified"), model, config, skeleton="polling")
        assert r.verdict == P and not r.truncated, r.format_trace()


@pytest.mark.parametrize("name", ["notified", "explicit-mb", "unconditional", "late-clear"])
def test_2015_strategy_loses_the_wakeup_between_compute_timeout_and_poll_begin(name):
    """The counterexample: the home poller reads the BH flag (0) in compute_timeout, the
    notifier schedules and reads notify_me == 0 (no event, no notified), then the
    home poller raises notify_me, its last look sees nothing, and it sleeps."""
    r = check_ir(_ir(name), "sc", "home", skeleton="polling")
    assert r.verdict == LW
    steps = r.trace[:-1]
    text = r.format_trace()
    first = lambda pred: next(i for i, s in enumerate(steps) if pred(s))  # noqa: E731
    ct = first(lambda s: s["process"] == "home" and s["where"] == "compute_timeout/bh_pending"
               and "atomic_read(bh0" in s["op"])
    sched = first(lambda s: s["process"] == "notifier0" and "bh0.scheduled, 1" in s["op"])
    nm0 = first(lambda s: s["process"] == "notifier0" and "notify_me" in s["op"] and s["result"] == "read 0")
    pb = first(lambda s: s["process"] == "home" and s["where"].startswith("poll_begin")
               and "wrote" in s["result"])
    assert ct < sched < nm0 < pb, text
    end = r.trace[-1]["state"]
    assert "asleep" in end["processes"]["home"] and end["memory"]["bh0.scheduled"] == 1
    assert end["notifier"] == "not readable"


def test_counterexample_names_the_skeleton_steps():
    """Every step of the home poller in a trace names its skeleton step ("poll_end/accept")."""
    r = check_ir(_ir("bug1"), "sc", "home", skeleton="polling")
    assert r.verdict == BL
    home = [s for s in r.trace[:-1] if s["process"] == "home"]
    assert home
    names = set(_skeleton.STEPS["polling"])
    assert all(s["where"].split("/")[0] in names for s in home), [s["where"] for s in home]
    assert any(s["where"] == "poll_end/accept" for s in home)
    assert any(s["where"] == "last_look" for s in home)


def test_busy_poll_is_a_choice_of_zero_to_poll_rounds():
    """One CHOOSE per aio_poll: 0..POLL_ROUNDS rounds, each reading notified and every BH flag."""
    prog = build(_ir("notified"), "sc", "home", 2, 1, skeleton="polling")
    home = prog.procs[0]
    chooses = [ins for ins in home.code if ins[0] == CHOOSE]
    assert len(chooses) == 1 and len(chooses[0][1]) == _skeleton.POLL_ROUNDS + 1
    polls = [pc for pc, ins in enumerate(home.code)
             if ins[0] == READ and home.labels[pc][0].startswith("poll_handlers")]
    assert len(polls) == _skeleton.POLL_ROUNDS * (1 + 2)  # notified + 2 BH flags per round


def test_busy_poll_rounds_appear_in_traces():
    """bug1's busy loop on polling is found with the home poller busy-polling."""
    r = check_ir(_ir("bug1"), "sc", "home", skeleton="polling")
    assert any(s["op"].startswith("poll_ns") for s in r.trace[:-1]), r.format_trace()


def test_foreign_config_is_2015_only():
    """Foreign pollers do not exist on today's aio_poll: a clear error naming why."""
    from aiocore._checker import supported_configs

    assert supported_configs(_ir("notified"), "polling") == ("home", "gsource")
    assert supported_configs(_ir("notified")) == ("home", "foreign", "gsource")
    with pytest.raises(ModelError, match="2015 skeleton only"):
        check_ir(_ir("notified"), "sc", "foreign", skeleton="polling")


def test_unknown_skeleton_is_refused():
    with pytest.raises(ModelError, match="unknown skeleton 'fast'"):
        check_ir(_ir("notified"), "sc", "home", skeleton="fast")


# --- cross-check with spin: the Promela export's -DPOLLING ---------------------------------

needs_spin = pytest.mark.skipif(shutil.which("spin") is None, reason="spin not installed")


@needs_spin
@pytest.mark.spin
@pytest.mark.parametrize("name", sorted(POLLING_HOME))
def test_spin_polling_failures_match_checker(name, tmp_path):
    """spin on the exported model with -DPOLLING finds the failures the checker finds (SC,
    config home): each never claim is violated iff the checker found that kind of failure."""
    info = _plugins.get(name)
    model = tmp_path / "model.pml"
    model.write_text(generate_promela(info.ir))
    pan = S.compile_model(str(model), str(tmp_path), ("-DPOLLING",),
                          cflags=("-O2", "-DNFAIR=3", "-DVECTORSZ=4096"))
    _, claims = S.verdict_of_exported(pan)
    spin_found = {v for v, c in zip((LW, BL), claims) if c.errors}
    ours = check_ir(info.ir, "sc", "home", want_trace=False, skeleton="polling")
    assert spin_found == set(ours.other), (spin_found, sorted(ours.other))
