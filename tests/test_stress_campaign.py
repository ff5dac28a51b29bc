# The campaign (workloads/_campaign.py): checker-guided budgets per strategy,
# the traffic x path axes, random kills, judged on strategies the project
# does not ship (tests/outsiders) as well as on the built-ins.
#
# The outsider tests run `aiocore stress` and the conformance suite as a
# user would: fresh processes, the outsiders installed as a distribution of
# their own on PYTHONPATH.  Each run has its own segments (the conftest's
# per-worker name prefix is inherited through the environment).
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiocore._compiler import _plugins

W = pytest.importorskip("aiocore_workloads")
from aiocore_workloads import _campaign  # noqa: E402
from aiocore_workloads._campaign import Arm, Prediction  # noqa: E402

TRAFFICS = [i.workload for i in W.registry() if i.status == "ok"]


def _stress(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", *args, "--json"],
                          capture_output=True, text=True, env=env, timeout=timeout)


# --- guidance -------------------------------------------------------------------


def test_predictions_follow_the_checker_per_config():
    """late-clear fails only with a foreign poller; no-mb's failure is tso only; bug2's is sc too."""
    by = {p.config: p for p in _campaign.predict(_plugins.get("late-clear"))}
    assert set(by) == {"home", "gsource", "foreign"}
    assert not by["home"].fails and not by["gsource"].fails
    assert by["foreign"].verdict == "lost-wakeup" and by["foreign"].steps > 0
    nomb = {p.config: p for p in _campaign.predict(_plugins.get("no-mb"))}
    assert nomb["home"].verdict == "lost-wakeup" and not nomb["home"].sc_too
    bug2 = {p.config: p for p in _campaign.predict(_plugins.get("bug2"))}
    assert bug2["home"].fails and bug2["home"].sc_too


def test_budget_goes_where_the_counterexamples_are():
    """A predicted path outweighs the others; sc-level favours notifier chaos, tso-only none."""
    info = _plugins.get("late-clear")
    weights = dict(_campaign.arms(info, TRAFFICS, predictions=_campaign.predict(info)))
    fw = sum(w for a, w in weights.items() if a.path == "foreign")
    home = sum(w for a, w in weights.items() if a.path == "aio_poll")
    assert fw > 4 * home
    sc = [Prediction("home", "lost-wakeup", True, 10)]
    tso = [Prediction("home", "lost-wakeup", False, 10)]
    pp = [W.get("ping-pong")]
    ws = dict(_campaign.arms(info, pp, ("aio_poll",), predictions=sc))
    wt = dict(_campaign.arms(info, pp, ("aio_poll",), predictions=tso))
    arm = lambda m: Arm("ping-pong", "aio_poll", m)  # noqa: E731
    assert ws[arm("notifiers")] > ws[arm("off")] and wt[arm("off")] > wt[arm("notifiers")]


def test_a_strategy_the_checker_passes_gets_an_even_spread():
    """No counterexample on tso: every (traffic, path, chaos) weighs the same."""
    info = _plugins.get("explicit-mb")
    arms = _campaign.arms(info, TRAFFICS, predictions=_campaign.predict(info))
    assert len({w for _, w in arms}) == 1
    assert {a.path for a, _ in arms} == {"aio_poll", "gsource", "mixed"}  # no foreign pollers
    assert {a.chaos for a, _ in arms} == set(_campaign.CHAOS_MODES)


def test_a_native_finding_the_checker_did_not_predict_is_a_headline():
    """A finding on a path whose configs the checker passes is printed as a headline, with its snapshot."""
    info = _plugins.get("late-clear")
    c = _campaign.Campaign("late-clear", "lost-wakeup", "declared", 1.0, _campaign.predict(info))
    r = W.RunResult(strategy="late-clear", workload="ping-pong", seconds=1.0, wakeups=1, dispatched=1,
                    lost_wakeups=1, busy_loops=0, lost_work=0, verdict="lost-wakeup", path="aio_poll",
                    findings=[W.Finding("lost-wakeup", "state", 0.5, 0.0, {"position": "wait_infinite"})])
    assert _campaign._note_findings(c, r, Arm("ping-pong", "aio_poll", "off"), 0.0)
    assert c.headlines and "did not predict" in c.headlines[0]["text"]
    assert c.headlines[0]["snapshot"] == {"position": "wait_infinite"}
    r.path = "foreign"
    c2 = _campaign.Campaign("late-clear", "lost-wakeup", "declared", 1.0, _campaign.predict(info))
    assert _campaign._note_findings(c2, r, Arm("ping-pong", "foreign", "off"), 0.0)
    assert not c2.headlines and "reproduces the checker's foreign lost-wakeup" in c2.reproduces[0]


