# Install tests/outsiders/outsider_strategies.py the way pip would install a
# third party's distribution: a top-level module plus a .dist-info whose
# entry_points.txt registers each strategy in "aiocore.strategies".  The
# result is used through PYTHONPATH by fresh processes (`aiocore check`,
# `aiocore stress` and the workload processes it starts).
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .outsider_strategies import ENTRY_POINTS

HERE = Path(__file__).resolve().parent
DIST = "outsider-strategies"
MODULE = "aiocore_outsiders"


def install(target: Path) -> dict:
    """Install into `target`; returns an environment whose PYTHONPATH finds it."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "outsider_strategies.py", target / f"{MODULE}.py")
    info = target / f"{DIST.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 1.0\n")
    lines = ["[aiocore.strategies]"] + [f"{n} = {MODULE}:{c}" for n, c in ENTRY_POINTS.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env["AIOCORE_CACHE"] = str(target / "cache")
    return env
