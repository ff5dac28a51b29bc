# `aiocore check`: the model checker over strategies x models x configs.
#
#   aiocore check [NAME ...] [--model sc,tso,arm] [--config home,foreign,gsource]
#                 [--skeleton 2015,polling] [--faults none|crash] [--recovery]
#                 [--json] [--jobs N] [--trace] [--herd DIR] [bounds and limits]
#
# Default: every installed strategy (that has a Python description), every
# skeleton it declares verdicts for (_matrix.judged_skeletons), every model,
# every config the strategy supports.  Prints the bounds, each run's
# verdict, states explored and states/s, the verdict per strategy, skeleton
# and model against the declared expectation, and the counterexample of
# every verdict that does not match (all failing verdicts with --trace).
#
# What a named strategy does not declare is an error (exit 2) that says what
# it does: a --skeleton it declares no verdict for, a --config it cannot run
# (foreign without foreign pollers, or on the polling skeleton).
#
# --herd DIR writes every counterexample found under an ARM model as a herd7
# AArch64 litmus test (aiocore._checker._export: its memory accesses, the
# values its loads read as the `exists` clause), one file per run and
# profile: DIR/<strategy>-<skeleton>-<config>-<profile>.litmus (model arm:
# each profile whose run has the failure).  One too large for herd7 to
# decide in reasonable time is also written in parts (.part1.litmus, ...):
# if herd7 allows every part, it allows the whole (_export's module comment).
# Without an ARM model it is an error (exit 2).
#
# A run cut short by a limit (--max-states, --max-seconds, --max-memory) proves
# nothing unless it found a failure first: its verdict is "unknown", said once
# ("explicit-mb arm home: unknown, stopped after N states by --max-states;
# raise it or lower the bounds"), "complete": false in --json, and exit 1.
#
# Exit status: 0 if every verdict matches its expectation, 1 if one differs,
# is unknown, or a run failed, 2 for bad arguments, an unknown/broken
# strategy named on the command line, or a combination it does not declare.
from __future__ import annotations

import json
import sys

from .._checker import CONFIGS, DEFAULT_MODELS, MODELS
from .._compiler._skeleton import SKELETONS
from . import _check_herd


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


#: The largest bounds the CLI accepts: 4 notifiers x 3 schedules each.  Beyond
#: them a run does not fit a CI minute or a few GiB (benchmarks/checker_scale.py
#: measures 3x3 and 4x2); the Python API (aiocore._checker.Bounds) takes any.
MAX_NOTIFIERS = 4
MAX_SCHEDULES = 3


def _at_most(limit, what):
    def parse(text):
        import argparse

        v = _positive(text)
        if v > limit:
            raise argparse.ArgumentTypeError(
                f"{v} {what} is beyond the checker's bound: at most {limit} (4 notifiers x 3 "
                f"schedules is the largest run that fits; see benchmarks/checker_scale.py)")
        return v

    return parse


def _memory(text):
    """--max-memory: bytes, or with a unit: 300M, 2G, 512MiB."""
    import argparse
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 300M, 2G)")
    v = float(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]
    if v < 2**20:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1 MiB: no run fits")
    return int(v)


def _seconds(text):
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return v


