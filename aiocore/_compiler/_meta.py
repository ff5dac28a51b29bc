# What a strategy class declares besides its hooks, and its checks: the
# name, the verdicts it expects per model, configuration and skeleton, its
# shared fields (describe() in _strategy.py runs validate_meta first); and
# StrategyInfo, what the registry (_plugins.py) knows of one strategy.
#
# May import: _ir, _skeleton, _errors (it sits below _strategy).
from __future__ import annotations

import attrs

from . import _ir
from ._skeleton import SKELETONS
from .._errors import StrategyError

VERDICTS = ("pass", "lost-wakeup", "busy-loop", "lost-work")
#: arm-llsc / arm-lse: the ARMv8 code-generation profiles; arm: their union
MODELS = ("sc", "tso", "arm-llsc", "arm-lse", "arm")
CONFIGS = ("home", "foreign", "gsource")


#: The ARMv8 code-generation profiles; "arm" is their union.
PROFILES = ("arm-llsc", "arm-lse")


def _worse(a: str, b: str) -> str:
    return max(a, b, key=VERDICTS.index)


def with_profiles(per: dict) -> dict:
    """A {model: verdict} declaration with what it implies about arm and its
    profiles: arm is the union of the profiles (an execution either allows is
    an arm execution), so arm's verdict is the worse of theirs, and a
    strategy that passes on arm passes on each profile."""
    out = dict(per)
    if out.get("arm") == "pass":
        for p in PROFILES:
            out.setdefault(p, "pass")
    if "arm" not in out and all(p in out for p in PROFILES):
        out["arm"] = _worse(*(out[p] for p in PROFILES))
    return out


def _check_union(name: str, where: str, per: dict):
    """arm's declared verdict must be the worse of its declared profiles'."""
    if "arm" not in per:
        return
    declared = {p: per[p] for p in PROFILES if p in per}
    if len(declared) == 2 and per["arm"] != _worse(*declared.values()):
        raise StrategyError(
            f"{name}: {where} declares arm {per['arm']!r} but arm-llsc {declared['arm-llsc']!r} and "
            f"arm-lse {declared['arm-lse']!r}: arm is their union, so its verdict is the worse of the two")
    for p, v in declared.items():
        if VERDICTS.index(v) > VERDICTS.index(per["arm"]):
            raise StrategyError(f"{name}: {where} declares {p} {v!r}, worse than arm {per['arm']!r}: arm is "
                                f"the union of the profiles, so it fails wherever {p} does")


def validate_meta(cls):
    """Raise StrategyError if a strategy class declares something malformed."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise StrategyError(f"{cls.__name__} has no name")
    if not all(c.isalnum() or c in "-_" for c in name) or len(name) > 31:
        raise StrategyError(f"strategy name {name!r}: use at most 31 letters, digits, '-' or '_'")
    exp = getattr(cls, "expected", {}) or {}
    if not isinstance(exp, dict):
        raise StrategyError(f"{name}: expected must be a dict {{model: verdict}}")
    for m, v in exp.items():
        if m not in MODELS:
            raise StrategyError(f"{name}: expected names unknown model {m!r} (models: {', '.join(MODELS)})")
        if v not in VERDICTS:
            raise StrategyError(f"{name}: expected[{m!r}] = {v!r} is not a verdict ({', '.join(VERDICTS)})")
    _check_union(name, "expected", exp)
    for c, per in (getattr(cls, "expected_configs", {}) or {}).items():
        if c not in CONFIGS:
            raise StrategyError(f"{name}: expected_configs names unknown config {c!r}")
        for m, v in per.items():
            if m not in MODELS or v not in VERDICTS:
                raise StrategyError(f"{name}: expected_configs[{c!r}] has a bad entry {m!r}: {v!r}")
        _check_union(name, f"expected_configs[{c!r}]", per)
    sks = getattr(cls, "skeletons", ("2015",))
    if isinstance(sks, str) or not isinstance(sks, (tuple, list)) or not sks:
        raise StrategyError(f"{name}: skeletons must be a non-empty tuple of names ({', '.join(SKELETONS)})")
    for sk in sks:
        if sk not in SKELETONS:
            raise StrategyError(f"{name}: skeletons names unknown skeleton {sk!r} (skeletons: {', '.join(SKELETONS)})")
    esk = getattr(cls, "expected_skeletons", {}) or {}
    if not isinstance(esk, dict):
        raise StrategyError(f"{name}: expected_skeletons must be a dict {{skeleton: {{model: verdict}}}}")
    for sk, per in esk.items():
        if sk not in SKELETONS:
            raise StrategyError(f"{name}: expected_skeletons names unknown skeleton {sk!r}")
        if not isinstance(per, dict):
            raise StrategyError(f"{name}: expected_skeletons[{sk!r}] must be a dict {{model: verdict}}")
        for m, v in per.items():
            if m not in MODELS or v not in VERDICTS:
                raise StrategyError(f"{name}: expected_skeletons[{sk!r}] has a bad entry {m!r}: {v!r}")
        _check_union(name, f"expected_skeletons[{sk!r}]", per)
    shared = tuple(getattr(cls, "shared", ()) or ())
    if len(shared) > _ir.MAX_STRATEGY_FIELDS:
        raise StrategyError(f"{name}: at most {_ir.MAX_STRATEGY_FIELDS} shared fields")
    for f in shared:
        if not (isinstance(f, str) and f.isidentifier() and f not in _ir.CORE_FIELDS):
            raise StrategyError(f"{name}: bad shared field name {f!r}")
    if getattr(cls, "notify", None) is None:
        raise StrategyError(f"{name}: missing hook notify")


@attrs.frozen
class StrategyInfo:
    """What the registry knows of one strategy (see _plugins.py)."""

    name: str
    origin: str
    source: str  # distribution[entry-point]
    status: str  # "ok" or the reason it is broken
    expected: dict
    cls: type | None = None
    ir: _ir.StrategyIR | None = None
    expected_configs: dict = attrs.field(factory=dict)
    foreign_pollers: bool = False
    skeletons: tuple = ("2015",)
    expected_skeletons: dict = attrs.field(factory=dict)
