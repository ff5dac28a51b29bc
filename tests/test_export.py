"""ARM counterexamples as litmus programs (aiocore._checker._export) and `aiocore check --herd`."""
import json
import os
import re

import pytest

from aiocore._checker import Bounds, check_ir, supported_configs, _matrix
from aiocore._checker import _axiomatic as A
from aiocore._checker import _herd as H
from aiocore._checker import litmus as L
from aiocore._checker import _export as E
from aiocore._checker._export import EVENT, LitmusExport, export
from aiocore._checker._program import DONE
from aiocore._checker._window import explorer
from aiocore._checker._litmus_ops import LOADS, RMWS, STORES, matches, outcome_filter, parse
from aiocore._cli._main import main
from aiocore._compiler import _plugins

needs_herd = pytest.mark.skipif(H.herd_binary() is None, reason="herd7 not installed")

SMALL = Bounds(1, 1, 1, 1)
PROFILES = ("arm-llsc", "arm-lse")
BUILTINS = sorted(i.name for i in _plugins.registry()
                  if i.ir is not None and i.source.startswith("aiocore["))
#: Accesses the axiomatic checker is asked about at most: it enumerates a
#: reads-from source per load (only those giving the value asked for) and a
#: coherence order per location, which stays in seconds up to about this size.
AXIOMATIC_MAX = 40
#: herd7 enumerates its candidates about 3x more per two accesses: it is
#: asked about programs up to this size (at these bounds every counterexample
#: has at most 13: bug1's busy loops, 0.3-3.5 s each); larger ones are for
#: benchmarks/herd_counterexamples.py.
HERD_MAX = 20


def _accesses(x: LitmusExport) -> int:
    return sum(1 for ops in x.threads for op in ops if op[0] in LOADS + STORES + RMWS)


def _failures(name, bounds=SMALL):
    """[(skeleton, config, profile, CheckResult)] of every failing ARM-profile run of a strategy."""
    info = _plugins.get(name)
    out = []
    for sk in _matrix.judged_skeletons(info):
        for c in supported_configs(info.ir, sk):
            for m in PROFILES:
                r = check_ir(info.ir, m, c, bounds, skeleton=sk, export=True)
                if r.verdict not in ("pass", "unknown"):
                    out.append((sk, c, m, r))
    return out


@pytest.mark.parametrize("name", BUILTINS)
def test_exports_are_allowed_by_the_axiomatic_arm_models(name):
    """Each ARM counterexample's litmus program is allowed by the axiomatic model of its profile."""
    skipped = []
    for sk, c, m, r in _failures(name):
        x = r.litmus[m]
        assert isinstance(x, LitmusExport), (sk, c, m, x)
        assert x.profile == m and x.regs
        if _accesses(x) > AXIOMATIC_MAX:
            skipped.append((sk, c, m, f"{_accesses(x)} accesses: beyond AXIOMATIC_MAX"))
            continue
        assert A.allowed(m, x.threads, x.final, **x.regs), (sk, c, m, x.threads, x.regs, x.final)
    assert not skipped, skipped  # none at these bounds: a new one must say why it is too large


@needs_herd
@pytest.mark.parametrize("name", BUILTINS)
def test_exports_are_allowed_by_herd7(name):
    """herd7 (aarch64.cat) allows each ARM counterexample's litmus program on its profile's instructions."""
    skipped = []
    for sk, c, m, r in _failures(name):
        x = r.litmus[m]
        if _accesses(x) > HERD_MAX:
            skipped.append((sk, c, m, f"{_accesses(x)} accesses: beyond HERD_MAX"))
            continue
        assert H.herd_witness(x.threads, x.target, x.final, **x.regs), (sk, c, m, x.herd_text())
    assert not skipped, skipped  # none at these bounds: a new one must say why it is too large


@pytest.mark.parametrize("name", BUILTINS)
def test_exports_keep_the_weak_behaviour(name):
    """Where a run passes under sc, its ARM counterexample's program is not allowed under sc."""
    info = _plugins.get(name)
    n = 0
    for sk, c, m, r in _failures(name):
        if check_ir(info.ir, "sc", c, SMALL, skeleton=sk, want_trace=False).verdict != "pass":
            continue
        x = r.litmus[m]
        assert not A.allowed("sc", x.threads, x.final, **x.regs), (sk, c, m, x.threads, x.regs)
        n += 1
    if name in ("notified", "unconditional", "no-mb", "late-clear"):
        assert n > 0  # their 2015 failures need ARM


