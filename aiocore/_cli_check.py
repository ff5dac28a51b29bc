# `aiocore check`: the model checker over strategies x models x configs.
#
#   aiocore check [NAME ...] [--model sc,tso,arm] [--config home,foreign,gsource]
#                 [--json] [--jobs N] [--trace] [bounds options]
#
# Default: every installed strategy (that has a Python description), every
# model, every config the strategy supports.  Prints the bounds, each run's
# verdict, states explored and states/s, the verdict per strategy and model
# against the declared expectation, and the counterexample of every verdict
# that does not match (all failing verdicts with --trace).
#
# Exit status: 0 if every verdict matches its expectation, 1 if one differs
# (or a run failed), 2 for bad arguments or an unknown/broken strategy named
# on the command line.
from __future__ import annotations

import json
import sys

MODELS = ("sc", "tso", "arm")
CONFIGS = ("home", "foreign", "gsource")


def _csv(allowed, what):
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            import argparse

            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)} (choose from {','.join(allowed)})"
            )
        return tuple(dict.fromkeys(items))

    return parse


def _positive(text):
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def register(sub):
    from ._checker import DEFAULT_BOUNDS as B

    p = sub.add_parser(
        "check",
        help="model-check strategies under SC, x86-TSO and an ARM-like model",
        description="Explore every interleaving (within the printed bounds) of the home poller, "
        "the notifiers and, for strategies that allow it, a temporary foreign poller, under "
        "each memory model; report lost wake-ups, busy loops and lost work with the shortest "
        "counterexample.  Exit status 1 if a verdict differs from the strategy's declared "
        "expectation.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="strategies to check (default: all installed)")
    p.add_argument("--model", type=_csv(MODELS, "model"), default=MODELS,
                   help="comma-separated memory models (default: sc,tso,arm)")
    p.add_argument("--config", type=_csv(CONFIGS, "config"), default=CONFIGS,
                   help="comma-separated configs (default: every config the strategy supports)")
    p.add_argument("--json", action="store_true",
                   help="a JSON list of {strategy, model, config, verdict, states, seconds, trace}")
    p.add_argument("--trace", action="store_true",
                   help="print the counterexample of every failing verdict (default: only of mismatches)")
    p.add_argument("-j", "--jobs", type=_positive, default=None,
                   help="worker processes (default: one per CPU)")
    p.add_argument("--notifiers", type=_positive, default=B.notifiers,
                   help=f"notifier processes, configs home/gsource (default {B.notifiers})")
    p.add_argument("--schedules", type=_positive, default=B.schedules,
                   help=f"bh_schedule calls (at most) per notifier, configs home/gsource (default {B.schedules})")
    p.add_argument("--foreign-notifiers", type=_positive, default=B.foreign_notifiers,
                   help=f"notifier processes, config foreign (default {B.foreign_notifiers})")
    p.add_argument("--foreign-schedules", type=_positive, default=B.foreign_schedules,
                   help=f"bh_schedule calls (at most) per notifier, config foreign (default {B.foreign_schedules})")
    p.add_argument("--max-states", type=_positive, default=B.max_states,
                   help=f"give up a run beyond this many states (default {B.max_states})")
    p.set_defaults(func=cmd_check)


def _select(names, err):
    """StrategyInfos to check, or None after reporting an error."""
    from . import _plugins
    from ._errors import StrategyError, UnknownStrategy

    if names:
        out = []
        for n in dict.fromkeys(names):
            try:
                info = _plugins.get(n)
            except (UnknownStrategy, StrategyError) as e:
                err(f"aiocore check: {e}")
                return None
            if info.ir is None:
                err(f"aiocore check: {n} is hand-written C; it has no description to model-check")
                return None
            out.append(info)
        return out
    infos = []
    for info in _plugins.registry():
        if info.status != "ok":
            err(f"aiocore check: skipping broken strategy plugin {info.source}: {info.status}")
        elif info.ir is not None:
            infos.append(info)
    return infos


def cmd_check(args) -> int:
    from ._checker import Bounds
    from ._checker import _matrix

    def err(msg):
        print(msg, file=sys.stderr)

    infos = _select(args.names, err)
    if infos is None:
        return 2
    bounds = Bounds(args.notifiers, args.schedules, args.foreign_notifiers, args.foreign_schedules,
                    args.max_states)
    rows = _matrix.plan(infos, args.model, args.config)
    if args.names and not rows:
        err("aiocore check: no run: the configs asked for are not supported by these strategies")
        return 2

    if args.json:
        seconds = _matrix.timed_run(rows, bounds, args.jobs)
        summaries = _matrix.assess(rows)
        out = []
        for r in rows:
            if r.result is not None:
                out.append(r.result.to_json())
            else:
                out.append({"strategy": r.info.name, "model": r.model, "config": r.config,
                            "verdict": "error", "states": 0, "seconds": 0.0, "trace": None,
                            "error": r.error})
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        for r in rows:
            if r.status == "error":
                err(f"aiocore check: {r.info.name} {r.model} {r.config}: {r.error}")
        return 1 if _matrix.failed(rows, summaries) else 0

    return _report(rows, bounds, args, err)


_STYLE = {"pass": "green", "lost-wakeup": "red", "busy-loop": "magenta", "lost-work": "red"}


def _v(verdict):
    from rich.markup import escape

    if verdict is None:
        return "[dim]-[/dim]"
    return f"[{_STYLE.get(verdict, 'yellow')}]{escape(verdict)}[/]"


def _status(s):
    return {"ok": "[green]ok[/green]", "MISMATCH": "[bold red]MISMATCH[/bold red]",
            "error": "[bold red]error[/bold red]"}.get(s, "[dim]-[/dim]")


def _report(rows, bounds, args, err) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ._checker import _matrix

    console = Console(soft_wrap=False, highlight=False, width=None if sys.stdout.isatty() else 132)
    console.print(f"[bold]aiocore check[/bold]: {len({r.info.name for r in rows})} strategies, "
                  f"models {','.join(args.model)}, {len(rows)} runs")
    console.print(f"bounds: {escape(bounds.describe())}; max {bounds.max_states:,} states per run")

    done = [0]

    def progress(row):
        done[0] += 1

    if console.is_terminal:
        with console.status("exploring...") as st:
            def progress(row):  # noqa: F811
                done[0] += 1
                st.update(f"exploring... {done[0]}/{len(rows)} runs")

            seconds = _matrix.timed_run(rows, bounds, args.jobs, progress)
    else:
        seconds = _matrix.timed_run(rows, bounds, args.jobs, progress)
    summaries = _matrix.assess(rows)

    t = Table(title="verdicts per run", title_justify="left")
    for col, kw in (("strategy", {"style": "bold"}), ("model", {}), ("config", {}), ("verdict", {}),
                    ("expected", {}), ("", {}), ("states", {"justify": "right"}),
                    ("states/s", {"justify": "right"}), ("seconds", {"justify": "right"})):
        t.add_column(col, **kw)
    for r in rows:
        res = r.result
        if res is None:
            t.add_row(escape(r.info.name), r.model, r.config, "[red]error[/red]", _v(r.expected),
                      _status("error"), "", "", "")
            continue
        v = _v(res.verdict) + (" [yellow](truncated)[/yellow]" if res.truncated else "")
        t.add_row(escape(r.info.name), r.model, r.config, v, _v(r.expected), _status(r.status),
                  f"{res.states:,}", f"{res.rate:,.0f}", f"{res.seconds:.2f}")
    console.print(t)

    s = Table(title="verdict per strategy and model (worst over the configs run)", title_justify="left")
    for col in ("strategy", "model", "configs", "verdict", "expected", ""):
        s.add_column(col)
    for x in summaries:
        cfg = ",".join(x.configs) + ("" if x.complete else " [dim](not all)[/dim]")
        s.add_row(escape(x.name), x.model, cfg, _v(x.verdict), _v(x.expected), _status(x.status))
    console.print(s)

    bad = {(x.name, x.model) for x in summaries if x.status == "MISMATCH"}
    for r in rows:
        if r.status == "error":
            console.print(f"[red]{escape(r.info.name)} {r.model} {r.config}: {escape(r.error)}[/red]")
    for r in rows:
        res = r.result
        if res is None or res.verdict == "pass" or not res.trace:
            continue
        if args.trace or r.status == "MISMATCH" or ((r.info.name, r.model) in bad and r.status == "-"):
            console.print(f"\n[bold]{escape(r.info.name)}[/bold] {r.model} {r.config}: {_v(res.verdict)}"
                          f" ({res.notifiers} notifier(s) x {res.schedules} schedule(s)), "
                          f"shortest counterexample:")
            console.print(escape(res.format_trace()))
    for x in summaries:
        if x.status == "MISMATCH" and x.verdict == "pass":
            console.print(f"[red]{escape(x.name)} {x.model}: expected {x.expected}, but no "
                          f"interleaving within the bounds fails[/red]")

    states = sum(r.result.states for r in rows if r.result is not None)
    cpu = sum(r.result.seconds for r in rows if r.result is not None)
    nbad = sum(1 for x in summaries if x.status == "MISMATCH")
    console.print(
        f"\n[bold]{states:,} states explored[/bold] in {seconds:.1f} s "
        f"({states / seconds if seconds > 0 else 0:,.0f} states/s; {cpu:.1f} s of checking in "
        f"{len(rows)} runs); "
        + ("[green]every verdict matches its expectation[/green]" if not _matrix.failed(rows, summaries)
           else f"[bold red]{nbad} strategy/model verdict(s) differ from the expectation[/bold red]")
    )
    return 1 if _matrix.failed(rows, summaries) else 0
