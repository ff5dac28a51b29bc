# The chaos build of a stress run (aiocore/_csrc/aio_chaos.h).
#
# Modes, per run: "off" (the default build), "notifiers" (every process but
# the owner pauses at random before its primitives: the owner's
# store-buffering windows stay untouched), "owner" (only the owner pauses),
# "pressure" (nobody pauses; every process makes some of its strategy's
# stores wait in its store buffer behind cache misses, which widens the
# store-buffering windows a missing fence leaves open -- aio_chaos.h).
# The build is the strategy's own C, generated from the same IR, compiled
# with -DAIO_PRIM_HOOKS -DAIO_CHAOS (same fingerprint: the hooks are the
# same).  The runner and its children load it instead of the default build
# while a chaos run lasts (use_build); the children learn the mode from
# AIOCORE_STRESS_CHAOS ("mode:seed:pct:max_ns").
from __future__ import annotations

import contextlib

import attrs

MODES = ("off", "notifiers", "owner", "pressure")
#: % of the strategy's stores preceded by a pressure burst (pressure mode).
PRESSURE_PCT = 50
ENV = "AIOCORE_STRESS_CHAOS"
CFLAGS = ("-DAIO_PRIM_HOOKS", "-DAIO_CHAOS")


@attrs.define(frozen=True)
class Chaos:
    mode: str = "off"
    seed: int = 0
    pct: int = 25  # % of primitives preceded by a pause
    max_ns: int = 20_000  # a pause is uniform in [0, max_ns]

    def __attrs_post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"chaos mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    def env(self) -> str:
        return f"{self.mode}:{self.seed}:{self.pct}:{self.max_ns}"

    @classmethod
    def from_env(cls, value: str | None) -> "Chaos":
        if not value:
            return cls()
        mode, seed, pct, max_ns = value.split(":")
        return cls(mode, int(seed), int(pct), int(max_ns))

    def pauses(self, role: str) -> bool:
        """Whether a process of this role pauses in this mode."""
        return self.mode == "owner" if role == "owner" else self.mode == "notifiers"

    def c_mode(self, role: str) -> int:
        """aio_chaos_config's `on` for a process of this role: 0 off, 1 pauses, 2 pressure."""
        if self.mode == "pressure":
            return 2
        return 1 if self.pauses(role) else 0


def build(strategy: str):
    """(info, ffi, lib): the chaos build of a strategy."""
    from aiocore._compiler._build import load_cached
    from aiocore._context._aio import load_strategy
    from aiocore._compiler._load import c_source

    info = load_strategy(strategy)[0]
    fp = info.ir.fingerprint if getattr(info, "ir", None) is not None else "handwritten"
    ffi, lib = load_cached(f"{info.name}-{fp}", c_source(info), extra_cflags=CFLAGS)
    return info, ffi, lib


@contextlib.contextmanager
def use_build(chaos: Chaos):
    """While active, contexts created or attached here load the chaos build."""
    if chaos.mode == "off":
        yield
        return
    from aiocore._context import _aio as _context

    orig = _context._load_build

    def load(strategy, step_log, cflags=()):
        if step_log or cflags:  # the step-log and breakpoint builds keep their own flags
            return orig(strategy, step_log, cflags)
        return build(strategy)

    _context._load_build = load
    try:
        yield
    finally:
        _context._load_build = orig


def configure(lib, chaos: Chaos, role: str, salt: int) -> None:
    """Turn this process's pauses on or off (per its role and the mode)."""
    on = chaos.c_mode(role)
    seed = (chaos.seed * 0x9E3779B97F4A7C15 + salt + 1) & ((1 << 64) - 1)
    pct = PRESSURE_PCT if on == 2 else chaos.pct
    if lib.aio_chaos_config(on, seed, pct, chaos.max_ns) != 1 and on:
        raise RuntimeError("the chaos build did not load (aio_chaos_config says no chaos)")


__all__ = ["Chaos", "MODES", "ENV", "build", "use_build", "configure"]