def test_the_2020_hang_exports_as_sb_with_an_rmw():
    """notified's arm-llsc lost wake-up is SB with the RMW as a store: the shape of QEMU bug 1805256."""
    r = check_ir(_plugins.get("notified").ir, "arm-llsc", "home", SMALL, export=True)
    x = r.litmus["arm-llsc"]
    assert x.procs == ("home", "notifier0")
    assert x.threads == (
        (("fetch_add", "notify_me", 2, "r1"), ("ld", "bh0_scheduled", "r2"), ("mb",)),
        (("st", "bh0_payload", 1), ("xchg", "bh0_scheduled", 1, "r3"), ("mb",),
         ("ld", "notify_me", "r4")),
    )
    assert x.regs == {"r1": 0, "r2": 0, "r3": 0, "r4": 0}
    assert x.final == {"notify_me": 2, "bh0_scheduled": 1, "bh0_payload": 1}
    # the register names the trace step that read it
    assert [s["result"].split(",")[0] for s in r.trace if s["step"] in (1, 2, 3, 4)] == ["read 0"] * 4
    assert A.profiles(x.threads, x.final, **x.regs) == ("arm-llsc",)


CORPUS = json.load(open(os.path.join(os.path.dirname(__file__), "litmus", "corpus.json")))["programs"]


def _end_paths(model, threads, speculate=None):
    """Per end state of a litmus program under the checker's model: (explorer, the
    breadth-first path to it, its moves' descriptions, {register: value}, {location: value}).
    speculate None: the litmus br; True: the protocol's branch, speculated past its loads."""
    cprog, regslots, prog = L.build(model, threads, protocol_branches=speculate is not None)
    ex = explorer(cprog)
    ex.set_speculation(bool(speculate))
    init = ex.initial()
    parent, order = {init: None}, [init]
    for s in order:
        for _, t in ex.successors(s):
            if t not in parent:
                parent[t] = s
                order.append(t)
    for s in order:
        mem, _ev, _owed, procs = ex.decode(s)
        if ex.successors(s) or any(p[2] or cprog.procs[i].code[p[0]][0] != DONE for i, p in enumerate(procs)):
            continue
        path = [s]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        path.reverse()
        descs = [next(d for d, t in ex.successors(a, verbose=True) if t == b) for a, b in zip(path, path[1:])]
        vals = {r: procs[i][1][k] for i in range(len(procs)) for r, k in regslots[i].items()}
        yield ex, path, descs, vals, dict(zip(prog.locations, mem))


def _base(kind):
    return kind.replace("fetch_", "").replace("wmb", "mb")


@pytest.mark.parametrize("model", PROFILES)
def test_litmus_programs_round_trip(model):
    """Exporting any execution of a corpus program gives back its ops, its registers' values and final memory."""
    performed_late = 0
    for e in CORPUS:
        want = [[parse([[tuple(o)]]).threads[0][0] for o in t if o[0] != "br"] for t in e["threads"]]
        want = [t for t in want if t]
        for ex, path, descs, vals, mem in _end_paths(model, e["threads"]):
            x = export(ex, path, descs)
            got = [[o for o in t if o[0] != "br"] for t in x.threads]
            assert [len(t) for t in got] == [len(t) for t in want], (e["name"], x.threads)
            for a, b in zip((a for t in want for a in t), (b for t in got for b in t)):
                assert _base(a.kind) == _base(b[0]), e["name"]  # smp_wmb is dmb ish; RMWs keep their value
                assert a.loc is None or a.loc == b[1], e["name"]
                if a.reg is not None:
                    assert vals[a.reg] == x.regs[b[-1]], (e["name"], vals, x.regs)
            assert x.final == {k: v for k, v in mem.items() if k in x.final}
            assert set(x.final) == {o[1] for t in x.threads for o in t if len(o) > 1 and o[0] != "br"}
            performed_late += sum(1 for d in descs if d["op"].startswith("the load of"))
    assert performed_late > 20  # loads issued early and performed later are part of it


def test_busy_loop_export_ends_where_the_poller_is_left_alone():
    """bug1's program stops once the notifier has left and its stores are visible; the event stays set."""
    r = check_ir(_plugins.get("bug1").ir, "arm-lse", "home", SMALL, export=True)
    x = r.litmus["arm-lse"]
    steps = r.trace[:-1]
    # the last step made by another process or with another process's store in flight
    alone = max(s["step"] for s in steps if s["process"] != "home" or set(s.get("buffers", {})) - {"home"})
    loop = min(s["step"] for s in steps if s.get("loop"))
    assert alone < loop
    assert max(int(k[1:]) for k in x.regs) <= alone  # nothing the poller read alone
    assert x.final[EVENT] == 1
    assert ("st", EVENT, 1) in x.threads[x.procs.index("notifier0")]


