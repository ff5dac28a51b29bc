# Explicit-state exploration of a Program (see _program.py) under one memory
# model, breadth first, with the three properties of DESIGN.md.
#
# A state is a tuple (mem, event, owed, procs):
#   mem    the value of every shared location as all processes see it once
#          stores are visible;
#   event  1 if the EventNotifier is readable;
#   owed   per BH, 0->1 schedules not yet dispatched (a dispatch with nothing
#          owed is a double dispatch: lost work);
#   procs  per process (pc, env, buf, stale):
#            pc     index of its next visible instruction;
#            env    values of its live locals (dead ones zeroed, so that
#                   states differing only in dead values are one state);
#            buf    its store buffer (tso: FIFO of (loc, value); arm: entries
#                   (loc, value, is_rmw) and None markers = ordering barriers);
#            stale  (arm) per location, older values a load may still return
#                   (overwritten since the process's last load barrier).
from __future__ import annotations

import time

from ._program import (
    ARM, BR, DONE, DRAIN, ESET, ETAC, INFINITE, JMP, MARK, READ, RESET, RMW, SC, SET, STOP,
    TSO, WAIT, WRITE, ModelError, Program,
)

VERDICT_ORDER = ("pass", "lost-wakeup", "busy-loop", "lost-work")


class Explorer:
    def __init__(self, prog: Program, max_states: int = 5_000_000):
        self.prog = prog
        self.m = prog.model
        self.L = len(prog.loc_names)
        self.n = len(prog.procs)
        self.bh_index = {loc: k for k, loc in enumerate(prog.bh_locs)}
        self.EMPTY = ((),) * self.L if self.m == ARM else ()
        self.memo = [dict() for _ in prog.procs]
        self.pmemo = [dict() for _ in prog.procs]
        self.max_states = max_states
        self.done_pcs = [
            frozenset(pc for pc, ins in enumerate(p.code) if ins[0] == DONE) for p in prog.procs
        ]
        self.violation = None  # (state, what) of a double dispatch

    # --- local steps ---------------------------------------------------------

    def local(self, i, pc, env, buf):
        key = (pc, env, buf)
        memo = self.memo[i]
        r = memo.get(key)
        if r is None:
            r = memo[key] = self._local(i, pc, env, buf, None)
        return r

    def _local(self, i, pc, env, buf, log):
        """Run process i's local steps from pc until a visible instruction:
        branches, skeleton bookkeeping, fences that need not wait, and (tso,
        arm) stores entering the store buffer and loads it forwards."""
        P = self.prog.procs[i]
        code = P.code
        m = self.m
        env = list(env)
        reset = False
        guard = 0
        while True:
            guard += 1
            if guard > 100000:
                raise ModelError(f"{P.name}: a loop without any visible operation")
            ins = code[pc]
            op = ins[0]
            if op == BR:
                pc = pc + 1 if ins[1](env) else ins[2]
            elif op == JMP:
                pc = ins[1]
            elif op == SET:
                env[ins[1]] = ins[2](env)
                pc += 1
            elif op == RESET:
                reset = True
                pc += 1
            elif op == MARK:
                if buf and buf[-1] is not None:
                    buf = buf + (None,)
                    if log is not None:
                        log.append((pc, "store barrier enters the store buffer"))
                pc += 1
            elif op == DRAIN:
                if buf:
                    break
                if m == ARM:
                    reset = True
                pc += 1
            elif op == WRITE and m != SC:
                loc = ins[1]
                v = ins[3](env)
                if m == TSO:
                    buf = buf + ((loc, v),)
                else:
                    if ins[2] and buf and buf[-1] is not None:
                        buf = buf + (None,)
                    buf = buf + ((loc, v, False),)
                if log is not None:
                    log.append((pc, f"wrote {v} (into its store buffer)"))
                pc += 1
            elif op == READ and m != SC and buf:
                loc = ins[1]
                found = None
                for e in reversed(buf):
                    if e is not None and e[0] == loc:
                        found = e[1]
                        break
                if found is None:
                    break
                env[ins[3]] = found
                if ins[2] and m == ARM:
                    reset = True
                if log is not None:
                    log.append((pc, f"read {found} (forwarded from its own store buffer)"))
                pc += 1
            else:
                break
        live = P.live_env[pc]
        out = [0] * len(env)
        for k in live:
            out[k] = env[k]
        return pc, tuple(out), buf, reset

    def project(self, i, stale, pc):
        """Keep only the stale values process i may still read (arm)."""
        if stale is self.EMPTY:
            return stale
        live = self.prog.procs[i].stale_live[pc]
        if not live:
            return self.EMPTY
        key = (stale, pc)
        pm = self.pmemo[i]
        r = pm.get(key)
        if r is None:
            r = tuple(s if l in live else () for l, s in enumerate(stale))
            if not any(r):
                r = self.EMPTY
            pm[key] = r
        return r

    def after(self, i, pc, env, buf, stale, reset, log=None):
        if log is None:
            pc, env, buf, r2 = self.local(i, pc, env, buf)
        else:
            pc, env, buf, r2 = self._local(i, pc, env, buf, log)
        if self.m == ARM:
            stale = self.EMPTY if (reset or r2) else self.project(i, stale, pc)
        return (pc, env, buf, stale)

    def initial(self):
        procs = []
        for i, p in enumerate(self.prog.procs):
            procs.append(self.after(i, p.entry, (0,) * p.nslots, (), self.EMPTY, False))
        return ((0,) * self.L, 0, (0,) * len(self.prog.bh_locs), tuple(procs))

    # --- memory-level helpers -------------------------------------------------

    def _owed_write(self, owed, loc, old, new):
        k = self.bh_index.get(loc)
        if k is not None and old == 0 and new != 0:
            owed = owed[:k] + (owed[k] + 1,) + owed[k + 1:]
        return owed

    def _stale_commit(self, plist, i, loc, old, new):
        """arm: a store of process i to loc became visible."""
        procs = self.prog.procs
        for q in range(self.n):
            pq = plist[q]
            st = pq[3]
            if q == i:
                if st[loc]:
                    plist[q] = (pq[0], pq[1], pq[2], self._set_stale(q, st, loc, (), pq[0]))
                continue
            if old == new or loc not in procs[q].stale_live[pq[0]]:
                continue
            lst = st[loc]
            if old in lst:
                lst = tuple(x for x in lst if x != old)
            lst = lst + (old,)
            plist[q] = (pq[0], pq[1], pq[2], self._set_stale(q, st, loc, lst, pq[0]))

    def _set_stale(self, q, st, loc, lst, pc):
        if st is self.EMPTY:
            if not lst:
                return st
            st = ((),) * self.L
        st = st[:loc] + (lst,) + st[loc + 1:]
        if not any(st):
            return self.EMPTY
        return st

    # --- successors ------------------------------------------------------------

    def successors(self, state, verbose=False):
        """[(description or None, next state)] of a state."""
        mem, ev, owed, procs = state
        out = []
        m = self.m
        for i in range(self.n):
            p = procs[i]
            pc, env, buf, stale = p
            P = self.prog.procs[i]
            ins = P.code[pc]
            op = ins[0]
            log = [] if verbose else None
            if op == READ:
                loc = ins[1]
                cur = mem[loc]
                lst = stale[loc] if m == ARM else ()
                if lst:
                    opts = [(v, lst[j:]) for j, v in enumerate(lst)]
                    if cur not in lst:
                        opts.append((cur, ()))
                else:
                    opts = ((cur, ()),)
                dst = ins[3]
                for v, rest in opts:
                    e2 = list(env)
                    e2[dst] = v
                    st = stale
                    if m == ARM and lst:
                        st = self._set_stale(i, stale, loc, rest, pc)
                    np = self.after(i, pc + 1, tuple(e2), buf, st, ins[2], log)
                    ns = (mem, ev, owed, procs[:i] + (np,) + procs[i + 1:])
                    if verbose:
                        note = "" if v == cur else f" (a stale value: memory holds {cur})"
                        out.append((self._desc(i, pc, f"read {v}{note}", ns, log), ns))
                        log = []
                    else:
                        out.append((None, ns))
            elif op == WRITE:  # sc only: tso/arm stores enter the buffer locally
                loc = ins[1]
                v = ins[3](env)
                old = mem[loc]
                mem2 = mem[:loc] + (v,) + mem[loc + 1:]
                owed2 = self._owed_write(owed, loc, old, v)
                np = self.after(i, pc + 1, env, buf, stale, False, log)
                ns = (mem2, ev, owed2, procs[:i] + (np,) + procs[i + 1:])
                out.append((self._desc(i, pc, f"wrote {v}", ns, log) if verbose else None, ns))
            elif op == RMW:
                loc = ins[1]
                if m == ARM:
                    if any(e is not None and e[0] == loc for e in buf):
                        continue  # its own earlier store to loc must become visible first
                    if self._reserved(procs, i, loc):
                        continue  # another RMW on loc is in flight (exclusive monitor)
                old = mem[loc]
                operand = ins[3](env)
                expected = ins[4](env) if ins[4] is not None else None
                new, writes = ins[2](old, operand, expected)
                dst = ins[5]
                e2 = env
                if dst >= 0:
                    e2 = list(env)
                    e2[dst] = old
                    e2 = tuple(e2)
                owed2 = owed
                claim = ins[6]
                if claim >= 0 and old != 0:
                    owed2 = owed[:claim] + (owed[claim] - 1,) + owed[claim + 1:]
                mem2 = mem
                buf2 = buf
                if writes:
                    if m == ARM:
                        if buf2 and buf2[-1] is not None:
                            buf2 = buf2 + (None,)
                        buf2 = buf2 + ((loc, new, True), None)
                    else:
                        mem2 = mem[:loc] + (new,) + mem[loc + 1:]
                        owed2 = self._owed_write(owed2, loc, old, new)
                np = self.after(i, pc + 1, e2, buf2, stale, True, log)
                ns = (mem2, ev, owed2, procs[:i] + (np,) + procs[i + 1:])
                if claim >= 0 and owed2[claim] < 0 and self.violation is None:
                    self.violation = (ns, f"bh{claim} dispatched twice for one schedule")
                if verbose:
                    what = f"read {old}" + (f", wrote {new}" if writes else ", no write")
                    if writes and m == ARM:
                        what += " (the store waits in its store buffer)"
                    out.append((self._desc(i, pc, what, ns, log), ns))
                else:
                    out.append((None, ns))
            elif op == ESET:
                np = self.after(i, pc + 1, env, buf, stale, True, log)
                ns = (mem, 1, owed, procs[:i] + (np,) + procs[i + 1:])
                out.append((self._desc(i, pc, "the notifier is now readable", ns, log) if verbose else None, ns))
            elif op == ETAC:
                e2 = env
                if ins[1] >= 0:
                    e2 = list(env)
                    e2[ins[1]] = ev
                    e2 = tuple(e2)
                np = self.after(i, pc + 1, e2, buf, stale, True, log)
                ns = (mem, 0, owed, procs[:i] + (np,) + procs[i + 1:])
                out.append((self._desc(i, pc, f"it was {'readable' if ev else 'not readable'}; now clear", ns, log)
                            if verbose else None, ns))
            elif op == WAIT:
                tslot = ins[1]
                infinite = tslot >= 0 and env[tslot] == INFINITE
                if infinite and not ev:
                    continue  # sleeps until the notifier is readable
                e2 = env
                if ins[2] >= 0:
                    e2 = list(env)
                    e2[ins[2]] = ev
                    e2 = tuple(e2)
                np = self.after(i, pc + 1, e2, buf, stale, True, log)
                ns = (mem, ev, owed, procs[:i] + (np,) + procs[i + 1:])
                if verbose:
                    if infinite:
                        what = "timeout infinite: woken, the notifier is readable"
                    else:
                        what = f"timeout 0: the notifier is {'readable' if ev else 'not readable'}"
                    out.append((self._desc(i, pc, what, ns, log), ns))
                else:
                    out.append((None, ns))
            elif op == STOP:
                np = self.after(i, pc + 1, env, buf, stale, False, log)
                ns = (mem, ev, owed, procs[:i] + (np,) + procs[i + 1:])
                out.append((self._desc(i, pc, "polls again", ns, log) if verbose else None, ns))
                np = (ins[1], (0,) * len(env), buf, self.EMPTY)
                ns = (mem, ev, owed, procs[:i] + (np,) + procs[i + 1:])
                out.append((self._desc(i, pc, "leaves for good", ns, []) if verbose else None, ns))
            # DRAIN with a non-empty buffer, DONE: nothing but commits
            if buf:
                self._commits(state, i, out, verbose)
        return out

    def _reserved(self, procs, i, loc):
        for q in range(self.n):
            if q != i:
                for e in procs[q][2]:
                    if e is not None and e[0] == loc and len(e) > 2 and e[2]:
                        return True
        return False

    def _commits(self, state, i, out, verbose):
        mem, ev, owed, procs = state
        pc, env, buf, stale = procs[i]
        m = self.m
        if m == TSO:
            cands = (0,)
        else:
            cands = []
            seen = set()
            for j, e in enumerate(buf):
                if e is None:
                    break
                if e[0] in seen:
                    continue
                seen.add(e[0])
                if not e[2] and self._reserved(procs, i, e[0]):
                    continue
                cands.append(j)
        for j in cands:
            e = buf[j]
            loc, v = e[0], e[1]
            old = mem[loc]
            mem2 = mem[:loc] + (v,) + mem[loc + 1:]
            owed2 = self._owed_write(owed, loc, old, v)
            buf2 = buf[:j] + buf[j + 1:]
            if m == ARM:
                buf2 = _norm(buf2)
            plist = list(procs)
            if m == ARM:
                self._stale_commit(plist, i, loc, old, v)
            pi = plist[i]
            log = [] if verbose else None
            plist[i] = self.after(i, pi[0], pi[1], buf2, pi[3], False, log)
            ns = (mem2, ev, owed2, tuple(plist))
            if verbose:
                d = {
                    "process": self.prog.procs[i].name,
                    "where": "store buffer",
                    "op": f"{self.prog.loc_names[loc]} = {v} becomes visible",
                    "result": f"{self.prog.loc_names[loc]}: {old} -> {v}",
                    "local": self._log_items(i, log),
                    "buffers": self._buffers(ns),
                    "commit": True,
                }
                out.append((d, ns))
            else:
                out.append((None, ns))

    # --- descriptions (traces) -------------------------------------------------

    def _buffers(self, state):
        if self.m == SC:
            return {}
        out = {}
        names = self.prog.loc_names
        for i, p in enumerate(state[3]):
            items = []
            for e in p[2]:
                if e is None:
                    items.append("|")
                else:
                    items.append(f"{names[e[0]]}={e[1]}" + ("(rmw)" if len(e) > 2 and e[2] else ""))
            if items:
                out[self.prog.procs[i].name] = items
        return out

    def _log_items(self, i, log):
        labels = self.prog.procs[i].labels
        return [(labels[q][0], labels[q][1], what) for q, what in (log or ())]

    def _desc(self, i, pc, result, ns, log):
        P = self.prog.procs[i]
        where, text = P.labels[pc]
        return {
            "process": P.name,
            "where": where,
            "op": text,
            "result": result,
            "local": self._log_items(i, log),
            "buffers": self._buffers(ns),
        }

    # --- exploration -------------------------------------------------------------

    def quiescent(self, state):
        """All processes but the home poller have finished, buffers empty."""
        procs = state[3]
        for q in range(1, self.n):
            p = procs[q]
            if p[0] not in self.done_pcs[q] or p[2]:
                return False
        return True

    def classify_terminal(self, state):
        """None (fine / not a real end), or (verdict, explanation)."""
        mem, ev, owed, procs = state
        for p in procs:
            if p[2]:
                return None  # stores still in flight: an exclusive-monitor deadlock, not an end
        h = procs[0]
        P = self.prog.procs[0]
        ins = P.code[h[0]]
        names = self.prog.loc_names
        if ins[0] == WAIT and ins[1] >= 0 and h[1][ins[1]] == INFINITE and not ev:
            pending = [names[loc] for loc in self.prog.bh_locs if mem[loc]]
            if pending:
                return ("lost-wakeup",
                        f"home poller sleeps in ppoll with an infinite timeout, "
                        f"{', '.join(pending)} = 1, notifier not readable, and no process "
                        f"is left to write it")
            lost = [f"bh{k}" for k, o in enumerate(owed) if o > 0]
            if lost:
                return ("lost-work", f"schedule of {', '.join(lost)} never dispatched "
                        f"(its flag was cleared without a dispatch)")
            return None
        return ("deadlock", f"home poller stuck at {P.labels[h[0]]}")

    def explore(self, deadline=None):
        init = self.initial()
        parent = {init: None}
        frontier = [init]
        depth = 0
        found = {}  # verdict -> (state, explanation)
        qgraph = {}
        qdepth = {}
        transitions = 0
        succ = self.successors
        quiescent = self.quiescent
        t0 = time.monotonic()
        truncated = False
        while frontier:
            nxt = []
            for s in frontier:
                outs = succ(s)
                transitions += len(outs)
                if not outs:
                    c = self.classify_terminal(s)
                    if c is not None and c[0] not in found:
                        found[c[0]] = (s, c[1])
                if quiescent(s):
                    qgraph[s] = [t for _, t in outs]
                    qdepth[s] = depth
                for _, t in outs:
                    if t not in parent:
                        parent[t] = s
                        nxt.append(t)
                if self.violation is not None:
                    break
            if self.violation is not None:
                found["lost-work"] = self.violation
                break
            if len(parent) > self.max_states or (deadline is not None and time.monotonic() > deadline):
                truncated = True
                break
            frontier = nxt
            depth += 1
        cycle = None
        if not truncated and "lost-work" not in found:
            cycle = self._find_cycle(qgraph, qdepth)
            if cycle is not None:
                found["busy-loop"] = (cycle[0][0], "after the last notification the home poller "
                                      "never sleeps again (the loop below repeats forever)")
        return ExploreResult(self, parent, found, cycle, len(parent), transitions,
                             time.monotonic() - t0, truncated)

    def _find_cycle(self, qgraph, qdepth):
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
        k = index[cur]
        # the lasso: path[:k] leads into the loop path[k:], which returns to path[k]
        return (path[0], path, k)


def _norm(buf):
    """arm store buffer: no leading barrier, no two barriers in a row."""
    out = []
    for x in buf:
        if x is None and (not out or out[-1] is None):
            continue
        out.append(x)
    return tuple(out)


class ExploreResult:
    def __init__(self, ex, parent, found, cycle, states, transitions, seconds, truncated):
        self.ex = ex
        self.parent = parent
        self.found = found
        self.cycle = cycle
        self.states = states
        self.transitions = transitions
        self.seconds = seconds
        self.truncated = truncated

    @property
    def verdict(self):
        bad = [v for v in self.found if v in VERDICT_ORDER]
        if not bad:
            return "pass"
        return max(bad, key=VERDICT_ORDER.index)

    def path_to(self, state):
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
