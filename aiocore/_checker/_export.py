# Counterexamples a user can check elsewhere (issue 21, item 4): the memory
# accesses of an ARM counterexample as a litmus program in the op language
# (aiocore._checker._litmus_ops), with the values its loads and RMWs read as
# the ``exists`` clause, for herd7's aarch64.cat (aiocore._checker._herd) or
# the project's own axiomatic checker (aiocore._checker._axiomatic).
#
# How the program is rebuilt.  The path of states is replayed with the
# explorer's verbose descriptions (the same ones trace_json prints): each
# move names its process, and says (its "facts", _explore.Explorer._info)
# what the visible instruction read, whether a load was only issued, which
# window entry was performed, and which local steps ran after it (its "log":
# stores entering the window with their values, branches, the local values
# passed on, fences passed).  Per process the exporter keeps its ops in
# program order and a mirror of its window (one element per window entry),
# so that performing entry j of the window gives the value of the load that
# entry j is; the mirror is checked against the real window after every move.
# A load is named after the trace step at which it read its value (r7: step
# 7 of the counterexample, where it was performed); a load still pending at
# the end, or dropped when its process left or crashed, never read anything
# and is left out (nothing was ordered after it: the window would have waited).
#
# What each instruction becomes:
#   READ                 ld / ld_acq (a pending one: the value of its perform)
#   WRITE                st / st_rel of the value it wrote (a constant)
#   RMW                  xchg, cmpxchg, fetch_{add,sub,or,and} of its constant
#                        operands, always with a register (the value read);
#                        the op language's values are below 2**16, so an
#                        `and` mask (~1) is cut to 16 bits (exact on values
#                        below 2**16: ExportError on any other) and an add of
#                        a negative a sub
#   DRAIN (smp_mb, smp_wmb, before a syscall)   mb
#   RESET (smp_rmb, after a syscall)            rmb
#   a branch, or an instruction whose value uses a loaded value
#                        ("br", r) once per load r it depends on (through the
#                        locals too): every later op is control dependent on
#                        r, as ARM's ctrl; [W] orders a store after the load
#                        that a branch or its data came from (data; [W] gives
#                        the same order; a load after such a branch is not
#                        ordered, in herd7 as on ARM: the checker's branches
#                        wait for their loads, so it allows no more than that;
#                        with speculate=True a branch taken past its pending
#                        loads is a move of its own, and its br is the same)
#   CBREAD               ld of the payload
#   ESET / ETAC / WAIT   mb; st event 1 / xchg event 0 r / ld event r; mb
#   DEATH / DTAC         mb; st pidfd 1 / xchg pidfd 0 r; mb   (recovery)
#
# The event bit is not memory: the kernel serializes every operation on it
# (sequentially consistent), and the checker makes each a full fence of its
# process (the window is empty when it runs: a DRAIN is before each, and
# everything after it is executed after it).  Here it is a location `event`
# whose every access has a full barrier on both sides.  Sound for the
# question asked (does aarch64.cat allow the counterexample): the checker's
# execution performs each event access at one point of its interleaving with
# its process's earlier accesses all performed and its later ones not yet
# executed, which is exactly what dmb ish on both sides allows, so the order
# the checker performed things in is an ob-compatible order of this program,
# and the event accesses read what the checker's event bit held.  Faithful the
# other way: accesses of one location that each sit between two full
# barriers are totally ordered with the processes' other accesses as the
# kernel's are (fences on both sides give SC for them on an other-multi-copy-
# atomic machine), so herd7 allows no event behaviour the kernel forbids --
# except that a wait which blocks until the bit is set is a load that reads
# it set (it does not block, which only matters for the sleeper at the end of
# a lost wake-up: that one is not in the program; its asleep state is the
# final memory `event=0`).
#
# The final memory is that of the counterexample's last state, for every
# location the program touches and no window still holds a store to.
#
# A busy loop's program ends where the home poller is left alone for good:
# the first state of its path from which every state, up to the loop and
# around it, is quiescent (_search.find_cycle looks for the loop among those:
# every other process has left, its stores all visible).  The final memory is
# that state's.  What the poller does from there it does alone: each of its
# loads reads memory that only it still writes, or its own store, as on any
# machine, so it adds nothing to what aarch64.cat is asked -- and herd7's
# search grows about threefold with every two accesses (bug1's lasso on the
# polling skeleton under arm-llsc, 1 x 1: up to the loop, 23 accesses, herd7
# does not end in 20 minutes; up to where the poller is alone, 13, in 1 s).
#
# Parts.  herd7 enumerates the cross product of every load's candidate
# writes before it asks the model anything (mem.ml, solve_mem_or_res), so a
# counterexample of 40-odd accesses (bug2's at the default bounds: about
# 10**12 rf maps) does not end in hours.  Such a program (rf_candidates above
# PART_LIMIT) is also cut into parts at *cuts*: states of the path where
# every process's window is empty, so that all it executed is performed and
# nothing after is executed.  A part is each thread's ops between two cuts,
# starting from the memory the previous cut had (the litmus `init`), with the
# memory of the next cut as its final state; the cuts are chosen greedily,
# each part as long as PART_LIMIT allows.  If aarch64.cat allows every part,
# it allows the whole counterexample; and if the checker's execution of the
# whole is one it allows, it allows every part.  Take one cut, P
# before it and S after.  In the whole execution no edge of ob goes from S
# to P: po, and with it dob, aob and bob, goes from earlier ops to later ones,
# and P is po-before S in every thread; no P load reads an S store (P's
# loads were all performed at the cut, S's stores not yet executed); no S
# store is coherence-before a P store; and an S load reads an S store or the
# last P store to its location (memory at the cut, the init of S), so its fr
# edges go to S stores only.  An ob cycle (or an internal cycle, or a broken
# RMW, which lies in one part) therefore lies within P or within S: given
# executions of P and S that herd7 allows with P's final memory equal to S's
# init, their union (S's loads of the init reading P's last stores) has no
# other edges between them and is allowed.  Conversely the checker's
# execution, cut in two, gives an execution of each part with the same edges
# within it.  A `br` on a load of an
# earlier part is dropped: it orders that part before this one, no more.
from __future__ import annotations

