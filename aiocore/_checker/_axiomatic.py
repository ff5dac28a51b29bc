"""An axiomatic checker for litmus programs, independent of the protocol checker.

``outcomes(model, threads)`` enumerates the candidate executions of a program
in the op language (aiocore._checker._litmus_ops) -- a reads-from source for
every read and a coherence order per location -- and keeps those the model's
axioms accept.  It shares no code with the operational explorer
(aiocore._checker._explore): the two are meant to be held against each other,
and both against herd7.

Models
======

``sc``        acyclic(po | rf | co | fr); atomicity.                (sc.cat)
``tso``       x86-TSO as herd7's x86tso.cat states it:
              acyclic(po-loc | rf | co | fr); atomicity;
              acyclic(ghb), ghb = mfence | implied | WW(po) | RM(po) | rfe | fr | co,
              implied = the W->R pairs of po with a locked event at either end
              (every RMW is locked, a failed cmpxchg still locks its read).
``arm-llsc``  ARMv8 (herd7 7.57's aarch64.cat, restricted to what the ops
``arm-lse``   produce: explicit, aligned, same-size accesses; DMB ISH /
              DMB ISHLD; acquire and release; RMWs; control dependencies):
  internal    irreflexive [R]; (po-loc | rmw); [W]; rfi          (coRW1)
              irreflexive [W]; po-loc; [W]; (ca & int)           (coWW)
              irreflexive [W]; po-loc; [R]; (ca & int)           (coWR)
  atomic      rmw & (fr; co) = empty
  external    ob acyclic, ob = (obs | [M]; lob; [M] | haz)+ with
              obs = rfe | coe | fre            (other-multi-copy atomic)
              haz = [R]; po-loc; [R]; (ca & ext); [W]   (hazard-ordered: CoRR)
              lob = (lws | dob | aob | bob)+
              lws = po-loc; [W]
              dob = ctrl; [W]                  (``br``; and cmpxchg's B.NE)
              aob = rmw | rmw; lrs; [A]
              bob = po; [dmb.full]; po | [R]; po; [dmb.ld]; po
                  | [range([A]; amo; [L])]; po | [L]; po; [A] | [A]; po | po; [L]
  The profiles differ in the RMW: ``arm-llsc`` is GCC's LDAXR/STLXR loop (an
  exclusive pair: its read is A, its write L, no amo), ``arm-lse`` the single
  AL instruction (SWPAL, LDADDAL, CASAL, LDSETAL, LDCLRAL: read A, write L,
  and the pair is an amo, so the write is ordered before every later access).
  A failed cmpxchg is its acquire read alone in both.  (Every RMW here is
  acquire+release, so aob's ``rmw`` is implied by [A]; po and po; [L]; it is
  kept to follow the definition.)  smp_mb and smp_wmb are
  dmb.full, smp_rmb dmb.ld (GCC 12's code, see aiocore._checker._herd).
``arm``       the union of arm-llsc and arm-lse (what a default
              ``-moutline-atomics`` build may do).

Values are uint32; an outcome is a tuple of the register values then the final
value of each location (``Program.keys``).
"""
from __future__ import annotations

import itertools

from .._compiler._meta import MODELS
from ._litmus_ops import (LOADS, MASK, RMWS, STORES, LitmusError, Program, init_values, matches, outcome_filter,
                          parse, rmw_new)

# Event flags.
R, W, ACQ, REL, LOCKED, AMO, FULL, LD, MFENCE = (1 << i for i in range(9))


