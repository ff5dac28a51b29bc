# Strategy discovery and loading.
#
# Strategies are plugins: classes registered under the entry-point group
# "aiocore.strategies", whose entry-point name is the strategy's name:
#
#     [project.entry-points."aiocore.strategies"]
#     my-strategy = "my_package.module:MyStrategy"
#
# aiocore's own strategies (the `strategies/` directory, package
# aiocore_strategies) are registered the same way in aiocore's
# pyproject.toml; nothing here knows them by name.  The one exception is
# "unconditional-c", the hand-written C reference compiled into
# aiocore._core, which has no Python description.
#
# Discovery is lazy.  Listing names reads entry-point metadata only; get()
# imports that one entry point and traces its description.  Discovery ends
# there: it yields a StrategyInfo (the checked description) and never
# compiles; _load.py turns a StrategyInfo into a built module.  registry() imports every plugin,
# because it reports each one's status: a plugin that fails to import, has no
# notify hook, uses a primitive outside the vocabulary, shares its name with
# another, or whose description does not trace or generate C is listed as
# broken with "distribution[entry-point]: cause", and never hides the others.
from __future__ import annotations

import importlib
import importlib.metadata
import threading

from .._errors import StrategyError, UnknownStrategy
from ._strategy import Strategy, StrategyInfo, describe

GROUP = "aiocore.strategies"
HANDWRITTEN = "unconditional-c"
#: The distribution whose strategies win a name clash (the built-ins).
BUILTIN_DIST = "aiocore"

_lock = threading.RLock()
_infos: dict = {}  # source -> StrategyInfo


def _core_info():
    return StrategyInfo(
        name=HANDWRITTEN,
        origin="qemu 21a03d17 (2015), hand-written C reference",
        source="aiocore[builtin C]",
        status="ok",
        expected={"sc": "pass", "tso": "pass", "arm": "lost-wakeup", "arm-llsc": "lost-wakeup", "arm-lse": "pass"},
        # Home poller only (AIO_STRATEGY_FOREIGN_POLLERS 0 in the header):
        # it is the reference for the generated code's fast paths.
        foreign_pollers=False,
    )


def _dist_name(ep) -> str:
    d = getattr(ep, "dist", None)
    return d.name if d is not None and d.name else "?"


def source_of(ep) -> str:
    """How a plugin is named in reports: distribution[entry-point]."""
    return f"{_dist_name(ep)}[{ep.name}]"


def sorted_entry_points(group: str) -> list:
    """Every entry point of a group, sorted by name, aiocore's own first
    among equal names, then distribution (reads metadata; imports nothing).
    Shared with the workload registry (aiocore_workloads._registry)."""
    eps = importlib.metadata.entry_points(group=group)
    return sorted(eps, key=lambda ep: (ep.name, _dist_name(ep) != BUILTIN_DIST, _dist_name(ep)))


def entry_points() -> list:
    """Every strategy entry point (see sorted_entry_points)."""
    return sorted_entry_points(GROUP)


def names() -> list[str]:
    """Names of the installed strategies (without importing any plugin)."""
    return sorted({ep.name for ep in entry_points()} | {HANDWRITTEN})


def _duplicate_cause(ep, eps) -> str | None:
    """Why `ep` loses a name clash, or None if it does not."""
    same = [e for e in eps if e.name == ep.name]
    if ep.name == HANDWRITTEN:
        return f"duplicate name {ep.name!r}: it is aiocore's hand-written C strategy"
    if len(same) < 2:
        return None
    builtin = [e for e in same if _dist_name(e) == BUILTIN_DIST]
    if builtin and _dist_name(ep) == BUILTIN_DIST and len(builtin) == 1:
        return None  # the built-in keeps its name
    others = ", ".join(source_of(e) for e in same if e is not ep)
    return f"duplicate name {ep.name!r} (also provided by {others})"


def _broken(ep, cause, cls=None) -> StrategyInfo:
    return StrategyInfo(
        name=ep.name,
        origin=str(getattr(cls, "origin", "") or ""),
        source=source_of(ep),
        status=cause,
        expected=dict(getattr(cls, "expected", {}) or {}) if cls is not None else {},
        cls=cls,
    )


