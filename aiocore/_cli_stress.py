# `aiocore stress`: every installed strategy under every workload, with the
# watchdog looking for lost wakeups, busy loops and lost work.
#
# Default: every strategy x every workload that applies to it (the foreign
# workload only for strategies that allow foreign pollers), DEFAULT_SECONDS
# each -- about 80 pairs, three to four minutes on a 2-CPU machine.  The exit
# status is 1 if a strategy expected to pass on this machine (its "tso"
# expectation, or the workload's config's) shows any finding, or a run
# failed; 2 for bad arguments; 130/143 when interrupted (after cleaning up).
from __future__ import annotations

import json
import signal
import sys

DEFAULT_SECONDS = 2.0


def register(sub):
    p = sub.add_parser(
        "stress",
        help="run strategies under multiprocess workloads with a watchdog",
        description=(
            "Run every installed notification strategy under every workload (or the ones "
            f"named) for --duration seconds each (default {DEFAULT_SECONDS:g}), with a watchdog "
            "that detects lost wakeups, busy loops and lost work while the run goes on, "
            "rescues the owner and counts.  Exit status 1 if a strategy expected to pass "
            "on this machine shows a finding."
        ),
    )
    p.add_argument("--strategy", "-s", action="append", metavar="S", help="a strategy (repeatable; default: all)")
    p.add_argument("--workload", "-w", action="append", metavar="W", help="a workload (repeatable; default: all)")
    p.add_argument(
        "--duration", "-d", type=float, default=DEFAULT_SECONDS, metavar="SECONDS",
        help=f"seconds per (strategy, workload) pair (default {DEFAULT_SECONDS:g})",
    )
    p.add_argument("--procs", "-n", type=int, default=2, metavar="N", help="notifying processes per workload (default 2)")
    p.add_argument("--json", action="store_true", help="print a JSON list of results instead of the table")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the drivers' jitter and the chaos pauses (default: random, printed); "
                   "pair k runs with seed+k, and `-s S -w W --seed N` replays a row whose seed is N")
    p.add_argument("--chaos", choices=("off", "on", "mix"), default="mix",
                   help="pauses at the strategy's primitives (a chaos build): off; on (the notifiers "
                   "pause in some runs, the owner in others); mix (default: runs without chaos too). "
                   "A run's mode follows from its seed")
    p.add_argument("--lost-ms", type=float, default=10.0, help="lost-wakeup threshold in ms (default 10)")
    p.add_argument("--busy-k", type=int, default=200, help="busy-loop threshold in fruitless wake-ups (default 200)")
    p.add_argument("--until-found", action="store_true", help="stop a pair at its first finding")
    p.add_argument("--no-pin", action="store_true", help="do not pin the owner and the others to different CPUs")
    p.add_argument("--list", action="store_true", help="list the workloads (and broken workload plugins) and exit")
    p.set_defaults(func=cmd_stress)


def _select(args, err):
    from . import _plugins
    import aiocore_workloads as W

    for b in _plugins.broken():
        err(f"aiocore stress: broken strategy plugin {b}")
    for b in W.broken():
        err(f"aiocore stress: broken workload plugin {b}")
    infos = {i.name: i for i in _plugins.registry() if i.status == "ok"}
    if args.strategy:
        for s in args.strategy:
            if s not in infos:
                try:
                    _plugins.get(s)
                except Exception as e:
                    raise SystemExit(f"aiocore stress: {e}")
        strategies = [infos[s] for s in args.strategy]
    else:
        strategies = sorted(infos.values(), key=lambda i: i.name)
    wls = {i.name: i.workload for i in W.registry() if i.status == "ok"}
    if args.workload:
        for w in args.workload:
            if w not in wls:
                try:
                    W.get(w)
                except (KeyError, ValueError) as e:
                    raise SystemExit(f"aiocore stress: {e.args[0] if e.args else e}")
        workloads = [wls[w] for w in args.workload]
    else:
        workloads = [wls[n] for n in sorted(wls)]
    pairs, skipped = [], []
    for info in strategies:
        for wl in workloads:
            if wl.applies_to(info):
                pairs.append((info, wl))
            else:
                skipped.append((info.name, wl.name))
    return pairs, skipped


