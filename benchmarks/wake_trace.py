"""Where a cross-process wake-up's time goes: the kernel's view, step by step.

Runs the C eventfd ping-pong and the aio ping-pong of each strategy (2015
skeleton, the bench's pinned pair) under ftrace, in private trace instances,
and splits every wake-up into

  W->K   the waker's write() entry to the wakee's sched_waking
  K->S   sched_waking to the wakee switched in on its CPU (the IPI to the
         other vCPU and its scheduling: the machine, not the code)
  S->X   switch-in to the wakee's blocking system call returning
         (read() for the floor, ppoll() for aio_poll)
  X->W'  the wakee's turnaround: from that return to its own write() that
         wakes the other side (user space + the other system calls)

and counts how often the wakee's CPU was idle (cpu_idle exit seen).

    sudo python benchmarks/wake_trace.py [--rounds 400] [-s always-notified ...]

Needs root, tracefs (/sys/kernel/tracing) and x86 (the trace clock is the
TSC, converted to ns with two clock_gettime markers).  Tracing adds its own
~0.1 us per event, so compare the columns with each other, not with
`aiocore bench`.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter, defaultdict

TRACEFS = "/sys/kernel/tracing"
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+):\s+(\w+):\s*(.*)$")
#: The instance that follows our processes (syscalls, scheduling) and the one
#: that sees every CPU's idle exits and scheduling.
OURS, ALL = "aiocore-wake-ours", "aiocore-wake-all"


def _w(inst, path, val, mode="w"):
    with open(os.path.join(TRACEFS, "instances", inst, path), mode) as f:
        f.write(val)


def _setup():
    for inst in (OURS, ALL):
        d = os.path.join(TRACEFS, "instances", inst)
        if not os.path.isdir(d):
            os.mkdir(d)
        _w(inst, "tracing_on", "0")
        _w(inst, "trace_clock", "x86-tsc")
        _w(inst, "buffer_size_kb", "16384")
    _w(OURS, "options/event-fork", "1")
    _w(OURS, "set_event_pid", str(os.getpid()))
    for ev in ("sched/sched_switch", "sched/sched_waking", "raw_syscalls/sys_enter",
               "raw_syscalls/sys_exit", "ipi/ipi_send_cpu"):
        _w(OURS, f"events/{ev}/enable", "1")
    for ev in ("power/cpu_idle", "sched/sched_switch"):
        _w(ALL, f"events/{ev}/enable", "1")


def _mark(s):
    _w(OURS, "trace_marker", s + "\n", "a")


def _teardown() -> str:
    text = ""
    for inst in (OURS, ALL):
        d = os.path.join(TRACEFS, "instances", inst)
        if not os.path.isdir(d):
            continue
        _w(inst, "tracing_on", "0")
        with open(os.path.join(d, "trace")) as f:
            text += f.read()
        _w(inst, "events/enable", "0")
        if inst == OURS:
            _w(inst, "set_event_pid", "")
        os.rmdir(d)
    return text


def _parse(text):
    ev, clk = [], []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        _, pid, cpu, ts, name, rest = m.groups()
        ev.append((int(ts), int(pid), int(cpu), name, rest))
        if name == "tracing_mark_write" and rest.startswith("CLK "):
            clk.append((int(ts), int(rest.split()[1])))
    ev.sort(key=lambda e: e[0])
    (t0, n0), (t1, n1) = clk[0], clk[-1]
    return ev, (n1 - n0) / (t1 - t0)


def _segments(ev):
    out, cur = [], None
    for i, e in enumerate(ev):
        if e[3] != "tracing_mark_write":
            continue
        if e[4].startswith("BEGIN "):
            cur = (e[4].split()[1], i)
        elif e[4].startswith("END ") and cur:
            out.append((cur[0], cur[1], i))
            cur = None
    return out


def _steps(E):
    """Per wake-up step times (ticks) of one segment of events."""
    pair = Counter()
    for e in E:
        if e[3] == "sched_waking":
            m = re.search(r"pid=(\d+)", e[4])
            if m and int(m.group(1)) != e[1]:
                pair[(e[1], int(m.group(1)))] += 1
    ours = set()
    for (a, b), _ in pair.most_common(2):
        ours |= {a, b}
    steps, idle = defaultdict(list), Counter()
    for k, e in enumerate(E):
        if e[3] != "sched_waking" or e[1] not in ours:
            continue
        m = re.search(r"pid=(\d+).*target_cpu=(\d+)", e[4])
        wakee, cpu = int(m.group(1)), int(m.group(2))
        if wakee not in ours or wakee == e[1]:
            continue
        waker, K = e[1], e[0]
        W = next((f[0] for f in reversed(E[max(0, k - 400):k]) if f[1] == waker and f[3] == "sys_enter"), None)
        S = X = idle_exit = None
        xi = None
        for j in range(k + 1, min(len(E), k + 600)):
            f = E[j]
            if idle_exit is None and f[3] == "cpu_idle" and f[2] == cpu and "4294967295" in f[4]:
                idle_exit = f[0]
            if S is None and f[3] == "sched_switch" and f[2] == cpu and f"next_pid={wakee} " in f[4]:
                S = f[0]
            if S is not None and f[1] == wakee and f[3] == "sys_exit":
                X, xi = f[0], j
                break
        if None in (W, S, X):
            continue
        idle[idle_exit is not None and idle_exit <= S] += 1
        steps["W->K"].append(K - W)
        steps["K->S"].append(S - K)
        steps["S->X"].append(X - S)
        last = None
        for f in E[xi + 1:xi + 800]:
            if f[1] == wakee and f[3] == "sys_enter":
                last = f[0]
            if f[1] == wakee and f[3] == "sched_waking" and f"pid={waker} " in f[4]:
                if last is not None:
                    steps["X->W'"].append(last - X)
                break
    return steps, idle


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=400, help="round trips per ping-pong (default 400)")
    ap.add_argument("-s", "--strategy", action="append", help="strategy (repeatable; default always-notified)")
    args = ap.parse_args(argv)
    if platform.machine() not in ("x86_64", "AMD64"):
        print("wake_trace: needs x86 (the trace clock is the TSC)", file=sys.stderr)
        return 2
    if os.geteuid() != 0 or not os.path.isdir(os.path.join(TRACEFS, "instances")):
        print(f"wake_trace: needs root and tracefs at {TRACEFS}", file=sys.stderr)
        return 2
    from aiocore._bench import _all as B
    from aiocore._compiler._load import load_strategy

    strategies = args.strategy or ["always-notified"]
    _, ffi, lib = load_strategy("unconditional-c")
    for s in strategies:
        load_strategy(s)
    _setup()
    try:
        for inst in (ALL, OURS):
            _w(inst, "tracing_on", "1")
        _mark(f"CLK {time.monotonic_ns()}")
        _mark("BEGIN eventfd")
        B.efd_pingpong_c(lib, ffi, args.rounds, 20.0)
        _mark("END eventfd")
        for s in strategies:
            _mark("BEGIN " + s)
            B.aio_pingpong(s, args.rounds, 20.0)
            _mark("END " + s)
        _mark(f"CLK {time.monotonic_ns()}")
    finally:
        text = _teardown()
    ev, ns_per_tick = _parse(text)
    print(f"load average {os.getloadavg()[0]:.2f}; medians per wake-up, ns (tracing adds ~0.1 us per event)")
    print(f"{'ping-pong':18s} {'W->K':>7s} {'K->S':>7s} {'S->X':>7s} {'W->X':>7s} {'X->Wn':>7s}  wakee CPU idle")
    for name, a, b in _segments(ev):
        steps, idle = _steps(ev[a:b])
        med = {k: statistics.median(v) * ns_per_tick for k, v in steps.items() if v}
        wx = med.get("W->K", 0) + med.get("K->S", 0) + med.get("S->X", 0)
        turn = med.get("X->W'", float("nan"))
        n = sum(idle.values())
        print(f"{name:18s} " + " ".join(f"{med.get(k, float('nan')):7.0f}" for k in ("W->K", "K->S", "S->X"))
              + f" {wx:7.0f} {turn:7.0f}  {idle[True]}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