import attrs

from . import _herd
from ._litmus_ops import MAX_VALUE, RMWS
from ._window import CTRLK as _WCTRL, LD as _WLD, SPEC as _WSPEC
from ._program import (
    ARM_LSE, BR, CBREAD, CHOOSE, CTRL, DEATH, DRAIN, DTAC, ESET, ETAC, MARK, READ, RESET, RMW, SET,
    STOP, WAIT, WRITE, ModelError, _rmw_fn,
)

#: The litmus names of the two kernel bits (ev bit 0 and bit 1), with a "_"
#: added while a location of the program has the name.
EVENT, PIDFD = "event", "pidfd"
_KERNEL = {EVENT: "the EventNotifier's readable bit", PIDFD: "the owner's pidfd of a dead process"}
_KIND_OF_FN = {_rmw_fn(k).__code__: k for k in (
    "atomic_xchg", "atomic_cmpxchg", "atomic_fetch_add", "atomic_fetch_sub", "atomic_fetch_or",
    "atomic_fetch_and")}
_LD, _ST, _CTRL, _SPEC = "ld", "st", "ctrl", "spec"  # window mirror kinds
_MIRROR = {_WLD: _LD, _WCTRL: _CTRL, _WSPEC: _SPEC}


class ExportError(ModelError):
    """A counterexample the litmus op language cannot state."""


