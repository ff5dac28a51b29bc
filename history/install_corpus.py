# Install history/qemu-history (the QEMU history corpus) the way pip would
# install a third party's distribution, without building anything: the
# package directory plus a .dist-info whose entry_points.txt is read from
# the distribution's own pyproject.toml.  Used by the tests
# (tests/test_history.py) and by benchmarks/history_table.py; the result is
# used through PYTHONPATH by fresh processes (`aiocore check`, `aiocore
# stress` and the workload processes it starts), exactly as
# tests/outsiders/install.py does for the outsiders.
#
#   python history/install_corpus.py TARGET     prints the PYTHONPATH entry
from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

DIST_DIR = Path(__file__).resolve().parent / "qemu-history"


def metadata(dist_dir: Path = DIST_DIR) -> tuple[str, str, str, dict]:
    """(distribution name, version, package name, {entry-point name: target})."""
    meta = tomllib.loads((dist_dir / "pyproject.toml").read_text())
    project = meta["project"]
    eps = project.get("entry-points", {}).get("aiocore.strategies", {})
    if not eps:
        raise ValueError(f"{dist_dir}/pyproject.toml registers no aiocore.strategies entry point")
    packages = {target.split(":")[0].split(".")[0] for target in eps.values()}
    if len(packages) != 1:
        raise ValueError(f"entry points name several top-level packages: {sorted(packages)}")
    return project["name"], project["version"], packages.pop(), dict(eps)


def install(target: Path, dist_dir: Path = DIST_DIR) -> dict:
    """Install into `target`; returns an environment whose PYTHONPATH finds it."""
    name, version, package, eps = metadata(dist_dir)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    dest = target / package
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(dist_dir / "src" / package, dest, ignore=shutil.ignore_patterns("__pycache__"))
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[aiocore.strategies]"] + [f"{n} = {t}" for n, t in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("AIOCORE_CACHE", str(target / "cache"))
    return env


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python history/install_corpus.py TARGET")
    install(Path(sys.argv[1]))
    print(Path(sys.argv[1]).resolve())
