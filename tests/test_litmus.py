"""aiocore.litmus, the public litmus API: questions, answers, herd7 files, bad input.

The sc answers are held against a brute-force interleaving interpreter
written here (every op atomic, in program order), so that the public API is
judged by a definition it shares no code with; the weaker models against
herd7 where it is installed.
"""
from __future__ import annotations

import itertools
import shutil

import pytest

import aiocore.litmus as litmus

SB = [[("st", "x", 1), ("ld", "y", "r0")], [("st", "y", 1), ("ld", "x", "r1")]]
SB_XCHG = [[("xchg", "x", 1), ("ld", "y", "r0")], [("xchg", "y", 1), ("ld", "x", "r1")]]
MP = [[("st", "d", 1), ("st", "f", 1)], [("ld", "f", "r0"), ("ld", "d", "r1")]]
TWO_PLUS_TWO_W = [[("st", "x", 1), ("st", "y", 2)], [("st", "y", 1), ("st", "x", 2)]]
CAS_RACE = [[("cmpxchg", "x", 0, 1, "r0")], [("cmpxchg", "x", 0, 2, "r1")], [("fetch_or", "x", 4, "r2")]]
RMW_MIX = [[("fetch_add", "c", 3, "r0"), ("sub", "c", 1)], [("fetch_and", "c", 2, "r1"), ("or", "c", 8)]]
PROGRAMS = {"SB": SB, "SB+xchg": SB_XCHG, "MP": MP, "2+2W": TWO_PLUS_TWO_W, "CAS-race": CAS_RACE,
            "RMW-mix": RMW_MIX}


def _sc_step(op, mem, regs):
    """One op of the test's own SC interpreter (every op atomic)."""
    k, loc = op[0], op[1] if len(op) > 1 else None
    if k in ("st", "st_rel"):
        mem[loc] = op[2]
    elif k in ("ld", "ld_acq"):
        regs[op[2]] = mem.get(loc, 0)
    elif k == "cmpxchg":
        old = mem.get(loc, 0)
        if old == op[2]:
            mem[loc] = op[3]
        if len(op) > 4:
            regs[op[4]] = old
    elif k not in ("mb", "wmb", "rmb", "br"):
        old = mem.get(loc, 0)
        name = k.removeprefix("fetch_")
        new = {"xchg": lambda: op[2], "add": lambda: old + op[2], "sub": lambda: old - op[2],
               "or": lambda: old | op[2], "and": lambda: old & op[2]}[name]()
        mem[loc] = new % 2**32
        if len(op) > 3:
            regs[op[3]] = old


def _sc_outcomes(threads):
    """Every outcome of every interleaving, by brute force."""
    order = [t for t, ops in enumerate(threads) for _ in ops]
    out = set()
    for perm in set(itertools.permutations(order)):
        mem, regs, pc = {}, {}, [0] * len(threads)
        for t in perm:
            _sc_step(threads[t][pc[t]], mem, regs)
            pc[t] += 1
        keys = litmus.keys(threads)
        out.add(tuple(mem.get(k[1:-1], 0) if k.startswith("[") else regs[k] for k in keys))
    return out


@pytest.mark.parametrize("name", PROGRAMS)
def test_sc_outcomes_are_every_interleavings_outcome(name):
    """outcomes("sc", P) is exactly what some interleaving of P's ops produces."""
    assert litmus.outcomes("sc", PROGRAMS[name]) == _sc_outcomes(PROGRAMS[name])


def test_keys_name_registers_then_final_memory():
    """An outcome's fields are the registers, then "[loc]" per location in order of first use."""
    assert litmus.keys(MP) == ("r0", "r1", "[d]", "[f]")
    assert litmus.registers(MP) == ["r0", "r1"]


def test_store_buffering_is_the_tso_relaxation():
    """SB's 0,0 is forbidden under sc and allowed under tso and arm."""
    assert not litmus.allowed("sc", SB, r0=0, r1=0)
    assert litmus.allowed("tso", SB, r0=0, r1=0)
    assert litmus.allowed("arm", SB, r0=0, r1=0)


