# `aiocore bench`: strategies side by side, against floors and peers measured
# in the same run.  The engine is aiocore/_bench/_all.py; this module parses
# arguments and renders (rich table, --json, --plot).
#
#   aiocore bench [--strategy S ...] [--json] [--plot FILE.png] [--quick] [--repeats N] [--no-pin]
#
# Exit status: 0 when the run completed (missed targets are reported, not
# failures), 1 when a measurement could not run, 2 for a usage error (such as
# --plot without matplotlib).
from __future__ import annotations

import json
import sys


def register(sub):
    p = sub.add_parser(
        "bench",
        help="benchmark strategies against floors and peers (median of repeats, ratios in-run)",
    )
    p.add_argument("--strategy", "-s", action="append", metavar="S",
                   help="a strategy to measure (repeatable; default: the seed's six + unconditional-c)")
    p.add_argument("--json", action="store_true", help="print one JSON object (machine, floors, peers, strategies, targets)")
    p.add_argument("--plot", metavar="FILE.png", help="also write a PNG plot (needs the 'plot' extra: matplotlib)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and shorter runs (~30 s)")
    p.add_argument("--repeats", type=int, metavar="N",
                   help="repeats of the run (default: 5, or 3 with --quick)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the two processes of cross-process runs to different CPUs")
    p.set_defaults(func=cmd_bench)


def _check_plot_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            "aiocore bench --plot needs matplotlib, which is not installed: "
            "pip install 'aiocore[plot]' (or pip install matplotlib)"
        )
    return None


