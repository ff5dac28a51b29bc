# Install tests/outsiders/outsider_strategies.py and qemu_today.py the way pip
# would install a third party's distribution: top-level modules plus a
# .dist-info whose entry_points.txt registers each strategy in
# "aiocore.strategies".  The
# result is used through PYTHONPATH by fresh processes (`aiocore check`,
# `aiocore stress` and the workload processes it starts).
from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import outsider_bh, outsider_strategies, qemu_today

HERE = Path(__file__).resolve().parent
DIST = "outsider-strategies"
MODULE = "aiocore_outsiders"
#: module file here -> (installed module name, its entry points)
MODULES = {
    "outsider_strategies.py": (MODULE, outsider_strategies.ENTRY_POINTS),
    "qemu_today.py": ("aiocore_outsiders_qemu", qemu_today.ENTRY_POINTS),
    "outsider_bh.py": ("aiocore_outsiders_bh", outsider_bh.ENTRY_POINTS),
}
#: every entry point the distribution registers (name -> class name)
ENTRY_POINTS = {n: c for _, eps in MODULES.values() for n, c in eps.items()}


def install(target: Path) -> dict:
    """Install into `target`; returns an environment whose PYTHONPATH finds it."""
    target.mkdir(parents=True, exist_ok=True)
    lines = ["[aiocore.strategies]"]
    for src, (mod, eps) in MODULES.items():
        shutil.copy(HERE / src, target / f"{mod}.py")
        lines += [f"{n} = {mod}:{c}" for n, c in eps.items()]
    info = target / f"{DIST.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env["AIOCORE_CACHE"] = str(target / "cache")
    return env
