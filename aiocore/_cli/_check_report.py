# `aiocore check`'s text report: the bounds, a progress bar, the verdict
# tables (through aiocore._cli._tables, whole at 80 columns and in a pipe), the
# counterexamples that matter and one closing line.
#
# Each fact is said once.  A run that a limit cut short before it found a
# failure is "unknown", with one line saying which limit and what to do; it
# is never also reported as "no interleaving fails" (that sentence is kept
# for a complete search that found nothing where a failure was expected).
from __future__ import annotations

from ._tables import Table

_STYLE = {"pass": "green", "lost-wakeup": "red", "busy-loop": "magenta", "lost-work": "red",
          "unknown": "yellow", "error": "bold red"}

#: Runs longer than this get a progress bar (on a terminal, on stderr).
PROGRESS_AFTER_S = 2.0


def _v(verdict):
    from rich.markup import escape

    if verdict is None:
        return "[dim]-[/dim]"
    return f"[{_STYLE.get(verdict, 'yellow')}]{escape(verdict)}[/]"


def _status(s):
    return {"ok": "[green]ok[/green]", "MISMATCH": "[bold red]MISMATCH[/bold red]",
            "UNKNOWN": "[bold yellow]UNKNOWN[/bold yellow]",
            "error": "[bold red]error[/bold red]"}.get(s, "[dim]-[/dim]")