@pytest.mark.parametrize("model", ("sc", "tso", "arm-llsc", "arm-lse"))
def test_axiomatic_allowed_prunes_exactly(model):
    """allowed() with its value pruning answers as filtering every outcome does, on the corpus."""
    for e in CORPUS[::7]:
        prog = parse(e["threads"])
        got = A.outcomes(model, prog)
        asked = {tuple(o) for outs in e["herd"].values() for o in outs["outcomes"]}
        for o in sorted(asked)[:6]:
            regs = dict(zip(prog.registers, o))
            final = {x: v for x, v in zip(prog.locations, o[len(prog.registers):])}
            want = outcome_filter(prog, final, regs)
            assert A.allowed(model, prog, final, **regs) == any(matches(g, want) for g in got), e["name"]


@needs_herd
def test_herd_witness_agrees_with_herd_allowed():
    """herd_witness's pruned search answers as herd_allowed does, allowed and forbidden alike."""
    sb_rmw = [[("add", "x", 1), ("ld", "y", "r0")], [("xchg", "y", 1, "r1"), ("mb",), ("ld", "x", "r2")]]
    for target in ("aarch64-llsc", "aarch64-lse"):
        for regs in ({"r0": 0, "r1": 0, "r2": 0}, {"r0": 1, "r1": 0, "r2": 1}):
            assert H.herd_witness(sb_rmw, target, **regs) == H.herd_allowed(sb_rmw, target, **regs)


BRANCHY = [e for e in CORPUS if any(op[0] == "br" for t in e["threads"] for op in t)]


@pytest.mark.parametrize("model", PROFILES)
def test_speculated_paths_export_with_their_branches(model):
    """With branches speculated past their loads (check_ir speculate=True), every end path of every corpus program with a branch exports, keeps each branch that orders something, and is allowed."""
    n = 0
    for e in BRANCHY:
        want = [sum(1 for o in E._needed_branches([tuple(o) for o in t]) if o[0] == "br") for t in e["threads"]]
        for ex, path, descs, vals, mem in _end_paths(model, e["threads"], speculate=True):
            x = export(ex, path, descs)
            assert [sum(1 for o in t if o[0] == "br") for t in x.threads] == want, (e["name"], x.threads)
            assert A.allowed(model, x.threads, x.final, **x.regs), (e["name"], x.threads, x.regs)
            n += 1
    assert n > len(BRANCHY) * 5


def test_speculated_counterexamples_of_the_builtins_are_allowed():
    """The builtins' ARM counterexamples found with speculation export and are allowed by their profile's axiomatic model."""
    n = 0
    for name in BUILTINS:
        info = _plugins.get(name)
        for sk in _matrix.judged_skeletons(info):
            for c in supported_configs(info.ir, sk):
                for m in PROFILES:
                    r = check_ir(info.ir, m, c, SMALL, skeleton=sk, export=True, speculate=True)
                    if r.verdict in ("pass", "unknown"):
                        continue
                    x = r.litmus[m]
                    assert isinstance(x, LitmusExport), (name, sk, c, m, x)
                    assert A.allowed(m, x.threads, x.final, **x.regs), (name, sk, c, m)
                    n += 1
    assert n >= 40, n


# --- parts: counterexamples too large for herd7 -----------------------------------

DEFAULT = Bounds()  # what `aiocore check` runs


def _check_parts(x: LitmusExport, model: str):
    """The parts chain up (each starts from the memory the one before it
    left), share out the registers, end with the whole's final memory, and
    the model allows each."""
    assert len(x.parts) >= 2
    regs = {}
    for k, p in enumerate(x.parts):
        assert p.profile == x.profile and p.threads
        assert not set(regs) & set(p.regs)
        regs.update(p.regs)
        if k:
            prev = x.parts[k - 1]
            touched = {o[1] for t in p.threads for o in t if o[0] != "br" and len(o) > 1}
            for loc in touched & set(prev.final):
                assert p.init.get(loc, 0) == prev.final[loc], (k, loc, p.init, prev.final)
        assert A.allowed(model, p.threads, p.final, init=p.init, **p.regs), (k, p.threads, p.init, p.regs)
    assert regs == x.regs
    assert x.parts[-1].final == {k: v for k, v in x.final.items() if k in x.parts[-1].final}


