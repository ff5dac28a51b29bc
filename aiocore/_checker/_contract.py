# The bottom-half contract in the checker (issue 23, DESIGN.md "Lost work").
#
# Each notifier writes a payload -- its schedule's sequence number -- with a
# plain store before each schedule (_poller.notifier: WRITE with its ghost
# flag); a callback reads it (CBREAD).  The search keeps, per BH, the 0->1
# schedules owed (a callback that starts with none owed is a double dispatch)
# and the highest payload a callback has read; at an end state a BH whose
# last payload no callback read is lost work.  Here: the BHs' locations and
# modes, the moves of CBREAD, the payload stores' visibility, and the
# end-state check (the explorer's classify_terminal).
#
# Payload stores (the plain store of a BH's payload before each schedule,
# WRITE with its ghost flag) are observed by nothing but the callbacks'
# CBREADs, whose values feed nothing but the "seen" bookkeeping; making one
# visible later than the hardware might can only lower what a callback
# sees, so it keeps every lost-work finding and changes no other verdict.
# The search therefore makes them visible as late as each model allows,
# which saves the states of their separate commits (and keeps the shortest
# counterexamples as short as before the payloads existed):
#   sc   a payload store enters the process's buffer (entry (loc, v, 2)) and
#        becomes visible with the process's next move;
#   tso  it enters the buffer as (loc, v, 1): it becomes visible together
#        with the commit of the next store behind it (FIFO), or with the
#        process's next move once a fence or locked instruction (a DRAIN)
#        forced it (it is then (loc, v, 2)), or alone when the process is done;
#   arm  it is a PAY entry of the window (aiocore._checker._window): visible
#        with the release, exclusive pair or AL atomic behind it (the first
#        point at which the profile forces it), or alone once its process is
#        stopped at a full barrier or done.
# A notifier's choice to leave, folded into its next move, drops the payload
# stores it made since (_program._fold_stops: they never were).
#
# May import: aiocore._compiler._ir (it sits below _program and _explore,
# which pass themselves in where it needs them).
from __future__ import annotations

import attrs

from .._compiler import _ir

#: How notifiers use bottom halves: each reschedules its own BH ("reuse"), or
#: each schedule is aio_bh_schedule_oneshot of a fresh BH ("oneshot").
BH_MODES = ("reuse", "oneshot")
#: What a BH's callback does: read the payload ("read"); or read it, cancel
#: its own BH and read it again ("cancel-reread": thread-pool.c's completion
#: BH since b7a745dc, 2017).
CALLBACKS = ("read", "cancel-reread")


@attrs.frozen
class BhLocs:
    """One bottom half as the checker's hooks see it: the location of its
    word (bh_scheduled / bh_flags), of its list link (-1 if no hook names
    bh_next), its list value (BhSelf: k + 1) and the location of the payload
    its scheduler writes before each schedule."""

    word: int
    next: int
    self_value: int
    payload: int


def bh_pending_fn(ir: _ir.StrategyIR, locs: dict, bhs):
    """The strategy's bh_pending evaluated on a memory (its reads answered
    from it, its stores ignored): what an end state calls "scheduled"."""
    body = ir.hooks.get("bh_pending", ())

    def run(stmts, env, read):
        for s in stmts:
            if isinstance(s, (_ir.Read, _ir.Rmw)):
                if s.dst:
                    env[s.dst] = read(s.field)
            elif isinstance(s, _ir.If):
                r = run(s.then if _ir.eval_expr(s.cond, env) else s.orelse, env, read)
                if r is not None:
                    return r
            elif isinstance(s, _ir.Loop):
                for _ in range(s.limit):
                    r = run(s.body, env, read)
                    if r == "break":
                        break
                    if r is not None:
                        return r
            elif isinstance(s, _ir.Break):
                return "break"
            elif isinstance(s, _ir.Return):
                return _ir.eval_expr(s.value, env)
        return None

    def pending(mem, k):
        bh = bhs[k]

        def read(f):
            if f in _ir.BH_WORD:
                return mem[bh.word]
            if f == "bh_next":
                return mem[bh.next] if bh.next >= 0 else 0
            return mem[locs[f]] if f in locs else 0

        r = run(body, {_ir.SELF: bh.self_value}, read)
        return bool(r) and r != "break"

    return pending


# --- the explorer's side ------------------------------------------------------


def forced_payloads(prog, mem, buf):
    """The forced payload stores at the head of a (sc, tso) buffer made
    visible: (memory, the rest of the buffer, what became visible)."""
    n = 0
    while n < len(buf) and len(buf[n]) > 2 and buf[n][2] == 2:
        mem = mem[:buf[n][0]] + (buf[n][1],) + mem[buf[n][0] + 1:]
        n += 1
    return mem, buf[n:], ", ".join(f"{prog.loc_names[e[0]]} = {e[1]}" for e in buf[:n])


def lumped_payloads(ex, P, p, sh_id, lumped, out, verbose):
    """After forced payload stores became visible with a move: say so in its
    description; a process with no move left (done) gets one of their own."""
    if not out:
        info = None
        if verbose:
            info = {"process": P.name, "where": "store buffer", "op": f"{lumped} becomes visible",
                    "result": "visible", "local": []}
        out.append((sh_id, ex.ipr(p), None, None, info))
    elif verbose:
        for _, _, _, _, info in out:
            if info is not None and info.get("op") != "leaves":
                info["result"] += f" (and {lumped} becomes visible before it)"


