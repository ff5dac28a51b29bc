# `aiocore stress`: a campaign per strategy and skeleton -- its budget spent
# across traffics (the workloads), the owner's paths and chaos modes, where
# the model checker says it can fail -- with the watchdog judging states.
#
# Default: every installed strategy on every skeleton it declares (those the
# checker finds a tso counterexample on first), DEFAULT_BUDGET seconds each,
# every traffic on every path it can run on (aiocore_workloads._campaign).
# The table has one row per strategy and skeleton; --detail and --json give
# every slice.  Exit status 1 if a strategy expected to pass on this machine
# (x86: its "tso" expectation) shows a finding, if the checker contradicts
# the declared x86 verdict on the skeleton stressed (the declaration is
# wrong), or a run failed -- and, with --strict, if an expected bug was not
# reproduced; 2 for bad arguments and for a skeleton, path or traffic a
# named strategy cannot run (the message says what it can); 130/143 when
# interrupted (after cleaning up).
from __future__ import annotations

import json
import os
import signal
import sys

#: Seconds per strategy and skeleton: with the ten built-ins the default run stays
#: within four minutes on two CPUs (the strategies expected to pass spend
#: all of it; the others stop at their first finding).
DEFAULT_BUDGET = 20.0
DEFAULT_SLICE = 2.0


def register(sub):
    from aiocore_workloads._base import PATHS

    p = sub.add_parser(
        "stress",
        help="catch each strategy's bugs natively: multiprocess traffic, every poll path, chaos, a watchdog",
        description=(
            "Run a campaign per notification strategy: the model checker first says where it can "
            "fail on this machine (tso); its --budget is then spent in slices across traffics "
            "(workloads), the owner's paths and chaos modes, weighted towards the checker's "
            "counterexamples, until a finding or the end.  A watchdog judges consistent "
            "snapshots of the shared state: a lost wakeup and a busy loop are states.  Exit "
            "status 1 if a strategy expected to pass on this machine shows a finding."
        ),
    )
    p.add_argument("--strategy", "-s", action="append", metavar="S", help="a strategy (repeatable; default: all)")
    p.add_argument("--workload", "-w", action="append", metavar="W",
                   help="a traffic (repeatable; default: all; `--list` lists them)")
    p.add_argument("--path", action="append", choices=PATHS, metavar="P",
                   help=f"an owner's path: {', '.join(PATHS)} (repeatable; default: every one the "
                   "strategy can run on)")
    p.add_argument("--budget", "--duration", "-d", dest="budget", type=float, default=DEFAULT_BUDGET,
                   metavar="SECONDS", help=f"seconds per strategy (default {DEFAULT_BUDGET:g})")
    p.add_argument("--slice", type=float, default=DEFAULT_SLICE, metavar="SECONDS",
                   help=f"longest single run of one (traffic, path, chaos) (default {DEFAULT_SLICE:g})")
    p.add_argument("--procs", "-n", type=int, default=2, metavar="N", help="notifying processes per workload (default 2)")
    p.add_argument("--json", action="store_true", help="print a JSON list (one object per strategy, every slice in it)")
    p.add_argument("--detail", action="store_true", help="also print one row per slice")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the campaign (default: random, printed); strategy k's campaign uses "
                   "seed+k, so `-s S --seed N` repeats a campaign's choices")
    p.add_argument("--replay", metavar="SEED:TRAFFIC:PATH:CHAOS",
                   help="run one slice again (its `replay` in --json, or in --detail)")
    p.add_argument("--chaos", choices=("off", "on", "mix"), default="mix",
                   help="pauses at the strategy's primitives (a chaos build): off; on (the notifiers "
                   "pause in some slices, the owner in others); mix (default: slices without chaos too)")
    p.add_argument("--no-guide", action="store_true",
                   help="do not ask the model checker first: spread the budget evenly")
    p.add_argument("--all-findings", action="store_true",
                   help="spend the whole budget even after a finding (default: stop at the first)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 also when an expected bug was not reproduced (the tool's shortfall)")
    p.add_argument("--skeleton", action="append", choices=("2015", "polling"), default=None,
                   help="an aio_poll skeleton (repeatable; 2015, or polling: QEMU's adaptive polling "
                   "mode); default: every skeleton the strategy declares")
    p.add_argument("--kill-rate", type=float, default=0.0, metavar="PER_S",
                   help="SIGKILL that many victim notifiers per second, at random instants of their "
                   "protocol calls (crash-stop faults; the owner runs with recovery)")
    p.add_argument("--no-recovery", action="store_true",
                   help="with --kill-rate: the owner does not recover from deaths (to see what they do)")
    p.add_argument("--lost-ms", type=float, default=10.0, help="the time-based lost-wakeup threshold in ms (default 10)")
    p.add_argument("--busy-k", type=int, default=200, help="the time-based busy-loop threshold in fruitless wake-ups (default 200)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the owner and the others to different CPUs")
    p.add_argument("--list", action="store_true", help="list the traffics, paths (and broken workload plugins) and exit")
    p.set_defaults(func=cmd_stress)


