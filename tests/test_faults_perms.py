"""Faults: permissions -- what an owner creates is 0600 and its own; another uid cannot attach."""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

import aiocore
from aiocore._context import _aio as C

NOBODY = 65534


def test_segment_socket_and_directory_are_private(procs):
    """The segment and socket are 0600 and the socket directory 0700, all owned by the creating user."""
    with aiocore.AioContext.create() as ctx:
        seg = os.stat("/dev/shm" + ctx.name)
        sock = os.lstat(C.socket_path(ctx.name))
        d = os.lstat(C.socket_dir())
        assert stat.S_IMODE(seg.st_mode) == 0o600 and seg.st_uid == os.getuid()
        assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
        assert sock.st_uid == os.getuid()
        assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o700 and d.st_uid == os.getuid()
        # No FIFO or other file is created anywhere else for the context:
        # the notifier fds travel over the socket (SCM_RIGHTS).
        extra = [e for e in os.listdir(C.socket_dir()) if e.startswith(ctx.name.lstrip("/"))]
        assert extra == [ctx.name.lstrip("/") + ".sock"]


def _as_other_uid(fn):
    """Run fn() in a forked child that switched to uid/gid 65534; returns its JSON result."""
    if os.getuid() != 0:
        pytest.skip("switching to another uid needs root (or CAP_SETUID); this run is uid "
                    f"{os.getuid()}")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            res = fn()
            os.write(w, json.dumps(res).encode())
            code = 0
        except BaseException as e:
            os.write(w, json.dumps({"child-error": repr(e)}).encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    res = json.loads(data or b"{}")
    if "child-error" in res and "Operation not permitted" in res["child-error"]:
        pytest.skip(f"this machine does not allow switching to uid {NOBODY}: {res['child-error']}")
    assert os.waitstatus_to_exitcode(status) == 0, res
    return res


def test_another_uid_cannot_attach_or_reach_the_notifier():
    """A process of another uid cannot open the segment, attach, or connect to the owner's socket."""
    with aiocore.AioContext.create() as ctx:
        name, path = ctx.name, C.socket_path(ctx.name)

        def attempt():
            out = {"uid": os.getuid()}
            try:
                aiocore.AioContext.attach(name)
                out["attach"] = "attached!"
            except aiocore.AioError as e:
                out["attach"] = f"{type(e).__name__}: {e}"
            try:
                open("/dev/shm" + name, "rb").close()
                out["open"] = "opened!"
            except PermissionError:
                out["open"] = "denied"
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                out["connect"] = "connected!"
            except PermissionError:
                out["connect"] = "denied"
            finally:
                s.close()
            return out

        res = _as_other_uid(attempt)
        assert res["uid"] == NOBODY
        assert res["attach"].startswith("AioError") and "private to their user" in res["attach"], res
        assert res["open"] == "denied" and res["connect"] == "denied", res
        # The owner still serves its own user.
        with aiocore.AioContext.attach(name) as att:
            att.notify()


def test_fd_server_refuses_peer_of_another_uid(procs):
    """Even with the socket made reachable, the owner hands no fds to another uid (SO_PEERCRED)."""
    run = tempfile.mkdtemp(prefix="aiocore-perm-", dir="/tmp")
    try:
        os.chmod(run, 0o711)
        p = subprocess.Popen(
            [sys.executable, "-c", """
import os, sys, aiocore
from aiocore._context import _aio as C
ctx = aiocore.AioContext.create()
path = C.socket_path(ctx.name)
os.chmod(os.path.dirname(path), 0o711)    # deliberately weakened for the test
os.chmod(path, 0o666)
print(ctx.name, path, flush=True)
sys.stdin.readline()
"""],
            env={**os.environ, "XDG_RUNTIME_DIR": run, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        procs.procs.append(p)   # killed at teardown
        name, path = p.stdout.readline().split()

        def attempt():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(path)
            try:
                msg, fds, _, _ = socket.recv_fds(s, 64, 4)
            except (ConnectionResetError, socket.timeout) as e:
                return {"msg": "", "fds": 0, "err": repr(e)}
            finally:
                s.close()
            for fd in fds:
                os.close(fd)
            return {"msg": msg.decode("latin-1"), "fds": len(fds)}

        res = _as_other_uid(attempt)
        assert res["fds"] == 0 and res["msg"] == "", res
        p.stdin.write("\n")
        p.stdin.flush()
        procs.finish(p)
    finally:
        shutil.rmtree(run, ignore_errors=True)
