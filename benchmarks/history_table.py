#!/usr/bin/env python3
"""docs/history.md: QEMU's AioContext history, 2014-2025, judged by aiocore.

Installs the corpus (history/qemu-history, a distribution of its own) into a
temporary directory, asks `aiocore check` for every entry's verdicts on each
run it is judged by (each skeleton it declares, and the run its commit is
about where that is not the default one), under every model of the checker
(aiocore._checker.MODELS), runs an `aiocore stress` campaign of each on this
machine on each skeleton it runs on, and writes

    docs/history.json   what was measured, with each entry's RECORD
    docs/history.md     render(docs/history.json): one row per entry, then
                        the record of each

    python benchmarks/history_table.py [--stress-seconds 10] [--reproduce-seconds 120]
                                       [--reuse-native] [--jobs N]

A campaign's budget is --reproduce-seconds where the checker says the entry
fails under tso on that skeleton (x86 can show it), else --stress-seconds.
--reuse-native keeps the native result of an entry from the previous
docs/history.json when its fingerprint (the behaviour of its hooks) and the
budget are unchanged, so that re-rendering after a change of wording, or
after the checker gains a model, costs only the checker's time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "history"))

import install_corpus  # noqa: E402
import judge  # noqa: E402

MD = ROOT / "docs" / "history.md"
JSON = ROOT / "docs" / "history.json"

#: Commits read in the history and left out of the corpus, and why.
NOT_ENTRIES = (
    ("845ca10dd089b4e48f0a79bad005fb30eb77584e", "2014-07-09",
     "AioContext: take bottom halves into account when computing aio_poll timeout",
     "with 3672fa50 it creates the 2015 skeleton itself (BHs in the timeout, run after ppoll)"),
    ("49110174f8835ec3d5ca7fc076ee1f51c18564fe", "2015-02-20",
     "AioContext: acquire/release AioContext during aio_poll",
     "makes a second poller possible: the checker's `foreign` config"),
    ("ca96ac44dcd290566090b2435bc828fded356ad9", "2015-07-28",
     "AioContext: force event loop iteration using BH",
     "a caller's fix (a dummy BH instead of a bare aio_notify): the contract that a notify wakes "
     "only a poller that has work to see, not a change of the hooks"),
    ("4a1cba3802554a3b077d436002519ff1fb0c18bf", "2016-12-01", "aio: add polling mode to AioContext",
     "a skeleton change; its notifier poll handler is the timeout_zero of the 2017-2020 entries "
     "(qemu-2017-b7a745dc to qemu-2020-601829f8)"),
    ("e30cffa04d52e35996569f1cfac111be19576bde", "2018-09-12", "aio-posix: compute timeout before polling",
     "with cfeb35d6 a latency fix of the polling skeleton"),
    ("0dc165c1bd544cad4b58f9493d3f6f71fd41705e", "2019-02-14",
     "aio-posix: Assert that aio_poll() is always called in home thread",
     "the end of foreign pollers: entries from here on declare foreign_pollers = False"),
    ("993ed89f35bf2b2250727667f2a640b3c232259f", "2019-04-09",
     "aio-posix: ensure poll mode is left when aio_notify is called", "latency, skeleton only"),
    ("873df2cec13138718466fc5f68d801971390542b", "2019-10-01",
     "win32: work around main-loop busy loop on socket/fd event",
     "Windows only: sockets signal the notifier's event handle, which aiocore's eventfd cannot"),
    ("e4346192f1c2e1683a807b46efac47ef0cf9b545", "2020-03-05",
     "aio-posix: completely stop polling when disabled", "performance, skeleton only"),
    ("816a430c517eae48da5a31207ca43151df3203b0", "2022-07-10",
     "util/aio: Defer disabling poll mode as long as possible", "performance, skeleton only"),
    ("8dd48650b43dfde4ebea34191ac267e474bcc29e", "2023-03-06",
     "async: update documentation of the memory barriers",
     "comments only (with ff00bed1 and 6229438c): the payload rides on bh_list's insertion and removal"),
    ("511c62a2c6f8c6c9b0ddb235b1bddd6884a78c38", "2025-11-03",
     "aio-posix: keep polling enabled with fdmon-io_uring.c", "performance, skeleton only"),
)


#: What each memory model of the checker stands for (a model the checker
#: gains later is listed by name until it is described here).
MODEL_NOTES = {
    "sc": "sequential consistency: no reordering, the protocol's logic alone",
    "tso": "x86-TSO: a store may pass later loads (x86-64, this machine)",
    "arm": "ARMv8 as a default gcc build may run: each seq_cst RMW either an ldaxr/stlxr loop or an "
           "LSE instruction, whichever allows more (the union of the two code generations); a failure "
           "only one of them shows names it (*[arm-llsc only]*)",
    "arm-llsc": "ARMv8.0 code: seq_cst RMWs as ldaxr/stlxr loops, which do not order later plain loads",
    "arm-lse": "ARMv8.1 LSE code: seq_cst RMWs as swpal/casal/ldaddal..., which order later loads",
}


def _fingerprints(env) -> dict:
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "strategies", "--json"], capture_output=True,
                       text=True, env=env, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"aiocore strategies failed: {p.stderr[-2000:]}")
    return {r["name"]: r.get("fingerprint") for r in json.loads(p.stdout)}


def _git(*args) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def budget_of(checker_run: dict, stress_seconds: float, reproduce_seconds: float) -> float:
    """A campaign's budget: longer where the checker says x86 (tso) can fail."""
    tso = checker_run.get("tso")
    return reproduce_seconds if tso is not None and tso["worst"] != "pass" else stress_seconds