@attrs.frozen
class LitmusExport:
    """One counterexample as a litmus program.

    ``threads`` (op language), ``procs`` the process each thread is,
    ``regs`` {register: value read}, ``final`` {location: final value},
    ``notes`` {register: the trace step it comes from}, ``profile`` the ARM
    profile whose run found it, ``kernel`` {location: which kernel bit it
    stands for} (EVENT, PIDFD, or those with a "_" added)."""

    profile: str
    threads: tuple
    procs: tuple
    regs: dict
    final: dict
    notes: dict
    kernel: dict = attrs.field(factory=dict)
    #: {location: value} it starts from where not 0 (a part's: the memory the part before it left)
    init: dict = attrs.field(factory=dict)
    #: the same counterexample cut into parts herd7 can decide one by one
    #: (where the whole is beyond PART_LIMIT and the path has cuts; see the module comment)
    parts: tuple = ()

    @property
    def candidates(self) -> float:
        """log10 of how many rf candidates herd7 enumerates (rf_candidates)."""
        return rf_candidates(self.threads)

    @property
    def target(self) -> str:
        return _herd.TARGET_OF_MODEL[self.profile]

    def herd_text(self, test_name: str = "aiocore", comment: str = "") -> str:
        """The herd7 litmus file (aarch64.cat, this profile's instructions)."""
        test = _herd.to_herd_test(self.threads, self.target, self.final, test_name=test_name,
                                  init=self.init, **self.regs)
        herd_reg = dict(zip(test.keys, test.herd_keys))
        head, rest = test.text.split("\n", 1)
        lines = [comment] if comment else []
        lines += [f"P{t}: {p}" for t, p in enumerate(self.procs)]
        lines += [f"{r} ({herd_reg[r]}) = {self.regs[r]}: {self.notes[r]}" for r in self.regs]
        used = {op[1] for ops in self.threads for op in ops if len(op) > 1}
        lines += [f"{x}: {what} (every access between two DMB ISH: aiocore/_checker/_export.py)"
                  for x, what in self.kernel.items() if x in used]
        body = "\n".join(f"(* {ln.replace('*)', '* )')} *)" for ln in lines)
        return f"{head}\n{body}\n{rest}"

    def herd_allowed(self, herd_path: str | None = None) -> bool:
        """Does herd7 allow it (aarch64.cat)?"""
        return _herd.herd_allowed(self.threads, self.target, self.final, herd_path=herd_path,
                                  init=self.init, **self.regs)


@attrs.define(eq=False)
class _Op:
    """One op of a thread; a load's register is named when it has read."""

    kind: str
    args: tuple  # (loc, values...) or () ; br: (the _Op it branches on,)
    reg: str | None = None
    value: int | None = None
    dropped: bool = False


@attrs.define
class _Thread:
    """What one process executed so far, and the mirror of its window."""

    name: str
    ops: list = attrs.field(factory=list)
    # per window entry: (kind, the load (_LD), the RMW or None (_ST), the load waited for (_CTRL),
    # the loads a speculated branch still waits for (_SPEC, a tuple))
    win: list = attrs.field(factory=list)
    taint: dict = attrs.field(factory=dict)  # env slot -> the loads its value came from
    branched: set = attrs.field(factory=set)  # ids of the loads a br already names

    def add(self, kind, *args):
        op = _Op(kind, args)
        self.ops.append(op)
        return op

    def fence(self, kind):
        last = next((o for o in reversed(self.ops) if not o.dropped), None)
        if last is not None and last.kind in ("mb", "rmb"):
            if last.kind == "mb" or kind == "rmb":
                return  # already as strong
            last.dropped = True  # rmb then mb: the mb alone
        self.add(kind)

    def depend(self, slots):
        """A branch or a value on these locals: a br on each load they came from."""
        for src in sorted({o for s in slots for o in self.taint.get(s, ())}, key=self.ops.index):
            if id(src) not in self.branched:
                self.branched.add(id(src))
                self.add("br", src)

    @staticmethod
    def read(op, step, value) -> str:
        """The op read `value` at trace step `step`: its register is r<step>."""
        op.reg, op.value = f"r{step}", value
        return op.reg


def _fresh(name, taken) -> str:
    while name in taken:
        name += "_"
    return name


