# Shared fixtures for aiocore's tests.
#
# Every test that touches shared memory is safe under `pytest -n auto`:
# segment names carry the xdist worker id (AIOCORE_NAME_PREFIX), and after
# each test the worker's /dev/shm entries and sockets are checked for leaks
# and removed, so one failing test cannot make the next one fail.
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw")
PREFIX = f"aiocore-t{WORKER}-{os.getpid()}-"
os.environ["AIOCORE_NAME_PREFIX"] = PREFIX
# Helper processes (python -c, python -m) must import the same aiocore as the
# tests: the installed one, not the source tree in the current directory
# (which would build its own modules into the cache, aiocore/_compiler/_inplace.py):
# -P / PYTHONSAFEPATH keeps cwd off sys.path.  If the tests themselves run
# the source tree (python -m pytest), _inplace.py puts it on PYTHONPATH.
os.environ["PYTHONSAFEPATH"] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))


def _mine():
    try:
        return sorted(e for e in os.listdir("/dev/shm") if e.startswith(PREFIX))
    except OSError:
        return []


def _my_sockets():
    from aiocore._context._aio import socket_dir

    d = socket_dir()
    return sorted(os.path.join(d, e) for e in os.listdir(d) if e.startswith(PREFIX))


@pytest.fixture(autouse=True)
def no_leaked_segments(request):
    """Fail a test that leaves a segment or socket of this worker behind."""
    before = set(_mine())
    yield
    if request.node.get_closest_marker("allow_leak"):
        return
    # Give processes the test killed a moment to be reaped.
    for _ in range(50):
        left = set(_mine()) - before
        if not left:
            break
        time.sleep(0.02)
    socks = _my_sockets()
    for e in left:
        try:
            os.unlink(os.path.join("/dev/shm", e))
        except OSError:
            pass
    for s in socks:
        try:
            os.unlink(s)
        except OSError:
            pass
    assert not left, f"test left shared memory segments behind: {sorted(left)}"


def pytest_addoption(parser):
    # Stress tests (tests/test_stress.py, docs/stress.md): seconds per
    # (strategy, workload) pair; a campaign passes e.g. --stress-seconds 600.
    parser.addoption(
        "--stress-seconds", type=float, default=None,
        help="seconds per stress pair (default 1.0; lengthen for a campaign)",
    )


def pytest_sessionfinish(session, exitstatus):
    # Belt and braces: nothing of this worker survives the session.
    for e in _mine():
        try:
            os.unlink(os.path.join("/dev/shm", e))
        except OSError:
            pass


@pytest.fixture
def shm_name():
    """A segment name unique to this worker and test."""
    return "/" + PREFIX + uuid.uuid4().hex[:12]


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


@pytest.fixture
def no_fd_leak():
    """Fail if the test leaves file descriptors open in this process."""
    import gc

    before = open_fds()
    yield
    gc.collect()
    for _ in range(20):
        extra = open_fds() - before
        if not extra:
            break
        time.sleep(0.05)
    details = {}
    for fd in extra:
        try:
            details[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    assert not details, f"file descriptors left open: {details}"


class Procs:
    """Unrelated helper processes (python -c), killed at teardown."""

    def __init__(self):
        self.procs = []

    def start(self, code: str, *args, **kw) -> subprocess.Popen:
        code = textwrap.dedent(code)
        p = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            **kw,
        )
        self.procs.append(p)
        return p

    def finish(self, p, timeout=60):
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"helper failed ({p.returncode}):\n{err}"
        return out

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except Exception:
                pass


@pytest.fixture
def procs():
    """Start unrelated Python processes; all are killed at teardown."""
    ps = Procs()
    yield ps
    ps.close()


def poll_until(ctx, cond, timeout=30.0, blocking=True):
    """aio_poll until cond() is true; a failsafe timer bounds every wait."""
    fired = []
    t = ctx.timer_new(lambda: fired.append(1))
    deadline = time.monotonic() + timeout
    try:
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not reached in {timeout}s; counters {ctx.counters()}")
            ctx.timer_mod_ns(t, ctx.clock_ns() + 200_000_000)
            ctx.aio_poll(blocking)
    finally:
        ctx.timer_free(t)


def _passing_native():
    """Strategies expected to pass on this (x86) machine in the home config."""
    names = ["unconditional-c"]
    try:
        from aiocore._compiler._plugins import registry
    except ImportError:
        return names
    try:
        for info in registry():
            if (
                info.status == "ok"
                and (info.expected or {}).get("tso") == "pass"
                and info.name not in names
            ):
                names.append(info.name)
    except Exception:
        pass
    return names


PASSING = _passing_native()
# tox's {strategy}-native environments restrict the run to one strategy
# (see tox.ini and tests/test_stress.py).
ONLY_STRATEGIES = {
    x.removesuffix("-native")
    for x in os.environ.get("AIOCORE_STRESS_STRATEGY", "").replace(" ", "").split(",")
    if x
}
if ONLY_STRATEGIES:
    PASSING = [s for s in PASSING if s in ONLY_STRATEGIES]


@pytest.fixture(params=PASSING)
def passing_strategy(request):
    """Each installed strategy expected to pass natively on x86."""
    return request.param


@pytest.fixture(scope="session")
def outsiders_env(tmp_path_factory):
    """An environment where the tests' own strategies (tests/outsiders) are installed as a
    distribution of their own, as a third party's would be."""
    from outsiders.install import install

    return install(tmp_path_factory.mktemp("outsiders"))
