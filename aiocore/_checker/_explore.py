# Explicit-state exploration of a Program (see _program.py) under one memory
# model, breadth first, with the three properties of DESIGN.md.
#
# Logically a state is (mem, event, owed, procs):
#   mem    the value of every shared location, as visible to all;
#   event  1 if the EventNotifier is readable;
#   book   per BH, 0->1 schedules not yet dispatched (a callback that starts
#          with nothing owed is a double dispatch: lost work), then per BH
#          the highest payload a callback of it has read (the contract: at
#          an end state every BH's last payload must have been seen);
#   procs  per process (pc, env, buf, stale):
#            pc     index of its next visible instruction;
#            env    values of its live locals (dead ones zeroed, so that
#                   states differing only in dead values are one state);
#            buf    its store buffer (tso: FIFO of (loc, value)); on ARM its
#                   window (aiocore._checker._window, a subclass of this);
#            stale  always empty (kept so that every model's process tuples
#                   have one shape).
#
# This module is sc and tso; the ARMv8 profiles are _window.py.
#
# Payload stores (WRITE with its ghost flag) become visible as late as each
# model allows, with a move of their process: see _contract.py, which says
# why that keeps every verdict.
#
# Stored, a state is a flat tuple of small ints: (shared id, proc ids...),
# where (mem, event, owed) and every process tuple are interned once.  That
# makes hashing and comparing states cheap and lets states share their parts.
from __future__ import annotations

from ._program import (
    BR, DONE, DRAIN, ESET, ETAC, INFINITE, JMP, READ, RMW, SC, SET, STOP,
    TSO, WAIT, WRITE, ModelError, Program,
)
from ._program import CHOOSE, DEATH, DTAC  # skel: polling skeleton, crash-stop faults
from . import _contract  # the bottom-half contract (issue 23)
from ._program import CBREAD

from ._search import VERDICT_ORDER  # noqa: F401  (re-exported)


def _forwarded(buf, loc):
    """The value of the latest store to loc in a tso buffer, or None."""
    for e in reversed(buf):
        if e[0] == loc:
            return e[1]
    return None


