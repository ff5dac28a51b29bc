# `aiocore info NAME` and `aiocore gc`: looking at segments from outside.
from __future__ import annotations

import datetime
import json
import sys

import attrs


def register(sub):
    p = sub.add_parser("info", help="print a segment's header and counters")
    p.add_argument("name", nargs="?", help="segment name (default: list all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("gc", help="unlink segments whose owner is gone")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p.add_argument("--prefix", help="only segments whose name starts with this")
    p.set_defaults(func=cmd_gc)


def cmd_info(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from .._context import _aio as C
    from ._tables import Table
    from .._errors import AioError

    if not args.name:
        names = C.list_segments()
        rows = []
        for n in names:
            try:
                i = C.segment_info(n)
                rows.append(attrs.asdict(i))
            except AioError as e:
                rows.append({"name": n, "error": str(e)})
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no aiocore segments in /dev/shm")
            return 0
        # Names, strategies and states are key columns: never cut at 80
        # columns (aiocore/_cli/_tables.py); unreadable segments are listed below.
        t = Table("aiocore segments")
        for h in ("name", "strategy", "skeleton", "owner pid", "alive", "state"):
            t.column(h, key=True, justify="right" if h == "owner pid" else "left")
        for r in rows:
            if "error" not in r:
                t.row(escape(r["name"]), escape(r["strategy"]), r["skeleton"], r["owner_pid"], r["owner_alive"],
                      escape(r["state"]))
        con = Console(highlight=False)
        if t.rows:
            t.print(con)
        for r in rows:
            if "error" in r:
                con.print(f"[red]{escape(r['name'])}: {escape(r['error'])}[/red]")
        return 0
    try:
        info = C.segment_info(args.name)
        counters = C.read_counters(args.name)
    except AioError as e:
        print(f"aiocore info: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"header": attrs.asdict(info), "counters": counters}, indent=2))
        return 0
    con = Console(highlight=False)
    t = Table(f"segment {escape(info.name)}").column("field", key=True).column("value", key=True)
    for k, v in attrs.asdict(info).items():
        if k == "created_ns":
            v = f"{v} ({datetime.datetime.fromtimestamp(v / 1e9).isoformat(timespec='seconds')})"
        t.row(k, escape(str(v)))
    if info.skeleton == "polling":
        t.row("poll_ns (now)", counters.get("poll_ns"))
    t.print(con)
    t = Table("counters").column("counter", key=True).column("value", key=True, justify="right")
    for k, v in counters.items():
        t.row(k, v)
    t.print(con)
    return 0


def cmd_gc(args) -> int:
    from .._context import _aio as C

    done = C.gc_segments(dry_run=args.dry_run, prefix=args.prefix)
    verb = "would unlink" if args.dry_run else "unlinked"
    for name, why in done:
        print(f"{verb} {name}: {why}")
    if not done:
        print("nothing to reclaim")
    return 0
