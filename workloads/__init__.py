"""aiocore's workloads: multiprocess drivers with their hot loops in C.

Workloads are plugins of the entry-point group ``aiocore.workloads`` (the
built-ins in ``builtin.py`` are registered in aiocore's pyproject.toml like
any third-party workload).  A workload is traffic; the owner's
path (``PATHS``) is the other axis.  ``run_pair(strategy, workload, path=...)``
runs one slice under the watchdog; ``_campaign.run`` spends a strategy's
budget across traffics, paths and chaos modes, guided by the model checker;
``aiocore stress`` runs one campaign per strategy.  See docs/stress.md.
"""
from ._base import PATHS, ROLES, Plan, Workload, with_path
from ._registry import GROUP, broken, get, names, registry
from ._runner import RunResult, judge, run_pair
from ._watchdog import Finding, Watchdog

__all__ = [
    "GROUP", "PATHS", "ROLES", "Plan", "with_path", "Workload", "Watchdog", "Finding", "RunResult",
    "broken", "get", "names", "registry", "run_pair", "judge",
]
