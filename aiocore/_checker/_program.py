# Programs the checker explores: a strategy's IR inlined into the skeleton of
# aio_core.c, compiled for one memory model into a flat instruction list per
# process, with Python closures for every expression.
#
# Instructions are tuples (opcode, args...).  "Visible" instructions touch
# shared state (memory, the notifier, the process's own store buffer when it
# must drain); the others are local (branches, jumps, skeleton bookkeeping)
# and are executed by the explorer inside the transition that precedes them,
# so one transition = one visible operation plus the local steps after it.
#
# Fences are lowered per model here, so the explorer never asks which model
# it runs:
#
#   fence        sc     tso      arm
#   smp_mb       -      DRAIN    DRAIN (the window empties first)
#   smp_wmb      -      -        MARK  (later stores wait for earlier ones)
#   smp_rmb      -      -        RESET (later loads are satisfied after it)
#   smp_mb__before_rmw, smp_mb__after_rmw
#                -      -        DRAIN (as smp_mb: QEMU ff00bed1)
#   "tso"        -      DRAIN    -     (the skeleton's own lock-prefixed
#                                       counter updates: a fence on x86 only)
#   lock acquire -      DRAIN    RESET (the foreign poller's context lock)
#   lock release -      DRAIN    MARK
#
# event_set, event_test_and_clear and the wait are system calls: DRAIN before
# them and RESET after them (see the package docstring for why).
#
# The skeletons themselves (2015 and polling, with their named steps) are
# built in _poller.py; this module holds the instruction set, the lowering of
# a strategy's hooks, and the analyses.  Opcodes added for the polling
# skeleton and for crash-stop faults (issue 11, 14):
#
#   CHOOSE targets texts  a visible nondeterministic branch: one move to each
#                         target (the number of busy-poll rounds; with one
#                         target, a point where a crashing process may stop)
#   DEATH                 the kernel makes the owner's pidfd of this (dead)
#                         process readable: bit 1 of the shared `ev`
#   DTAC dst              the owner reads and clears that bit (recovery)
#
# and for the bottom-half contract (issue 23):
#
#   CBREAD loc k dst start
#                         BH k's callback reads its payload at loc: a load
#                         (as READ) whose value the search keeps -- the
#                         highest payload a callback of BH k has seen; if
#                         `start` (the callback starts here, not a re-read),
#                         one 0->1 schedule of BH k consumed (a callback with
#                         none owed is a double dispatch: lost work)
#
# A strategy's retry loop (_ir.Loop) is a counter slot and a jump back: the
# body, then "tries += 1; if tries < limit: again"; a Break jumps past it.
#
# `ev` is the shared kernel state outside the memory model: bit 0 the
# EventNotifier (readable), bit 1 "an attached process died" (recovery only).
from __future__ import annotations

import attrs

from .._compiler import _ir

# opcodes
READ, WRITE, RMW, DRAIN, RESET, MARK, ESET, ETAC, WAIT, STOP, DONE, BR, JMP, SET = range(14)
CHOOSE, DEATH, DTAC = range(14, 17)
CBREAD = 17
CTRL = 18  # litmus only: ("br", reg) -- later stores depend on the load of reg
OPNAMES = ("READ", "WRITE", "RMW", "DRAIN", "RESET", "MARK", "ESET", "ETAC", "WAIT", "STOP",
           "DONE", "BR", "JMP", "SET", "CHOOSE", "DEATH", "DTAC", "CBREAD", "CTRL")

#: ev bits: the EventNotifier is readable; an attached process died (pidfd).
EV_READABLE, EV_DEATH = 1, 2

SKELETONS = ("2015", "polling")
FAULTS = ("none", "crash")

# ARM (= ARM_LLSC) and ARM_LSE are the two ARMv8 code-generation profiles,
# explored by aiocore._checker._window; "arm", their union, is two runs.
SC, TSO, ARM, ARM_LSE = 0, 1, 2, 3
ARM_LLSC = ARM
MODEL_CODES = {"sc": SC, "tso": TSO, "arm-llsc": ARM_LLSC, "arm-lse": ARM_LSE}

M32 = _ir.MASK32

#: The value of the skeleton's timeout slot meaning "infinite".
INFINITE = 1


class ModelError(Exception):
    """The strategy cannot be turned into a checkable program."""


