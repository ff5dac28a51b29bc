"""The checker at scale: the C search loop and the reductions change the cost of a check, never its result."""
import pytest

from aiocore._compiler import _plugins
from aiocore._checker import Bounds, check_ir, supported_configs
from aiocore._checker import _fast

MODELS = ("sc", "tso", "arm")
BUILT = ("sc", "tso", "arm-llsc", "arm-lse")  # what a Program is built for
BUILTINS = [i.name for i in _plugins.registry() if i.ir is not None and i.status == "ok"]

needs_c = pytest.mark.skipif(not _fast.available(), reason=f"the C loop cannot be built: {_fast.why_not()}")


def _same(a, b):
    return (a.verdict, a.states, a.transitions, a.trace, a.other) == (b.verdict, b.states, b.transitions, b.trace, b.other)


@needs_c
@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("model", MODELS)
def test_c_loop_explores_the_python_loop_states(name, model):
    """The C loop finds the same states, transitions, verdict and counterexample as the Python loop."""
    ir = _plugins.get(name).ir
    for config in supported_configs(ir):
        b = Bounds(1, 2, 1, 2)
        py = check_ir(ir, model, config, b, engine="python")
        c = check_ir(ir, model, config, b, engine="c")
        assert (py.engine, c.engine) == ("python", "c")
        assert _same(py, c), (config, py.verdict, c.verdict, py.states, c.states)


@needs_c
@pytest.mark.parametrize("skeleton,faults,recovery", [("polling", "none", False), ("2015", "crash", True),
                                                      ("polling", "crash", False)])
def test_c_loop_equals_python_loop_with_skeleton_and_faults(skeleton, faults, recovery):
    """CHOOSE, crash and recovery moves go through the C loop unchanged."""
    ir = _plugins.get("notified").ir
    for model in MODELS:
        py = check_ir(ir, model, "home", Bounds(2, 1), engine="python", skeleton=skeleton, faults=faults,
                      recovery=recovery)
        c = check_ir(ir, model, "home", Bounds(2, 1), engine="c", skeleton=skeleton, faults=faults,
                     recovery=recovery)
        assert _same(py, c), (model, py.verdict, c.verdict)


@needs_c
def test_c_loop_stops_at_max_states_like_python():
    """A run cut by max_states is unknown after the same number of states in both loops."""
    ir = _plugins.get("explicit-mb").ir
    py = check_ir(ir, "arm", "home", Bounds(max_states=500), engine="python", want_trace=False)
    c = check_ir(ir, "arm", "home", Bounds(max_states=500), engine="c", want_trace=False)
    assert (py.verdict, py.stopped_by, py.states) == (c.verdict, c.stopped_by, c.states) == (
        "unknown", "max-states", py.states)


def test_unknown_engine_is_refused():
    """An engine name that does not exist is a clear error, not a silent fallback."""
    from aiocore._checker import ModelError

    with pytest.raises(ModelError, match="unknown engine 'fortran'"):
        check_ir(_plugins.get("notified").ir, "sc", "home", engine="fortran")


@needs_c
@pytest.mark.parametrize("model", BUILT)
def test_packed_keys_survive_repacking(model):
    """Ids outgrowing their packed width (start at 1 bit each) re-pack every key: same states, same verdict."""
    from aiocore._checker._window import explorer as Explorer
    from aiocore._checker._assemble import build

    ir = _plugins.get("late-clear").ir
    ref = Explorer(build(ir, model, "foreign", 1, 2)).explore(engine="python")
    r = _fast.search(Explorer(build(ir, model, "foreign", 1, 2)), narrow=1)
    assert (r.verdict, r.states, r.transitions, set(r.found)) == (ref.verdict, ref.states, ref.transitions,
                                                                set(ref.found))
    assert [s for s in r.path_to(r.found[r.verdict][0])] == ref.path_to(ref.found[ref.verdict][0])


@pytest.mark.parametrize("model", BUILT)
def test_permuting_notifiers_is_not_a_symmetry(model):
    """Some reachable state's image under swapping the two notifiers is unreachable: a canonical form would merge futures that differ."""
    from aiocore._checker._window import explorer as Explorer
    from aiocore._checker._assemble import build
    from aiocore._checker._reductions import swap_notifiers

    ex = Explorer(build(_plugins.get("explicit-mb").ir, model, "home", 2, 1))
    r = ex.explore(engine="python")
    states = set(r.parent)
    images = {s: swap_notifiers(ex, s, 0, 1) for s in states}
    assert all(swap_notifiers(ex, t, 0, 1) == s for s, t in images.items() if t is not None)  # an involution
    assert sum(1 for t in images.values() if t in states) > len(states) // 2  # most states do map
    assert any(t not in states for t in images.values())  # but not all: no symmetry


