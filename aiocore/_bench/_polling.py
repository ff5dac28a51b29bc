# The polling skeleton's benchmarks (issue 11 items 4-5), run by _all.run.
#
# Figures, each per repeat and interleaved with the rest of the run:
#   floors.shm_spin_pingpong   two processes on different CPUs bounce a
#                              cache line (C), per wake-up (RT/2): the floor
#                              of a wake-up of an owner that watches memory
#   wakeup_polling_p50/p99     the aio ping-pong of _strategies.aio_pingpong on
#                              polling-skeleton contexts: the owner is woken
#                              in its busy-poll phase (poll_max_ns = 1 ms so
#                              that it stays there between pings)
#   virtio_polling_*           virtio-net-tx on the polling skeleton: the
#                              virtqueue's ioeventfd has a native poll handler
#                              on the avail index, so aio_poll's poll phase
#                              sees the guest's packets and the guest does not
#                              kick while it polls (io_poll_begin/end)
#   virtio_polling_paired_*    the same host and the ring floor's host in one
#                              session, alternating 5 ms phases against one
#                              guest (aio_bench_virtio_paired): the ratio of
#                              their packets per running second is the virtio
#                              target's, taken on the same machine at the same
#                              moment (_virtio_steps: stalls); beside it the
#                              host with a bh_schedule kick per ring, the
#                              per-ring steps (stamped) and the aio_poll round
#   idle_cpu_fraction          CPU time / wall time of an owner whose only
#                              work is a timer every 1 ms, with QEMU's
#                              default poll_max_ns: poll_ns shrinks to 0
#                              after the first long block, so it sleeps
#   seed_polling               the seed question on the polling skeleton:
#                              notified (05e514b1) beside unconditional
#                              (21a03d17), owner awake (a BH pending at every
#                              aio_poll, so neither ppolls): the schedule +
#                              aio_poll round, its read() calls, and the cost
#                              of 05e514b1's xchg beside it
# Strategies that do not declare the polling skeleton are measured on it only
# where the owner is kept awake (seed_polling: their lost wake-up needs the
# owner to block) -- created with _undeclared_ok, never offered to users.
# (virtio-net-tx, where the owner does block when the ring runs dry, stalls
# on lost wake-ups for both: not measured.)
from __future__ import annotations

import mmap
import threading

from . import _virtio_steps
from ._base import VIRTIO_BURST, BenchError, _fork, _Pinned, _reap, _Shared, percentile, ratio
from ._strategies import aio_pingpong, virtio_session, virtio_tx, virtqueue_notifier

POLL_MAX_NS_WAKE = 1_000_000
IDLE_TICK_NS = 1_000_000
SEED = ("notified", "unconditional")
#: virtio_paired: phases of the ring floor and of the AioContext's host.
PAIRED_PHASE_NS = 5_000_000


def declares_polling(info) -> bool:
    return "polling" in tuple(info.skeletons)


