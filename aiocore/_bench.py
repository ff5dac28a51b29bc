# The benchmark engine behind `aiocore bench` (and benchmarks/*.py).
#
# Every figure is the median of `repeats` runs with its spread (min, max),
# and every ratio is taken against a floor or a peer measured in the same
# run.  Repeats are interleaved -- repeat 1 of every floor and strategy, then
# repeat 2, ... -- so that noise from other processes on this 2-vCPU machine
# hits floors and strategies alike.
#
# What is timed runs in C (aio_bench.c), compiled into each strategy's own
# module so the hooks inline as in aio_poll; cross-process measurements fork
# a partner that also runs C.  Python only sets up, forks, and takes medians.
# The exceptions are the figures that are *about* Python: the cost of
# ctx.bh_schedule() and of an empty cffi call, and the peers (asyncio,
# multiprocessing, posix_ipc, os.eventfd), which are what a Python user
# would reach for instead.
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

from . import _ir

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

FULL = dict(
    repeats=5,
    n_fence=2_000_000,
    n_notify=1_000_000,
    n_round=20_000,
    n_pingpong=1500,
    n_py=300_000,
    n_peer=1000,
    duration=0.25,
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


# --- the machine ----------------------------------------------------------------


def machine_info() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cc = "?"
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True, timeout=5).stdout.splitlines()[0]
    except Exception:
        pass
    hyp = "?"
    try:
        with open("/proc/cpuinfo") as f:
            hyp = "hypervisor" if " hypervisor" in f.read() else "bare metal"
    except OSError:
        pass
    return dict(
        cpu=cpu,
        cpus=os.cpu_count(),
        virtualization=hyp,
        arch=platform.machine(),
        kernel=platform.release(),
        python=platform.python_version(),
        compiler=cc,
        loadavg_start=list(os.getloadavg()),
    )


# --- fences and locked ops: from the description, and from the compiled code --------


def _x86_costs(ir, hook, reads, clear_result=0, counts=None, env=None, depth=0):
    """Walk one path of a hook (values read come from `reads`, by field) and
    count what it costs on x86: full fences (smp_mb, the smp_mb of
    atomic_mb_set), locked RMWs, compiler-only barriers (smp_wmb/smp_rmb),
    event_set and event_test_and_clear (system calls)."""
    counts = Counter() if counts is None else counts
    env = {} if env is None else env
    if depth > 8:
        return counts
    body = ir.hooks.get(hook, ())
    if hook == "schedule" and not body and ir.schedule_is_default:
        counts["locked"] += 1
        if not reads.get("bh_scheduled", 0):
            _x86_costs(ir, "notify", reads, clear_result, counts, env, depth + 1)
        return counts

    def run(stmts):
        for s in stmts:
            if isinstance(s, _ir.Read):
                env[s.dst] = reads.get(s.field, 0)
            elif isinstance(s, _ir.Write):
                pass
            elif isinstance(s, _ir.Rmw):
                counts["locked"] += 1
                if s.dst:
                    env[s.dst] = reads.get(s.field, 0)
            elif isinstance(s, _ir.Fence):
                counts["fences" if s.kind == "smp_mb" else "compiler_barriers"] += 1
            elif isinstance(s, _ir.MbSet):
                counts["fences"] += 1
                counts["compiler_barriers"] += 1
            elif isinstance(s, _ir.EventSet):
                counts["event_set"] += 1
            elif isinstance(s, _ir.EventTestAndClear):
                counts["event_clear"] += 1
                if s.dst:
                    env[s.dst] = clear_result
            elif isinstance(s, _ir.Call):
                _x86_costs(ir, s.hook, reads, clear_result, counts, env, depth + 1)
            elif isinstance(s, _ir.If):
                if _ir.eval_expr(s.cond, env):
                    if run(s.then):
                        return True
                elif run(s.orelse):
                    return True
            elif isinstance(s, _ir.Return):
                return True
        return False

    run(body)
    return counts


def _static_costs(ir, hook, depth=0):
    """Every statement of a hook, both sides of every branch (what the
    compiled code of the hook contains, before instrumentation)."""
    c = Counter()
    if depth > 8:
        return c
    body = ir.hooks.get(hook, ())
    if hook == "schedule" and not body and ir.schedule_is_default:
        c["locked"] += 1
        c.update(_static_costs(ir, "notify", depth + 1))
        return c
    for s in _ir.walk(body):
        if isinstance(s, _ir.Rmw):
            c["locked"] += 1
        elif isinstance(s, _ir.Fence):
            c["fences" if s.kind == "smp_mb" else "compiler_barriers"] += 1
        elif isinstance(s, _ir.MbSet):
            c["fences"] += 1
        elif isinstance(s, _ir.EventSet):
            c["event_set"] += 1
        elif isinstance(s, _ir.EventTestAndClear):
            c["event_clear"] += 1
        elif isinstance(s, _ir.Call):
            c.update(_static_costs(ir, s.hook, depth + 1))
    return c


