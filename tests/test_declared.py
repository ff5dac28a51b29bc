"""Every declared verdict is judged: `aiocore check` and `aiocore strategies` per skeleton, the
conformance suite on every skeleton x model x config, and clear errors for what a strategy
does not declare -- on strategies the project does not ship (tests/outsiders)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiocore._checker import DEFAULT_MODELS
from aiocore._compiler import _plugins
from aiocore._checker import _matrix


def _aiocore(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "aiocore._cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


# --- aiocore check ------------------------------------------------------------------


def test_judged_skeletons_are_the_declared_ones():
    """A strategy is judged on the skeletons it declares and those it declares verdicts for."""
    assert _matrix.judged_skeletons(_plugins.get("always-notified")) == ("2015", "polling")
    # explicit-mb runs on 2015 only, but declares what the checker finds on polling
    assert _matrix.judged_skeletons(_plugins.get("explicit-mb")) == ("2015", "polling")


def test_check_runs_every_declared_skeleton_by_default(outsiders_env):
    """Without --skeleton, `aiocore check NAME` runs each declared skeleton; --json carries it."""
    p = _aiocore(outsiders_env, "check", "qemu-today", "--model", "sc,tso", "--json", "-j", "1")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert {(r["skeleton"], r["model"], r["config"]) for r in rows} == {
        (sk, m, c) for sk in ("2015", "polling") for m in ("sc", "tso") for c in ("home", "gsource")}
    assert all(r["matches"] is True for r in rows)
    p = _aiocore(outsiders_env, "check", "qemu-today", "--model", "tso", "--skeleton", "polling",
                 "--json", "-j", "1")
    assert p.returncode == 0, p.stderr
    assert {r["skeleton"] for r in json.loads(p.stdout)} == {"polling"}


def test_check_fails_a_wrong_polling_declaration_with_its_counterexample(outsiders_env):
    """after-rmw-notify declares pass on polling: exit 1, the report names the skeleton and
    prints the tso counterexample, which ends at the last look."""
    p = _aiocore(outsiders_env, "check", "after-rmw-notify", "--model", "tso", "-j", "1")
    assert p.returncode == 1, p.stdout[-3000:]
    out = " ".join(p.stdout.split())
    assert "polling" in out and "MISMATCH" in out
    assert "last_look" in out and "store buffer" in out
    p = _aiocore(outsiders_env, "check", "after-rmw-notify", "--json", "-j", "1")
    rows = json.loads(p.stdout)
    bad = {(r["skeleton"], r["model"], r["config"]) for r in rows if r["matches"] is False}
    assert bad == {("polling", "tso", "home")}, bad
    assert p.returncode == 1


def test_check_refuses_what_a_strategy_does_not_declare(outsiders_env):
    """A skeleton or a config a named strategy does not declare is an error (exit 2) that says
    what it supports -- never an empty table."""
    p = _aiocore(outsiders_env, "check", "early-kick", "--skeleton", "polling")
    assert p.returncode == 2
    assert "early-kick" in p.stderr and "2015" in p.stderr and "expected_skeletons" in p.stderr
    p = _aiocore(outsiders_env, "check", "explicit-mb", "--config", "foreign")
    assert p.returncode == 2
    assert "foreign" in p.stderr and "home" in p.stderr and "gsource" in p.stderr


# --- aiocore strategies ---------------------------------------------------------------


def test_strategies_show_skeletons_and_verdicts_per_skeleton(outsiders_env):
    """`aiocore strategies` lists each strategy's skeletons and its declared verdict per skeleton."""
    p = _aiocore(outsiders_env, "strategies", "--json")
    assert p.returncode == 0, p.stderr
    by = {d["name"]: d for d in json.loads(p.stdout)}
    d = by["after-rmw-notify"]
    assert d["skeletons"] == ["2015", "polling"]
    # arm: pass declared, so each ARM profile passes too
    assert d["verdicts"]["polling"] == {m: "pass" for m in ("sc", "tso", "arm", "arm-llsc", "arm-lse")}
    assert by["explicit-mb"]["skeletons"] == ["2015"]
    assert by["explicit-mb"]["verdicts"]["polling"]["tso"] == "lost-wakeup"
    p = _aiocore(dict(outsiders_env, COLUMNS="160"), "strategies")
    assert p.returncode == 0
    lines = [ln for ln in p.stdout.splitlines() if "after-rmw-notify" in ln or "polling" in ln]
    assert any("polling" in ln for ln in lines), p.stdout


# --- the conformance suite ----------------------------------------------------------------


def _conformance(env, cwd, *args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--pyargs",
         "aiocore.conformance", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=timeout)


def test_conformance_fails_a_wrong_polling_declaration(outsiders_env, tmp_path):
    """after-rmw-notify (declared pass everywhere) fails the conformance checker test on
    polling x tso only, with the counterexample in the message; every other skeleton x model
    passes."""
    p = _conformance(outsiders_env, tmp_path, "--aio-strategy", "after-rmw-notify", "-k", "checker")
    assert p.returncode == 1, p.stdout[-3000:]
    out = p.stdout
    failed = {ln.split()[1].split("::")[-1] for ln in out.splitlines() if ln.startswith("FAILED ")}
    assert failed == {"test_checker_confirms_the_declared_verdict[after-rmw-notify-polling-tso]"}, failed
    assert "the checker finds lost-wakeup, expected pass" in out
    assert "last_look" in out and "store buffer" in out
    passed = [ln for ln in out.splitlines() if ln.startswith("PASSED ")]
    assert len(passed) == 2 * len(DEFAULT_MODELS) - 1, passed


def test_conformance_passes_a_right_declaration_on_both_skeletons(outsiders_env, tmp_path):
    """qemu-today, upstream's protocol in QEMU's spelling, passes the checker on both skeletons."""
    p = _conformance(outsiders_env, tmp_path, "--aio-strategy", "qemu-today", "-k", "checker")
    assert p.returncode == 0, p.stdout[-3000:]
    assert "qemu-today-polling-tso" in p.stdout and "qemu-today-2015-arm" in p.stdout


def test_conformance_refuses_an_undeclared_skeleton(outsiders_env, tmp_path):
    """--aio-skeleton names a skeleton the strategy does not declare: exit 2, saying which it does."""
    p = _conformance(outsiders_env, tmp_path, "--aio-strategy", "early-kick", "--aio-skeleton",
                     "polling", timeout=300)
    assert p.returncode == 2, (p.stdout + p.stderr)[-2000:]
    text = p.stdout + p.stderr
    assert "early-kick" in text and "2015" in text