def register(sub):
    from .._checker import DEFAULT_BOUNDS as B

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
    p.add_argument("--model", type=_csv(MODELS, "model"), default=DEFAULT_MODELS,
                   help=f"comma-separated memory models: {', '.join(MODELS)}; arm is the union of "
                        f"the two ARMv8 profiles arm-llsc and arm-lse (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("--config", type=_csv(CONFIGS, "config"), default=None,
                   help="comma-separated configs (default: every config the strategy supports)")
    p.add_argument("--json", action="store_true",
                   help="a JSON list of {strategy, skeleton, model, config, verdict, states, seconds, trace}")
    p.add_argument("--trace", action="store_true",
                   help="print the counterexample of every failing verdict (default: only of mismatches)")
    p.add_argument("-j", "--jobs", type=_positive, default=None,
                   help="worker processes (default: one per CPU)")
    p.add_argument("--notifiers", type=_at_most(MAX_NOTIFIERS, "notifiers"), default=B.notifiers,
                   help=f"notifier processes, configs home/gsource (default {B.notifiers})")
    p.add_argument("--schedules", type=_at_most(MAX_SCHEDULES, "schedules"), default=B.schedules,
                   help=f"bh_schedule calls (at most) per notifier, configs home/gsource (default {B.schedules})")
    p.add_argument("--foreign-notifiers", type=_at_most(MAX_NOTIFIERS, "notifiers"),
                   default=B.foreign_notifiers,
                   help=f"notifier processes, config foreign (default {B.foreign_notifiers})")
    p.add_argument("--foreign-schedules", type=_at_most(MAX_SCHEDULES, "schedules"),
                   default=B.foreign_schedules,
                   help=f"bh_schedule calls (at most) per notifier, config foreign (default {B.foreign_schedules})")
    p.add_argument("--skeleton", type=_csv(SKELETONS, "skeleton"), default=None,
                   help="comma-separated aio_poll skeletons (2015; polling: QEMU's of today); "
                        "default: every skeleton the strategy declares verdicts for")
    p.add_argument("--faults", choices=("none", "crash"), default="none",
                   help="crash: any notifier (and a foreign poller) may stop for good between two "
                        "primitives")
    p.add_argument("--recovery", action="store_true",
                   help="with --faults crash: the owner's recovery after a death is part of the "
                        "skeleton (AioContext.create(recovery=True))")
    p.add_argument("--max-states", type=_positive, default=B.max_states,
                   help=f"stop a run beyond this many states: verdict unknown (default {B.max_states:,})")
    p.add_argument("--max-seconds", type=_seconds, default=None,
                   help="stop a run after this long: verdict unknown (default: no limit)")
    p.add_argument("--max-memory", type=_memory, default=None,
                   help="stop a run whose resident memory exceeds this (e.g. 300M, 2G): verdict "
                        "unknown (default: no limit)")
    p.add_argument("--herd", metavar="DIR", default=None,
                   help="write each ARM counterexample as a herd7 AArch64 litmus test in DIR "
                        "(<strategy>-<skeleton>-<config>-<profile>.litmus; check it with "
                        "herd7 -model aarch64.cat FILE); needs an ARM model (arm, arm-llsc, arm-lse)")
    p.add_argument("--speculate", action="store_true",
                   help="ARM models: let a process run past a branch on a load not yet performed, "
                        "as ARMv8 does (exact for such branches; several times the states). Without "
                        "it such a branch waits for its load, which is stronger than ARM")
    p.add_argument("--engine", choices=("auto", "c", "python"), default="auto",
                   help="the search loop: c (compiled once through cffi), python, or auto (c when it "
                        "can be built); both explore the same states and give the same results")
    p.set_defaults(func=cmd_check)


def reductions_json() -> dict:
    """The reductions in force, as --json reports them with every run."""
    from .._checker import REDUCTIONS

    return {r.name: {"in_force": r.in_force, "exact": r.exact, "what": r.what} for r in REDUCTIONS}


def _select(names, err):
    """StrategyInfos to check, or None after reporting an error."""
    from .._compiler import _plugins
    from .._errors import StrategyError, UnknownStrategy

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


def _declares(info) -> str:
    """What a strategy declares, in the words of its class attributes."""
    from .._checker import _matrix

    esk = sorted(getattr(info, "expected_skeletons", None) or {})
    return (f"skeletons = {_matrix.declared_skeletons(info)!r}"
            + (f", expected_skeletons for {', '.join(esk)}" if esk else ""))


