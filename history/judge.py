# Judge the QEMU history corpus: what each entry declares, what aiocore's
# checker (and natively, `aiocore stress`) says, and where either differs
# from the historical record.  Shared by tests/test_history.py and
# benchmarks/history_table.py (which writes docs/history.md).
#
# Everything runs in fresh processes against an installed copy of the
# distribution (install_corpus.install), as a user's would: the entries are
# found through the "aiocore.strategies" entry points of the distribution
# "aiocore-qemu-history", never imported from the source tree.
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

DIST = "aiocore-qemu-history"
SKELETONS = ("2015", "polling")

_DECLARED = textwrap.dedent("""
    import json, sys
    from importlib import import_module
    from importlib.metadata import distribution
    import attrs
    dist = distribution(sys.argv[1])
    out = {}
    for ep in dist.entry_points:
        if ep.group != "aiocore.strategies":
            continue
        cls = ep.load()
        rec = getattr(import_module(cls.__module__), "RECORD", None)
        out[ep.name] = {
            "class": cls.__name__, "module": cls.__module__, "doc": cls.__doc__ or "",
            "origin": cls.origin, "skeletons": list(cls.skeletons),
            "expected": dict(cls.expected), "expected_configs": dict(cls.expected_configs),
            "expected_skeletons": {k: dict(v) for k, v in cls.expected_skeletons.items()},
            "foreign_pollers": bool(cls.foreign_pollers),
            "record": attrs.asdict(rec) if rec is not None else None,
        }
    order = import_module(out[next(iter(out))]["module"].split(".")[0]).MODULES if out else ()
    rank = {m: i for i, m in enumerate(order)}
    print(json.dumps(dict(sorted(out.items(), key=lambda kv: rank.get(kv[1]["module"].rsplit(".", 1)[1], 1e9)))))
""")


def _run(args, env, timeout):
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=env.get("HOME", "/"))


def declared(env: dict) -> dict:
    """{strategy: its declarations and RECORD}, in history order."""
    p = _run([sys.executable, "-c", _DECLARED, DIST], env, 120)
    if p.returncode != 0:
        raise RuntimeError(f"cannot load the corpus: {p.stderr.strip()}")
    return json.loads(p.stdout)


def models() -> tuple:
    """The checker's memory models, in its order."""
    from aiocore._checker import DEFAULT_MODELS as MODELS  # arm: the union of the two profiles

    return tuple(MODELS)


def skeletons_of(d: dict) -> tuple:
    """The skeletons an entry is judged on: those it declares or states verdicts for."""
    return tuple(sk for sk in SKELETONS if sk in d["skeletons"] or sk in d["expected_skeletons"])


def runs_of(d: dict) -> list[tuple[str, str]]:
    """(skeleton, mode) of every checker run an entry is judged by: `aiocore
    check`'s default run on each skeleton, and its RECORD's mode (one-shot
    schedules, or callbacks that cancel and re-read) where it has one."""
    out = [(sk, "") for sk in skeletons_of(d)]
    rec = d["record"] or {}
    out += [(sk, rec["mode"]) for sk in SKELETONS if rec.get("mode") and sk in rec["mode_expected"]]
    return out


def label(skeleton: str, mode: str = "") -> str:
    return f"{skeleton} {mode}" if mode else skeleton


def expectation(d: dict, skeleton: str, mode: str = "") -> dict:
    """{model: verdict} the entry declares for a run (worst over configs)."""
    if mode:
        return dict(d["record"]["mode_expected"].get(skeleton, {}))
    return dict(d["expected"]) if skeleton == "2015" else dict(d["expected_skeletons"].get(skeleton, {}))


def check(env: dict, names, skeleton: str, model_names=None, jobs: int = 1, timeout: float = 1800,
          mode: str = "") -> list:
    """One row per (strategy, model, config): `aiocore check NAMES --skeleton S
    --json`, or, for a mode the command line does not offer, the checker's
    API in a fresh process (_MODE_CHILD)."""
    names = list(names)
    if not names:
        return []
    if mode:
        args = [sys.executable, "-c", _MODE_CHILD, skeleton, mode, ",".join(model_names or models()), *names]
    else:
        args = [sys.executable, "-m", "aiocore._cli", "check", *names, "--skeleton", skeleton, "--json",
                "-j", str(jobs)]
        if model_names:
            args += ["--model", ",".join(model_names)]
    p = _run(args, env, timeout)
    try:
        rows = json.loads(p.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"the checker failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}") from None
    bad = [r for r in rows if r["verdict"] in ("error", "unknown")]
    if bad:
        raise RuntimeError("the checker could not judge: " + "; ".join(
            f"{r['strategy']} {r['model']} {r['config']}: {r.get('error') or r.get('stopped_by')}" for r in bad))
    return rows


