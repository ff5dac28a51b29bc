"""`aiocore check`: selection, output, JSON, exit status, expectations, and the tox environments."""
import configparser
import json
import os
import re
import subprocess
import sys

import attrs
import pytest

from aiocore._compiler import _plugins
from aiocore._checker import _matrix
from aiocore.toxenv import split
from aiocore._cli._main import main

BUILTINS = ["late-clear", "unconditional", "notified", "notified-blocking", "explicit-mb",
            "always-notified", "bug1", "bug2", "no-mb", "selfpipe"]


def run_cli(*args):
    """Run `aiocore` in a subprocess; (exit status, stdout, stderr)."""
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from aiocore._cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, timeout=600,
    )
    return p.returncode, p.stdout, p.stderr


def test_json_output_shape():
    """--json prints a list of objects with exactly the documented keys, one per run."""
    code, out, err = run_cli("check", "--skeleton", "2015", "no-mb", "--model", "sc,tso", "--json", "-j", "1")
    assert code == 0, err
    data = json.loads(out)
    assert {(d["model"], d["config"]) for d in data} == {(m, c) for m in ("sc", "tso") for c in ("home", "gsource")}
    for d in data:
        assert set(d) == {"strategy", "model", "config", "verdict", "complete", "states", "seconds",
                          "notifiers", "schedules", "skeleton", "faults", "recovery", "trace",
                          "expected", "matches", "bounds", "engine", "reductions"}
        assert d["complete"] is True
        assert d["strategy"] == "no-mb" and d["states"] > 0 and d["seconds"] >= 0
        if d["model"] == "sc":
            assert d["verdict"] == "pass" and d["trace"] is None
        else:
            assert d["verdict"] == "lost-wakeup"
            assert d["trace"][-1]["op"] == "lost-wakeup" and len(d["trace"]) > 2


def test_text_output_prints_bounds_states_and_rate():
    """The report names the bounds, the states explored and the states per second."""
    code, out, err = run_cli("check", "selfpipe", "--model", "sc", "-j", "1")
    assert code == 0, err
    assert "bounds:" in out and "notifier" in out
    assert "states explored" in out and "states/s" in out
    assert "every verdict matches" in out


def test_config_selection_and_foreign_only_where_allowed():
    """--config restricts the runs; foreign runs only for strategies with foreign pollers."""
    code, out, _ = run_cli("check", "late-clear", "--model", "sc", "--config", "foreign",
                           "--json", "-j", "1")
    data = json.loads(out)
    # foreign pollers ran the 2015 skeleton only: late-clear's polling verdicts are home/gsource ones
    assert [(d["strategy"], d["skeleton"], d["config"]) for d in data] == [("late-clear", "2015", "foreign")]
    assert data[0]["verdict"] == "lost-wakeup"
    assert code == 0  # late-clear declares lost-wakeup for foreign
    # a named strategy that cannot run the config is an error naming what it can run
    code, out, err = run_cli("check", "explicit-mb", "late-clear", "--model", "sc", "--config", "foreign")
    assert code == 2 and "explicit-mb cannot run config foreign" in " ".join(err.split())


def test_unknown_strategy_and_bad_model_exit_2():
    """An unknown strategy or model is a usage error (exit status 2)."""
    code, _, err = run_cli("check", "no-such-strategy")
    assert code == 2 and "no-such-strategy" in err
    code, _, err = run_cli("check", "selfpipe", "--model", "x86")
    assert code == 2 and "x86" in err


def test_handwritten_c_strategy_is_refused():
    """The hand-written C reference has no description: naming it is an error."""
    code, _, err = run_cli("check", "unconditional-c")
    assert code == 2 and "hand-written" in err


def _fake(name, expected, expected_configs=None):
    info = _plugins.get(name)
    return attrs.evolve(info, expected=expected, expected_configs=expected_configs or {})


