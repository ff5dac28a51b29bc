# Which loop explores a program: the C one (_fast.py) when it can run, else
# the Python one (_search.py, the reference).  Both give the same states,
# verdicts and counterexamples.
#
# Above both loops: _fast reuses _search's result type and cycle finder, and
# neither knows this module.
from __future__ import annotations

from . import _fast
from ._program import ModelError
from ._search import ExploreResult, search


def explore(ex, *, deadline=None, max_memory=None, engine="auto", progress=None) -> "ExploreResult":
    """Every reachable state of an Explorer's program: the loop in C
    (_fast.py) when it can run, else _search.search; both give the same
    states, verdicts and counterexamples.  ``engine`` "c" or "python" forces
    one ("c" raises ModelError when it cannot run).  ``progress(states)`` is
    called after each breadth-first layer."""
    if engine not in ("auto", "c", "python"):
        raise ModelError(f"unknown engine {engine!r} (engines: auto, c, python)")
    if engine != "python" and _fast.available(ex):
        try:
            return _fast.search(ex, deadline=deadline, max_memory=max_memory, progress=progress)
        except _fast.TooWide:
            if engine == "c":
                raise ModelError("the checker's C loop cannot run here: the state ids need more "
                                 "than 63 bits") from None
    elif engine == "c":
        raise ModelError(f"the checker's C loop cannot run here: {_fast.why_not() or 'program too large'}")
    r = search(ex, deadline=deadline, max_memory=max_memory, progress=progress)
    r.engine = "python"
    return r
