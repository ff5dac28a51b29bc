"""Cross-checks with spin: the seeds' Promela model, and every strategy exported with `aiocore show --promela`."""
import os
import shutil
import subprocess
import sys

import pytest

from aiocore._compiler import _plugins
from aiocore._checker import check_ir, supported_configs
from aiocore._checker import spin as S

pytestmark = pytest.mark.spin

needs_spin = pytest.mark.skipif(shutil.which("spin") is None, reason="spin not installed")

SEED = os.path.join(os.path.dirname(__file__), "checker_data", "aio_notify_accept.promela")

# DESIGN.md: spin -a [-D...] aio_notify_accept.promela; gcc -O2 pan.c; ./pan -a -f
SEED_VERDICTS = [
    ((), False),
    (("-DBUG1",), True),
    (("-DBUG2",), True),
    (("-DCHECK_REQ",), False),
    (("-DCHECK_REQ", "-DBUG1"), False),
    (("-DCHECK_REQ", "-DBUG2"), True),
]


@needs_spin
@pytest.mark.parametrize("defines,cycle", SEED_VERDICTS, ids=[" ".join(d) or "fixed" for d, _ in SEED_VERDICTS])
def test_seed_model_verdicts(defines, cycle, tmp_path):
    """Spin on the seeds' aio_notify_accept.promela gives the verdict DESIGN.md records for each -D variant."""
    pan = S.compile_model(SEED, str(tmp_path), defines)
    r = S.run_pan(pan, ("-a", "-f"))
    assert r.acceptance_cycle is cycle, r.output
    assert (r.errors > 0) is cycle, r.output


@needs_spin
def test_seed_fixed_model_state_count(tmp_path):
    """The fixed seed model has the 12,821 states DESIGN.md recorded (same spin, same options)."""
    pan = S.compile_model(SEED, str(tmp_path))
    r = S.run_pan(pan, ("-a", "-f"))
    assert r.errors == 0
    assert r.states == 12821


def test_seed_copy_is_the_seed():
    """The test copy of the seeds' model is byte-for-byte the one in ../shared/seeds (when present)."""
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "seeds", "aio_notify_accept.promela")
    if not os.path.exists(shared):
        pytest.skip("../shared/seeds is not present here")
    with open(SEED, "rb") as a, open(shared, "rb") as b:
        assert a.read() == b.read()


def _builtin_cases():
    out = []
    for info in _plugins.registry():
        if info.ir is not None and info.source.startswith("aiocore["):
            for c in supported_configs(info.ir):
                out.append((info.name, c))
    return out


def _export(name) -> str:
    """`aiocore show NAME --promela`, through the command line."""
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from aiocore._cli import main; sys.exit(main())",
         "show", name, "--promela"],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


_DEFINES = {"home": (), "foreign": ("-DFOREIGN",), "gsource": ("-DGSOURCE",)}


@needs_spin
@pytest.mark.parametrize("name,config", _builtin_cases(), ids=[f"{n}-{c}" for n, c in _builtin_cases()])
def test_spin_sc_verdict_matches_checker(name, config, tmp_path):
    """Spin's verdict on the exported Promela model equals the checker's SC verdict, config by config."""
    model = tmp_path / "model.pml"
    model.write_text(_export(name))
    pan = S.compile_model(str(model), str(tmp_path), _DEFINES[config], cflags=("-O2", "-DNFAIR=3", "-DVECTORSZ=4096"))
    spin_verdict, _ = S.verdict_of_exported(pan)
    ours = check_ir(_plugins.get(name).ir, "sc", config, want_trace=False).verdict
    assert spin_verdict == ours


def test_skip_reason_is_exact():
    """Tests needing spin skip with exactly "spin not installed" and only when spin is missing."""
    mark = needs_spin.mark
    assert mark.kwargs["reason"] == "spin not installed"
    assert mark.args[0] is (shutil.which("spin") is None)
