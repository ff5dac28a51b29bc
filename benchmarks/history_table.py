#!/usr/bin/env python3
"""docs/history.md: QEMU's AioContext history, 2014-2025, judged by aiocore.

Installs the corpus (history/qemu-history, a distribution of its own) into a
temporary directory, asks `aiocore check` for every entry's verdicts on each
skeleton it declares, under every model of the checker (aiocore._checker.MODELS),
runs a short `aiocore stress` campaign of each on this machine, and writes

    docs/history.md     one row per entry, then the record of each
    docs/history.json   the same data, for the tests and for --reuse-native

    python benchmarks/history_table.py [--stress-seconds 10] [--reuse-native] [--jobs N]

--reuse-native keeps the native result of an entry from the previous
docs/history.json when its fingerprint (the behaviour of its hooks) has not
changed, so that re-rendering after a change of wording costs seconds.
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
    ("924fe1293c3e7a3c787bbdfb351e7f168caee3e9", "2014-06-03",
     "aio: fix qemu_bh_schedule() bh->ctx race condition",
     "a use-after-free of the BH in qemu_bh_schedule; encoded once the bottom-half hooks exist "
     "(plain check-then-set of bh->scheduled: the before of e8d3b1a2)"),
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
     "a skeleton change; its notifier poll handler is the timeout_zero of the 2016-2020 entries "
     "(qemu-2018-b37548fc-before onwards)"),
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


def _fingerprints(env) -> dict:
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "strategies", "--json"], capture_output=True,
                       text=True, env=env, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"aiocore strategies failed: {p.stderr[-2000:]}")
    return {r["name"]: r.get("fingerprint") for r in json.loads(p.stdout)}


def collect(stress_seconds: float, reuse_native: bool, jobs: int) -> dict:
    previous = json.loads(JSON.read_text()).get("entries", {}) if (reuse_native and JSON.exists()) else {}
    with tempfile.TemporaryDirectory(prefix="aiocore-history-") as tmp:
        env = install_corpus.install(Path(tmp))
        decl = judge.declared(env)
        prints = _fingerprints(env)
        models = judge.models()
        print(f"checking {len(decl)} entries ...", file=sys.stderr)
        checker = judge.check_all(env, decl, jobs=jobs)
        entries = {}
        for name, d in decl.items():
            native = {}
            old = previous.get(name, {})
            for sk in d["skeletons"]:
                if old.get("fingerprint") == prints.get(name) and sk in old.get("native", {}):
                    native[sk] = old["native"][sk]
                    continue
                print(f"aiocore stress -s {name} -d {stress_seconds} --skeleton {sk} ...", file=sys.stderr)
                native[sk] = judge.stress(env, name, stress_seconds, sk)
            entries[name] = {
                "record": d["record"], "origin": d["origin"], "doc": d["doc"],
                "skeletons": d["skeletons"], "fingerprint": prints.get(name),
                "declared": {judge.label(sk, m): judge.expectation(d, sk, m) for sk, m in judge.runs_of(d)},
                "declared_configs": d["expected_configs"],
                "checker": {judge.label(sk, m): checker[judge.label(sk, m)][name] for sk, m in judge.runs_of(d)},
                "native": native,
            }
        problems = judge.mismatches(decl, checker) + judge.unexplained(decl)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {
        "generated": {
            "command": "python benchmarks/history_table.py" + (f" --stress-seconds {stress_seconds:g}"),
            "aiocore_commit": commit, "models": list(models), "stress_seconds": stress_seconds,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        },
        "problems": problems,
        "entries": entries,
    }


# --- rendering --------------------------------------------------------------------


def _cell(per: dict | None) -> str:
    """A checker verdict, with the configs it comes from when not all fail."""
    if per is None:
        return "—"
    w = per["worst"]
    if w == "pass":
        return "pass"
    bad = [c for c, v in per["configs"].items() if v == w]
    return w if len(bad) == len(per["configs"]) else f"{w} ({', '.join(bad)})"


def _native(e: dict) -> str:
    out = []
    for sk, n in e["native"].items():
        if n["verdict"] == "pass":
            tso = e["checker"].get(sk, {}).get("tso")
            miss = tso is not None and tso["worst"] != "pass"
            txt = f"pass ({n['seconds']:.0f} s" + ("; the tso counterexample not reproduced)" if miss else ")")
        else:
            where = n.get("where") or ""
            when = f" after {n['first_finding_s']:.1f} s" if n.get("first_finding_s") is not None else ""
            txt = f"{n['verdict']}{when}" + (f" ({where})" if where else "")
        out.append(txt if len(e["native"]) == 1 else f"{sk}: {txt}")
    return "; ".join(out) or "—"


def _history(name: str, e: dict) -> str:
    rec = e["record"]
    hist = rec["history"] or {}
    if not hist:
        return "silent"
    parts, differs = [], False
    for sk, per in hist.items():
        for model, said in per.items():
            got = e["declared"].get(judge.label(sk, rec["mode"]), {}).get(model)
            same = got == said
            differs |= not same
            parts.append(f"{model}: {said}" + ("" if same else f" (checker: {got})"))
    head = ("**disagrees**: " if differs else "agrees: ") + "; ".join(parts)
    return head + (f". {rec['disagreement']}" if differs and rec["disagreement"] else "")


def _mode_cell(e: dict) -> str:
    """The checker on the run the commit is about, when it is not the default one."""
    rec = e["record"]
    if not rec["mode"]:
        return "—"
    what = {"oneshot": "every schedule a one-shot BH",
            "cancel-reread": "callbacks cancel their BH and read again"}[rec["mode"]]
    runs = [(lab, per) for lab, per in e["checker"].items() if lab.endswith(" " + rec["mode"])]
    return f"{what}: " + "; ".join(
        (f"{lab.split()[0]}: " if len(runs) > 1 else "") + ", ".join(f"{m} {_cell(v)}" for m, v in per.items())
        for lab, per in runs)


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(data: dict) -> str:
    g = data["generated"]
    models = g["models"]
    cols = [(sk, m) for sk in judge.SKELETONS for m in models]
    L = []
    L.append("# QEMU's AioContext wake-up protocol, 2014–2025, judged by aiocore\n")
    L.append(
        "Each row is one commit of QEMU's `util/async.c` / `util/aio-posix.c` history (before 2017: "
        "`async.c`, `aio-posix.c`), encoded as an aiocore strategy in the distribution "
        "[`history/qemu-history`](../history/qemu-history/) (package `aiocore_qemu_history`, one "
        "module per entry, registered under `aiocore.strategies` like any third party's, not among "
        "the built-ins). An entry encodes the protocol as the commit left it (*after*), as it found "
        "it (*before*), or as it was posted and corrected in review (*posted*). Each module's "
        "`RECORD` gives the full hash, date, title, the bug fixed or introduced and the architecture "
        "it was seen on, and what history reports, as verdicts.\n")
    L.append(
        f"Generated by `{g['command']}` at aiocore {g['aiocore_commit']} on {g['machine']}. "
        f"Checker columns: the worst verdict over the configs the entry supports (`home`, `gsource`, "
        f"and `foreign` where the entry allows a second poller), with the failing configs in "
        f"parentheses, for the models {', '.join(f'`{m}`' for m in models)} of `aiocore check`, on "
        f"each skeleton the entry declares (`2015`: a ppoll per aio_poll; `polling`: QEMU's aio_poll "
        f"since 44277bf9); — where it declares none. The commit's own run: where the commit is about "
        f"one-shot BHs or a callback that cancels its BH, the checker's run with notifiers doing "
        f"that (`aiocore._checker.check_ir(..., bh_mode=\"oneshot\")` or `callback=\"cancel-reread\"`). Native: one `aiocore stress -s NAME -d "
        f"{g['stress_seconds']:g}` campaign on this machine (x86-64, so TSO). History: what the commit "
        f"messages, their threads and bug trackers report, as a verdict per model (`tso`: seen on "
        f"x86, `arm`: seen on aarch64), and the reason wherever the checker says otherwise.\n")
    head = ["entry", "commit", "date", "title", "what changed"] + [f"{sk} {m}" for sk, m in cols] + [
        "the commit's own run", "native x86", "history"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for name, e in data["entries"].items():
        rec = e["record"]
        row = [f"`{name}`", f"[`{rec['commit'][:8]}`](#{name})", rec["date"], _esc(rec["title"]),
               _esc(rec["changed"])]
        row += [_cell(e["checker"].get(sk, {}).get(m)) for sk, m in cols]
        row += [_mode_cell(e), _native(e), _esc(_history(name, e))]
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
                 f"the protocol {dict(after='as the commit left it', before='as the commit found it', posted='as posted for review, never merged')[rec['side']]}.")
        L.append(f"- **What changed.** {rec['changed']}")
        L.append(f"- **Bug ({rec['effect']}).** {rec['bug']}")
        L.append(f"- **Seen on.** {rec['arch']}.")
        verdicts = "; ".join(
            f"{sk}: " + ", ".join(f"{m} {_cell(per)}" for m, per in e["checker"][sk].items())
            for sk in e["checker"])
        L.append(f"- **Checker.** {verdicts}.")
        L.append(f"- **Native (x86).** {_native(e)}.")
        L.append(f"- **History.** {_history(name, e)}")
        if rec["encoding"]:
            L.append(f"- **Encoding.** {rec['encoding']}")
        if rec["refs"]:
            L.append(f"- **References.** {'; '.join(rec['refs'])}.")
        L.append("")
    L.append("## Read, and not entries\n")
    L.append("| commit | date | title | why not an entry |")
    L.append("|---|---|---|---|")
    for h, date, title, why in NOT_ENTRIES:
        L.append(f"| `{h[:8]}` | {date} | {_esc(title)} | {_esc(why)} |")
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
        "skeleton with a `timeout_zero` hook (the notifier's poll handler, read after `notify_me` is "
        "raised), which is the 2016 skeleton with at most one poll round.\n")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stress-seconds", type=float, default=10.0,
                    help="budget of each entry's `aiocore stress` campaign (default 10)")
    ap.add_argument("--reuse-native", action="store_true",
                    help="keep native results from docs/history.json for entries whose hooks did not change")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="checker worker processes (default 1)")
    args = ap.parse_args(argv)
    data = collect(args.stress_seconds, args.reuse_native, args.jobs)
    JSON.write_text(json.dumps(data, indent=1) + "\n")
    MD.write_text(render(data))
    print(f"wrote {MD.relative_to(ROOT)} and {JSON.relative_to(ROOT)}: {len(data['entries'])} entries, "
          f"{len(data['problems'])} problems", file=sys.stderr)
    for p in data["problems"]:
        print(f"  {p}", file=sys.stderr)
    return 1 if data["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