@pytest.mark.parametrize("model", PROFILES)
def test_bug2_at_the_default_bounds_is_cut_into_parts(model):
    """bug2's lost wake-up at the default bounds (10**11 rf maps for herd7) comes in parts of at most 10**PART_LIMIT each, each allowed."""
    r = check_ir(_plugins.get("bug2").ir, model, "home", DEFAULT, skeleton="2015", export=True)
    x = r.litmus[model]
    assert x.candidates > E.PART_LIMIT + 5
    assert all(p.candidates <= E.PART_LIMIT for p in x.parts)
    _check_parts(x, model)


def test_small_counterexamples_are_not_cut():
    """A counterexample herd7 decides quickly is written whole only."""
    for sk, c, m, r in _failures("notified"):
        x = r.litmus[m]
        assert x.candidates <= E.PART_LIMIT and x.parts == () and x.init == {}


def test_every_cut_of_the_builtins_counterexamples_gives_allowed_parts(monkeypatch):
    """Cut at every point where the windows are empty, each ARM counterexample's parts are allowed (sc-forbidden ones keep an sc-forbidden part)."""
    monkeypatch.setattr(E, "PART_LIMIT", 0.0)
    cut = 0
    for name in BUILTINS:
        for sk, c, m, r in _failures(name):
            x = r.litmus[m]
            if not x.parts:
                continue
            cut += 1
            _check_parts(x, m)
            if not A.allowed("sc", x.threads, x.final, **x.regs):  # (the weak ones are too short to cut:
                assert any(not A.allowed("sc", p.threads, p.final, init=p.init, **p.regs)  # the corpus test
                           for p in x.parts), (name, sk, c, m)                              # has them)
    assert cut >= 10, cut


@pytest.mark.parametrize("model", PROFILES)
def test_every_cut_of_the_corpus_paths_gives_allowed_parts(model, monkeypatch):
    """Every end state of every corpus program, exported and cut wherever the windows are empty: each part is allowed, and a non-sc outcome keeps a non-sc part."""
    monkeypatch.setattr(E, "PART_LIMIT", 0.0)
    cut = weak = 0
    for e in CORPUS[::3]:
        for ex, path, descs, vals, mem in _end_paths(model, e["threads"]):
            x = export(ex, path, descs)
            if not x.parts:
                continue
            cut += 1
            _check_parts(x, model)
            if not A.allowed("sc", x.threads, x.final, **x.regs):
                weak += 1
                assert any(not A.allowed("sc", p.threads, p.final, init=p.init, **p.regs) for p in x.parts), e["name"]
    assert cut > 20 and weak > 0, (cut, weak)


def test_a_part_without_the_memory_before_it_is_forbidden():
    """A part asked from all-zero memory instead of its cut's memory is forbidden: the init is what makes it true."""
    r = check_ir(_plugins.get("bug2").ir, "arm-lse", "home", DEFAULT, skeleton="2015", export=True)
    p = r.litmus["arm-lse"].parts[-1]
    assert p.init
    assert A.allowed("arm-lse", p.threads, p.final, init=p.init, **p.regs)
    assert not A.allowed("arm-lse", p.threads, p.final, **p.regs)


def test_init_names_a_location_and_a_value():
    """init naming a location no op touches, or a value out of range, is a LitmusError naming it."""
    mp = [[("st", "x", 1)], [("ld", "x", "r0")]]
    with pytest.raises(L.LitmusError, match="'y'"):
        A.allowed("sc", mp, init={"y": 1}, r0=1)
    with pytest.raises(L.LitmusError, match="-1"):
        H.to_herd(mp, "aarch64-lse", init={"x": -1})
    assert A.allowed("sc", mp, init={"x": 7}, r0=7) and not A.allowed("sc", mp, r0=7)
    assert "x=7;" in H.to_herd(mp, "aarch64-llsc", init={"x": 7}, r0=7)


@needs_herd
@pytest.mark.parametrize("model", PROFILES)
def test_bug2_parts_are_allowed_by_herd7(model):
    """herd7 allows each part of bug2's default-bound lost wake-up (the whole it does not decide in hours)."""
    r = check_ir(_plugins.get("bug2").ir, model, "home", DEFAULT, skeleton="2015", export=True)
    x = r.litmus[model]
    assert x.parts
    for p in x.parts:
        assert H.herd_witness(p.threads, p.target, p.final, init=p.init, **p.regs), p.herd_text()


