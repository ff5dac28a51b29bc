# `aiocore strategies` and `aiocore show`.
#
#   aiocore strategies [--json]          every installed strategy: name, origin,
#                                        the plugin it comes from, status, the
#                                        skeletons it is judged on and its
#                                        declared verdicts per skeleton; broken
#                                        plugins are listed with their cause,
#                                        never hidden.
#   aiocore show NAME --c|--promela|--ir the generated C hooks, the Promela
#                                        model, or the IR (JSON) of one strategy.
#
# Exit status: `strategies` is 0 even with broken plugins (they are reported);
# `show` is 1 for a broken or unknown strategy, with the cause on stderr.
from __future__ import annotations

import json
import sys

from .._checker import MODELS


def register(sub):
    p = sub.add_parser("strategies", help="list installed notification strategies, their skeletons "
                       "and declared verdicts")
    p.add_argument("--json", action="store_true", help="a JSON list of objects")
    p.set_defaults(func=cmd_strategies)

    p = sub.add_parser("show", help="print a strategy as C, Promela or IR")
    p.add_argument("name", metavar="NAME")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--c", dest="what", action="store_const", const="c", help="the generated C hooks")
    g.add_argument("--promela", dest="what", action="store_const", const="promela", help="a Promela model for spin")
    g.add_argument("--ir", dest="what", action="store_const", const="ir", help="the IR, as JSON")
    p.set_defaults(func=cmd_show)


def _as_json(info) -> dict:
    from .._checker import _matrix

    return {
        "name": info.name,
        "origin": info.origin,
        "source": info.source,
        "status": info.status,
        "skeletons": list(_matrix.declared_skeletons(info)),
        "verdicts": {sk: {m: v for m, v in _matrix.declared_verdicts(info, sk).items()}
                     for sk in _matrix.judged_skeletons(info)},
        "expected": {m: info.expected[m] for m in MODELS if m in (info.expected or {})},
        "expected_configs": info.expected_configs or {},
        "expected_skeletons": dict(getattr(info, "expected_skeletons", None) or {}),
        "foreign_pollers": bool(info.foreign_pollers),
        "fingerprint": info.ir.fingerprint if info.ir is not None else None,
    }


def cmd_strategies(args) -> int:
    from .._checker import _matrix
    from .._compiler._plugins import registry

    infos = registry()
    if args.json:
        json.dump([_as_json(i) for i in infos], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.markup import escape

    from ._tables import Table

    # One row per strategy and skeleton it is judged on: a skeleton it runs
    # on natively (its `skeletons`), or one it only declares the checker's
    # verdicts for (`expected_skeletons`; shown "(checker)": the native core
    # refuses it).  Names, skeletons and verdicts are key columns (never
    # cut); the origin column wraps and carries what the verdict columns
    # leave out: per-config exceptions (marked * on the verdict), a
    # third-party source, a cause.
    t = Table("aiocore strategies").column("name", key=True, style="bold").column("skeleton", key=True)
    for m in MODELS:
        t.column(m.upper(), key=True)
    t.column("origin")
    for i in infos:
        ok = i.status == "ok"
        notes = [escape(i.origin)] if i.origin else []
        per = _per_config(i)
        if per:
            notes.append("* " + escape(per))
        if not i.source.startswith("aiocore["):
            notes.append("from " + escape(i.source))
        if not ok:
            notes.append(f"[red]broken: {escape(i.status)}[/red]")
        sks = _matrix.judged_skeletons(i) if ok else ("-",)
        native = _matrix.declared_skeletons(i) if ok else ()
        for k, sk in enumerate(sks):
            t.row(
                escape(i.name),
                sk if sk in native or sk == "-" else f"{sk} (checker)",
                *[_verdict_cell(i, m, sk) if ok else "[red]broken[/red]" for m in MODELS],
                "\n".join(notes) if k == 0 else "",
            )
    t.print()
    bad = [i for i in infos if i.status != "ok"]
    for i in bad:
        print(f"aiocore: broken strategy plugin {i.source}: {i.status}", file=sys.stderr)
    return 0


def _exceptions(info, model) -> dict:
    v = (info.expected or {}).get(model, "")
    return {c: e[model] for c, e in sorted((info.expected_configs or {}).items())
            if model in e and e[model] != v}


def _per_config(info) -> str:
    """'SC, TSO: gsource pass, home pass' -- verdicts that differ per config (2015)."""
    groups: dict = {}
    for m in MODELS:
        per = _exceptions(info, m)
        if per:
            groups.setdefault(tuple(per.items()), []).append(m.upper())
    return "; ".join(
        f"{', '.join(ms)}: " + ", ".join(f"{c} {v}" for c, v in per) for per, ms in groups.items()
    )


def _verdict_cell(info, model, skeleton="2015") -> str:
    from .._checker import _matrix

    declared = _matrix.declared_verdicts(info, skeleton).get(model)
    v = declared or "-"
    if skeleton == "2015" and _exceptions(info, model):
        v += "*"
    color = {"pass": "green", "lost-wakeup": "red", "busy-loop": "yellow", "lost-work": "red"}.get(
        declared, None
    )
    return f"[{color}]{v}[/{color}]" if color else v


def cmd_show(args) -> int:
    from .._errors import AioError
    from .._compiler._load import c_source, promela_source
    from .._compiler._plugins import get

    try:
        info = get(args.name)
        if args.what == "c":
            text = c_source(info)
        elif args.what == "promela":
            text = promela_source(info)
        else:
            if info.ir is None:
                print(f"aiocore: {info.name} is hand-written C; it has no IR", file=sys.stderr)
                return 1
            text = json.dumps(
                {**info.ir.to_json(), "fingerprint": info.ir.fingerprint}, indent=2
            ) + "\n"
    except AioError as e:
        print(f"aiocore: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
