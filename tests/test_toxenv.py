"""`python -m aiocore.toxenv ENV`: tox cells named {strategy}-{model}[-skeleton], for the
project's tox.ini and a plugin author's (examples/), run with tox 4 on the example package."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiocore._checker import MODELS
from aiocore.toxenv import command, main, split

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "aiocore-strategy-example"


def test_split_takes_the_skeleton_then_the_longest_model():
    """Dashes in strategy and model names are no problem: the skeleton suffix, then the longest model."""
    models = ("sc", "tso", "arm", "arm-llsc", "arm-lse")
    assert split("notified-blocking-arm-llsc-polling", models) == ("notified-blocking", "arm-llsc", "polling")
    assert split("notified-blocking-arm", models) == ("notified-blocking", "arm", "2015")
    assert split("polling-flag-native-polling", models) == ("polling-flag", "native", "polling")
    assert split("polling-flag-tso-2015", models) == ("polling-flag", "tso", "2015")
    for bad in ("tso", "polling-flag", "polling-flag-x86", "polling-flag-tso-2020", "-tso"):
        with pytest.raises(ValueError, match="not a cell"):
            split(bad, models)


def test_commands_of_the_cells():
    """A model cell runs `aiocore check NAME --model M --skeleton S`; a native cell the conformance suite."""
    assert command("explicit-mb-tso-polling")[-6:] == ["check", "explicit-mb", "--model", "tso",
                                                       "--skeleton", "polling"]
    native = command("selfpipe-native", ["-x"])
    assert native[1:4] == ["-m", "pytest", "--pyargs"]
    assert native[-5:] == ["--aio-strategy", "selfpipe", "--aio-skeleton", "2015", "-x"]


def test_cells_exit_with_the_judgement(capsys):
    """A cell's exit status is the check's: 0 when the declaration holds, 2 for a bad name."""
    assert main(["explicit-mb-tso-polling"]) == 0  # declared lost-wakeup there: it holds
    assert main(["explicit-mb-x86"]) == 2
    assert "not a cell" in capsys.readouterr().err


def _tox_ini(path):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    return cp


def test_project_tox_ini_has_the_skeleton_factor():
    """The project's tox.ini gives every built-in a cell per model on both skeletons, through aiocore.toxenv."""
    cp = _tox_ini(ROOT / "tox.ini")
    envs = " ".join(cp["tox"]["env_list"].split())
    assert "{,-polling}" in envs
    assert "python -m aiocore.toxenv {env_name}" in cp["testenv"]["commands"]


def test_example_tox_ini_names_the_public_entry():
    """The example's tox.ini is the one docs/plugins.md shows: aiocore.toxenv, skeleton factor, one wheel."""
    cp = _tox_ini(EXAMPLE / "tox.ini")
    assert "polling-flag-{sc,tso,arm,arm-llsc,arm-lse,native}{,-polling}" in " ".join(cp["tox"]["env_list"].split())
    assert cp["testenv"]["package"].strip() == "wheel"
    assert "python -m aiocore.toxenv {env_name}" in cp["testenv"]["commands"]
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert "tox -e polling-flag-tso-polling" in docs and "examples/aiocore-strategy-example/tox.ini" in docs


@pytest.fixture(scope="module")
def aiocore_wheel(tmp_path_factory):
    """aiocore built once into a wheel (what a plugin author's cells install)."""
    out = tmp_path_factory.mktemp("wheels")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_example_tox_runs_cells_on_both_skeletons(aiocore_wheel, tmp_path):
    """tox 4 runs the example package's cells on both skeletons, from one aiocore wheel; a cell
    whose strategy does not hold its declaration fails."""
    tox = shutil.which("tox") or shutil.which("tox", path=os.path.dirname(sys.executable))
    if tox is None:
        pytest.skip("tox not installed (pip install tox)")
    v = subprocess.run([tox, "--version"], capture_output=True, text=True).stdout
    if not v.split(".")[0].isdigit() or int(v.split(".")[0]) < 4:
        pytest.skip(f"tox 4 needed, found {v.strip()}")
    pkg = tmp_path / "aiocore-strategy-example"
    shutil.copytree(EXAMPLE, pkg, ignore=shutil.ignore_patterns(".tox", "*.egg-info", "build"))
    env = dict(os.environ, PIP_FIND_LINKS=str(aiocore_wheel))
    env.pop("PYTHONPATH", None)
    env["AIOCORE_CACHE"] = str(tmp_path / "cache")
    p = subprocess.run([tox, "-e", "polling-flag-tso,polling-flag-tso-polling"], cwd=pkg, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "polling-flag-tso-polling: OK" in p.stdout and "polling-flag-tso: OK" in p.stdout
    assert "every verdict matches its expectation" in p.stdout
    # A wrong declaration fails its cell: the strategy now claims a busy loop on polling x arm.
    src = pkg / "src" / "aiocore_strategy_example" / "__init__.py"
    text = src.read_text()
    text = text.replace('expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass"}}',
                        'expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "busy-loop"}}')
    assert "busy-loop" in text
    src.write_text(text)
    p = subprocess.run([tox, "-e", "polling-flag-arm-polling"], cwd=pkg, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert p.returncode != 0
    assert "MISMATCH" in p.stdout and "polling-flag-arm-polling: FAIL" in p.stdout
