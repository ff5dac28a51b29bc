# The ARMv8 models of the checker, one per code-generation profile:
# ``arm-llsc`` (ARMv8.0 code: every seq_cst RMW an LDAXR/STLXR loop) and
# ``arm-lse`` (ARMv8.1: SWPAL, LDADDAL, CASAL, LDSETAL, LDCLRAL).
#
# The model is operational and exact for the instructions GCC 12 emits for
# the primitives (aiocore._checker._isa states the mapping and
# tests/test_compiled_isa.py checks it on the cross-compiled code), in the
# style of the Flat model (Pulte et al., POPL 2018) reduced to what ARMv8's
# other-multi-copy atomicity allows: there is one memory, and every memory
# event of a process is *performed* at one point of the interleaving -- a
# load by reading memory (or its own latest store not yet visible: the
# forwarding that rfi allows), a store by writing it.  What a process keeps
# between its program order and the order its events are performed in is
# its *window*: the instructions it has executed but not yet performed, in
# program order, each an entry (loc, x, kind):
#
#   ST   (loc, value)   a plain store (STR) not yet visible
#   REL  (loc, value)   a release store (STLR): visible only after every
#                       earlier entry (po; [L])
#   RMWW (loc, value)   the store half of an LDAXR/STLXR pair whose load has
#                       been performed: a release, and while no earlier store
#                       to loc is before it, loc is *reserved* -- no other
#                       process may make a store to loc visible or start an
#                       RMW on it (the exclusive monitor: nothing may come
#                       between the pair in coherence order)
#   LD   (loc, slot)    a load whose value is not needed yet: performed
#                       later, in a move of its own (loads may be satisfied
#                       after later loads and stores: R->R and LB)
#   CTRL (-1, slot)     a branch on a pending load (the litmus ``br``): no
#                       later store may become visible until it is resolved
#                       (dob: ctrl; [W])
#   PAY  (loc, value)   a BH payload store (aiocore._checker._contract): a
#                       plain store made visible as late as the profile
#                       allows -- with the release or atomic behind it, or
#                       alone once its process stopped at a full barrier or
#                       is done; never on its own before (each such point
#                       is one the profile allows, and a callback that sees
#                       an older payload can only find more lost work: the
#                       argument of _contract)
#   SPEC (-1, ...)      a branch speculated past its pending load(s), with
#                       the direction taken (aiocore._checker._speculation)
#
# What waits for what, rule by rule of aarch64.cat's ``ob`` (see
# aiocore._checker._axiomatic for the axioms, held against this module on
# the litmus corpus of tests/litmus):
#
#   lws        a store waits for every earlier entry to its location
#              (coWW, coRW); a load for the earlier loads of its location
#              (CoRR: loads of one location resolve in program order)
#   dmb.full   (smp_mb, smp_wmb, and the system calls) the process executes
#              nothing past it until its window is empty
#   dmb.ld     (smp_rmb) nothing past it until no load is pending
#   [A]; po    an acquire load (LDAR, and the load of an RMW) is performed
#              when it is executed: everything after it follows it
#   [L]; po; [A]
#              an acquire load waits until no release (REL, RMWW) is pending
#   po; [L]    a release store waits for every earlier entry
#   amo (LSE)  an AL atomic is performed at once, after every earlier entry
#              and before any later one (its store is [L] and ordered before
#              all later accesses: [range([A]; amo; [L])]; po)
#   dob        a value or a branch needs its loads performed first: an
#              instruction that reads a pending load's register waits for it
#
# A failed cmpxchg is its acquire load alone (CASAL; LDAXR + B.NE).
#
# Reductions that keep every execution's outcome (issue 21 item 7; the
# litmus corpus holds them exact): an exclusive pair is performed as one
# step where nothing can tell it from two (_atomic_pair says when), and a
# BH payload store waits in the window as late as the profile allows (PAY).
#
# Branches on a pending load: ARMv8 speculates past them (ctrl orders the
# later stores only, so a later load may be performed before the branch's).
# With check_ir(..., speculate=True) (`aiocore check --speculate`) the model
# does too, and is then exact for them: such a branch goes either way at once
# (_speculate), a CTRL entry per pending load keeps the later stores back, a
# SPEC entry remembers the direction, and when its loads are performed a
# direction their values contradict ends the path (_check_speculation); a
# process does not stop for good, nor make a system call, with a branch
# speculated.  Only branches after which a load may come before the next
# barrier are speculated (_speculation_sites): past the others speculation
# moves nothing another process sees.  It is off by default because it costs
# several times the states (explicit-mb 3x3 on 2015: 37-45 million states per
# profile instead of 5) and changes no verdict of the built-ins; off, such a
# branch waits for its load, which is stronger than ARM for a load placed
# after it.  The litmus ``br`` is always exact: it goes to the next
# instruction either way, so it needs no speculation.
#
# The next model on this machinery: RISC-V's RVWMO is other-multi-copy
# atomic too, so it is one memory and the same windows; what changes is the
# table of waiting rules and the instruction mapping.  GCC's RISC-V code for
# the primitives: seq_cst RMWs as AMOs with .aqrl (performed at once, as the
# LSE atomics here), cmpxchg as an lr.aqrl/sc loop (an exclusive pair, as
# LDAXR/STLXR), smp_mb as fence rw,rw (DRAIN), and C11's release and acquire
# fences as fence rw,w and fence r,rw: a release fence then keeps earlier
# entries ahead of later stores only (a waiting rule of its own, where
# dmb ish is DRAIN), and an acquire fence is RESET.  Its own corpus (herd7's
# riscv.cat) would judge it, as tests/litmus judges these.
from __future__ import annotations

