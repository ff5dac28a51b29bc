"""Crash-stop faults in the checker (--faults crash) and the owner's recovery (--recovery)."""
import pytest

from aiocore._compiler import _plugins
from aiocore._checker import check_ir
from aiocore._checker._window import explorer as Explorer
from aiocore._checker._assemble import build
from aiocore._checker._program import CHOOSE, DEATH, DONE, DRAIN, WRITE, ModelError
from aiocore._checker._trace import crash_of

MODELS = ("sc", "tso", "arm")
P, LW, BL = "pass", "lost-wakeup", "busy-loop"
ORDER = ("pass", "lost-wakeup", "busy-loop", "lost-work")
NOTIFIED_FAMILY = ("notified", "notified-blocking", "explicit-mb", "no-mb")

# Config home, --faults crash, no recovery; the same table on both skeletons.
# A notifier killed between bh_schedule's xchg and its notify leaves a BH
# nobody is told about (lost wakeup, every strategy); in the notified family
# one killed between event_set and notified = 1 leaves the notifier readable
# with notified == 0, which accept never clears (busy loop, the worse one).
CRASH = {
    "late-clear": {"sc": LW, "tso": LW, "arm": LW},
    "unconditional": {"sc": LW, "tso": LW, "arm": LW},
    "notified": {"sc": BL, "tso": BL, "arm": BL},
    "notified-blocking": {"sc": BL, "tso": BL, "arm": BL},
    "explicit-mb": {"sc": BL, "tso": BL, "arm": BL},
    "always-notified": {"sc": LW, "tso": LW, "arm": LW},
    "bug1": {"sc": BL, "tso": BL, "arm": BL},
    "bug2": {"sc": BL, "tso": BL, "arm": BL},
    "no-mb": {"sc": BL, "tso": BL, "arm": BL},
    "selfpipe": {"sc": LW, "tso": LW, "arm": LW},
}

CASES = [(n, m, sk) for n in CRASH for m in MODELS for sk in ("2015", "polling")]
IDS = [f"{n}-{m}-{sk}" for n, m, sk in CASES]


def _ir(name):
    return _plugins.get(name).ir


@pytest.mark.parametrize("name,model,skeleton", CASES, ids=IDS)
def test_crash_verdict_and_recovery(name, model, skeleton):
    """Without recovery, the table's verdict, after a crash the trace names; with recovery,
    exactly the verdict of the crash-free run (recovery undoes everything a crash breaks) but
    for a lock-free BH list, which a notifier dying inside its insertion leaves unrecoverable."""
    ir = _ir(name)
    free = check_ir(ir, model, "home", want_trace=False, skeleton=skeleton)
    crash = check_ir(ir, model, "home", skeleton=skeleton, faults="crash")
    rec = check_ir(ir, model, "home", want_trace=False, skeleton=skeleton, faults="crash",
                   recovery=True)
    assert not (free.truncated or crash.truncated or rec.truncated)
    assert crash.verdict == CRASH[name][model]
    assert ORDER.index(crash.verdict) >= ORDER.index(free.verdict)
    if ORDER.index(crash.verdict) > ORDER.index(free.verdict):
        # a failure no crash-free run has: its counterexample goes through a crash
        assert crash_of(crash.trace) is not None, crash.format_trace()
        assert "after a crash" in crash.explanation
    if ir.has_list and rec.verdict != free.verdict:
        # The one thing recovery cannot undo: a lock-free BH list (QEMU's
        # bh_list since 8c6b0356).  A notifier that dies after setting PENDING
        # and before linking the BH leaves it pending on no list: every later
        # schedule sees PENDING and skips the insertion, and aio_bh_poll walks
        # only the list.  QEMU's threads never die alone; a process can.
        rec = check_ir(ir, model, "home", skeleton=skeleton, faults="crash", recovery=True)
        c = crash_of(rec.trace)
        assert rec.verdict == "lost-wakeup" and c is not None, rec.format_trace()
        assert c["process"].startswith("notifier") and "schedule" in c["where"], c
        return
    assert rec.verdict == free.verdict, (free.verdict, rec.verdict)


@pytest.mark.parametrize("name", NOTIFIED_FAMILY)
@pytest.mark.parametrize("model", MODELS)
def test_notified_family_busy_loops_after_a_crash_between_event_set_and_notified(name, model):
    """The closing note's case: the notifier dies after event_set, before notified = 1; the
    notifier stays readable with notified == 0 and accept never clears it."""
    r = check_ir(_ir(name), model, "home", faults="crash")
    assert r.verdict == BL
    c = crash_of(r.trace)
    assert c is not None and c["process"].startswith("notifier"), r.format_trace()
    assert c["op"] == "crashes before atomic_mb_set(notified, 1)", r.format_trace()
    before = r.trace[:c["step"] - 1]
    assert any(s["process"] == c["process"] and s["op"] == "event_notifier_set()" for s in before)
    end = r.trace[-1]["state"]
    assert end["notifier"] == "readable" and end["memory"]["notified"] == 0
    assert end["processes"][c["process"]] == "crashed"
    loop = [s for s in r.trace[:-1] if s.get("loop")]
    assert loop and all(s["process"] == "home" for s in loop)


