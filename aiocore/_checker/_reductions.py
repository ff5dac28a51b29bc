# Why the checker runs neither a symmetry reduction over notifiers nor a
# partial-order reduction (issue 12 asked for both), and the tool that shows
# the first.  The reductions it does run are listed in REDUCTIONS
# (aiocore/_checker/__init__.py); the cost per state is cut instead by the C
# search loop (_fast.py, _core_c.py), which explores exactly the same states.
#
# Symmetry
# --------
#
# The notifiers run one program, each on its own bottom half, so it is
# tempting to explore one state per orbit of "permute the notifiers and their
# BHs" (a canonical form: notifier states and BH flags sorted).  That is
# exact only if every such permutation is an automorphism of the transition
# system: succ(pi(s)) = pi(succ(s)) for every state s.  It is not, because the
# owner is not symmetric in the BHs: aio_compute_timeout, the polling
# skeleton's BH polls and aio_dispatch visit bh0, bh1, ... in a fixed order
# (QEMU walks its BH list in list order), one visible read (and claim) at a
# time, with the notifiers running in between.  The owner's program counter
# says "bh0 has been read, bh1 is next"; a permutation of the notifiers would
# have to map it to "bh1 has been read, bh0 is next", a point no execution
# passes -- and the next scan visits bh0 first again, so not even the states
# between two scans are interchangeable (the owner's claims leave its ARM
# store buffer in index order, which decides which notifier's RMW may go
# first).  A canonical form that ignores this merges states whose futures
# differ, which can hide a lost wake-up or invent one.  The largest group
# that is exact for every strategy on these skeletons is the trivial one
# (only permutations that fix every BH the owner scans, i.e. all of them),
# so no symmetry reduction runs.
#
# swap_notifiers() is the permutation done right for everything except the
# owner's position in its scan; tests/test_checker_scale.py uses it to find a
# reachable state whose image is unreachable (explicit-mb, two notifiers):
# the counterexample to the symmetry, kept as a test so that nobody adds the
# reduction without changing the model (for example a scan whose order is
# part of the state and chosen per aio_poll, as QEMU's scheduled-BH list of
# today is ordered by schedule time -- a different model, with its own
# verdicts to establish).
#
# Partial-order reduction
# -----------------------
#
# Persistent (stubborn) sets with a cycle proviso would be sound for the three
# properties: lost wake-up and lost work are end states, which persistent
# sets keep; a busy loop is a cycle among quiescent states (only the owner
# left), where every state is fully expanded anyway, and the proviso keeps
# the paths to them.  But a set is only persistent if nothing outside it can
# conflict with it before it runs, and the owner loops forever over every
# shared thing a notifier touches: it reads every BH flag (a notifier's xchg
# and the commit of its store conflict), writes notify_me (the notifier reads
# it), waits on and clears the EventNotifier (event_set conflicts) and
# exchanges `notified` (the notifier writes it).  So at almost every state
# the only persistent set is "everything enabled": a correct implementation
# saves next to nothing, and none that saves more is sound.  While the owner
# sleeps, its next operations need an event_set first, whose enabling set is
# again every notifier that can still reach one.  No partial-order reduction
# runs rather than an unsound one.

from __future__ import annotations

from ._window import CTRLK, LD


def _swap_loc(loc, a, b):
    return b if loc == a else a if loc == b else loc


def _swap_locs(loc, pairs):
    for la, lb in pairs:
        if loc in (la, lb):
            return _swap_loc(loc, la, lb)
    return loc


def _swap_proc(ex, x, pairs, slot_map):
    pc, env, buf, stale = ex.PR[x]
    if slot_map:
        env = tuple(env[slot_map.get(k, k)] for k in range(len(env)))
    buf2 = []
    for e in buf:
        e = (_swap_locs(e[0], pairs),) + tuple(e[1:])
        if getattr(ex, "window", False) and e[2] in (LD, CTRLK) and e[1] >= 0:
            e = (e[0], slot_map.get(e[1], e[1]), e[2])  # a pending load's register moves too
        buf2.append(e)
    return (pc, env, tuple(buf2), stale)


def _bh_slot_map(P, a, b):
    """The owner's locals that belong to BH a and BH b, exchanged."""
    names = P.slot_names
    out = {}
    for k, name in enumerate(names):
        for x, y in ((a, b), (b, a)):
            for tag in (f"bh{x}", f"claim{x}", f"payload{x}"):
                if name.endswith("." + tag):
                    other = name[: -len(tag)] + tag.replace(str(x), str(y))
                    if other in names:
                        out[k] = names.index(other)
    return out


def swap_notifiers(ex, state, a: int, b: int):
    """The state with notifiers a and b (their processes, BH words, payloads
    and links, owed counts and payloads seen, the entries for their BHs in
    every buffer and stale set, the owner's per-BH locals) exchanged -- but
    not the owner's program counter, which no relabelling can move (see
    above).  Returned as a tuple of the same shape; its parts are looked up,
    never interned (None if one of them was never reached)."""
    mem, ev, owed, procs = ex.decode(state)
    A, B = ex.prog.bhs[a], ex.prog.bhs[b]
    pairs = [(A.word, B.word), (A.payload, B.payload)] + ([(A.next, B.next)] if A.next >= 0 else [])
    mem = list(mem)
    for la, lb in pairs:
        mem[la], mem[lb] = mem[lb], mem[la]
    owed = list(owed)
    nb = len(ex.prog.bh_locs)
    owed[a], owed[b] = owed[b], owed[a]
    owed[nb + a], owed[nb + b] = owed[nb + b], owed[nb + a]
    sh = ex.sh_ids.get((tuple(mem), ev, tuple(owed)))
    ids = []
    for i, P in enumerate(ex.prog.procs):
        src = i
        if P.role == "notifier":
            k = int(P.name[len("notifier"):])
            src = 1 + (b if k == a else a if k == b else k)
        x = state[src + 1]
        slot_map = _bh_slot_map(P, a, b) if P.role != "notifier" else {}
        ids.append(ex.pr_ids.get(_swap_proc(ex, x, pairs, slot_map)))
    if sh is None or None in ids:
        return None
    return (sh, *ids)