def inspect_entry_point(ep, eps=None) -> StrategyInfo:
    """Import one entry point and check it; never raises for a bad plugin."""
    from ._codegen import generate_c

    eps = entry_points() if eps is None else eps
    src = source_of(ep)
    with _lock:
        if src in _infos:
            return _infos[src]
    dup = _duplicate_cause(ep, eps)
    if dup:
        info = _broken(ep, dup)
    else:
        info = None
        try:
            obj = ep.load()
        except (Exception, SystemExit) as e:  # any import-time failure of a plugin
            info = _broken(ep, f"cannot import {ep.value}: {type(e).__name__}: {e}")
        if info is None and not (isinstance(obj, type) and issubclass(obj, Strategy)):
            info = _broken(ep, f"{ep.value} is not a Strategy subclass (got {obj!r})")
        if info is None and getattr(obj, "name", None) != ep.name:
            info = _broken(
                ep, f"entry point {ep.name!r} names a strategy called {getattr(obj, 'name', None)!r}; "
                f"the entry-point name must be the strategy's name", obj
            )
        if info is None:
            try:
                ir = describe(obj)
                generate_c(ir, origin=obj.origin, doc=obj.__doc__ or "")
            except StrategyError as e:
                info = _broken(ep, f"description does not compile: {e}", obj)
            except Exception as e:  # a bug of the plugin's own code
                info = _broken(ep, f"description does not compile: {type(e).__name__}: {e}", obj)
            else:
                info = StrategyInfo(
                    name=obj.name,
                    origin=str(obj.origin or ""),
                    source=src,
                    status="ok",
                    expected=dict(obj.expected or {}),
                    cls=obj,
                    ir=ir,
                    expected_configs={k: dict(v) for k, v in (obj.expected_configs or {}).items()},
                    foreign_pollers=bool(obj.foreign_pollers),
                    skeletons=tuple(obj.skeletons),
                    expected_skeletons={k: dict(v) for k, v in (obj.expected_skeletons or {}).items()},
                )
    with _lock:
        _infos.setdefault(src, info)
        return _infos[src]


def registry() -> list[StrategyInfo]:
    """Every strategy entry point (imported and checked), plus the
    hand-written C reference.  Broken plugins have status != "ok"."""
    eps = entry_points()
    out = [_core_info()]
    out += [inspect_entry_point(ep, eps) for ep in eps]
    return sorted(out, key=lambda i: (i.name, i.source))


def broken() -> list[str]:
    """'distribution[entry-point]: cause' for every broken plugin."""
    return [f"{i.source}: {i.status}" for i in registry() if i.status != "ok"]


def get(name: str) -> StrategyInfo:
    """The StrategyInfo of one strategy, importing only its entry point.

    Raises UnknownStrategy if nothing has that name, StrategyError (naming
    the plugin and the cause) if the plugin is broken."""
    if name == HANDWRITTEN:
        return _core_info()
    eps = entry_points()
    mine = [ep for ep in eps if ep.name == name]
    if not mine:
        raise UnknownStrategy(
            f"no installed strategy is named {name!r} (installed: {', '.join(names())})"
        )
    infos = [inspect_entry_point(ep, eps) for ep in mine]
    ok = [i for i in infos if i.status == "ok"]
    if ok:
        return ok[0]
    raise StrategyError("; ".join(f"{i.source}: {i.status}" for i in infos))


def forget() -> None:
    """Drop what this process learnt about plugins (tests install some;
    _load.forget also drops the modules loaded for them)."""
    with _lock:
        _infos.clear()
    importlib.invalidate_caches()


def expected_verdict(info: StrategyInfo, model: str, config: str | None = None,
                     skeleton: str = "2015") -> str | None:
    """The declared verdict of a strategy for a model (and config, skeleton)."""
    if skeleton != "2015":
        return (info.expected_skeletons or {}).get(skeleton, {}).get(model)
    if config is not None:
        v = (info.expected_configs or {}).get(config, {}).get(model)
        if v is not None:
            return v
    return (info.expected or {}).get(model)


__all__ = [
    "GROUP", "HANDWRITTEN", "entry_points", "names", "registry", "broken", "get",
    "expected_verdict", "inspect_entry_point", "forget",
]