def test_a_campaign_records_the_load_it_ran_under():
    """A campaign's row carries the load average at its start and end and the CPU count; more
    runnable work than CPUs marks it loaded (a shortfall may be the machine's)."""
    import os

    c = _campaign.Campaign("bug2", "lost-wakeup", "declared", 1.0, [])
    assert not c.loaded() and c.row()["load"] == {"cpus": os.cpu_count()}
    c.load = (0.5, 0.7)
    assert not c.loaded() and c.row()["load"] == {"start": 0.5, "end": 0.7, "cpus": os.cpu_count()}
    c.load = (0.5, os.cpu_count() + 1.0)
    assert c.loaded()


# --- kills ----------------------------------------------------------------------


@pytest.mark.stress
@pytest.mark.parametrize("strategy,path", [("explicit-mb", "aio_poll"), ("notified", "mixed"),
                                           ("selfpipe", "gsource")])
def test_random_kills_with_recovery_leave_no_finding(strategy, path):
    """Victim notifiers SIGKILLed mid-protocol: every death recovered, no finding, accounting exact."""
    r = W.run_pair(strategy, W.get("ping-pong"), 3.0, 2, path=path, kill_rate=40.0)
    assert not r.errors, r.errors
    assert r.kills >= 10, r.kills
    assert r.kills_recovered == r.kills
    assert r.counters["recoveries"] >= r.kills
    assert r.verdict == "pass" and r.lost_work == 0, json.dumps(
        dict(work=r.work, findings=[dict(kind=f.kind, detector=f.detector, snapshot=f.snapshot)
                                    for f in r.findings[:2]]), default=str)
    assert abs(r.work["victim_schedule_gap"]) <= r.kills


def test_kill_rate_out_of_range_is_named():
    """A negative or absurd kill rate is refused by name."""
    with pytest.raises(ValueError, match="kill_rate"):
        W.run_pair("explicit-mb", W.get("ping-pong"), 1.0, kill_rate=-1)
    with pytest.raises(ValueError, match="kill_rate"):
        W.run_pair("explicit-mb", W.get("ping-pong"), 1.0, kill_rate=1e9)


# --- strategies the project never saw --------------------------------------------

#: (outsider, what the checker and the native campaign must find on x86)
OUTSIDERS = [
    ("early-kick", "lost-wakeup"),  # notify before the BH flag: wrong under SC
    ("glib-nofence", "lost-wakeup"),  # GSource prepare without its fence: tso, gsource only
    ("kick-always", "busy-loop"),  # an event nobody clears: a busy loop, not bug1's
    ("xchg-gate", "pass"),  # correct on x86
    ("coalesced-kick", "pass"),  # correct everywhere
]


@pytest.mark.stress
@pytest.mark.xdist_group("stress-catch")
@pytest.mark.parametrize("name,truth", OUTSIDERS, ids=[o[0] for o in OUTSIDERS])
def test_stress_judges_outsider_strategies(outsiders_env, name, truth):
    """`aiocore stress --strategy S` on its defaults catches the wrong ones (reproducing the
    checker's counterexample) and shows nothing on the correct ones."""
    # The budget is generous for the wrong ones (they stop at the first finding; catch times
    # are benchmarks/catch_times.py's business): a loaded machine (pytest -n auto) races less.
    p = _stress(outsiders_env, "-s", name, "-d", "120" if truth != "pass" else "12", timeout=600)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    (c,) = json.loads(p.stdout)
    assert c["checker_says"] == truth
    if truth == "pass":
        assert c["verdict"] == "pass" and p.returncode == 0, c
        assert not c["headlines"] and c["findings"]["lost-wakeup"] == 0 and c["findings"]["busy-loop"] == 0
    else:
        # The author declared pass: a finding is UNEXPECTED, the run fails, and it is the
        # checker's counterexample (never a headline).
        assert truth in c["verdict"].split("+"), c["verdict"]
        assert c["failed"] and p.returncode == 1
        assert c["first_finding_s"] is not None
        assert c["reproduces"] and not c["headlines"], (c["reproduces"], c["headlines"])
        if name == "glib-nofence":
            assert c["where"]["path"] in ("gsource", "mixed")


@pytest.mark.stress
def test_conformance_fails_a_strategy_declaring_pass_with_a_tso_lost_wakeup(outsiders_env, tmp_path):
    """The conformance suite fails glib-nofence (declared pass everywhere), the counterexample in the message."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs", "aiocore.conformance",
         "--aio-strategy", "glib-nofence", "-k", "checker_confirms or native_campaign",
         "--aio-stress-budget", "90"],
        capture_output=True, text=True, env=outsiders_env, cwd=tmp_path, timeout=600)
    assert p.returncode == 1, p.stdout[-3000:]
    out = p.stdout
    assert "test_checker_confirms_the_declared_verdict[glib-nofence-2015-tso]" in out
    assert "the checker finds lost-wakeup, expected pass" in out
    assert "prepare" in out and "store buffer" in out  # the counterexample's steps
    assert "test_native_campaign_matches_the_tso_expectation" in out and "shows lost-wakeup natively" in out
