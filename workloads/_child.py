# One process of a stress run besides the owner:
#
#   python -m aiocore_workloads._child ROLE INDEX NAME AREA_FD PARENT_PID [FD,FD...]
#
# ROLE "victim-server" (aiocore stress --kill-rate) is the one that is not a
# single C loop: INDEX is the victims' BH, FD is the pipe its kills are counted on, and a
# last argument "MILLIKILLS_PER_S,SEED".
# It forks victims (aio_drv_victim, a notifier whose only purpose is to die),
# SIGKILLs each at a random instant, and frees its slot once the owner has
# handled the death (see victim_server).
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
    "victim-server": 2,
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
        if role == "victim-server":
            rate, seed = (int(x) for x in argv[6].split(","))
            return victim_server(ctx, index, rate / 1000.0, seed, fds[0])
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


def victim_server(ctx, bh: int, rate: float, seed: int, kills_fd: int) -> int:
    """Fork victims and kill them at random, ``rate`` kills per second.

    Each victim is a fork of this process (so the context registers it for
    the owner's recovery at fork, aiocore/_context/_aio.py) running
    aio_drv_victim; it is SIGKILLed after an exponential delay of mean
    1/rate (seeded), at whatever primitive it has reached.  Its slot still
    says which protocol call it died in, so the watchdog does not judge the
    state it left until the owner has had the chance to recover: the slot is
    released once the context's ``recoveries`` counter moves past the
    death, or after 0.5 s without recovery -- then a lost wakeup or busy
    loop the death caused is the watchdog's to see.  One byte per kill is
    written to ``kills_fd``, 'r' if the owner recovered it, 'n' if not (a
    kill whose wait the end of the run cut short is not counted)."""
    import random

    from aiocore._faults._breakpoint import kill_notifier

    lib, c = ctx._lib, ctx._c
    a = lib.aio_drv_area(c)
    rnd = random.Random(seed)
    server = os.getpid()
    while not a.stop.v:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the victim: dies with the server (a fork does not inherit PDEATHSIG)
            os.close(r)
            die_with_parent(server)
            slot = lib.aio_drv_proc_claim(c, ROLE_CODES["pingpong"])
            os.write(w, slot.to_bytes(4, "little", signed=True))  # its driver slot (not its recovery slot)
            os._exit(1 if slot < 0 else (0 if lib.aio_drv_victim(c, bh, slot) == 0 else 1))
        os.close(w)
        got = os.read(r, 4)  # it holds its slot: the kill lands inside its loop
        os.close(r)
        slot = int.from_bytes(got, "little", signed=True) if len(got) == 4 else -1
        if slot < 0:
            os.waitpid(pid, 0)
            print(f"aiocore stress victim server: a victim found no free process slot ({slot})", file=sys.stderr)
            return 1
        before = ctx.counters().recoveries
        kill_notifier(pid, delay_s=min(rnd.expovariate(rate), 1.0))
        deadline = time.monotonic() + 0.5
        recovered = False
        while time.monotonic() < deadline and not a.stop.v:
            if ctx.counters().recoveries != before:
                recovered = True
                break
            time.sleep(0.0005)
        lib.aio_drv_proc_release(c, slot)
        if recovered or not a.stop.v:  # a kill cut short by the run's end is not counted
            os.write(kills_fd, b"r" if recovered else b"n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
