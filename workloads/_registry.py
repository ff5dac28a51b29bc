# Workload discovery: entry-point group "aiocore.workloads", mirroring the
# strategies' registry (aiocore/_compiler/_plugins.py).  The entry-point name is the
# workload's name.  A plugin that fails to import, is not a Workload
# subclass, names itself differently from its entry point, or clashes with
# another's name is listed as broken with "distribution[entry-point]: cause",
# and never hides the others.
from __future__ import annotations

import importlib.metadata
import threading

from ._base import Workload

GROUP = "aiocore.workloads"
BUILTIN_DIST = "aiocore"

_lock = threading.RLock()
_cache: dict = {}  # source -> WorkloadInfo


class WorkloadInfo:
    """What the registry knows of one workload entry point."""

    __slots__ = ("name", "source", "status", "workload")

    def __init__(self, name, source, status, workload=None):
        self.name = name
        self.source = source
        self.status = status
        self.workload = workload

    def __repr__(self):
        return f"WorkloadInfo({self.name!r}, {self.source!r}, {self.status!r})"


# Entry points are found, named and ordered exactly as strategies are.
from aiocore._compiler._plugins import _dist_name, source_of  # noqa: E402,F401


def entry_points() -> list:
    from aiocore._compiler._plugins import sorted_entry_points

    return sorted_entry_points(GROUP)


def names() -> list[str]:
    """Names of the installed workloads (reads metadata only)."""
    return sorted({ep.name for ep in entry_points()})


def _duplicate_cause(ep, eps):
    same = [e for e in eps if e.name == ep.name]
    if len(same) < 2:
        return None
    builtin = [e for e in same if _dist_name(e) == BUILTIN_DIST]
    if builtin and _dist_name(ep) == BUILTIN_DIST and len(builtin) == 1:
        return None
    others = ", ".join(source_of(e) for e in same if e is not ep)
    return f"duplicate name {ep.name!r} (also provided by {others})"


def inspect_entry_point(ep, eps=None) -> WorkloadInfo:
    """Import and check one entry point; never raises for a bad plugin."""
    eps = entry_points() if eps is None else eps
    src = source_of(ep)
    with _lock:
        if src in _cache:
            return _cache[src]
    info = None
    dup = _duplicate_cause(ep, eps)
    if dup:
        info = WorkloadInfo(ep.name, src, dup)
    if info is None:
        try:
            obj = ep.load()
        except (Exception, SystemExit) as e:
            info = WorkloadInfo(ep.name, src, f"cannot import {ep.value}: {type(e).__name__}: {e}")
    if info is None and not (isinstance(obj, type) and issubclass(obj, Workload)):
        info = WorkloadInfo(ep.name, src, f"{ep.value} is not a Workload subclass (got {obj!r})")
    if info is None and getattr(obj, "name", None) != ep.name:
        info = WorkloadInfo(
            ep.name, src,
            f"entry point {ep.name!r} names a workload called {getattr(obj, 'name', None)!r}; "
            "the entry-point name must be the workload's name",
        )
    if info is None:
        try:
            wl = obj()
            if wl.config not in ("home", "foreign", "gsource"):
                raise ValueError(f"config must be 'home', 'foreign' or 'gsource', not {wl.config!r}")
            wl.plan(2)  # a plan must be computable
        except Exception as e:
            info = WorkloadInfo(ep.name, src, f"does not make a plan: {type(e).__name__}: {e}")
        else:
            info = WorkloadInfo(ep.name, src, "ok", wl)
    with _lock:
        _cache.setdefault(src, info)
        return _cache[src]


def registry() -> list[WorkloadInfo]:
    """Every workload entry point, imported and checked."""
    eps = entry_points()
    return sorted((inspect_entry_point(ep, eps) for ep in eps), key=lambda i: (i.name, i.source))


def broken() -> list[str]:
    """'distribution[entry-point]: cause' for every broken workload plugin."""
    return [f"{i.source}: {i.status}" for i in registry() if i.status != "ok"]


def get(name: str) -> Workload:
    """The workload called name; KeyError (with the installed names) or
    ValueError (naming the broken plugin and the cause)."""
    eps = entry_points()
    mine = [ep for ep in eps if ep.name == name]
    if not mine:
        raise KeyError(f"no installed workload is named {name!r} (installed: {', '.join(names())})")
    infos = [inspect_entry_point(ep, eps) for ep in mine]
    for i in infos:
        if i.status == "ok":
            return i.workload
    raise ValueError("; ".join(f"{i.source}: {i.status}" for i in infos))


def forget() -> None:
    with _lock:
        _cache.clear()
    importlib.invalidate_caches()
