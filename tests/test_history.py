# QEMU's history as a corpus (issue 23, item 4): the distribution in
# history/qemu-history, installed the way a third party's is
# (history/install_corpus.py), every entry judged by the checker against
# what it declares, every declaration held against the historical record,
# and docs/history.md held against both.
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "history"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import history_table  # noqa: E402
import install_corpus  # noqa: E402
import judge  # noqa: E402
from aiocore._checker import worst  # noqa: E402

DIST_DIR = ROOT / "history" / "qemu-history"
REGENERATE = "python benchmarks/history_table.py --reuse-native"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The corpus installed into its own directory; (env, declarations)."""
    env = install_corpus.install(tmp_path_factory.mktemp("qemu-history"))
    return env, judge.declared(env)


@pytest.fixture(scope="module")
def listed(corpus):
    """`aiocore strategies --json` with the corpus installed: {name: row}."""
    env, _ = corpus
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "strategies", "--json"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return {r["name"]: r for r in json.loads(p.stdout)}


def test_corpus_spans_2014_to_2025_with_full_records(corpus):
    """At least 15 entries from 2014 to 2025, each with a full hash, date, title, bug and architecture named."""
    _, decl = corpus
    assert len(decl) >= 15, f"only {len(decl)} entries: {list(decl)}"
    years = sorted(d["record"]["date"][:4] for d in decl.values())
    assert years[0] == "2014" and years[-1] == "2025", years
    for name, d in decl.items():
        rec = d["record"]
        assert rec is not None, f"{name}: its module has no RECORD"
        assert rec["strategy"] == name
        assert re.fullmatch(r"qemu-\d{4}-[0-9a-f]{8}(-[a-z0-9]+)?", name), name
        assert name.startswith(f"qemu-{rec['date'][:4]}-{rec['commit'][:8]}"), name
        assert rec["commit"] in d["origin"] and rec["date"][:4] in d["origin"], d["origin"]
        for field in ("title", "author", "changed", "bug", "arch"):
            assert rec[field].strip(), f"{name}: empty {field}"
        assert d["doc"].strip(), f"{name}: no docstring"


def test_corpus_is_a_distribution_of_its_own(corpus, listed):
    """The entries come from aiocore-qemu-history's entry points, none from aiocore's built-ins."""
    env, decl = corpus
    builtins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["aiocore.strategies"]
    assert not set(builtins) & set(decl)
    rows = listed
    for name in decl:
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["source"] == f"{judge.DIST}[{name}]"
    # The source tree's pyproject lists exactly the modules records() walks.
    _, _, package, eps = install_corpus.metadata()
    modules = {t.split(":")[0].rsplit(".", 1)[1] for t in eps.values()}
    text = (DIST_DIR / "src" / package / "__init__.py").read_text()
    assert modules == set(re.findall(r'^\s+"(qemu_\w+)",$', text, re.M))


def _behaviour(env, name) -> dict:
    """`aiocore show NAME --ir` without what does not change behaviour: the name, the fences'
    `pairs` comments, the temporaries' names (numbered in order of appearance) and the fingerprint."""
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "show", name, "--ir"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    ir = json.loads(p.stdout)
    for key in ("name", "fingerprint"):
        ir.pop(key, None)
    text = re.sub(r'"pairs": "[^"]*"', '"pairs": ""', json.dumps(ir, sort_keys=True))
    names: dict = {}
    return json.loads(re.sub(r'"v\d+"', lambda m: names.setdefault(m.group(0), f'"t{len(names)}"'), text))


def test_upstream_today_is_the_last_entry(corpus):
    """The built-in standing for upstream today (always-notified) has exactly the hooks of the corpus's
    2025 entry, the last change to util/async.c's protocol."""
    env, decl = corpus
    last = list(decl)[-1]
    assert last == "qemu-2025-5142397c" and "always-notified" in decl[last]["record"]["refs"][-1]
    assert _behaviour(env, "always-notified") == _behaviour(env, last)
    assert _behaviour(env, "always-notified") != _behaviour(env, "qemu-2020-44277bf9")  # the check can fail


