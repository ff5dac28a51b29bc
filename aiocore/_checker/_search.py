# The search over an Explorer's states: breadth first, the three properties of
# DESIGN.md, and the limits that can cut it short.
#
# Breadth first, so that the first bad state of each kind found is at the
# smallest depth: its path from the initial state is the shortest
# counterexample.  Terminal states are classified as they are expanded (a
# lost wake-up or lost work is an end state), a double dispatch is flagged by
# the transition that makes it, and the busy loop is looked for once the
# whole space is known: a cycle among the quiescent states (everyone but the
# home poller gone, every store visible).
#
# A search cut short -- by max_states, a deadline or max_memory -- proves only
# what it found.  A failure found before the cut is a real execution and
# stands; "no failure found" proves nothing, so the caller reports "unknown"
# (ExploreResult.stopped_by says which limit), and no busy-loop search is
# made on a partial graph (a cycle among the states seen is real, but its
# absence is not).
from __future__ import annotations

import os
import time

VERDICT_ORDER = ("pass", "lost-wakeup", "busy-loop", "lost-work")

#: How often (in new states) the resident memory is read when max_memory is set.
MEMORY_CHECK_EVERY = 20_000

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm (0 if unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def search(ex, *, deadline=None, max_memory=None, progress=None) -> "ExploreResult":
    """Breadth first from ex.initial(); ``progress(states)`` after each layer."""
    init = ex.initial()
    parent = {init: None}
    frontier = [init]
    depth = 0
    found = {}  # verdict -> (state, explanation)
    via = {}  # the double dispatch's target -> the state it was made from
    qgraph = {}
    qdepth = {}
    transitions = 0
    succ = ex.successors
    quiescent = ex.quiescent
    t0 = time.monotonic()
    stopped_by = None
    check_at = MEMORY_CHECK_EVERY if max_memory else None
    peak = 0
    while frontier and stopped_by is None:
        nxt = []
        for s in frontier:
            outs = succ(s)
            transitions += len(outs)
            if not outs:
                c = ex.classify_terminal(s)
                if c is not None and c[0] not in found:
                    found[c[0]] = (s, c[1])
            if quiescent(s):
                qgraph[s] = [t for _, t in outs]
                qdepth[s] = depth
            for _, t in outs:
                if t not in parent:
                    parent[t] = s
                    nxt.append(t)
            if ex.violation is not None:
                break
            if check_at is not None and len(parent) >= check_at:
                check_at = len(parent) + MEMORY_CHECK_EVERY
                peak = max(peak, rss_bytes())
                if peak > max_memory:
                    stopped_by = "max-memory"
                    break
        if ex.violation is not None:
            target, bad, source = ex.violation
            found["lost-work"] = (target, bad)
            via[target] = source
            break
        if stopped_by is None:
            if len(parent) > ex.max_states:
                stopped_by = "max-states"
            elif deadline is not None and time.monotonic() > deadline:
                stopped_by = "max-seconds"
        frontier = nxt
        depth += 1
        if progress is not None:
            progress(len(parent))
    cycle = None
    if stopped_by is None and "lost-work" not in found:
        cycle = find_cycle(qgraph, qdepth)
        if cycle is not None:
            found["busy-loop"] = (cycle[0], "after the last notification the home poller never "
                                  "sleeps again: the loop above repeats forever")
    return ExploreResult(ex, parent, found, cycle, len(parent), transitions,
                         time.monotonic() - t0, stopped_by, peak, via)


def find_cycle(qgraph, qdepth):
    """A lasso in the quiescent subgraph (the home poller alone): the path
    to a loop and the loop; None if every quiescent path ends."""
    if not qgraph:
        return None
    outdeg = {}
    preds = {}
    for s, ts in qgraph.items():
        uniq = set(ts)
        outdeg[s] = len(uniq)
        for t in uniq:
            preds.setdefault(t, []).append(s)
    stack = [s for s, d in outdeg.items() if d == 0]
    removed = set()
    while stack:
        s = stack.pop()
        removed.add(s)
        for p in preds.get(s, ()):
            outdeg[p] -= 1
            if outdeg[p] == 0:
                stack.append(p)
    remaining = [s for s in qgraph if s not in removed]
    if not remaining:
        return None
    rem = set(remaining)
    start = min(remaining, key=lambda s: qdepth[s])
    path, index = [], {}
    cur = start
    while cur not in index:
        index[cur] = len(path)
        path.append(cur)
        cur = next(t for t in qgraph[cur] if t in rem)
    # the lasso: path[:k] leads into the loop path[k:], which returns to path[k]
    return (path[0], path, index[cur])


class ExploreResult:
    def __init__(self, ex, parent, found, cycle, states, transitions, seconds, stopped_by=None,
                 peak_rss=0, via=None):
        self.ex = ex
        self.parent = parent
        self.found = found
        self.cycle = cycle
        self.states = states
        self.transitions = transitions
        self.seconds = seconds
        self.stopped_by = stopped_by  # None, "max-states", "max-seconds", "max-memory"
        self.peak_rss = peak_rss
        # A double dispatch is a move, not a state: the state it leads to may
        # have been reached first by a path without it (the owed count is
        # clamped at 0), so its counterexample is the path to the state it
        # was made from, then that move.
        self.via = via or {}

    @property
    def truncated(self) -> bool:
        return self.stopped_by is not None

    @property
    def verdict(self):
        """The worst failure found; "pass" only for a complete search, else "unknown"."""
        bad = [v for v in self.found if v in VERDICT_ORDER]
        if not bad:
            return "unknown" if self.truncated else "pass"
        return max(bad, key=VERDICT_ORDER.index)

    def path_to(self, state):
        if state in self.via:
            return self.path_to(self.via[state]) + [state]
        if hasattr(self.parent, "path_to"):  # the C loop's parent links (_fast.py)
            return self.parent.path_to(state)
        path = []
        while state is not None:
            path.append(state)
            state = self.parent[state]
        path.reverse()
        return path

    def steps(self, states):
        """Descriptions of the transitions along a list of states."""
        out = []
        for a, b in zip(states, states[1:]):
            for d, t in self.ex.successors(a, verbose=True):
                if t == b:
                    out.append(d)
                    break
            else:  # pragma: no cover
                out.append({"process": "?", "where": "?", "op": "?", "result": "?", "local": [],
                            "buffers": {}})
        return out
