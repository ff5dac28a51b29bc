# aiocore.litmus: ask the checker's memory models a litmus question, and ask
# herd7 the same one.
#
# A litmus program is a list of threads, each a list of ops in the project's
# own vocabulary (the primitives of DESIGN.md, one op per primitive):
#
#     SB = [[("st", "x", 1), ("ld", "y", "r0")],
#           [("st", "y", 1), ("ld", "x", "r1")]]
#     aiocore.litmus.allowed("tso", SB, r0=0, r1=0)          # True
#     aiocore.litmus.allowed("sc", SB, r0=0, r1=0)           # False
#     aiocore.litmus.profiles(SB_WITH_XCHG, r0=0, r1=0)      # ("arm-llsc",)
#     print(aiocore.litmus.to_herd(SB, "aarch64-llsc", r0=0, r1=0))
#
# The models are the ones `aiocore check` explores a strategy under, run by
# the same explorer (not a second implementation kept for litmus tests):
# "sc", "tso", "arm-llsc" (ARMv8.0 code: LDAXR/STLXR loops), "arm-lse"
# (ARMv8.1 LSE atomics) and "arm", their union -- what GCC's default aarch64
# build, whose outline atomics pick LL/SC or LSE at run time, may do.  The
# op -> instruction table the ARM and x86 models assume is the one in
# aiocore._checker._herd's docstring (and the README's "Memory models"); the tests hold
# the models against herd7 7.57's aarch64.cat, x86tso.cat and sc.cat on a
# 311-program corpus, herdtools7's own catalogue among it.
#
# `to_herd` writes the same question as a herd7 litmus file, so a reader who
# doubts a verdict can ask ARM's official model directly (herd7 -model
# aarch64.cat FILE); `run_herd` and `herd_allowed` do it where herd7 is
# installed.  Inspired by herdtools7's litmus format and by the Linux
# kernel's tools/memory-model, which asks the same questions of LKMM.
"""Litmus tests in aiocore's op language, through the checker's memory models.

Ops (every RMW is seq_cst; values are ints in [0, 65536), memory is uint32_t)::

    ("st", loc, v)            ("st_rel", loc, v)         relaxed / release store
    ("ld", loc, reg)          ("ld_acq", loc, reg)       relaxed / acquire load
    ("xchg", loc, v[, reg])   ("cmpxchg", loc, old, new[, reg])
    ("add"|"sub"|"or"|"and", loc, v)
    ("fetch_add"|"fetch_sub"|"fetch_or"|"fetch_and", loc, v, reg)
    ("mb",) ("wmb",) ("rmb",)                            smp_mb / smp_wmb / smp_rmb
    ("br", reg)               a branch on reg: later ops are control dependent

An outcome is a tuple of the register values (in program order of first
write, ``keys(threads)``) followed by each location's final value.
``allowed(model, threads, final=None, **regs)`` asks about the outcomes that
have these register values and (``final``: location -> value) final memory.
Bad programs, models, registers, locations or targets raise LitmusError (a
ValueError) naming the problem.
"""
from __future__ import annotations

from ._checker._herd import (  # noqa: F401
    MODEL_FILES as HERD_MODEL_FILES,
    TARGET_OF_MODEL as HERD_TARGET_OF_MODEL,
    TARGETS as HERD_TARGETS,
    herd_allowed,
    herd_args,
    herd_binary,
    run_herd,
    to_herd,
)
from ._checker._litmus_ops import LitmusError, parse
from ._checker.litmus import MODELS, PROFILES, TABLE, allowed, outcomes, profiles, registers  # noqa: F401

__all__ = [
    "MODELS", "PROFILES", "TABLE", "HERD_TARGETS", "HERD_MODEL_FILES", "HERD_TARGET_OF_MODEL",
    "LitmusError", "allowed", "outcomes", "profiles", "registers", "keys",
    "to_herd", "run_herd", "herd_allowed", "herd_args", "herd_binary",
]


def keys(threads) -> tuple[str, ...]:
    """The names of an outcome's fields: the registers, then "[loc]" per location."""
    return tuple(parse(threads).keys)
