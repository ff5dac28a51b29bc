# Where the polling host's time goes, ring by ring: virtio-net-tx on the
# polling skeleton beside the ring floor, per step (issue 24 item 3).
#
# With burst == ring size the guest and the host run in lock step: the guest
# fills the whole ring and publishes the avail index, the host flushes it and
# publishes the used index, and neither can start its next ring before the
# other is done.  A ring's time is therefore the sum of four steps, each
# stamped (TSC, lfence on both sides) by the side that runs it
# (aio_bench_virtio_steps, aio_bench_virtio.c):
#
#   guest_sees_room     the host published the used index -> the guest saw room
#   guest_fill          the guest wrote 256 slots and published the avail index
#   host_sees_ring      published -> the host's flush began (the floor spins on
#                       the avail index: its detection is inside its flush;
#                       the AioContext's host detects in aio_poll's poll phase,
#                       then returns through poll_end/accept/dispatch)
#   host_flush          the host read 256 slots and published the used index
#
# and, for the AioContext's host, published -> its aio_poll returned.  Even
# phases are the floor, odd ones the host, in one session against one guest
# (as aio_bench_virtio_paired), so both see the same machine.  Two hosts can
# be stamped: the poll handler on the avail index (the bench's polling host)
# and the kick per ring (efd -1: the tx BH the guest's cross-process
# bh_schedule runs, as the polling host was before the poll handler).
#
# The stamps cost: the host phases take one more (the aio_poll return), ~10 ns
# a ring, so the stamped ratio is a little below the unstamped paired one.
#
# This module also holds the paired sessions' accounting of stalls (used by
# _polling.virtio_paired too): each side logs the gaps in its own loop longer
# than 100 us that were not an aio_poll's wait -- time it was off its CPU,
# during which the lock-stepped ring stops -- and every phase, floor and
# host alike, is measured over its running time: its ticks less the union of
# both logs.  On this shared machine a 5 ms phase often holds a millisecond
# of someone else's time slice; the wall-time ratio is reported beside it.
from __future__ import annotations

import mmap
import statistics

from ._base import VIRTIO_BURST, BenchError, _Shared
from ._strategies import virtio_session, virtqueue_notifier

#: poll_max_ns of the virtio hosts on the polling skeleton: an iothread set
#: up for throughput (QEMU's poll-max-ns is per iothread).  With QEMU's
#: default, 32.8 us, one stall of the guest longer than that (another
#: process's time slice on its CPU) ends the poll phase, adjust_polling_time
#: resets poll_ns to 0, and polling resumes only after a kicked wake-up
#: shorter than 32.8 us -- which under load can take many rings.
POLL_MAX_NS_VIRTIO = 1_000_000
#: aio_bench_virtio.c's record layouts: stamps per guest fill and host
#: flush, and the paired session's out[] per phase (BENCH_PHASE_N).
G_N, H_N, PHASE_N = 4, 6, 6
STEPS = ("ring", "guest_sees_room", "guest_fill", "host_sees_ring", "host_flush",
         "to_aio_poll_return", "guest_kick")
#: The two hosts that can be stamped.
HOSTS = ("poll_handler", "bh_kick")


def running_phases(phases, stalls):
    """Per phase (packets, ticks running, ticks of wall time): each phase's
    ticks less those in the union of the stall intervals (either side off
    its CPU, aio_bench_virtio.c's bench_tick) that fall inside it."""
    merged = []
    for a, b in sorted(stalls):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for packets, t0, t1 in phases:
        off = sum(max(0, min(b, t1) - max(a, t0)) for a, b in merged)
        out.append((packets, t1 - t0 - off, t1 - t0))
    return out


#: A phase pair counts only if each phase ran for at least this share of its
#: wall time: in one that ran for 50 us of 10 ms, the ring's first laps after
#: a stall are all there is, and its ratio is noise either way.
MIN_RUNNING = 0.1


def paired_ratios(phases, min_running=MIN_RUNNING):
    """From running_phases' list (floor, host, floor, ...): the median over
    phase pairs of host / floor packets per running tick and per wall tick,
    both sides' packets per running tick overall, and the pairs counted
    (both phases ran >= min_running of their wall time, the floor moved
    packets); None if no pair counts."""
    pairs = [(f, h) for f, h in zip(phases[0::2], phases[1::2])
             if f[0] > 0 and f[2] > 0 and h[2] > 0
             and f[1] >= min_running * f[2] and h[1] >= min_running * h[2]]
    if not pairs:
        return None
    return dict(
        ratio=statistics.median((h[0] / h[1]) / (f[0] / f[1]) for f, h in pairs),
        ratio_wall=statistics.median((h[0] / h[2]) / (f[0] / f[2]) for f, h in pairs),
        floor=sum(f[0] for f, _ in pairs) / sum(f[1] for f, _ in pairs),
        host=sum(h[0] for _, h in pairs) / sum(h[1] for _, h in pairs),
        pairs=len(pairs),
    )


def stall_logs(ffi, lib, sh, cap=4096):
    """Both sides' stall logs of a session: [[(start, end) ticks], ...] for
    the guest (0) and the host (1)."""
    buf = ffi.new("int64_t[]", 2 * cap)
    logs = []
    for side in (0, 1):
        n = min(lib.aio_bench_stalls(sh.ptr, side, buf, cap), cap)
        logs.append([(buf[2 * i], buf[2 * i + 1]) for i in range(n)])
    return logs


