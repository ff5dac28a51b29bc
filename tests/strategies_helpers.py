# Helpers shared by the strategy-layer tests (test_ir, test_codegen,
# test_promela, test_trace, test_plugins): the built-in strategy classes, and
# fake installed distributions for plugin-discovery tests.
from __future__ import annotations

import importlib
import textwrap
import uuid
from pathlib import Path

#: name -> "module:Class", as pyproject.toml registers them.
BUILTINS = {
    "late-clear": "aiocore_strategies.late_clear:LateClear",
    "unconditional": "aiocore_strategies.unconditional:Unconditional",
    "notified": "aiocore_strategies.notified:Notified",
    "notified-blocking": "aiocore_strategies.notified_blocking:NotifiedBlocking",
    "explicit-mb": "aiocore_strategies.explicit_mb:ExplicitMb",
    "always-notified": "aiocore_strategies.always_notified:AlwaysNotified",
    "bug1": "aiocore_strategies.bug1:Bug1",
    "bug2": "aiocore_strategies.bug2:Bug2",
    "no-mb": "aiocore_strategies.no_mb:NoMb",
    "selfpipe": "aiocore_strategies.selfpipe:SelfPipe",
}


def builtin_class(name):
    mod, _, attr = BUILTINS[name].partition(":")
    return getattr(importlib.import_module(mod), attr)


def fake_dist(root: Path, dist: str, entry_points: dict, modules: dict) -> dict:
    """Install a distribution into `root` the way `pip install --target`
    would (a .dist-info with entry_points.txt, plus top-level modules).
    Module names get a unique suffix so tests never share sys.modules
    entries; returns {given module name: real module name}."""
    suffix = uuid.uuid4().hex[:8]
    real = {m: f"{m}_{suffix}" for m in modules}
    for m, src in modules.items():
        (root / f"{real[m]}.py").write_text(textwrap.dedent(src))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = ["[aiocore.strategies]"]
    for name, target in entry_points.items():
        mod, _, attr = target.partition(":")
        lines.append(f"{name} = {real.get(mod, mod)}:{attr}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return real
