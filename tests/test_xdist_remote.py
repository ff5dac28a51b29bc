# The multi-machine stress campaign of docs/stress.md, exercised on one
# machine (issue 13, item 5): pytest-xdist sends tests/test_stress.py's
# pairs to workers that are other Python interpreters, started with
# `--tx popen//python=...` and `--tx ssh=...//python=...` (ssh to an sshd
# this test starts on the loopback, when the machine has one).
#
# What a remote campaign relies on, and what is checked here:
# - no rsync of the source tree (deprecated in xdist): every worker imports
#   the aiocore *installed* in its venv, and reads the tests from a path it
#   shares with the controller.  The workers' strategy cache is an empty
#   directory, and must still be empty afterwards: a worker that imported the
#   source tree instead would have built its modules there;
# - the tests are named by an argument file (`@FILE`, one test path or id
#   a line).  For ssh (and any `chdir=`) workers, xdist rewrites every
#   command-line argument that is an existing path relative to its rsync
#   roots and fails on the others ("not relative to an rsync root"); an
#   `@FILE` argument is not a path, so it reaches each worker as it is and
#   the worker reads the file from the shared filesystem;
# - tests are collected and distributed: "N workers [M items]", every
#   worker ran at least one test, all passed.
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRESS = ROOT / "tests" / "test_stress.py"
#: Two quick pairs of test_stress.py, one per worker.
PAIRS = ["explicit-mb-ping-pong-mixed", "unconditional-c-ping-pong-mixed"]  # strategy-traffic-path

pytestmark = pytest.mark.stress


def _args_file(tmp_path: Path) -> Path:
    f = tmp_path / "stress.args"
    f.write_text("".join(f"{STRESS}::test_pair[{p}]\n" for p in PAIRS))
    return f


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AIOCORE_STRESS_STRATEGY", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS",
                        "PYTEST_XDIST_WORKER_COUNT", "PYTHONPATH")}
    # The controller and popen workers must not import a source tree in
    # their cwd; ssh workers start elsewhere (their chdir) anyway.
    env.update(PYTHONSAFEPATH="1", AIOCORE_CACHE=str(cache), PYTHONUNBUFFERED="1")
    return env


def _campaign(tmp_path: Path, txs: list[str], cache: Path) -> subprocess.CompletedProcess:
    ctl = tmp_path / "controller"
    ctl.mkdir()
    cmd = [sys.executable, "-m", "pytest", "-p", "xdist", "-v", "-p", "no:cacheprovider",
           f"--rootdir={ROOT}", "--dist=load", *(f"--tx={t}" for t in txs),
           f"@{_args_file(tmp_path)}", "--stress-seconds=0.5"]
    return subprocess.run(cmd, cwd=ctl, env=_env(cache), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def _assert_distributed(p: subprocess.CompletedProcess, workers: int, cache: Path) -> None:
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"the distributed run failed ({p.returncode}):\n{out[-6000:]}"
    m = re.search(r"(\d+) workers \[(\d+) items?\]", out)
    assert m, f"no 'N workers [M items]' line: nothing was distributed\n{out[-4000:]}"
    assert (int(m.group(1)), int(m.group(2))) == (workers, len(PAIRS)), m.group(0)
    ran = {}
    for gw, test in re.findall(r"^\[(gw\d+)\] .*PASSED .*test_pair\[([\w-]+)\]", out, re.M):
        ran.setdefault(gw, []).append(test)
    assert sorted(t for ts in ran.values() for t in ts) == sorted(PAIRS), f"ran {ran}\n{out[-4000:]}"
    assert len(ran) == workers, f"not every worker ran a test: {ran}"
    assert re.search(rf"\b{len(PAIRS)} passed\b", out), out[-2000:]
    built = list(cache.iterdir()) if cache.exists() else []
    assert not built, f"a worker compiled into its cache (it imported a source tree?): {built}"


def test_stress_over_two_popen_interpreters(tmp_path):
    """`--tx popen//python=...//chdir=...` twice: two other interpreters,
    each in a directory of its own, share only the filesystem."""
    cache = tmp_path / "cache"
    txs = []
    for k in range(2):
        d = tmp_path / f"worker{k}"
        d.mkdir()
        txs.append(f"popen//python={sys.executable}//chdir={d}")
    _assert_distributed(_campaign(tmp_path, txs, cache), 2, cache)


# -- ssh to localhost ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing_for_ssh() -> str | None:
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"no {tool} on this machine (apt-get install openssh-client)"
    if _sshd() is None:
        return "no sshd on this machine (apt-get install openssh-server)"
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        return ("sshd run as root needs its privilege-separation directory /run/sshd, which is "
                "missing (mkdir -m 0755 /run/sshd, as .ci/run does)")
    return None


def _sshd() -> str | None:
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None)


@pytest.fixture
def loopback_sshd(tmp_path):
    """An sshd of our own on 127.0.0.1 (key login as this user only), and an
    ssh_config whose host "aiocore-loopback" reaches it; yields the config."""
    why = _missing_for_ssh()
    if why:
        pytest.skip(why)
    import getpass

    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True, capture_output=True, timeout=60)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nAcceptEnv AIOCORE_CACHE\n"
        "LogLevel ERROR\n"
    )
    (d / "ssh_config").write_text(
        f"Host aiocore-loopback\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {d / 'client'}\n  IdentitiesOnly yes\n  BatchMode yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        "  SendEnv AIOCORE_CACHE\n"
    )
    log = open(d / "sshd.log", "w")
    sshd = subprocess.Popen([_sshd(), "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            if sshd.poll() is not None:
                pytest.skip(f"sshd could not start on the loopback: {(d / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd never listened on 127.0.0.1:{port}")
                time.sleep(0.1)
        probe = subprocess.run(["ssh", "-F", str(d / "ssh_config"), "aiocore-loopback", "true"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert probe.returncode == 0, f"ssh to our loopback sshd failed: {probe.stderr}\n" \
                                      f"{(d / 'sshd.log').read_text()[-1000:]}"
        yield d / "ssh_config"
    finally:
        sshd.terminate()
        try:
            sshd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sshd.kill()
            sshd.wait()
        log.close()


def test_stress_over_ssh_to_localhost(tmp_path, loopback_sshd):
    """One worker over ssh (its own login session, no environment inherited
    but AIOCORE_CACHE), one popen worker: the documented campaign's shape."""
    cache = tmp_path / "cache"
    w0, w1 = tmp_path / "ssh-worker", tmp_path / "popen-worker"
    w0.mkdir()
    w1.mkdir()
    txs = [f"ssh=aiocore-loopback//ssh_config={loopback_sshd}//python={sys.executable}//chdir={w0}",
           f"popen//python={sys.executable}//chdir={w1}"]
    _assert_distributed(_campaign(tmp_path, txs, cache), 2, cache)