def _loc(prog, loc) -> str:
    return prog.loc_names[loc].replace(".", "_")


def _value(v, what):
    if not 0 <= v < MAX_VALUE:
        raise ExportError(f"{what}: the value {v} is beyond the litmus op language's [0, {MAX_VALUE})")
    return v


class _Replay:
    """The replay of one counterexample path (see the module comment)."""

    def __init__(self, ex):
        self.ex = ex
        self.prog = ex.prog
        self.lse = ex.prog.model == ARM_LSE
        self.threads = [_Thread(P.name) for P in ex.prog.procs]
        self.index = {P.name: i for i, P in enumerate(ex.prog.procs)}
        self.notes = {}
        names = {_loc(self.prog, k) for k in range(len(self.prog.loc_names))}
        self.event, self.pidfd = (_fresh(x, names) for x in (EVENT, PIDFD))
        self.cuts = []  # (ops per thread so far, the state): where every window was empty

    def cut(self, state):
        """Note a cut after this state if every process's window is empty:
        all it executed is performed, nothing after it is executed."""
        if all(not self.ex.PR[x][2] for x in state[1:]) and not any(t.win for t in self.threads):
            here = tuple(len(t.ops) for t in self.threads)
            if not self.cuts or self.cuts[-1][0] != here:
                self.cuts.append((here, state))

    def start(self, init):
        """The local steps each process runs before its first move (Explorer.initial)."""
        for i, P in enumerate(self.prog.procs):
            log = []
            pid = self.ex.after(i, P.entry, (0,) * P.nslots, (), self.ex.EMPTY, False, log)
            if pid != init[i + 1]:
                raise ExportError("the path does not start at the initial state")
            for e in log:
                self._local(i, self.threads[i], e)

    def move(self, step, d, before, after):
        i = self.index[d["process"]]
        t = self.threads[i]
        pa, pb = self.ex.PR[before[i + 1]], self.ex.PR[after[i + 1]]
        if d.get("flushed") and d["where"] != "window":  # payload stores visible before it
            del t.win[:d["flushed"]]
        if d.get("ghosts"):  # it left before the payload stores it made since: they never were
            del t.win[len(t.win) - d["ghosts"]:]
            stores = [o for o in t.ops if o.kind == "st" and not o.dropped]
            for o in stores[len(stores) - d["ghosts"]:]:
                o.dropped = True
        if d.get("crash") or d.get("leaves"):
            self._drop_pending(t)
        elif d["where"] == "window":
            self._perform(t, step, d, pa)
        else:
            self._visible(i, t, step, d, pa)
        for e in d.get("log", ()):
            self._local(i, t, e)
        self._check(t, pb[2], d)

    def _note(self, step, d, reg):
        self.notes[reg] = f"step {step}, {d['process']} {d['where']}: {d['op']} => {d['result']}"

    def _drop_pending(self, t):
        for k, o in t.win:
            if k == _LD:
                o.dropped = True  # issued, never performed: it read nothing
        t.win = [(k, o) for k, o in t.win if k == _ST]  # what stays: the stores (_window._kept)

    def _perform(self, t, step, d, pa):
        j, n = d["entry"], d.get("flushed", 0)
        if j is None:  # payload stores only (_window: a process stopped with nothing else)
            del t.win[:n]
            return
        kind, op = t.win.pop(j)
        del t.win[:n]  # the payload stores before it, made visible with it
        if kind == _LD:
            if pa[2][j][2] != _WLD:
                raise ExportError(f"step {step}: the window mirror is out of step ({d['op']})")
            self._note(step, d, t.read(op, step, d["read"]))
            if pa[2][j][1] >= 0:  # the branches that waited for it: resolved
                t.win = [e for e in t.win if e != (_CTRL, op)]
                # a speculated branch is checked once its last load is performed (_speculation)
                t.win = [(k, tuple(o for o in x if o is not op)) if k == _SPEC else (k, x) for k, x in t.win]
                t.win = [(k, x) for k, x in t.win if k != _SPEC or x]

    def _visible(self, i, t, step, d, pa):
        P = self.prog.procs[i]
        pc, env = pa[0], pa[1]
        ins = P.code[pc]
        op = ins[0]
        prog = self.prog
        if op == READ:
            o = t.add("ld_acq" if ins[2] else "ld", _loc(prog, ins[1]))
            t.taint[ins[3]] = (o,)
            if d.get("pending"):
                t.win.append((_LD, o))
            else:
                self._note(step, d, t.read(o, step, d["read"]))
        elif op == RMW:
            t.depend(P.uses[pc])  # its operands' data: a br before it (data; [W])
            o = self._rmw(t, ins, env, d["read"], step, d)
            if ins[5] >= 0:
                t.taint[ins[5]] = (o,)
        elif op == CBREAD:
            o = t.add("ld", _loc(prog, ins[1]))
            t.taint[ins[3]] = (o,)
            self._note(step, d, t.read(o, step, d["read"]))
        elif op in (ESET, ETAC, WAIT, DEATH, DTAC):
            self._kernel(t, ins, step, d)
        elif op == BR:  # speculated past its pending load(s): _speculation._speculate
            t.depend(P.uses[pc])  # its br: ctrl to the later ops, whichever way it went
            pend = [t.win[j][1] for j, e in enumerate(pa[2]) if e[2] == _WLD and e[1] in P.uses[pc]]
            t.win += [(_CTRL, o) for o in pend] + [(_SPEC, tuple(pend))]
        elif op == WRITE:
            raise ExportError("a store as a visible step: only sc makes one; export ARM runs")
        elif op not in (CHOOSE, STOP):
            raise ExportError(f"step {step}: no litmus form for {d['op']!r}")

    def _rmw(self, t, ins, env, old, step, d):
        kind = _KIND_OF_FN.get(ins[2].__code__)
        if kind is None:
            raise ExportError(f"step {step}: an RMW of an unknown kind ({d['op']})")
        loc = _loc(self.prog, ins[1])
        v = ins[3](env)
        if kind == "atomic_fetch_and":
            _value(old, d["op"])
            v &= MAX_VALUE - 1  # old < 2**16: x & v is x & (v mod 2**16)
        elif kind == "atomic_fetch_sub" and v >= 1 << 31:
            kind, v = "atomic_fetch_add", (1 << 32) - v
        elif kind == "atomic_fetch_add" and v >= 1 << 31:
            kind, v = "atomic_fetch_sub", (1 << 32) - v
        if kind == "atomic_cmpxchg":
            x = _value(ins[4](env), d["op"])
            o = t.add("cmpxchg", loc, x, _value(v, d["op"]))
            writes = old == x
        else:
            o = t.add(kind[len("atomic_"):], loc, _value(v, d["op"]))
            writes = True
        self._note(step, d, t.read(o, step, old))
        if writes and not self.lse and not d.get("atomic"):
            t.win.append((_ST, o))  # the STLXR's store, performed later (else with its LDAXR)
        return o

    def _kernel(self, t, ins, step, d):
        op = ins[0]
        t.fence("mb")
        if op in (ESET, DEATH):
            t.add("st", self.event if op == ESET else self.pidfd, 1)
        else:
            loc = self.pidfd if op == DTAC else self.event
            o = t.add("ld", loc) if op == WAIT else t.add("xchg", loc, 0)
            self._note(step, d, t.read(o, step, d["read"]))
            dst = ins[2] if op == WAIT else ins[1]
            if dst >= 0:
                t.taint[dst] = (o,)
        t.fence("mb")

    def _local(self, i, t, e):
        P = self.prog.procs[i]
        pc = e[0]
        ins = P.code[pc]
        op = ins[0]
        if op == WRITE:
            t.depend(P.uses[pc])
            t.add("st_rel" if ins[2] else "st", _loc(self.prog, ins[1]), _value(e[2], P.labels[pc][1]))
            t.win.append((_ST, None))
        elif op in (DRAIN, MARK):
            t.fence("mb")
        elif op == RESET:
            t.fence("rmb")
        elif op == BR:
            t.depend(P.uses[pc])
        elif op == SET:
            t.taint[ins[1]] = tuple({o for s in P.uses[pc] for o in t.taint.get(s, ())})
        elif op == CTRL:  # a litmus program's br (aiocore._checker.litmus)
            t.depend({ins[1]})
            for o in t.taint.get(ins[1], ()):
                if (_LD, o) in t.win:
                    t.win.append((_CTRL, o))

    @staticmethod
    def _check(t, buf, d):
        kinds = [_MIRROR.get(e[2], _ST) for e in buf]
        if [k for k, _ in t.win] != kinds:
            raise ExportError(f"the window mirror of {t.name} is out of step after {d['op']!r}")

    # --- the program ------------------------------------------------------------

    def result(self, profile, end) -> LitmusExport:
        start = ((0,) * len(self.threads), None)
        stop = (tuple(len(t.ops) for t in self.threads), end)
        whole = self._program(profile, start, stop, final_state=end, last=True)
        if whole.candidates <= PART_LIMIT or not self.cuts:
            return whole
        bounds = [start] + [c for c in self.cuts if c[0] != stop[0] and any(c[0])] + [stop]
        parts, i = [], 0
        while i < len(bounds) - 1:
            j = i + 1  # the farthest cut whose part herd7 can still decide quickly
            while j + 1 < len(bounds) and self._program(
                    profile, bounds[i], bounds[j + 1], bounds[j + 1][1], j + 1 == len(bounds) - 1).candidates <= PART_LIMIT:
                j += 1
            part = self._program(profile, bounds[i], bounds[j], bounds[j][1], j == len(bounds) - 1)
            if part.threads:
                parts.append(part)
            i = j
        return attrs.evolve(whole, parts=tuple(parts)) if len(parts) > 1 else whole

    def _program(self, profile, lo, hi, final_state, last) -> LitmusExport:
        """The ops each thread ran between two cuts (lo, hi: (ops per thread,
        state)); the whole program from the start to the end of the path."""
        threads, procs, regs, notes, touched = [], [], {}, {}, set()
        for k, t in enumerate(self.threads):
            ops = []
            mine = t.ops[lo[0][k]:hi[0][k]]
            ids = {id(o) for o in mine}
            for o in mine:
                if o.dropped or (o.kind != "br" and o.reg is None and self._reads(o)):
                    continue  # a load never performed
                if o.kind == "br" and id(o.args[0]) not in ids:
                    continue  # on a load of an earlier part: it orders that part before this one only
                ops.append(self._op(o))
                if o.reg is not None:
                    regs[o.reg] = o.value
                    notes[o.reg] = self.notes[o.reg]
                if o.args and isinstance(o.args[0], str):
                    touched.add(o.args[0])
            ops = _needed_branches(ops)
            if any(op[0] not in ("mb", "rmb") for op in ops):
                threads.append(tuple(ops))
                procs.append(t.name)
        kernel = {self.event: _KERNEL[EVENT], self.pidfd: _KERNEL[PIDFD]}
        init = {}
        if lo[1] is not None:
            init = {x: v for x, v in self._memory(lo[1]).items() if x in touched and v}
        final = self._final(final_state, touched) if last else {
            x: v for x, v in self._memory(final_state).items() if x in touched}
        return LitmusExport(profile, tuple(threads), tuple(procs), regs, final, notes, kernel, init)

    def _memory(self, state) -> dict:
        mem, ev, _owed, _procs = self.ex.decode(state)
        out = {_loc(self.prog, k): v for k, v in enumerate(mem)}
        out[self.event], out[self.pidfd] = ev & 1, (ev >> 1) & 1
        return out

    @staticmethod
    def _reads(o):
        return o.kind not in ("st", "st_rel", "mb", "rmb", "wmb")

    @staticmethod
    def _op(o):
        if o.kind == "br":
            if o.args[0].reg is None:
                raise ExportError("a branch on a load that never read: the replay is wrong")
            return ("br", o.args[0].reg)
        if o.kind in ("mb", "rmb"):
            return (o.kind,)
        return (o.kind, *o.args) + ((o.reg,) if o.reg is not None else ())

    def _final(self, end, touched):
        procs = self.ex.decode(end)[3]
        held = {self.prog.loc_names[e[0]].replace(".", "_") for p in procs for e in p[2] if _MIRROR.get(e[2], _ST) == _ST}
        return {x: v for x, v in self._memory(end).items() if x in touched and x not in held}