#: What the results depend on: a change here, uncommitted when the run starts, is named.
MEASURED = ("aiocore", "strategies", "workloads", "history", "benchmarks/history_table.py", "pyproject.toml",
            "setup.py")


def collect(stress_seconds: float, reproduce_seconds: float, reuse_native: bool, jobs: int) -> dict:
    dirty = _git("status", "--porcelain", "--", *MEASURED)
    previous = json.loads(JSON.read_text()).get("entries", {}) if (reuse_native and JSON.exists()) else {}
    with tempfile.TemporaryDirectory(prefix="aiocore-history-") as tmp:
        env = install_corpus.install(Path(tmp))
        decl = judge.declared(env)
        prints = _fingerprints(env)
        models = judge.models()
        print(f"checking {len(decl)} entries under {', '.join(models)} ...", file=sys.stderr)
        checker = judge.check_all(env, decl, jobs=jobs)
        entries = {}
        for name, d in decl.items():
            runs = {judge.label(sk, m): checker[judge.label(sk, m)][name] for sk, m in judge.runs_of(d)}
            native = {}
            old = previous.get(name, {})
            for sk in d["skeletons"]:
                budget = budget_of(runs.get(sk, {}), stress_seconds, reproduce_seconds)
                was = old.get("native", {}).get(sk)
                if old.get("fingerprint") == prints.get(name) and was and was.get("budget") == budget:
                    native[sk] = was
                    continue
                print(f"aiocore stress -s {name} -d {budget:g} --skeleton {sk} ...", file=sys.stderr)
                native[sk] = {"budget": budget, **judge.stress(env, name, budget, sk)}
            entries[name] = {
                "record": d["record"], "origin": d["origin"], "doc": d["doc"],
                "skeletons": d["skeletons"], "fingerprint": prints.get(name),
                "declared": {judge.label(sk, m): judge.expectation(d, sk, m) for sk, m in judge.runs_of(d)},
                "declared_configs": d["expected_configs"],
                "checker": runs,
                "native": native,
            }
        problems = judge.mismatches(decl, checker) + judge.unexplained(decl)
    return {
        "generated": {
            "command": (f"python benchmarks/history_table.py --stress-seconds {stress_seconds:g} "
                        f"--reproduce-seconds {reproduce_seconds:g}"),
            "aiocore_commit": _git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else ""),
            "models": list(models), "stress_seconds": stress_seconds, "reproduce_seconds": reproduce_seconds,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        },
        "problems": problems,
        "entries": entries,
    }


