# cffi_modules entry points for the built-in strategies (setup.py lists one
# "aiocore/_compiler/_build_builtins.py:ffi_NAME" per strategy of pyproject.toml's
# "aiocore.strategies" group that lives in aiocore_strategies).
#
# cffi executes this file at build time, with __file__ set, before aiocore is
# importable (in pip's isolated build environment nothing of ours is
# installed).  So the strategy compiler is loaded by path: a stand-in package
# object named "aiocore" whose __path__ is the package directory (and
# one for aiocore._compiler, this directory) lets _strategy.py,
# _ir.py and _codegen.py import each other as they do at run time, and lets
# the strategy modules say `from aiocore._compiler._strategy import Strategy`.  Only
# pure-Python modules with no dependency on the compiled core are loaded.
#
# Each module is named aiocore._s_NAME and carries the description's
# fingerprint; at run time _plugins.py uses it only if that fingerprint still
# equals the description's, and compiles into the cache otherwise.
import importlib
import importlib.util
import os
import sys
import tomllib
import types

_here = os.path.dirname(os.path.abspath(__file__))  # aiocore/_compiler
_pkg = os.path.dirname(_here)  # aiocore
_root = os.path.dirname(_pkg)


def _package(name, path):
    if name in sys.modules:
        return sys.modules[name]
    m = types.ModuleType(name)
    m.__path__ = [path]
    sys.modules[name] = m
    return m


_package("aiocore", _pkg)
_package("aiocore._compiler", _here)
_package("aiocore_strategies", os.path.join(_root, "strategies"))

_strategy = importlib.import_module("aiocore._compiler._strategy")
_codegen = importlib.import_module("aiocore._compiler._codegen")
_spec = importlib.util.spec_from_file_location("_aiocore_build", os.path.join(_here, "_build.py"))
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

with open(os.path.join(_root, "pyproject.toml"), "rb") as _f:
    _eps = tomllib.load(_f)["project"]["entry-points"]["aiocore.strategies"]

for _name, _target in _eps.items():
    if not _target.startswith("aiocore_strategies."):
        continue
    _modname, _, _attr = _target.partition(":")
    _cls = getattr(importlib.import_module(_modname), _attr)
    _ir = _strategy.describe(_cls)
    _c = _codegen.generate_c(
        _ir, origin=_cls.origin, doc=_cls.__doc__ or "", source=f"aiocore[{_name}]"
    )
    globals()["ffi_" + _name.replace("-", "_")] = _build.make_ffi(
        "aiocore._s_" + _name.replace("-", "_"), _c
    )
