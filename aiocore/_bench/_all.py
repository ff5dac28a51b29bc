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
#
# Modules: _base (parameters, figures, processes, floors), _costs (fences
# and locked ops, description vs compiled), _strategies (per strategy),
# _peers, _polling (the polling skeleton); this module runs them and checks
# the targets.  Every name stays reachable as _all.X.
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
from ._base import *  # noqa: F401,F403
from ._base import _fork, _Pinned, _reap, _Shared, _watchdog, _loop_time  # noqa: F401
from ._costs import *  # noqa: F401,F403
from ._peers import *  # noqa: F401,F403
from ._strategies import *  # noqa: F401,F403
from . import _polling

# --- the run ---------------------------------------------------------------------------


def run(strategies=None, quick=False, progress=None, repeats=None) -> dict:
    """Run everything; returns the JSON-able result (figures with units).
    ``repeats`` overrides the number of repeats of --quick or the full run."""
    from .._compiler._load import load_pycall, load_strategy
    from .._compiler._plugins import get

    P = dict(QUICK if quick else FULL)
    if repeats is not None:
        if repeats < 1:
            raise BenchError(f"repeats must be at least 1, not {repeats}")
        P["repeats"] = repeats
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

    from .._context._aio import AioContext

    loads = []
    for rep in range(P["repeats"]):
        loads.append([round(x, 2) for x in os.getloadavg()])
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
            pc = py_call_costs(dict(e=(clib.aio_empty, ()), e2=(clib.aio_empty2, (fctx._c, 0)),
                                    b=(load_pycall().empty, ())), P["n_py"])
            col.add(("floor", "cffi_empty"), pc["e"])
            col.add(("floor", "cffi_empty2"), pc["e2"])
            col.add(("floor", "bound_empty"), pc["b"])
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
            ws = wake_steps(s, len(WAKE_STEPS) * P["n_pingpong"], P["timeout"])
            lat_add((s, "wake"), ws["aio"])
            lat_add((s, "wake_efd"), ws["eventfd"])
            lat_add((s, "wake_sys"), ws["syscalls"])
            col.add((s, "wake_vs_efd"), percentile(ws["aio"], 50) / percentile(ws["eventfd"], 50))
            col.add((s, "wake_polls"), ws["polls_per_wakeup"])
            col.add((s, "wake_spurious"), ws["spurious_per_wakeup"])
            v = virtio_tx(s, P["duration"], P["timeout"])
            for k, x in v.items():
                col.add((s, "virtio_" + k), x)
            tp = thread_pool(s, P["duration"], P["timeout"])
            for k, x in tp.items():
                col.add((s, "pool_" + k), x)
        _polling.measure_repeat(strategies, infos, P, col, say, clib, cffi_)

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
        "bound_call_empty": F(("floor", "bound_empty"), "ns",
                              what="aiocore._pycall.empty() from a Python loop: the call floor of ctx.bh_schedule's kind of built-in"),
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
        d["wakeup_p50"] = F(((s, "wake"), "p50"), "ns", what="cross-process wake-up of a sleeping owner (ping-pong RT/2; "
                                                              "round trips interleaved with its floors, aio_bench_wake.c)")
        d["wakeup_p99"] = F(((s, "wake"), "p99"), "ns")
        d["wakeup_eventfd_paired_p50"] = F(((s, "wake_efd"), "p50"), "ns",
                                           what="the C eventfd ping-pong, round trips interleaved with this strategy's (same processes)")
        d["wakeup_syscalls_paired_p50"] = F(((s, "wake_sys"), "p50"), "ns",
                                            what="write + ppoll(eventfd, rescue fd) + read: a sleeping aio_poll's system calls without the protocol, interleaved")
        d["wakeup_p50_vs_eventfd_paired"] = F((s, "wake_vs_efd"), "x", vs="wakeup_eventfd_paired_p50",
                                              what="wake-up p50 / the eventfd ping-pong p50 of the same session, median over repeats")
        e, y, a = (d[k]["value"] for k in ("wakeup_eventfd_paired_p50", "wakeup_syscalls_paired_p50", "wakeup_p50"))
        d["wakeup_steps"] = dict(
            what="the wake-up's excess over the eventfd ping-pong, per step (medians of the interleaved session)",
            unit="ns", eventfd=e,
            syscalls_extra=None if None in (e, y) else y - e,
            protocol_extra=None if None in (y, a) else a - y,
        )
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
    m["loadavg_per_repeat"] = loads
    m["repeats"] = P["repeats"]
    m["quick"] = bool(quick)
    m["seconds"] = round(time.monotonic() - t_start, 1)
    res = dict(machine=m, floors=floors, peers=peers, strategies=out_s)
    _polling.assemble(col, res, strategies, infos)
    res["targets"] = check_targets(res)
    return strip_private(res)


def _fmt_ratio(r):
    return "?" if r is None or r.get("value") is None else f"{r['value']:.2f}x"


def check_targets(res) -> list:
    """The issue's targets, met or missed, with by how much."""
    T = []
    fl, pe, st = res["floors"], res["peers"], res["strategies"]

    def add(name, strategy, r, limit, cmp, note=""):
        v = None if r is None else r.get("value")
        met = None if v is None else (v <= limit if cmp == "<=" else v >= limit)
        row = dict(target=name, strategy=strategy, value=v, unit="x", limit=limit, cmp=cmp, met=met,
                   by=None if v is None else (v / limit if cmp == "<=" else limit / v), note=note)
        if strategy == PEER_BASELINE:
            # asyncio's self-pipe writes on every schedule and reads on every
            # aio_poll by design: the peer the others are measured against.
            row.update(met=None, by=None, baseline=True,
                       note=(note + "; " if note else "") + "peer baseline (asyncio's self-pipe): reported, not judged")
        T.append(row)

    for s, d in st.items():
        add("bh_schedule from Python <= 1.5x empty cffi call", s, d["py_bh_schedule_vs_cffi_empty"], 1.5, "<=")
        add("aio_notify fast path <= 2x fence+load floor", s, d["notify_vs_fence_load"], 2.0, "<=",
            note=f"hook alone: {_fmt_ratio(d['notify_hook_vs_fence_load'])}")
        w = d["wakeup_steps"]
        add("wake-up p50 <= 1.3x C eventfd ping-pong (interleaved)", s, d["wakeup_p50_vs_eventfd_paired"], 1.3, "<=",
            note="" if None in (w["syscalls_extra"], w["protocol_extra"]) else
            f"+{w['syscalls_extra']:.0f} ns ppoll+read, +{w['protocol_extra']:.0f} ns protocol; "
            f"{_fmt_ratio(d['wakeup_p50_vs_eventfd_floor'])} the separate floor")
        r = d["wakeup_p50_vs_mp_event"]
        inv = None if r.get("value") in (None, 0) else dict(value=1.0 / r["value"])
        add("wake-up p50 >= 3x lower than multiprocessing.Event", s, inv, 3.0, ">=")
    _polling.targets(res, add)
    if "unconditional" in st and "notify_vs_handwritten" in st["unconditional"]:
        add("generated unconditional aio_notify <= 1.2x hand-written (issue 3)", "unconditional",
            st["unconditional"]["notify_vs_handwritten"], 1.2, "<=")
    return T