# --- rendering (a function of docs/history.json alone) ------------------------------

RUN_NAMES = {"oneshot": "every schedule a one-shot BH",
             "cancel-reread": "each callback cancels its BH and reads again"}
#: Why `aiocore stress` cannot do what a run of the commit's own does.
NOT_NATIVE = {"oneshot": "no traffic schedules one-shot BHs",
              "cancel-reread": "no traffic's callback cancels its BH"}
SIDE_TEXT = {"after": "as the commit left it", "before": "as the commit found it (its parent)",
             "posted": "as posted for review, corrected before it was merged"}


def _cell(per: dict | None) -> str:
    """A checker verdict, with the configs it comes from when not all fail."""
    if per is None:
        return "—"
    w = per["worst"]
    if w == "pass":
        return "pass"
    bad = [c for c, v in per["configs"].items() if v == w]
    return w if len(bad) == len(per["configs"]) else f"{w} ({', '.join(bad)})"


def _one_profile(per: dict) -> str:
    """" [arm-llsc only]" where arm fails and only that profile's runs show it."""
    arm = per.get("arm")
    if not arm or arm["worst"] == "pass":
        return ""
    need = [p for p in ("arm-llsc", "arm-lse") if per.get(p, {}).get("worst") == arm["worst"]]
    return f" [{need[0]} only]" if len(need) == 1 else ""


def _model_cell(e: dict, model: str) -> str:
    """One model's verdicts over the entry's runs; the run named when there are several."""
    runs = [(lab, _cell(per.get(model)) + (_one_profile(per) if model == "arm" else ""))
            for lab, per in e["checker"].items()]
    if len(runs) == 1:
        return runs[0][1]
    return "; ".join(f"{lab}: {v}" for lab, v in runs)


def _found(n: dict) -> str:
    w = n.get("where") or {}
    chaos = w.get("chaos")
    where = ", ".join(x for x in (w.get("path"), w.get("traffic"), f"chaos {chaos}" if chaos not in (None, "off")
                                  else "") if x)
    when = f" after {n['first_finding_s']:.1f} s" if n.get("first_finding_s") is not None else ""
    return f"**{n['verdict']}**{when}" + (f" ({where})" if where else "")


def _native(e: dict) -> str:
    out = []
    for sk, n in e["native"].items():
        if n["verdict"] == "pass":
            txt = f"no finding in {n['seconds']:.0f} s"
            tso = e["checker"].get(sk, {}).get("tso")
            if tso is not None and tso["worst"] != "pass":
                txt += f"; the checker's tso {_cell(tso)} not reproduced"
        else:
            txt = _found(n)
        out.append(txt if len(e["native"]) == 1 else f"{sk}: {txt}")
    mode = e["record"]["mode"]
    if mode:
        out.append(f"the `2015 {mode}` run has no native counterpart ({NOT_NATIVE[mode]})")
    return "; ".join(out) or "—"


def _history(e: dict) -> str:
    """What history reports beside the checker's worst verdict for the same run, and why they differ."""
    rec = e["record"]
    hist = rec["history"] or {}
    if not hist:
        return "silent"
    parts, differs = [], False
    for sk, per in hist.items():
        lab = judge.label(sk, rec["mode"])
        for model, said in per.items():
            got = e["checker"].get(lab, {}).get(model, {}).get("worst")
            differs |= got != said
            where = f"{lab} " if len(e["checker"]) > 1 else ""
            parts.append(f"{where}{model} {said}" + ("" if got == said else f", checker {got}"))
    if not differs:
        return "agrees: " + "; ".join(parts)
    return f"**disagrees**: history {'; '.join(parts)}. {rec['disagreement']}"


