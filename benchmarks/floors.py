#!/usr/bin/env python3
"""Only the floors and the fast paths of one strategy, quickly (a sanity
check of the machine before a full run).

    python benchmarks/floors.py [STRATEGY]
"""
import sys

from aiocore import AioContext
from aiocore._bench._all import py_call_costs

strategy = sys.argv[1] if len(sys.argv) > 1 else "unconditional"
with AioContext.create(strategy=strategy, n_bh=8, n_timers=1) as ctx:
    lib, c = ctx._lib, ctx._c
    bh = ctx.bh_new(lambda: None)
    print(f"fence+load      {lib.aio_bench_fence_load(c, 2_000_000):8.2f} ns")
    print(f"aio_notify      {lib.aio_bench_aio_notify(c, 1_000_000):8.2f} ns  ({strategy}, nobody sleeping)")
    print(f"notify hook     {lib.aio_bench_notify_hook(c, 1_000_000):8.2f} ns")
    print(f"ppoll(0)        {lib.aio_bench_ppoll0(c, 20_000):8.1f} ns")
    print(f"getpid()        {lib.aio_bench_getpid(20_000):8.1f} ns")
    print(f"eventfd w+r     {lib.aio_bench_eventfd_local(20_000):8.1f} ns")
    print(f"poll round      {lib.aio_bench_poll_round(c, bh, 1, 20_000):8.1f} ns")
    ctx.bh_schedule(bh)
    pc = py_call_costs(dict(empty=(lib.aio_empty, ()), bh_schedule=(ctx.bh_schedule, (bh,))), 200_000)
    print(f"cffi empty call {pc['empty']:8.1f} ns")
    print(f"ctx.bh_schedule {pc['bh_schedule']:8.1f} ns  ({pc['bh_schedule'] / pc['empty']:.2f}x)")