def session_ratios(ffi, lib, sh, out, k):
    """A paired session's phases (out: PHASE_N per phase, k run) with the
    stall logs taken out: (paired_ratios, [fraction of the session's ticks
    the guest, the host was off its CPU], the host's waits in a system call
    per 1000 packets of its phases)."""
    logs = stall_logs(ffi, lib, sh)
    o = [out[PHASE_N * i:PHASE_N * (i + 1)] for i in range(k)]
    phases = [(x[0], x[2], x[3]) for x in o]
    frac = [None, None]
    if k:
        t0, t1 = o[0][2], o[-1][3]
        for side in (0, 1):
            off = sum(max(0, min(b, t1) - max(a, t0)) for a, b in logs[side])
            frac[side] = off / (t1 - t0) if t1 > t0 else None
    host = o[1::2]
    waits = 1000.0 * sum(x[4] for x in host) / max(1, sum(x[0] for x in host))
    return paired_ratios(running_phases(phases, logs[0] + logs[1])), frac, waits


def stamped_session(strategy, host="poll_handler", phases=8, phase_ns=4_000_000, cap=120_000,
                    timeout=20.0):
    """One stamped paired session on the polling skeleton: (guest records,
    host records, ns per tick, paired_ratios of the session)."""
    from .._context._aio import AioContext

    if host not in HOSTS:
        raise BenchError(f"unknown virtio host {host!r} (one of {', '.join(HOSTS)})")
    with AioContext.create(strategy=strategy, n_bh=8, n_timers=1, skeleton="polling",
                           poll_max_ns=POLL_MAX_NS_VIRTIO) as ctx:
        ffi, lib = ctx._ffi, ctx._lib
        bh = ctx.bh_new(lambda: None)
        sh = _Shared(ffi, lib)
        smm = mmap.mmap(-1, int(lib.aio_bench_stamps_size(cap)))
        try:
            sbuf = ffi.from_buffer(smm)
            sp = ffi.cast("void *", sbuf)
            lib.aio_bench_stamps_init(sp, cap)
            out = ffi.new("int64_t[]", PHASE_N * phases)
            got = []
            with virtqueue_notifier(ctx, poll_handler=host == "poll_handler") as e:
                virtio_session(ctx, bh, sh, lambda: got.append(lib.aio_bench_virtio_steps(
                    ctx._c, bh, sh.ptr, e, VIRTIO_BURST, phase_ns, phases, out, sp)),
                    phases * phase_ns / 1e9, timeout, efd=e,
                    guest=lambda: lib.aio_bench_virtio_guest_stamped(ctx._c, bh, sh.ptr, e, sp))
            n = ffi.new("int64_t[2]")
            lib.aio_bench_stamps_count(sp, n)
            g = ffi.unpack(lib.aio_bench_stamps_guest(sp), G_N * n[0])
            h = ffi.unpack(lib.aio_bench_stamps_host(sp), H_N * n[1])
            ratios, _, _ = session_ratios(ffi, lib, sh, out, got[0] if got else 0)
            npt = lib.aio_bench_ns_per_tick()
            del sbuf, sp
        finally:
            smm.close()
    G = [g[i:i + G_N] for i in range(0, len(g), G_N)]
    H = [h[i:i + H_N] for i in range(0, len(h), H_N)]
    return G, H, npt, ratios


def analyse(G, H, npt, ratios, burst=VIRTIO_BURST):
    """Per phase kind ("floor", "host"): the median ns of each step over the
    full rings (a flush of `burst` packets that follows one of the same
    phase), and the rings counted; plus the stamped session's host / floor
    ratio (paired_ratios, running time)."""
    by_avail = {g[0]: g for g in G}
    by_tail = {x[0]: x for x in H}
    steps = {0: {k: [] for k in STEPS}, 1: {k: [] for k in STEPS}}
    for tail, got, t_in, t_out, p_ret, phase in H:
        g = by_avail.get(tail)
        prev = by_tail.get((tail - got) & 0xFFFFFFFF)
        if got != burst or g is None or prev is None or prev[5] != phase:
            continue
        d = steps[phase]
        d["ring"].append(t_out - prev[3])
        d["guest_sees_room"].append(g[1] - prev[3])
        d["guest_fill"].append(g[2] - g[1])
        d["host_sees_ring"].append(t_in - g[2])
        d["host_flush"].append(t_out - t_in)
        d["guest_kick"].append(g[3] - g[2])
        if phase == 1 and p_ret:
            d["to_aio_poll_return"].append(p_ret - g[2])
    out = {}
    for phase, name in ((0, "floor"), (1, "host")):
        d = steps[phase]
        out[name] = {k: (statistics.median(v) * npt if v else None) for k, v in d.items()}
        out[name]["rings"] = len(d["ring"])
    out["ratio"] = ratios["ratio"] if ratios else None
    return out


def virtio_steps(strategy, host="poll_handler", **kw) -> dict:
    """The stamped session, analysed (see the module's comment)."""
    return analyse(*stamped_session(strategy, host, **kw))


def word_round(strategy, n) -> float:
    """What the polling host's aio_poll costs per batch, one process and no
    cache miss: post to the avail word, aio_poll finds it in the poll phase
    and dispatches the ioeventfd's handler (aio_bench_word_round), ns."""
    from .._context._aio import AioContext

    with AioContext.create(strategy=strategy, n_bh=8, n_timers=1, skeleton="polling",
                           poll_max_ns=POLL_MAX_NS_VIRTIO) as ctx:
        bh = ctx.bh_new(lambda: None)
        lib = ctx._lib
        with virtqueue_notifier(ctx) as efd:
            lib.aio_bench_poll_round(ctx._c, bh, 1, 50)   # poll_ns > 0: the poll phase runs
            xs = [lib.aio_bench_word_round(ctx._c, efd, max(100, n // 5)) for _ in range(5)]
    if min(xs) < 0:
        raise BenchError(f"{strategy}: the poll-word round missed its handler")
    return min(xs)
