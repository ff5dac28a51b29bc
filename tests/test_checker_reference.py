"""The checker reproduces DESIGN.md's reference verdicts for the built-in strategies."""
import json

import pytest

from aiocore._compiler import _plugins
from aiocore._checker import DEFAULT_BOUNDS, check_ir, supported_configs, worst

MODELS = ("sc", "tso", "arm")
P, LW, BL = "pass", "lost-wakeup", "busy-loop"

# DESIGN.md, "Reference verdicts" (worst over the configs a strategy supports).
REFERENCE = {
    "late-clear": {"sc": LW, "tso": LW, "arm": LW},
    "unconditional": {"sc": P, "tso": P, "arm": LW},
    "notified": {"sc": P, "tso": P, "arm": LW},
    "notified-blocking": {"sc": P, "tso": P, "arm": LW},
    "explicit-mb": {"sc": P, "tso": P, "arm": P},
    "always-notified": {"sc": P, "tso": P, "arm": P},
    "bug1": {"sc": BL, "tso": BL, "arm": BL},
    "bug2": {"sc": LW, "tso": LW, "arm": LW},
    "no-mb": {"sc": P, "tso": LW, "arm": LW},
    "selfpipe": {"sc": P, "tso": P, "arm": P},
}

CASES = [(n, m) for n in REFERENCE for m in MODELS]


def _info(name):
    info = _plugins.get(name)
    assert info.ir is not None, name
    return info


