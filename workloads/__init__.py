"""aiocore's workloads: multiprocess drivers with their hot loops in C.

Workloads are plugins of the entry-point group ``aiocore.workloads`` (the
built-ins in ``builtin.py`` are registered in aiocore's pyproject.toml like
any third-party workload).  ``run_pair(strategy, workload)`` runs one pair
under the watchdog; ``aiocore stress`` runs the matrix.  See docs/stress.md.
"""
from ._base import ROLES, Plan, Workload
from ._registry import GROUP, broken, get, names, registry
from ._runner import RunResult, judge, run_pair
from ._watchdog import Finding, Watchdog

__all__ = [
    "GROUP", "ROLES", "Plan", "Workload", "Watchdog", "Finding", "RunResult",
    "broken", "get", "names", "registry", "run_pair", "judge",
]