@pytest.mark.parametrize("name", NOTIFIED_FAMILY)
def test_recovery_clears_the_orphaned_event(name):
    """With recovery the same crash ends in a sleep: the owner's unconditional test_and_clear."""
    r = check_ir(_ir(name), "sc", "home", faults="crash", recovery=True)
    assert r.verdict == P, r.format_trace()


@pytest.mark.parametrize("config", ["foreign", "gsource"])
@pytest.mark.parametrize("name", ["unconditional", "notified"])
def test_recovery_in_the_other_configs(name, config):
    """The foreign poller crashes too (config foreign); the glib path recovers after its wait."""
    ir = _ir(name)
    free = check_ir(ir, "sc", config, want_trace=False)
    crash = check_ir(ir, "sc", config, want_trace=False, faults="crash")
    rec = check_ir(ir, "sc", config, want_trace=False, faults="crash", recovery=True)
    assert free.verdict == P and crash.verdict != P and rec.verdict == P


def test_foreign_poller_may_crash():
    prog = build(_ir("notified"), "sc", "foreign", 1, 1, faults="crash")
    assert [p.crash >= 0 for p in prog.procs] == [False, True, True]  # home, notifier0, foreign


@pytest.mark.parametrize("model", ["tso", "arm-llsc", "arm-lse"])
def test_a_crash_may_come_before_a_buffered_store(model):
    """Under tso/arm a store enters the buffer as a local step: a crash point precedes it."""
    n = build(_ir("notified"), model, "home", 1, 1, faults="crash").procs[1]
    writes = [pc for pc, ins in enumerate(n.code) if ins[0] == WRITE]
    assert writes and all(n.code[pc - 1][0] == CHOOSE and n.code[pc - 1][1] == (pc,) for pc in writes)
    plain = build(_ir("notified"), model, "home", 1, 1).procs[1]
    assert CHOOSE not in [ins[0] for ins in plain.code]


@pytest.mark.parametrize("model,tail", [("sc", [DEATH, DONE]), ("tso", [DRAIN, DEATH, DONE]),
                                        ("arm-llsc", [DRAIN, DEATH, DONE]),
                                        ("arm-lse", [DRAIN, DEATH, DONE])])
def test_crash_tail(model, tail):
    """A dead process's buffer drains, then its pidfd becomes readable (recovery only)."""
    n = build(_ir("always-notified"), model, "home", 1, 1, faults="crash", recovery=True).procs[1]
    assert [ins[0] for ins in n.code[n.crash:]] == tail
    n = build(_ir("always-notified"), model, "home", 1, 1, faults="crash").procs[1]
    assert [ins[0] for ins in n.code[n.crash:]] == [DONE]


@pytest.mark.parametrize("model", ["tso", "arm-llsc", "arm-lse"])
def test_a_dead_process_store_buffer_drains(model):
    """Some reachable state has a crashed notifier with stores in its buffer, and every
    quiescent state (all others done) has every buffer empty: its stores committed."""
    ex = Explorer(build(_ir("always-notified"), model, "home", 1, 1, faults="crash"))
    r = ex.explore()
    crashed_with_stores = 0
    for s in r.parent:
        _, _, _, procs = ex.decode(s)
        pc, _, buf, _ = procs[1]
        if pc >= ex.prog.procs[1].crash and buf:
            crashed_with_stores += 1
        if ex.quiescent(s):
            assert not buf
    assert crashed_with_stores


def test_recovery_needs_crash_faults():
    with pytest.raises(ModelError, match="needs faults='crash'"):
        build(_ir("notified"), "sc", "home", 1, 1, recovery=True)


def test_unknown_faults_are_refused():
    with pytest.raises(ModelError, match="unknown faults 'byzantine'"):
        check_ir(_ir("notified"), "sc", "home", faults="byzantine")


@pytest.mark.parametrize("model", ["sc", "tso", "arm-llsc", "arm-lse"])
@pytest.mark.parametrize("skeleton", ["2015", "polling"])
def test_memoized_moves_equal_direct_computation_with_crashes(model, skeleton):
    """The new moves (crash, CHOOSE, DEATH, DTAC) are the same memoized and recomputed."""
    import random

    ex = Explorer(build(_ir("notified"), model, "home", 1, 2, skeleton=skeleton, faults="crash",
                        recovery=True))
    r = ex.explore()
    rng = random.Random(11)
    states = list(r.parent)
    for s in rng.sample(states, min(800, len(states))):
        assert sorted(t for _, t in ex.successors(s)) == sorted(t for _, t in ex.successors(s, verbose=True))