@needs_herd
def test_herd_init_agrees_with_the_axiomatic_checker():
    """With initial values, herd7 and the axiomatic checker give the same outcomes (MP and SB from nonzero memory)."""
    mp = [[("st", "x", 1), ("wmb",), ("st", "y", 1)], [("ld", "y", "r0"), ("ld", "x", "r1")]]
    sb = [[("st", "x", 1), ("ld", "y", "r0")], [("xchg", "y", 1, "r2"), ("ld", "x", "r1")]]
    for prog in (mp, sb):
        for target, m in (("aarch64-llsc", "arm-llsc"), ("aarch64-lse", "arm-lse"), ("x86", "tso")):
            for r0 in (0, 1, 5):
                for r1 in (0, 1, 3):
                    init = {"x": 3, "y": 5}
                    assert H.herd_allowed(prog, target, init=init, r0=r0, r1=r1) == \
                        A.allowed(m, prog, init=init, r0=r0, r1=r1), (prog, target, r0, r1)


# --- the command line -----------------------------------------------------------


def _cli(tmp_path, *args):
    return main(["check", "--notifiers", "1", "--schedules", "1", "--foreign-notifiers", "1",
                 "--foreign-schedules", "1", "-j", "1", *args])


def test_cli_writes_a_test_per_failing_arm_run_and_profile(tmp_path, capsys):
    """--herd DIR writes <strategy>-<skeleton>-<config>-<profile>.litmus for each profile that fails."""
    d = tmp_path / "herd"
    code = _cli(tmp_path, "notified", "--skeleton", "2015", "--model", "sc,arm", "--herd", str(d))
    out = capsys.readouterr().out
    assert code == 0
    # notified fails on 2015 with LL/SC only: one file per config, none for arm-lse
    assert sorted(os.listdir(d)) == [f"notified-2015-{c}-arm-llsc.litmus" for c in ("foreign", "gsource", "home")]
    assert "3 written to" in out and str(d) in out.replace("\n", "")
    text = (d / "notified-2015-home-arm-llsc.litmus").read_text()
    assert text.startswith("AArch64 notified-2015-home-arm-llsc\n")
    assert "LDAXR" in text and "SWPAL" not in text
    assert re.search(r"exists \(.*notify_me=2", text)
    assert "(* r1 (0:X0) = 0: step 1, home poll_begin" in text


def test_cli_herd_in_json_names_the_files(tmp_path, capsys):
    """With --json each ARM run names its tests under "herd"; the other runs name none."""
    d = tmp_path / "h"
    code = _cli(tmp_path, "no-mb", "--skeleton", "2015", "--config", "home", "--model", "sc,arm-lse",
                "--herd", str(d), "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    by = {r["model"]: r["herd"] for r in data}
    assert by == {"sc": {}, "arm-lse": {"arm-lse": str(d / "no-mb-2015-home-arm-lse.litmus")}}
    assert os.path.exists(by["arm-lse"]["arm-lse"])


def test_cli_writes_the_parts_of_a_large_counterexample(tmp_path, capsys):
    """At the default bounds bug2's test comes with .partK files, named in --json under "herd_parts" and said in the whole's header."""
    d = tmp_path / "h"
    code = main(["check", "bug2", "--skeleton", "2015", "--config", "home", "--model", "arm-lse",
                 "--herd", str(d), "--json", "-j", "1"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    parts = data[0]["herd_parts"]["arm-lse"]
    stem = "bug2-2015-home-arm-lse"
    assert sorted(os.listdir(d)) == sorted([f"{stem}.litmus"] + [f"{stem}.part{k}.litmus" for k in range(1, len(parts) + 1)])
    assert parts == [str(d / f"{stem}.part{k}.litmus") for k in range(1, len(parts) + 1)]
    head = (d / f"{stem}.litmus").read_text().split("{")[0]
    assert f"also written in {len(parts)} parts" in head
    last = (d / parts[-1]).read_text()
    assert last.startswith(f"AArch64 {stem}.part{len(parts)}\n") and "to the end" in last
    assert re.search(r"\bnotified=1;", last)  # it starts from the memory the part before it left


def test_cli_refuses_herd_without_an_arm_model(tmp_path, capsys):
    """--herd with only sc/tso runs is an error that says to add an ARM model; nothing is written."""
    d = tmp_path / "none"
    code = _cli(tmp_path, "notified", "--model", "sc,tso", "--herd", str(d))
    err = capsys.readouterr().err
    assert code == 2
    assert "--herd" in err and "arm, arm-llsc or arm-lse" in err
    assert not d.exists()


def test_cli_refuses_a_herd_dir_it_cannot_make(tmp_path, capsys):
    """--herd naming a file (not a directory) is an error before anything runs."""
    f = tmp_path / "file"
    f.write_text("")
    code = _cli(tmp_path, "notified", "--model", "arm", "--herd", str(f / "sub"))
    assert code == 2
    assert "cannot make that directory" in capsys.readouterr().err
