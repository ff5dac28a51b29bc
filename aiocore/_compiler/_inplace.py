# Importing aiocore from its source tree.
#
# `pip install .` compiles aiocore's C into site-packages; the clone's own
# aiocore/ directory never gets the compiled modules.  Yet a Python started
# in the clone root puts the clone first on sys.path, so `import aiocore`
# finds the source tree, and the first call into C used to fail with
# "cannot import name '_core'".
#
# Here the source tree builds what it lacks on first use, the way
# third-party strategies are built: into the fingerprint-keyed cache of
# aiocore._compiler._build.load_cached (~/.cache/aiocore, or $AIOCORE_CACHE), keyed by
# the C sources' digest, so an edit to the C rebuilds and nothing stale is
# ever loaded.  Only one module needs help:
#
#   aiocore._core     the hand-written reference with the core (header
#                     reading, `info`, `gc`, strategy "unconditional-c").  A
#                     meta-path finder, installed only when aiocore/ has no
#                     compiled _core next to it, answers `from . import
#                     _core` with a module holding the cached build's ffi
#                     and lib.
#   aiocore._s_NAME   the built-in strategies: _plugins already falls back
#                     to compiling the description into the cache when the
#                     install-time module is missing (or stale).
#
# Without a C compiler the import fails with CompilerMissing naming the
# source tree, the cause and the fix.
#
# Child processes (workload drivers, the janitor, test helpers) must import
# the same aiocore as their parent.  An installed aiocore's helpers run with
# PYTHONSAFEPATH=1 (aiocore._cli, tests/conftest.py, the workload runner),
# which keeps a source tree in the current directory off their sys.path; a
# source-tree aiocore puts its root first on PYTHONPATH, which
# PYTHONSAFEPATH does not remove, so they import this tree too.
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

#: The aiocore package directory (this module sits in aiocore/_compiler/);
#: the compiled modules aiocore._core and aiocore._s_NAME live there.
PKG = Path(__file__).resolve().parent.parent
ROOT = PKG.parent
CORE = "aiocore._core"
#: The cache key of the in-tree core build (the hooks and the C sources'
#: digest are added by load_cached).
CORE_KEY = "unconditional-c-core"
#: Set by install(): this aiocore has no compiled modules and builds them.
BUILDS_IN_PLACE = False


def has_compiled_core(pkg: Path = PKG) -> bool:
    """Whether `pip install` (or an in-place build) put aiocore._core here."""
    return any((pkg / ("_core" + s)).exists() for s in importlib.machinery.EXTENSION_SUFFIXES)


def is_source_tree(root: Path = ROOT) -> bool:
    """Whether this aiocore/ sits in a checkout (pyproject.toml and setup.py beside it)."""
    return (root / "pyproject.toml").is_file() and (root / "setup.py").is_file()


def _where() -> str:
    return f"the source tree {ROOT}" if is_source_tree() else f"{PKG}"


def compiler_missing(e: Exception):
    """The CompilerMissing to raise when building `what` failed for want of a
    compiler: for a source tree, naming the tree, the cause and the fix."""
    from ._build import cache_dir
    from .._errors import CompilerMissing

    if not BUILDS_IN_PLACE:
        return CompilerMissing(str(e))
    return CompilerMissing(
        f"aiocore was imported from {_where()}, whose aiocore/ has no compiled modules "
        f"(`pip install .` builds them into site-packages, not here); building them into "
        f"the cache {cache_dir()} failed: {e}.  Fix: install a C compiler, or use the "
        f"installed aiocore by starting Python outside the source tree (or with `python -P`, "
        f"which keeps the current directory off sys.path)."
    )


class _CoreLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # a plain module; exec_module fills it

    def exec_module(self, module):
        from ._build import cache_dir, hooks_header, load_cached
        from .._errors import CompilerMissing, StrategyError

        try:
            ffi, lib = load_cached(CORE_KEY, hooks_header("unconditional"))
        except CompilerMissing as e:
            raise compiler_missing(e) from None
        except StrategyError as e:
            raise ImportError(
                f"aiocore was imported from {_where()} without its compiled modules, and "
                f"building aiocore._core into the cache {cache_dir()} failed: {e}",
                name=CORE,
            ) from None
        module.ffi, module.lib = ffi, lib
        for m in list(sys.modules.values()):  # the cached build, for __file__
            if getattr(m, "lib", None) is lib and m is not module:
                module.__file__ = getattr(m, "__file__", None)
                break


class _CoreFinder(importlib.abc.MetaPathFinder):
    """Finds aiocore._core for a tree that has no compiled one."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != CORE:
            return None
        return importlib.util.spec_from_loader(fullname, _CoreLoader(), origin="aiocore-cache")


def _pin_children() -> None:
    """Put this tree first on the PYTHONPATH children inherit."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *parts])


def install() -> bool:
    """Called by aiocore/__init__.py.  A no-op for an aiocore with its
    compiled modules; otherwise installs the finder and pins children.
    Returns whether this aiocore builds in place."""
    global BUILDS_IN_PLACE
    if has_compiled_core():
        return False
    BUILDS_IN_PLACE = True
    if not any(isinstance(f, _CoreFinder) for f in sys.meta_path):
        sys.meta_path.append(_CoreFinder())
    _pin_children()
    return True


__all__ = ["install", "has_compiled_core", "is_source_tree", "ROOT"]
