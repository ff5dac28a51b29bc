# cffi_modules entry points for setup.py (executed by cffi at build time,
# with __file__ set, before aiocore is importable).
#
# ffi_core: the hand-written reference strategy ("unconditional-c") with the
# core; it also serves everything that needs no particular strategy (reading
# headers for `aiocore info`, `aiocore gc`).
import importlib.util
import os

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("_aiocore_build", os.path.join(_here, "_build.py"))
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

ffi_core = _build.make_ffi("aiocore._core", _build.hooks_header("unconditional"))
