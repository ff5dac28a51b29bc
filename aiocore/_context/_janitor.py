# The janitor: unlinks an owner's segments when the owner dies without
# cleaning up (kill -9), so that nothing is left in /dev/shm.
#
# A context's owner unlinks its segment on close() and at interpreter exit,
# but SIGKILL runs neither.  A long-running tool (`aiocore stress`) therefore
# starts a janitor: a small separate process, in its own session so that a
# terminal's ^C or a killed process group does not take it along, reading
# "+name" / "-name" lines on a pipe from its parent as contexts are created
# and closed.  When the pipe reaches end of file -- the parent exited, however
# it exited -- the janitor unlinks every segment still listed whose owner is
# gone (and its socket), then exits itself.  It never touches a segment whose
# owner is alive, nor one it was not told about.
from __future__ import annotations

import os
import subprocess
import sys

from .. import _errors as E
from . import _aio as _context


class Janitor:
    """The parent's handle on its janitor process."""

    def __init__(self):
        env = dict(os.environ, PYTHONSAFEPATH="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiocore._context._janitor", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
        _context.add_owner_hook(self._hook)

    def _hook(self, event: str, name: str):
        try:
            self.proc.stdin.write(f"{'+' if event == 'create' else '-'}{name}\n".encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def close(self):
        """Normal exit: the contexts are closed; let the janitor go."""
        _context.remove_owner_hook(self._hook)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start() -> Janitor | None:
    """Start a janitor for this process's contexts (None if it cannot run)."""
    try:
        return Janitor()
    except OSError:
        return None


def _main(argv) -> int:
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    names: set[str] = set()
    for raw in sys.stdin.buffer:
        line = raw.decode("ascii", "replace").strip()
        if line.startswith("+"):
            names.add(line[1:])
        elif line.startswith("-"):
            names.discard(line[1:])
    # End of file: the parent is exiting (its fds are closed before it is
    # reaped, so kill(pid, 0) would still find it), or it closed us on
    # purpose.  Its pidfd becomes readable when it has exited.
    if not names:
        return 0
    exited = True
    try:
        pidfd = os.pidfd_open(parent)
    except OSError:
        pidfd = -1  # already reaped: gone
    if pidfd >= 0:
        import select

        exited = bool(select.select([pidfd], [], [], 5.0)[0])
        os.close(pidfd)
    for name in sorted(names):
        try:
            info = _context.segment_info(name)
        except E.SegmentNotFound:
            continue  # already gone
        except E.BadSegment:
            # Listed but its header is unwritten or torn: the parent died
            # inside create() (it announces a name before shm_open).  Only
            # the parent could have made it, so it is ours once it is gone.
            if exited:
                _context.reclaim(name)
            continue
        except Exception:
            continue  # not ours to judge
        mine_and_dead = info.owner_pid == parent and exited
        if mine_and_dead or not info.owner_alive:
            _context.reclaim(name)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
