# Stress tests: every installed strategy under every workload, with the
# watchdog (see docs/stress.md).
#
# Each test is one self-contained run: its own segment (named with this
# worker's prefix), its own memfd, its own processes -- so the tests can be
# spread over any number of xdist workers, local or remote (--tx ssh=...).
# Runs may overlap on one machine: that slows the races down but cannot
# create a finding for a correct strategy.  `--dist loadgroup` keeps the
# catch tests (group "stress-catch") on one worker, one after the other.
#
# --stress-seconds S lengthens every pair (default 1 s) and scales the
# catch tests' bound.  Timing claims (how fast each bug is caught) belong in
# the campaign report (docs/stress.md), not here: the catch tests run until
# the bug shows, with a generous bound.
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import aiocore
from aiocore._compiler import _plugins

W = pytest.importorskip("aiocore_workloads")

BUILTIN_WORKLOADS = {"virtio-net-tx", "thread-pool", "ping-pong", "timers", "fd-io", "mixed"}


#: AIOCORE_STRESS_STRATEGY=a,b restricts the stress tests to those strategies
#: (tox's {strategy}-native environments; -k substrings are ambiguous:
#: "notified-" also matches "notified-blocking-").
#: A "-native" suffix is dropped, so tox can pass {envname} as it is.
from conftest import ONLY_STRATEGIES as ONLY  # noqa: E402


def _strategies():
    infos = [i for i in _plugins.registry() if i.status == "ok"]
    return [i for i in infos if not ONLY or i.name in ONLY]


STRATEGIES = _strategies()
WORKLOADS = [i.workload for i in W.registry() if i.status == "ok"]


def _pairs():
    """Every strategy x every traffic, each on one of the paths the strategy
    can run on, rotating so that every strategy meets every path."""
    out = []
    for s in STRATEGIES:
        k = 0
        for w in WORKLOADS:
            if not w.applies_to(s):
                continue
            paths = w.paths_for(s)
            path = paths[k % len(paths)]
            k += 1
            out.append(pytest.param(s, w, path, id=f"{s.name}-{w.name}-{path}"))
    return out


PAIRS = _pairs()


@pytest.fixture
def stress_seconds(request):
    v = request.config.getoption("--stress-seconds", default=None)
    return 1.0 if v is None else float(v)


def _describe(r):
    d = r.row()
    return json.dumps({k: d[k] for k in d if k != "work"}, default=str)[:3000]


# --- the registry -------------------------------------------------------------


def test_builtin_workloads_are_registered():
    """The built-in traffics are registered; every one runs on every path the strategy allows."""
    names = set(W.names())
    assert BUILTIN_WORKLOADS <= names
    assert not [b for b in W.broken() if b.startswith("aiocore[")]
    pp = W.get("ping-pong")
    assert pp.paths_for(_plugins.get("explicit-mb")) == ("aio_poll", "gsource", "mixed")
    assert pp.paths_for(_plugins.get("late-clear")) == W.PATHS


def test_with_path_adds_the_foreign_poller_and_names_bad_paths():
    """A path changes the owner's mode and the processes; bad paths are named."""
    from aiocore_workloads._base import with_path

    base = W.get("thread-pool").plan(2)
    p = with_path(base, "foreign", foreign_ok=True)
    assert p.path == "foreign" and p.foreign == 1 and p.filler_bhs >= 1000 and p.pool_workers == base.pool_workers
    m = with_path(base, "mixed", foreign_ok=False)
    assert m.path == "mixed" and m.foreign == 0
    assert with_path(base, "mixed", foreign_ok=True).foreign == 1
    with pytest.raises(ValueError, match="unknown path 'glib'"):
        with_path(base, "glib", foreign_ok=True)
    with pytest.raises(ValueError, match="foreign pollers"):
        with_path(base, "foreign", foreign_ok=False)
    with pytest.raises(ValueError, match="gsource path only"):
        with_path(W.Plan(gsource=True), "aio_poll", foreign_ok=True)


class _Dist:
    def __init__(self, name):
        self.name = name


class _EP:
    def __init__(self, name, value, obj=None, exc=None, dist="thirdparty"):
        self.name, self.value, self._obj, self._exc = name, value, obj, exc
        self.dist = _Dist(dist)

    def load(self):
        if self._exc:
            raise self._exc
        return self._obj