def _outsiders():
    # the tests' own strategies (no code from strategies/): the checker tests' variants and the
    # stranger's distribution in tests/outsiders
    from outsiders import outsider_strategies as o
    from test_checker_strategies import EXPECT

    return [cls for cls, _ in EXPECT] + [o.EarlyKick, o.GlibNoFence, o.KickAlways, o.XchgGate, o.CoalescedKick]


@needs_c
@pytest.mark.parametrize("cls", _outsiders(), ids=lambda c: c.name)
def test_c_loop_judges_outsider_strategies_like_python(cls):
    """Strategies written in tests/ get the same verdicts, states and counterexamples from both loops."""
    from aiocore._compiler._strategy import describe

    ir = describe(cls)
    for model in MODELS:
        for config in supported_configs(ir):
            py = check_ir(ir, model, config, Bounds(2, 1, 1, 2), engine="python")
            c = check_ir(ir, model, config, Bounds(2, 1, 1, 2), engine="c")
            assert _same(py, c), (model, config, py.verdict, c.verdict)


def _replay(ir, model, config, bounds, trace):
    """Walk a counterexample step by step in a fresh Python explorer; the state it ends in."""
    from aiocore._checker._window import explorer as Explorer
    from aiocore._checker._assemble import build

    n, k = bounds.for_config(config)
    ex = Explorer(build(ir, model, config, n, k))
    s = ex.initial()
    seen = [s]
    for step in trace[:-1]:
        nxt = [t for d, t in ex.successors(s, verbose=True)
               if (d["process"], d["where"], d["op"], d["result"]) ==
               (step["process"], step["where"], step["op"], step["result"])]
        assert nxt, f"step {step['step']} cannot be taken: {step}"
        s = nxt[0]
        seen.append(s)
    return ex, s, seen


@needs_c
@pytest.mark.parametrize("name,model,config", [("no-mb", "tso", "home"), ("unconditional", "arm", "home"),
                                               ("late-clear", "sc", "foreign"), ("bug1", "arm", "home"),
                                               ("bug2", "arm", "home")])
def test_c_loop_counterexamples_replay_in_the_python_explorer(name, model, config):
    """A counterexample the C loop found is an execution of the model: each step replays, and the end is the failure."""
    ir = _plugins.get(name).ir
    b = Bounds(2, 2, 1, 3) if name != "bug2" else Bounds(1, 3)
    r = check_ir(ir, model, config, b, engine="c")
    assert r.verdict not in ("pass", "unknown") and r.trace
    ex, end, seen = _replay(ir, r.profiles[0] if model == "arm" else model, config, b, r.trace)
    if r.verdict == "busy-loop":
        loop = [k for k, st in enumerate(r.trace[:-1]) if st.get("loop")]
        assert loop and seen[loop[0]] == end and ex.quiescent(end)  # the loop closes on its first state
    else:
        assert ex.successors(end) == [] and ex.classify_terminal(end)[0] == r.verdict


@pytest.mark.parametrize("engine", ["python", pytest.param("c", marks=needs_c)])
def test_a_long_run_reports_its_states_as_it_goes(engine):
    """progress(states) comes after every breadth-first layer, growing, ending at the run's state count."""
    seen = []
    r = check_ir(_plugins.get("explicit-mb").ir, "arm", "home", Bounds(2, 2), want_trace=False, engine=engine,
                 progress=seen.append)
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] == r.states


def test_one_job_feeds_the_states_counter_of_the_progress_bar():
    """With one job the matrix passes each layer's count on to the report (the bar of a single long run moves)."""
    from aiocore._checker import _matrix

    info = _plugins.get("notified")
    rows = _matrix.plan([info], ("tso",), ("home",), _matrix.Options(skeleton="2015"))
    assert len(rows) == 1
    counts = []
    _matrix.run(rows, Bounds(2, 1), jobs=1, states_progress=counts.append)
    assert counts and counts[-1] == rows[0].result.states


def test_without_the_c_loop_the_python_loop_runs(monkeypatch):
    """When the C loop cannot be built, auto falls back to the Python loop and engine c says why."""
    from aiocore._checker import ModelError

    monkeypatch.setattr(_fast, "_lib", None)
    monkeypatch.setattr(_fast, "_why_not", "RuntimeError: no C compiler")
    ir = _plugins.get("bug1").ir
    r = check_ir(ir, "sc", "home", Bounds(1, 1))
    assert (r.engine, r.verdict) == ("python", "busy-loop")
    with pytest.raises(ModelError, match="C loop cannot run here: RuntimeError: no C compiler"):
        check_ir(ir, "sc", "home", Bounds(1, 1), engine="c")