def _bug(rec: dict) -> str:
    return f"*{rec['effect']}*: {rec['bug']} Seen on: {rec['arch']}."


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _intro(g: dict) -> list[str]:
    models = g["models"]
    return [
        "# QEMU's AioContext wake-up protocol, 2014–2025, judged by aiocore\n",
        "Each row is one commit of QEMU's `async.c` / `aio-posix.c` (since 2017 `util/async.c`, "
        "`util/aio-posix.c`), encoded as an aiocore strategy in the distribution "
        "[`history/qemu-history`](../history/qemu-history/) (package `aiocore_qemu_history`, one module "
        "per entry, registered under `aiocore.strategies` like any third party's, not among the "
        "built-ins). An entry encodes the protocol as the commit left it (*after*), as it found it "
        "(*before*), or as it was posted for review (*posted*), bottom-half side included. Each module's "
        "`RECORD` holds the full hash, date, title, the bug fixed or introduced, the architecture it was "
        "seen on, and what history reports as verdicts; the strategy declares the checker's verdicts, "
        "and the tests (`tests/test_history.py`) fail when the checker, the declarations, the record "
        "and this page drift apart.\n",
        f"Generated by `{g['command']}` at aiocore {g['aiocore_commit']} on {g['machine']}.\n",
        "**Checker** (`aiocore check NAME --skeleton S`): one column per memory model of the checker, "
        "each cell the worst verdict over the configs the entry supports (`home`, `gsource`, and "
        "`foreign` where the entry allows a second poller), with the failing configs in parentheses "
        "when not all fail. Verdicts: *lost-wakeup*, the home poller asleep in ppoll with a BH "
        "pending and nothing left to wake it; *busy-loop*, a poller that never sleeps again; "
        "*lost-work*, a schedule whose payload (written before it) no later callback reads, or a "
        "callback started twice for one schedule (QEMU's contract, issue 23). They rank pass < "
        "lost-wakeup < busy-loop < lost-work, so a cell shows only the worst finding. Runs: `2015` (a ppoll in every aio_poll) and `polling` (QEMU's aio_poll "
        "since 44277bf9) on each skeleton the entry declares; where the commit is about one-shot BHs or "
        "about a callback that cancels its own BH, also that run (`2015 oneshot`: "
        f"{RUN_NAMES['oneshot']}; `2015 cancel-reread`: {RUN_NAMES['cancel-reread']}; "
        "`aiocore._checker.check_ir(..., bh_mode=\"oneshot\")` or `callback=\"cancel-reread\"`). Models:\n",
        *[f"- `{m}`: {MODEL_NOTES.get(m, 'a model of `aiocore check` (see its --help)')}" for m in models],
        "",
        "**Native x86**: an `aiocore stress -s NAME -d BUDGET --skeleton S` campaign on this machine, "
        f"whose budget is {g['reproduce_seconds']:g} s where the checker's tso verdict on that skeleton "
        f"fails (x86 can show it) and {g['stress_seconds']:g} s elsewhere; it stops at the first finding. "
        "\"No finding\" is what a campaign of that length saw, not a proof.\n",
        "**History**: what the commit messages, their review threads and bug trackers report, as a "
        "verdict per model (`tso`: seen on x86, `arm`: seen on aarch64), beside the checker's verdict for "
        "the same run; where they differ, why. *Silent*: history reports no wake-up or lost-work "
        "failure of this protocol on any named architecture.\n",
    ]