def test_mismatch_exits_1_and_prints_counterexample(monkeypatch, capsys):
    """A verdict that differs from the declaration fails the command and shows the trace."""
    fake = _fake("no-mb", {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"})
    monkeypatch.setattr(_plugins, "get", lambda n: fake)
    code = main(["check", "no-mb", "--model", "tso", "-j", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH" in out and "store buffers" in out and "lost-wakeup" in out


def test_missed_bug_is_a_mismatch(monkeypatch, capsys):
    """Expecting a failure the checker cannot find is a mismatch too (when every config ran)."""
    fake = _fake("explicit-mb", {"sc": "lost-wakeup"})
    monkeypatch.setattr(_plugins, "get", lambda n: fake)
    assert main(["check", "explicit-mb", "--model", "sc", "-j", "1"]) == 1
    assert "no interleaving" in capsys.readouterr().out


def _rows(name, verdicts, expected, expected_configs=None):
    """Rows as if checked, with the given verdict per (model, config)."""
    from aiocore._checker import CheckResult

    info = _fake(name, expected, expected_configs)
    rows = []
    for (m, c), v in verdicts.items():
        r = _matrix.Row(info, m, c)
        r.result = CheckResult(name, m, c, v, 1, 1, 0.01, None)
        rows.append(r)
    return rows


def test_assess_per_config_expectation_wins():
    """A per-config expectation is compared config by config."""
    rows = _rows("late-clear", {("sc", "home"): "pass", ("sc", "foreign"): "lost-wakeup", ("sc", "gsource"): "pass"},
                 {"sc": "lost-wakeup"},
                 {"home": {"sc": "pass"}, "foreign": {"sc": "lost-wakeup"}, "gsource": {"sc": "pass"}})
    s = _matrix.assess(rows)
    assert [r.status for r in rows] == ["ok", "ok", "ok"] and s[0].status == "ok"
    rows = _rows("late-clear", {("sc", "home"): "lost-wakeup"}, {"sc": "lost-wakeup"}, {"home": {"sc": "pass"}})
    s = _matrix.assess(rows)
    assert rows[0].status == "MISMATCH" and _matrix.failed(rows, s)


def test_assess_worst_only_when_all_configs_ran():
    """Without per-config expectations the worst verdict is compared only when every config ran."""
    partial = _rows("bug2", {("sc", "home"): "pass"}, {"sc": "lost-wakeup"})
    s = _matrix.assess(partial)
    assert s[0].status == "-" and not _matrix.failed(partial, s)
    full = _rows("bug2", {("sc", "home"): "pass", ("sc", "gsource"): "pass"}, {"sc": "lost-wakeup"})
    s = _matrix.assess(full)
    assert s[0].status == "MISMATCH" and _matrix.failed(full, s)
    full = _rows("bug2", {("sc", "home"): "pass", ("sc", "gsource"): "lost-wakeup"}, {"sc": "lost-wakeup"})
    s = _matrix.assess(full)
    assert s[0].status == "ok" and not _matrix.failed(full, s)


def test_assess_failure_where_pass_expected_always_mismatch():
    """A failing verdict where pass is expected is a mismatch even if only one config ran."""
    rows = _rows("explicit-mb", {("arm", "home"): "lost-wakeup"}, {"arm": "pass"})
    s = _matrix.assess(rows)
    assert rows[0].status == "MISMATCH" and _matrix.failed(rows, s)


CONFIGS = ("home", "foreign", "gsource")


def _arm_rows(name, by_profile, expected, expected_configs=None):
    """One arm run per config, with the given verdict per (config, profile)."""
    from aiocore._checker import CheckResult, _union

    info = _fake(name, expected, expected_configs)
    rows = []
    for c, per in by_profile.items():
        parts = [CheckResult(name, p, c, v, 1, 1, 0.01, None) for p, v in per.items()]
        rows.append(_matrix.Row(info, "arm", c, _union(parts)))
    return rows


def test_arm_runs_are_judged_per_profile():
    """An arm run yields its profiles' rows; each is compared with what the strategy declares for it."""
    runs = _arm_rows("notified", {c: {"arm-llsc": "lost-wakeup", "arm-lse": "pass"} for c in CONFIGS},
                     {"arm": "lost-wakeup", "arm-llsc": "lost-wakeup", "arm-lse": "pass"})
    rows = _matrix.with_profiles(runs)
    assert [(r.model, r.config, r.derived) for r in rows] == [
        (m, c, m != "arm") for c in CONFIGS for m in ("arm", "arm-llsc", "arm-lse")]
    s = _matrix.assess(rows)
    assert {x.model: x.status for x in s} == {"arm": "ok", "arm-llsc": "ok", "arm-lse": "ok"}
    assert not _matrix.failed(rows, s)


def test_a_profile_verdict_other_than_declared_is_a_mismatch():
    """arm's own verdict can match while a profile's does not: the strategy fails."""
    runs = _arm_rows("notified", {c: {"arm-llsc": "pass", "arm-lse": "lost-wakeup"} for c in CONFIGS},
                     {"arm": "lost-wakeup", "arm-llsc": "lost-wakeup", "arm-lse": "pass"})
    rows = _matrix.with_profiles(runs)
    s = _matrix.assess(rows)
    assert {x.model: x.status for x in s} == {"arm": "ok", "arm-llsc": "MISMATCH", "arm-lse": "MISMATCH"}
    assert _matrix.failed(rows, s)
    assert [r.status for r in rows if r.model == "arm-lse"] == ["MISMATCH"] * 3  # a failure where pass is declared


def test_an_arm_pass_implies_a_pass_on_each_profile():
    """A strategy that declares only arm: pass is judged to pass on both profiles."""
    runs = _arm_rows("explicit-mb", {"home": {"arm-llsc": "lost-wakeup", "arm-lse": "pass"}}, {"arm": "pass"})
    rows = _matrix.with_profiles(runs)
    _matrix.assess(rows)
    assert {r.model: r.status for r in rows} == {"arm": "MISMATCH", "arm-llsc": "MISMATCH", "arm-lse": "ok"}


def test_a_profile_run_by_itself_is_not_repeated():
    """with_profiles adds no profile row the plan already runs, and adds nothing twice."""
    runs = _arm_rows("notified", {"home": {"arm-llsc": "lost-wakeup", "arm-lse": "pass"}}, {})
    from aiocore._checker import CheckResult
    runs.append(_matrix.Row(runs[0].info, "arm-lse", "home",
                            CheckResult("notified", "arm-lse", "home", "pass", 1, 1, 0.01, None)))
    rows = _matrix.with_profiles(runs)
    assert [(r.model, r.derived) for r in rows] == [("arm", False), ("arm-llsc", True), ("arm-lse", False)]
    assert _matrix.with_profiles(rows) is rows


def test_check_shows_the_profiles_of_an_arm_run():
    """`aiocore check S --model arm` lists arm-llsc and arm-lse verdicts and judges them."""
    code, out, err = run_cli("check", "notified", "--model", "arm", "--config", "home", "--skeleton", "2015",
                             "-j", "1", "--json")
    assert code == 0, err
    got = {(o["model"], o.get("part_of")): (o["verdict"], o["expected"]) for o in json.loads(out)}
    assert got == {("arm", None): ("lost-wakeup", None),  # a failure is compared over every config
                   ("arm-llsc", "arm"): ("lost-wakeup", None),
                   ("arm-lse", "arm"): ("pass", "pass")}


def test_check_fails_on_a_profile_declared_wrong(monkeypatch, capsys):
    """A strategy whose arm verdict is right but whose profile split is not fails `aiocore check`."""
    fake = _fake("notified", {"arm": "lost-wakeup", "arm-llsc": "pass", "arm-lse": "lost-wakeup"})
    monkeypatch.setattr(_plugins, "get", lambda n: fake)
    code = main(["check", "notified", "--model", "arm", "--skeleton", "2015", "-j", "1"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1
    assert "arm > arm-llsc" in out and "MISMATCH" in out
    assert "differ from the expectation" in out


def test_parallel_and_serial_runs_agree():
    """Forked workers give the same verdicts and state counts as a serial run."""
    infos = [_plugins.get("no-mb"), _plugins.get("selfpipe")]
    a = _matrix.plan(infos, ("sc", "tso"), ("home",))
    b = _matrix.plan(infos, ("sc", "tso"), ("home",))
    _matrix.run(a, jobs=1)
    _matrix.run(b, jobs=2)
    assert [(r.result.verdict, r.result.states) for r in a] == [(r.result.verdict, r.result.states) for r in b]


def test_toxenv_split():
    """tox environment names split into strategy, model and skeleton, dashes in names included."""
    assert split("late-clear-arm") == ("late-clear", "arm", "2015")
    assert split("notified-blocking-sc-polling") == ("notified-blocking", "sc", "polling")
    assert split("notified-arm-lse") == ("notified", "arm-lse", "2015")
    assert split("notified-blocking-arm-llsc-polling") == ("notified-blocking", "arm-llsc", "polling")
    with pytest.raises(ValueError):
        split("late-clear-x86")


def _tox_envs():
    ini = os.path.join(os.path.dirname(__file__), "..", "tox.ini")
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(ini)
    line = " ".join(cp["tox"]["env_list"].split())
    envs = set()
    for part in line.split():
        envs |= _expand(part)
    return cp, envs


def _expand(pattern):
    """tox's brace expansion: {a,b}-{c,d}{,-e} -> a-c, a-c-e, ..."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return {pattern}
    out = set()
    for alt in m.group(1).split(","):
        out |= _expand(pattern[:m.start()] + alt + pattern[m.end():])
    return out


def test_tox_has_an_env_per_strategy_and_model():
    """tox.ini lists {strategy}-{sc,tso,arm,arm-llsc,arm-lse}[-polling] for every built-in, in env_list
    and in the `check` label, running the checker for those factors."""
    cp, envs = _tox_envs()
    cells = {f"{n}-{m}{sk}" for n in BUILTINS for m in ("sc", "tso", "arm", "arm-llsc", "arm-lse")
             for sk in ("", "-polling")}
    assert cells <= envs
    check = next(ln for ln in cp["tox"]["labels"].splitlines() if ln.strip().startswith("check"))
    label = set()
    for part in check.split("=", 1)[1].split():
        label |= _expand(part)
    assert cells <= label
    assert all(split(e)[1] in ("sc", "tso", "arm", "arm-llsc", "arm-lse") for e in cells)
    cmds = cp["testenv"]["commands"]
    assert "!native: python -m aiocore.toxenv {env_name}" in cmds
    assert "test" in cp["testenv"].get("extras", "")


def test_toxenv_runs_the_check():
    """The tox helper runs `aiocore check STRATEGY --model MODEL` and returns its status."""
    p = subprocess.run([sys.executable, "-m", "aiocore._checker.toxenv", "selfpipe-sc"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "selfpipe" in p.stdout and "every verdict matches" in p.stdout


def test_truncated_run_fails_the_command():
    """A run stopped by --max-states is unknown, said once: exit status 1, no 'no interleaving fails'."""
    code, out, err = run_cli("check", "--skeleton", "2015", "explicit-mb", "--model", "arm", "--config", "home", "--max-states", "200", "-j", "1")
    assert code == 1
    flat = " ".join(out.split())
    assert "explicit-mb arm home: unknown, stopped after" in flat
    assert "by --max-states; raise it or lower the bounds" in flat
    assert flat.count("stopped after") == 1
    assert "no interleaving" not in flat and "pass" not in flat.split("verdicts per run")[1].split("expected")[0]


def test_truncated_run_is_unknown_in_json():
    """--json of a cut run: verdict unknown, complete false, stopped_by and the states explored."""
    code, out, err = run_cli("check", "--skeleton", "2015", "explicit-mb", "--model", "arm", "--config", "home",
                             "--max-states", "200", "-j", "1", "--json")
    assert code == 1
    (r,) = [o for o in json.loads(out) if "part_of" not in o]  # the arm run; its profiles follow
    assert r["verdict"] == "unknown" and r["complete"] is False
    assert r["stopped_by"] == "max-states" and r["states"] > 200
    assert r["matches"] is False and r["expected"] == "pass"
    assert "unknown, stopped after" in err


def test_complete_run_says_complete_in_json():
    """A search that ran to the end says complete: true and has no stopped_by."""
    code, out, err = run_cli("check", "--skeleton", "2015", "selfpipe", "--model", "sc", "--config", "home", "-j", "1", "--json")
    assert code == 0, err
    (r,) = json.loads(out)
    assert r["verdict"] == "pass" and r["complete"] is True and "stopped_by" not in r


def test_failure_found_before_the_cut_stands():
    """A failure found before --max-states stops the search is proven: it stays the verdict."""
    code, out, err = run_cli("check", "--skeleton", "2015", "no-mb", "--model", "tso", "--config", "home",
                             "--notifiers", "3", "--max-states", "20000", "-j", "1", "--json")
    (r,) = json.loads(out)
    assert code == 0, err  # a proven failure, and the one declared: it matches
    assert r["complete"] is False and r["stopped_by"] == "max-states"
    assert r["verdict"] == "lost-wakeup" and r["trace"]


def test_max_seconds_and_max_memory_give_unknown():
    """Every limit that cuts a run reads as unknown: --max-seconds and --max-memory too."""
    for extra, by in ((["--max-seconds", "0.001"], "max-seconds"), (["--max-memory", "1M"], "max-memory")):
        code, out, err = run_cli("check", "--skeleton", "2015", "explicit-mb", "--model", "arm", "--config", "home",
                                 "--notifiers", "3", "-j", "1", "--json", *extra)
        (r,) = [o for o in json.loads(out) if "part_of" not in o]
        assert code == 1 and r["verdict"] == "unknown" and r["stopped_by"] == by, (extra, r["verdict"])


def test_bad_limits_are_named():
    """A malformed --max-memory, or --recovery without --faults crash, is refused naming it."""
    code, out, err = run_cli("check", "selfpipe", "--max-memory", "lots")
    assert code == 2 and "not a size" in err
    code, out, err = run_cli("check", "selfpipe", "--recovery")
    assert code == 2 and "--recovery needs --faults crash" in err


def test_skeleton_and_faults_options_reach_the_checker():
    """--skeleton polling and --faults crash --recovery run those models and say so in --json."""
    code, out, err = run_cli("check", "always-notified", "--model", "sc", "--config", "home",
                             "--skeleton", "polling", "-j", "1", "--json")
    (r,) = json.loads(out)
    assert code == 0 and r["skeleton"] == "polling" and r["verdict"] == "pass", err
    code, out, err = run_cli("check", "--skeleton", "2015", "notified", "--model", "sc", "--config", "home",
                             "--faults", "crash", "-j", "1", "--json")
    (r,) = json.loads(out)
    assert r["faults"] == "crash" and r["verdict"] == "busy-loop"
    code, out, err = run_cli("check", "--skeleton", "2015", "notified", "--model", "sc", "--config", "home",
                             "--faults", "crash", "--recovery", "-j", "1", "--json")
    (r,) = json.loads(out)
    assert code == 0 and r["recovery"] is True and r["verdict"] == "pass", err


def test_checker_package_is_installed_by_pyproject():
    """pyproject.toml ships aiocore._checker (its package list is explicit)."""
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert "aiocore._checker" in cfg["tool"]["setuptools"]["packages"]


def test_bounds_up_to_4x3_and_no_further():
    """--notifiers up to 4 and --schedules up to 3 are accepted; beyond, the bound is named and nothing runs."""
    code, out, err = run_cli("check", "--skeleton", "2015", "explicit-mb", "--model", "sc", "--config", "home", "--notifiers", "4",
                             "--schedules", "3", "--max-states", "2000", "-j", "1", "--json")
    (r,) = json.loads(out)
    assert code == 1 and (r["notifiers"], r["schedules"], r["verdict"]) == (4, 3, "unknown"), err
    for flag, v, what in (("--notifiers", "5", "notifiers"), ("--schedules", "4", "schedules"),
                          ("--foreign-notifiers", "9", "notifiers"), ("--notifiers", "0", "at least 1")):
        code, out, err = run_cli("check", "explicit-mb", flag, v)
        assert code == 2 and what in err and out == "", (flag, err)
        if v != "0":
            assert f"{v} {what} is beyond the checker's bound: at most" in err


def test_reductions_and_engine_are_reported():
    """Text and --json say which search loop ran and which reductions are in force (symmetry and POR off, with why)."""
    code, out, err = run_cli("check", "--skeleton", "2015", "bug2", "--model", "sc", "--config", "home", "-j", "1", "--json",
                             "--engine", "python")
    (r,) = json.loads(out)
    assert r["engine"] == "python"
    red = r["reductions"]
    assert red["symmetry"]["in_force"] is False and "fixed order" in red["symmetry"]["what"]
    assert red["partial-order"]["in_force"] is False
    assert red["local-steps"] == {"in_force": True, "exact": True, "what": red["local-steps"]["what"]}
    code, out, err = run_cli("check", "--skeleton", "2015", "bug2", "--model", "sc", "--config", "home", "-j", "1")
    flat = " ".join(out.split())
    assert "exact reductions in force: local-steps, leave-folded, dead-values; off: symmetry, partial-order" in flat


def test_speculate_reaches_the_arm_models():
    """--speculate lets ARM runs speculate past branches on pending loads: more states, same verdict."""
    got = {}
    for extra in ((), ("--speculate",)):
        code, out, err = run_cli("check", "notified", "--model", "arm-llsc", "--config", "home",
                                 "--skeleton", "2015", "-j", "1", "--json", *extra)
        assert code == 0, err
        (r,) = json.loads(out)
        got[extra] = (r["verdict"], r["states"])
    assert got[()][0] == got[("--speculate",)][0] == "lost-wakeup"
    assert got[("--speculate",)][1] > got[()][1]