def _needed_branches(ops) -> list:
    """The ops without the branches that order nothing: ctrl; [W] orders
    the branch's load before the later plain stores to other locations up
    to the next barrier; every other later access is ordered after it
    already (lws: a store to its location; po; [L]: a release or an RMW's
    store; a dmb after it: everything), or by nothing (a load: ARM may
    speculate it), and an acquire load (or an RMW's) orders everything after
    it.  Each branch is a path split for herd7, which enumerates both ways,
    so a redundant one doubles its work."""
    plain = {o[-1]: o[1] for o in ops if o[0] == "ld"}  # register -> its location
    out = []
    for k, o in enumerate(ops):
        if o[0] != "br":
            out.append(o)
            continue
        loc = plain.get(o[1])
        for later in ops[k + 1:]:
            if loc is None or later[0] in ("mb", "rmb"):
                break
            if later[0] == "st" and later[1] != loc:
                out.append(o)
                break
    return out


def export(ex, states, descs, loop_from=None) -> LitmusExport:
    """The litmus program of a counterexample: ``states`` its path (as
    trace_json walks it), ``descs`` the verbose descriptions of its moves
    (ExploreResult.steps(states)); ``ex`` a WindowExplorer.  A busy loop
    (``loop_from``: the index of the loop's first move) ends where the home
    poller is left alone for good (see the module comment)."""
    if not getattr(ex, "window", False):
        raise ExportError("only the ARM profiles' counterexamples are exported (arm-llsc, arm-lse)")
    if loop_from is not None:
        cut = loop_from
        while cut > 0 and ex.quiescent(states[cut - 1]):
            cut -= 1
        states, descs = states[:cut + 1], descs[:cut]
    rp = _Replay(ex)
    rp.start(states[0])
    for n, (a, b, d) in enumerate(zip(states, states[1:], descs)):
        rp.move(n + 1, d, a, b)
        rp.cut(b)
    return rp.result("arm-lse" if rp.lse else "arm-llsc", states[-1])


def rf_candidates(threads) -> float:
    """log10 of the number of rf maps herd7 enumerates for a program (its
    search is their cross product, aiocore/_checker/_herd.py): per read, the
    initial write and every write to its location in another thread or
    before it in its own (-optace true drops the ones after it)."""
    import math

    writes, total = {}, 0.0
    for t, ops in enumerate(threads):
        for k, op in enumerate(ops):
            if op[0] in _WRITES:
                writes.setdefault(op[1], []).append((t, k))
    for t, ops in enumerate(threads):
        for k, op in enumerate(ops):
            if op[0] not in _READS:
                continue
            n = 1 + sum(1 for u, j in writes.get(op[1], ()) if u != t or j < k)
            total += math.log10(n)
    return total


_READS = ("ld", "ld_acq", *RMWS)
_WRITES = ("st", "st_rel", *RMWS)

#: A program with more rf candidates than 10**PART_LIMIT is also cut into
#: parts (LitmusExport.parts).  At the default bounds herd7 7.57 decides every
#: built-in's counterexample (whole or all its parts) within 0.02-7.1 s here, bug2's whole tests
#: (10**11.6-10**12) not in 900 s (benchmarks/herd_counterexamples.py).
PART_LIMIT = 5.0
