"""`aiocore stress` on every declared skeleton: guidance by the polling counterexamples (the
busy-poll bound, store-buffer pressure), a declaration the checker contradicts fails the run,
undeclared skeletons and paths are errors, and a polling-only tso bug is caught natively."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import aiocore
from aiocore._compiler._strategy import StrategyInfo, describe

W = pytest.importorskip("aiocore_workloads")
from aiocore_workloads import _campaign  # noqa: E402
from aiocore_workloads._chaos import Chaos, build  # noqa: E402

TRAFFICS = [i.workload for i in W.registry() if i.status == "ok"]


def _info(cls):
    ir = describe(cls)
    return StrategyInfo(name=cls.name, origin="", source="tests", status="ok", expected=dict(cls.expected),
                        cls=cls, ir=ir, skeletons=cls.skeletons,
                        expected_skeletons=dict(cls.expected_skeletons))


def _stress(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", *args, "--json"],
                          capture_output=True, text=True, env=env, timeout=timeout)


# --- guidance ------------------------------------------------------------------------


def test_polling_predictions_carry_the_counterexample():
    """On polling, after-rmw-notify's tso counterexample is home only, tso only, ends at the last
    look, and its owner does not busy-poll; on 2015 the checker predicts nothing."""
    from outsiders.qemu_today import AfterRmwNotify

    info = _info(AfterRmwNotify)
    by = {p.config: p for p in _campaign.predict(info, "polling")}
    assert set(by) == {"home", "gsource"}
    home = by["home"]
    assert home.verdict == "lost-wakeup" and not home.sc_too and not by["gsource"].fails
    assert "last_look" in home.trace and "does not busy-poll" in home.trace and not home.busy_polls
    assert not any(p.fails for p in _campaign.predict(info, "2015"))


def test_polling_arms_follow_the_counterexample():
    """The polling arms add the busy-poll bound; where the counterexample's owner does not busy-poll,
    poll_max_ns 0 weighs more, and for a tso-only bug no pause and pressure outweigh pauses."""
    from outsiders.qemu_today import AfterRmwNotify

    info = _info(AfterRmwNotify)
    preds = _campaign.predict(info, "polling")
    arms = dict(_campaign.arms(info, TRAFFICS, predictions=preds, skeleton="polling"))
    assert {a.poll_max_ns for a in arms} == {None, 0}
    assert {a.chaos for a in arms} == set(_campaign.CHAOS_MODES)
    assert "foreign" not in {a.path for a in arms}

    def weight(**kw):
        return sum(w for a, w in arms.items() if all(getattr(a, k) == v for k, v in kw.items()))

    assert weight(poll_max_ns=0) > 2 * weight(poll_max_ns=None)
    assert weight(chaos="pressure") > 2 * weight(chaos="notifiers")
    assert weight(chaos="off") > 2 * weight(chaos="owner")
    assert weight(path="aio_poll") > 4 * weight(path="gsource")
    # the 2015 arms have no busy-poll axis
    assert {a.poll_max_ns for a, _ in _campaign.arms(info, TRAFFICS, skeleton="2015")} == {None}


def test_replay_carries_the_busy_poll_bound():
    """A polling slice's --replay names its poll_max_ns; a bad one is named."""
    seed, arm = _campaign.parse_replay("17:ping-pong:aio_poll:pressure:0", {"ping-pong"})
    assert seed == 17 and arm == _campaign.Arm("ping-pong", "aio_poll", "pressure", 0)
    assert _campaign.parse_replay("17:ping-pong:aio_poll:off", {"ping-pong"})[1].poll_max_ns is None
    with pytest.raises(ValueError, match="poll_max_ns"):
        _campaign.parse_replay("17:ping-pong:aio_poll:off:lots", {"ping-pong"})


# --- store-buffer pressure -------------------------------------------------------------


def test_pressure_mode_round_trips_and_is_for_every_process():
    """Pressure is a chaos mode of every process (C mode 2), and survives the children's environment."""
    c = Chaos("pressure", 9)
    assert Chaos.from_env(c.env()) == c
    assert {c.c_mode(r) for r in ("owner", "pingpong", "guest")} == {2}
    assert Chaos("notifiers", 1).c_mode("owner") == 0 and Chaos("owner", 1).c_mode("owner") == 1