@attrs.define
class Proc:
    """One process of the explored program."""

    name: str  # "home", "foreign", "notifier0", ...
    role: str  # "home", "foreign", "notifier"
    code: list = attrs.field(factory=list)
    labels: list = attrs.field(factory=list)  # (where, text) per instruction
    uses: list = attrs.field(factory=list)  # slots each instruction reads
    slot_names: list = attrs.field(factory=list)
    entry: int = 0
    # filled by analyse():
    live_env: list = attrs.field(factory=list)  # per pc: tuple of live slots
    # pc -> (the DONE it may jump to instead, how many payload stores made
    # since the folded STOP its buffer drops when it does: they never were)
    exits: dict = attrs.field(factory=dict)
    # pc -> name of the skeleton step (aiocore._compiler._skeleton.STEPS) beginning there
    steps: dict = attrs.field(factory=dict)
    # faults="crash": the process may crash at any visible pc below this one
    # and then resumes here (the crash tail: drain, pidfd, DONE); -1: never
    crash: int = -1

    @property
    def nslots(self):
        return len(self.slot_names)


@attrs.define
class Program:
    model: int
    loc_names: list  # location index -> display name
    bh_locs: tuple  # location of each BH's word (one per notifier)
    procs: list
    config: str
    strategy: str
    skeleton: str = "2015"
    faults: str = "none"
    recovery: bool = False
    payload_locs: tuple = ()  # location of each BH's payload
    bhs: tuple = ()  # BhLocs of each BH
    bh_owner: tuple = ()  # per BH, the index in procs of the notifier scheduling it
    bh_mode: str = "reuse"
    callback: str = "read"
    # (mem, k) -> whether BH k is pending in memory `mem`, as the strategy's
    # bh_pending says (the end states' "a BH is scheduled"); None: word != 0
    pending: object = None


# --- expressions -------------------------------------------------------------


def _expr_src(e, tmap):
    if isinstance(e, _ir.Const):
        return str(e.value & M32), set()
    if isinstance(e, _ir.Tmp):
        try:
            slot = tmap[e.name]
        except KeyError:
            raise ModelError(f"value {e.name} used before it is read") from None
        return f"e[{slot}]", {slot}
    if isinstance(e, _ir.BhSelf):
        if _ir.SELF not in tmap:
            raise ModelError("bh_self outside a bottom-half hook")
        return str(tmap[_ir.SELF]), set()
    if isinstance(e, _ir.Un):
        a, u = _expr_src(e.a, tmap)
        if e.op == "~":
            return f"((~{a}) & {M32})", u
        return f"(1 if {a} == 0 else 0)", u
    a, ua = _expr_src(e.a, tmap)
    b, ub = _expr_src(e.b, tmap)
    u = ua | ub
    op = e.op
    if op in ("+", "-"):
        return f"(({a} {op} {b}) & {M32})", u
    if op in ("|", "&", "^"):
        return f"({a} {op} {b})", u
    if op == "&&":
        return f"(1 if ({a} and {b}) else 0)", u
    if op == "||":
        return f"(1 if ({a} or {b}) else 0)", u
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return f"(1 if {a} {op} {b} else 0)", u
    raise ModelError(f"unknown operator {op!r}")


def _compile_expr(e, tmap):
    src, uses = _expr_src(e, tmap)
    return eval(f"lambda e: {src}"), uses, src  # noqa: S307 - our own generated source


def _expr_text(e):
    """C-like text of an expression, for traces."""
    if isinstance(e, _ir.Const):
        v = e.value & M32
        return f"~{(~v) & M32}" if v > 0xFFFF0000 else str(v)
    if isinstance(e, _ir.Tmp):
        return e.name
    if isinstance(e, _ir.BhSelf):
        return "bh_self"
    if isinstance(e, _ir.Un):
        return f"{e.op}{_expr_text(e.a)}"
    return f"({_expr_text(e.a)} {e.op} {_expr_text(e.b)})"


def _rmw_fn(kind):
    """new-value function (old, operand, expected) -> (new, writes)."""
    if kind == "atomic_xchg":
        return lambda old, v, x: (v, True)
    if kind == "atomic_cmpxchg":
        return lambda old, v, x: (v, True) if old == x else (old, False)
    base = kind.rsplit("_", 1)[1]
    if base == "add":
        return lambda old, v, x: ((old + v) & M32, True)
    if base == "sub":
        return lambda old, v, x: ((old - v) & M32, True)
    if base == "or":
        return lambda old, v, x: (old | v, True)
    if base == "and":
        return lambda old, v, x: (old & v, True)
    raise ModelError(f"unknown read-modify-write {kind!r}")


# --- building one process ----------------------------------------------------