def _select(args, err):
    from .._compiler import _plugins
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
            if w in ("gsource", "foreign") and w not in wls:
                raise SystemExit(f"aiocore stress: {w} is an owner's path now, not a traffic: --path {w}")
            if w not in wls:
                try:
                    W.get(w)
                except (KeyError, ValueError) as e:
                    raise SystemExit(f"aiocore stress: {e.args[0] if e.args else e}")
        workloads = [wls[w] for w in args.workload]
    else:
        workloads = [wls[n] for n in sorted(wls)]
    return strategies, workloads


def _runnable_paths(info, workloads, skeleton) -> list[str]:
    """The owner's paths some selected traffic can run the strategy on, on a skeleton."""
    from aiocore_workloads._base import PATHS

    ok = {p for wl in workloads if wl.applies_to(info) for p in wl.paths_for(info)
          if p != "foreign" or skeleton == "2015"}
    return [p for p in PATHS if p in ok]


def _jobs(strategies, workloads, args, err):
    """(info, skeleton, predictions) per campaign, in the order they run --
    per strategy, the skeletons where the checker finds a tso counterexample
    first -- or None after an error: a skeleton, path or traffic a strategy
    cannot run."""
    from aiocore_workloads import _campaign

    jobs = []
    for info in strategies:
        declared = tuple(getattr(info, "skeletons", None) or ("2015",))
        sks = tuple(dict.fromkeys(args.skeleton)) if args.skeleton else declared
        bad = [s for s in sks if s not in declared]
        if bad:
            err(f"{info.name} does not run on the {' and '.join(bad)} skeleton: it declares "
                f"{', '.join(declared)} (`skeletons`); `aiocore check {info.name}` shows the checker's "
                f"verdicts on the skeletons it declares verdicts for")
            return None
        for sk in sks:
            runnable = _runnable_paths(info, workloads, sk)
            if not runnable:
                err(f"{info.name}: no selected traffic runs on it "
                    f"({', '.join(w.name for w in workloads)}): `aiocore stress --list` shows them")
                return None
            missing = [p for p in (args.path or ()) if p not in runnable]
            if missing:
                why = (" (foreign pollers run the 2015 skeleton only)" if sk != "2015" else
                       "" if getattr(info, "foreign_pollers", False) else
                       " (foreign needs `foreign_pollers = True`)")
                err(f"{info.name} cannot run the {' and '.join(missing)} path on the {sk} skeleton"
                    f"{why}: its paths there are {', '.join(runnable)}")
                return None
        mine = []
        for sk in sks:
            preds = _campaign.predict(info, sk) if not args.no_guide else []
            mine.append((info, sk, preds))
        # Where the checker has a counterexample on this machine, first: the
        # time to a finding counts from the first campaign's start.
        mine.sort(key=lambda j: not any(p.fails for p in j[2]))
        jobs += mine
    return jobs


