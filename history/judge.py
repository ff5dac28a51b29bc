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
    from aiocore._checker import MODELS

    return tuple(MODELS)


def skeletons_of(d: dict) -> tuple:
    """The skeletons an entry is judged on: those it declares or states verdicts for."""
    return tuple(sk for sk in SKELETONS if sk in d["skeletons"] or sk in d["expected_skeletons"])


def expectation(d: dict, skeleton: str) -> dict:
    """{model: verdict} the entry declares on a skeleton (worst over configs)."""
    return dict(d["expected"]) if skeleton == "2015" else dict(d["expected_skeletons"].get(skeleton, {}))


def check(env: dict, names, skeleton: str, model_names=None, jobs: int = 1, timeout: float = 1800) -> list:
    """`aiocore check NAMES --skeleton S --json`: one row per (strategy, model, config)."""
    names = list(names)
    if not names:
        return []
    args = [sys.executable, "-m", "aiocore._cli", "check", *names, "--skeleton", skeleton, "--json",
            "-j", str(jobs)]
    if model_names:
        args += ["--model", ",".join(model_names)]
    p = _run(args, env, timeout)
    try:
        rows = json.loads(p.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"aiocore check failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}") from None
    bad = [r for r in rows if r["verdict"] in ("error", "unknown")]
    if bad:
        raise RuntimeError("aiocore check could not judge: " + "; ".join(
            f"{r['strategy']} {r['model']} {r['config']}: {r.get('error') or r.get('stopped_by')}" for r in bad))
    return rows


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


def mismatches(decl: dict, results: dict, only: tuple = SKELETONS) -> list[str]:
    """Where the checker's verdicts differ from what the entries declare.

    results: {skeleton: summarize(rows)}.  Each declared {model: verdict} is
    compared with the worst over the configs run; on the 2015 skeleton each
    expected_configs entry with that config's verdict.  `only`: the skeletons
    to compare (the others are not looked at)."""
    out = []
    for name, d in decl.items():
        for sk in skeletons_of(d):
            if sk not in only:
                continue
            got = results.get(sk, {}).get(name)
            if got is None:
                out.append(f"{name} ({sk}): not checked")
                continue
            for model, want in expectation(d, sk).items():
                if model not in got:
                    out.append(f"{name} ({sk}) {model}: declared {want}, not checked")
                elif got[model]["worst"] != want:
                    out.append(f"{name} ({sk}) {model}: declared {want}, checker says "
                               f"{got[model]['worst']} {got[model]['configs']}")
            if sk == "2015":
                for config, per in d["expected_configs"].items():
                    for model, want in per.items():
                        v = got.get(model, {}).get("configs", {}).get(config)
                        if v != want:
                            out.append(f"{name} ({sk}) {model} {config}: declared {want}, checker says {v}")
    return out


def history_disagreements(decl: dict) -> list[tuple[str, str, str, str, str]]:
    """(strategy, skeleton, model, history's verdict, declared verdict) where they differ."""
    out = []
    for name, d in decl.items():
        rec = d["record"] or {}
        for sk, per in (rec.get("history") or {}).items():
            exp = expectation(d, sk)
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