from ._explore import Explorer
from ._entries import CTRLK, LD, PAY, REL, RMWW, SPEC, ST, _pending
from ._speculation import SpeculationMixin, _spec_slots, _speculation_sites
from ._program import (
    ARM_LLSC, ARM_LSE, BR, CBREAD, CTRL, DEATH, DONE, DRAIN, DTAC, ESET, ETAC, JMP, MARK, READ,
    RESET, RMW, SET, WAIT, WRITE,
    ModelError,
    _defs,
)

_STORES = (ST, REL, RMWW, PAY)


def _kill(buf, slots):
    """Pending loads whose register is overwritten: their value is dropped."""
    if not slots or not buf:
        return buf
    return tuple((e[0], -1, LD) if e[2] == LD and e[1] in slots else e for e in buf)


def _payloads_only(buf) -> bool:
    return all(e[2] == PAY for e in buf)


def resv_locs(buf) -> set:
    """Locations a window holds reserved: an RMW store with no earlier store to its location."""
    out = set()
    seen = set()
    for e in buf:
        k = e[2]
        if k in _STORES:
            if k == RMWW and e[0] not in seen:
                out.add(e[0])
            seen.add(e[0])
    return out


def _latest(buf, loc):
    """The latest entry of buf to loc: None, ("st", value) or ("ld",)."""
    for e in reversed(buf):
        if e[0] == loc:
            return ("ld",) if e[2] == LD else ("st", e[1])
    return None