def cmd_stress(args) -> int:
    import secrets

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    import aiocore_workloads as W
    from aiocore_workloads import _campaign
    from aiocore_workloads._base import PATHS

    con = Console(stderr=True)
    err = lambda m: con.print(f"[yellow]{m}[/yellow]", highlight=False)  # noqa: E731
    if args.list:
        out = Console()
        for i in W.registry():
            if i.status == "ok":
                out.print(f"[bold]{i.name}[/bold] ({i.source}): {i.workload.description}", highlight=False)
            else:
                out.print(f"[red]{i.source}: {i.status}[/red]")
        out.print(f"paths: {', '.join(PATHS)}", highlight=False)
        return 0
    if args.budget <= 0 or args.slice <= 0 or args.procs < 1:
        con.print("aiocore stress: --budget and --slice must be > 0 and --procs >= 1")
        return 2
    if not 0 <= args.kill_rate <= 1000:
        con.print(f"aiocore stress: --kill-rate must be within 0..1000 kills per second, not {args.kill_rate:g}")
        return 2
    if args.no_recovery and not args.kill_rate:
        con.print("aiocore stress: --no-recovery only means something with --kill-rate")
        return 2
    strategies, workloads = _select(args, err)
    if not strategies or not workloads:
        con.print("aiocore stress: nothing to run")
        return 2
    jobs = _jobs(strategies, workloads, args, lambda m: con.print(f"aiocore stress: {m}", highlight=False))
    if jobs is None:
        return 2
    if args.replay:
        if len({sk for _, sk, _ in jobs}) > 1:
            con.print("aiocore stress: --replay runs one slice: say its skeleton (--skeleton)")
            return 2
        try:
            _campaign.parse_replay(args.replay, {w.name for w in workloads})
        except ValueError as e:
            con.print(f"aiocore stress: {e}", highlight=False)
            return 2
    seed = args.seed if args.seed is not None else secrets.randbits(48)
    con.print(f"aiocore stress: seed {seed} (campaign k runs with seed {seed}+k; --seed "
              f"replays), --chaos {args.chaos}, {args.budget:g} s per strategy and skeleton",
              highlight=False)

    # Signals: the first SIGINT/SIGTERM stops the current slice cleanly (its
    # processes, segment and memfd are cleaned up) and prints what ran; a
    # second one raises at once (cleanup still runs in finally blocks).
    stop = {"sig": None}

    def on_signal(signum, _frame):
        if stop["sig"] is not None:
            raise KeyboardInterrupt
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # If we are killed with -9, nobody runs our cleanup: the janitor, a
    # process outside our session, unlinks what we leave (aiocore/_context/_janitor.py).
    from .._context import _janitor

    janitor = _janitor.start()
    results = []
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
            task = prog.add_task("starting", total=args.budget * len(jobs))
            for k, (info, skeleton, preds) in enumerate(jobs):
                if stop["sig"] is not None:
                    break
                label = f"[{k + 1}/{len(jobs)}] {info.name} ({skeleton})"
                prog.update(task, description=f"{label}: asking the checker", completed=k * args.budget)

                def on_slice(camp, arm, run_seed, label=label, k=k):
                    prog.update(task, description=f"{label}: {arm.where()}",
                                completed=k * args.budget + sum(r.seconds for r in camp.runs))

                try:
                    camp = _campaign.run(
                        info.name, workloads, args.budget, paths=args.path, chaos=args.chaos,
                        seed=(seed + k) & ((1 << 63) - 1), procs=args.procs, slice_s=args.slice,
                        skeleton=skeleton, kill_rate=args.kill_rate, predictions=preds,
                        recovery=False if args.no_recovery else None, guided=not args.no_guide,
                        all_findings=args.all_findings, lost_ms=args.lost_ms, busy_k=args.busy_k,
                        pin=not args.no_pin, should_stop=lambda: stop["sig"] is not None,
                        on_slice=on_slice, replay=args.replay,
                    )
                except ValueError as e:
                    con.print(f"aiocore stress: {e}", highlight=False)
                    return 2
                results.append(camp)
                prog.update(task, completed=(k + 1) * args.budget)
    except KeyboardInterrupt:
        stop["sig"] = stop["sig"] or signal.SIGINT
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if janitor is not None:
            janitor.close()

    if args.json:
        print(json.dumps([c.row() for c in results], indent=2, default=str))
    else:
        _table(results, seed, args, stop["sig"] is not None)
    if stop["sig"] is not None:
        return 128 + int(stop["sig"])
    bad = any(c.failed or c.headlines for c in results)
    if args.strict:
        bad = bad or any(c.shortfall for c in results)
    return 1 if bad else 0


def _findings_cell(r) -> str:
    """Findings by kind and detector: the exact states, then (timeout) the
    time-based detector's, then lost work and the traffic."""
    return (
        f"{r.lost_wakeups} lost wakeups, {r.busy_loops} busy loops "
        f"(timeout: {r.lost_wakeups_timed}, {r.busy_loops_timed}), {r.lost_work} lost work; "
        f"{r.wakeups:,} wakeups, {r.dispatched:,} dispatches in {r.seconds:.1f} s"
        + (f"; {r.kills} kills, {r.kills_recovered} recovered" if r.kills else "")
    )


def _where(c) -> str:
    if c.first_arm is None:
        return "-"
    a = c.first_arm
    pm = "" if a.poll_max_ns is None else f", poll_max_ns {a.poll_max_ns}"
    return f"{a.path} × {a.traffic}, {a.chaos}{pm}"