class _Events:
    """The potential events of a program under one model, and its static relations."""

    def __init__(self, prog: Program, model: str):
        self.model = model
        self.tid, self.flags, self.loc, self.val, self.reg = [], [], [], [], []
        self.rmw = {}         # read event -> (write event, op)
        self.cas = {}         # write event -> (read event, expected): present iff the read saw expected
        self.ctrl = []        # (source read, first event controlled)
        self.thread_events = []
        arm, lse = model.startswith("arm"), model == "arm-lse"
        for t, ops in enumerate(prog.threads):
            mine, producer = [], {}

            def ev(flags, loc=None, val=None, reg=None):
                self.tid.append(t)
                self.flags.append(flags)
                self.loc.append(loc)
                self.val.append(val)
                self.reg.append(reg)
                mine.append(len(self.tid) - 1)
                return mine[-1]

            for op in ops:
                k = op.kind
                loc = None if op.loc is None else prog.locations.index(op.loc)
                if k in LOADS:
                    producer[op.reg] = ev(R | (ACQ if arm and k == "ld_acq" else 0), loc, reg=op.reg)
                elif k in STORES:
                    ev(W | (REL if arm and k == "st_rel" else 0), loc, op.value)
                elif k in RMWS:
                    rf = R | LOCKED | (ACQ if arm else 0)
                    wf = W | LOCKED | (REL if arm else 0) | (AMO if lse else 0)
                    r = ev(rf, loc, reg=op.reg)
                    w = ev(wf, loc)
                    self.rmw[r] = (w, op)
                    if k == "cmpxchg":
                        self.cas[w] = (r, op.expected)
                        if arm and not lse:  # LDAXR; CMP; B.NE: the rest depends on the read
                            self.ctrl.append((r, len(mine)))
                    if op.reg:
                        producer[op.reg] = r
                elif k == "mb":
                    ev(FULL | MFENCE)
                elif k == "wmb":
                    if arm:
                        ev(FULL)
                elif k == "rmb":
                    if arm:
                        ev(LD)
                elif k == "br":
                    self.ctrl.append((producer[op.reg], len(mine)))
            self.thread_events.append(mine)
        self.n = len(self.tid)
        pos = {}
        for mine in self.thread_events:
            for i, e in enumerate(mine):
                pos[e] = i
        self.pos = pos
        self.ctrl = [(src, set(self.thread_events[self.tid[src]][first:])) for src, first in self.ctrl]
        self.reads = [e for e in range(self.n) if self.flags[e] & R]
        self.writes = [e for e in range(self.n) if self.flags[e] & W]
        self._static = {}
        self.ext = [sum(1 << b for b in range(self.n) if self.tid[b] != self.tid[a]) for a in range(self.n)]
        self.rmw_of_write = {w: (r, op) for r, (w, op) in self.rmw.items()}

    def po(self, a, b):
        return self.tid[a] == self.tid[b] and self.pos[a] < self.pos[b]

    def static(self, present: int):
        """The model's relations that do not depend on rf/co, over the present events."""
        got = self._static.get(present)
        if got is None:
            got = self._static[present] = self._build_static(present)
        return got

    def _build_static(self, present):
        ev = [e for e in range(self.n) if present >> e & 1]
        mem = [e for e in ev if self.flags[e] & (R | W)]
        F, n = self.flags, self.n
        po = [0] * n
        for a in ev:
            for b in ev:
                if self.po(a, b):
                    po[a] |= 1 << b
        ploc = [0] * n
        for a in mem:
            for b in mem:
                if po[a] >> b & 1 and self.loc[a] == self.loc[b]:
                    ploc[a] |= 1 << b
        if self.model == "sc":
            return po, ploc, po
        if self.model == "tso":
            ghb = [0] * n
            for a in mem:
                for b in mem:
                    if not po[a] >> b & 1:
                        continue
                    if F[a] & R or F[b] & W:  # RM(po) | WW(po)
                        ghb[a] |= 1 << b
                    elif F[a] & LOCKED or F[b] & LOCKED:  # implied: a W->R pair with a locked end
                        ghb[a] |= 1 << b
                    elif any(F[f] & MFENCE and po[a] >> f & 1 and po[f] >> b & 1 for f in ev):
                        ghb[a] |= 1 << b
            return po, ploc, ghb
        return po, ploc, self._arm_lob(ev, mem, po, ploc)

    def _arm_lob(self, ev, mem, po, ploc):
        F, n = self.flags, self.n
        lob = [0] * n
        amo_w = {w for r, (w, _) in self.rmw.items() if F[w] & AMO and F[r] & ACQ and F[w] & REL}
        for a in mem:
            for b in mem:
                if not po[a] >> b & 1:
                    continue
                between = [f for f in ev if po[a] >> f & 1 and po[f] >> b & 1]
                if (ploc[a] >> b & 1 and F[b] & W                      # lws
                        or any(F[f] & FULL for f in between)           # po; [dmb.full]; po
                        or F[a] & R and any(F[f] & LD for f in between)  # [R]; po; [dmb.ld]; po
                        or a in amo_w                                  # [range([A]; amo; [L])]; po
                        or F[a] & REL and F[b] & ACQ                   # [L]; po; [A]
                        or F[a] & ACQ                                  # [A]; po
                        or F[b] & REL):                                # po; [L]
                    lob[a] |= 1 << b
        for src, after in self.ctrl:  # dob: ctrl; [W]
            if src in mem:
                for b in after:
                    if b in mem and F[b] & W:
                        lob[src] |= 1 << b
        for r, (w, _) in self.rmw.items():  # aob: rmw | rmw; lrs; [A]
            if r in mem and w in mem:
                lob[r] |= 1 << w
                for b in mem:
                    if F[b] & R and F[b] & ACQ and ploc[w] >> b & 1 and not any(
                            F[c] & W and ploc[w] >> c & 1 and ploc[c] >> b & 1 for c in mem):
                        lob[r] |= 1 << b
        return _closure(lob, mem)