_MODE_CHILD = textwrap.dedent("""
    import json, sys
    from aiocore._checker import DEFAULT_BOUNDS, check_ir, supported_configs
    from aiocore._compiler import _plugins
    skeleton, mode, model_names, *names = sys.argv[1:]
    kw = {"bh_mode": "oneshot"} if mode == "oneshot" else {"callback": mode}
    rows = []
    for name in names:
        ir = _plugins.get(name).ir
        for model in model_names.split(","):
            for config in supported_configs(ir, skeleton):
                r = check_ir(ir, model, config, DEFAULT_BOUNDS, want_trace=False, skeleton=skeleton, **kw)
                rows.append({"strategy": name, "model": model, "config": config, "verdict": r.verdict,
                             "states": r.states, "mode": mode, "skeleton": skeleton})
                for part in r.parts:  # arm: its profiles, as `aiocore check --json` lists them
                    rows.append({"strategy": name, "model": part.model, "config": config,
                                 "verdict": part.verdict, "states": part.states, "mode": mode,
                                 "skeleton": skeleton, "part_of": "arm"})
    print(json.dumps(rows))
""")


def check_all(env: dict, decl: dict, jobs: int = 1, names=None) -> dict:
    """{label(skeleton, mode): summarize(rows)} over every run of every entry."""
    plan: dict = {}
    for name, d in decl.items():
        if names is None or name in names:
            for run in runs_of(d):
                plan.setdefault(run, []).append(name)
    return {label(sk, mode): summarize(check(env, ns, sk, jobs=jobs, mode=mode))
            for (sk, mode), ns in plan.items()}


def summarize(rows: list) -> dict:
    """{strategy: {model: {"worst": verdict, "configs": {config: verdict}}}}."""
    from aiocore._checker import worst

    out: dict = {}
    for r in rows:
        m = out.setdefault(r["strategy"], {}).setdefault(r["model"], {"configs": {}})
        m["configs"][r["config"]] = r["verdict"]
    for per in out.values():
        for m in per.values():
            m["worst"] = worst(m["configs"].values())
    return out


def mismatches(decl: dict, results: dict, only=None) -> list[str]:
    """Where the checker's verdicts differ from what the entries declare.

    results: {label(skeleton, mode): summarize(rows)}.  Each declared
    {model: verdict} is compared with the worst over the configs run; on the
    2015 skeleton's default run each expected_configs entry with that
    config's verdict.  `only`: the labels to compare (default: every run)."""
    out = []
    for name, d in decl.items():
        for sk, mode in runs_of(d):
            lab = label(sk, mode)
            if only is not None and lab not in only:
                continue
            got = results.get(lab, {}).get(name)
            if got is None:
                out.append(f"{name} ({lab}): not checked")
                continue
            for model, want in expectation(d, sk, mode).items():
                if model not in got:
                    out.append(f"{name} ({lab}) {model}: declared {want}, not checked")
                elif got[model]["worst"] != want:
                    out.append(f"{name} ({lab}) {model}: declared {want}, checker says "
                               f"{got[model]['worst']} {got[model]['configs']}")
            if lab == "2015":
                for config, per in d["expected_configs"].items():
                    for model, want in per.items():
                        v = got.get(model, {}).get("configs", {}).get(config)
                        if v != want:
                            out.append(f"{name} ({lab}) {model} {config}: declared {want}, checker says {v}")
    return out


def history_disagreements(decl: dict) -> list[tuple[str, str, str, str, str]]:
    """(strategy, skeleton, model, history's verdict, declared verdict) where
    they differ.  History speaks of the RECORD's mode when it has one."""
    out = []
    for name, d in decl.items():
        rec = d["record"] or {}
        for sk, per in (rec.get("history") or {}).items():
            exp = expectation(d, sk, rec.get("mode", ""))
            for model, said in per.items():
                if exp.get(model) != said:
                    out.append((name, sk, model, said, exp.get(model)))
    return out


def unexplained(decl: dict) -> list[str]:
    """Disagreements with history that the RECORD does not explain."""
    return [f"{n} ({sk}) {m}: history reports {h}, the entry declares {e}, and its RECORD has no "
            f"`disagreement`"
            for n, sk, m, h, e in history_disagreements(decl) if not decl[n]["record"].get("disagreement")]


def stress(env: dict, name: str, seconds: float, skeleton: str = "2015", timeout: float | None = None) -> dict:
    """A short `aiocore stress` campaign of one entry on this machine (x86)."""
    args = [sys.executable, "-m", "aiocore._cli", "stress", "-s", name, "-d", str(seconds), "--json",
            "--skeleton", skeleton]
    p = _run(args, env, timeout or seconds * 4 + 120)
    try:
        (res,) = json.loads(p.stdout)
    except (json.JSONDecodeError, ValueError):
        raise RuntimeError(f"aiocore stress -s {name} failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}") from None
    return {k: res.get(k) for k in ("verdict", "findings", "seconds", "first_finding_s", "where",
                                    "checker_says", "reproduces", "headlines", "load")}
