# A strategy's built module: StrategyInfo (from discovery, _plugins.py) in,
# (ffi, lib) out.
#
# The hooks' C comes from the description (_codegen.py), or from the
# hand-written header for "unconditional-c"; the module is the one compiled at
# `pip install` (aiocore._s_NAME, or aiocore._core for the hand-written one)
# when its fingerprint is still the description's, else a build in the
# fingerprint-keyed cache (_build.py).  The context, the benchmarks and the
# stress runner take their modules from here; nothing here knows them.
from __future__ import annotations

import importlib
import threading

from .._errors import CompilerMissing, StrategyError
from . import _plugins
from ._build import hooks_header, load_cached, load_pycall_cached
from ._codegen import generate_c
from ._inplace import compiler_missing
from ._plugins import BUILTIN_DIST, HANDWRITTEN, _core_info, get
from ._promela import generate_promela
from ._strategy import StrategyInfo

_lock = threading.RLock()
_modules: dict = {}  # strategy name -> (ffi, lib)


def builtin_module_name(name: str) -> str:
    """The module `pip install` builds for a built-in strategy."""
    return "aiocore._s_" + name.replace("-", "_")


def c_source(info: StrategyInfo) -> str:
    """The C hooks of a strategy (generated, or the hand-written header)."""
    if info.name == HANDWRITTEN:
        return hooks_header("unconditional")
    return generate_c(info.ir, origin=info.origin, doc=info.cls.__doc__ or "", source=info.source)


def promela_source(info: StrategyInfo) -> str:
    if info.ir is None:
        raise StrategyError(f"{info.name} is hand-written C; it has no description to export to Promela")
    return generate_promela(info.ir, origin=info.origin, doc=info.cls.__doc__ or "")


def _load_module(info: StrategyInfo):
    fp = info.ir.fingerprint
    if info.source.startswith(BUILTIN_DIST + "["):
        try:
            m = importlib.import_module(builtin_module_name(info.name))
        except ImportError:
            m = None
        if m is not None:
            if m.ffi.string(m.lib.aio_strategy_fingerprint()).decode() == fp:
                return m.ffi, m.lib
    try:
        return load_cached(f"{info.name}-{fp}", c_source(info))
    except CompilerMissing as e:  # from a source tree: say which, and the fix
        raise compiler_missing(f"{info.source}: {e}") from None
    except StrategyError as e:
        raise type(e)(f"{info.source}: {e}") from None


def load_trace(info_or_name):
    """(ffi, lib) of the trace build of a strategy (see _trace.py)."""
    info = get(info_or_name) if isinstance(info_or_name, str) else info_or_name
    if info.ir is None:
        return load_cached(f"{HANDWRITTEN}-trace", hooks_header("unconditional"), trace=True)
    return load_cached(f"{info.name}-{info.ir.fingerprint}", c_source(info), trace=True)


def load_strategy(name: str):
    """(StrategyInfo, ffi, lib): the compiled context module of a strategy."""
    if name == HANDWRITTEN:
        from .. import _core

        return _core_info(), _core.ffi, _core.lib
    info = get(name)
    with _lock:
        mod = _modules.get(name)
    if mod is None:
        mod = _load_module(info)
        with _lock:
            _modules.setdefault(name, mod)
            mod = _modules[name]
    return info, mod[0], mod[1]


def load_pycall():
    """The aiocore._pycall extension (aiocore/_csrc/aio_pycall.c) that binds
    ctx.bh_schedule and ctx.notify to one context: the one `pip install`
    built, else (a source tree) a build in the cache."""
    global _pycall
    if _pycall is None:
        try:
            from .. import _pycall as m
        except ImportError:
            try:
                m = load_pycall_cached()
            except CompilerMissing as e:
                raise compiler_missing(e) from None
        _pycall = m
    return _pycall


_pycall = None


def forget() -> None:
    """Drop the modules loaded and the plugins discovered (tests install some)."""
    with _lock:
        _modules.clear()
    _plugins.forget()


__all__ = ["builtin_module_name", "c_source", "promela_source", "load_strategy", "load_trace",
           "load_pycall", "forget"]