def cmd_stress(args) -> int:
    import secrets

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    import aiocore_workloads as W

    con = Console(stderr=True)
    err = lambda m: con.print(f"[yellow]{m}[/yellow]", highlight=False)  # noqa: E731
    if args.list:
        out = Console()
        for i in W.registry():
            if i.status == "ok":
                out.print(f"[bold]{i.name}[/bold] ({i.source}, config {i.workload.config}): {i.workload.description}")
            else:
                out.print(f"[red]{i.source}: {i.status}[/red]")
        return 0
    if args.duration <= 0 or args.procs < 1:
        con.print("aiocore stress: --duration must be > 0 and --procs >= 1")
        return 2
    pairs, skipped = _select(args, err)
    if not pairs:
        con.print("aiocore stress: nothing to run")
        return 2
    seed = args.seed if args.seed is not None else secrets.randbits(48)
    con.print(f"aiocore stress: seed {seed} (pair k runs with seed {seed}+k; --seed replays), "
              f"--chaos {args.chaos}", highlight=False)

    # Signals: the first SIGINT/SIGTERM stops the current pair cleanly (its
    # processes, segment and memfd are cleaned up) and prints what ran; a
    # second one raises at once (cleanup still runs in finally blocks).
    stop = {"sig": None}

    def on_signal(signum, _frame):
        if stop["sig"] is not None:
            raise KeyboardInterrupt
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # If we are killed with -9, nobody runs our cleanup: the janitor, a
    # process outside our session, unlinks what we leave (aiocore/_janitor.py).
    from . import _janitor

    janitor = _janitor.start()
    results = []
    total = args.duration * len(pairs)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=con,
            transient=args.json,
            disable=not con.is_terminal,
        ) as prog:
            task = prog.add_task("starting", total=total)
            for k, (info, wl) in enumerate(pairs):
                if stop["sig"] is not None:
                    break
                done_before = k * args.duration
                label = f"[{k + 1}/{len(pairs)}] {info.name} × {wl.name}"

                def tick(wd, label=label, done_before=done_before):
                    s = wd.last
                    elapsed = (s[0] - wd.t0) / 1e9 if s and wd.t0 else 0.0
                    prog.update(
                        task,
                        completed=done_before + min(elapsed, args.duration),
                        description=f"{label}: {s[20] if s else 0} dispatches, "
                        f"{wd.lost_wakeups + wd.lost_wakeups_timed} lost wakeups, "
                        f"{wd.busy_loops + wd.busy_loops_timed} busy loops",
                    )

                prog.update(task, description=label, completed=done_before)
                run_seed = (seed + k) & ((1 << 63) - 1)
                try:
                    r = W.run_pair(
                        info.name, wl, args.duration, args.procs,
                        seed=run_seed, lost_ms=args.lost_ms, busy_k=args.busy_k,
                        chaos=chaos_for(args.chaos, run_seed),
                        until_found=args.until_found, tick=tick,
                        should_stop=lambda: stop["sig"] is not None, pin=not args.no_pin,
                    )
                except W._runner.Stopped:
                    break
                except Exception as e:  # one broken pair does not hide the others
                    r = W.RunResult(
                        strategy=info.name, workload=wl.name, seconds=0.0, wakeups=0, dispatched=0,
                        lost_wakeups=0, busy_loops=0, lost_work=0, verdict="error", failed=True,
                        matches="unknown (the run failed)", errors=[f"{type(e).__name__}: {e}"],
                        seed=run_seed, chaos=chaos_for(args.chaos, run_seed).mode,
                    )
                results.append(r)
                prog.update(task, completed=(k + 1) * args.duration)
    except KeyboardInterrupt:
        stop["sig"] = stop["sig"] or signal.SIGINT
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if janitor is not None:
            janitor.close()

    if args.json:
        print(json.dumps([r.row() for r in results], indent=2))
    else:
        _table(results, skipped, seed, args, stop["sig"] is not None)
    if stop["sig"] is not None:
        return 128 + int(stop["sig"])
    return 1 if any(r.failed for r in results) else 0


def chaos_for(choice: str, run_seed: int):
    """The chaos of one run: its mode follows from its seed (so --seed replays it)."""
    from aiocore_workloads._chaos import Chaos

    if choice == "off":
        return Chaos("off", run_seed)
    modes = ("notifiers", "owner") if choice == "on" else ("notifiers", "owner", "off")
    return Chaos(modes[run_seed % len(modes)], run_seed)


def _findings_cell(r) -> str:
    """Findings by kind and detector: the exact states, then (timeout) the
    time-based detector's, then lost work and the traffic."""
    return (
        f"{r.lost_wakeups} lost wakeups, {r.busy_loops} busy loops "
        f"(timeout: {r.lost_wakeups_timed}, {r.busy_loops_timed}), {r.lost_work} lost work; "
        f"{r.wakeups:,} wakeups, {r.dispatched:,} dispatches; chaos {r.chaos}, seed {r.seed}"
    )


def _table(results, skipped, seed, args, interrupted):
    from rich.console import Console
    from rich.markup import escape

    from ._tables import Table

    # Printed at the console's real width (80 in a pipe, or $COLUMNS):
    # strategy, workload and verdict are key columns, never cut; the counts
    # and the comparison with the expectation wrap.
    out = Console(highlight=False)
    t = (
        Table(f"aiocore stress: {args.duration:g} s per pair, --procs {args.procs}, "
              f"--chaos {args.chaos}, seed {seed}")
        .column("strategy", key=True, style="bold")
        .column("workload", key=True)
        .column("verdict", key=True)
        .column("findings")
        .column("x86 expectation")
    )
    for r in results:
        bad = r.failed
        style = "red" if bad else ("green" if r.matches.startswith("yes") else "yellow")
        t.row(
            escape(r.strategy), escape(r.workload), f"[{style}]{escape(r.verdict)}[/{style}]",
            _findings_cell(r),
            f"{escape(r.expected or '?')}: [{style}]{escape(r.matches)}[/{style}]",
        )
    t.print(out)
    for r in results:
        for e in r.errors:
            out.print(f"[red]{r.strategy} × {r.workload}: {e}[/red]", highlight=False)
    if skipped:
        out.print(
            f"skipped {len(skipped)} pairs whose workload needs foreign pollers "
            "the strategy does not allow", style="dim",
        )
    failed = [r for r in results if r.failed]
    unrepro = [r for r in results if r.matches == "not reproduced"]
    if unrepro:
        out.print(
            f"{len(unrepro)} pairs did not reproduce their expected bug in {args.duration:g} s "
            "(races are probabilistic: longer --duration, or see docs/stress.md for which "
            "workload catches which strategy)", style="yellow",
        )
    if interrupted:
        out.print("interrupted: the table shows the pairs that finished", style="yellow")
    if failed:
        out.print(f"{len(failed)} pairs expected to pass on this machine showed a finding", style="bold red")
    elif results:
        out.print("every strategy expected to pass on this machine passed", style="bold green")


def main(argv=None) -> int:  # pragma: no cover - `python -m aiocore._cli_stress`
    import argparse

    p = argparse.ArgumentParser(prog="aiocore")
    register(p.add_subparsers())
    args = p.parse_args(["stress", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