def test_broken_workload_plugins_are_reported_not_hiding_others(monkeypatch):
    from aiocore_workloads import _registry as R
    from aiocore_workloads.builtin import PingPong

    class Named(PingPong):
        name = "other-name"

    fake = [
        _EP("ping-pong", "aiocore_workloads.builtin:PingPong", PingPong, dist="aiocore"),
        _EP("bad-import", "nope.mod:X", exc=ImportError("No module named 'nope'")),
        _EP("not-a-workload", "x:y", obj=object),
        _EP("misnamed", "x:Named", obj=Named),
        _EP("ping-pong", "evil:PingPong", PingPong, dist="evil"),
    ]
    monkeypatch.setattr(R, "entry_points", lambda: sorted(fake, key=lambda e: (e.name, e.dist.name != "aiocore")))
    R.forget()
    try:
        broken = R.broken()
        assert any(b.startswith("thirdparty[bad-import]: cannot import") for b in broken)
        assert any(b.startswith("thirdparty[not-a-workload]:") and "not a Workload" in b for b in broken)
        assert any(b.startswith("thirdparty[misnamed]:") for b in broken)
        assert any(b.startswith("evil[ping-pong]: duplicate name") for b in broken)
        assert R.get("ping-pong").name == "ping-pong"  # the built-in keeps its name
        with pytest.raises(ValueError, match="bad-import"):
            R.get("bad-import")
        with pytest.raises(KeyError):
            R.get("no-such-workload")
    finally:
        R.forget()


def test_judge():
    """The expectation follows the path's configs (late-clear fails with a foreign poller only)."""
    from aiocore_workloads.builtin import PingPong

    info = _plugins.get("late-clear")
    assert W.judge(info, PingPong(), [], 0, "aio_poll")[0:4:3] == ("pass", False)
    v, exp, m, failed = W.judge(info, PingPong(), ["lost-wakeup"], 0, "gsource")
    assert exp == "pass" and failed and m.startswith("UNEXPECTED")
    v, exp, m, failed = W.judge(info, PingPong(), [], 0, "foreign")
    assert exp == "lost-wakeup" and m == "not reproduced" and not failed
    v, exp, m, failed = W.judge(info, PingPong(), ["lost-wakeup"], 0, "mixed")
    assert m == "yes" and not failed


def test_judge_a_pair_cut_short_by_an_error_is_unknown_never_pass():
    """An errored pair reads error / unknown and fails, whatever was expected."""
    from aiocore_workloads.builtin import PingPong

    info = _plugins.get("late-clear")
    for path in ("aio_poll", "foreign"):
        v, exp, m, failed = W.judge(info, PingPong(), ["error"], 0, path)
        assert v == "error" and m.startswith("unknown") and failed, (path, v, m)


# --- every pair ---------------------------------------------------------------


@pytest.mark.stress
@pytest.mark.parametrize("info,workload,path", PAIRS)
def test_pair(info, workload, path, stress_seconds):
    """Every strategy under every traffic (on a rotating path): the accounting
    always adds up, and a strategy expected to pass natively (x86) shows no finding."""
    r = W.run_pair(info.name, workload, stress_seconds, procs=2, path=path)
    assert r.path == path
    assert not r.errors, _describe(r)
    assert r.lost_work == 0, _describe(r)
    assert r.dispatched > 0, _describe(r)
    if r.expected == "pass":
        assert r.verdict == "pass" and not r.failed, _describe(r)
    else:
        assert not r.failed, _describe(r)


# --- the known-bad strategies are caught natively -----------------------------

# (strategy, expected finding, [(traffic, path, procs), ...] tried in turn)
CATCHES = [
    ("no-mb", "lost-wakeup", [("thread-pool", "aio_poll", 2), ("ping-pong", "aio_poll", 1)]),
    ("bug1", "busy-loop", [("virtio-net-tx", "aio_poll", 2)]),
    ("bug2", "lost-wakeup", [("ping-pong", "aio_poll", 2)]),
    ("late-clear", "lost-wakeup", [("ping-pong", "foreign", 1)]),
]


