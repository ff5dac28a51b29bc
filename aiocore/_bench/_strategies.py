# Per-strategy measurements: cross-process wake-ups of sleeping owners
# (aio ping-pong), virtio-net-tx, thread-pool completions, and the C fast
# paths of each strategy's own module.
from __future__ import annotations

import os
import threading



from ._base import *  # noqa: F401,F403
from ._base import _fork, _Pinned, _reap, _Shared, _watchdog  # noqa: F401

# --- per strategy ----------------------------------------------------------------------


def aio_pingpong(strategy, n, timeout, **create_kw):
    """Two owners, each sleeping in aio_poll, wake each other through BHs:
    per-wake-up latencies (RT/2), ns.  create_kw: e.g. skeleton="polling"."""
    from .._context._aio import AioContext

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


def virtio_session(ctx, bh, sh, host, duration, timeout) -> float:
    """Fork the virtio-net-tx guest on the other CPU, run ``host()`` here (it
    sets stop after ``duration``; a watchdog does if it stalls), reap the
    guest: the seconds the host measured between its first and last packet."""
    lib = ctx._lib
    with _Pinned() as pin:
        pid = _fork(lambda: lib.aio_bench_virtio_guest(ctx._c, bh, sh.ptr), pin.child_cpu())
        wd = _watchdog(duration + timeout, sh, [ctx])
        host()
    wd.cancel()
    sh.stop[0] = 1
    _reap(pid, timeout)
    return (sh.stat(7) - sh.stat(6)) / 1e9


def virtio_tx(strategy, duration, timeout, **create_kw):
    """virtio-net-tx: a guest process fills a ring and kicks; the owner's tx
    BH drains bursts and reschedules itself.  Returns a dict of rates."""
    from .._context._aio import AioContext

    ctx = AioContext.create(strategy=strategy, n_bh=8, n_timers=1, **create_kw)
    try:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        c0 = ctx.counters()
        t = virtio_session(ctx, bh, sh, lambda: lib.aio_bench_virtio_host(
            ctx._c, bh, sh.ptr, VIRTIO_BURST, int(duration * 1e9)), duration, timeout)
        c1 = ctx.counters()
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
    from .._context._aio import AioContext

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
    from .._context._aio import AioContext

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
    from .._context._aio import AioContext

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