def _run_with_progress(rows, bounds, opts, jobs):
    """timed_run, with a rich progress bar on stderr once it has taken 2 s."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._checker import _matrix

    err = Console(stderr=True)
    if not err.is_terminal:
        return _matrix.timed_run(rows, bounds, jobs, opts=opts)
    prog = Progress(TextColumn("exploring"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                    TextColumn("{task.fields[states]}"), TimeElapsedColumn(), console=err,
                    transient=True, auto_refresh=False)
    task = prog.add_task("check", total=len(rows), states="")
    import time

    t0 = time.monotonic()
    shown = [False]
    done_states = [0]

    def tick():
        if not shown[0] and time.monotonic() - t0 > PROGRESS_AFTER_S:
            prog.start()
            shown[0] = True
        if shown[0]:
            prog.refresh()

    def progress(row):
        if row.result is not None:
            done_states[0] += row.result.states
        prog.update(task, advance=1, states=f"{done_states[0]:,} states")
        tick()

    def states_progress(states):
        # one job: the run in progress reports after each breadth-first layer
        prog.update(task, states=f"{done_states[0] + states:,} states")
        tick()

    try:
        return _matrix.timed_run(rows, bounds, jobs, progress, opts=opts,
                                 states_progress=states_progress)
    finally:
        if shown[0]:
            prog.stop()


def report(rows, bounds, opts, args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from .._checker import _matrix

    con = Console(highlight=False)
    con.print(f"[bold]aiocore check[/bold]: {len({r.info.name for r in rows})} strategies, "
              f"skeletons {','.join(dict.fromkeys(r.skeleton for r in rows))}, models "
              f"{','.join(args.model)}, {len(rows)} runs; {escape(opts.describe())}")
    limits = f"max {bounds.max_states:,} states per run"
    if bounds.max_seconds:
        limits += f", {bounds.max_seconds:g} s"
    if bounds.max_memory:
        limits += f", {bounds.max_memory / 2**20:,.0f} MiB"
    con.print(f"bounds: {escape(bounds.describe())}; {limits}")
    from .._checker import REDUCTIONS
    from .._checker import _fast

    engine = {"python": "the Python loop", "c": "the C loop"}.get(opts.engine) or (
        "the C loop" if _fast.available() else
        f"the Python loop (the C loop cannot be built: {_fast.why_not()})")
    on = ", ".join(r.name for r in REDUCTIONS if r.in_force)
    off = ", ".join(r.name for r in REDUCTIONS if not r.in_force)
    con.print(f"search: {escape(engine)}; exact reductions in force: {on}; off: {off} (not exact "
              f"here, README: checker at scale)")

    seconds = _run_with_progress(rows, bounds, opts, args.jobs)
    runs = rows
    rows = _matrix.with_profiles(rows)  # each arm run's profiles, judged as declared
    summaries = _matrix.assess(rows, opts)

    t = (Table("verdicts per run").column("strategy", key=True, style="bold")
         .column("skeleton", key=True).column("model", key=True)
         .column("config", key=True).column("verdict", key=True).column("expected", key=True)
         .column("", key=True).column("states", key=True, justify="right")
         .column("states/s", justify="right").column("s", justify="right"))
    for r in rows:
        res = r.result
        if res is None:
            t.row(escape(r.info.name), r.skeleton, r.model, r.config, _v("error"), _v(r.expected),
                  _status("error"), "", "", "")
            continue
        v = _v(res.verdict) + ("" if res.complete or res.verdict == "unknown" else "[yellow]*[/yellow]")
        model = f"[dim]arm >[/dim] {r.model}" if r.derived else r.model  # a part of the arm run above
        t.row(escape(r.info.name), r.skeleton, model, r.config, v, _v(r.expected), _status(r.status),
              f"{res.states:,}", f"{res.rate:,.0f}", f"{res.seconds:.2f}")
    t.print(con)
    if any(r.result is not None and not r.result.complete and r.result.verdict != "unknown"
           for r in rows):
        con.print("[yellow]*[/yellow] found before a limit cut the search: the failure is real, "
                  "a worse one may exist beyond the cut")

    s = (Table("verdict per strategy, skeleton and model (worst over the configs run)")
         .column("strategy", key=True, style="bold").column("skeleton", key=True)
         .column("model", key=True)
         .column("configs", key=True).column("verdict", key=True).column("expected", key=True)
         .column("", key=True))
    for x in summaries:
        cfg = ",".join(x.configs) + ("" if x.complete else " [dim](not all)[/dim]")
        s.row(escape(x.name), x.skeleton, x.model, cfg, _v(x.verdict), _v(x.expected), _status(x.status))
    s.print(con)

    bad = {(x.name, x.skeleton, x.model) for x in summaries if x.status == "MISMATCH"}
    for r in runs:  # a profile of a cut arm run is cut with it: said once
        if r.status == "error":
            con.print(f"[red]{escape(r.info.name)} {r.skeleton} {r.model} {r.config}: {escape(r.error)}[/red]")
        elif r.status == "UNKNOWN":
            con.print(f"[yellow]{escape(r.unknown_text())}[/yellow]")
    for r in rows:
        res = r.result
        if res is None or res.verdict in ("pass", "unknown") or not res.trace:
            continue
        if args.trace or r.status == "MISMATCH" or ((r.info.name, r.skeleton, r.model) in bad
                                                     and r.status == "-"):
            con.print(f"\n[bold]{escape(r.info.name)}[/bold] skeleton {r.skeleton}, {r.model} {r.config}: "
                      f"{_v(res.verdict)}"
                      f" ({res.notifiers} notifier(s) x {res.schedules} schedule(s)), "
                      f"shortest counterexample:")
            con.print(escape(res.format_trace()))
    for x in summaries:
        if x.status == "MISMATCH" and x.verdict == "pass":
            con.print(f"[red]{escape(x.name)} {x.skeleton} {x.model}: expected {x.expected}, but no "
                      f"interleaving within the bounds fails[/red]")

    if args.herd is not None:
        from ._check_herd import herd_lines, write_herd

        con.print()
        for line in herd_lines(write_herd(runs, args.herd), args.herd):
            con.print(escape(line))

    states = sum(r.result.states for r in runs if r.result is not None)
    cpu = sum(r.result.seconds for r in runs if r.result is not None)
    nbad = sum(1 for x in summaries if x.status == "MISMATCH")
    nunk = sum(1 for r in runs if r.status == "UNKNOWN")
    failed = _matrix.failed(rows, summaries)
    if not failed:
        end = "[green]every verdict matches its expectation[/green]"
    else:
        parts = []
        if nbad:
            parts.append(f"{nbad} strategy/skeleton/model verdict(s) differ from the expectation")
        if nunk:
            parts.append(f"{nunk} run(s) unknown (cut short)")
        nerr = sum(1 for r in rows if r.status == "error")
        if nerr:
            parts.append(f"{nerr} run(s) failed")
        end = f"[bold red]{'; '.join(parts)}[/bold red]"
    con.print(
        f"\n[bold]{states:,} states explored[/bold] in {seconds:.1f} s "
        f"({states / seconds if seconds > 0 else 0:,.0f} states/s; {cpu:.1f} s of checking in "
        f"{len(runs)} runs); " + end
    )
    return 1 if failed else 0

