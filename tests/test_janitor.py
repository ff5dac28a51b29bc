"""The janitor (aiocore/_context/_janitor.py): an owner killed with -9 leaves nothing in /dev/shm."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import posix_ipc
import pytest

# Each scenario runs in a child process that starts a janitor, does its part
# and then SIGKILLs itself, so no cleanup of its own can run.  The marker
# makes the child's segment names unique per test (and per xdist worker).


def _run_child(body: str, marker: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import os, signal, sys
        import posix_ipc
        from aiocore._context import _janitor
        from aiocore._context import _aio
        from aiocore import AioContext
        janitor = _janitor.start()
        assert janitor is not None
        """
    ) + textwrap.dedent(body) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    env = {**os.environ, "AIOCORE_NAME_PREFIX": marker, "PYTHONSAFEPATH": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


def _segments(marker: str) -> list[str]:
    return sorted(e for e in os.listdir("/dev/shm") if e.startswith(marker))


def _wait_gone(marker: str, seconds: float = 15.0) -> list[str]:
    end = time.monotonic() + seconds
    while (left := _segments(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


@pytest.fixture
def marker():
    m = f"aiocore-jan{uuid.uuid4().hex[:10]}-"
    yield m
    for e in _segments(m):  # whatever a failing test left
        try:
            posix_ipc.unlink_shared_memory("/" + e)
        except posix_ipc.ExistentialError:
            pass


def test_janitor_unlinks_a_killed_owners_context(marker):
    """An owner killed with -9 after create(): its segment is unlinked."""
    r = _run_child(
        """
        ctx = AioContext.create("unconditional", n_bh=2)
        print(ctx.name, flush=True)
        """,
        marker,
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert r.stdout.strip().lstrip("/").startswith(marker)
    assert not _wait_gone(marker)


def test_janitor_unlinks_a_segment_whose_owner_died_inside_create(marker):
    """Killed between shm_open and the header being written: the announced, headerless segment is unlinked."""
    r = _run_child(
        f"""
        name = "/{marker}half"
        _aio._tell_hooks("create", name)   # what create() does before shm_open
        posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=4096).close_fd()
        """,
        marker,
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not _wait_gone(marker)


def test_create_announces_the_name_before_the_segment_exists(marker, monkeypatch):
    """create() tells its hooks of a name before shm_open, and takes it back when create() fails."""
    from aiocore import AioContext, AioError
    from aiocore._context import _aio

    monkeypatch.setenv("AIOCORE_NAME_PREFIX", marker)
    seen = []

    def hook(event, name):
        seen.append((event, name, os.path.exists("/dev/shm" + name)))

    _aio.add_owner_hook(hook)
    try:
        with AioContext.create("unconditional", n_bh=2) as ctx:
            name = ctx.name
            with pytest.raises(AioError, match="already exists"):
                AioContext.create("unconditional", name, n_bh=2)
    finally:
        _aio.remove_owner_hook(hook)
    assert seen == [("create", name, False),      # announced before shm_open
                    ("create", name, True),       # the second try, refused ...
                    ("close", name, True),        # ... takes its claim back
                    ("close", name, False)], seen  # the owner's close, once unlinked


def test_janitor_leaves_a_segment_it_was_not_told_about(marker):
    """A segment the dead parent never announced is not the janitor's to unlink."""
    r = _run_child(
        f"""
        posix_ipc.SharedMemory("/{marker}stranger", posix_ipc.O_CREX, mode=0o600, size=4096).close_fd()
        """,
        marker,
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    time.sleep(1.0)   # the janitor acts within milliseconds of its pipe's end of file
    assert _segments(marker) == [f"{marker}stranger"]


def test_janitor_spares_a_live_owners_context(marker):
    """The parent closing its janitor on purpose leaves its open context alone."""
    code = textwrap.dedent(
        """
        import os, time
        from aiocore._context import _janitor
        from aiocore import AioContext
        janitor = _janitor.start()
        ctx = AioContext.create("unconditional", n_bh=2)
        janitor.close()            # the janitor reaches end of file, we live on
        time.sleep(0.5)
        print(os.path.exists("/dev/shm" + ctx.name), flush=True)
        ctx.close()
        print(os.path.exists("/dev/shm" + ctx.name), flush=True)
        """
    )
    env = {**os.environ, "AIOCORE_NAME_PREFIX": marker, "PYTHONSAFEPATH": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]
