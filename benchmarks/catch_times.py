#!/usr/bin/env python3
"""Time to the first native finding, per strategy, over several runs of
`aiocore stress --strategy S` on its defaults (median and max), and the
findings of the strategies expected to pass (there must be none).

    python benchmarks/catch_times.py [--runs 5] [--budget 30] [--outsiders] [-s S ...] [--json]

--outsiders also installs the tests' own strategies (tests/outsiders: written
as a third party would, sharing nothing with strategies/) into a temporary
directory and includes them.  Each run is a fresh `aiocore stress` process
with its own random seed (printed), exactly as a user would start it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KNOWN_BAD = ["bug1", "bug2", "no-mb", "late-clear"]
OUTSIDERS_BAD = ["early-kick", "glib-nofence", "kick-always", "after-rmw-notify"]
OUTSIDERS_GOOD = ["xchg-gate", "coalesced-kick", "qemu-today"]


def one(strategy, budget, env):
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", "-s", strategy, "-d", str(budget), "--json"],
                       capture_output=True, text=True, env=env, timeout=budget * 4 + 120)
    if p.returncode not in (0, 1):
        raise SystemExit(f"aiocore stress -s {strategy} failed ({p.returncode}): {p.stderr[-2000:]}")
    rows = json.loads(p.stdout)
    # one campaign per declared skeleton, those with a checker counterexample first: the
    # strategy's catch time is its first campaign's (the one the run began with) if that found it
    row = dict(rows[0])
    found = next((r for r in rows if r["first_finding_s"] is not None), None)
    if found is not None and found is not rows[0]:
        row.update(first_finding_s=sum(r["seconds"] for r in rows[:rows.index(found)]) + found["first_finding_s"],
                   verdict=found["verdict"], where=found["where"])
    row["skeleton"] = (found or rows[0])["skeleton"]
    seed = next((ln.split("seed ")[1].split()[0] for ln in p.stderr.splitlines() if "seed " in ln), "?")
    return row, seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per strategy per run (default 30)")
    ap.add_argument("--outsiders", action="store_true", help="include the tests' own strategies")
    ap.add_argument("-s", "--strategy", action="append", help="default: the known-bad built-ins (+ outsiders)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.runs < 1 or a.budget <= 0:
        ap.error("--runs must be >= 1 and --budget > 0")
    env = dict(os.environ)
    names = list(a.strategy or KNOWN_BAD)
    tmp = None
    if a.outsiders:
        tmp = tempfile.TemporaryDirectory(prefix="aiocore-outsiders-")
        sys.path.insert(0, str(ROOT / "tests"))
        from outsiders.install import install

        env = install(Path(tmp.name))
        if not a.strategy:
            names += OUTSIDERS_BAD + OUTSIDERS_GOOD
    out = []
    for s in names:
        rows = [one(s, a.budget, env) for _ in range(a.runs)]
        times = [r["first_finding_s"] for r, _ in rows]
        caught = [t for t in times if t is not None]
        out.append(dict(
            strategy=s, runs=a.runs, budget=a.budget,
            expected=rows[0][0]["expected"], checker=rows[0][0]["checker_says"],
            caught=len(caught),
            median_s=round(statistics.median(caught), 2) if len(caught) == a.runs else None,
            max_s=round(max(caught), 2) if len(caught) == a.runs else None,
            times=[None if t is None else round(t, 2) for t in times],
            verdicts=[r["verdict"] for r, _ in rows],
            where=[r["where"] for r, _ in rows],
            skeletons=[r["skeleton"] for r, _ in rows],
            seeds=[sd for _, sd in rows],
        ))
        if not a.json:
            o = out[-1]
            print(f"{s:<16} expected {o['expected']:<12} checker {o['checker']:<12} caught {o['caught']}/{a.runs}"
                  f"  median {o['median_s']} s  max {o['max_s']} s  times {o['times']}  verdicts {o['verdicts']}",
                  flush=True)
    if a.json:
        print(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
