#!/usr/bin/env python3
"""The seed's question (05e514b1: do its barriers cost more than the syscall
they save?): the six strategies of the table in docs/seed-question.md.

    python benchmarks/seed_question.py [--quick] [--json]
"""
import sys

from aiocore._bench._all import SEED_STRATEGIES
from aiocore._cli._main import main

if __name__ == "__main__":
    args = ["bench"]
    for s in SEED_STRATEGIES:
        args += ["--strategy", s]
    sys.exit(main(args + sys.argv[1:]))
