# The strategy description -> IR step (aiocore._compiler._strategy.describe, _ir):
# tracing, validation of bad descriptions, fingerprints, the JSON form.
from __future__ import annotations

import json

import pytest
from strategies_helpers import BUILTINS, builtin_class

from aiocore._compiler import _ir
from aiocore._errors import StrategyError
from aiocore._compiler._concrete import run_concrete
from aiocore._compiler._strategy import Strategy, describe


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_describes_with_origin_and_verdicts(name):
    """Every built-in traces, has an origin, and declares a verdict for every model."""
    cls = builtin_class(name)
    ir = describe(cls)
    assert ir.name == name == cls.name
    assert cls.origin
    assert set(cls.expected) == {"sc", "tso", "arm", "arm-llsc", "arm-lse"}
    assert ir.hooks["notify"]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_json_round_trips(name):
    """The IR's JSON form is plain JSON and names every hook."""
    ir = describe(builtin_class(name))
    doc = json.loads(json.dumps(ir.to_json()))
    assert doc["ir_version"] == _ir.IR_VERSION
    assert list(doc["hooks"]) == list(_ir.HOOKS)
    assert doc["foreign_pollers"] == bool(builtin_class(name).foreign_pollers)


def test_expected_table_matches_design():
    """The built-ins declare DESIGN.md's reference verdicts (worst over configs)."""
    # sc, tso, arm (DESIGN.md), then arm-llsc and arm-lse (issue 21: the LL/SC profile lets a
    # seq_cst RMW's store pass later loads, the LSE atomics do not)
    table = {
        "late-clear": ("lost-wakeup", "lost-wakeup", "lost-wakeup", "lost-wakeup", "lost-wakeup"),
        "unconditional": ("pass", "pass", "lost-wakeup", "lost-wakeup", "pass"),
        "notified": ("pass", "pass", "lost-wakeup", "lost-wakeup", "pass"),
        "notified-blocking": ("pass", "pass", "lost-wakeup", "lost-wakeup", "pass"),
        "explicit-mb": ("pass", "pass", "pass", "pass", "pass"),
        "always-notified": ("pass", "pass", "pass", "pass", "pass"),
        "bug1": ("busy-loop", "busy-loop", "busy-loop", "busy-loop", "busy-loop"),
        "bug2": ("lost-wakeup", "lost-wakeup", "lost-wakeup", "lost-wakeup", "lost-wakeup"),
        "no-mb": ("pass", "lost-wakeup", "lost-wakeup", "lost-wakeup", "lost-wakeup"),
        "selfpipe": ("pass", "pass", "pass", "pass", "pass"),
    }
    for name, verdicts in table.items():
        assert builtin_class(name).expected == dict(zip(("sc", "tso", "arm", "arm-llsc", "arm-lse"), verdicts)), name
    lc = builtin_class("late-clear")
    assert lc.foreign_pollers and lc.expected_configs["home"]["sc"] == "pass"


def test_history_flags():
    """accept_nonblocking / foreign_pollers follow the commits (b37548fc, 2018 home-only)."""
    assert builtin_class("unconditional").accept_nonblocking is True
    assert builtin_class("notified").accept_nonblocking is True
    assert builtin_class("notified-blocking").accept_nonblocking is False
    assert builtin_class("notified-blocking").foreign_pollers is False
    assert builtin_class("explicit-mb").foreign_pollers is False
    # upstream reads notified in the notifier's poll handler and the last look only
    ir = describe(builtin_class("always-notified"))
    assert not ir.has_timeout_zero and ir.optional == ("claim_list", "last_look", "notifier_poll")


def test_fingerprint_ignores_source_lines():
    """Moving a hook to other source lines (tmp names) keeps the fingerprint."""

    class A(Strategy):
        name = "fp-a"

        def notify(s):
            if s.atomic_read(s.notify_me):
                s.event_set()

    class B(Strategy):
        name = "fp-b"



        def notify(s):

            if s.atomic_read(s.notify_me):
                s.event_set()

    a, b = describe(A), describe(B)
    assert a.hooks["notify"] != b.hooks["notify"]  # tmp names differ...
    assert a.fingerprint == b.fingerprint  # ...the behaviour does not


def test_fingerprint_changes_with_behaviour():
    """A different primitive or flag gives a different fingerprint."""
    ex = describe(builtin_class("explicit-mb"))
    nomb = describe(builtin_class("no-mb"))
    nb = describe(builtin_class("notified-blocking"))
    n = describe(builtin_class("notified"))
    assert len({ex.fingerprint, nomb.fingerprint, nb.fingerprint, n.fingerprint}) == 4


def test_default_schedule_tmp_is_stable():
    """The inherited schedule hook's tmp is named after Strategy.schedule's own line."""
    s1 = describe(builtin_class("notified")).hooks["schedule"]
    s2 = describe(builtin_class("bug1")).hooks["schedule"]
    assert s1 == s2