def test_final_memory_is_part_of_the_question():
    """2+2W ending with x=1, y=1 needs store-store reordering: arm allows it, tso does not."""
    assert litmus.allowed("arm-lse", TWO_PLUS_TWO_W, final={"x": 1, "y": 1})
    assert not litmus.allowed("tso", TWO_PLUS_TWO_W, final={"x": 1, "y": 1})
    assert litmus.allowed("tso", TWO_PLUS_TWO_W, final={"x": 2, "y": 2})


def test_profiles_name_the_code_generation_that_allows_it():
    """SB with seq_cst exchanges is an LL/SC outcome only; MP's reordering needs neither."""
    assert litmus.profiles(SB_XCHG, r0=0, r1=0) == ("arm-llsc",)
    assert litmus.profiles(MP, r0=1, r1=0) == ("arm-llsc", "arm-lse")
    assert litmus.profiles(SB, final={"x": 2}) == ()


def test_arm_is_the_union_of_its_profiles():
    """Every program's arm outcomes are the llsc outcomes joined with the lse ones."""
    for threads in PROGRAMS.values():
        assert litmus.outcomes("arm", threads) == (litmus.outcomes("arm-llsc", threads)
                                                   | litmus.outcomes("arm-lse", threads))


@pytest.mark.parametrize("bad, why", [
    (lambda: litmus.allowed("power", SB, r0=0), "unknown model 'power'"),
    (lambda: litmus.allowed("sc", SB, r9=0), "no op writes register 'r9'"),
    (lambda: litmus.allowed("sc", SB, final={"z": 1}), "final names 'z'"),
    (lambda: litmus.outcomes("sc", [[("stor", "x", 1)]]), "unknown litmus op 'stor'"),
    (lambda: litmus.outcomes("sc", [[("st", "x", 70000)]]), "a value is an int"),
    (lambda: litmus.outcomes("sc", [[("ld", "x", "r0"), ("ld", "y", "r0")]]), "a second time"),
    (lambda: litmus.outcomes("sc", []), "non-empty list of threads"),
    (lambda: litmus.to_herd(SB, "power"), "unknown herd7 target 'power'"),
])
def test_bad_input_is_a_litmus_error_naming_the_problem(bad, why):
    """A bad model, register, location, op, value or target raises LitmusError saying which."""
    with pytest.raises(litmus.LitmusError, match=why):
        bad()


def test_litmus_error_is_a_value_error():
    """Callers that catch ValueError catch bad litmus input too."""
    assert issubclass(litmus.LitmusError, ValueError)


@pytest.mark.parametrize("target, words", [
    ("aarch64-llsc", ("AArch64", "LDAXR", "STLXR", "exists")),
    ("aarch64-lse", ("AArch64", "SWPAL", "exists")),
    ("x86", ("X86_64", "xchgl", "exists")),
])
def test_to_herd_writes_the_profiles_instructions(target, words):
    """to_herd writes a herd7 file in the target's instructions asking the given outcome."""
    text = litmus.to_herd(SB_XCHG, target, r0=0, r1=0)
    for w in words:
        assert w in text, f"{w} missing from\n{text}"
    other = "SWPAL" if target == "aarch64-llsc" else "STLXR"
    assert other not in text


def test_herd_targets_cover_every_model():
    """Every model but the union has a herd7 target and a model file."""
    for model in litmus.MODELS:
        if model == "arm":
            continue
        target = litmus.HERD_TARGET_OF_MODEL[model]
        assert target in litmus.HERD_TARGETS and litmus.HERD_MODEL_FILES[target].endswith(".cat")


@pytest.mark.skipif(shutil.which("herd7") is None, reason="herd7 not installed")
@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.parametrize("model", ["tso", "arm-llsc", "arm-lse"])
def test_herd7_answers_as_the_models_do(name, model):
    """herd7, run on to_herd's file, lists exactly the model's outcomes."""
    threads = PROGRAMS[name]
    assert litmus.run_herd(threads, litmus.HERD_TARGET_OF_MODEL[model]) == litmus.outcomes(model, threads)