class Explorer:
    DONE_OP = DONE  # for _contract
    payload_entries = True  # sc, tso: payload stores are buffer entries (loc, v, 1 or 2)

    def __init__(self, prog: Program, max_states: int = 5_000_000):
        self.prog = prog
        self.m = prog.model
        self.L = len(prog.loc_names)
        self.n = len(prog.procs)
        self.bh_index = {loc: k for k, loc in enumerate(prog.bh_locs)}
        self.EMPTY = ()
        self.max_states = max_states
        self.violation = None  # (state, explanation, the state it came from) of a double dispatch
        # intern tables
        self.SH, self.sh_ids = [], {}
        self.PR, self.pr_ids = [], {}
        self.amemo = [dict() for _ in prog.procs]  # after(): -> proc id
        self.mmemo = [dict() for _ in prog.procs]  # _moves()
        self._deps, self.pmemo = {}, {}  # memo_moves()
        # locations another process may store to: a load of one of them
        # reads its own buffered store only as a move of its own (a later
        # read, after the store is visible, may see another's value)
        self.shared_writes = [self._written_by_others(i) for i in range(self.n)]
        self.done_pcs = [
            frozenset(pc for pc, ins in enumerate(p.code) if ins[0] == DONE) for p in prog.procs
        ]
        self._quiet = {}  # proc id -> finished with an empty buffer

    # --- interning ------------------------------------------------------------

    def ish(self, sh):
        k = self.sh_ids.get(sh)
        if k is None:
            k = self.sh_ids[sh] = len(self.SH)
            self.SH.append(sh)
        return k

    def ipr(self, p):
        k = self.pr_ids.get(p)
        if k is None:
            k = self.pr_ids[p] = len(self.PR)
            self.PR.append(p)
        return k

    def decode(self, state):
        mem, ev, owed = self.SH[state[0]]
        return mem, ev, owed, tuple(self.PR[x] for x in state[1:])

    def _written_by_others(self, i):
        out = set()
        for q, P in enumerate(self.prog.procs):
            if q != i:
                out |= {ins[1] for ins in P.code if ins[0] in (WRITE, RMW)}
        return frozenset(out)

    # --- local steps ---------------------------------------------------------

    def _local(self, i, pc, env, buf, log):
        """Run process i's local steps from pc until a visible instruction:
        branches, skeleton bookkeeping, fences that need not wait, and (tso)
        stores entering the store buffer and loads it forwards (where no
        other process stores to the location)."""
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
            elif op == DRAIN:
                if buf and m == TSO and all(len(e) > 2 for e in buf):
                    # only payload stores wait: forced, visible with the next move
                    buf = tuple((e[0], e[1], 2) for e in buf)
                elif buf:
                    break
                pc += 1
            elif op == WRITE and len(ins) > 4 and ins[4]:
                # a payload store (see above)
                buf = buf + ((ins[1], ins[3](env), 2 if m == SC else 1),)
                if log is not None:
                    log.append((pc, f"wrote {buf[-1][1]} (visible no sooner than the model forces)"))
                pc += 1
            elif op == WRITE and m != SC:
                loc = ins[1]
                v = ins[3](env)
                buf = buf + ((loc, v),)
                if log is not None:
                    log.append((pc, f"wrote {v} (into its store buffer)"))
                pc += 1
            elif op == READ and m != SC and buf and ins[1] not in self.shared_writes[i]:
                found = _forwarded(buf, ins[1])
                if found is None:
                    break
                env[ins[3]] = found
                if log is not None:
                    log.append((pc, f"read {found} (forwarded from its own store buffer)"))
                pc += 1
            else:
                break
        out = [0] * len(env)
        for k in P.live_env[pc]:
            out[k] = env[k]
        return pc, tuple(out), buf, reset

    def after(self, i, pc, env, buf, stale, reset, log=None):
        """Process i resumes at pc: run its local steps; its interned id."""
        key = (pc, env, buf)
        if log is None:
            memo = self.amemo[i]
            r = memo.get(key)
            if r is not None:
                return r
        pc2, env2, buf2, _ = self._local(i, pc, env, buf, log)
        pid = self.ipr((pc2, env2, buf2, ()))
        if log is None:
            memo[key] = pid
        return pid

    def initial(self):
        ids = []
        for i, p in enumerate(self.prog.procs):
            ids.append(self.after(i, p.entry, (0,) * p.nslots, (), self.EMPTY, False))
        sh = self.ish(((0,) * self.L, 0, (0,) * (2 * len(self.prog.bh_locs))))
        return (sh, *ids)

    # --- memory-level helpers -------------------------------------------------

    def _owed_write(self, owed, loc, old, new):
        """A store to a BH's word from 0 to non-zero: one more schedule owed."""
        k = self.bh_index.get(loc)
        if k is not None and old == 0 and new != 0:
            owed = owed[:k] + (owed[k] + 1,) + owed[k + 1:]
        return owed

    # --- successors ------------------------------------------------------------
    #
    # What one process can do depends only on its own interned tuple, the
    # shared part (mem, event, owed) and -- arm-llsc -- the locations other
    # processes hold reserved by an exclusive pair in flight.  Its moves are
    # computed once per such key (_moves) and reused in every state that
    # shares it.

    def _others_resv(self, state):
        """Per process, the locations the others hold reserved (None: no model has any)."""
        return None

    def successors(self, state, verbose=False):
        """[(description or None, next state)] of a state."""
        sh_id = state[0]
        out = []
        resvs = self._others_resv(state)
        for i in range(self.n):
            x = state[i + 1]
            resv = resvs[i] if resvs is not None else ()
            if verbose:
                moves = self._moves(i, x, sh_id, resv, True)
            else:
                key = (x, sh_id, resv)
                memo = self.mmemo[i]
                moves = memo.get(key)
                if moves is None:
                    moves = memo[key] = self.memo_moves(i, x, sh_id, resv)
            for sh2, pid2, _commit, bad, info in moves:
                ns = (sh2,) + state[1:i + 1] + (pid2,) + state[i + 2:]
                if bad and self.violation is None:
                    self.violation = (ns, bad, state)
                if verbose:
                    info = dict(info)
                    info["buffers"] = self._buffers(ns)
                out.append((info, ns))
        return out

    # Process i's moves from its tuple x read and write the shared part only
    # at the locations of its instruction and of its buffer's entries (and the
    # event bits and the book): memo_moves keeps them on those, each move as
    # what it leaves there, so that states differing elsewhere share one call
    # of _moves.  Both search loops ask it in the same order: the same ids.

    def _touched(self, i, x):
        pc, _env, buf, _st = self.PR[x]
        ins = self.prog.procs[i].code[pc]
        locs = {e[0] for e in buf if e[0] >= 0}
        if ins[0] in (READ, WRITE, RMW, CBREAD):
            locs.add(ins[1])
        d = self._deps[(i, x)] = tuple(sorted(locs))
        return d

    def memo_moves(self, i, x, sh_id, resv):
        """_moves(i, x, sh_id, resv, False), memoised on what they touch."""
        d = self._deps.get((i, x))
        if d is None:
            d = self._touched(i, x)
        SH = self.SH
        mem, ev, owed = SH[sh_id]
        vals = tuple([mem[loc] for loc in d])
        key = (i, x, resv, vals, ev, owed)
        got = self.pmemo.get(key)
        if got is None:
            got = self.pmemo[key] = [
                (tuple([SH[sh2][0][loc] for loc in d]), SH[sh2][1], SH[sh2][2], pid2, bad)
                for sh2, pid2, _commit, bad, _info in self._moves(i, x, sh_id, resv, False)]
        out = []
        for vals2, ev2, owed2, pid2, bad in got:
            if vals2 == vals and ev2 == ev and owed2 == owed:
                sh2 = sh_id
            else:
                m = list(mem)
                for loc, v in zip(d, vals2):
                    m[loc] = v
                sh2 = self.ish((tuple(m), ev2, owed2))
            out.append((sh2, pid2, None, bad, None))
        return out

    def _info(self, i, pc, result, log, **facts):
        """A move's description; ``facts`` are what aiocore._checker._export
        reads back (``read``: the value a load or RMW read; ``pending``: a
        load issued, performed later), ``log`` the local steps as logged."""
        P = self.prog.procs[i]
        where, text = P.labels[pc]
        return {"process": P.name, "where": where, "op": text, "result": result,
                "local": self._log_items(i, log), "log": list(log or ()), **facts}

    def _moves(self, i, x, sh_id, resv, verbose):
        """[(shared id, proc id, None, violation, info)] of process i."""
        mem, ev, owed = self.SH[sh_id]
        p = self.PR[x]
        pc, env, buf, _ = p
        P = self.prog.procs[i]
        ins = P.code[pc]
        op = ins[0]
        out = []
        log = [] if verbose else None
        sh0, buf0, lumped = sh_id, buf, None
        if buf and self.payload_entries and len(buf[0]) > 2 and buf[0][2] == 2:  # forced payload stores:
            mem, buf, lumped = _contract.forced_payloads(self.prog, mem, buf)  # visible now
            p, sh_id = (pc, env, buf, ()), self.ish((mem, ev, owed))
        if self._stalled(i, pc, buf):
            pass  # it waits for its buffer or window (the moves at the end)
        elif op == READ:
            self._read(i, pc, ins, env, buf, mem, sh_id, out, log)
        elif op == WRITE:  # sc only: tso stores enter the buffer locally
            loc = ins[1]
            v = ins[3](env)
            old = mem[loc]
            sh2 = self.ish((mem[:loc] + (v,) + mem[loc + 1:], ev, self._owed_write(owed, loc, old, v)))
            pid = self.after(i, pc + 1, env, buf, (), False, log)
            out.append((sh2, pid, None, None, self._info(i, pc, f"wrote {v}", log) if verbose else None))
        elif op == RMW:
            self._rmw(i, pc, ins, env, buf, mem, ev, owed, sh_id, resv, out, log)
        elif op == ESET:  # ev bit 0: readable (bit 1: a death, recovery)
            sh2 = sh_id if ev & 1 else self.ish((mem, ev | 1, owed))
            pid = self.after(i, pc + 1, env, buf, (), True, log)
            out.append((sh2, pid, None, None,
                        self._info(i, pc, "the notifier is now readable", log) if verbose else None))
        elif op == ETAC:
            e2 = env
            if ins[1] >= 0:
                e2 = list(env)
                e2[ins[1]] = ev & 1
                e2 = tuple(e2)
            sh2 = self.ish((mem, ev & ~1, owed)) if ev & 1 else sh_id
            pid = self.after(i, pc + 1, e2, buf, (), True, log)
            out.append((sh2, pid, None, None, self._info(
                i, pc, f"it was {'readable' if ev & 1 else 'not readable'}; now not readable", log,
                read=ev & 1) if verbose else None))
        elif op == WAIT:
            tslot = ins[1]
            infinite = tslot >= 0 and env[tslot] == INFINITE
            if not infinite or ev:  # else: asleep until the notifier is readable
                e2 = env
                if ins[2] >= 0:
                    e2 = list(env)
                    e2[ins[2]] = ev & 1  # the notifier's revents (bit 1 wakes it too)
                    e2 = tuple(e2)
                pid = self.after(i, pc + 1, e2, buf, (), True, log)
                info = None
                if verbose:
                    if infinite:
                        what = "timeout infinite: returns, the notifier is readable"
                    else:
                        what = f"timeout 0: the notifier is {'readable' if ev & 1 else 'not readable'}"
                    info = self._info(i, pc, what, log, read=ev & 1)
                out.append((sh_id, pid, None, None, info))
        elif op == STOP:
            pid = self.after(i, pc + 1, env, buf, (), False, log)
            out.append((sh_id, pid, None, None, self._info(i, pc, "stays", log) if verbose else None))
            if self._may_stop(buf):
                pid = self.ipr((ins[1], (0,) * len(env), self._kept(buf), ()))
                out.append((sh_id, pid, None, None,
                            self._info(i, pc, "leaves for good", [], leaves=True) if verbose else None))
        # --- skel: polling skeleton's choice, crash-stop faults, recovery -------
        elif op == CHOOSE:  # a nondeterministic branch: one move per target
            for t, text in zip(ins[1], ins[2]):
                pid = self.after(i, t, env, buf, (), False, log)
                out.append((sh_id, pid, None, None, self._info(i, pc, text, log) if verbose else None))
                log = [] if verbose else None
        elif op == DEATH:  # the kernel makes the owner's pidfd of this process readable
            pid = self.after(i, pc + 1, env, buf, (), False, log)
            out.append((self.ish((mem, ev | 2, owed)), pid, None, None,
                        self._info(i, pc, "the owner's pidfd of it is readable", log) if verbose else None))
        elif op == DTAC:  # the owner reads and clears "a process died"
            e2 = list(env)
            e2[ins[1]] = (ev >> 1) & 1
            sh2 = self.ish((mem, ev & ~2, owed)) if ev & 2 else sh_id
            pid = self.after(i, pc + 1, tuple(e2), buf, (), False, log)
            out.append((sh2, pid, None, None, self._info(
                i, pc, "a death was seen" if ev & 2 else "no death", log, read=(ev >> 1) & 1)
                if verbose else None))
        # --- end skel ---
        elif op == CBREAD:  # BH k's callback starts (or re-reads): it reads the payload
            self._cbread(i, p, ins, buf, mem, ev, owed, log, out)
        if pc in P.exits and self._may_stop(buf0):
            done, ghosts = P.exits[pc]
            kept = self._kept(buf0[:len(buf0) - ghosts] if ghosts else buf0)
            pid = self.ipr((done, (0,) * len(env), kept, ()))
            info = None
            if verbose:
                info = {"process": P.name, "where": P.labels[done][0],
                        "op": "leaves", "result": "leaves for good", "local": [], "log": [],
                        "leaves": True, **({"ghosts": ghosts} if ghosts else {})}
            out.append((sh0, pid, None, None, info))
        # skel: crash-stop fault
        if pc < P.crash and op != DONE and self._may_stop(buf):  # faults="crash": it may stop for good here
            clog = [] if verbose else None
            pid = self.after(i, P.crash, (0,) * len(env), self._kept(buf), (), False, clog)
            sh_c = sh_id
            if op == CBREAD:  # a poller that dies with a BH claimed takes its work along
                sh_c = self.ish((mem, ev, _contract.seen_by_crash(self.prog, ins, mem, owed)))
            info = None
            if verbose:
                where, text = P.labels[pc]
                info = {"process": P.name, "where": where, "op": f"crashes before {text}",
                        "result": "crashed (stops for good; its store buffer still drains)",
                        "local": self._log_items(i, clog), "log": clog, "crash": True}
            out.append((sh_c, pid, None, None, info))
        # a DRAIN with a non-empty buffer, DONE: nothing but the buffer's stores
        if buf:
            self._commits(i, p, mem, ev, owed, resv, out, verbose)
        if lumped:
            _contract.lumped_payloads(self, P, p, sh_id, lumped, out, verbose)
        return out

    # The parts of _moves a model with another kind of buffer replaces (_window.py).

    def set_speculation(self, on: bool):
        """sc and tso perform a load when they execute it: no branch waits on one."""

    @staticmethod
    def _may_stop(buf):
        """May a process with this buffer stop for good (leave, crash)?"""
        return True

    def _stalled(self, i, pc, buf):
        """Can the instruction at pc not run before its buffer moves?"""
        return False

    @staticmethod
    def _kept(buf):
        """What stays of a buffer when its process stops or crashes: all of it."""
        return buf

    def _read(self, i, pc, ins, env, buf, mem, sh_id, out, log):
        """A load: its own latest buffered store to the location (tso), else memory."""
        loc = ins[1]
        fwd = _forwarded(buf, loc) if buf else None
        v = mem[loc] if fwd is None else fwd
        e2 = list(env)
        e2[ins[3]] = v
        pid = self.after(i, pc + 1, tuple(e2), buf, (), ins[2], log)
        info = None
        if log is not None:
            info = self._info(i, pc, f"read {v}" + (" (forwarded from its own store buffer)"
                                                    if fwd is not None else ""), log, read=v)
        out.append((sh_id, pid, None, None, info))

    def _rmw(self, i, pc, ins, env, buf, mem, ev, owed, sh_id, resv, out, log):
        """A seq_cst RMW, one atomic step on memory (tso: after its buffer drained)."""
        loc = ins[1]
        old = mem[loc]
        expected = ins[4](env) if ins[4] is not None else None
        new, writes = ins[2](old, ins[3](env), expected)
        self._rmw_move(i, pc, ins, env, mem, ev, owed, sh_id, old, new, writes, buf, out, log)

    def _rmw_move(self, i, pc, ins, env, mem, ev, owed, sh_id, old, new, writes, buf, out, log,
                  deferred=False, atomic=False, flushed=0):
        """The move of an RMW that read `old`: the claim it makes (a BH claim
        consumes one schedule), and its write to memory -- unless
        ``deferred``: the write is in `buf` already (arm-llsc's STLXR)."""
        loc, dst, claim = ins[1], ins[5], ins[6]
        e2 = env
        if dst >= 0:
            e2 = list(env)
            e2[dst] = old
            e2 = tuple(e2)
        owed2 = owed
        if claim >= 0 and old != 0:
            owed2 = owed[:claim] + (owed[claim] - 1,) + owed[claim + 1:]
        mem2 = mem
        if writes and not deferred:
            mem2 = mem[:loc] + (new,) + mem[loc + 1:]
            owed2 = self._owed_write(owed2, loc, old, new)
        sh2 = sh_id if (mem2 is mem and owed2 is owed) else self.ish((mem2, ev, owed2))
        pid = self.after(i, pc + 1, e2, buf, (), True, log)
        bad = None
        if claim >= 0 and owed2[claim] < 0:
            bad = f"bh{claim} dispatched twice for one 0->1 schedule"
        info = None
        if log is not None:
            what = f"read {old}" + (f", wrote {new}" if writes else ", no write")
            if writes and deferred:
                what += " (the LDAXR is performed; the STLXR's store is not visible yet)"
            elif atomic:  # arm-llsc: _window._atomic_pair
                what += " (the LDAXR and the STLXR, one after the other)"
            if flushed:  # arm: payload stores made visible just before it (_window.PAY)
                what += f" (after the {flushed} payload store(s) of its window became visible)"
            facts = {"atomic": True} if atomic else {}
            if flushed:
                facts["flushed"] = flushed
            info = self._info(i, pc, what, log, read=old, **facts)
        out.append((sh2, pid, None, bad, info))

    def _cbread(self, i, p, ins, buf, mem, ev, owed, log, out):
        _contract.cbread_moves(self, i, p, ins, mem, ev, owed, log, out)

    def _commits(self, i, p, mem, ev, owed, resv, out, verbose):
        """tso: the oldest buffered store becomes visible."""
        pc, env, buf, _ = p
        if len(buf[0]) > 2:  # payload stores at the head (see above)
            _contract.commit_payloads(self, i, p, mem, ev, owed, out, verbose)
            return
        names = self.prog.loc_names
        loc, v = buf[0][0], buf[0][1]
        old = mem[loc]
        sh2 = self.ish((mem[:loc] + (v,) + mem[loc + 1:], ev, self._owed_write(owed, loc, old, v)))
        log = [] if verbose else None
        pid = self.after(i, pc, env, buf[1:], (), False, log)
        info = None
        if verbose:
            info = {"process": self.prog.procs[i].name, "where": "store buffer",
                    "op": f"{names[loc]} = {v} becomes visible",
                    "result": f"{names[loc]}: {old} -> {v}", "local": self._log_items(i, log)}
        out.append((sh2, pid, None, None, info))

    # --- descriptions (traces) -------------------------------------------------

    def _buffers(self, state):
        if self.m == SC:
            return {}
        out = {}
        names = self.prog.loc_names
        for i, x in enumerate(state[1:]):
            items = []
            for e in self.PR[x][2]:
                items.append(f"{names[e[0]]}={e[1]}")
            if items:
                out[self.prog.procs[i].name] = items
        return out

    def _log_items(self, i, log):
        """The logged local steps a trace shows: (pc, text) entries; those
        with text None (ARM's, for _export) are not shown."""
        labels = self.prog.procs[i].labels
        return [(labels[e[0]][0], labels[e[0]][1], e[1]) for e in (log or ()) if e[1] is not None]

    # --- exploration -------------------------------------------------------------

    def quiescent(self, state):
        """All processes but the home poller have finished, buffers empty."""
        quiet = self._quiet
        for q in range(1, self.n):
            x = state[q + 1]
            key = (q, x)
            r = quiet.get(key)
            if r is None:
                p = self.PR[x]
                r = quiet[key] = p[0] in self.done_pcs[q] and not p[2]
            if not r:
                return False
        return True

    def classify_terminal(self, state):
        """None (fine, or not a real end), or (verdict, explanation): _contract."""
        return _contract.classify_end(self, state, WAIT, INFINITE)

    def explore(self, deadline=None, max_memory=None, engine="auto", progress=None):
        """Breadth-first search of every reachable state (_engine.explore:
        the C loop when it can run, else the Python loop; the same result)."""
        from ._engine import explore

        return explore(self, deadline=deadline, max_memory=max_memory, engine=engine,
                       progress=progress)
