#!/usr/bin/env python3
"""Random kills with recovery: 1,000 notifiers SIGKILLed at random instants
per strategy expected to pass `--faults crash` with recovery (the checker's
verdict, tso, config home), the owner's state checked after each kill (no
busy loop, no lost wake-up; aiocore/_faults/_kills.py).  --plain N also runs N kills
without recovery, for contrast.

    python benchmarks/crash_kills.py [--kills 1000] [--plain 100] [--seed 1] [--json]
"""
import argparse
import json
import sys

import attrs

from aiocore._faults._kills import expected_to_pass, random_kills


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--plain", type=int, default=0, help="kills without recovery (default 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--strategy", action="append", help="default: every one expected to pass")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.kills < 1 or a.plain < 0:
        ap.error("--kills must be >= 1 and --plain >= 0")
    names = a.strategy or expected_to_pass()
    runs = []
    for s in names:
        runs.append(random_kills(s, a.kills, recovery=True, seed=a.seed))
        if a.plain:
            runs.append(random_kills(s, a.plain, recovery=False, seed=a.seed))
    if a.json:
        print(json.dumps([attrs.asdict(r) for r in runs], indent=2))
    else:
        print(f"{'strategy':<20}{'recovery':>9}{'kills':>7}{'fine':>7}{'busy':>6}{'lost':>6}"
              f"{'unsettled':>10}{'recoveries':>11}{'seconds':>9}")
        for r in runs:
            print(f"{r.strategy:<20}{str(r.recovery):>9}{r.kills:>7}{r.fine:>7}{r.busy_loops:>6}"
                  f"{r.lost_wakeups:>6}{r.unsettled:>10}{r.recoveries:>11}{r.seconds:>9.1f}")
            if r.first_failure:
                print(f"    first failure: {r.first_failure}")
    return 1 if any(r.recovery and r.failures for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
