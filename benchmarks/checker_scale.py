#!/usr/bin/env python3
"""The model checker at scale: seconds and peak memory against issue 12's and 21's targets.

Runs, each in a fresh process (so that its peak resident memory is its own):

  3x3      `aiocore check explicit-mb --model arm --config home --notifiers 3
           --schedules 3` (both skeletons; each arm row's profiles in parallel)
                                                               target 10 s, 1 GiB
  4x2      explicit-mb, arm, home, 4 notifiers x 2 schedules   target 60 s, 2 GiB
  matrix   `aiocore check --jobs 2` (every strategy, model, config; default bounds)
                                                               target 10 s
  litmus   tests/litmus/corpus.json through the operational models (sc, tso,
           arm-llsc, arm-lse): every outcome of every program, in one process
  python   the 3x2 run of explicit-mb arm home with the Python loop, and the
           same run with the C loop: the states/s ratio of the two loops,
           measured in this run (the floor the C loop is compared with)

and prints each as figures with its ratio to the target (below 1.00 meets it).
The machine is shared: each timed figure is the best of --repeat runs.

    python benchmarks/checker_scale.py [--only 3x3,4x2,matrix,litmus,python] [--repeat N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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
    "4x2": ("explicit-mb", "arm", "home", 4, 2, 60.0, 2 * 2**30),
}
CLI_3X3 = ["check", "explicit-mb", "--model", "arm", "--config", "home", "--notifiers", "3",
           "--schedules", "3", "--json"]

_CLI = ("import sys; sys.path.insert(0, sys.argv[1]); from aiocore._cli import main; "
        "sys.exit(main(sys.argv[2:]))")

_LITMUS = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from aiocore._checker import litmus as L
    progs = json.load(open(sys.argv[2]))["programs"]
    out = {}
    for model in ("sc", "tso", "arm-llsc", "arm-lse"):
        t0 = time.monotonic()
        for p in progs:
            L.outcomes(model, [[tuple(op) for op in t] for t in p["threads"]])
        out[model] = time.monotonic() - t0
    print(json.dumps({"programs": len(progs), "by_model": out}))
""")


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


def run_cli(args):
    """`aiocore ARGS` in a fresh process: (its JSON output, exit status, wall seconds, peak RSS
    of it and its workers -- RUSAGE_CHILDREN's ru_maxrss is the largest of them, as time -v)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", _CLI, ROOT, *args], capture_output=True, text=True)
    wall = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        peak = before  # an earlier child was larger: this run's own peak is not known exactly
    # the runs themselves: an arm run's profiles follow it as rows "part_of" it (their states are its own)
    runs = [d for d in json.loads(p.stdout) if "part_of" not in d]
    return runs, p.returncode, wall, peak * 1024


def bench_3x3(repeat):
    out = []
    for _ in range(repeat):
        data, rc, wall, peak = run_cli(CLI_3X3)
        out.append({"seconds": wall, "peak_rss": peak, "states": sum(d["states"] for d in data),
                    "verdict": ", ".join(f"{d['skeleton']} {d['verdict']}" for d in data),
                    "all_match": rc == 0})
    r = best(out)
    r.update(case="3x3", what="aiocore " + " ".join(CLI_3X3[:-1]), target_seconds=10.0,
             target_memory=2**30, time_ratio=r["seconds"] / 10.0, memory_ratio=r["peak_rss"] / 2**30)
    return r


def bench_matrix(repeat):
    out = []
    for _ in range(repeat):
        data, rc, wall, _peak = run_cli(["check", "--jobs", "2", "--json"])
        out.append({"seconds": wall, "runs": len(data), "states": sum(d["states"] for d in data),
                    "all_match": rc == 0})
    r = best(out)
    r.update(case="matrix", what="aiocore check --jobs 2 (default matrix)", target_seconds=10.0,
             time_ratio=r["seconds"] / 10.0)
    return r


def bench_litmus(repeat):
    corpus = os.path.join(ROOT, "tests", "litmus", "corpus.json")
    out = []
    for _ in range(repeat):
        p = subprocess.run([sys.executable, "-c", _LITMUS, ROOT, corpus], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"litmus corpus: {p.stderr[-2000:]}")
        r = json.loads(p.stdout)
        r["seconds"] = sum(r["by_model"].values())
        out.append(r)
    r = best(out)
    r.update(case="litmus", what="the litmus corpus through the operational models")
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
    elif r["case"] == "litmus":
        per = ", ".join(f"{m} {t:.1f} s" for m, t in r["by_model"].items())
        print(f"{r['what']}: {r['programs']} programs x 4 models in {r['seconds']:.1f} s ({per})")
    elif r["case"] == "3x3":
        print(f"{r['what']}: {r['verdict']}; {r['states']:,} states in {r['seconds']:.1f} s wall "
              f"(target 10 s: ratio {r['time_ratio']:.2f}), peak {r['peak_rss'] / 2**20:,.0f} MiB "
              f"(target 1 GiB: ratio {r['memory_ratio']:.2f}); verdicts as declared: {r['all_match']}")
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
    ap.add_argument("--only", default="python,3x3,matrix,litmus,4x2")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per timed figure (default 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for key in [x for x in args.only.split(",") if x]:
        if key in CASES:
            r = bench_case(key, args.repeat)
        elif key == "3x3":
            r = bench_3x3(args.repeat)
        elif key == "matrix":
            r = bench_matrix(args.repeat)
        elif key == "litmus":
            r = bench_litmus(args.repeat)
        elif key == "python":
            r = bench_loops(args.repeat)
        else:
            ap.error(f"unknown case {key!r} (cases: python, 3x3, matrix, litmus, 4x2)")
        rows.append(r)
        if not args.json:
            show(r)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
