# Only for cffi_modules: cffi has no declarative configuration.  Everything
# else is in pyproject.toml.
#
# One compiled module per strategy: the hand-written reference (aiocore._core)
# and every built-in strategy plugin of pyproject.toml's "aiocore.strategies"
# entry points (aiocore._s_NAME, generated from its Python description by
# aiocore/_compiler/_build_builtins.py).  Plus one plain CPython extension,
# aiocore._pycall (aiocore/_csrc/aio_pycall.c): ctx.bh_schedule and
# ctx.notify as built-ins bound to their context, whatever the strategy.
import os
import tomllib

from setuptools import Extension, setup

_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, "pyproject.toml"), "rb") as f:
    _eps = tomllib.load(f)["project"]["entry-points"]["aiocore.strategies"]

setup(
    # Eleven independent C modules: compile them side by side (one job per
    # CPU), which halves `pip install .` and tox's one wheel on 2 cores.
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
    ext_modules=[Extension("aiocore._pycall", ["aiocore/_csrc/aio_pycall.c"])],
    cffi_modules=["aiocore/_compiler/_build_modules.py:ffi_core"]
    + [
        "aiocore/_compiler/_build_builtins.py:ffi_" + name.replace("-", "_")
        for name, target in _eps.items()
        if target.startswith("aiocore_strategies.")
    ],
)