class _Builder:
    def __init__(self, proc: Proc, ir: _ir.StrategyIR, model: int, locs: dict, bh_locs):
        self.p = proc
        self.ir = ir
        self.model = model
        self.locs = locs
        self.bh_locs = bh_locs
        self.instance = 0
        self.cur_step = None  # the skeleton step being emitted (home poller)
        self.crash_points = False  # faults="crash" on a process that may crash
        self.loops = []  # per open retry loop: the Break jumps to patch
        self.bhs = ()  # BhLocs of every BH (build())
        self.callback = "read"  # what a BH's callback does (CALLBACKS)

    # slots
    def slot(self, name):
        self.p.slot_names.append(name)
        return len(self.p.slot_names) - 1

    # emission
    def emit(self, ins, where, text, uses=()):
        if self.crash_points and ins is not None and ins[0] == WRITE and self.model != SC:
            # tso/arm: a store enters the buffer as a local step of the
            # transition before it; a crash just before the store must stay
            # possible (e.g. between event_set and notified = 1).
            self._emit((CHOOSE, (self.here() + 1,), ("goes on (it may crash here)",)), where, text)
        return self._emit(ins, where, text, uses)

    def _emit(self, ins, where, text, uses=()):
        if self.cur_step is not None and where != self.cur_step:
            where = f"{self.cur_step}/{where}"
        self.p.code.append(ins)
        self.p.labels.append((where, text))
        self.p.uses.append(frozenset(uses))
        return len(self.p.code) - 1

    def here(self):
        return len(self.p.code)

    def step(self, name):
        """Begin the skeleton step `name` here (a local no-op carrying its label)."""
        self.cur_step = name
        pc = self._emit((JMP, self.here() + 1), name, f"step {name}")
        self.p.steps[pc] = name
        return pc

    def patch(self, pc, ins):
        self.p.code[pc] = ins

    def fence(self, kind, where, text):
        m = self.model
        if m == SC:
            return
        if kind in _ir.RMW_FENCE_KINDS:
            # QEMU's smp_mb__{before,after}_rmw: a compiler barrier on x86
            # (its RMWs are lock-prefixed), a full fence on ARM.
            if m == TSO:
                return
            kind = "smp_mb"
        if m == TSO:
            if kind in ("smp_mb", "tso", "lock_acquire", "lock_release"):
                self.emit((DRAIN,), where, text)
            return
        # ARMv8 (GCC 12): smp_mb and smp_wmb are `dmb ish` (smp_wmb is a
        # release fence in this project's C, not Linux's `dmb ishst`),
        # smp_rmb `dmb ishld`.  The foreign poller's context lock: its
        # release as a full barrier, its acquire as a load barrier (both a
        # little stronger than STLR / LDAXR, on that config only).
        if kind in ("smp_mb", "smp_wmb", "lock_release"):
            self.emit((DRAIN,), where, text)
        elif kind in ("smp_rmb", "lock_acquire"):
            self.emit((RESET,), where, text)

    def syscall_after(self, where, text):
        if self.model >= ARM:
            self.emit((RESET,), where, text)

    def loc(self, field, bh):
        if field in _ir.BH_FIELDS:
            if bh is None:
                raise ModelError(f"{field} is only meaningful in a bottom-half hook")
            if field == "bh_next":
                if bh.next < 0:
                    raise ModelError("internal: bh_next has no location")
                return bh.next
            return bh.word
        try:
            return self.locs[field]
        except KeyError:
            raise ModelError(f"unknown shared field {field!r}") from None

    # hooks
    def hook(self, name, bh=None, ret_slot=None, depth=0):
        body = self.ir.hooks.get(name, ())
        if depth > 16:
            raise ModelError("hooks call each other too deeply")
        self.instance += 1
        tmap = {} if bh is None else {_ir.SELF: bh.self_value}
        ends = []
        self.loops = []  # per open retry loop: the Break jumps to patch
        self._body(body, name, bh, tmap, ret_slot, ends, depth)
        end = self.here()
        for pc in ends:
            self.patch(pc, (JMP, end))

    def _body(self, body, hook, bh, tmap, ret_slot, ends, depth):
        for s in body:
            self._stmt(s, hook, bh, tmap, ret_slot, ends, depth)

    def _tmp(self, name, hook, tmap):
        # A tmp is named after the operation that produced it, so the same
        # name on two branches is the same value: share the slot.
        if name in tmap:
            return tmap[name]
        slot = self.slot(f"{hook}.{name}#{self.instance}")
        tmap[name] = slot
        return slot

    def _stmt(self, s, hook, bh, tmap, ret_slot, ends, depth):
        lname = self.loc_name
        if isinstance(s, _ir.Read):
            loc = self.loc(s.field, bh)
            dst = self._tmp(s.dst, hook, tmap)
            self.emit((READ, loc, s.kind == "atomic_load_acquire", dst), hook,
                      f"{s.dst} = {s.kind}({lname(loc)})")
        elif isinstance(s, _ir.Write):
            loc = self.loc(s.field, bh)
            fn, uses, _ = _compile_expr(s.value, tmap)
            self.emit((WRITE, loc, s.kind == "atomic_store_release", fn), hook,
                      f"{s.kind}({lname(loc)}, {_expr_text(s.value)})", uses)
        elif isinstance(s, _ir.MbSet):
            loc = self.loc(s.field, bh)
            fn, uses, _ = _compile_expr(s.value, tmap)
            self.fence("smp_wmb", hook, "atomic_mb_set: smp_wmb()")
            self.emit((WRITE, loc, False, fn), hook,
                      f"atomic_mb_set({lname(loc)}, {_expr_text(s.value)})", uses)
            self.fence("smp_mb", hook, "atomic_mb_set: smp_mb()")
        elif isinstance(s, _ir.Rmw):
            loc = self.loc(s.field, bh)
            fn, uses, _ = _compile_expr(s.value, tmap)
            efn = None
            if s.kind == "atomic_cmpxchg":
                efn, u2, _ = _compile_expr(s.expected, tmap)
                uses = uses | u2
                text = f"atomic_cmpxchg({lname(loc)}, {_expr_text(s.expected)}, {_expr_text(s.value)})"
            elif s.kind == "atomic_xchg":
                text = f"atomic_xchg({lname(loc)}, {_expr_text(s.value)})"
            else:
                text = f"{s.kind}({lname(loc)}, {_expr_text(s.value)})"
            dst = self._tmp(s.dst, hook, tmap) if s.dst else -1
            if s.dst:
                text = f"{s.dst} = {text}"
            if self.model == TSO:
                self.fence("smp_mb", hook, "(seq_cst RMW: lock prefix drains the store buffer)")
            self.emit((RMW, loc, _rmw_fn(s.kind), fn, efn, dst, -1), hook, text, uses)
        elif isinstance(s, _ir.Fence):
            self.fence(s.kind, hook, f"{s.kind}()")
        elif isinstance(s, _ir.EventSet):
            self.fence("smp_mb", hook, "(event_notifier_set: system call)")
            self.emit((ESET,), hook, "event_notifier_set()")
            self.syscall_after(hook, "(end of system call)")
        elif isinstance(s, _ir.EventTestAndClear):
            dst = self._tmp(s.dst, hook, tmap) if s.dst else -1
            self.fence("smp_mb", hook, "(event_notifier_test_and_clear: system call)")
            self.emit((ETAC, dst), hook,
                      (f"{s.dst} = " if s.dst else "") + "event_notifier_test_and_clear()")
            self.syscall_after(hook, "(end of system call)")
        elif isinstance(s, _ir.Call):
            if s.hook in _ir.VALUE_HOOKS:
                raise ModelError(f"only the skeleton calls {s.hook}")
            loops = self.loops
            self.hook(s.hook, bh=bh, depth=depth + 1)
            self.loops = loops
        elif isinstance(s, _ir.Loop):
            tries = self.slot(f"{hook}.tries#{self.instance}")
            self.emit((SET, tries, lambda e: 0), hook, f"retry loop: up to {s.limit} attempts")
            start = self.here()
            self.loops.append([])
            self._body(s.body, hook, bh, tmap, ret_slot, ends, depth)
            self.emit((SET, tries, (lambda t: lambda e: e[t] + 1)(tries)), hook, "attempt done",
                      {tries})
            br = self.emit(None, hook, f"if attempts < {s.limit}: again", {tries})
            self.emit((JMP, start), hook, "again")
            end = self.here()
            self.patch(br, (BR, (lambda t, n: lambda e: 1 if e[t] < n else 0)(tries, s.limit), end))
            for pc in self.loops.pop():
                self.patch(pc, (JMP, end))
        elif isinstance(s, _ir.Break):
            if not self.loops:
                raise ModelError(f"hook {hook}: break outside a retry loop")
            self.loops[-1].append(self.emit(None, hook, "break"))
        elif isinstance(s, _ir.If):
            fn, uses, _ = _compile_expr(s.cond, tmap)
            br = self.emit(None, hook, f"if {_expr_text(s.cond)}", uses)
            self._body(s.then, hook, bh, tmap, ret_slot, ends, depth)
            if s.orelse:
                j = self.emit(None, hook, "")
                self.patch(br, (BR, fn, self.here()))
                self._body(s.orelse, hook, bh, tmap, ret_slot, ends, depth)
                self.patch(j, (JMP, self.here()))
            else:
                self.patch(br, (BR, fn, self.here()))
        elif isinstance(s, _ir.Return):
            if ret_slot is None:
                raise ModelError(f"hook {hook} returns a value; only the value hooks may")
            fn, uses, _ = _compile_expr(s.value, tmap)
            self.emit((SET, ret_slot, fn), hook, f"return {_expr_text(s.value)}", uses)
            ends.append(self.emit(None, hook, ""))
        else:
            raise ModelError(f"not an IR statement: {s!r}")

    def loc_name(self, loc):
        return self._names[loc]


