"""The litmus corpus (tests/litmus/corpus.json) held against herd7: the axiomatic checker,
herd7 litmus files (aiocore._checker._herd) and the op language's errors."""
import json
import os
import re
import time

import pytest

from aiocore._checker import _axiomatic as A
from aiocore._checker import _herd as H
from aiocore._checker._litmus_ops import LitmusError, parse

CORPUS = os.path.join(os.path.dirname(__file__), "litmus", "corpus.json")
DATA = json.load(open(CORPUS))
PROGRAMS = DATA["programs"]
MODEL = {"aarch64-llsc": "arm-llsc", "aarch64-lse": "arm-lse", "x86": "tso", "sc": "sc"}
needs_herd = pytest.mark.skipif(H.herd_binary() is None, reason="herd7 not installed")

SB_RMW_LD = [[("add", "notify_me", 2), ("ld", "bh", "r0")], [("xchg", "bh", 1), ("mb",), ("ld", "notify_me", "r1")]]


def _recorded(e, target):
    return {tuple(o) for o in e["herd"][target]["outcomes"]}


def test_corpus_size_and_sources():
    """The corpus has at least 150 programs, most of them from herdtools7 rather than written here."""
    foreign = [e for e in PROGRAMS if e["origin"]]
    assert len(PROGRAMS) >= 150
    assert len(foreign) * 2 > len(PROGRAMS), (len(foreign), len(PROGRAMS))
    assert sum("catalogue/aarch64" in e["origin"] for e in foreign) >= 20
    assert all(e["source"] for e in PROGRAMS)


def test_header_records_herd7_model_and_command():
    """The corpus names herd7's version, each target's model file and the exact command."""
    h = DATA["header"]
    assert h["herd7"].startswith("7.57")
    for t in H.TARGETS:
        assert h["models"][t] == H.MODEL_FILES[t]
        assert h["commands"][t] == "herd7 " + " ".join(H.herd_args(t)) + " FILE.litmus"


def test_translated_originals_have_herd7s_verdict():
    """Every translated herdtools7 AArch64/x86 test was kept only where herd7 judges the original as its translation."""
    checked = 0
    for e in PROGRAMS:
        for o in [e] + e.get("also", []):
            if o.get("original"):
                for t in o["original"]["targets"]:
                    assert e["herd"][t]["allowed"] == o["original"]["allowed"], (e["name"], o["origin"], t)
                    checked += 1
    assert checked >= 40


@pytest.mark.parametrize("target", H.TARGETS)
def test_axiomatic_checker_equals_herd7_on_the_corpus(target):
    """On every corpus program the axiomatic checker allows exactly herd7's outcomes for the target."""
    model = MODEL[target]
    differ = []
    for e in PROGRAMS:
        got = A.outcomes(model, e["threads"])
        if got != _recorded(e, target):
            differ.append((e["name"], sorted(got - _recorded(e, target)), sorted(_recorded(e, target) - got)))
        assert A.allowed(model, e["threads"], e["final"], **e["regs"]) is e["herd"][target]["allowed"], e["name"]
    assert not differ, f"{len(differ)} of {len(PROGRAMS)} differ from herd7: {differ[:5]}"


def test_arm_is_the_union_of_the_profiles():
    """`arm` allows an outcome iff arm-llsc or arm-lse does (herd7's two verdicts' union)."""
    for e in PROGRAMS[::3]:
        union = _recorded(e, "aarch64-llsc") | _recorded(e, "aarch64-lse")
        assert A.outcomes("arm", e["threads"]) == union, e["name"]


def test_profiles_differ_on_the_wakeup_shape():
    """A seq_cst RMW then a plain load is reordered with LL/SC and not with LSE (the 2020 aarch64 hang)."""
    assert A.profiles(SB_RMW_LD, r0=0, r1=0) == ("arm-llsc",)
    assert not A.allowed("tso", SB_RMW_LD, r0=0, r1=0)
    assert A.allowed("arm", SB_RMW_LD, r0=0, r1=0)
    rec = {e["name"]: e for e in PROGRAMS}["WAKE+add-ld+xchg-mb-ld"]["herd"]
    assert (rec["aarch64-llsc"]["allowed"], rec["aarch64-lse"]["allowed"]) == (True, False)


def test_axiomatic_checker_is_fast_enough():
    """All five models over the whole corpus take well under a minute."""
    t0 = time.monotonic()
    for m in A.MODELS:
        for e in PROGRAMS:
            A.outcomes(m, e["threads"])
    assert time.monotonic() - t0 < 30


@needs_herd
@pytest.mark.parametrize("target", H.TARGETS)
def test_recorded_verdicts_rerun_live(target):
    """herd7 run now on a sample of the corpus gives the recorded outcomes."""
    for e in PROGRAMS[::15]:
        assert H.run_herd(e["threads"], target) == _recorded(e, target), e["name"]


@needs_herd
@pytest.mark.parametrize("target", H.TARGETS)
def test_to_herd_output_parses_and_asks_the_outcome(target):
    """herd7 reads to_herd's file and its exists clause asks exactly the given outcome."""
    prog = [[("fetch_or", "x", 1, "r0"), ("cmpxchg", "y", 0, 2, "r1"), ("rmb",), ("ld", "z", "r2")],
            [("st", "z", 1), ("wmb",), ("sub", "y", 1), ("and", "x", 2), ("st_rel", "bh", 1)]]
    text = H.to_herd(prog, target, final={"bh": 1}, test_name="T", r0=0, r1=0, r2=0)
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.litmus")
        open(path, "w").write(text)
        out = subprocess.run([H.herd_binary(), *H.herd_args(target), path], capture_output=True, text=True,
                             timeout=300).stdout
    assert re.search(r"^Observation T (Sometimes|Never|Always)", out, re.M), out
    got = bool(re.search(r"^Observation T (Sometimes|Always)", out, re.M))
    assert got is A.allowed(MODEL[target], prog, {"bh": 1}, r0=0, r1=0, r2=0)