@pytest.mark.parametrize("name,model", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_reference_verdict(name, model):
    """The worst verdict over the strategy's configs is the one DESIGN.md records."""
    info = _info(name)
    results = [check_ir(info.ir, model, c, want_trace=False) for c in supported_configs(info.ir)]
    assert not any(r.truncated for r in results)
    got = worst(r.verdict for r in results)
    assert got == REFERENCE[name][model], {r.config: r.verdict for r in results}


@pytest.mark.parametrize("model", ["sc", "tso"])
def test_late_clear_fails_only_with_a_foreign_poller(model):
    """late-clear's SC/TSO lost wakeup needs the foreign poller ("lost wakeup (foreign)")."""
    info = _info("late-clear")
    assert check_ir(info.ir, model, "home", want_trace=False).verdict == P
    assert check_ir(info.ir, model, "gsource", want_trace=False).verdict == P
    assert check_ir(info.ir, model, "foreign", want_trace=False).verdict == LW


def test_late_clear_arm_fails_at_home():
    """On ARM late-clear loses a wake-up even without a foreign poller (its RMW on notify_me)."""
    info = _info("late-clear")
    assert check_ir(info.ir, "arm", "home", want_trace=False).verdict == LW


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_declared_expectations_are_design_table(name):
    """Each built-in declares DESIGN.md's verdicts, so `aiocore check` compares with the table."""
    assert {m: v for m, v in _info(name).expected.items() if m in MODELS} == REFERENCE[name]


#: Where the ARM profiles part (issue 21): an LL/SC RMW's STLXR may pass the plain loads after it,
#: an LSE atomic may not; elsewhere both profiles have arm's verdict.
PROFILE_SPLIT = {"unconditional", "notified", "notified-blocking"}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_profile_verdicts_are_declared_and_found(name):
    """Each built-in declares arm-llsc and arm-lse, and the arm run's profiles find exactly those."""
    info = _info(name)
    want = ({"arm-llsc": LW, "arm-lse": P} if name in PROFILE_SPLIT
            else {p: REFERENCE[name]["arm"] for p in ("arm-llsc", "arm-lse")})
    assert {p: info.expected[p] for p in want} == want
    runs = [check_ir(info.ir, "arm", c, want_trace=False) for c in supported_configs(info.ir)]
    assert {p: worst(r.by_profile[p] for r in runs) for p in want} == want


def test_no_mb_tso_counterexample_shows_store_buffer():
    """no-mb's TSO counterexample is the store-buffering pattern: notify_me=2 waits in a buffer."""
    r = check_ir(_info("no-mb").ir, "tso", "home")
    assert r.verdict == LW
    steps = r.trace[:-1]
    assert any("notify_me=2" in " ".join(s.get("buffers", {}).get("home", [])) for s in steps)
    read0 = [s for s in steps if s["process"].startswith("notifier") and "notify_me" in s["op"]
             and s["result"] == "read 0"]
    assert read0, r.format_trace()
    end = r.trace[-1]
    assert end["op"] == LW and end["state"]["notifier"] == "not readable"
    assert "asleep" in end["state"]["processes"]["home"]


def test_unconditional_arm_counterexample_keeps_rmw_store_buffered():
    """On ARM (LL/SC only), the poller's atomic_add store is not yet visible when it reads the BH flags."""
    r = check_ir(_info("unconditional").ir, "arm", "home")
    assert r.verdict == LW and r.profiles == ("arm-llsc",) and r.by_profile["arm-lse"] == "pass"
    first = r.trace[0]
    assert first["process"] == "home" and "atomic_add(notify_me, 2)" in first["op"]
    assert "STLXR's store is not visible yet" in first["result"]
    reads = [s for s in r.trace if s["process"] == "home" and "bh0.scheduled" in s["op"]]
    assert reads and reads[0]["result"] == "read 0"


def test_late_clear_foreign_counterexample_is_the_eaten_wakeup():
    """late-clear's counterexample: the foreign poller clears the notifier meant for the home poller, then leaves."""
    r = check_ir(_info("late-clear").ir, "sc", "foreign")
    text = r.format_trace()
    assert r.verdict == LW
    assert any(s["process"] == "foreign" and "event_notifier_test_and_clear" in s["op"] for s in r.trace[:-1]), text
    assert any(s["process"] == "foreign" and s["result"] == "leaves for good" for s in r.trace[:-1]), text
    assert not any(s["process"] == "home" and s["where"] == "wait" for s in r.trace[:-1]), text


def test_bug1_counterexample_is_a_loop():
    """bug1's busy loop is printed as a path into a loop the home poller repeats without sleeping."""
    r = check_ir(_info("bug1").ir, "sc", "home")
    assert r.verdict == BL
    loop = [s for s in r.trace if s.get("loop")]
    assert loop and all(s["process"] == "home" for s in loop)
    waits = [s for s in loop if s["where"] == "wait"]
    assert waits and all("readable" in s["result"] and "not readable" not in s["result"] for s in waits)
    assert r.trace[-1]["state"]["notifier"] == "readable"
    assert "loop" in r.format_trace()


def test_traces_are_json_and_shortest_first():
    """A trace is JSON-serialisable, numbered from 1, and ends with the bad state."""
    r = check_ir(_info("bug2").ir, "sc", "home")
    json.dumps(r.to_json())
    assert [s["step"] for s in r.trace] == list(range(1, len(r.trace) + 1))
    assert r.trace[-1]["process"] is None and r.trace[-1]["op"] == LW


def test_bfs_gives_shortest_counterexample():
    """With one notifier, no-mb's TSO counterexample has the minimal length (a BFS property)."""
    from aiocore._checker import Bounds

    r = check_ir(_info("no-mb").ir, "tso", "home", Bounds(notifiers=1, schedules=1))
    # poll_begin read; compute_timeout read bh; xchg; read notify_me; (home's store visible) -- 5 steps
    assert len(r.trace) - 1 <= 5, r.format_trace()


def test_default_bounds_are_printed_in_results():
    """Every result carries the bounds it was explored with."""
    r = check_ir(_info("selfpipe").ir, "sc", "home", want_trace=False)
    assert (r.notifiers, r.schedules) == DEFAULT_BOUNDS.for_config("home")
    assert "notifier" in DEFAULT_BOUNDS.describe()
