"""Faults: the owner killed with -9 while other processes use its context."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import aiocore
from aiocore._context import _aio as C
from conftest import PREFIX

#: Every attached process must see OwnerGone within this many seconds of the kill.
BOUND_S = 3.0

OWNER = """
import sys, time, aiocore
ctx = aiocore.AioContext.create("unconditional")  # allows foreign pollers
bh = ctx.bh_new(lambda: None)
if sys.argv[1] == "hold":
    ctx.acquire()
print(ctx.name, bh, flush=True)
while True:
    ctx.aio_poll(True)
"""

# Each role prints "ready" once it is about to block or loop, and "gone" when
# it gets OwnerGone; anything else is a failure.
HELPER = """
import sys, time, aiocore
name, bh, role = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = aiocore.AioContext.attach(name)
try:
    if role == "scheduler":
        print("ready", flush=True)
        while True:
            ctx.bh_schedule(bh)
    elif role == "notifier":
        print("ready", flush=True)
        while True:
            ctx.notify()
            time.sleep(0.0005)
    elif role == "foreign-poller":
        print("ready", flush=True)
        while True:
            ctx.aio_poll(True)
    elif role == "lock-waiter":
        print("ready", flush=True)
        ctx.acquire()
        print("acquired a lock whose holder is alive?", flush=True)
        sys.exit(3)
    elif role == "lock-holder":
        ctx.acquire()
        print("ready", flush=True)
        while True:
            time.sleep(0.02)
            ctx.check_owner()
    elif role == "idle":
        print("ready", flush=True)
        sys.stdin.readline()
        ctx.check_owner()
        sys.exit(4)
except aiocore.OwnerGone as e:
    print("gone", e, flush=True)
"""


def _start(procs, code, *args):
    return procs.start(code, *args, stdin=subprocess.PIPE)


@pytest.mark.parametrize("lock_holder", ["owner", "attached"])
def test_owner_kill9_gives_every_attached_process_owner_gone(procs, lock_holder):
    """kill -9 of the owner: schedulers, notifiers, a foreign poller, lock waiters and idle processes all get OwnerGone in bounded time."""
    owner = _start(procs, OWNER, "hold" if lock_holder == "owner" else "free")
    name, bh = owner.stdout.readline().split()
    roles = ["scheduler", "notifier", "foreign-poller", "idle"]
    if lock_holder == "attached":
        roles.append("lock-holder")
    roles.append("lock-waiter")
    helpers = {}
    for role in roles:
        p = _start(procs, HELPER, name, bh, role)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        helpers[role] = p
    time.sleep(0.3)  # the waiter is blocked, the loops are running
    assert helpers["lock-waiter"].poll() is None, "acquire() returned while the lock was held"

    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    t0 = time.monotonic()
    helpers["idle"].stdin.write("\n")
    helpers["idle"].stdin.flush()
    for role, p in helpers.items():
        left = BOUND_S - (time.monotonic() - t0)
        try:
            out, err = p.communicate(timeout=max(left, 0.01))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{role} still running {BOUND_S}s after the owner was killed")
        assert p.returncode == 0, f"{role} exited {p.returncode}: {out}\n{err}"
        assert out.splitlines()[-1].startswith("gone "), f"{role}: {out}\n{err}"
        assert "is gone" in out and "aiocore gc" in out

    # The segment of the dead owner is reclaimable, socket included.
    assert os.path.exists("/dev/shm" + name)
    with pytest.raises(aiocore.OwnerGone, match="has exited"):
        aiocore.AioContext.attach(name)
    r = subprocess.run(
        [sys.executable, "-m", "aiocore._cli", "gc", "--prefix", PREFIX], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert name in r.stdout
    assert not os.path.exists("/dev/shm" + name)
    assert not os.path.exists(C.socket_path(name))


def test_attached_scheduler_notices_owner_death_within_256_calls(procs):
    """An attached process that only schedules gets OwnerGone after at most 256 more calls."""
    owner = _start(procs, OWNER, "free")
    name, bh = owner.stdout.readline().split()
    with aiocore.AioContext.attach(name) as ctx:
        ctx.bh_schedule(int(bh))
        ctx.check_owner()
        owner.kill()
        owner.wait()
        calls = 0
        with pytest.raises(aiocore.OwnerGone):
            for calls in range(1, 10_000):
                ctx.bh_schedule(int(bh))
        assert calls <= 256
        with pytest.raises(aiocore.OwnerGone):
            ctx.check_owner()
        with pytest.raises(aiocore.OwnerGone):
            for _ in range(300):
                ctx.notify()
    assert dict(aiocore.gc_segments(prefix=PREFIX)).get(name, "").endswith("is gone")


def test_owner_check_costs_nothing_for_the_owner():
    """check_owner() in the owner itself never raises while it is open."""
    with aiocore.AioContext.create() as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(1000):
            ctx.bh_schedule(bh)
            ctx.notify()
        ctx.check_owner()
        ctx.aio_poll(False)
    with pytest.raises(aiocore.ContextClosed):
        ctx.check_owner()