def test_to_herd_uses_gcc12s_instructions():
    """The files spell the primitives as GCC 12 compiles them for each target."""
    prog = [[("xchg", "x", 1, "r0"), ("mb",), ("wmb",), ("rmb",), ("sub", "y", 2), ("and", "y", 1),
             ("fetch_add", "y", 3, "r1"), ("ld_acq", "x", "r2"), ("br", "r2"), ("st_rel", "x", 2)]]
    lse = H.to_herd(prog, "aarch64-lse")
    for ins in ("SWPAL", "LDADDAL W16", "LDCLRAL W16", "LDAR", "STLR", "CBNZ", "DMB ISHLD"):
        assert ins in lse, ins
    assert lse.count("MOV W16,#-2") == 2  # sub 2 = LDADDAL of -2; and 1 = LDCLRAL of ~1
    assert len(re.findall(r"DMB ISH\b(?!LD)", lse)) == 2  # smp_mb and smp_wmb
    llsc = H.to_herd(prog, "aarch64-llsc")
    assert "SWPAL" not in llsc and llsc.count("LDAXR") == 4 and llsc.count("STLXR") == 4
    x86 = H.to_herd(prog, "x86")
    assert "xchgl" in x86 and x86.count("mfence") == 1 and "lock addl $-2,(y)" in x86
    assert "DMB" not in x86


def test_reserved_location_names_are_renamed_for_herd():
    """A location named like a register (bh, x1) is spelled bh_ in the file and reported as bh."""
    test = H.to_herd_test([[("st", "bh", 1)]], "x86", final={"bh": 1})
    assert "(bh_)" in test.text and test.keys == ("[bh]",)


@pytest.mark.parametrize("bad,msg", [
    ([[("store", "x", 1)]], "unknown litmus op 'store'"),
    ([[("st", "x")]], "has 1 operands"),
    ([[("st", "x", -1)]], "a value is an int"),
    ([[("st", "x", 1 << 20)]], "a value is an int"),
    ([[("st", "2x", 1)]], "must be an identifier"),
    ([[("ld", "x", "r0"), ("ld", "y", "r0")]], "a second time"),
    ([[("br", "r0"), ("ld", "x", "r0")]], "which no earlier op"),
    ([[("ld", "x", "r0")], [("br", "r0")]], "which no earlier op"),
    ([], "non-empty list of threads"),
    ([[("ld", "x", "x")]], "name both a register and a location"),
])
def test_bad_programs_are_rejected_clearly(bad, msg):
    """A program outside the op language fails with a message naming the problem."""
    with pytest.raises(LitmusError, match=re.escape(msg)):
        parse(bad)


def test_bad_target_model_and_outcome_are_rejected():
    """Unknown targets, models, registers and locations are named in the error."""
    sb = [[("st", "x", 1), ("ld", "y", "r0")]]
    with pytest.raises(LitmusError, match="unknown herd7 target 'arm'"):
        H.to_herd(sb, "arm")
    with pytest.raises(LitmusError, match="unknown model 'power'"):
        A.outcomes("power", sb)
    with pytest.raises(LitmusError, match="no op writes register 'r9'"):
        A.allowed("sc", sb, r9=0)
    with pytest.raises(LitmusError, match="final names 'z'"):
        H.to_herd(sb, "x86", final={"z": 1})


_PRIMITIVE = {"st": "atomic_set", "st_rel": "atomic_store_release", "ld": "atomic_read",
              "ld_acq": "atomic_load_acquire", "mb": "smp_mb", "wmb": "smp_wmb", "rmb": "smp_rmb"}
_ONE_OP = {"st": ("st", "x", 1), "st_rel": ("st_rel", "x", 1), "ld": ("ld", "x", "r0"),
           "ld_acq": ("ld_acq", "x", "r0"), "xchg": ("xchg", "x", 1, "r0"), "cmpxchg": ("cmpxchg", "x", 0, 1, "r0"),
           "add": ("add", "x", 1), "sub": ("sub", "x", 1), "or": ("or", "x", 1), "and": ("and", "x", 1),
           "fetch_add": ("fetch_add", "x", 1, "r0"), "fetch_sub": ("fetch_sub", "x", 1, "r0"),
           "fetch_or": ("fetch_or", "x", 1, "r0"), "fetch_and": ("fetch_and", "x", 1, "r0"),
           "mb": ("mb",), "wmb": ("wmb",), "rmb": ("rmb",)}
_ARM_ORDERING = re.compile(r"\b(LDR|STR|LDAR|STLR|LDAXR|STLXR|SWPAL|CASAL|LDADDAL|LDSETAL|LDCLRAL|DMB ISHLD|DMB ISH)\b")


@pytest.mark.parametrize("target", ["aarch64-llsc", "aarch64-lse"])
@pytest.mark.parametrize("kind", sorted(_ONE_OP))
def test_herd_files_use_the_compiled_code_table(kind, target):
    """Each op's AArch64 instructions in the herd7 file are the sequence _isa's table says GCC 12 emits."""
    from aiocore._checker import _isa
    prim = _PRIMITIVE.get(kind, f"atomic_{kind}")
    body = H.to_herd([[_ONE_OP[kind]]], target).split("P0", 1)[1].split("locations")[0]
    assert tuple(m.lower() for m in _ARM_ORDERING.findall(body)) == _isa.sequence(prim, target)
