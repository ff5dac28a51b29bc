#!/usr/bin/env python3
"""The model checker at scale: seconds and peak memory against issue 12's targets.

Runs, each in a fresh process (so that its peak resident memory is its own):

  3x3      explicit-mb, arm, home, 3 notifiers x 3 schedules   target 5 s, 300 MB
  4x2      explicit-mb, arm, home, 4 notifiers x 2 schedules   target 60 s, 2 GiB
  matrix   `aiocore check` (every strategy, model, config; default bounds, -j = CPUs)
                                                               target 10 s
  python   the 3x2 run of explicit-mb arm home with the Python loop, and the
           same run with the C loop: the states/s ratio of the two loops,
           measured in this run (the floor the C loop is compared with)

and prints each as figures with its ratio to the target (below 1.00 meets it).
The machine is shared: each timed figure is the best of --repeat runs.

    python benchmarks/checker_scale.py [--only 3x3,4x2,matrix,python] [--repeat N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1])
    from aiocore._compiler import _plugins
    from aiocore._checker import Bounds, check_ir
    name, model, config, n, k, engine = sys.argv[2:8]
    t0 = time.monotonic()
    r = check_ir(_plugins.get(name).ir, model, config, Bounds(int(n), int(k), max_states=10**9),
                 want_trace=False, engine=engine)
    print(json.dumps({"verdict": r.verdict, "states": r.states, "seconds": r.seconds,
                      "wall": time.monotonic() - t0, "engine": r.engine,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
""")

CASES = {
    "3x3": ("explicit-mb", "arm", "home", 3, 3, 5.0, 300 * 2**20),
    "4x2": ("explicit-mb", "arm", "home", 4, 2, 60.0, 2 * 2**30),
}


def run_child(name, model, config, n, k, engine="auto"):
    p = subprocess.run([sys.executable, "-c", _CHILD, ROOT, name, model, config, str(n), str(k), engine],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{name} {model} {config} {n}x{k}: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def best(runs):
    return min(runs, key=lambda r: r["seconds"])


def bench_case(key, repeat):
    name, model, config, n, k, t_s, t_mem = CASES[key]
    r = best([run_child(name, model, config, n, k) for _ in range(repeat)])
    r.update(case=key, what=f"{name} {model} {config} {n}x{k}", target_seconds=t_s, target_memory=t_mem,
             time_ratio=r["seconds"] / t_s, memory_ratio=r["peak_rss"] / t_mem)
    return r


def bench_matrix(repeat):
    out = []
    for _ in range(repeat):
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); "
                            "from aiocore._cli import main; sys.exit(main(['check', '--json']))"],
                           capture_output=True, text=True)
        wall = time.monotonic() - t0
        data = json.loads(p.stdout)
        out.append({"seconds": wall, "runs": len(data), "states": sum(d["states"] for d in data),
                    "all_match": p.returncode == 0})
    r = best(out)
    r.update(case="matrix", what="aiocore check (default matrix, -j = CPUs)", target_seconds=10.0,
             time_ratio=r["seconds"] / 10.0)
    return r


def bench_loops(repeat):
    py = best([run_child("explicit-mb", "arm", "home", 3, 2, "python") for _ in range(repeat)])
    c = best([run_child("explicit-mb", "arm", "home", 3, 2, "c") for _ in range(repeat)])
    assert py["states"] == c["states"] and py["verdict"] == c["verdict"]
    return {"case": "python", "what": "explicit-mb arm home 3x2, Python loop vs C loop",
            "states": c["states"], "python_seconds": py["seconds"], "c_seconds": c["seconds"],
            "python_rate": py["states"] / py["seconds"], "c_rate": c["states"] / c["seconds"],
            "speedup": py["seconds"] / c["seconds"]}


def show(r):
    if r["case"] == "python":
        print(f"{r['what']}: {r['states']:,} states; Python {r['python_seconds']:.2f} s "
              f"({r['python_rate']:,.0f} st/s), C {r['c_seconds']:.2f} s ({r['c_rate']:,.0f} st/s): "
              f"C/Python = {r['speedup']:.1f}x")
    elif r["case"] == "matrix":
        print(f"{r['what']}: {r['runs']} runs, {r['states']:,} states, {r['seconds']:.1f} s "
              f"(target 10 s: ratio {r['time_ratio']:.2f}); verdicts all as declared: {r['all_match']}")
    else:
        print(f"{r['what']}: {r['verdict']}, {r['states']:,} states in {r['seconds']:.1f} s "
              f"({r['states'] / r['seconds']:,.0f} st/s; target {r['target_seconds']:g} s: ratio "
              f"{r['time_ratio']:.2f}), peak {r['peak_rss'] / 2**20:,.0f} MiB (target "
              f"{r['target_memory'] / 2**20:,.0f} MiB: ratio {r['memory_ratio']:.2f})")
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="python,3x3,matrix,4x2")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per timed figure (default 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for key in [x for x in args.only.split(",") if x]:
        if key in CASES:
            r = bench_case(key, args.repeat)
        elif key == "matrix":
            r = bench_matrix(args.repeat)
        elif key == "python":
            r = bench_loops(args.repeat)
        else:
            ap.error(f"unknown case {key!r} (cases: python, 3x3, matrix, 4x2)")
        rows.append(r)
        if not args.json:
            show(r)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