@pytest.mark.stress
@pytest.mark.xdist_group("stress-catch")
@pytest.mark.parametrize("strategy,kind,how", CATCHES, ids=[c[0] for c in CATCHES])
def test_known_bad_strategy_is_caught(strategy, kind, how, stress_seconds):
    """Run slices until the watchdog reports the strategy's bug (races are
    probabilistic: the bound is generous, the typical time is seconds)."""
    if strategy not in _plugins.names():
        pytest.skip(f"{strategy} is not installed")
    if ONLY and strategy not in ONLY:
        pytest.skip(f"AIOCORE_STRESS_STRATEGY={','.join(sorted(ONLY))}")
    bound = max(240.0, 60 * stress_seconds)
    t0 = time.monotonic()
    tried = []
    k = 0
    while time.monotonic() - t0 < bound:
        wl, path, procs = how[k % len(how)]
        k += 1
        r = W.run_pair(strategy, W.get(wl), 10.0, procs=procs, until_found=True, path=path)
        tried.append((wl, r.seconds, r.lost_wakeups, r.busy_loops, r.lost_wakeups_timed, r.busy_loops_timed))
        assert not r.errors, _describe(r)
        assert r.lost_work == 0, _describe(r)
        found = r.lost_wakeups if kind == "lost-wakeup" else r.busy_loops
        if found:
            f = next(f for f in r.findings if f.detector == "state")
            assert f.kind == kind
            snap = f.snapshot
            for key in ("notify_me", "notified", "notifier_readable", "position", "processes", "pending_bhs"):
                assert key in snap
            assert snap["consistent"] and all(p["in_call"] is None for p in snap["processes"])
            if kind == "lost-wakeup":
                assert snap["position"] in ("wait_infinite", "wait_timed") and snap["pending_count"] > 0
                assert not snap["notifier_readable"]
            else:
                assert snap["notifier_readable"] and snap["pending_count"] == 0
            return
    pytest.fail(f"{strategy}: no {kind} in {bound:.0f} s; slices: {tried}")


# --- the command ----------------------------------------------------------------


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "aiocore._cli", *args], capture_output=True, text=True, **kw
    )


@pytest.mark.stress
def test_cli_json():
    """--json: one object per strategy, with its predictions and every slice."""
    p = _cli("stress", "-s", "explicit-mb", "-w", "ping-pong", "-w", "timers", "--path", "gsource",
             "-d", "2", "--slice", "0.8", "--json", timeout=120)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["strategy"] for r in rows] == ["explicit-mb"]
    r = rows[0]
    assert r["verdict"] == "pass" and r["expected"] == "pass" and not r["failed"]
    assert [q["config"] for q in r["predictions"]] == ["home", "gsource"]
    assert r["runs"] and {s["path"] for s in r["runs"]} == {"gsource"}
    assert {s["traffic"] for s in r["runs"]} <= {"ping-pong", "timers"}
    for s in r["runs"]:
        for k in ("seconds", "wakeups", "dispatched", "lost_wakeups", "busy_loops", "lost_work",
                  "verdict", "seed", "chaos", "path"):
            assert k in s


def test_cli_bad_names():
    """Unknown strategies, traffics and paths are named; a path is not a traffic."""
    p = _cli("stress", "-s", "no-such-strategy", timeout=60)
    assert p.returncode != 0 and "no-such-strategy" in (p.stderr + p.stdout)
    p = _cli("stress", "-w", "no-such-workload", timeout=60)
    assert p.returncode != 0 and "no-such-workload" in (p.stderr + p.stdout)
    p = _cli("stress", "-w", "gsource", timeout=60)
    assert p.returncode != 0 and "--path gsource" in (p.stderr + p.stdout)
    p = _cli("stress", "--path", "glib", timeout=60)
    assert p.returncode == 2 and "glib" in p.stderr
    p = _cli("stress", "--kill-rate", "-1", timeout=60)
    assert p.returncode == 2 and "--kill-rate" in p.stderr


