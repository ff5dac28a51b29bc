# Branches on a load not yet performed, speculated as ARMv8 does
# (check_ir(..., speculate=True); aiocore._checker._window's module comment
# says when and why it is off by default).
#
# A speculated branch goes either way at once; a CTRL entry per pending load
# keeps the stores after it back (ctrl orders them, nothing else), and a SPEC
# entry (-1, (registers still pending, (register, value) known, pc, taken),
# SPEC) remembers the direction.  Each time one of its loads is performed its
# value is kept in the entry (the register may be overwritten later), and
# when the last one is, the branch's condition is evaluated on those values:
# a direction they contradict ends the path.  Held against herd7 on every
# corpus program with a branch (tests/test_checker_litmus.py).
#
# May import: _entries, _program.
from __future__ import annotations

from ._entries import CTRLK, SPEC, _pending
from ._program import (
    BR, CBREAD, CHOOSE, DEATH, DONE, DRAIN, DTAC, ESET, ETAC, JMP, MARK, READ, RESET, RMW, WAIT,
)


def _spec_slots(buf) -> set:
    """Registers a speculated branch still needs: their loads' values are kept until it is checked."""
    return {r for e in buf if e[2] == SPEC for r in e[1][0]}


def _speculation_sites(proc) -> frozenset:
    """The branches worth speculating: those after which a load (or an RMW's,
    or a callback's) may be performed before the next barrier.  Past any
    other branch speculation only moves stores, which its CTRL entries keep
    behind the load anyway, and local steps: nothing another process sees."""
    code = proc.code
    out = set()
    for pc, ins in enumerate(code):
        if ins[0] != BR:
            continue
        todo, seen = [pc + 1, ins[2]], set()
        while todo:
            q = todo.pop()
            if q in seen or q >= len(code):
                continue
            seen.add(q)
            op = code[q][0]
            if op in (READ, RMW, CBREAD):
                out.add(pc)
                break
            if op in (DRAIN, MARK, RESET, DONE, ESET, ETAC, WAIT, DEATH, DTAC):
                continue  # a barrier (the system calls are full barriers)
            if op == BR:
                todo += [q + 1, code[q][2]]
            elif op == JMP:
                todo.append(code[q][1])
            elif op == CHOOSE:
                todo += list(code[q][1])
            else:
                todo.append(q + 1)
    return frozenset(out)


class SpeculationMixin:
    """The WindowExplorer's speculation moves and checks."""

    def _speculate(self, i, p, mem, ev, owed, out, verbose):
        """A branch on a load not yet performed goes either way now (ARMv8
        speculates past it: ctrl orders only the later stores, kept behind
        a CTRL entry per load); a SPEC entry remembers the direction taken,
        checked when the loads are performed (_check_speculation)."""
        pc, env, buf, _ = p
        P = self.prog.procs[i]
        ins = P.code[pc]
        if ins[0] != BR or pc not in self.spec_sites[i]:
            return
        pend = _pending(buf) & P.uses[pc]
        if not pend:
            return
        slots = tuple(sorted(pend))
        known = tuple((r, env[r]) for r in sorted(P.uses[pc] - pend))
        sh_id = self.ish((mem, ev, owed))
        for taken, target in ((True, pc + 1), (False, ins[2])):
            buf2 = (buf + tuple((-1, r, CTRLK) for r in slots)
                    + ((-1, (slots, known, pc, taken), SPEC),))
            log = [] if verbose else None
            pid = self.after(i, target, env, buf2, (), False, log)
            info = None
            if verbose:
                regs = ", ".join(P.slot_names[r] for r in slots)
                info = self._info(i, pc, f"speculated {'taken' if taken else 'not taken'} "
                                  f"(checked when {regs} is performed)", log, speculated=taken)
            out.append((sh_id, pid, None, None, info))

    def _check_speculation(self, i, env, buf, x):
        """buf once register x's load is performed: each speculation on x
        keeps its value, and one whose loads are all performed is checked
        and dropped; None if it went the way their values do not."""
        P = self.prog.procs[i]
        out = []
        for e in buf:
            if e[2] != SPEC or x not in e[1][0]:
                out.append(e)
                continue
            slots, known, pc, taken = e[1]
            slots = tuple(r for r in slots if r != x)
            known = known + ((x, env[x]),)
            if slots:
                out.append((-1, (slots, known, pc, taken), SPEC))
                continue
            env2 = list(env)
            for r, v in known:
                env2[r] = v
            if bool(P.code[pc][1](env2)) != taken:
                return None
        return tuple(out)