HOOKS_DISASSEMBLED = ("notify", "accept", "poll_begin", "poll_end", "schedule")


def expected_compiled(ir, hook) -> dict:
    """What the disassembly of aio_bench_hook_<hook> must contain: the
    description's fences and locked ops, plus the core's instrumentation --
    one relaxed counter increment (`lock add`) per event_set, two per
    event_test_and_clear (calls, clears), one per schedule (aio_bh_note)."""
    c = _static_costs(ir, hook)
    locked = c["locked"] + c["event_set"] + 2 * c["event_clear"] + (1 if hook == "schedule" else 0)
    return dict(fences=c["fences"], locked=locked)


_LOCK_FENCE = re.compile(r"\block\s+or[bwlq]?\s+\$0x0,\(%[re]sp\)")


def _so_of(lib) -> str | None:
    for name, m in list(sys.modules.items()):
        if not (name == "aiocore._core" or name.startswith(("aiocore._s_", "_aiocore_s_"))):
            continue
        if getattr(m, "lib", None) is lib and str(getattr(m, "__file__", "")).endswith(".so"):
            return m.__file__
    return None


def _functions(asm: str) -> dict:
    """objdump -d text -> {function name: [instruction text, ...]}."""
    funcs, cur = {}, None
    for line in asm.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is not None and "\t" in line:
            cur.append(line.split("\t", 1)[1].strip())
        elif not line.strip():
            cur = None
    return funcs


def _closure_counts(funcs, root) -> dict:
    """Fences and locked ops in a function and in the local functions it
    calls or jumps to (gcc outlines cold paths: strategy_notify.part.0,
    event_notifier_test_and_clear.isra.0), each counted once."""
    seen, todo = set(), [root]
    fences = locked = syscalls = 0
    while todo:
        f = todo.pop()
        if f in seen or f not in funcs:
            continue
        seen.add(f)
        for ins in funcs[f]:
            if "mfence" in ins or _LOCK_FENCE.search(ins):
                fences += 1
            elif re.match(r"lock\b", ins):
                locked += 1
            elif re.match(r"xchg[bwlq]?\s", ins) and "(" in ins:
                locked += 1
            m = re.match(r"(?:call|jmp)\w*\s+[0-9a-f]+ <([^>+@]+)(@plt)?>", ins)
            if m:
                if m.group(2):
                    syscalls += m.group(1) in ("write", "read", "ppoll")
                else:
                    todo.append(m.group(1))
    return dict(fences=fences, locked=locked)


def disassembled_counts(lib, hooks=HOOKS_DISASSEMBLED) -> dict | None:
    """Fences and locked instructions in the compiled hooks (x86-64 only):
    a fence is `mfence` or `lock or $0,(%rsp)` (gcc's smp_mb); a locked op
    is any other lock-prefixed instruction or an xchg with memory (implicitly
    locked).  None if objdump or the module file is missing."""
    so = _so_of(lib)
    if not so or not shutil.which("objdump") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        out = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", so], capture_output=True, text=True, timeout=60
        ).stdout
    except Exception:
        return None
    funcs = _functions(out)
    return {h: _closure_counts(funcs, f"aio_bench_hook_{h}") for h in hooks if f"aio_bench_hook_{h}" in funcs}


def protocol_costs(info) -> dict:
    """Per-path costs from the description (x86), and the compiled check."""
    ir = info.ir
    if ir is None:  # the hand-written reference: same protocol as unconditional
        from ._plugins import get

        ir = get("unconditional").ir
    idle = dict(notify_me=0, notified=0, bh_scheduled=0)
    notify = _x86_costs(ir, "notify", idle)
    sleeping = _x86_costs(ir, "notify", dict(notify_me=2, notified=0, bh_scheduled=0))
    sched = _x86_costs(ir, "schedule", idle)
    # A blocking aio_poll that finds work pending: poll_begin, the
    # timeout_zero hook (if any), no sleep, poll_end (accept inside), with
    # notified as the preceding schedule left it (nobody slept: for the
    # conditional strategies nothing set it; always-notified sets it always).
    after_sched = dict(notify_me=2, notified=1 if ir.name == "always-notified" else 0, bh_scheduled=1)
    poll = Counter()
    poll.update(_x86_costs(ir, "poll_begin", after_sched))
    if ir.has_timeout_zero:
        poll.update(_x86_costs(ir, "timeout_zero", after_sched))
    poll.update(_x86_costs(ir, "poll_end", after_sched, clear_result=0))
    per_dispatch = Counter(sched)
    per_dispatch.update(poll)

    def pick(c):
        return dict(
            fences=c["fences"], locked=c["locked"], compiler_barriers=c["compiler_barriers"],
            event_set=c["event_set"], event_clear=c["event_clear"],
        )

    return dict(
        notify_idle=pick(notify),
        notify_sleeping=pick(sleeping),
        schedule_idle=pick(sched),
        poll_round=pick(poll),
        per_dispatch=pick(per_dispatch),
        ir_name=ir.name,
    )