def cmd_bench(args) -> int:
    from .._bench import _all as B

    if args.plot:
        err = _check_plot_available()
        if err:
            print(err, file=sys.stderr)
            return 2
    from .._bench import _base as _bench_base

    _bench_base.PIN = not args.no_pin
    from .._errors import AioError

    progress = None
    if not args.json:
        def progress(msg):
            print(f"  … {msg}", file=sys.stderr, flush=True)
    try:
        res = B.run(args.strategy, quick=args.quick, progress=progress, repeats=args.repeats)
    except (B.BenchError, AioError) as e:
        print(f"aiocore bench: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(res)
    if args.plot:
        plot(res, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


# --- rendering -------------------------------------------------------------------


def _ns(f, digits=1):
    if not f or f.get("value") is None:
        return "?"
    v = f["value"]
    lo, hi = f.get("min"), f.get("max")
    unit = f.get("unit", "")
    if unit == "ns" and v >= 10_000:
        s = f"{v / 1000:.1f} µs"
        if lo is not None:
            s += f" [{lo / 1000:.1f}–{hi / 1000:.1f}]"
        return s
    s = f"{v:.{digits}f}"
    if lo is not None and hi is not None and f.get("n", 0) > 1:
        s += f" [{lo:.{digits}f}–{hi:.{digits}f}]"
    return s


def _m(f, digits=1):
    """The median alone (the spread is in --json)."""
    if not f or f.get("value") is None:
        return "?"
    v = f["value"]
    if f.get("unit") == "ns" and v >= 10_000:
        return f"{v / 1000:.1f} µs"
    return f"{v:.{digits}f}"


def _rate(f):
    if not f or f.get("value") is None:
        return "?"
    v = f["value"]

    def k(x):
        return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"

    s = k(v)
    if f.get("min") is not None and f.get("n", 0) > 1:
        s += f" [{k(f['min'])}–{k(f['max'])}]"
    return s


def _x(r):
    if not r or r.get("value") is None:
        return "?"
    return f"{r['value']:.2f}×"


def _step(v):
    return "?" if v is None else f"{v:+.0f}"


def _sc(d, k):
    """'sets / clears' of two per-1k figures."""
    a, b = d.get(k.format("sets")), d.get(k.format("clears"))
    if not a or not b or a.get("value") is None or b.get("value") is None:
        return "?"
    return f"{a['value']:.0f} / {b['value']:.0f}"


def render(res, console=None):
    """The bench result as tables (aiocore._cli._tables: key columns -- names and
    figures -- are never truncated, descriptions fold; readable at 80 columns)."""
    from rich.console import Console

    from ._tables import Table

    con = console or Console(highlight=False)
    m = res["machine"]
    con.print(
        f"[bold]aiocore bench[/bold] — {m['cpu']} ×{m['cpus']} ({m['virtualization']}), "
        f"Linux {m['kernel']}, Python {m['python']}, {m['compiler']}; "
        f"{m['repeats']} repeats, median [min–max]; load {m['loadavg_start'][0]:.2f}→{m['loadavg_end'][0]:.2f}; "
        f"{m['seconds']} s"
    )
    fl = res["floors"]
    t = Table(title="floors (same run)").column("floor", key=True).column("value", key=True, justify="right").column("what")
    for k, f in fl.items():
        t.row(k, _ns(f, 2 if (f.get("value") or 0) < 100 else 0), f.get("what", ""))
    t.print(con)

    pe = res["peers"]
    t = (Table(title="peers: wake-up per ping-pong RT/2").column("peer", key=True)
         .column("p50", key=True, justify="right").column("p99", key=True, justify="right")
         .column("p50 ÷ C efd", key=True, justify="right").column("what"))
    for k, d in pe.items():
        if "p50" in d:
            t.row(k, _ns(d["p50"], 0), _ns(d["p99"], 0), _x(d["p50_vs_eventfd_floor"]), d["what"])
    d = pe["eventfd_py_write_read"]
    t.row("eventfd_py_write_read", _ns(d["cost"], 0) + " ns", "", _x(d["cost_vs_c"]) + " of C", d["what"])
    t.print(con)

    st = res["strategies"]

    def table(title, cols, rows):
        """A strategy table: names and medians are key columns (never cut);
        at most five columns, so it fits 80; spreads are in --json."""
        t = Table(title=title)
        for c in cols:
            t.column(c, key=True, justify="left" if c == "strategy" else "right")
        for r in rows:
            t.row(*r)
        t.print(con)

    m = _m
    table("fast paths, C loops, nobody sleeping (ns; f+l = fence+load floor)",
          ("strategy", "notify", "÷ f+l", "hook ÷ f+l", "round"),
          [(s, m(d["notify_ns"]), _x(d["notify_vs_fence_load"]), _x(d["notify_hook_vs_fence_load"]),
            m(d["poll_round_ns"], 0)) for s, d in st.items()])
    table("fences / locked ops (description; compiled = checked with objdump)",
          ("strategy", "notify", "poll", "compiled", "py bh_schedule"),
          [(s, f"{d['fences_per_notify']['value']}/{d['locked_per_notify']['value']}",
            f"{d['fences_per_poll']['value']}/{d['locked_per_poll']['value']}",
            "n/a" if not d["compiled_check"]["checked"] else ("yes" if d["compiled_check"]["match"] else "[red]NO[/red]"),
            f"{m(d['py_bh_schedule_ns'])} ({_x(d['py_bh_schedule_vs_cffi_empty'])})") for s, d in st.items()])
    table("2015 skeleton: wake-up of a sleeping owner (ns), C eventfd ping-pong interleaved",
          ("strategy", "p50", "÷ C efd", "+ppoll,read", "+protocol"),
          [(s, m(d["wakeup_p50"], 0), _x(d["wakeup_p50_vs_eventfd_paired"]),
            _step(d["wakeup_steps"]["syscalls_extra"]), _step(d["wakeup_steps"]["protocol_extra"]))
           for s, d in st.items()])
    table("2015 skeleton: virtio-net-tx and thread-pool",
          ("strategy", "virtio disp/s", "÷ selfpipe", "set/clr", "pool compl/s"),
          [(s, _rate(d["virtio_dispatches_per_s"]).split(" ")[0], _x(d.get("virtio_dispatch_rate_vs_selfpipe")),
            _sc(d, "virtio_event_{}_per_1k"), _rate(d["pool_completions_per_s"]).split(" ")[0])
           for s, d in st.items()])
    pol = [s for s, d in st.items() if "wakeup_polling_p50" in d]
    if pol:
        table("polling skeleton: wake-up in the busy-poll phase (ns)",
              ("strategy", "p50", "p99", "÷ spin", "÷ C efd"),
              [(s, m(st[s]["wakeup_polling_p50"], 0), m(st[s]["wakeup_polling_p99"], 0),
                _x(st[s]["wakeup_polling_p50_vs_spin"]), _x(st[s]["wakeup_polling_p50_vs_eventfd_floor"]))
               for s in pol])
        table("polling skeleton: virtio-net-tx (÷ the ring floor, paired phases), idle owner",
              ("strategy", "virtio pkt/s", "÷ floor", "no-syscall", "idle CPU"),
              [(s, _rate(st[s]["virtio_polling_paired_pps"]).split(" ")[0],
                _x(st[s].get("virtio_polling_pps_vs_ring_floor_paired")),
                m(st[s]["virtio_polling_no_syscall_fraction"], 3),
                "?" if st[s]["idle_cpu_fraction"].get("value") is None else f"{100 * st[s]['idle_cpu_fraction']['value']:.1f}%")
               for s in pol])

    seed = [s for s in st if s != "unconditional-c"]
    base = st.get("unconditional", {}).get("poll_round_ns", {}).get("value")
    table("the seed's question (05e514b1), 2015 skeleton, per dispatch, owner awake",
          ("strategy", "fences/locked", "set/clr", "round ns", "− uncond."),
          [(s, f"{st[s]['fences_per_dispatch']['value']}/{st[s]['locked_per_dispatch']['value']}",
            _sc(st[s], "round_event_{}_per_1k"), m(st[s]["poll_round_ns"], 0),
            "?" if base is None or st[s]["poll_round_ns"]["value"] is None
            else f"{st[s]['poll_round_ns']['value'] - base:+.0f}") for s in seed])
    sp = res.get("seed_polling")
    if sp:
        table("the seed's question on the polling skeleton (no ppoll; owner awake)",
              ("strategy", "round ns", "read()/poll", "no-syscall"),
              [(s, m(sp[s]["round_ns"], 0), m(sp[s]["event_clear_calls_per_poll"], 2),
                m(sp[s]["no_syscall_polls"], 2)) for s in ("unconditional", "notified")])
        bf = sp.get("barrier_fraction_of_notified_round", {}).get("value")
        con.print(f"notified round ÷ unconditional round: {_x(sp['notified_round_vs_unconditional'])}; "
                  f"05e514b1's xchg ÷ notified round: {'?' if bf is None else f'{100 * bf:.1f}%'}")

    t = (Table(title="targets").column("target").column("strategy", key=True)
         .column("measured", key=True, justify="right").column("limit", key=True).column("result"))
    for x in res["targets"]:
        v = "?" if x["value"] is None else f"{x['value']:.2f}×"
        if x.get("baseline"):
            r = "baseline"
        elif x["met"] is None:
            r = "[yellow]?[/yellow]"
        elif x["met"]:
            r = "[green]met[/green]"
        else:
            r = f"[red]missed[/red] by {x['by']:.2f}×"
        if x.get("note"):
            r += f" ({x['note']})"
        t.row(x["target"], x["strategy"], v, f"{x['cmp']} {x['limit']}", r)
    t.print(con)


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = res["strategies"]
    names = list(st)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))

    def bars(ax, key, title, scale=1.0, unit=""):
        vals = [(st[s][key]["value"] or 0) / scale for s in names]
        lo = [v - (st[s][key].get("min") or 0) / scale for v, s in zip(vals, names)]
        hi = [(st[s][key].get("max") or 0) / scale - v for v, s in zip(vals, names)]
        ax.bar(names, vals, yerr=[lo, hi], capsize=3, color="#4a7db3")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", rotation=35)

    bars(axes[0][0], "notify_ns", "aio_notify, nobody sleeping (C loop)", unit="ns")
    axes[0][0].axhline(res["floors"]["fence_load"]["value"], color="red", ls="--", label="fence+load floor")
    axes[0][0].legend()
    bars(axes[0][1], "poll_round_ns", "schedule + aio_poll round, work pending", unit="ns")
    axes[0][1].axhline(res["floors"]["ppoll_zero_timeout"]["value"], color="red", ls="--", label="ppoll(0) floor")
    axes[0][1].legend()
    bars(axes[1][0], "wakeup_p50", "cross-process wake-up p50", scale=1000, unit="µs")
    axes[1][0].axhline(res["floors"]["eventfd_pingpong"]["value"] / 1000, color="red", ls="--", label="C eventfd floor")
    axes[1][0].axhline(res["peers"]["mp_event"]["p50"]["value"] / 1000, color="gray", ls=":", label="multiprocessing.Event")
    axes[1][0].legend()
    bars(axes[1][1], "virtio_pps", "virtio-net-tx packets/s", scale=1e6, unit="M packets/s")
    fig.suptitle(f"aiocore bench — {res['machine']['cpu']} ×{res['machine']['cpus']}, median of {res['machine']['repeats']} [min–max]")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
