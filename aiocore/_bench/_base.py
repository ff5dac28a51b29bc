# What every benchmark module shares: the run's parameters, figures (median
# of the repeats with their spread, ratios of paired figures), the process
# helpers (pinning, fork, reap, the stop word's watchdog) and the floors
# measured from C and from Python loops.  See _all.py for the design.
from __future__ import annotations

import asyncio
import gc
import itertools
import mmap
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter

from .._compiler import _ir


#: The strategies of the seed's question, plus the hand-written reference.
DEFAULT_STRATEGIES = (
    "unconditional-c",
    "unconditional",
    "notified",
    "notified-blocking",
    "explicit-mb",
    "always-notified",
    "selfpipe",
)
SEED_STRATEGIES = DEFAULT_STRATEGIES[1:]
#: The peer baseline: asyncio's self-pipe, a write() on every schedule and a
#: read() on every aio_poll by design.  Its rows are reported beside the
#: others and not judged against the targets.
PEER_BASELINE = "selfpipe"

FULL = dict(
    repeats=5,
    n_fence=2_000_000,
    n_notify=1_000_000,
    n_round=20_000,
    n_pingpong=1500,
    n_py=300_000,
    n_peer=1000,
    duration=0.25,
    paired_phases=40,
    timeout=20.0,
)
QUICK = dict(
    repeats=3,
    n_fence=200_000,
    n_notify=100_000,
    n_round=3000,
    n_pingpong=300,
    n_py=50_000,
    n_peer=200,
    duration=0.06,
    paired_phases=12,
    timeout=10.0,
)

VIRTIO_BURST = 256  # QEMU's tx_burst default
POOL_DEPTH = 8


class BenchError(Exception):
    pass


# --- figures -------------------------------------------------------------------


def figure(samples, unit, **extra):
    """Median of the repeats with its spread."""
    xs = [float(x) for x in samples if x is not None]
    if not xs:
        return dict(value=None, unit=unit, min=None, max=None, n=0, **extra)
    return dict(
        value=statistics.median(xs), unit=unit, min=min(xs), max=max(xs), n=len(xs), **extra
    )


def ratio(num, den, vs, unit="x"):
    """num/den of two figures' medians, with the spread of the paired ratios
    when both have one sample per repeat."""
    if not num or not den or num.get("value") in (None, 0) or den.get("value") in (None, 0):
        return dict(value=None, unit=unit, vs=vs)
    r = dict(value=num["value"] / den["value"], unit=unit, vs=vs)
    a, b = num.get("_s"), den.get("_s")
    if a and b and len(a) == len(b):
        rs = [x / y for x, y in zip(a, b) if x and y]
        if rs:
            r["min"], r["max"] = min(rs), max(rs)
    return r


class Collector:
    """Samples per key, one per repeat, turned into figures at the end."""

    def __init__(self):
        self.s: dict = {}

    def add(self, key, value):
        self.s.setdefault(key, []).append(value)

    def fig(self, key, unit, **extra):
        xs = self.s.get(key, [])
        f = figure(xs, unit, **extra)
        f["_s"] = [float(x) if x is not None else None for x in xs]
        return f


def strip_private(obj):
    if isinstance(obj, dict):
        return {k: strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [strip_private(v) for v in obj]
    return obj


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


# --- process helpers -------------------------------------------------------------


#: Pin the two partners of a cross-process measurement to different CPUs
#: (parent on the first allowed CPU, child on the second).  Unpinned, on a
#: loaded 2-vCPU machine, both often share one CPU and what is measured is
#: the scheduler (see docs/seed-question.md); `aiocore bench --no-pin`.
PIN = True


class _Pinned:
    """Context manager: pin this process to its first allowed CPU."""

    def __enter__(self):
        self.old = None
        if PIN and hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) >= 2:
                self.old = set(cpus)
                os.sched_setaffinity(0, {cpus[0]})
        return self

    def child_cpu(self):
        return None if self.old is None else sorted(self.old)[1]

    def __exit__(self, *exc):
        if self.old is not None:
            os.sched_setaffinity(0, self.old)