def commit_payloads(ex, i, p, mem, ev, book, out, verbose):
    """tso: unforced payload stores at the head of the buffer become visible
    with the next store behind them, or alone once the process is done."""
    pc, env, buf, stale = p
    n = 0
    while n < len(buf) and len(buf[n]) > 2:
        n += 1
    if n == len(buf) and ex.prog.procs[i].code[pc][0] != ex.DONE_OP:
        return
    mem2, book2, names = mem, book, ex.prog.loc_names
    for e in buf[:n + 1]:
        mem2 = mem2[:e[0]] + (e[1],) + mem2[e[0] + 1:]
        book2 = ex._owed_write(book2, e[0], mem[e[0]], e[1])
    log = [] if verbose else None
    pid = ex.after(i, pc, env, buf[n + 1:], stale, False, log)
    info = None
    if verbose:
        info = {"process": ex.prog.procs[i].name, "where": "store buffer",
                "op": ", ".join(f"{names[e[0]]} = {e[1]}" for e in buf[:n + 1])
                + (" become visible" if n else " becomes visible"),
                "result": ", ".join(f"{names[e[0]]}: {mem[e[0]]} -> {e[1]}" for e in buf[:n + 1]),
                "local": ex._log_items(i, log)}
    out.append((ex.ish((mem2, ev, book2)), pid, None, None, info))


def cbread_moves(ex, i, p, ins, mem, ev, book, log, out):
    """CBREAD loc k dst start: BH k's callback reads its payload from memory;
    the highest value read is kept, and if it starts a callback, one
    schedule owed is consumed (none owed: lost work)."""
    pc, env, buf, _ = p
    loc, k, dst, start = ins[1], ins[2], ins[3], ins[4]
    v = mem[loc]
    nb = len(ex.prog.bh_locs)
    e2 = list(env)
    e2[dst] = v
    b2 = list(book)
    b2[k] -= start
    b2[nb + k] = max(b2[nb + k], v)
    bad = None
    if b2[k] < 0:
        b2[k] = 0
        bad = f"bh{k}'s callback started twice for one 0->1 schedule"
    pid = ex.after(i, pc + 1, tuple(e2), buf, (), False, log)
    info = ex._info(i, pc, f"read {v}", log, read=v) if log is not None else None
    out.append((ex.ish((mem, ev, tuple(b2))), pid, None, bad, info))


def seen_by_crash(prog, ins, mem, book):
    """A poller that dies at a CBREAD (a BH claimed, its callback not begun)
    takes the work along: not the protocol's loss, the payload counts as seen."""
    nb, k = len(prog.bh_locs), ins[2]
    return book[:nb + k] + (max(book[nb + k], mem[ins[1]]),) + book[nb + k + 1:]


def unseen_payloads(prog, mem, book, procs):
    """The contract at an end state: for each BH, the payload of its last
    schedule that returned must have been read by a callback.  A notifier
    that crashed may have died inside its last schedule (after writing that
    payload): only the one before it is owed."""
    out = []
    nb = len(prog.bh_locs)
    last = {}  # crashed notifier -> its last BH with a payload written
    for k, loc in enumerate(prog.payload_locs):
        q = prog.bh_owner[k] if prog.bh_owner else 1 + k
        P = prog.procs[q]
        if 0 <= P.crash <= procs[q][0] and mem[loc]:
            last[q] = k
    for k, loc in enumerate(prog.payload_locs):
        due = mem[loc] - (k in last.values())
        if book[nb + k] < due:
            seen = book[nb + k]
            out.append(
                f"bh{k}'s schedule #{due} wrote payload {due} before it; no callback that "
                f"started after it read it (the last callback of bh{k} read "
                f"{seen if seen else 'nothing'}), and none can start now")
    return out


def classify_end(ex, state, WAIT, INFINITE):
    """An end state of the Explorer: None (fine, or not a real end), or
    (verdict, explanation) -- the home poller asleep with a BH pending (as the
    strategy's bh_pending says) is a lost wake-up; asleep with a payload no
    callback read, lost work; stuck anywhere else, a deadlock."""
    mem, ev, owed, procs = ex.decode(state)
    for p in procs:
        if p[2]:
            return None  # stores still in flight: an exclusive-monitor deadlock, not an end
    h = procs[0]
    P = ex.prog.procs[0]
    ins = P.code[h[0]]
    names = ex.prog.loc_names
    if ins[0] == WAIT and ins[1] >= 0 and h[1][ins[1]] == INFINITE and not ev:
        pend = ex.prog.pending
        pending = [names[loc] for k, loc in enumerate(ex.prog.bh_locs)
                   if (pend(mem, k) if pend is not None else mem[loc])]
        if pending:
            return ("lost-wakeup",
                    f"the home poller sleeps in ppoll with an infinite timeout while "
                    f"{' and '.join(pending)} {'is' if len(pending) == 1 else 'are'} set, the "
                    f"notifier is not readable, and no process is left to make it readable")
        lost = unseen_payloads(ex.prog, mem, owed, procs)
        if lost:
            return ("lost-work", "; ".join(lost))
        return None
    return ("deadlock", f"the home poller is stuck at {P.labels[h[0]]}")