def _loc_names(locs, bhs, word="scheduled"):
    names = [None] * (len(locs) + sum(2 + (b.next >= 0) for b in bhs))
    for f, i in locs.items():
        names[i] = f
    for k, b in enumerate(bhs):
        names[b.word] = f"bh{k}.{word}"
        names[b.payload] = f"bh{k}.payload"
        if b.next >= 0:
            names[b.next] = f"bh{k}.next"
    return names


# --- analyses ---------------------------------------------------------------------


def _succs(code, pc):
    ins = code[pc]
    op = ins[0]
    if op == BR:
        return (pc + 1, ins[2])
    if op == JMP:
        return (ins[1],)
    if op == STOP:
        return (pc + 1, ins[1])
    if op == CHOOSE:
        return tuple(ins[1])
    if op == DONE:
        return ()
    return (pc + 1,)


def _defs(ins):
    op = ins[0]
    if op == READ:
        return {ins[3]}
    if op == RMW:
        return {ins[5]} if ins[5] >= 0 else set()
    if op == SET:
        return {ins[1]}
    if op == ETAC:
        return {ins[1]} if ins[1] >= 0 else set()
    if op == WAIT:
        return {ins[2]} if ins[2] >= 0 else set()
    if op == DTAC:
        return {ins[1]}
    if op == CBREAD:
        return {ins[3]}
    return set()