def compiled_check(info, lib) -> dict:
    ir = info.ir
    if ir is None:
        from ._plugins import get

        ir = get("unconditional").ir
    got = disassembled_counts(lib)
    exp = {h: expected_compiled(ir, h) for h in HOOKS_DISASSEMBLED}
    if got is None:
        return dict(checked=False, expected=exp, compiled=None, match=None)
    return dict(checked=True, expected=exp, compiled=got, match=all(got.get(h) == exp[h] for h in exp))


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


# --- per strategy ----------------------------------------------------------------------


def aio_pingpong(strategy, n, timeout, **create_kw):
    """Two owners, each sleeping in aio_poll, wake each other through BHs:
    per-wake-up latencies (RT/2), ns.  create_kw: e.g. skeleton="polling"."""
    from ._context import AioContext

    a = AioContext.create(strategy=strategy, n_bh=8, n_timers=1, **create_kw)
    try:
        ffi, lib = a._ffi, a._lib
        bh_a = a.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        r, w = os.pipe()
        r2, w2 = os.pipe()

        def child():
            os.close(r)
            os.close(w2)
            b = AioContext.create(strategy=strategy, n_bh=8, n_timers=1, **create_kw)
            bh_b = b.bh_new(lambda: None)
            os.write(w, f"{b.name} {bh_b}\n".encode())
            os.read(r2, 1)
            lib.aio_bench_aio_pingpong(b._c, a._c, bh_a, 0, n, ffi.NULL, sh.stop)
            b.close()

        pin = _Pinned().__enter__()
        pid = _fork(child, pin.child_cpu())
        os.close(w)
        os.close(r2)
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(r, 256)
            if not chunk:
                raise BenchError(f"{strategy}: ping-pong partner died")
            line += chunk
        os.close(r)
        name, bh_b = line.decode().split()
        b = AioContext.attach(name)
        try:
            lat = ffi.new("int64_t[]", n)
            wd = _watchdog(timeout, sh, [a, b])
            os.write(w2, b"g")
            os.close(w2)
            c0 = a.counters()
            done = lib.aio_bench_aio_pingpong(a._c, b._c, int(bh_b), 1, n, lat, sh.stop)
            c1 = a.counters()
            pin.__exit__()
            wd.cancel()
            lost = sh.stop[0] != 0 and done < n
            sh.stop[0] = 1
            b.rescue()
            _reap(pid, timeout)
        finally:
            b.close()
        if lost:
            raise BenchError(f"{strategy}: ping-pong stalled after {done}/{n} round trips (lost wake-up?)")
        rounds = max(1, done)
        stats = dict(
            polls_per_wakeup=(c1.polls - c0.polls) / rounds,
            spurious_per_wakeup=(c1.spurious_wakeups - c0.spurious_wakeups) / rounds,
        )
        return [lat[i] / 2.0 for i in range(n // 10, done)], stats
    finally:
        a.close()


def virtio_tx(strategy, duration, timeout, **create_kw):
    """virtio-net-tx: a guest process fills a ring and kicks; the owner's tx
    BH drains bursts and reschedules itself.  Returns a dict of rates."""
    from ._context import AioContext

    ctx = AioContext.create(strategy=strategy, n_bh=8, n_timers=1, **create_kw)
    try:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        c0 = ctx.counters()
        with _Pinned() as pin:
            pid = _fork(lambda: lib.aio_bench_virtio_guest(ctx._c, bh, sh.ptr), pin.child_cpu())
            wd = _watchdog(duration + timeout, sh, [ctx])
            lib.aio_bench_virtio_host(ctx._c, bh, sh.ptr, VIRTIO_BURST, int(duration * 1e9))
        wd.cancel()
        sh.stop[0] = 1
        _reap(pid, timeout)
        c1 = ctx.counters()
        t = (sh.stat(7) - sh.stat(6)) / 1e9
        consumed, disp = sh.stat(1), sh.stat(3)
        if t <= 0 or disp == 0:
            raise BenchError(f"{strategy}: virtio-net-tx made no progress")
        d_disp = c1.bh_dispatches - c0.bh_dispatches
        return dict(
            pps=consumed / t,
            dispatches_per_s=disp / t,
            packets_per_dispatch=consumed / disp,
            event_sets_per_1k=1000.0 * (c1.event_sets - c0.event_sets) / max(1, d_disp),
            event_clears_per_1k=1000.0 * (c1.event_clear_calls - c0.event_clear_calls) / max(1, d_disp),
            wakeups_per_1k=1000.0 * (c1.wakeups - c0.wakeups) / max(1, d_disp),
            polls_per_dispatch=(c1.polls - c0.polls) / max(1, d_disp),
            no_syscall_polls_fraction=(c1.polls_no_syscall - c0.polls_no_syscall) / max(1, c1.polls - c0.polls),
        )
    finally:
        ctx.close()


def thread_pool(strategy, duration, timeout):
    """thread-pool: a worker process completes requests and schedules the
    completion BH per request; the owner reaps and resubmits."""
    from ._context import AioContext

    ctx = AioContext.create(strategy=strategy, n_bh=8, n_timers=1)
    efd = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        c0 = ctx.counters()
        with _Pinned() as pin:
            pid = _fork(lambda: lib.aio_bench_pool_worker(ctx._c, bh, sh.ptr, efd), pin.child_cpu())
            wd = threading.Timer(duration + timeout, lambda: (sh.stop.__setitem__(0, 1), ctx.rescue(), os.eventfd_write(efd, 1)))
            wd.daemon = True
            wd.start()
            lib.aio_bench_pool_owner(ctx._c, bh, sh.ptr, efd, POOL_DEPTH, int(duration * 1e9))
        wd.cancel()
        sh.stop[0] = 1
        os.eventfd_write(efd, 1)
        _reap(pid, timeout)
        c1 = ctx.counters()
        t = (sh.stat(7) - sh.stat(6)) / 1e9
        done, disp = sh.stat(1), sh.stat(3)
        d_disp = max(1, c1.bh_dispatches - c0.bh_dispatches)
        return dict(
            completions_per_s=done / t if t > 0 else None,
            completions_per_dispatch=done / max(1, disp),
            event_sets_per_1k=1000.0 * (c1.event_sets - c0.event_sets) / d_disp,
            event_clears_per_1k=1000.0 * (c1.event_clear_calls - c0.event_clear_calls) / d_disp,
        )
    finally:
        os.close(efd)
        ctx.close()


def micro(strategy, P, col: Collector, key):
    """C loops on one strategy's module (owner, nobody sleeping)."""
    from ._context import AioContext

    ctx = AioContext.create(strategy=strategy, n_bh=8, n_timers=1)
    try:
        lib, c = ctx._lib, ctx._c
        bh = ctx.bh_new(lambda: None)
        # Interleaved short batches, best of each (noise only adds time):
        # the fence+load floor is measured here too, beside each strategy's
        # fast path, so their ratio is not a ratio of two load levels.
        k = 9
        m = max(1000, P["n_notify"] // k)
        best = dict(fl=float("inf"), hook=float("inf"), aio=float("inf"), sched=float("inf"))
        for _ in range(k):
            best["fl"] = min(best["fl"], lib.aio_bench_fence_load(c, m))
            best["hook"] = min(best["hook"], lib.aio_bench_notify_hook(c, m))
            best["aio"] = min(best["aio"], lib.aio_bench_aio_notify(c, m))
            best["sched"] = min(best["sched"], lib.aio_bench_schedule(c, bh, m))
        col.add((key, "fence_load_paired"), best["fl"])
        col.add((key, "notify_hook"), best["hook"])
        col.add((key, "aio_notify"), best["aio"])
        col.add((key, "schedule"), best["sched"])
        # From Python: the closure ctx.bh_schedule (BH already scheduled:
        # the xchg finds 1, as most schedules of a busy BH do), and the raw
        # cffi call it wraps.
        ctx.bh_schedule(bh)
        pc = py_call_costs(
            dict(closure=(ctx.bh_schedule, (bh,)), raw=(lib.aio_bh_schedule, (c, bh)),
                 empty=(lib.aio_empty, ())),
            P["n_py"],
        )
        col.add((key, "py_bh_schedule"), pc["closure"])
        col.add((key, "py_raw_bh_schedule"), pc["raw"])
        col.add((key, "py_empty"), pc["empty"])
    finally:
        ctx.close()


def poll_rounds(strategies, P, col: Collector):
    """Schedule + aio_poll rounds (work pending, nobody sleeps) of every
    strategy, in batches rotating through the strategies (best batch of
    each), so that differences between strategies are not differences in
    load.  Syscalls per 1000 dispatches come from the counters."""
    from ._context import AioContext

    ctxs = {}
    try:
        for s in strategies:
            ctx = AioContext.create(strategy=s, n_bh=8, n_timers=1)
            ctxs[s] = (ctx, ctx.bh_new(lambda: None), ctx.counters())
        k = 9
        m = max(200, P["n_round"] // k)
        best = {s: [float("inf"), float("inf")] for s in strategies}
        for _ in range(k):
            for s, (ctx, bh, _c0) in ctxs.items():
                best[s][0] = min(best[s][0], ctx._lib.aio_bench_poll_round(ctx._c, bh, 1, m))
            for s, (ctx, bh, _c0) in ctxs.items():
                best[s][1] = min(best[s][1], ctx._lib.aio_bench_poll_round(ctx._c, bh, 0, m))
        for s, (ctx, bh, c0) in ctxs.items():
            c1 = ctx.counters()
            n = max(1, c1.bh_dispatches - c0.bh_dispatches)
            col.add((s, "poll_round"), best[s][0])
            col.add((s, "poll_round_nb"), best[s][1])
            col.add((s, "round_event_sets"), 1000.0 * (c1.event_sets - c0.event_sets) / n)
            col.add((s, "round_event_clears"), 1000.0 * (c1.event_clear_calls - c0.event_clear_calls) / n)
    finally:
        for ctx, _, _ in ctxs.values():
            ctx.close()


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


# --- the run ---------------------------------------------------------------------------


def run(strategies=None, quick=False, progress=None) -> dict:
    """Run everything; returns the JSON-able result (figures with units)."""
    from . import _bench_polling
    from ._plugins import get, load_strategy

    P = dict(QUICK if quick else FULL)
    strategies = list(strategies or DEFAULT_STRATEGIES)
    say = progress or (lambda msg: None)
    t_start = time.monotonic()
    infos = {}
    for s in strategies:
        info, ffi, lib = load_strategy(s)
        if not hasattr(lib, "aio_bench_notify_hook"):
            raise BenchError(
                f"strategy {s}'s module has no benchmark loops (stale build: `pip install -e .`)"
            )
        infos[s] = (info, ffi, lib)
    # The floors run on the hand-written module (any module has them).
    _, cffi_, clib = load_strategy("unconditional-c")
    col = Collector()
    lat_col: dict = {}

    def lat_add(key, xs):
        col.add((key, "p50"), percentile(xs, 50))
        col.add((key, "p99"), percentile(xs, 99))

    from ._context import AioContext

    for rep in range(P["repeats"]):
        say(f"repeat {rep + 1}/{P['repeats']}: floors")
        fctx = AioContext.create(strategy="unconditional-c", n_bh=8, n_timers=1)
        try:
            k = 5
            nf, nr = max(1000, P["n_fence"] // k), max(200, P["n_round"] // k)
            best = Counter()
            loops = dict(
                fence_load=lambda: clib.aio_bench_fence_load(fctx._c, nf),
                mfence=lambda: clib.aio_bench_mfence(nf // 4),
                xchg=lambda: clib.aio_bench_xchg(nf),
                ppoll0=lambda: clib.aio_bench_ppoll0(fctx._c, nr),
                getpid=lambda: clib.aio_bench_getpid(nr),
                clock=lambda: clib.aio_bench_clock(nr),
                eventfd_local=lambda: clib.aio_bench_eventfd_local(nr),
            )
            for _ in range(k):  # interleaved batches, best of each
                for name, fn in loops.items():
                    v = fn()
                    best[name] = v if name not in best else min(best[name], v)
            for name in loops:
                col.add(("floor", name), best[name])
            pc = py_call_costs(dict(e=(clib.aio_empty, ()), e2=(clib.aio_empty2, (fctx._c, 0))), P["n_py"])
            col.add(("floor", "cffi_empty"), pc["e"])
            col.add(("floor", "cffi_empty2"), pc["e2"])
        finally:
            fctx.close()
        lat_add("floor_efd", efd_pingpong_c(clib, cffi_, P["n_pingpong"], P["timeout"]))

        say(f"repeat {rep + 1}/{P['repeats']}: peers")
        lat_add("peer_asyncio", peer_asyncio(P["n_peer"]))
        lat_add("peer_mp_event", peer_mp_event(P["n_peer"], P["timeout"]))
        lat_add("peer_mp_condition", peer_mp_condition(P["n_peer"], P["timeout"]))
        lat_add("peer_posix_sem", peer_posix_sem(P["n_peer"], P["timeout"]))
        lat_add("peer_eventfd_py", peer_eventfd_py(P["n_peer"], P["timeout"]))
        col.add(("peer", "eventfd_py_local"), eventfd_py_local(P["n_py"] // 8))

        say(f"repeat {rep + 1}/{P['repeats']}: poll rounds")
        poll_rounds(strategies, P, col)
        for s in strategies:
            say(f"repeat {rep + 1}/{P['repeats']}: {s}")
            micro(s, P, col, s)
            lat, wst = aio_pingpong(s, P["n_pingpong"], P["timeout"])
            lat_add((s, "wake"), lat)
            col.add((s, "wake_polls"), wst["polls_per_wakeup"])
            col.add((s, "wake_spurious"), wst["spurious_per_wakeup"])
            v = virtio_tx(s, P["duration"], P["timeout"])
            for k, x in v.items():
                col.add((s, "virtio_" + k), x)
            tp = thread_pool(s, P["duration"], P["timeout"])
            for k, x in tp.items():
                col.add((s, "pool_" + k), x)
        _bench_polling.measure_repeat(strategies, infos, P, col, say, clib, cffi_)

    # --- assemble ---
    F = col.fig
    floors = {
        "fence_load": F(("floor", "fence_load"), "ns", what="seq_cst fence + relaxed load, C loop"),
        "mfence": F(("floor", "mfence"), "ns", what="mfence alone, C loop"),
        "xchg": F(("floor", "xchg"), "ns", what="seq_cst xchg (locked op), C loop"),
        "eventfd_pingpong": F(("floor_efd", "p50"), "ns", what="blocking eventfd ping-pong between two processes in C, per wake-up (RT/2), p50"),
        "eventfd_pingpong_p99": F(("floor_efd", "p99"), "ns", what="same, p99"),
        "cffi_empty_call": F(("floor", "cffi_empty"), "ns", what="lib.aio_empty() from a Python loop"),
        "cffi_empty_call_2args": F(("floor", "cffi_empty2"), "ns", what="lib.aio_empty2(ctx, id) from a Python loop"),
        "eventfd_write_read": F(("floor", "eventfd_local"), "ns", what="eventfd write+read, one thread, no waiter, C"),
        "ppoll_zero_timeout": F(("floor", "ppoll0"), "ns", what="ppoll(2 fds, timeout 0), C"),
        "getpid": F(("floor", "getpid"), "ns", what="getpid() system call, C"),
        "clock_gettime": F(("floor", "clock"), "ns", what="clock_gettime(MONOTONIC) via vDSO, C"),
    }
    peers = {}
    for key, what in (
        ("peer_asyncio", "asyncio call_soon_threadsafe, loop<->loop across threads"),
        ("peer_mp_event", "multiprocessing.Event, cross-process"),
        ("peer_mp_condition", "multiprocessing.Condition, cross-process"),
        ("peer_posix_sem", "posix_ipc.Semaphore, cross-process"),
        ("peer_eventfd_py", "os.eventfd blocking write/read from Python, cross-process"),
    ):
        name = key[5:]
        peers[name] = dict(
            what=what + ", per wake-up (RT/2)",
            p50=F((key, "p50"), "ns"),
            p99=F((key, "p99"), "ns"),
        )
        peers[name]["p50_vs_eventfd_floor"] = ratio(peers[name]["p50"], floors["eventfd_pingpong"], "eventfd_pingpong")
    peers["eventfd_py_write_read"] = dict(
        what="os.eventfd_write + os.eventfd_read, one thread, no waiter",
        cost=F(("peer", "eventfd_py_local"), "ns"),
    )
    peers["eventfd_py_write_read"]["cost_vs_c"] = ratio(
        peers["eventfd_py_write_read"]["cost"], floors["eventfd_write_read"], "eventfd_write_read"
    )

    out_s = {}
    for s in strategies:
        info, ffi, lib = infos[s]
        costs = protocol_costs(info)
        chk = compiled_check(info, lib)
        d = dict(origin=info.origin)
        d["notify_ns"] = F((s, "aio_notify"), "ns", what="aio_notify() in a C loop, nobody sleeping (hook + notifies counter)")
        d["notify_hook_ns"] = F((s, "notify_hook"), "ns", what="the strategy's notify hook inline in a C loop, nobody sleeping")
        d["fence_load_paired_ns"] = F((s, "fence_load_paired"), "ns", what="fence+load floor measured beside this strategy's fast path (interleaved, same module)")
        d["notify_vs_fence_load"] = ratio(d["notify_ns"], d["fence_load_paired_ns"], "fence_load (paired)")
        d["notify_hook_vs_fence_load"] = ratio(d["notify_hook_ns"], d["fence_load_paired_ns"], "fence_load (paired)")
        d["schedule_ns"] = F((s, "schedule"), "ns", what="aio_bh_schedule 0->1 in a C loop, nobody sleeping")
        d["poll_round_ns"] = F((s, "poll_round"), "ns", what="aio_bh_schedule + blocking aio_poll that finds it pending (no sleep), C loop")
        d["poll_round_nonblocking_ns"] = F((s, "poll_round_nb"), "ns", what="aio_bh_schedule + aio_poll(blocking=false), C loop")
        d["poll_round_vs_ppoll"] = ratio(d["poll_round_ns"], floors["ppoll_zero_timeout"], "ppoll_zero_timeout")
        d["fences_per_notify"] = dict(value=costs["notify_idle"]["fences"], unit="fences", source="description, path notify_me=0")
        d["locked_per_notify"] = dict(value=costs["notify_idle"]["locked"], unit="locked ops", source="description, path notify_me=0")
        d["fences_per_poll"] = dict(value=costs["poll_round"]["fences"], unit="fences", source="description: poll_begin+timeout_zero+poll_end, work pending")
        d["locked_per_poll"] = dict(value=costs["poll_round"]["locked"], unit="locked ops", source="description: poll_begin+timeout_zero+poll_end, work pending")
        d["fences_per_dispatch"] = dict(value=costs["per_dispatch"]["fences"], unit="fences", source="description: schedule (owner awake) + poll round")
        d["locked_per_dispatch"] = dict(value=costs["per_dispatch"]["locked"], unit="locked ops", source="description: schedule (owner awake) + poll round")
        d["syscalls_per_dispatch_description"] = dict(
            value=costs["per_dispatch"]["event_set"] + costs["per_dispatch"]["event_clear"],
            unit="syscalls", source="description: event_set + event_test_and_clear (ppoll not included)",
        )
        d["protocol_costs"] = costs
        d["compiled_check"] = chk
        d["round_event_sets_per_1k"] = F((s, "round_event_sets"), "syscalls/1000 dispatches", what="poll-round loop, from counters")
        d["round_event_clears_per_1k"] = F((s, "round_event_clears"), "syscalls/1000 dispatches", what="poll-round loop, from counters")
        d["wakeup_p50"] = F(((s, "wake"), "p50"), "ns", what="cross-process wake-up of a sleeping owner (ping-pong RT/2)")
        d["wakeup_p99"] = F(((s, "wake"), "p99"), "ns")
        d["wakeup_polls"] = F((s, "wake_polls"), "aio_poll calls/wake-up", what="initiator's aio_poll rounds per ping-pong round trip (1 = slept once and woke with work)")
        d["wakeup_spurious"] = F((s, "wake_spurious"), "spurious wake-ups/wake-up", what="initiator's ppoll returns with the notifier readable and no progress")
        d["wakeup_p50_vs_eventfd_floor"] = ratio(d["wakeup_p50"], floors["eventfd_pingpong"], "eventfd_pingpong")
        d["wakeup_p50_vs_mp_event"] = ratio(d["wakeup_p50"], peers["mp_event"]["p50"], "mp_event")
        d["virtio_pps"] = F((s, "virtio_pps"), "packets/s")
        d["virtio_dispatches_per_s"] = F((s, "virtio_dispatches_per_s"), "dispatches/s")
        d["virtio_packets_per_dispatch"] = F((s, "virtio_packets_per_dispatch"), "packets/dispatch")
        d["virtio_event_sets_per_1k"] = F((s, "virtio_event_sets_per_1k"), "syscalls/1000 dispatches")
        d["virtio_event_clears_per_1k"] = F((s, "virtio_event_clears_per_1k"), "syscalls/1000 dispatches")
        d["virtio_wakeups_per_1k"] = F((s, "virtio_wakeups_per_1k"), "wakeups/1000 dispatches")
        d["pool_completions_per_s"] = F((s, "pool_completions_per_s"), "completions/s")
        d["pool_completions_per_dispatch"] = F((s, "pool_completions_per_dispatch"), "completions/dispatch")
        d["pool_event_sets_per_1k"] = F((s, "pool_event_sets_per_1k"), "syscalls/1000 dispatches")
        d["pool_event_clears_per_1k"] = F((s, "pool_event_clears_per_1k"), "syscalls/1000 dispatches")
        d["py_bh_schedule_ns"] = F((s, "py_bh_schedule"), "ns", what="ctx.bh_schedule(bh) from a Python loop (BH already scheduled)")
        d["py_raw_bh_schedule_ns"] = F((s, "py_raw_bh_schedule"), "ns", what="lib.aio_bh_schedule(c, bh) raw cffi call")
        d["py_empty_same_repeat_ns"] = F((s, "py_empty"), "ns", what="lib.aio_empty() measured right after, same module")
        d["py_bh_schedule_vs_cffi_empty"] = ratio(d["py_bh_schedule_ns"], d["py_empty_same_repeat_ns"], "cffi_empty_call (same module, same repeat)")
        out_s[s] = d

    if "selfpipe" in out_s:
        sp = out_s["selfpipe"]["virtio_dispatches_per_s"]
        for s, d in out_s.items():
            d["virtio_dispatch_rate_vs_selfpipe"] = ratio(d["virtio_dispatches_per_s"], sp, "selfpipe")
            d["virtio_pps_vs_selfpipe"] = ratio(d["virtio_pps"], out_s["selfpipe"]["virtio_pps"], "selfpipe")
    if "unconditional" in out_s and "unconditional-c" in out_s:
        out_s["unconditional"]["notify_vs_handwritten"] = ratio(
            out_s["unconditional"]["notify_ns"], out_s["unconditional-c"]["notify_ns"], "unconditional-c"
        )
        out_s["unconditional"]["notify_hook_vs_handwritten"] = ratio(
            out_s["unconditional"]["notify_hook_ns"], out_s["unconditional-c"]["notify_hook_ns"], "unconditional-c"
        )

    m = machine_info()
    m["loadavg_end"] = list(os.getloadavg())
    m["repeats"] = P["repeats"]
    m["quick"] = bool(quick)
    m["seconds"] = round(time.monotonic() - t_start, 1)
    res = dict(machine=m, floors=floors, peers=peers, strategies=out_s)
    _bench_polling.assemble(col, res, strategies, infos)
    res["targets"] = check_targets(res)
    return strip_private(res)


def _fmt_ratio(r):
    return "?" if r is None or r.get("value") is None else f"{r['value']:.2f}x"


def check_targets(res) -> list:
    """The issue's targets, met or missed, with by how much."""
    from . import _bench_polling
    T = []
    fl, pe, st = res["floors"], res["peers"], res["strategies"]

    def add(name, strategy, r, limit, cmp, note=""):
        v = None if r is None else r.get("value")
        met = None if v is None else (v <= limit if cmp == "<=" else v >= limit)
        T.append(dict(target=name, strategy=strategy, value=v, unit="x", limit=limit, cmp=cmp, met=met,
                      by=None if v is None else (v / limit if cmp == "<=" else limit / v), note=note))

    for s, d in st.items():
        add("bh_schedule from Python <= 1.5x empty cffi call", s, d["py_bh_schedule_vs_cffi_empty"], 1.5, "<=")
        add("aio_notify fast path <= 2x fence+load floor", s, d["notify_vs_fence_load"], 2.0, "<=",
            note=f"hook alone: {_fmt_ratio(d['notify_hook_vs_fence_load'])}")
        add("wake-up p50 <= 1.3x C eventfd ping-pong", s, d["wakeup_p50_vs_eventfd_floor"], 1.3, "<=")
        r = d["wakeup_p50_vs_mp_event"]
        inv = None if r.get("value") in (None, 0) else dict(value=1.0 / r["value"])
        add("wake-up p50 >= 3x lower than multiprocessing.Event", s, inv, 3.0, ">=")
        costs = d["protocol_costs"]
        skips = costs["notify_idle"]["event_set"] == 0
        if "virtio_dispatch_rate_vs_selfpipe" in d and skips and s != "selfpipe":
            add("virtio-net-tx dispatch rate >= 10x selfpipe", s, d["virtio_dispatch_rate_vs_selfpipe"], 10.0, ">=")
    _bench_polling.targets(res, add)
    if "unconditional" in st and "notify_vs_handwritten" in st["unconditional"]:
        add("generated unconditional aio_notify <= 1.2x hand-written (issue 3)", "unconditional",
            st["unconditional"]["notify_vs_handwritten"], 1.2, "<=")
    return T
