# Counterexamples: the path the BFS found, as JSON-able steps and as text.
# A step of the home poller names its skeleton step in `where`
# ("poll_end/accept"); with faults="crash" the crash move is a step of its
# own ("crash": true) and the final step names the first crash of the path.
from __future__ import annotations

from ._program import DONE, INFINITE, WAIT


def _state_summary(ex, state) -> dict:
    mem, ev, owed, procs = ex.decode(state)
    prog = ex.prog
    out = {
        "memory": {name: mem[i] for i, name in enumerate(prog.loc_names)},
        "notifier": "readable" if ev & 1 else "not readable",
        "processes": {},
    }
    if ev & 2:
        out["death"] = "an attached process died; the owner has not seen it yet"
    for i, p in enumerate(procs):
        P = prog.procs[i]
        ins = P.code[p[0]]
        if P.crash >= 0 and p[0] >= P.crash:
            pos = "crashed" + ("" if ins[0] == DONE else f" ({P.labels[p[0]][1]})")
        elif ins[0] == DONE:
            pos = "finished"
        elif ins[0] == WAIT and ins[1] >= 0 and p[1][ins[1]] == INFINITE:
            pos = "in ppoll, timeout infinite" + ("" if ev else " (asleep)")
        else:
            where, text = P.labels[p[0]]
            pos = f"{where}: before {text}"
        out["processes"][P.name] = pos
    bufs = ex._buffers(state)
    if bufs:
        out["store_buffers"] = bufs
    return out


def path_of(r, verdict, state):
    """(states, loop_from, end state) of a counterexample: the path the BFS
    found to the bad state; for a busy loop the path to the loop, then the
    loop (loop_from: the index of its first move)."""
    if verdict == "busy-loop" and r.cycle is not None:
        start, lasso, k = r.cycle
        states = r.path_to(start)
        states = states[:-1] + lasso + [lasso[k]]
        return states, len(r.path_to(start)) - 1 + k, lasso[k]
    return r.path_to(state), None, state


def trace_json(r, verdict, state, explanation, path=None, descs=None) -> list:
    """The counterexample of a run as a list of steps; the last one is the
    bad state.  ``path`` (path_of's) and ``descs`` (r.steps of its states)
    if the caller has them already."""
    ex = r.ex
    states, loop_from, end_state = path or path_of(r, verdict, state)
    if descs is None:
        descs = r.steps(states)
    steps = []
    crash = None
    for n, d in enumerate(descs):
        step = {
            "step": n + 1,
            "process": d["process"],
            "where": d["where"],
            "op": d["op"],
            "result": d["result"],
        }
        if d.get("local"):
            step["then"] = [f"{w}: {t} -> {what}" for w, t, what in d["local"]]
        if d.get("buffers"):
            step["buffers"] = d["buffers"]
        if loop_from is not None and n >= loop_from:
            step["loop"] = True
        if d.get("crash"):
            step["crash"] = True
            if crash is None:
                crash = {"step": n + 1, "process": d["process"], "where": d["where"], "op": d["op"]}
        steps.append(step)
    steps.append({
        "step": len(steps) + 1,
        "process": None,
        "where": "end",
        "op": verdict,
        "result": explanation,
        "state": _state_summary(ex, end_state),
    })
    if crash is not None:
        steps[-1]["crash"] = crash
    return steps


def crash_of(trace):
    """The first crash of a counterexample ({step, process, where, op}), or None."""
    return trace[-1].get("crash") if trace else None


def format_trace(trace) -> str:
    """A readable rendering of trace_json's output."""
    if not trace:
        return ""
    lines = []
    width = max((len(s["process"] or "") for s in trace), default=8)
    in_loop = False
    for s in trace:
        if s["process"] is None:
            if in_loop:
                lines.append("      ... and the loop repeats forever")
            st = s.get("state", {})
            lines.append(f"  => {s['op']}: {s['result']}")
            c = s.get("crash")
            if c:
                lines.append(f"     after a crash: step {c['step']}, {c['process']} {c['op']} ({c['where']})")
            if st:
                mem = ", ".join(f"{k}={v}" for k, v in st["memory"].items())
                lines.append(f"     memory: {mem}; notifier {st['notifier']}")
                if st.get("death"):
                    lines.append(f"     pidfd: {st['death']}")
                for name, pos in st["processes"].items():
                    lines.append(f"     {name}: {pos}")
                for name, items in st.get("store_buffers", {}).items():
                    lines.append(f"     {name}'s store buffer: [{', '.join(items)}]")
            continue
        if s.get("loop") and not in_loop:
            lines.append("  -- from here the home poller loops forever --")
            in_loop = True
        where = f"{s['where']}: " if s["where"] else ""
        lines.append(f"  {s['step']:3}  {s['process']:<{width}}  {where}{s['op']}  => {s['result']}")
        for t in s.get("then", ()):
            lines.append(f"       {'':<{width}}    then {t}")
        bufs = s.get("buffers")
        if bufs:
            b = "; ".join(f"{k}: [{', '.join(v)}]" for k, v in bufs.items())
            lines.append(f"       {'':<{width}}    store buffers: {b}")
    return "\n".join(lines)