def render(data: dict) -> str:
    """docs/history.md from docs/history.json (nothing else is read)."""
    g = data["generated"]
    models = g["models"]
    L = _intro(g)
    head = ["entry", "commit", "date", "title", "bug, seen on"] + [f"`{m}`" for m in models] + [
        "native x86", "history"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for name, e in data["entries"].items():
        rec = e["record"]
        row = [f"[`{name}`](#{name})", f"`{rec['commit'][:12]}`", rec["date"], _esc(rec["title"]),
               _esc(_bug(rec))]
        row += [_model_cell(e, m) for m in models]
        row += [_native(e), _esc(_history(e))]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if data["problems"]:
        L.append("**The checker and the declarations differ (the tests fail until this is resolved):**\n")
        L += [f"- {p}" for p in data["problems"]]
        L.append("")
    L.append("## The entries\n")
    for name, e in data["entries"].items():
        rec = e["record"]
        L.append(f'<a id="{name}"></a>\n### {name}: {rec["commit"][:8]} "{rec["title"]}"\n')
        L.append(f"- **Commit** `{rec['commit']}`, {rec['author']}, {rec['date']}; this entry encodes "
                 f"the protocol {SIDE_TEXT[rec['side']]}.")
        L.append(f"- **What changed.** {rec['changed']}")
        L.append(f"- **Bug ({rec['effect']}).** {rec['bug']}")
        L.append(f"- **Seen on.** {rec['arch']}.")
        verdicts = "; ".join(f"{lab}: " + ", ".join(f"{m} {_cell(per.get(m))}" for m in models)
                             for lab, per in e["checker"].items())
        L.append(f"- **Checker.** {verdicts}.")
        L.append(f"- **Native (x86).** {_native(e)}.")
        L.append(f"- **History.** {_history(e)}")
        if rec["encoding"]:
            L.append(f"- **Encoding.** {rec['encoding']}")
        if rec["refs"]:
            L.append(f"- **References.** {'; '.join(rec['refs'])}.")
        L.append("")
    L.append("## Read, and not entries\n")
    L.append("| commit | date | title | why not an entry |")
    L.append("|---|---|---|---|")
    for h, date, title, why in NOT_ENTRIES:
        L.append(f"| `{h[:12]}` | {date} | {_esc(title)} | {_esc(why)} |")
    L.append("")
    L.append("## How to read the ARM columns\n")
    L.append(
        "Until a0aa44b4 (2016-01-28) QEMU's `atomic_add/sub/or/and` were gcc's `__sync` builtins, "
        "full barriers; on aarch64, gcc 5 (and 4.9.3, after GCC PR 65697) ends them with `dmb ish`. "
        "The 2015 entries spell each such RMW as the RMW plus that barrier (`aiocore_qemu_history._era`), "
        "so their ARM verdicts describe the binaries of 2015, which survived the aarch64 testing their "
        "messages report. The same hooks compiled with C11 atomics are `qemu-2016-a0aa44b4` (and the "
        "built-ins `unconditional`, `notified`, whose ARM verdicts describe post-2016 builds). The "
        "gcc detail is from the GCC bug, not checked against gcc's history.\n")
    L.append(
        "The 2016–2020 polling skeleton raised `notify_me` before its poll phase and its timeout; "
        "aiocore's `polling` skeleton is 44277bf9's. Entries of that period are judged on the `2015` "
        "skeleton with the notifier's poll handler as `timeout_zero` (reading `notified` after "
        "`notify_me` is raised), which is the 2016 skeleton with at most one poll round. On that "
        "skeleton the hook also runs in GSource prepare, where QEMU never read `notified`; without "
        "that read every `gsource` verdict of these entries is the same "
        "(`tests/test_history.py::test_the_notifier_poll_read_in_gsource_prepare_decides_nothing`).\n")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stress-seconds", type=float, default=10.0,
                    help="budget of a campaign where the checker's tso verdict passes (default 10)")
    ap.add_argument("--reproduce-seconds", type=float, default=120.0,
                    help="budget of a campaign where the checker's tso verdict fails (default 120)")
    ap.add_argument("--reuse-native", action="store_true",
                    help="keep native results from docs/history.json for entries whose hooks and budget did "
                         "not change")
    ap.add_argument("--render-only", action="store_true",
                    help="only write docs/history.md again from docs/history.json")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="checker worker processes (default 1)")
    args = ap.parse_args(argv)
    if args.render_only:
        data = json.loads(JSON.read_text())
    else:
        data = collect(args.stress_seconds, args.reproduce_seconds, args.reuse_native, args.jobs)
        JSON.write_text(json.dumps(data, indent=1) + "\n")
    MD.write_text(render(data))
    print(f"wrote {MD.relative_to(ROOT)}" + ("" if args.render_only else f" and {JSON.relative_to(ROOT)}")
          + f": {len(data['entries'])} entries, {len(data['problems'])} problems", file=sys.stderr)
    for p in data["problems"]:
        print(f"  {p}", file=sys.stderr)
    return 1 if data["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
