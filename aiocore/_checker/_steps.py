# The steps the checker's home poller passes along one chosen path of one
# blocking aio_poll: the checker half of tests/test_skeleton_drift.py, which
# compares them with the steps the C logs (AIO_STEP, the step-log build).
#
# A path is a Scenario: what is set in shared memory when the poller reaches
# a step (before the step runs), how many busy-poll rounds it makes, and what
# a notifier does if the poller would block.  The home process's program
# (built for SC, one notifier) is run alone, sequentially, by a small
# interpreter of the instruction set of _program.py -- not by the explorer:
# one path, no interleavings.  It reports the step names in order (as the C
# logs them: every step, before its condition) and what each step did (hooks
# that ran, whether the ppoll ran), which the C shows through its counters.
from __future__ import annotations

import attrs

from .._compiler import _ir, _skeleton
from ._assemble import build
from ._program import (
    BR, CBREAD, CHOOSE, DRAIN, DTAC, ESET, ETAC, INFINITE, JMP, MARK, READ, RESET, RMW, SET,
    WAIT, WRITE, ModelError,
)


@attrs.frozen
class Scenario:
    """One path of a blocking aio_poll.

    ``at`` {step: {field: value}}: stores that happen (another process's, made
    visible) just before the home poller begins that step; fields are the
    strategy's (``notified``, ``notify_me``) or ``bh0`` (the BH flag) or
    ``event`` (1: the notifier becomes readable).  ``rounds``: busy-poll rounds
    when the poll phase runs.  ``on_block``: what a notifier does if the
    poller sleeps in an infinite ppoll (it must make progress possible)."""

    name: str
    text: str
    at: dict = attrs.field(factory=dict)
    rounds: int = _skeleton.POLL_ROUNDS
    on_block: dict = attrs.field(factory=lambda: {"bh0": 1, "event": 1})


SCENARIOS = {
    s.name: s for s in (
        Scenario("idle", "nothing pending, infinite wait (a notify wakes it)"),
        Scenario("idle-no-polling", "nothing pending, poll_ns 0, infinite wait", rounds=0),
        Scenario("bh-pending", "a BH pending at compute_timeout", at={"compute_timeout": {"bh0": 1}}),
        Scenario("notified-in-poll", "aio_notify's `notified` seen in the busy-poll phase",
                 at={"poll_handlers": {"notified": 1, "bh0": 1}}),
        Scenario("notified-at-last-look", "`notified` set after the poll phase, seen by the last look",
                 at={"last_look": {"notified": 1, "bh0": 1}}),
        Scenario("event-readable", "the notifier readable with nothing pending",
                 at={"compute_timeout": {"event": 1}}),
    )
}


@attrs.frozen
class Path:
    """What the home poller did on one scenario."""

    steps: tuple  # step names, in order, as the C logs them
    # step -> what ran in it: the hooks (or skeleton parts) whose primitives
    # ran, "ppoll", "busy-poll up to N"
    did: dict

    def ran(self, step: str, what: str) -> bool:
        return what in self.did.get(step, ())


def home_steps(ir: _ir.StrategyIR, skeleton: str, scenario: str | Scenario) -> Path:
    """The steps the home process passes in one blocking aio_poll on a path."""
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    prog = build(ir, "sc", "home", 1, 1, skeleton=skeleton)
    P = prog.procs[0]
    names = prog.loc_names
    mem = [0] * len(names)
    ev = 0
    env = [0] * P.nslots
    steps, did = [], {}
    cur = None
    pc = P.entry
    applied = set()

    def store(changes):
        nonlocal ev
        for f, v in changes.items():
            if f == "event":
                ev = ev | 1 if v else ev & ~1
                continue
            name = names[prog.bh_locs[0]] if f == "bh0" else f
            if name in names:
                mem[names.index(name)] = v
            elif f not in _ir.CORE_FIELDS:
                raise ModelError(f"scenario {sc.name}: unknown field {f!r}")

    def note(what):
        if cur is not None and what not in did.setdefault(cur, []):
            did[cur].append(what)

    for _ in range(100_000):
        if pc in P.steps:
            cur = P.steps[pc]
            if steps and cur == steps[0] and pc == P.entry:
                break  # back at the head: one aio_poll done
            steps.append(cur)
            if cur not in applied:
                applied.add(cur)
                store(sc.at.get(cur, {}))
        ins = P.code[pc]
        op = ins[0]
        if op in (READ, WRITE, RMW, ESET, ETAC, CBREAD):
            note(P.labels[pc][0].split("/")[-1])  # the hook (or skeleton part) it belongs to
        nxt = pc + 1
        if op in (READ, CBREAD):
            env[ins[3]] = mem[ins[1]]
        elif op == WRITE:
            mem[ins[1]] = ins[3](env)
        elif op == RMW:
            old = mem[ins[1]]
            x = ins[4](env) if ins[4] is not None else None
            new, writes = ins[2](old, ins[3](env), x)
            if writes:
                mem[ins[1]] = new
            if ins[5] >= 0:
                env[ins[5]] = old
        elif op == ESET:
            ev |= 1
        elif op == ETAC:
            if ins[1] >= 0:
                env[ins[1]] = ev & 1
            ev &= ~1
        elif op == WAIT:
            if ins[1] >= 0 and env[ins[1]] == INFINITE and not ev:
                store(sc.on_block)
                if not ev:
                    raise ModelError(f"scenario {sc.name}: the poller sleeps forever")
            note("ppoll")
            if ins[2] >= 0:
                env[ins[2]] = ev & 1
        elif op == DTAC:
            env[ins[1]] = (ev >> 1) & 1
            ev &= ~2
        elif op == CHOOSE:
            rounds = min(sc.rounds, _skeleton.POLL_ROUNDS)
            nxt = ins[1][-1] if rounds == 0 else ins[1][_skeleton.POLL_ROUNDS - rounds]
            if rounds:
                note(f"busy-poll up to {rounds}")
        elif op == BR:
            nxt = pc + 1 if ins[1](env) else ins[2]
        elif op == JMP:
            nxt = ins[1]
        elif op == SET:
            env[ins[1]] = ins[2](env)
        elif op not in (DRAIN, RESET, MARK):
            raise ModelError(f"internal: the home poller runs {op} in one aio_poll")
        pc = nxt
    else:
        raise ModelError(f"scenario {sc.name}: the aio_poll does not end")
    return Path(tuple(steps), {k: tuple(v) for k, v in did.items()})


def skeleton_steps(ir: _ir.StrategyIR, skeleton: str) -> tuple:
    """The step labels of the home poller, in code order (each name once)."""
    P = build(ir, "sc", "home", 1, 1, skeleton=skeleton).procs[0]
    out = []
    for pc in sorted(P.steps):
        if P.steps[pc] not in out:
            out.append(P.steps[pc])
    return tuple(out)


__all__ = ["Scenario", "SCENARIOS", "Path", "home_steps", "skeleton_steps"]