def spin_pingpong(lib, ffi, n, timeout):
    """Cache-line ping-pong between two processes (C): latencies RT/2, ns."""
    mm = mmap.mmap(-1, 4096)
    buf = ffi.from_buffer(mm)
    ptr = ffi.cast("void *", buf)
    stop = ffi.cast("uint32_t *", buf)
    with _Pinned() as pin:
        pid = _fork(lambda: lib.aio_bench_spin_pingpong(ptr, 0, n, ffi.NULL, stop), pin.child_cpu())
        lat = ffi.new("int64_t[]", n)
        wd = threading.Timer(timeout, lambda: stop.__setitem__(0, 1))
        wd.daemon = True
        wd.start()
        done = lib.aio_bench_spin_pingpong(ptr, 1, n, lat, stop)
        wd.cancel()
    stop[0] = 1
    _reap(pid, timeout)
    return [lat[i] / 2.0 for i in range(n // 10, done)]


def virtio_ring_floor(duration, timeout):
    """The virtio-net-tx ring with no AioContext in the host: (packets/s,
    flushes that found packets per second)."""
    from .._context._aio import AioContext

    with AioContext.create(strategy="unconditional-c", n_bh=8, n_timers=1) as ctx:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)   # the guest's parting kick lands here
        sh = _Shared(ffi, lib)
        lib.aio_bench_virtio_no_kicks(sh.ptr)
        t = virtio_session(ctx, bh, sh, lambda: lib.aio_bench_virtio_ring_floor(
            ctx._c, sh.ptr, VIRTIO_BURST, int(duration * 1e9)), duration, timeout)
        if t <= 0 or sh.stat(1) == 0:
            raise BenchError("virtio ring floor made no progress")
        return sh.stat(1) / t, sh.stat(3) / t


def virtio_paired(strategy, phases, phase_ns, timeout, host="poll_handler"):
    """The ring floor's host and the polling skeleton's host against one
    guest, alternating phases (aio_bench_virtio_paired).  ``host``:
    "poll_handler" (the ioeventfd's poll handler on the avail index, kicks
    suppressed while polling) or "bh_kick" (a cross-process bh_schedule per
    ring, the poll phase watching the BHs only: the host before the poll
    handler).  Returns floor and host packets/s of running time, the median
    over phase pairs of host / floor (running time, and wall time), guest
    kicks per host dispatch, and the fraction of the session each side was
    off its CPU."""
    # A session counts only the phase pairs in which both sides ran for a
    # tenth of the phase (paired_ratios); on a machine loaded enough that no
    # pair of a session did, the session is run again, PAIRED_ATTEMPTS in all.
    for _ in range(PAIRED_ATTEMPTS):
        res = _virtio_paired_once(strategy, phases, phase_ns, timeout, host)
        if res is not None:
            return res
    raise BenchError(f"{strategy}: virtio paired session made no progress: in {PAIRED_ATTEMPTS} sessions no "
                     f"phase pair ran for {_virtio_steps.MIN_RUNNING:.0%} of its wall time on both sides "
                     f"(the machine is too loaded to measure it)")


#: Sessions virtio_paired runs before it gives up on a loaded machine.
PAIRED_ATTEMPTS = 3


def _virtio_paired_once(strategy, phases, phase_ns, timeout, host):
    """One paired session: virtio_paired's dict, or None if no phase pair counted."""
    from .._context._aio import AioContext

    with AioContext.create(strategy=strategy, n_bh=8, n_timers=1, skeleton="polling",
                           poll_max_ns=_virtio_steps.POLL_MAX_NS_VIRTIO) as ctx:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        out = ffi.new("int64_t[]", _virtio_steps.PHASE_N * phases)
        got = []
        with virtqueue_notifier(ctx, poll_handler=host == "poll_handler") as efd:
            virtio_session(ctx, bh, sh, lambda: got.append(lib.aio_bench_virtio_paired(
                ctx._c, bh, sh.ptr, efd, VIRTIO_BURST, phase_ns, phases, out)),
                phases * phase_ns / 1e9, timeout, efd=efd)
        r, frac, waits = _virtio_steps.session_ratios(ffi, lib, sh, out, got[0] if got else 0)
        if r is None:
            return None
        tick = lib.aio_bench_ns_per_tick()
        return dict(floor_pps=r["floor"] / tick * 1e9, host_pps=r["host"] / tick * 1e9,
                    ratio=r["ratio"], ratio_wall=r["ratio_wall"], pairs=r["pairs"],
                    kicks_per_dispatch=sh.stat(2) / max(1, sh.stat(3)), waits_per_1k_packets=waits,
                    guest_stalled=frac[0], host_stalled=frac[1])


def idle_cpu(strategy, duration):
    """(fraction of one CPU, poll_ns at the end, shrinks) of an idle owner."""
    from .._context._aio import AioContext

    with AioContext.create(strategy=strategy, n_bh=8, n_timers=2, skeleton="polling") as ctx:
        t = ctx.timer_new(lambda: None)
        out = ctx._ffi.new("int64_t[1]")
        # Warm-up: let poll_ns settle (one long block shrinks it).
        ctx._lib.aio_bench_idle(ctx._c, t, IDLE_TICK_NS, 5 * IDLE_TICK_NS, out)
        frac = ctx._lib.aio_bench_idle(ctx._c, t, IDLE_TICK_NS, int(duration * 1e9), out)
        return frac, ctx.poll_state().poll_ns, ctx.counters().poll_shrinks


def seed_round(strategy, n):
    """schedule + blocking aio_poll on the polling skeleton, owner awake: ns."""
    from .._context._aio import AioContext

    with AioContext.create(strategy=strategy, n_bh=8, n_timers=1, skeleton="polling",
                           _undeclared_ok=True) as ctx:
        bh = ctx.bh_new(lambda: None)
        best = min(ctx._lib.aio_bench_poll_round(ctx._c, bh, 1, max(200, n // 5)) for _ in range(5))
        c = ctx.counters()
        return best, c.event_clear_calls / max(1, c.polls), c.polls_no_syscall / max(1, c.polls)


def measure_repeat(strategies, infos, P, col, say, clib, cffi_):
    """One repeat of every polling figure (called by _bench.run)."""
    say("polling: shm_spin_pingpong")
    xs = spin_pingpong(clib, cffi_, P["n_pingpong"] * 4, P["timeout"])
    col.add(("floor_spin", "p50"), percentile(xs, 50))
    col.add(("floor_spin", "p99"), percentile(xs, 99))
    say("polling: virtio_ring_floor")
    pps, flushes = virtio_ring_floor(P["duration"], P["timeout"])
    col.add(("floor_ring", "pps"), pps)
    col.add(("floor_ring", "flushes"), flushes)
    for s in strategies:
        info = infos[s][0]
        if not declares_polling(info):
            continue
        say(f"polling: {s}")
        lat, _ = aio_pingpong(s, P["n_pingpong"], P["timeout"], skeleton="polling",
                                poll_max_ns=POLL_MAX_NS_WAKE)
        col.add(((s, "wake_polling"), "p50"), percentile(lat, 50))
        col.add(((s, "wake_polling"), "p99"), percentile(lat, 99))
        v = virtio_tx(s, P["duration"], P["timeout"], skeleton="polling",
                      poll_max_ns=_virtio_steps.POLL_MAX_NS_VIRTIO)
        for k, x in v.items():
            col.add((s, "virtio_polling_" + k), x)
        vp = virtio_paired(s, P["paired_phases"], PAIRED_PHASE_NS, P["timeout"])
        col.add((s, "vp_floor"), vp["floor_pps"])
        col.add((s, "vp_host"), vp["host_pps"])
        col.add((s, "vp_ratio"), vp["ratio"])
        col.add((s, "vp_ratio_wall"), vp["ratio_wall"])
        col.add((s, "vp_kicks"), vp["kicks_per_dispatch"])
        col.add((s, "vp_stalled"), max(vp["guest_stalled"] or 0, vp["host_stalled"] or 0))
        col.add((s, "vp_pairs"), vp["pairs"])
        col.add((s, "vp_waits"), vp["waits_per_1k_packets"])
        vk = virtio_paired(s, P["paired_phases"] // 2, PAIRED_PHASE_NS, P["timeout"], host="bh_kick")
        col.add((s, "vp_bh_kick_ratio"), vk["ratio"])
        col.add((s, "vp_bh_kick_kicks"), vk["kicks_per_dispatch"])
        for host in _virtio_steps.HOSTS:
            st = _virtio_steps.virtio_steps(s, host, timeout=P["timeout"])
            for side in ("floor", "host"):
                for step, v in st[side].items():
                    col.add((s, "steps", host, side, step), v)
            col.add((s, "steps", host, "ratio"), st["ratio"])
        col.add((s, "word_round"), _virtio_steps.word_round(s, P["n_round"]))
        frac, _, _ = idle_cpu(s, max(0.1, P["duration"]))
        col.add((s, "idle_cpu"), frac)
    say("polling: seed question")
    for s in SEED:
        ns, clears, nosys = seed_round(s, P["n_round"])
        col.add(("seed_polling", s, "round"), ns)
        col.add(("seed_polling", s, "clears"), clears)
        col.add(("seed_polling", s, "nosys"), nosys)
    col.add(("seed_polling", "xchg"), clib.aio_bench_xchg(max(1000, P["n_fence"] // 5)))


def assemble(col, res, strategies, infos):
    """Add the polling figures to res (floors, strategies, seed_polling)."""
    F = col.fig
    fl = res["floors"]
    fl["shm_spin_pingpong"] = F(("floor_spin", "p50"), "ns",
                                what="two processes on different CPUs bounce a cache line (C), per wake-up (RT/2), p50")
    fl["shm_spin_pingpong_p99"] = F(("floor_spin", "p99"), "ns", what="same, p99")
    fl["virtio_ring_floor_pps"] = F(("floor_ring", "pps"), "packets/s",
                                    what="the virtio-net-tx guest against a host with no AioContext that spins on the ring: "
                                         "the most packets/s any skeleton can carry")
    fl["virtio_ring_floor_flushes_per_s"] = F(("floor_ring", "flushes"), "flushes/s",
                                              what="same run: flushes that found packets (a host faster than the guest "
                                                   "finds full bursts, so a higher dispatch rate means smaller batches)")
    st = res["strategies"]
    sp = st.get("selfpipe", {}).get("virtio_dispatches_per_s")
    for s in strategies:
        d = st[s]
        d["skeletons"] = list(infos[s][0].skeletons)
        if not declares_polling(infos[s][0]):
            continue
        d["wakeup_polling_p50"] = F(((s, "wake_polling"), "p50"), "ns",
                                    what=f"ping-pong of two polling-skeleton owners (poll_max_ns={POLL_MAX_NS_WAKE}), woken in the busy-poll phase, RT/2")
        d["wakeup_polling_p99"] = F(((s, "wake_polling"), "p99"), "ns")
        d["wakeup_polling_p50_vs_spin"] = ratio(d["wakeup_polling_p50"], fl["shm_spin_pingpong"], "shm_spin_pingpong")
        d["wakeup_polling_p50_vs_eventfd_floor"] = ratio(d["wakeup_polling_p50"], fl["eventfd_pingpong"], "eventfd_pingpong")
        d["virtio_polling_dispatches_per_s"] = F((s, "virtio_polling_dispatches_per_s"), "dispatches/s", what="virtio-net-tx on the polling skeleton")
        d["virtio_polling_pps"] = F((s, "virtio_polling_pps"), "packets/s")
        d["virtio_polling_pps_vs_ring_floor"] = ratio(d["virtio_polling_pps"], fl["virtio_ring_floor_pps"], "virtio_ring_floor_pps")
        d["virtio_polling_no_syscall_fraction"] = F((s, "virtio_polling_no_syscall_polls_fraction"), "fraction of aio_polls")
        d["virtio_ring_floor_paired_pps"] = F((s, "vp_floor"), "packets/s",
                                              what=f"the ring floor's host, in {PAIRED_PHASE_NS // 1000000} ms phases alternating "
                                                   "with this strategy's polling host against one guest, per second of running time "
                                                   "(time either side was off its CPU taken out of every phase alike)")
        d["virtio_polling_paired_pps"] = F((s, "vp_host"), "packets/s",
                                           what="the polling host's phases of the same session (its ioeventfd's poll handler on "
                                                "the avail index), per second of running time")
        d["virtio_polling_pps_vs_ring_floor_paired"] = F((s, "vp_ratio"), "x", vs="virtio_ring_floor_paired_pps",
                                                         what="median over the session's phase pairs of host / floor packets per "
                                                              "running second")
        d["virtio_polling_pps_vs_ring_floor_paired_wall"] = F((s, "vp_ratio_wall"), "x", vs="virtio_ring_floor_paired_pps",
                                                              what="same, per wall-clock second (stalls left in)")
        d["virtio_polling_paired_stalled"] = F((s, "vp_stalled"), "fraction",
                                               what="of the paired session's time, the larger share one side was off its CPU "
                                                    "(gaps > 100 us in its own loop that were no wait of aio_poll's)")
        d["virtio_polling_paired_pairs"] = F((s, "vp_pairs"), "phase pairs",
                                             what="phase pairs of the session counted (each phase ran for at least "
                                                  f"{_virtio_steps.MIN_RUNNING:.0%} of its wall time)")
        d["virtio_polling_paired_waits_per_1k_packets"] = F((s, "vp_waits"), "waits/1000 packets",
                                                            what="the polling host's aio_polls that slept in a system call")
        f_, h_ = d["virtio_ring_floor_paired_pps"]["value"], d["virtio_polling_paired_pps"]["value"]
        if f_ and h_:
            x = VIRTIO_BURST * (1 / h_ - 1 / f_) * 1e9
            sp50 = fl["shm_spin_pingpong"]["value"]
            d["virtio_polling_excess_per_ring"] = dict(
                value=x, unit="ns", vs_spin=None if not sp50 else x / sp50,
                what=f"time the polling host adds per {VIRTIO_BURST}-packet ring over the paired floor "
                     "(256 x (1/host - 1/floor) packets/s); vs_spin: in cache-line transfers (shm_spin_pingpong)")
        d["virtio_polling_kicks_per_dispatch"] = F((s, "vp_kicks"), "kicks/dispatch",
                                                   what="guest kicks (ioeventfd writes) per handler run in the paired session: "
                                                        "none while aio_poll polls (the avail word's started)")
        d["virtio_polling_bh_kick_vs_ring_floor_paired"] = F(
            (s, "vp_bh_kick_ratio"), "x", vs="its own paired floor",
            what="the same paired ratio for the host without the poll handler: the guest kicks a cross-process "
                 "bh_schedule per ring and the poll phase watches the BHs (the bench's polling host before issue 24)")
        d["virtio_polling_bh_kick_kicks_per_dispatch"] = F((s, "vp_bh_kick_kicks"), "kicks/dispatch")
        d["virtio_polling_word_round_ns"] = F((s, "word_round"), "ns",
                                              what="one process, no cache miss: post to the avail word + a blocking aio_poll "
                                                   "that finds it in the poll phase and dispatches the handler -- the "
                                                   "AioContext's instructions per batch")
        steps = dict(what="median ns per step of a 256-packet ring, stamped (TSC) in one paired session per host: "
                          "ring = guest_sees_room + guest_fill + host_sees_ring + host_flush in lock step; "
                          "to_aio_poll_return: the avail index published -> the host's aio_poll returned; "
                          "rings: how many full rings the medians are of",
                     unit="ns")
        for host in _virtio_steps.HOSTS:
            steps[host] = {side: {step: F((s, "steps", host, side, step), "ns")["value"]
                                  for step in _virtio_steps.STEPS + ("rings",)}
                           for side in ("floor", "host")}
            steps[host]["stamped_ratio"] = F((s, "steps", host, "ratio"), "x")["value"]
        d["virtio_polling_steps"] = steps
        if sp:
            d["virtio_polling_dispatch_rate_vs_selfpipe"] = ratio(d["virtio_polling_dispatches_per_s"], sp, "selfpipe (2015 skeleton)")
        d["idle_cpu_fraction"] = F((s, "idle_cpu"), "CPU fraction",
                                   what=f"CPU time per second of an owner idle but for a timer every {IDLE_TICK_NS // 1000} us, poll_max_ns default (CLOCK_THREAD_CPUTIME_ID)")
    seed = dict(what="polling skeleton, owner awake: schedule + blocking aio_poll with the BH pending (no ppoll); "
                     "notified (05e514b1) beside unconditional (21a03d17)")
    for s in SEED:
        seed[s] = dict(
            round_ns=F(("seed_polling", s, "round"), "ns"),
            event_clear_calls_per_poll=F(("seed_polling", s, "clears"), "read()/aio_poll"),
            no_syscall_polls=F(("seed_polling", s, "nosys"), "fraction"),
        )
    seed["xchg_ns"] = F(("seed_polling", "xchg"), "ns", what="one seq_cst xchg, C loop (the barrier 05e514b1 adds to each accept)")
    n, u = seed["notified"]["round_ns"], seed["unconditional"]["round_ns"]
    seed["notified_round_vs_unconditional"] = ratio(n, u, "unconditional round")
    if seed["xchg_ns"].get("value") and n.get("value"):
        seed["barrier_fraction_of_notified_round"] = dict(
            value=seed["xchg_ns"]["value"] / n["value"], unit="fraction",
            what="xchg(notified) in aio_notify_accept (the only 05e514b1 barrier on this path: notify_me "
                 "is never raised with work pending, so notify's atomic_mb_set does not run) / round")
    res["seed_polling"] = seed


def targets(res, add):
    """The polling targets (issue 11 item 5), through _bench.check_targets's add."""
    st = res["strategies"]
    for s, d in st.items():
        if "wakeup_polling_p50" not in d:
            continue
        add("polling wake-up p50 <= 2x shm_spin_pingpong", s, d["wakeup_polling_p50_vs_spin"], 2.0, "<=")
        r = d["wakeup_polling_p50_vs_eventfd_floor"]
        inv = None if r.get("value") in (None, 0) else dict(value=1.0 / r["value"])
        add("polling wake-up p50 >= 20x below eventfd ping-pong", s, inv, 20.0, ">=")
        rf = d.get("virtio_polling_pps_vs_ring_floor", {}).get("value")
        ex = d.get("virtio_polling_excess_per_ring", {})
        note = [] if ex.get("value") is None else [
            f"{ex['value']:+.0f} ns per ring" + ("" if ex.get("vs_spin") is None else
                                                f" ({ex['vs_spin']:+.1f} cache-line transfers)")]
        for key, say in (("virtio_polling_pps_vs_ring_floor_paired_wall", "{:.2f}x per wall second"),
                         ("virtio_polling_paired_stalled", "{:.0%} stalled"),
                         ("virtio_polling_bh_kick_vs_ring_floor_paired", "{:.2f}x with a bh_schedule kick per ring")):
            v = d.get(key, {}).get("value")
            if v is not None:
                note.append(say.format(v))
        if rf is not None:
            note.append(f"{rf:.2f}x the separate virtio_ring_floor_pps")
        add("virtio-net-tx on polling >= 0.9x the ring floor (paired phases)", s,
            d["virtio_polling_pps_vs_ring_floor_paired"], 0.9, ">=", note="; ".join(note))
        add("idle owner <= 5% of one CPU (poll_max_ns set)", s, d["idle_cpu_fraction"], 0.05, "<=")
    base = _baseline()
    for s, d in st.items():
        b = base.get(s)
        r = d.get("poll_round_vs_ppoll")
        if b and r and r.get("value"):
            add("2015 skeleton poll round no worse than before polling (<= 1.1x baseline)", s,
                dict(value=r["value"] / b), 1.1, "<=",
                note=f"poll_round/ppoll_zero_timeout {r['value']:.2f} vs {b:.2f} recorded on main 7ca19aa")


def _baseline() -> dict:
    """poll_round_ns / ppoll_zero_timeout per strategy on main before the
    polling skeleton (aiocore/_bench/_baseline.py, with how it was measured)."""
    from ._baseline import POLL_ROUND_VS_PPOLL

    return POLL_ROUND_VS_PPOLL