def _plan(infos, args, opts, err):
    """The rows to run: every strategy x skeleton x model x config asked for
    and declared.  None after an error: a named strategy asked for a
    skeleton it declares no verdict for, or a config it cannot run."""
    import attrs

    from .._checker import _matrix, supported_configs

    named = bool(args.names)
    rows = []
    for info in infos:
        judged = _matrix.judged_skeletons(info)
        sks = judged if args.skeleton is None else tuple(s for s in args.skeleton if s in judged)
        missing = [] if args.skeleton is None else [s for s in args.skeleton if s not in judged]
        if missing:
            text = (f"{info.name} declares no verdict on the {' and '.join(missing)} skeleton: it is "
                    f"judged on {', '.join(judged)} ({_declares(info)}); add the skeleton to its "
                    f"`skeletons` or its verdicts to `expected_skeletons` to have it judged there")
            if named:
                err(f"aiocore check: {text}")
                return None
            err(f"aiocore check: skipping {text}")
        # A config asked for must run on every skeleton asked for, or (none
        # asked) on at least one of those the strategy is judged on: foreign
        # pollers ran the 2015 skeleton only.
        sup = {sk: supported_configs(info.ir, sk) for sk in sks}
        for c in args.config or ():
            where = [sk for sk in sks if c in sup[sk]]
            if named and (not where or (args.skeleton is not None and len(where) < len(sks))):
                sk = next(sk for sk in sks if c not in sup[sk])
                why = ("foreign pollers run the 2015 skeleton only" if sk != "2015" and
                       info.ir.foreign_pollers else "foreign needs `foreign_pollers = True`")
                err(f"aiocore check: {info.name} cannot run config {c} on the {sk} skeleton "
                    f"({why}); it runs {', '.join(sup[sk])} there")
                return None
        for sk in sks:
            rows += _matrix.plan([info], args.model, args.config or sup[sk], attrs.evolve(opts, skeleton=sk))
    return rows


def cmd_check(args) -> int:
    from .._checker import Bounds
    from .._checker import _matrix

    def err(msg):
        print(msg, file=sys.stderr)

    if args.recovery and args.faults == "none":
        err("aiocore check: --recovery needs --faults crash (recovery undoes what a crash left)")
        return 2
    if args.herd is not None and _check_herd.herd_dir(args, err) is None:
        return 2
    infos = _select(args.names, err)
    if infos is None:
        return 2
    bounds = Bounds(args.notifiers, args.schedules, args.foreign_notifiers, args.foreign_schedules,
                    args.max_states, args.max_seconds, args.max_memory)
    one = args.skeleton[0] if args.skeleton and len(args.skeleton) == 1 else None
    opts = _matrix.Options(one, args.faults, args.recovery, args.engine, export=args.herd is not None,
                           speculate=args.speculate)
    rows = _plan(infos, args, opts, err)
    if rows is None:
        return 2
    if not rows:
        err("aiocore check: no run: no strategy declares the skeletons and configs asked for")
        return 2

    if args.json:
        _matrix.timed_run(rows, bounds, args.jobs, opts=opts)
        runs = rows
        rows = _matrix.with_profiles(rows)  # each arm run's profiles, judged as declared
        summaries = _matrix.assess(rows, opts)
        out = []
        for r in rows:
            if r.result is not None:
                o = r.result.to_json()
            else:
                o = {"strategy": r.info.name, "model": r.model, "config": r.config, "skeleton": r.skeleton,
                     "verdict": "error", "complete": False, "stopped_by": "error", "states": 0,
                     "seconds": 0.0, "trace": None, "error": r.error}
            if r.derived:
                o["part_of"] = "arm"  # one profile of the arm run listed before it
            o["expected"] = r.expected
            o["matches"] = {"ok": True, "MISMATCH": False, "UNKNOWN": False,
                            "error": False}.get(r.status)
            o["bounds"] = bounds.to_json()
            o["reductions"] = reductions_json()
            out.append(o)
        if args.herd is not None:
            written = _check_herd.write_herd(runs, args.herd)
            for o, r in zip(out, rows):
                o["herd"] = {p: f for row, p, f, _ in written if row is r}
                o["herd_parts"] = {p: parts for row, p, _, parts in written if row is r and parts}
            for line in _check_herd.herd_lines(written, args.herd):
                err(line)
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        for r in runs:
            if r.status == "error":
                err(f"aiocore check: {r.info.name} {r.skeleton} {r.model} {r.config}: {r.error}")
            elif r.status == "UNKNOWN":
                err(f"aiocore check: {r.unknown_text()}")
        return 1 if _matrix.failed(rows, summaries) else 0

    from ._check_report import report

    return report(rows, bounds, opts, args)
