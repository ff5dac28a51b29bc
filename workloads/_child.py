# One process of a stress run besides the owner:
#
#   python -m aiocore_workloads._child ROLE INDEX NAME AREA_FD PARENT_PID [FD,FD...]
#
# It attaches to the context by name (as any unrelated program would), maps
# the driver area it inherited (a memfd), claims a process slot, waits for
# "go" and runs its C loop until "stop".  It dies with the runner: the
# parent-death signal is SIGKILL, and it exits at once if the runner is
# already gone when it starts.
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

ROLE_CODES = {
    "pingpong": 2,
    "timer-racer": 7,
    "pool-worker": 4,
    "guest": 5,
    "fd-writer": 6,
    "foreign": 3,
}

EXIT_OWNER_GONE = 3


def die_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG(SIGKILL), then make sure the parent is still ours."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    role, index, name, area_fd, parent = argv[0], int(argv[1]), argv[2], int(argv[3]), int(argv[4])
    fds = [int(x) for x in argv[5].split(",")] if len(argv) > 5 and argv[5] else []
    die_with_parent(parent)
    # The runner stops us through the driver area; a stray SIGINT (a
    # terminal's ^C) must not turn the C loop's return into a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import aiocore
    from aiocore import _errors as E

    from aiocore_workloads._chaos import ENV, Chaos, configure, use_build

    chaos = Chaos.from_env(os.environ.get(ENV))
    try:
        with use_build(chaos):  # the owner's build: chaos or not
            ctx = aiocore.AioContext.attach(name)
    except (E.OwnerGone, E.SegmentNotFound):
        return EXIT_OWNER_GONE
    lib, c = ctx._lib, ctx._c
    configure(lib, chaos, role, index + 1)
    try:
        r = lib.aio_drv_area_map(c, area_fd, 0)
        if r != 0:
            print(f"aiocore stress child: cannot map the driver area ({r})", file=sys.stderr)
            return 1
        os.close(area_fd)
        slot = lib.aio_drv_proc_claim(c, ROLE_CODES[role])
        if slot < 0:
            print(f"aiocore stress child: no free process slot ({slot})", file=sys.stderr)
            return 1
        a = lib.aio_drv_area(c)
        while not a.go.v and not a.stop.v:
            time.sleep(0.001)
        if role == "pingpong":
            r = lib.aio_drv_pingpong(c, index, slot)
        elif role == "timer-racer":
            r = lib.aio_drv_timer_racer(c, index, slot)
        elif role == "pool-worker":
            r = lib.aio_drv_pool_worker(c, index, slot)
        elif role == "guest":
            r = lib.aio_drv_virtio_guest(c, index, slot)
        elif role == "fd-writer":
            arr = ctx._ffi.new("int[]", fds)
            r = lib.aio_drv_fd_writer(c, index, slot, arr, len(fds))
        elif role == "foreign":
            r = lib.aio_drv_foreign(c, index, slot)
        else:
            print(f"aiocore stress child: unknown role {role!r}", file=sys.stderr)
            return 2
        if r == -7:
            return EXIT_OWNER_GONE
        if r != 0:
            print(f"aiocore stress child {role}[{index}]: loop returned {r}", file=sys.stderr)
            return 1
        return 0
    finally:
        lib.aio_drv_area_unmap(c)
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
