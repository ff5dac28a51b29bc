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

import install_corpus  # noqa: E402
import judge  # noqa: E402

DIST_DIR = ROOT / "history" / "qemu-history"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The corpus installed into its own directory; (env, declarations)."""
    env = install_corpus.install(tmp_path_factory.mktemp("qemu-history"))
    return env, judge.declared(env)


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


def test_corpus_is_a_distribution_of_its_own(corpus):
    """The entries come from aiocore-qemu-history's entry points, none from aiocore's built-ins."""
    env, decl = corpus
    builtins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["aiocore.strategies"]
    assert not set(builtins) & set(decl)
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "strategies", "--json"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    for name in decl:
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["source"] == f"{judge.DIST}[{name}]"
    # The source tree's pyproject lists exactly the modules records() walks.
    _, _, package, eps = install_corpus.metadata()
    modules = {t.split(":")[0].rsplit(".", 1)[1] for t in eps.values()}
    text = (DIST_DIR / "src" / package / "__init__.py").read_text()
    assert modules == set(re.findall(r'^\s+"(qemu_\w+)",$', text, re.M))


RUNS = [("2015", ""), ("polling", ""), ("2015", "oneshot"), ("2015", "cancel-reread")]


@pytest.mark.parametrize("skeleton,mode", RUNS, ids=[judge.label(*r).replace(" ", "-") for r in RUNS])
def test_checker_gives_each_entry_its_declared_verdicts(corpus, skeleton, mode):
    """The checker gives every entry, per model and config, the verdicts it declares for this run."""
    env, decl = corpus
    names = [n for n, d in decl.items() if (skeleton, mode) in judge.runs_of(d)]
    assert names, f"no entry is judged on {judge.label(skeleton, mode)}"
    lab = judge.label(skeleton, mode)
    results = {lab: judge.summarize(judge.check(env, names, skeleton, mode=mode))}
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


def test_docs_history_is_generated_from_the_corpus(corpus):
    """docs/history.md names every entry's full hash, and its JSON beside it holds the declared verdicts."""
    _, decl = corpus
    md = (ROOT / "docs" / "history.md").read_text()
    data = json.loads((ROOT / "docs" / "history.json").read_text())
    assert list(data["entries"]) == list(decl)
    for name, d in decl.items():
        assert d["record"]["commit"] in md, name
        for sk, mode in judge.runs_of(d):
            got = data["entries"][name]["checker"][judge.label(sk, mode)]
            for model, want in judge.expectation(d, sk, mode).items():
                assert got[model]["worst"] == want, (name, sk, mode, model)
        assert data["entries"][name]["native"], f"{name}: no native run recorded"
