# Per-strategy measurements: cross-process wake-ups of sleeping owners
# (aio ping-pong, and wake_steps: the same interleaved with its floors),
# virtio-net-tx, thread-pool completions, and the C fast paths of each
# strategy's own module.
from __future__ import annotations

import os
import threading



from ._base import *  # noqa: F401,F403
from ._base import _fork, _Pinned, _reap, _Shared, _watchdog  # noqa: F401

# --- per strategy ----------------------------------------------------------------------


def _owner_pair(strategy, n, timeout, loop, wakers=(), **create_kw):
    """Two owners on two CPUs -- this process and a forked one -- each with a
    BH the other schedules.  ``loop(lib, own, peer, peer_bh, initiator, lat,
    stop)`` is both sides' C ping-pong.  Returns (round-trip times in ns, the
    counters of ours before and after, round trips done).  ``wakers``: more
    objects whose rescue() the watchdog calls (e.g. to write an eventfd)."""
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
            loop(lib, b._c, a._c, bh_a, 0, ffi.NULL, sh.stop)
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
            wd = _watchdog(timeout, sh, [a, b, *wakers])
            os.write(w2, b"g")
            os.close(w2)
            c0 = a.counters()
            done = loop(lib, a._c, b._c, int(bh_b), 1, lat, sh.stop)
            c1 = a.counters()
            pin.__exit__()
            wd.cancel()
            lost = sh.stop[0] != 0 and done < n
            sh.stop[0] = 1
            b.rescue()
            for x in wakers:
                x.rescue()
            _reap(pid, timeout)
        finally:
            b.close()
        if lost:
            raise BenchError(f"{strategy}: ping-pong stalled after {done}/{n} round trips (lost wake-up?)")
        return [lat[i] for i in range(done)], c0, c1, done
    finally:
        a.close()


def aio_pingpong(strategy, n, timeout, **create_kw):
    """Two owners, each sleeping in aio_poll, wake each other through BHs:
    per-wake-up latencies (RT/2), ns.  create_kw: e.g. skeleton="polling"."""

    def loop(lib, own, peer, peer_bh, initiator, lat, stop):
        return lib.aio_bench_aio_pingpong(own, peer, peer_bh, initiator, n, lat, stop)

    rt, c0, c1, done = _owner_pair(strategy, n, timeout, loop, **create_kw)
    rounds = max(1, done)
    stats = dict(
        polls_per_wakeup=(c1.polls - c0.polls) / rounds,
        spurious_per_wakeup=(c1.spurious_wakeups - c0.spurious_wakeups) / rounds,
    )
    return [x / 2.0 for x in rt[n // 10:]], stats


#: The kinds of round trip of wake_steps (aio_bench_wake.c), in its order.
WAKE_STEPS = ("eventfd", "syscalls", "aio")


class _EventfdWaker:
    """Lets the watchdog unblock a read() or ppoll() on an eventfd."""

    def __init__(self, fd):
        self.fd = fd

    def rescue(self):
        os.eventfd_write(self.fd, 1)


def wake_steps(strategy, n, timeout):
    """The wake-up of a sleeping owner and its floors, interleaved round trip
    by round trip in one pair of processes (aio_bench_wake.c): {kind:
    per-wake-up latencies (RT/2), ns} for the kinds of WAKE_STEPS, plus the
    aio kind's aio_poll calls and spurious wake-ups per wake-up."""
    ea = os.eventfd(0, os.EFD_CLOEXEC)
    eb = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        def loop(lib, own, peer, peer_bh, initiator, lat, stop):
            mine, theirs = (ea, eb) if initiator else (eb, ea)
            return lib.aio_bench_wake_steps(own, peer, peer_bh, mine, theirs, initiator, n, lat, stop)

        rt, c0, c1, done = _owner_pair(strategy, n, timeout, loop,
                                       wakers=(_EventfdWaker(ea), _EventfdWaker(eb)))
    finally:
        os.close(ea)
        os.close(eb)
    k = len(WAKE_STEPS)
    out = {name: [rt[i] / 2.0 for i in range(n // 10, done) if i % k == j]
           for j, name in enumerate(WAKE_STEPS)}
    rounds = max(1, (done + k - 1 - WAKE_STEPS.index("aio")) // k)
    out["polls_per_wakeup"] = (c1.polls - c0.polls) / rounds
    out["spurious_per_wakeup"] = (c1.spurious_wakeups - c0.spurious_wakeups) / rounds
    return out


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
        # From Python: ctx.bh_schedule, the built-in bound to this context
        # (BH already scheduled: the xchg finds 1, as most schedules of a
        # busy BH do), the raw cffi call of the same C function, and the
        # empty cffi call the target is measured against.
        ctx.bh_schedule(bh)
        pc = py_call_costs(
            dict(bound=(ctx.bh_schedule, (bh,)), raw=(lib.aio_bh_schedule, (c, bh)),
                 empty=(lib.aio_empty, ())),
            P["n_py"],
        )
        col.add((key, "py_bh_schedule"), pc["bound"])
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
