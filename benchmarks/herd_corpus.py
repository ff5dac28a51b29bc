#!/usr/bin/env python3
"""The litmus corpus against herd7, live: re-run herd7 on every program and target
of tests/litmus/corpus.json, and report agreement with the recorded verdicts and
with aiocore's axiomatic checker (aiocore._checker._axiomatic), with times.

    python benchmarks/herd_corpus.py [--targets aarch64-llsc,...] [--limit N] [--mixed] [--json]

Needs herd7 on PATH (or $HERD7); herdtools7 7.57 with its model library.
``--mixed`` also runs every x86 program with x86tso-mixed.cat (herd7's default
model for X86_64) and reports whether it agrees with x86tso.cat.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from aiocore._checker import _axiomatic as A  # noqa: E402
from aiocore._checker import _herd as H  # noqa: E402
from aiocore._checker._litmus_ops import matches, outcome_filter, parse  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "litmus", "corpus.json")
MODEL = {v: k for k, v in H.TARGET_OF_MODEL.items()}


def _mixed(prog, herd):
    test = H.to_herd_test(prog, "x86")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.litmus")
        with open(path, "w") as f:
            f.write(test.text)
        p = subprocess.run([herd, "-model", "x86tso-mixed.cat", "-optace", "true", path],
                           capture_output=True, text=True, timeout=600, check=True)
    return H.parse_states(p.stdout, test)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(H.TARGETS))
    ap.add_argument("--limit", type=int, default=0, help="only the first N programs")
    ap.add_argument("--mixed", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    herd = H.herd_binary()
    if not herd:
        sys.exit("herd7 not installed (put herdtools7 7.57's herd7 on PATH or set $HERD7)")
    data = json.load(open(CORPUS))
    progs = data["programs"][:a.limit or None]
    targets = a.targets.split(",")
    report = {"herd7": H.herd_version(herd), "recorded_with": data["header"]["herd7"], "programs": len(progs),
              "targets": {}}
    for t in targets:
        t0 = time.monotonic()
        same_outcomes = same_verdict = checker = 0
        differ = []
        herd_s = 0.0
        for e in progs:
            prog = parse(e["threads"])
            want = outcome_filter(prog, e["final"], e["regs"])
            s0 = time.monotonic()
            live = H.run_herd(prog, t, herd_path=herd, timeout=600)
            herd_s += time.monotonic() - s0
            rec = {tuple(o) for o in e["herd"][t]["outcomes"]}
            same_outcomes += live == rec
            same_verdict += any(matches(o, want) for o in live) == e["herd"][t]["allowed"]
            ax = A.outcomes(MODEL[t], prog)
            checker += ax == live
            if live != rec or ax != live:
                differ.append({"name": e["name"], "herd_live_minus_recorded": sorted(live - rec),
                               "recorded_minus_live": sorted(rec - live), "checker_minus_herd": sorted(ax - live),
                               "herd_minus_checker": sorted(live - ax)})
        r = {"same_outcomes_as_recorded": same_outcomes, "same_verdict_as_recorded": same_verdict,
             "axiomatic_checker_agrees": checker, "herd_seconds": round(herd_s, 2),
             "total_seconds": round(time.monotonic() - t0, 2), "differences": differ}
        if a.mixed and t == "x86":
            r["x86tso_mixed_agrees"] = sum(_mixed(parse(e["threads"]), herd) == H.run_herd(e["threads"], "x86", herd_path=herd)
                                           for e in progs)
        report["targets"][t] = r
    t0 = time.monotonic()
    for m in A.MODELS:
        for e in progs:
            A.outcomes(m, e["threads"])
    report["axiomatic_seconds_all_models"] = round(time.monotonic() - t0, 2)
    if a.json:
        print(json.dumps(report, indent=1))
        return
    print(f"herd7 {report['herd7']} (recorded with {report['recorded_with']}), {len(progs)} programs")
    for t, r in report["targets"].items():
        extra = f", x86tso-mixed.cat agrees on {r['x86tso_mixed_agrees']}" if "x86tso_mixed_agrees" in r else ""
        print(f"{t:13s} outcomes as recorded {r['same_outcomes_as_recorded']}/{len(progs)}, verdicts "
              f"{r['same_verdict_as_recorded']}/{len(progs)}, axiomatic checker = herd7 "
              f"{r['axiomatic_checker_agrees']}/{len(progs)}; herd7 {r['herd_seconds']} s{extra}")
        for d in r["differences"]:
            print("   differs:", d)
    print(f"axiomatic checker, all {len(A.MODELS)} models: {report['axiomatic_seconds_all_models']} s")


if __name__ == "__main__":
    main()