def _closure(rel, nodes):
    """Transitive closure of a bitmask relation (Warshall)."""
    rel = list(rel)
    for k in nodes:
        bk = 1 << k
        rk = rel[k]
        for i in nodes:
            if rel[i] & bk:
                rel[i] |= rk
    return rel


def _acyclic(rel, nodes) -> bool:
    """Is the bitmask relation over ``nodes`` acyclic (Kahn)?"""
    indeg = {v: 0 for v in nodes}
    mask = 0
    for v in nodes:
        mask |= 1 << v
    for v in nodes:
        s = rel[v] & mask
        while s:
            b = s & -s
            indeg[b.bit_length() - 1] += 1
            s ^= b
    todo = [v for v in nodes if indeg[v] == 0]
    seen = 0
    while todo:
        v = todo.pop()
        seen += 1
        s = rel[v] & mask
        while s:
            b = s & -s
            u = b.bit_length() - 1
            indeg[u] -= 1
            if indeg[u] == 0:
                todo.append(u)
            s ^= b
    return seen == len(nodes)


INIT = -1


def _values(evs: _Events, rf: dict, init: tuple):
    """(value of every event, present-event mask) for an rf choice; None if
    inconsistent.  ``init``: each location's initial value."""
    val = {}
    busy = set()

    def read_value(r):
        if r in val:
            return val[r]
        if r in busy:
            raise _Cycle
        busy.add(r)
        src = rf[r]
        val[r] = init[evs.loc[r]] if src == INIT else write_value(src)
        return val[r]

    def write_value(w):
        if w in val:
            return val[w]
        if w in evs.rmw_of_write:
            r, op = evs.rmw_of_write[w]
            new = rmw_new(op.kind, read_value(r), op.value, op.expected)
            if new is None:
                raise _Absent
            val[w] = new
            return new
        val[w] = evs.val[w]
        return val[w]

    try:
        for r in evs.reads:
            read_value(r)
    except (_Cycle, _Absent):
        return None
    present = 0
    for e in range(evs.n):
        if e in evs.cas:
            r, expected = evs.cas[e]
            if val[r] != expected:
                continue
            write_value(e)
        elif evs.flags[e] & W:
            write_value(e)
        present |= 1 << e
    return val, present


class _Cycle(Exception):
    pass


class _Absent(Exception):
    pass


def _rf_choices(evs: _Events, r):
    """Possible sources of read r: init and every write to its location not po-after it."""
    out = [INIT]
    for w in evs.writes:
        if evs.loc[w] == evs.loc[r] and not evs.po(r, w) and evs.rmw.get(r, (None,))[0] != w:
            out.append(w)
    return out


def _co_orders(evs: _Events, writes):
    """Coherence orders of one location's writes, in po order within a thread (coWW)."""
    for perm in itertools.permutations(writes):
        if all(not evs.po(perm[j], perm[i]) for i in range(len(perm)) for j in range(i + 1, len(perm))):
            yield perm


def _consistent(evs, model, present, rf, co_pos, co_lists):
    """The model's axioms on one candidate execution."""
    po, ploc, order = evs.static(present)
    F, n = evs.flags, evs.n
    mem = [e for e in range(n) if present >> e & 1 and F[e] & (R | W)]
    rfr = [0] * n
    cor = [0] * n
    frr = [0] * n
    for r, w in rf.items():
        if w != INIT:
            rfr[w] |= 1 << r
    for lst in co_lists:
        for i, a in enumerate(lst):
            for b in lst[i + 1:]:
                cor[a] |= 1 << b
    for r, w in rf.items():
        lst = co_lists[evs.loc[r]]
        start = 0 if w == INIT else co_pos[w] + 1
        for b in lst[start:]:
            frr[r] |= 1 << b
    # atomicity: rmw & (fr; co) = empty -- nothing between the source and the RMW's write
    for r, (w, _) in evs.rmw.items():
        if present >> w & 1:
            src = rf[r]
            if co_pos[w] != (0 if src == INIT else co_pos[src] + 1):
                return False
    if model == "sc":
        return _acyclic([order[e] | rfr[e] | cor[e] | frr[e] for e in range(n)], mem)
    com = [rfr[e] | cor[e] | frr[e] for e in range(n)]
    if model == "tso":
        if not _acyclic([ploc[e] | com[e] for e in range(n)], mem):
            return False
        ext = evs.ext
        return _acyclic([order[e] | (rfr[e] & ext[e]) | frr[e] | cor[e] for e in range(n)], mem)
    # ARM: internal visibility, as aarch64.cat's three irreflexive axioms
    ext = evs.ext
    for a in mem:
        if F[a] & W and any(ploc[a] >> b & 1 and ((cor[b] | frr[b]) & ~ext[b]) >> a & 1 for b in mem):
            return False  # coWW / coWR: a po-loc b, b (ca & int) a
        if F[a] & R and rf[a] != INIT and not ext[a] >> rf[a] & 1:
            w = rf[a]
            if ploc[a] >> w & 1 or evs.rmw.get(a, (None,))[0] == w:
                return False  # coRW1
    ob = [0] * n
    for a in mem:
        obs = (rfr[a] | cor[a] | frr[a]) & ext[a]
        haz = 0
        if F[a] & R:
            for b in mem:
                if ploc[a] >> b & 1 and F[b] & R:
                    haz |= (frr[b] | cor[b]) & ext[b]
        ob[a] = obs | order[a] | haz
    return _acyclic(ob, mem)


