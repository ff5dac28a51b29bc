# Handing the notifier's fds to attaching processes (SCM_RIGHTS over a unix
# socket in the user's private directory, SO_PEERCRED-checked): the owner's
# server thread and the attacher's client.  See _aio.py's header for the
# protocol and its checks.
from __future__ import annotations

import os
import socket
import struct
import threading

from .. import _errors as E
from ._segment import socket_path

_HELLO = b"AIOC1"


# --- the fd server (owner side) ----------------------------------------------


class _FdServer:
    """Hands the notifier fds to attaching processes of the same user."""

    def __init__(self, path, fds, fingerprint, ident=(0, 0)):
        self.path = path
        self.fds = fds
        # ident: (st_dev, st_ino) of the owner's segment, so that an attacher
        # can tell the segment it opened by name is the one the owner maps
        # (not a copy or another context put in its place under that name).
        self.hello = _HELLO + fingerprint.encode().ljust(24, b"\0") + struct.pack("<QQ", *ident)
        try:
            os.unlink(path)  # stale: our segment name was created O_CREX
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(64)
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._serve, name=f"aiocore-fds {path}", daemon=True)
        self.thread.start()

    def _serve(self):
        import select

        uid = os.getuid()
        while True:
            try:
                r, _, _ = select.select([self.sock, self.stop_r], [], [])
            except (OSError, ValueError):
                return
            if self.stop_r in r:
                return
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                    _pid, peer_uid, _gid = struct.unpack("3i", cred)
                    if peer_uid != uid:
                        continue
                    socket.send_fds(conn, [self.hello], self.fds)
                except OSError:
                    continue

    def close(self):
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _receive_fds(name: str, timeout: float = 5.0):
    path = socket_path(name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise E.OwnerGone(
                f"the owner of {name!r} does not answer on {path}: it has exited or closed the context"
            ) from None
        msg, fds, _flags, _addr = socket.recv_fds(s, 64, 4)
    except socket.timeout:
        raise E.OwnerGone(f"the owner of {name!r} did not hand over the notifier within {timeout}s") from None
    finally:
        s.close()
    if not msg.startswith(_HELLO) or len(fds) != 3 or len(msg) != len(_HELLO) + 40:
        for fd in fds:
            os.close(fd)
        raise E.BadSegment(f"{path} did not answer like an aiocore owner")
    fp = msg[len(_HELLO) : len(_HELLO) + 24].rstrip(b"\0").decode()
    return fp, struct.unpack("<QQ", msg[len(_HELLO) + 24 :]), fds
