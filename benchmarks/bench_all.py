#!/usr/bin/env python3
"""Run the whole benchmark (same as `aiocore bench`); arguments are passed on.

    python benchmarks/bench_all.py [--strategy S ...] [--json] [--plot FILE.png] [--quick] [--no-pin]
"""
import sys

from aiocore._cli._main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
