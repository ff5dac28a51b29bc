# The plugin author guide's example package (examples/aiocore-strategy-example)
# installed the way a user would (pip, into a separate target directory next
# to aiocore), then discovered, compiled on first use, shown as C and
# Promela, and run through the conformance suite in fresh processes.
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "aiocore-strategy-example"


def _local_build_ok() -> bool:
    """Can this venv's setuptools build a wheel without fetching anything?"""
    try:
        import wheel  # noqa: F401

        return True
    except ImportError:
        pass
    try:
        import setuptools

        return tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1)
    except Exception:
        return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example, pip-installed into its own --target directory."""
    base = tmp_path_factory.mktemp("example")
    src = base / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
           "-q", "--target", str(target), str(src)]
    if _local_build_ok():
        cmd.insert(4, "--no-build-isolation")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (target / "aiocore_strategy_example" / "__init__.py").exists()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env["AIOCORE_CACHE"] = str(base / "cache")
    return base, env


def _run(args, env, cwd, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def test_example_is_discovered(installed):
    """`aiocore strategies --json` lists the example with its distribution and status ok."""
    base, env = installed
    p = _run([sys.executable, "-m", "aiocore._cli", "strategies", "--json"], env, base)
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    row = rows["polling-flag"]
    assert row["status"] == "ok"
    assert row["source"] == "aiocore-strategy-example[polling-flag]"
    assert row["expected"] == {"sc": "pass", "tso": "pass", "arm": "pass"}
    assert rows["explicit-mb"]["status"] == "ok"


def test_example_shows_as_c_and_promela(installed):
    """`aiocore show polling-flag --c/--promela` print its private field and claims."""
    base, env = installed
    p = _run([sys.executable, "-m", "aiocore._cli", "show", "polling-flag", "--c"], env, base)
    assert p.returncode == 0, p.stderr
    assert "atomic_set(&ctx->shm->strategy_field[0].v /* polling */, 1);" in p.stdout
    assert "/* Pairs with smp_mb in notify. */" in p.stdout
    p = _run([sys.executable, "-m", "aiocore._cli", "show", "polling-flag", "--promela"], env, base)
    assert p.returncode == 0, p.stderr
    assert "int s_polling;" in p.stdout and "never lost_wakeup" in p.stdout
    if shutil.which("spin"):
        from aiocore._compiler._promela import run_spin

        assert run_spin(p.stdout).verdict == "pass"


def test_example_passes_conformance(installed):
    """The conformance suite, run as the guide says, compiles and passes the example."""
    base, env = installed
    p = _run([sys.executable, "-m", "pytest", "--pyargs", "aiocore.conformance",
              "--aio-strategy", "polling-flag", "-p", "no:cacheprovider", "-q"], env, base)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert " passed" in p.stdout and "failed" not in p.stdout and "skipped" not in p.stdout
    assert any((base / "cache").iterdir()), "compiled on first use into AIOCORE_CACHE"