def _my_processes(prefix):
    """pids of processes whose command line mentions one of our segments."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"aiocore_workloads._child" in cmd and prefix.encode() in cmd:
            try:
                with open(f"/proc/{d}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            out.append(int(d))
    return out


def _wait_children(prefix, present, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(_my_processes(prefix)) == present:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.stress
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupted_leaves_nothing(sig):
    from conftest import PREFIX

    p = subprocess.Popen(
        [sys.executable, "-m", "aiocore._cli", "stress", "-s", "explicit-mb", "-w", "mixed", "-d", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert _wait_children(PREFIX, True), "the workload's processes never started"
        time.sleep(0.5)
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 128 + sig, err
        assert _wait_children(PREFIX, False, timeout=10), "workload processes outlived the runner"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.stress
def test_runner_killed_children_die_and_gc_reclaims():
    from conftest import PREFIX

    p = subprocess.Popen(
        [sys.executable, "-m", "aiocore._cli", "stress", "-s", "explicit-mb", "-w", "thread-pool", "-d", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_children(PREFIX, True)
        p.kill()
        p.wait(timeout=10)
        assert _wait_children(PREFIX, False, timeout=10), "children survived a kill -9 of the runner"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # The owner died with -9: its segment is reclaimable.
    from aiocore._context._aio import gc_segments

    gc_segments(prefix=PREFIX)
    left = [e for e in os.listdir("/dev/shm") if e.startswith(PREFIX)]
    assert not left


@pytest.mark.stress
@pytest.mark.parametrize("when", [0, 3])
def test_run_pair_stopped_unlinks_the_segment_at_once(when):
    """A pair stopped by a signal (during the children's start-up, or
    running) unlinks its segment before run_pair returns, not at exit."""
    import gc

    from conftest import PREFIX

    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > when

    with pytest.raises(W._runner.Stopped):
        W.run_pair("explicit-mb", W.get("ping-pong"), 30, 1, should_stop=should_stop)
    gc.collect()  # a context only reachable from a dead frame must not be needed
    left = [e for e in os.listdir("/dev/shm") if e.startswith(PREFIX)]
    assert not left, f"segments left after a stopped pair: {left}"


# --- the chaos build ----------------------------------------------------------


def test_chaos_modes_round_trip_and_bad_mode_is_named():
    """A chaos setting survives the children's environment; a bad mode is named."""
    from aiocore_workloads._chaos import Chaos

    c = Chaos("notifiers", 12345, 30, 5000)
    assert Chaos.from_env(c.env()) == c
    assert Chaos.from_env(None).mode == "off"
    assert c.pauses("pingpong") and not c.pauses("owner")
    assert Chaos("owner", 1).pauses("owner") and not Chaos("owner", 1).pauses("guest")
    with pytest.raises(ValueError, match="sometimes"):
        Chaos("sometimes")


def test_chaos_build_pauses_only_when_configured():
    """The chaos build counts pauses once turned on; the default build has none."""
    from aiocore_workloads._chaos import Chaos, build, use_build

    _info, _ffi, lib = build("explicit-mb")
    assert lib.aio_chaos_config(1, 7, 100, 0) == 1
    with use_build(Chaos("owner", 7)):
        with aiocore.AioContext.create("explicit-mb") as ctx:
            assert ctx._lib is lib
            bh = ctx.bh_new(lambda: None)
            before = lib.aio_chaos_count()
            ctx.bh_schedule(bh)
            ctx.aio_poll(blocking=False)
            assert lib.aio_chaos_count() > before
    lib.aio_chaos_config(0, 7, 0, 0)
    with aiocore.AioContext.create("explicit-mb") as ctx:
        assert ctx._lib.aio_chaos_config(1, 7, 100, 0) == 0


@pytest.mark.stress
def test_notifier_chaos_catches_bug1_with_its_seed():
    """Notifier-side chaos widens bug1's window (notified=1 before the event):
    caught as a busy-loop state, the run's seed and mode in the result."""
    from aiocore_workloads._chaos import Chaos

    if "bug1" not in _plugins.names():
        pytest.skip("bug1 is not installed")
    for k in range(20):
        r = W.run_pair("bug1", W.get("virtio-net-tx"), 5.0, 2, seed=100 + k, until_found=True,
                       chaos=Chaos("notifiers", 100 + k))
        assert not r.errors and r.lost_work == 0, _describe(r)
        if r.busy_loops:
            assert r.chaos == "notifiers" and r.seed == 100 + k
            assert r.row()["chaos"] == "notifiers"
            return
    pytest.fail("bug1 never caught with notifier chaos in 20 runs of 5 s")