def test_pressure_precedes_stores_only_with_the_driver_area():
    """In pressure mode the chaos build writes the pressure lines before the strategy's stores
    (not its loads or RMWs), and only where a stress run's driver area gives it lines."""
    _info_, _ffi, lib = build("always-notified")
    from aiocore_workloads._chaos import use_build

    with use_build(Chaos("pressure", 3)):
        with aiocore.AioContext.create("always-notified") as ctx:
            assert ctx._lib is lib
            assert lib.aio_chaos_config(2, 3, 100, 0) == 1
            bh = ctx.bh_new(lambda: None)
            before = lib.aio_chaos_count()
            ctx.bh_schedule(bh)  # notify stores notified, accept clears it: no driver area, no lines
            ctx.aio_poll(blocking=False)
            assert lib.aio_chaos_count() == before
            fd = os.memfd_create("aiocore-test", os.MFD_CLOEXEC)
            try:
                assert lib.aio_drv_area_map(ctx._c, fd, 1) == 0
                ctx.bh_schedule(bh)
                ctx.aio_poll(blocking=False)
                # three stores, three bursts at pct 100: the list insertion's
                # qatomic_set(bh->next) (the BH was not pending), notify's
                # qatomic_set(notified) and accept's (the RMWs get none)
                assert lib.aio_chaos_count() - before == 3
                lib.aio_drv_area_unmap(ctx._c)
            finally:
                os.close(fd)
            lib.aio_chaos_config(0, 3, 0, 0)


@pytest.mark.stress
@pytest.mark.parametrize("strategy,skeleton", [("always-notified", "polling"), ("explicit-mb", "2015")])
def test_pressure_shows_nothing_on_a_correct_strategy(strategy, skeleton):
    """Store-buffer pressure only delays stores: a strategy the checker passes on tso shows no finding."""
    wl = W.get("ping-pong")
    for pm in ((0, None) if skeleton == "polling" else (None,)):
        r = W.run_pair(strategy, wl, 2.0, 2, seed=11, chaos=Chaos("pressure", 11), skeleton=skeleton,
                       poll_max_ns=pm)
        assert not r.errors and r.verdict == "pass" and r.wakeups > 1000, (pm, r.row())


# --- the command line --------------------------------------------------------------------


def test_stress_refuses_what_a_strategy_does_not_declare(outsiders_env):
    """A skeleton a strategy does not run on, or a path it cannot run, is exit 2 naming what it can."""
    p = _stress(outsiders_env, "-s", "early-kick", "--skeleton", "polling", "-d", "1", timeout=120)
    assert p.returncode == 2 and "declares 2015" in " ".join(p.stderr.split())
    p = _stress(outsiders_env, "-s", "explicit-mb", "--path", "foreign", "-d", "1", timeout=120)
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "cannot run the foreign path" in err and "aio_poll, gsource, mixed" in err


@pytest.mark.stress
def test_stress_fails_a_declaration_the_checker_contradicts(outsiders_env):
    """accept-wmb declares pass on polling; the checker finds a tso lost wake-up there: the run
    fails (exit 1) and says the declaration is wrong, whatever the native slices showed."""
    p = _stress(outsiders_env, "-s", "accept-wmb", "--skeleton", "polling", "-d", "3", "--slice", "1")
    assert p.returncode == 1, p.stderr[-2000:]
    (c,) = json.loads(p.stdout)
    assert c["skeleton"] == "polling" and c["expected"] == "pass"
    assert c["declaration_contradicted"] and c["checker_says"] == "lost-wakeup" and c["failed"]
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", "-s", "accept-wmb", "--skeleton",
                        "polling", "-d", "1", "--slice", "0.5"], capture_output=True, text=True,
                       env=dict(outsiders_env, COLUMNS="200"), timeout=300)
    assert p.returncode == 1
    assert "the declaration is wrong" in " ".join(p.stdout.split())


@pytest.mark.stress
@pytest.mark.xdist_group("stress-catch")
def test_stress_catches_a_polling_only_tso_bug_on_its_defaults(outsiders_env):
    """after-rmw-notify breaks only on the polling skeleton under tso: `aiocore stress -s NAME`,
    on its defaults, stresses polling first (the checker's counterexample is there) and catches it,
    reproducing the counterexample; 2015 shows nothing."""
    p = _stress(outsiders_env, "-s", "after-rmw-notify", "-d", "30", timeout=600)
    assert p.returncode == 1, p.stderr[-3000:]
    rows = json.loads(p.stdout)
    assert [r["skeleton"] for r in rows] == ["polling", "2015"]
    pol, old = rows
    assert "lost-wakeup" in pol["verdict"].split("+") and pol["first_finding_s"] is not None, pol["verdict"]
    assert pol["reproduces"] and not pol["headlines"]
    assert old["verdict"] == "pass" and not old["declaration_contradicted"]