def _fork(fn, cpu=None):
    """Run fn() in a forked child that leaves with os._exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            fn()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def _reap(pid, timeout):
    end = time.monotonic() + timeout
    while True:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > end:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.002)


class _Shared:
    """A BenchShared block (aio_bench.c) in MAP_SHARED anonymous memory."""

    def __init__(self, ffi, lib):
        self.mm = mmap.mmap(-1, int(lib.aio_bench_shared_size()))
        self.buf = ffi.from_buffer(self.mm)
        self.ptr = ffi.cast("void *", self.buf)
        self.stop = lib.aio_bench_stop_word(self.ptr)
        self.lib = lib

    def stat(self, i):
        return int(self.lib.aio_bench_stat(self.ptr, i))


def _watchdog(timeout, shared, ctxs):
    """After timeout: set stop and wake sleepers outside the protocol."""

    def fire():
        shared.stop[0] = 1
        for c in ctxs:
            try:
                c.rescue()
            except Exception:
                pass

    t = threading.Timer(timeout, fire)
    t.daemon = True
    t.start()
    return t


# --- floors ---------------------------------------------------------------------------


def _loop0(f, rep):
    t0 = time.perf_counter_ns()
    for _ in rep:
        f()
    return time.perf_counter_ns() - t0


def _loop1(f, rep, a):
    t0 = time.perf_counter_ns()
    for _ in rep:
        f(a)
    return time.perf_counter_ns() - t0


def _loop2(f, rep, a, b):
    t0 = time.perf_counter_ns()
    for _ in rep:
        f(a, b)
    return time.perf_counter_ns() - t0


def _loop_time(f, n, *args):
    """ns per call of f(...) from a Python loop (timeit's loop shape), with
    a plain call of the right arity -- as user code calls it, so that
    Python-to-Python calls get the interpreter's inlined call path."""
    rep = itertools.repeat(None, n)
    loop = (_loop0, _loop1, _loop2)[len(args)]
    gc_was = gc.isenabled()
    gc.disable()
    try:
        dt = loop(f, rep, *args)
    finally:
        if gc_was:
            gc.enable()
    return dt / n


def py_call_costs(calls: dict, n: int, batches: int = 9) -> dict:
    """ns per call from a Python loop for several callables, measured in
    interleaved short batches (a, b, c, a, b, c, ...); each figure is the best
    batch, the estimator least disturbed by other processes (noise only adds
    time), so that the callables' ratio is not a ratio of two noise levels."""
    per = max(1000, n // batches)
    best = {k: float("inf") for k in calls}
    for _ in range(batches):
        for k, (f, args) in calls.items():
            best[k] = min(best[k], _loop_time(f, per, *args))
    return best


def efd_pingpong_c(lib, ffi, n, timeout):
    """C eventfd ping-pong between two processes: per-wake-up latencies (RT/2)."""
    a = os.eventfd(0, os.EFD_CLOEXEC)
    b = os.eventfd(0, os.EFD_CLOEXEC)
    sh = _Shared(ffi, lib)
    try:
        pin = _Pinned().__enter__()
        pid = _fork(lambda: lib.aio_bench_efd_pingpong(b, a, 0, n, ffi.NULL, sh.stop), pin.child_cpu())
        lat = ffi.new("int64_t[]", n)
        wd = threading.Timer(timeout, lambda: (sh.stop.__setitem__(0, 1), os.eventfd_write(b, 1), os.eventfd_write(a, 1)))
        wd.daemon = True
        wd.start()
        done = lib.aio_bench_efd_pingpong(a, b, 1, n, lat, sh.stop)
        pin.__exit__()
        wd.cancel()
        _reap(pid, timeout)
        return [lat[i] / 2.0 for i in range(n // 10, done)]
    finally:
        os.close(a)
        os.close(b)