_GSOURCE_CHILD = """
import json, sys
from importlib import import_module
from aiocore._checker import check_ir
from aiocore._compiler import _plugins
from aiocore._compiler._strategy import describe
out = {}
for name in sys.argv[1:]:
    cls = _plugins.get(name).cls
    bare = type(cls.__name__ + "NoPrepareRead", (cls,), {"name": name + "-bare",
                "compute_timeout": lambda s: 0})
    out[name] = [{m: check_ir(describe(c), m, "gsource", want_trace=False).verdict
                  for m in ("sc", "tso", "arm")} for c in (cls, bare)]
print(json.dumps(out))
"""


def test_the_notifier_poll_read_in_gsource_prepare_decides_nothing(corpus):
    """The entries that read `notified` with timeout_zero (on the 2015 skeleton, the compute_timeout
    site: the 2016-2020 notifier poll handler) also read it in GSource prepare, which QEMU never did;
    without that read every gsource verdict is the same."""
    env, decl = corpus
    uses = [n for n in decl if _uses_timeout_zero(env, n)]
    assert uses, "no entry reads notified with timeout_zero"
    p = subprocess.run([sys.executable, "-c", _GSOURCE_CHILD, *uses], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    for name, (with_read, without) in json.loads(p.stdout).items():
        assert with_read == without, (name, with_read, without)


def _uses_timeout_zero(env, name) -> bool:
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "show", name, "--ir"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return bool(json.loads(p.stdout)["hooks"].get("timeout_zero"))


RUNS = [("2015", ""), ("polling", ""), ("2015", "oneshot"), ("2015", "cancel-reread")]


@pytest.mark.parametrize("skeleton,mode", RUNS, ids=[judge.label(*r).replace(" ", "-") for r in RUNS])
def test_checker_gives_each_entry_its_declared_verdicts(corpus, skeleton, mode):
    """The checker gives every entry, per model and config, the verdicts it declares for this run."""
    env, decl = corpus
    names = [n for n, d in decl.items() if (skeleton, mode) in judge.runs_of(d)]
    assert names, f"no entry is judged on {judge.label(skeleton, mode)}"
    lab = judge.label(skeleton, mode)
    # Only the models the entries declare verdicts for (a model the checker
    # gains later is run by the generator, not here).
    declared = {m for n in names for m in judge.expectation(decl[n], skeleton, mode)}
    models = [m for m in judge.models() if m in declared]
    results = {lab: judge.summarize(judge.check(env, names, skeleton, model_names=models, mode=mode))}
    assert judge.mismatches({n: decl[n] for n in names}, results, only=(lab,)) == []


def test_a_wrong_declaration_is_caught(tmp_path):
    """A copy of the corpus with one entry's ARM verdict flipped is reported as a mismatch."""
    dist = tmp_path / "dist"
    shutil.copytree(DIST_DIR, dist, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    mod = dist / "src" / "aiocore_qemu_history" / "qemu_2016_a0aa44b4.py"
    text = mod.read_text()
    planted = text.replace('expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}',
                           'expected = {"sc": "pass", "tso": "pass", "arm": "pass"}', 1)
    assert planted != text
    mod.write_text(planted)
    env = install_corpus.install(tmp_path / "site", dist)
    decl = {k: v for k, v in judge.declared(env).items() if k == "qemu-2016-a0aa44b4"}
    results = judge.check_all(env, decl)
    found = judge.mismatches(decl, results)
    assert found and all(m.startswith("qemu-2016-a0aa44b4 (2015) arm") for m in found), found
    assert "declared pass, checker says lost-wakeup" in found[0]


def test_every_disagreement_with_history_is_explained(corpus):
    """Where an entry declares another verdict than history reports, its RECORD says why."""
    _, decl = corpus
    assert judge.unexplained(decl) == []
    # ...and a RECORD that explains a disagreement has one to explain.
    disagreeing = {n for n, *_ in judge.history_disagreements(decl)}
    for name, d in decl.items():
        if d["record"]["disagreement"]:
            assert name in disagreeing, f"{name}: a `disagreement` but the verdicts agree with history"


def test_unexplained_disagreement_is_reported():
    """judge.unexplained names an entry whose verdict contradicts history with no sentence."""
    decl = {"qemu-2099-deadbeef": {
        "expected": {"sc": "pass", "tso": "pass", "arm": "pass"}, "expected_skeletons": {},
        "record": {"history": {"2015": {"arm": "lost-wakeup"}}, "disagreement": "", "mode": ""}}}
    (msg,) = judge.unexplained(decl)
    assert "qemu-2099-deadbeef (2015) arm: history reports lost-wakeup" in msg


def test_docs_history_md_is_its_generators_output():
    """docs/history.md is exactly benchmarks/history_table.py's rendering of docs/history.json."""
    data = json.loads((ROOT / "docs" / "history.json").read_text())
    md = (ROOT / "docs" / "history.md").read_text()
    assert md == history_table.render(data), (
        "docs/history.md is not render(docs/history.json): python benchmarks/history_table.py --render-only")


def test_docs_history_json_is_the_corpus_judged_today(corpus, listed):
    """docs/history.json holds every entry's current RECORD and hooks, every model of the checker, the
    declared verdicts per run and a native result per skeleton, with no problem left."""
    _, decl = corpus
    data = json.loads((ROOT / "docs" / "history.json").read_text())
    assert data["problems"] == []
    assert data["generated"]["models"] == list(judge.models()), f"the checker's models changed: {REGENERATE}"
    assert list(data["entries"]) == list(decl), REGENERATE
    g = data["generated"]
    for name, d in decl.items():
        e = data["entries"][name]
        assert e["record"] == json.loads(json.dumps(d["record"])), f"{name}: RECORD changed: {REGENERATE}"
        assert e["fingerprint"] == listed[name]["fingerprint"], f"{name}: its hooks changed: {REGENERATE}"
        assert list(e["checker"]) == [judge.label(sk, m) for sk, m in judge.runs_of(d)], name
        for sk, mode in judge.runs_of(d):
            got = e["checker"][judge.label(sk, mode)]
            # arm's runs list their profiles too (the cells name a failure only one of them shows)
            profiles = {"arm-llsc", "arm-lse"} if "arm" in g["models"] else set()
            assert set(got) == set(g["models"]) | profiles, (name, sk, mode)
            if profiles:
                assert got["arm"]["worst"] == worst(got[p]["worst"] for p in profiles), (name, sk, mode)
            for model, want in judge.expectation(d, sk, mode).items():
                assert got[model]["worst"] == want, (name, sk, mode, model)
        assert list(e["native"]) == list(d["skeletons"]), f"{name}: no native run on each skeleton"
        for sk, n in e["native"].items():
            tso = e["checker"][sk]["tso"]
            assert n["budget"] == history_table.budget_of(e["checker"][sk], g["stress_seconds"],
                                                          g["reproduce_seconds"])
            assert n["verdict"] in ("pass", "lost-wakeup", "busy-loop", "lost-work"), (name, sk, n)
            # x86 is TSO: a finding on this machine that the checker's tso model rules out is the
            # tool contradicting itself.
            assert n["verdict"] == "pass" or tso["worst"] != "pass", (name, sk, n, tso)


def test_render_states_every_disagreement_and_model(corpus):
    """Each row of docs/history.md names its full hash prefix, a column per model, and the RECORD's
    sentence wherever the checker's verdict differs from what history reports."""
    _, decl = corpus
    data = json.loads((ROOT / "docs" / "history.json").read_text())
    md = history_table.render(data)
    header = next(ln for ln in md.splitlines() if ln.startswith("| entry |"))
    assert all(f"| `{m}` |" in header for m in data["generated"]["models"]), header
    disagreeing = {n for n, *_ in judge.history_disagreements(decl)}
    for name, d in decl.items():
        (row,) = [ln for ln in md.splitlines() if ln.startswith(f"| [`{name}`]")]
        assert d["record"]["commit"][:12] in row and d["record"]["date"] in row
        if name in disagreeing:
            assert "**disagrees**" in row and history_table._esc(d["record"]["disagreement"]) in row, name
        else:
            assert "**disagrees**" not in row, name