class WindowExplorer(SpeculationMixin, Explorer):
    """The Explorer with ARMv8's windows (see the module comment)."""

    window = True
    payload_entries = False  # a payload store is an ordinary ST entry

    def __init__(self, prog, max_states=5_000_000):
        super().__init__(prog, max_states)
        self.lse = prog.model == ARM_LSE
        self.EMPTY = ()
        self.defs = [[frozenset(_defs(ins)) for ins in p.code] for p in prog.procs]
        # branch speculation (check_ir(..., speculate=True)): off by default, see the module comment
        self.spec_sites = [frozenset() for _ in prog.procs]
        # per process: the locations another process loads (READ, CBREAD) -- see _atomic_pair
        self.loaded_by_others = [
            frozenset(ins[1] for q, P in enumerate(prog.procs) if q != i
                      for ins in P.code if ins[0] in (READ, CBREAD))
            for i in range(len(prog.procs))]

    def set_speculation(self, on: bool):
        """Speculate past branches on pending loads (exact ARMv8), or let them wait."""
        self.spec_sites = [_speculation_sites(p) if on else frozenset() for p in self.prog.procs]

    # --- local steps ---------------------------------------------------------

    def _local(self, i, pc, env, buf, log):
        P = self.prog.procs[i]
        code, uses, defs = P.code, P.uses, self.defs[i]
        env = list(env)
        guard = 0
        while True:
            guard += 1
            if guard > 100000:
                raise ModelError(f"{P.name}: a loop without any visible operation")
            ins = code[pc]
            op = ins[0]
            if buf:
                pend = _pending(buf)
                if pend and uses[pc] & pend:
                    break  # its value or branch needs a load not yet performed
                if pend and defs[pc] & pend:
                    if defs[pc] & pend & _spec_slots(buf):
                        break  # a speculated branch still needs that load's value
                    buf = _kill(buf, defs[pc] & pend)
            if log is not None and op in (BR, SET):
                log.append((pc, None))  # for _export (its branches, values passed on): not shown
            if op == BR:
                pc = pc + 1 if ins[1](env) else ins[2]
            elif op == JMP:
                pc = ins[1]
            elif op == SET:
                env[ins[1]] = ins[2](env)
                pc += 1
            elif op == RESET:  # dmb ishld: later accesses wait for the earlier loads
                if any(e[2] == LD for e in buf):
                    break
                if log is not None:
                    log.append((pc, None))  # for _export: a fence passed
                pc += 1
            elif op in (DRAIN, MARK):  # dmb ish: everything earlier first
                if buf:
                    break
                if log is not None:
                    log.append((pc, None))
                pc += 1
            elif op == CTRL:
                if log is not None:
                    log.append((pc, None))
                if ins[1] in _pending(buf):
                    buf = buf + ((-1, ins[1], CTRLK),)
                pc += 1
            elif op == WRITE:
                v = ins[3](env)
                kind = PAY if len(ins) > 4 and ins[4] else REL if ins[2] else ST
                buf = buf + ((ins[1], v, kind),)
                if log is not None:
                    log.append((pc, f"wrote {v} (into its window, not yet visible)", v))
                pc += 1
            else:
                break
        out = [0] * len(env)
        for k in P.live_env[pc]:
            out[k] = env[k]
        if buf:
            live = P.live_env[pc]
            dead = {s for s in _pending(buf) if s not in live} - _spec_slots(buf)
            buf = _kill(buf, dead)
        return pc, tuple(out), buf, False

    def after(self, i, pc, env, buf, stale, reset, log=None):
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

    # --- successors ------------------------------------------------------------

    def _others_resv(self, state):
        if self.lse:
            return None
        rs = [resv_locs(self.PR[x][2]) for x in state[1:]]
        if not any(rs):
            return None
        return [tuple(sorted(set().union(*(rs[q] for q in range(self.n) if q != i))))
                for i in range(self.n)]

    def _reservations(self, state):
        out = []
        for q in range(self.n):
            for loc in resv_locs(self.PR[state[q + 1]][2]):
                out.append((q, loc))
        return tuple(out)

    def resv_mask(self, buf) -> int:
        m = 0
        if not self.lse:
            for loc in resv_locs(buf):
                m |= 1 << loc
        return m

    def _stalled(self, i, pc, buf):
        if not buf:
            return False
        P = self.prog.procs[i]
        if P.code[pc][0] in (DRAIN, MARK, RESET, CTRL, WRITE, BR, SET, JMP):
            return True  # _local stopped there: it waits for its window
        if P.code[pc][0] in (ESET, ETAC, WAIT, DEATH, DTAC) and any(e[2] == SPEC for e in buf):
            return True  # a system call is not made on a speculated path
        pend = _pending(buf)
        if pend and self.defs[i][pc] & pend & _spec_slots(buf):
            return True  # it would overwrite a register a speculated branch still needs
        return bool(pend) and bool(P.uses[pc] & pend)

    @staticmethod
    def _may_stop(buf):
        """Not with a branch speculated: its direction is checked first (the
        hardware resolves it whatever the process does next)."""
        return not any(e[2] == SPEC for e in buf)

    @staticmethod
    def _kept(buf):
        """What stays of a window when its process stops: the executed stores."""
        return tuple(e for e in buf if e[2] in _STORES)

    def _read(self, i, pc, ins, env, buf, mem, sh_id, out, log):
        loc, acq, dst = ins[1], ins[2], ins[3]
        lat = _latest(buf, loc)
        buf = _kill(buf, {dst})
        verbose = log is not None
        if lat != ("ld",) and not (acq and any(e[2] in (REL, RMWW) for e in buf)):
            v = lat[1] if lat else mem[loc]
            e2 = list(env)
            e2[dst] = v
            pid = self.after(i, pc + 1, tuple(e2), buf, (), False, log)
            info = None
            if verbose:
                info = self._info(i, pc, f"read {v}" + (" (its own store, not yet visible)" if lat else ""),
                                  log, read=v)
                log = []
            out.append((sh_id, pid, None, None, info))
        if acq:
            return  # everything after an acquire load follows it: never pending
        buf2 = buf + ((loc, dst, LD),)
        P = self.prog.procs[i]
        env = env[:dst] + (0,) + env[dst + 1:]
        pc2, _env2, buf3, _ = self._local(i, pc + 1, env, buf2, None)
        nxt = P.code[pc2][0]
        if buf3 == buf2 and (dst in P.uses[pc2] and not (nxt == BR and pc2 in self.spec_sites[i])
                             or nxt in (DRAIN, MARK, RESET, DONE)):
            return  # nothing could happen before it is performed: no new behaviour
            # (a branch on it may be speculated: _speculate)
        pid = self.after(i, pc + 1, env, buf2, (), False, log)
        info = None
        if verbose:
            info = self._info(i, pc, "issued; performed later (its value is not needed yet)", log,
                              pending=True)
        out.append((sh_id, pid, None, None, info))

    def _rmw(self, i, pc, ins, env, buf, mem, ev, owed, sh_id, resv, out, log):
        loc = ins[1]
        if loc in resv:
            return  # another process's exclusive pair holds it
        lat = _latest(buf, loc)
        if lat == ("ld",):
            return  # an earlier load of loc first (CoRR)
        if any(e[2] in (REL, RMWW) for e in buf):
            return  # its load is acquire: earlier releases first ([L]; po; [A])
        old = lat[1] if lat else mem[loc]
        expected = ins[4](env) if ins[4] is not None else None
        new, writes = ins[2](old, ins[3](env), expected)
        flush = 0
        if writes and self.lse and buf:
            if not _payloads_only(buf):
                return  # an AL atomic waits for every earlier access (po; [L])
            flush = len(buf)  # the payload stores become visible with it (see PAY)
        if ins[5] >= 0:
            buf = _kill(buf, {ins[5]})
        deferred = writes and not self.lse
        if deferred and lat is None:
            atomic = self._atomic_pair(i, pc, ins, env, buf, loc, old, new)
            if atomic is None:
                if not _payloads_only(buf):
                    return  # it waits for its window to empty (see _atomic_pair)
                flush, atomic = len(buf), True
            deferred = not atomic
        if flush:
            mem, owed = self._flush(mem, owed, buf)
            sh_id = self.ish((mem, ev, owed))
            buf = ()
        if deferred:
            buf = buf + ((loc, new, RMWW),)  # the STLXR: visible later
        self._rmw_move(i, pc, ins, env, mem, ev, owed, sh_id, old, new, writes, buf, out, log,
                       deferred=deferred, atomic=writes and not deferred and not self.lse,
                       flushed=flush)

    def _flush(self, mem, owed, entries):
        """Stores made visible in order: (memory, owed) after them."""
        for e in entries:
            owed = self._owed_write(owed, e[0], mem[e[0]], e[1])
            mem = mem[:e[0]] + (e[1],) + mem[e[0] + 1:]
        return mem, owed

    def _atomic_pair(self, i, pc, ins, env, buf, loc, old, new):
        """arm-llsc, an exclusive pair on loc (no earlier entry of its window
        on loc): True if its STLXR may be performed with its LDAXR, as one
        step; False if not; None if the pair waits for the window to empty.

        Both reductions keep exactly the executions' outcomes: while the
        pair's store is pending, loc is reserved (no other process may store
        to it or start an RMW on it), so moving the LDAXR later to the STLXR,
        or the STLXR earlier to the LDAXR, changes what a load reads only if
        that load is of loc and made by another process in between, or made
        by this process (which forwards the pending value, as memory holds it
        after the STLXR):
          * its window is empty and no other process has a plain load of loc,
            or the STLXR writes the value the LDAXR read: the STLXR can
            follow at once (nothing can tell);
          * after it the process stops with nothing after the pair in its
            window but payload stores (which wait for it): at a full barrier,
            at an RMW (whose acquire waits for the pair's release) or done.
            It does nothing visible until the STLXR (leaving or crashing
            there is its own affair, done as well after it), so the LDAXR
            can wait until then -- until the window before it has emptied --
            and be performed with it."""
        if not buf and (new == old or loc not in self.loaded_by_others[i]):
            return True
        e2 = env
        if ins[5] >= 0:
            e2 = list(env)
            e2[ins[5]] = old
            e2 = tuple(e2)
        stall = buf + ((loc, 0, RMWW),)
        pc2, _env2, buf2, _ = self._local(i, pc + 1, e2, stall, None)
        if (self.prog.procs[i].code[pc2][0] in (DRAIN, MARK, RMW, DONE)
                and len(buf2) >= len(stall) and _payloads_only(buf2[len(stall):])):
            return None if buf else True
        return False

    def _commits(self, i, p, mem, ev, owed, resv, out, verbose):
        """Perform one entry of the window: resolve a pending load, or make a store visible."""
        pc, env, buf, _ = p
        names = self.prog.loc_names
        self._speculate(i, p, mem, ev, owed, out, verbose)
        earlier_locs = set()
        earlier_load = False
        ctrl_before = False
        for j, e in enumerate(buf):
            loc, x, k = e
            if k == CTRLK:
                ctrl_before = True
                continue
            if k == SPEC:
                continue  # checked as its loads are performed; the CTRL entries hold the stores
            if loc in earlier_locs and k != LD:
                earlier_locs.add(loc)
                earlier_load = earlier_load or k == LD
                continue
            if k == LD:
                if not any(f[0] == loc and f[2] == LD for f in buf[:j]):
                    v = None
                    for f in reversed(buf[:j]):
                        if f[0] == loc and f[2] in _STORES:
                            v = f[1]
                            break
                    fwd = v is not None
                    if v is None:
                        v = mem[loc]
                    e2 = env
                    if x >= 0:
                        e2 = list(env)
                        e2[x] = v
                        e2 = tuple(e2)
                    buf2 = tuple(f for q, f in enumerate(buf)
                                 if q != j and not (f[2] == CTRLK and x >= 0 and f[1] == x))
                    if x >= 0 and any(f[2] == SPEC for f in buf2):
                        buf2 = self._check_speculation(i, e2, buf2, x)
                        if buf2 is None:
                            earlier_locs.add(loc)
                            earlier_load = True
                            continue  # the branch went the other way: not an execution
                    log = [] if verbose else None
                    pid = self.after(i, pc, e2, buf2, (), False, log)
                    info = None
                    if verbose:
                        info = {"process": self.prog.procs[i].name, "where": "window",
                                "op": f"the load of {names[loc]} is performed",
                                "result": f"read {v}" + (" (its own store, not yet visible)" if fwd else ""),
                                "local": self._log_items(i, log), "log": log, "entry": j, "read": v}
                    out.append((self.ish((mem, ev, owed)), pid, None, None, info))
                earlier_locs.add(loc)
                earlier_load = True
                continue
            # a store; a release waits for every earlier entry, the payload
            # stores among them made visible with it (see PAY)
            ok = (loc not in earlier_locs and not ctrl_before and loc not in resv
                  and (k == ST or (k != PAY and _payloads_only(buf[:j]))))
            earlier_locs.add(loc)
            if not ok:
                continue
            lump = j if k != ST else 0
            mem2, owed2 = self._flush(mem, owed, buf[:lump])
            old = mem2[loc]
            sh2 = self.ish((mem2[:loc] + (x,) + mem2[loc + 1:], ev, self._owed_write(owed2, loc, old, x)))
            buf2 = buf[lump:j] + buf[j + 1:]
            self._commit_move(i, pc, env, buf2, sh2, f"{names[loc]} = {x} becomes visible",
                              f"{names[loc]}: {old} -> {x}", j, lump, out, verbose)
        if buf and _payloads_only(buf) and self.prog.procs[i].code[pc][0] in (DRAIN, MARK, DONE):
            # stopped (a full barrier, or done) with nothing but payload stores: they become visible
            mem2, owed2 = self._flush(mem, owed, buf)
            sh2 = self.ish((mem2, ev, owed2))
            what = ", ".join(f"{names[e[0]]} = {e[1]}" for e in buf)
            self._commit_move(i, pc, env, (), sh2, f"{what} become(s) visible", "visible", None,
                              len(buf), out, verbose)

    def _commit_move(self, i, pc, env, buf2, sh2, op, result, j, lump, out, verbose):
        """The move that performs window entry j (None: only payloads), the
        first `lump` entries (payload stores) made visible before it."""
        log = [] if verbose else None
        pid = self.after(i, pc, env, buf2, (), False, log)
        info = None
        if verbose:
            info = {"process": self.prog.procs[i].name, "where": "window", "op": op,
                    "result": result, "local": self._log_items(i, log), "log": log, "entry": j,
                    **({"flushed": lump} if lump else {})}
            if lump and j is not None:
                info["result"] += f" (after the {lump} payload store(s) before it)"
        out.append((sh2, pid, None, None, info))

    def _buffers(self, state):
        out = {}
        names = self.prog.loc_names
        for i, x in enumerate(state[1:]):
            items = []
            slots = self.prog.procs[i].slot_names
            for loc, v, k in self.PR[x][2]:
                if k == LD:
                    items.append(f"ld {names[loc]}" + (f" -> {slots[v]}" if v >= 0 else ""))
                elif k == CTRLK:
                    items.append(f"ctrl({slots[v]})")
                elif k == SPEC:
                    items.append(f"speculated {'taken' if v[3] else 'not taken'} "
                                 f"on {', '.join(slots[r] for r in v[0])}")
                else:
                    items.append(f"{names[loc]}={v}" + {ST: "", REL: "(rel)", RMWW: "(rmw)", PAY: "(payload)"}[k])
            if items:
                out[self.prog.procs[i].name] = items
        return out


def explorer(prog, max_states: int = 5_000_000) -> Explorer:
    """The Explorer of a program: the windows of this module for the ARM profiles."""
    if prog.model >= ARM_LLSC:
        return WindowExplorer(prog, max_states)
    return Explorer(prog, max_states)
