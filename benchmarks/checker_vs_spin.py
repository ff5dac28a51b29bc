#!/usr/bin/env python3
"""States per second: aiocore's model checker (SC) against spin, on the same strategies.

For each strategy and config, the Promela model `aiocore show NAME --promela`
exports is compiled with spin (spin -a; gcc -O2 -DNFAIR=3; ./pan -a -f for
each of its two never claims, as aiocore._compiler._promela documents) and the checker
explores the same strategy under SC.  Both explore the same skeleton and
hooks, but not the same state space: spin's model has one BH shared by its
notifiers, each scheduling any number of times, and checks two LTL claims
(a product with a never claim, weak fairness); the checker has one BH per
notifier, bounded schedules, and reachability plus a cycle search.  So the
comparison is states per second (and total seconds), not state counts.

    python benchmarks/checker_vs_spin.py [NAME ...] [--config home,gsource,foreign]
                                         [--notifiers N] [--json]

spin's time is pan's own "elapsed time" (search only) and, separately, the
time for spin -a + gcc, which a spin user pays on every model change.  The
last line is the ratio of the two rates, measured in this run (checker /
spin; 1.00 or more: the checker explores at least as many states per second);
--engine python measures the checker's Python loop instead of its C loop.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiocore._compiler import _load, _plugins  # noqa: E402
from aiocore._checker import Bounds, check_ir, supported_configs  # noqa: E402
from aiocore._checker import spin as S  # noqa: E402

_DEFINES = {"home": (), "foreign": ("-DFOREIGN",), "gsource": ("-DGSOURCE",)}


def bench_one(info, config, notifiers, schedules, workdir, engine="auto"):
    text = _load.promela_source(info)
    model = os.path.join(workdir, "model.pml")
    with open(model, "w") as f:
        f.write(text)
    defines = _DEFINES[config] + ((f"-DNOTIFIERS={notifiers}",) if notifiers > 1 else ())
    t0 = time.monotonic()
    pan = S.compile_model(model, workdir, defines, cflags=("-O2", "-DNFAIR=3", "-DVECTORSZ=4096"))
    compile_s = time.monotonic() - t0
    spin_verdict, results = S.verdict_of_exported(pan)
    spin_states = sum(r.states for r in results)
    spin_s = sum(r.seconds for r in results)
    bounds = Bounds(notifiers=notifiers, schedules=schedules, foreign_notifiers=notifiers,
                    foreign_schedules=schedules)
    best = None
    for _ in range(3):  # best of three: the machine is shared
        r = check_ir(info.ir, "sc", config, bounds, want_trace=False, engine=engine)
        if best is None or r.seconds < best.seconds:
            best = r
    return {
        "strategy": info.name,
        "config": config,
        "spin_verdict": spin_verdict,
        "spin_states": spin_states,
        "spin_seconds": spin_s,
        "spin_compile_seconds": compile_s,
        "spin_rate": spin_states / spin_s if spin_s > 0 else None,
        "checker_verdict": best.verdict,
        "checker_states": best.states,
        "checker_seconds": best.seconds,
        "checker_rate": best.rate,
        "checker_engine": best.engine,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--config", default="home,gsource,foreign")
    ap.add_argument("--notifiers", type=int, default=2, help="notifier processes on both sides (default 2)")
    ap.add_argument("--schedules", type=int, default=2, help="schedules per notifier, checker side (default 2)")
    ap.add_argument("--engine", choices=("auto", "c", "python"), default="auto",
                    help="the checker's search loop (default auto: C when it can be built)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not S.have_spin():
        print("spin not installed", file=sys.stderr)
        return 2
    configs = [c for c in args.config.split(",") if c]
    infos = [i for i in _plugins.registry() if i.ir is not None and i.status == "ok"]
    if args.names:
        infos = [i for i in infos if i.name in args.names]
    rows = []
    for info in infos:
        for c in configs:
            if c not in supported_configs(info.ir):
                continue
            with tempfile.TemporaryDirectory(prefix="aiocore-bench-") as d:
                rows.append(bench_one(info, c, args.notifiers, args.schedules, d, args.engine))
            if not args.json:
                x = rows[-1]
                print(f"{x['strategy']:18} {x['config']:8} spin {x['spin_verdict']:12} "
                      f"{x['spin_states']:9,} st {x['spin_seconds']:7.3f} s "
                      f"{(x['spin_rate'] or 0):12,.0f} st/s (+{x['spin_compile_seconds']:.1f} s spin -a/gcc) | "
                      f"checker {x['checker_verdict']:12} {x['checker_states']:9,} st "
                      f"{x['checker_seconds']:7.3f} s {x['checker_rate']:10,.0f} st/s", flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    ss = sum(x["spin_states"] for x in rows)
    st = sum(x["spin_seconds"] for x in rows)
    sc = sum(x["spin_compile_seconds"] for x in rows)
    cs = sum(x["checker_states"] for x in rows)
    ct = sum(x["checker_seconds"] for x in rows)
    agree = sum(1 for x in rows if x["spin_verdict"] == x["checker_verdict"])
    print(f"\nspin:    {ss:,} states in {st:.2f} s of search = {ss / st if st else 0:,.0f} states/s "
          f"(plus {sc:.1f} s of spin -a + gcc)")
    engines = ",".join(sorted({x["checker_engine"] for x in rows}))
    print(f"checker: {cs:,} states in {ct:.2f} s = {cs / ct if ct else 0:,.0f} states/s "
          f"({engines} loop; no compilation step)")
    print(f"verdicts agree on {agree}/{len(rows)} runs (SC)")
    if st and ct:
        print(f"states/s ratio checker/spin: {(cs / ct) / (ss / st):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
