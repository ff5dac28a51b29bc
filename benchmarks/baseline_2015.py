"""Record the 2015 skeleton's poll round against the ppoll floor.

    python benchmarks/baseline_2015.py [--repeats 5]

prints {strategy: poll_round_ns / ppoll_zero_timeout} for the aiocore that is
importable (run it with an install of the commit to compare against, and put
the result in aiocore/_bench/_baseline.py).  Both loops are C (aio_bench.c),
interleaved, best of each batch.
"""
import argparse
import json

from aiocore import AioContext

STRATEGIES = ("unconditional-c", "unconditional", "notified", "notified-blocking",
              "explicit-mb", "always-notified", "selfpipe")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("-n", type=int, default=4000)
    a = ap.parse_args()
    out = {}
    for s in STRATEGIES:
        with AioContext.create(s, n_bh=8, n_timers=1) as ctx:
            bh = ctx.bh_new(lambda: None)
            lib, c = ctx._lib, ctx._c
            rounds, floors = [], []
            for _ in range(a.repeats):
                rounds.append(lib.aio_bench_poll_round(c, bh, 1, a.n))
                floors.append(lib.aio_bench_ppoll0(c, a.n))
            out[s] = round(min(rounds) / min(floors), 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
