# The peers: what a Python user would reach for instead of aiocore (asyncio,
# multiprocessing, posix_ipc semaphores, os.eventfd), measured the same way
# (ping-pong, per wake-up).
from __future__ import annotations

import asyncio
import os
import threading
import time



from ._base import *  # noqa: F401,F403
from ._base import _Pinned, _loop_time  # noqa: F401

# --- peers -----------------------------------------------------------------------------


def peer_asyncio(n):
    """Two asyncio loops in two threads wake each other with
    call_soon_threadsafe (each wakes a loop sleeping in its selector)."""
    lat = []
    loop_b = asyncio.new_event_loop()
    pin = _Pinned().__enter__()
    cpu = pin.child_cpu()

    def run_b():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # this thread only (Linux)
        loop_b.run_forever()

    tb = threading.Thread(target=run_b, daemon=True)
    tb.start()
    loop_a = asyncio.new_event_loop()
    st = dict(t0=0)

    def on_a():
        lat.append((time.perf_counter_ns() - st["t0"]) / 2.0)
        if len(lat) < n:
            start()
        else:
            loop_a.stop()

    def on_b():
        loop_a.call_soon_threadsafe(on_a)

    def start():
        st["t0"] = time.perf_counter_ns()
        loop_b.call_soon_threadsafe(on_b)

    loop_a.call_soon(start)
    try:
        loop_a.run_forever()
    finally:
        loop_b.call_soon_threadsafe(loop_b.stop)
        tb.join(5)
        pin.__exit__()
        loop_a.close()
        loop_b.close()
    return lat[n // 10:]


def _mp_pingpong(n, make, timeout):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    objs = make(ctx)
    ping, pong, child_loop = objs
    lat = []
    with _Pinned() as pin:
        cpu = pin.child_cpu()

        def pinned(n):
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            child_loop(n)

        q = ctx.Process(target=pinned, args=(n,), daemon=True)
        q.start()
        try:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                ping()
                if not pong(timeout):
                    raise BenchError("peer ping-pong timed out")
                lat.append((time.perf_counter_ns() - t0) / 2.0)
        finally:
            q.join(timeout)
            if q.is_alive():
                q.kill()
    return lat[n // 10:]


def peer_mp_event(n, timeout):
    def make(ctx):
        e1, e2 = ctx.Event(), ctx.Event()

        def child(n):
            for _ in range(n):
                if not e1.wait(timeout):
                    return
                e1.clear()
                e2.set()

        def pong(t):
            ok = e2.wait(t)
            e2.clear()
            return ok

        return e1.set, pong, child

    return _mp_pingpong(n, make, timeout)


def peer_mp_condition(n, timeout):
    def make(ctx):
        cond = ctx.Condition()
        turn = ctx.RawValue("i", 0)

        def child(n):
            for _ in range(n):
                with cond:
                    if not cond.wait_for(lambda: turn.value == 1, timeout):
                        return
                    turn.value = 0
                    cond.notify()

        def ping():
            with cond:
                turn.value = 1
                cond.notify()

        def pong(t):
            with cond:
                return cond.wait_for(lambda: turn.value == 0, t)

        return ping, pong, child

    return _mp_pingpong(n, make, timeout)


def peer_posix_sem(n, timeout):
    import posix_ipc

    names = [f"/aiocore-bench-{os.getpid()}-{i}-{time.monotonic_ns()}" for i in (1, 2)]
    s1 = posix_ipc.Semaphore(names[0], posix_ipc.O_CREX, 0o600, 0)
    s2 = posix_ipc.Semaphore(names[1], posix_ipc.O_CREX, 0o600, 0)
    try:

        def make(ctx):
            def child(n):
                for _ in range(n):
                    try:
                        s1.acquire(timeout)
                    except posix_ipc.BusyError:
                        return
                    s2.release()

            def pong(t):
                try:
                    s2.acquire(t)
                    return True
                except posix_ipc.BusyError:
                    return False

            return s1.release, pong, child

        return _mp_pingpong(n, make, timeout)
    finally:
        for s in (s1, s2):
            s.unlink()
            s.close()


def peer_eventfd_py(n, timeout):
    a = os.eventfd(0, os.EFD_CLOEXEC)
    b = os.eventfd(0, os.EFD_CLOEXEC)
    try:

        def make(ctx):
            def child(n):
                for _ in range(n):
                    os.eventfd_read(a)
                    os.eventfd_write(b, 1)

            def pong(t):
                os.eventfd_read(b)
                return True

            return (lambda: os.eventfd_write(a, 1)), pong, child

        return _mp_pingpong(n, make, timeout)
    finally:
        os.close(a)
        os.close(b)


def eventfd_py_local(n):
    fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        w, r = os.eventfd_write, os.eventfd_read

        def one():
            w(fd, 1)
            r(fd)

        return min(_loop_time(one, max(500, n // 5)) for _ in range(5))
    finally:
        os.close(fd)