def _model_outcomes(prog: Program, model: str, want=(), init=None) -> set:
    """The outcomes the model allows; with ``want`` (an outcome_filter) only
    those it asks for, found without the candidates that cannot give them.
    ``init``: each location's initial value (init_values; all 0 if None)."""
    init = init or (0,) * len(prog.locations)
    evs = _Events(prog, model)
    regs_at = {evs.reg[e]: e for e in evs.reads if evs.reg[e] is not None}
    nloc = len(prog.locations)
    found = set()
    choices = [_rf_choices(evs, r) for r in evs.reads]
    wanted = {k: v for k, v in want}
    if wanted:
        choices = [_wanted_sources(evs, r, c, wanted, prog, init) for r, c in zip(evs.reads, choices)]
    for pick in itertools.product(*choices):
        rf = dict(zip(evs.reads, pick))
        got = _values(evs, rf, init)
        if got is None:
            continue
        val, present = got
        if any(w != INIT and not present >> w & 1 for w in pick):
            continue
        regvals = tuple(val[regs_at[r]] for r in prog.registers)
        if any(regvals[k] & MASK != v for k, v in wanted.items() if k < len(regvals)):
            continue  # an RMW's source gave another value than the one asked for
        per_loc = [[w for w in evs.writes if present >> w & 1 and evs.loc[w] == x] for x in range(nloc)]
        orders = [[c for c in _co_orders(evs, ws)
                   if wanted.get(len(prog.registers) + x, (val[c[-1]] if c else init[x]) & MASK)
                   == (val[c[-1]] if c else init[x]) & MASK] for x, ws in enumerate(per_loc)]
        for cos in itertools.product(*orders):
            final = tuple(val[c[-1]] & MASK if c else init[x] for x, c in enumerate(cos))
            outcome = regvals + final
            if outcome in found:
                continue
            co_pos = {w: i for c in cos for i, w in enumerate(c)}
            if _consistent(evs, model, present, rf, co_pos, list(cos)):
                found.add(outcome)
    return found


def _wanted_sources(evs, r, sources, wanted, prog, init):
    """The sources read r may have if its register must end with a wanted
    value: the initial value, a store of that value, or an RMW (its value is
    known only once its own read is chosen)."""
    reg = evs.reg[r]
    k = prog.registers.index(reg) if reg is not None else None
    if k not in wanted:
        return sources
    v = wanted[k]
    return [w for w in sources if (v == init[evs.loc[r]] if w == INIT else w in evs.rmw_of_write or evs.val[w] & MASK == v)]


def outcomes(model: str, threads) -> set:
    """Every outcome (registers then final memory, as ``parse(threads).keys``) the model allows."""
    if model not in MODELS:
        raise LitmusError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    prog = parse(threads)
    if model == "arm":
        return _model_outcomes(prog, "arm-llsc") | _model_outcomes(prog, "arm-lse")
    return _model_outcomes(prog, model)


def allowed(model: str, threads, final=None, *, init=None, **regs) -> bool:
    """Does the model allow an outcome with these register values and final
    memory?  ``init`` maps a location to its initial value (default 0)."""
    prog = parse(threads)
    want = outcome_filter(prog, final, regs)
    start = init_values(prog, init)
    if model not in MODELS:
        raise LitmusError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    for m in (("arm-llsc", "arm-lse") if model == "arm" else (model,)):
        if any(matches(o, want) for o in _model_outcomes(prog, m, want, start)):
            return True
    return False


def profiles(threads, final=None, **regs) -> tuple:
    """The ARM profiles (arm-llsc, arm-lse) that allow the outcome."""
    return tuple(m for m in ("arm-llsc", "arm-lse") if allowed(m, threads, final, **regs))