def _kinds(c) -> str:
    n = c.counts()
    found = [f"{n[k]} {k}" for k in ("lost-wakeup", "busy-loop", "lost-work") if n[k]]
    if n["timeout"]:
        found.append(f"{n['timeout']} by timeout")
    return f"{', '.join(found) or 'none'}; {len(c.runs)} slices, {c.seconds:.0f} s"


def _table(results, seed, args, interrupted):
    from rich.console import Console
    from rich.markup import escape

    from ._tables import Table

    # Printed at the console's real width (80 in a pipe, or $COLUMNS):
    # strategy and verdict are key columns, never cut; the rest wraps.
    out = Console(highlight=False)
    kill = f", --kill-rate {args.kill_rate:g}" if args.kill_rate else ""
    t = (
        Table(f"aiocore stress: {args.budget:g} s per strategy and skeleton, --chaos {args.chaos}"
              f"{kill}, seed {seed}")
        .column("strategy", key=True, style="bold")
        .column("skeleton", key=True)
        .column("x86 expectation")
        .column("verdict", key=True)
        .column("first finding (where)")
        .column("findings")
    )
    for c in results:
        style = "red" if (c.failed or c.headlines) else ("yellow" if c.shortfall else "green")
        first = "-" if c.first_finding_s is None else f"{c.first_finding_s:.2f} s ({_where(c)})"
        exp = c.expected + (" (checker)" if c.expectation_source == "checker" else "")
        if c.checker_disagrees():
            exp += f" (declared; the checker says {c.checker_disagrees()})"
        t.row(escape(c.strategy), c.skeleton, escape(exp),
              f"[{style}]{escape(c.verdict)}: {escape(c.matches())}[/{style}]", escape(first), _kinds(c))
    t.print(out)
    if args.detail:
        from aiocore_workloads._campaign import replay_id

        d = (
            Table("every slice (--replay runs one again)")
            .column("strategy", key=True)
            .column("--replay", key=True)
            .column("verdict", key=True)
            .column("findings")
        )
        for c in results:
            for r in c.runs:
                d.row(escape(f"{c.strategy} ({c.skeleton})"), escape(replay_id(r)), escape(r.verdict),
                      _findings_cell(r))
        d.print(out)
    for c in results:
        for r in c.runs:
            for e in r.errors:
                out.print(f"[red]{c.strategy} on {r.path} × {r.workload}: {escape(e)}[/red]")
        for line in c.reproduces:
            out.print(f"{c.strategy}: {escape(line)}", style="dim")
        for h in c.headlines:
            out.print(f"HEADLINE {escape(h['text'])}", style="bold red")
            if h.get("snapshot"):
                out.print(escape(json.dumps(h["snapshot"], default=str)[:1500]), style="red")
    short = [c for c in results if c.shortfall]
    for c in short:
        busy = (f"; the machine was loaded (load average {max(c.load):.1f} on {os.cpu_count()} CPUs), "
                f"which makes such races rarer" if c.loaded() else "")
        out.print(f"{c.strategy}: expected {c.expected} not reproduced in {c.seconds:.0f} s "
                  f"({len(c.runs)} slices): a shortfall of the tool (a longer --budget, or "
                  f"docs/stress.md){busy}", style="yellow")
    wrong = [c for c in results if c.checker_disagrees()]
    for c in wrong:
        out.print(f"{c.strategy} on the {c.skeleton} skeleton: declared {c.expected} on x86 (tso), the "
                  f"checker finds {c.checker_disagrees()}: the declaration is wrong (its "
                  f"counterexample: aiocore check {c.strategy} --skeleton {c.skeleton} --model tso)",
                  style="bold red")
    if interrupted:
        out.print("interrupted: the table shows the strategies that finished", style="yellow")
    failed = [c for c in results if c.failed]
    if failed:
        out.print(f"{len(failed)} campaign(s) failed: a strategy expected to pass on this machine "
                  f"showed a finding, the checker contradicts its declaration, or a run failed",
                  style="bold red")
    elif results and not any(c.headlines for c in results):
        out.print("every strategy expected to pass on this machine passed"
                  + ("; every expected bug was caught" if not short else ""), style="bold green")


def main(argv=None) -> int:  # pragma: no cover - `python -m aiocore._cli._stress`
    import argparse

    p = argparse.ArgumentParser(prog="aiocore")
    register(p.add_subparsers())
    args = p.parse_args(["stress", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