def _one(hooks, **attrs):
    return type("S", (Strategy,), {"name": "bad", **attrs, **hooks})


@pytest.mark.parametrize(
    "hooks, message",
    [
        ({"notify": lambda s: s.atomic_inc(s.notify_me)}, "unknown primitive or field 'atomic_inc'"),
        ({"notify": lambda s: s.smp_mb()}, "needs pairs="),
        ({"notify": lambda s: s.atomic_read(s.bh_scheduled)}, "outside a bottom-half hook"),
        ({"notify": lambda s: s.event_set() if s.notify_me else None}, "read it first"),
        ({"notify": lambda s: s.event_set(), "accept": lambda s: 3}, "only timeout_zero, claim"),
        ({"notify": lambda s: s.atomic_set(s.notify_me, 1 << 40)}, "does not fit"),
        ({"notify": lambda s: s.accept(), "accept": lambda s: s.notify()}, "cycle"),
    ],
)
def test_bad_description_is_rejected_with_cause(hooks, message):
    """Each malformed description raises StrategyError naming the problem."""
    with pytest.raises(StrategyError, match=message):
        describe(_one(hooks))


def test_missing_notify_is_rejected():
    """A strategy without notify is refused."""

    class NoNotify(Strategy):
        name = "no-notify"

    with pytest.raises(StrategyError, match="missing hook notify"):
        describe(NoNotify)


def test_bad_expected_is_rejected():
    """An unknown model or verdict in `expected` is refused."""
    with pytest.raises(StrategyError, match="not a verdict"):
        describe(_one({"notify": lambda s: s.event_set()}, expected={"sc": "fine"}))
    with pytest.raises(StrategyError, match="unknown model"):
        describe(_one({"notify": lambda s: s.event_set()}, expected={"power": "pass"}))


@pytest.mark.parametrize("field, decl, message", [
    ("expected", {"arm": "pass", "arm-llsc": "lost-wakeup", "arm-lse": "pass"},
     "declares arm 'pass' but arm-llsc 'lost-wakeup'"),
    ("expected", {"arm": "lost-wakeup", "arm-llsc": "pass", "arm-lse": "pass"},
     "arm is their union"),
    ("expected", {"arm": "lost-wakeup", "arm-lse": "busy-loop"}, "worse than arm"),
    ("expected_configs", {"home": {"arm": "pass", "arm-llsc": "lost-wakeup"}}, r"expected_configs\['home'\]"),
    ("expected_skeletons", {"polling": {"arm": "pass", "arm-lse": "lost-wakeup"}},
     r"expected_skeletons\['polling'\]"),
])
def test_arm_declared_against_its_profiles_is_rejected(field, decl, message):
    """arm's declared verdict must be the worse of the profiles' (arm is their union)."""
    with pytest.raises(StrategyError, match=message):
        describe(_one({"notify": lambda s: s.event_set()}, **{field: decl}))


def test_profiles_alone_imply_arm():
    """Declaring both profiles and not arm is accepted; arm is judged as the worse of the two."""
    from aiocore._compiler._meta import with_profiles

    describe(_one({"notify": lambda s: s.event_set()}, expected={"arm-llsc": "lost-wakeup", "arm-lse": "pass"}))
    assert with_profiles({"arm-llsc": "lost-wakeup", "arm-lse": "pass"})["arm"] == "lost-wakeup"
    assert with_profiles({"arm": "pass"}) == {"arm": "pass", "arm-llsc": "pass", "arm-lse": "pass"}
    assert with_profiles({"arm": "lost-wakeup"}) == {"arm": "lost-wakeup"}


def test_branches_on_read_values_are_enumerated():
    """Both arms of a branch on a read value appear in the IR, nested ones too."""

    class Branchy(Strategy):
        name = "branchy"

        def notify(s):
            v = s.atomic_read(s.notify_me)
            if v == 2:
                s.event_set()
            elif v & 1:
                s.atomic_set(s.notified, v + 1)

    body = describe(Branchy).hooks["notify"]
    assert isinstance(body[0], _ir.Read)
    top = body[1]
    assert isinstance(top, _ir.If) and top.then == (_ir.EventSet(),)
    inner = top.orelse[0]
    assert isinstance(inner, _ir.If) and isinstance(inner.then[0], _ir.Write)
    assert inner.orelse == ()


def test_run_concrete_follows_calls_and_values():
    """run_concrete logs primitives with scripted reads, following hook calls."""
    cls = builtin_class("notified")
    vals = iter([0, 5, 1])  # atomic_sub's old value, xchg returns 5, the event was set
    log = run_concrete(cls, "poll_end", lambda op, f: next(vals))
    assert log == [
        ("atomic_sub", "notify_me", 2, 0),
        ("atomic_xchg", "notified", 0, 5),
        ("event_test_and_clear", "event", None, 1),
    ]