def _fold_stops(p: Proc, model: int):
    """A STOP (the process may leave here) followed by nothing but steps
    without effect becomes a plain jump, and "leave" becomes an extra move
    of the visible instructions the process may stop at next: one transition
    (and one state) fewer per choice, the same behaviours."""
    code = p.code
    for s, ins in enumerate(code):
        if ins[0] != STOP:
            continue
        done = ins[1]
        cands = []
        pc = s + 1
        ok = True
        ghosts = 0
        while True:
            op = code[pc][0]
            if op == WRITE and len(code[pc]) > 4 and code[pc][4]:
                # a payload store: visible no sooner than the process's next
                # move (sc, tso; see the explorer; arm: a PAY entry of its
                # window, aiocore._checker._window), so dropped when it leaves
                # there instead
                ghosts += 1
                pc += 1
                continue
            if op == JMP:
                pc = code[pc][1]
                continue
            if op == SET or (op == RESET and model < ARM):
                pc += 1
                continue
            if model >= ARM and op in (DRAIN, MARK, RESET):
                # arm: a barrier may make the payload stores visible alone, before
                # the next move (_window), and a load there is always visible
                ok = False
                break
            if op == DRAIN or (op == READ and model == TSO):
                cands.append((pc, ghosts))  # it may stop here (a full buffer, a load not forwarded)
                pc += 1
                continue
            if op in (READ, RMW, ESET, ETAC, WAIT, DONE, CHOOSE, CBREAD):
                cands.append((pc, ghosts))
                break
            ok = False  # a store, a barrier entering the buffer, a branch, another STOP
            break
        if ok:
            code[s] = (JMP, s + 1)
            for c, g in cands:
                p.exits[c] = (done, g)


def analyse(p: Proc, model: int):
    """Liveness of the env slots."""
    code = p.code
    n = len(code)
    live = [frozenset()] * n
    changed = True
    while changed:
        changed = False
        for pc in range(n - 1, -1, -1):
            out = set()
            for s in _succs(code, pc):
                out |= live[s]
            new = frozenset(p.uses[pc] | (out - _defs(code[pc])))
            if new != live[pc]:
                live[pc] = new
                changed = True
    p.live_env = [tuple(sorted(x)) for x in live]


# --- entry point --------------------------------------------------------------------


def supported_configs(ir: _ir.StrategyIR, skeleton: str = "2015") -> tuple:
    """The configurations a strategy can be checked in (foreign: 2015 only)."""
    out = ["home"]
    if ir.foreign_pollers and skeleton == "2015":
        out.append("foreign")
    out.append("gsource")
    return tuple(out)
