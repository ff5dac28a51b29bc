"""Faults: processes of a running `aiocore stress` killed with -9 leave nothing behind."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.stress


def _stress_available():
    r = subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", "--help"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0


def _procs_matching(marker: str) -> dict[int, str]:
    """Live (non-zombie) processes whose command line or environment names marker."""
    out = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                st = f.read()
            if st[st.rfind(b")") + 2 :].split()[0] == b"Z":
                continue
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("latin-1")
            with open(f"/proc/{e}/environ", "rb") as f:
                env = f.read().decode("latin-1")
        except OSError:
            continue
        if marker in cmd or marker in env:
            out[int(e)] = cmd
    return out


def _children_of(pid: int) -> list[int]:
    kids = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat", "rb") as f:
                    st = f.read()
                if int(st[st.rfind(b")") + 2 :].split()[1]) == pid:
                    kids.append(int(e))
            except (OSError, ValueError, IndexError):
                pass
    return kids


@pytest.mark.parametrize(
    "victim",
    ["runner", "child", "any-but-runner"],
)
def test_kill9_of_any_stress_process_leaves_no_process_or_segment(victim, tmp_path):
    """kill -9 of the stress runner or one of its workload processes: no stray process, nothing left in /dev/shm."""
    if not _stress_available():
        pytest.skip("`aiocore stress` is not available yet")
    marker = f"aiocore-kill{uuid.uuid4().hex[:8]}-"
    env = {**os.environ, "AIOCORE_NAME_PREFIX": marker, "PYTHONUNBUFFERED": "1"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "aiocore._cli", "stress", "-s", "unconditional",
         "-w", "ping-pong", "-w", "thread-pool", "-w", "virtio-net-tx", "-d", "4", "--json"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr", "w"), env=env,
        start_new_session=True,
    )
    rnd = random.Random()
    try:
        deadline = time.monotonic() + 60
        kids = []
        while not kids:
            assert runner.poll() is None, f"stress ended early: {(tmp_path / 'stderr').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "stress started no workload process"
            time.sleep(0.05)
            kids = _children_of(runner.pid)
        time.sleep(rnd.uniform(0.1, 1.5))
        family = _procs_matching(marker)
        assert runner.pid in family
        if victim == "runner":
            target = runner.pid
        elif victim == "child":
            while not (kids := _children_of(runner.pid)):   # between two workloads
                assert time.monotonic() < deadline
                time.sleep(0.02)
            target = rnd.choice(kids)
        else:
            target = rnd.choice(sorted(set(family) - {runner.pid}))
        os.kill(target, signal.SIGKILL)
        # The run ends (or goes on without the victim) and then cleans up.
        try:
            runner.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stress still running 90s after pid {target} was killed")
        end = time.monotonic() + 15
        while (left := _procs_matching(marker)) and time.monotonic() < end:
            time.sleep(0.1)
        assert not left, f"stray processes after killing {victim} (pid {target}): {left}"
        end = time.monotonic() + 5
        while (segs := [e for e in os.listdir("/dev/shm") if e.startswith(marker)]) and time.monotonic() < end:
            time.sleep(0.1)
        assert not segs, f"segments left in /dev/shm after killing {victim} (pid {target}): {segs}"
    finally:
        for pid in _procs_matching(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for e in os.listdir("/dev/shm"):
            if e.startswith(marker):
                os.unlink("/dev/shm/" + e)
