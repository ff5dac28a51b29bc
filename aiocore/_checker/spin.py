"""Running Debian's spin on a Promela model, for the cross-checks and the
benchmark: ``spin -a [-D...] model.pml; gcc -O2 pan.c; ./pan -a -f [-N claim]``.

Everything happens in a directory the caller owns (tests pass a per-test
temporary directory), so several runs can go on at once."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import attrs


class SpinError(Exception):
    pass


@attrs.frozen
class PanResult:
    errors: int
    acceptance_cycle: bool
    states: int  # states stored
    seconds: float  # pan's own elapsed time (its report), else wall time
    output: str

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)


def have_spin() -> bool:
    return shutil.which("spin") is not None


def _run(cmd, cwd, timeout):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p


def compile_model(model_path: str, workdir: str, defines=(), timeout: float = 300.0,
                  cflags=("-O2",)) -> str:
    """spin -a + gcc in workdir; returns the path of the pan binary."""
    os.makedirs(workdir, exist_ok=True)
    dst = os.path.join(workdir, os.path.basename(model_path))
    if os.path.abspath(dst) != os.path.abspath(model_path):
        shutil.copyfile(model_path, dst)
    p = _run(["spin", "-a", *defines, os.path.basename(dst)], workdir, timeout)
    if p.returncode != 0 or not os.path.exists(os.path.join(workdir, "pan.c")):
        raise SpinError(f"spin -a {' '.join(defines)} failed:\n{(p.stdout + p.stderr)[-2000:]}")
    cc = shutil.which("gcc") or shutil.which("cc") or "gcc"
    p = _run([cc, *cflags, "-o", "pan", "pan.c"], workdir, timeout)
    if p.returncode != 0:
        raise SpinError(f"pan.c does not compile:\n{(p.stdout + p.stderr)[-2000:]}")
    return os.path.join(workdir, "pan")


def run_pan(pan: str, args=("-a", "-f"), timeout: float = 300.0) -> PanResult:
    t0 = time.monotonic()
    p = _run([pan, *args], os.path.dirname(pan), timeout)
    wall = time.monotonic() - t0
    out = p.stdout + p.stderr
    m = re.search(r"errors:\s*(\d+)", out)
    if m is None:
        raise SpinError(f"cannot read pan's output:\n{out[-2000:]}")
    st = re.search(r"(\d+) states, stored", out)
    el = re.search(r"pan: elapsed time ([0-9.e+-]+) seconds", out)
    secs = float(el.group(1)) if el else wall
    return PanResult(int(m.group(1)), "acceptance cycle" in out, int(st.group(1)) if st else 0,
                     secs if secs > 0 else wall, out)


def verdict_of_exported(pan: str, timeout: float = 300.0) -> tuple[str, list[PanResult]]:
    """The verdict of a model exported by `aiocore show NAME --promela`:
    its never claims lost_wakeup and busy_loop, checked with weak fairness."""
    results = []
    verdict = "pass"
    for claim, v in (("lost_wakeup", "lost-wakeup"), ("busy_loop", "busy-loop")):
        r = run_pan(pan, ("-a", "-f", "-m1000000", "-N", claim), timeout)
        results.append(r)
        if r.errors and verdict == "pass":
            verdict = v
    return verdict, results
