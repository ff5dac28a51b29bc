# IR -> Promela (aiocore._compiler._promela): the model is accepted by spin and spin's
# SC verdict on every built-in, in every configuration it supports, is the
# declared one; the properties are not vacuous.
from __future__ import annotations

import shutil

import pytest
from strategies_helpers import BUILTINS, builtin_class

from aiocore._errors import AioError
from aiocore._compiler._promela import generate_promela, parse_pan, run_spin
from aiocore._compiler._strategy import Strategy, describe

needs_spin = pytest.mark.skipif(shutil.which("spin") is None, reason="spin not installed")


def model(cls):
    return generate_promela(describe(cls), origin=cls.origin, doc=cls.__doc__ or "")


def _cases():
    for name in sorted(BUILTINS):
        cls = builtin_class(name)
        for config in ("home", "gsource") + (("foreign",) if cls.foreign_pollers else ()):
            yield pytest.param(name, config, id=f"{name}-{config}")


@needs_spin
@pytest.mark.spin
@pytest.mark.parametrize("name, config", list(_cases()))
def test_spin_sc_verdict_matches_expectation(name, config):
    """spin's verdict on the exported model is the strategy's declared SC verdict for that config."""
    cls = builtin_class(name)
    want = cls.expected_configs.get(config, {}).get("sc", cls.expected["sc"])
    if config != "foreign" and want != cls.expected["sc"]:
        pass  # late-clear: only the foreign config loses wake-ups under SC
    v = run_spin(model(cls), config=config, timeout=120)
    assert v.verdict == want, {c: r.output[-600:] for c, r in v.claims.items()}
    assert v.states > 0


class NeverSets(Strategy):
    """notify never writes the event."""

    name = "never-sets"

    def notify(s):
        s.atomic_read(s.notify_me)


class NeverClears(Strategy):
    """notify always writes the event; nobody ever clears it."""

    name = "never-clears"

    def notify(s):
        s.event_set()


@needs_spin
@pytest.mark.spin
def test_lost_wakeup_claim_is_not_vacuous():
    """A strategy that never writes the event is reported as lost-wakeup."""
    assert run_spin(model(NeverSets)).verdict == "lost-wakeup"


@needs_spin
@pytest.mark.spin
def test_busy_loop_claim_is_not_vacuous():
    """A strategy that never clears the event is reported as busy-loop."""
    v = run_spin(model(NeverClears))
    assert v.verdict == "busy-loop"
    assert v.claims["lost_wakeup"].errors == 0


@needs_spin
@pytest.mark.spin
def test_foreign_config_is_refused_without_foreign_pollers():
    """-DFOREIGN on a strategy that does not allow foreign pollers is a spin error, not a pass."""
    with pytest.raises(AioError, match="does not allow foreign pollers"):
        run_spin(model(builtin_class("explicit-mb")), config="foreign")


def test_model_has_the_seeds_processes():
    """The model has waiter, notifier, temporary_waiter (foreign only) and both claims."""
    m = model(builtin_class("notified"))
    for part in ("active proctype waiter()", "active [NOTIFIERS] proctype notifier()",
                 "proctype temporary_waiter()", "never lost_wakeup", "never busy_loop",
                 "inline strategy_accept()", "atomic { accept_"):
        assert part in m, part
    assert "temporary_waiter" not in model(builtin_class("explicit-mb")).replace(
        "does not allow foreign pollers", ""
    ).split("#endif", 1)[1]


def test_fences_become_comments_and_private_fields_are_prefixed():
    """Fences are SC no-ops kept as comments; strategy fields are s_NAME globals."""

    class Priv(Strategy):
        name = "priv"
        shared = ("if",)  # a Promela keyword: must not clash

        def notify(s):
            s.smp_mb(pairs="the poller")
            if s.atomic_fetch_add(getattr(s, "if"), 1) == 0:
                s.event_set()

    m = model(Priv)
    assert "int s_if;" in m
    assert "/* smp_mb(): pairs with the poller (a no-op under SC) */" in m
    assert "s_if = s_if + 1 }" in m


def test_parse_pan_reads_errors_and_states():
    """parse_pan extracts pan's error count and stored states; garbage is an error."""
    out = "State-vector 44 byte, depth reached 57, errors: 1\n     2169 states, stored\n"
    assert parse_pan(out) == (1, 2169)
    with pytest.raises(AioError, match="cannot read pan"):
        parse_pan("segmentation fault")
