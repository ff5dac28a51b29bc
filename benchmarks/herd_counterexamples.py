#!/usr/bin/env python3
"""Every ARM counterexample of the built-in strategies, exported as a herd7 litmus
test (aiocore._checker._export, what `aiocore check --herd DIR` writes), asked of
herd7 7.57 (aarch64.cat) and of aiocore's axiomatic checker for the profile whose
run found it; per profile, how many each allows, with herd7's times.  A
counterexample with more than 10**PART_LIMIT rf candidates is asked part by
part (LitmusExport.parts, what --herd writes as .partK.litmus): the whole is
allowed if every part is.

    python benchmarks/herd_counterexamples.py [--bounds 1x1] [--foreign 1x1] [--speculate]
                                              [--timeout 900] [--dir DIR] [NAME ...]

Needs herd7 on PATH (or $HERD7).  herd7 is asked with herd_witness (the
test's own `exists` clause, -speedcheck fast -optace true: a witness ends the
search); its search grows about threefold with every two accesses, so bug1's
busy loops under arm-llsc (18-23 accesses) take minutes each.  --dir keeps
the files (as `aiocore check --herd DIR` names them).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from aiocore._checker import Bounds, _axiomatic as A, _herd as H, _matrix, check_ir, supported_configs  # noqa: E402
from aiocore._checker._litmus_ops import LOADS, RMWS, STORES  # noqa: E402
from aiocore._compiler import _plugins  # noqa: E402

PROFILES = ("arm-llsc", "arm-lse")


def _pair(text):
    n, k = (int(x) for x in text.split("x"))
    return n, k


def runs(names, bounds, speculate=False):
    """(strategy, skeleton, config, profile, CheckResult) of every failing ARM-profile run."""
    for info in _plugins.registry():
        if info.ir is None or (names and info.name not in names):
            continue
        for sk in _matrix.judged_skeletons(info):
            for c in supported_configs(info.ir, sk):
                for m in PROFILES:
                    r = check_ir(info.ir, m, c, bounds, skeleton=sk, export=True, speculate=speculate)
                    if r.verdict not in ("pass", "unknown"):
                        yield info.name, sk, c, m, r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--bounds", type=_pair, default=(1, 1), help="notifiers x schedules (home, gsource)")
    ap.add_argument("--foreign", type=_pair, default=None, help="the same for foreign (default: --bounds)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds herd7 gets per test")
    ap.add_argument("--dir", default=None, help="write the litmus files here")
    ap.add_argument("--speculate", action="store_true",
                    help="the checker speculates past branches (aiocore check --speculate)")
    args = ap.parse_args(argv)
    if not H.herd_binary():
        print("herd7 not installed", file=sys.stderr)
        return 2
    n, k = args.bounds
    fn, fk = args.foreign or args.bounds
    bounds = Bounds(n, k, fn, fk)
    print(f"herd7 {H.herd_version()}; bounds {bounds.describe()}")
    print(f"herd7 {' '.join(H.herd_args('aarch64-llsc'))} {' '.join(H.WITNESS_ARGS)} FILE")
    totals = {m: [0, 0, 0, 0] for m in PROFILES}  # herd allowed, axiomatic allowed, timed out, total
    for name, sk, c, m, r in runs(set(args.names), bounds, args.speculate):
        x = r.litmus[m]
        tot = totals[m]
        tot[3] += 1
        if isinstance(x, str):
            print(f"{name:18} {sk:8} {c:8} {m:9} {r.verdict:12} not exported: {x}")
            continue
        stem = f"{name}-{sk}-{c}-{m}"
        if args.dir:
            os.makedirs(args.dir, exist_ok=True)
            with open(os.path.join(args.dir, stem + ".litmus"), "w") as f:
                f.write(x.herd_text(stem))
            for k, part in enumerate(x.parts, 1):
                with open(os.path.join(args.dir, f"{stem}.part{k}.litmus"), "w") as f:
                    f.write(part.herd_text(f"{stem}.part{k}"))
        acc = sum(1 for ops in x.threads for op in ops if op[0] in LOADS + STORES + RMWS)
        # A program beyond PART_LIMIT is asked part by part (LitmusExport.parts:
        # the whole is allowed if every part is).
        asked = x.parts or (x,)
        ax = all(A.allowed(m, p.threads, p.final, init=p.init, **p.regs) for p in asked)
        tot[1] += ax
        t0 = time.monotonic()
        try:
            ok = all(H.herd_witness(p.threads, p.target, p.final, init=p.init, timeout=args.timeout,
                                    **p.regs) for p in asked)
            herd = "allowed" if ok else "FORBIDDEN"
            tot[0] += ok
        except subprocess.TimeoutExpired:
            herd = f"timeout ({args.timeout:g} s)"
            tot[2] += 1
        how = f"in {len(x.parts)} parts" if x.parts else "whole"
        print(f"{name:18} {sk:8} {c:8} {m:9} {r.verdict:12} {acc:3} accesses 10^{x.candidates:4.1f} rf "
              f"{how:10} axiomatic {'allowed' if ax else 'FORBIDDEN':9}  herd7 {herd:9} "
              f"{time.monotonic() - t0:7.2f} s", flush=True)
    for m, (h, a, to, total) in totals.items():
        print(f"{m}: herd7 allows {h}/{total}" + (f" ({to} timed out)" if to else "")
              + f"; the axiomatic checker allows {a}/{total}")
    return 0 if all(h == t and a == t for h, a, _, t in totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
