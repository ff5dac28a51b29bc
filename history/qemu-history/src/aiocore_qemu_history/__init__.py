# aiocore-qemu-history: QEMU's AioContext wake-up protocol, 2014-2025, as a
# corpus of aiocore strategies, one module per commit.
#
# Each module holds the strategy (registered in pyproject.toml under
# "aiocore.strategies", named qemu-<year>-<short hash>) and RECORD, the
# commit's entry in the historical record (_record.Entry).  The strategies
# are written from the commits' messages and diffs, in aiocore's vocabulary:
# they paraphrase QEMU's protocol, they do not copy its code.
#
# records() gives every entry in history order; docs/history.md is generated
# from them (benchmarks/history_table.py in aiocore's repository).
from __future__ import annotations

import importlib

from ._record import Entry

#: The entry modules, in history order (author date, then commit order).
MODULES = (
    "qemu_2014_924fe129",
    "qemu_2014_0ceb849b",
    "qemu_2015_e8d3b1a2",
    "qemu_2015_eabc9779",
    "qemu_2015_21a03d17",
    "qemu_2015_05e514b1",
    "qemu_2016_a0aa44b4",
    "qemu_2016_5b8bb359",
    "qemu_2016_c9d1a561",
    "qemu_2017_b7a745dc",
    "qemu_2017_ef6dada8",
    "qemu_2018_b37548fc_before",
    "qemu_2018_b37548fc",
    "qemu_2020_8c6b0356",
    "qemu_2020_5710a3e0",
    "qemu_2020_601829f8",
    "qemu_2020_601829f8_v3",
    "qemu_2020_44277bf9",
    "qemu_2025_5142397c",
)


def records() -> list[Entry]:
    """Every entry's RECORD, in history order."""
    return [importlib.import_module(f"{__name__}.{m}").RECORD for m in MODULES]


__all__ = ["Entry", "MODULES", "records"]
