"""The code that runs is the code that is modelled (issue 21, item 5).

aiocore/_checker/_isa.py states, per target, the instructions the memory
models assume for each primitive.  Here the C is compiled with the native
build's flags (sysconfig's CFLAGS and CCSHARED, then aiocore's CFLAGS, as
cffi/setuptools order them) for x86-64 with gcc and for aarch64 with Debian's
gcc-aarch64-linux-gnu under the three profiles (``-march=armv8-a
-mno-outline-atomics``, ``-march=armv8.1-a``, the default), disassembled with
objdump and held against the table:

- the primitives: a C file generated from the table, one non-inlined
  function per primitive, must compile to exactly the table's sequence;
- every built-in strategy's generated C (``aiocore show --c``) and the
  hand-written unconditional-c: each hook, wrapped in a non-inlined function
  after the same includes the built module has, may contain only ordering
  instructions the table has for the target, as many of each as the hook's
  primitives compile to by the table;
- the same hooks inside the whole translation unit the built module is
  (explicit-mb: source_for(hooks) with the core, for x86-64 and the default
  aarch64 build), through the core's own aio_bench_hook_* wrappers, give
  the same instructions;
- the default profile's outline helpers, in libgcc.a, hold both the LSE
  instruction and the LL/SC loop of the table;
- deliberately wrong variants (a release fence for smp_mb, Linux's
  ``dmb ishst`` for smp_wmb, a relaxed load for atomic_load_acquire, a fence
  compiled away, ARMv8.1 code read as ARMv8.0 code) are reported by the same
  checker functions.
"""
from __future__ import annotations

import concurrent.futures
import functools
import importlib.metadata
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from aiocore._checker import _isa

AARCH64 = [t for t in _isa.TARGETS if t.startswith("aarch64")]
#: The strategy compiled whole, core included, as the built module is, for
#: the code that runs here and the code a distribution builds (each whole
#: unit costs 1-3 s; the other two profiles differ from the default only in
#: how each RMW is spelled, which the hooks-only units check).
WHOLE = "explicit-mb"
WHOLE_TARGETS = ("x86-64", "aarch64-default")
#: The hand-written hooks of aiocore._core (not an entry point).
HANDWRITTEN = "unconditional-c"

WRONG_MB = (
    "#undef smp_mb\n"
    "/* Deliberately wrong: a release fence pairs with nothing on the store->load side. */\n"
    "#define smp_mb() __atomic_thread_fence(__ATOMIC_RELEASE)\n"
)
WRONG_WMB = (
    "#undef smp_wmb\n"
    "/* Deliberately wrong: Linux's store->store barrier, not aiocore's release fence. */\n"
    '#define smp_wmb() __asm__ __volatile__("dmb ishst" ::: "memory")\n'
)
WRONG_ACQUIRE = (
    "#undef atomic_load_acquire\n"
    "#define atomic_load_acquire(p) __atomic_load_n((p), __ATOMIC_RELAXED)\n"
)
HOOKS_ISHST = (
    "#undef smp_mb\n"
    "/* Deliberately wrong: a store->store barrier where a full one is modelled. */\n"
    '#define smp_mb() __asm__ __volatile__("dmb ishst" ::: "memory")\n'
)
HOOKS_NO_MB = (
    "#undef smp_mb\n"
    "/* Deliberately wrong: smp_mb compiled away (a compiler barrier only). */\n"
    "#define smp_mb() barrier()\n"
)


def _native_build():
    """(C source directory, source_for, aiocore's CFLAGS) of the native build.

    The one import of the build module (aiocore._compiler._build since
    issue 20's layout)."""
    from aiocore._compiler import _build

    return Path(_build.CSRC), _build.source_for, list(_build.CFLAGS)


def _missing(target: str) -> str | None:
    t = _isa.TARGETS[target]
    if target == "x86-64" and platform.machine() not in ("x86_64", "AMD64"):
        return f"x86-64 code is compiled natively; this host is {platform.machine()}"
    for tool in (t.cc, t.objdump):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def _flags(target: str) -> list[str]:
    """The native build's flags in setuptools' order, minus the native
    machine's -m options when cross-compiling, plus the target's."""
    cfg = shlex.split(sysconfig.get_config_var("CFLAGS") or "")
    cfg += shlex.split(sysconfig.get_config_var("CCSHARED") or "")
    if target != "x86-64":
        cfg = [f for f in cfg if not f.startswith("-m")]
    csrc, _, cflags = _native_build()
    return cfg + ["-I", str(csrc)], cflags + list(_isa.TARGETS[target].flags)


def _compile(target: str, source: str, tmp: Path, stem: str) -> dict:
    """Compile `source` for `target` and return its parsed disassembly."""
    t = _isa.TARGETS[target]
    src, obj = tmp / f"{stem}.{target}.c", tmp / f"{stem}.{target}.o"
    src.write_text(source)
    pre, post = _flags(target)
    r = subprocess.run([t.cc, *pre, "-c", str(src), "-o", str(obj), *post],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{t.cc} failed on {stem} for {target}:\n{r.stderr[-3000:]}"
    r = subprocess.run([t.objdump, "-dr", "--no-show-raw-insn", str(obj)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return _isa.parse_objdump(r.stdout)


def _strategy_sources() -> dict[str, str]:
    """{name: C hooks} of every built-in strategy and the hand-written one,
    through the CLI's `show --c` (one process, the console script's entry point)."""
    names = sorted(
        e.name for e in importlib.metadata.entry_points(group="aiocore.strategies")
        if e.value.startswith("aiocore_strategies.")
    ) + [HANDWRITTEN]
    script = (
        "import contextlib, io, json, sys\n"
        "from importlib.metadata import entry_points\n"
        "main = entry_points(group='console_scripts')['aiocore'].load()\n"
        "for name in sys.argv[1:]:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        rc = main(['show', '--c', name])\n"
        "    if rc:\n"
        "        sys.exit(f'aiocore show --c {name}: exit {rc}')\n"
        "    print(json.dumps([name, buf.getvalue()]))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(line) for line in r.stdout.splitlines() if line.startswith("["))


_SIG = re.compile(r"static\s+(\w+)\s+strategy_(\w+)\s*\(([^)]*)\)")


def _hooks_unit(hooks_c: str, prelude: str = "") -> str:
    """The built module's translation unit up to the hooks (source_for's
    includes), then one non-inlined ``isa_hook_NAME`` per hook instead of
    the core."""
    _, source_for, _ = _native_build()
    full = source_for(hooks_c)
    head, sep, _ = full.partition(hooks_c)
    assert sep and '#include "aio_core.c"' in full, "source_for no longer puts the hooks before the core"
    wrappers = ["#define ISA_NOINLINE __attribute__((noinline, used))"]
    for ret, name, params in _SIG.findall(_isa.strip_c_comments(hooks_c)):
        args = ", ".join(p.split()[-1].lstrip("*") for p in params.split(","))
        call = f"strategy_{name}({args})"
        wrappers.append(f"ISA_NOINLINE {ret} isa_hook_{name}({params}) "
                        f"{{ {'return ' if ret != 'void' else ''}{call}; }}")
    return head + prelude + hooks_c + "\n" + "\n".join(wrappers) + "\n"


@functools.cache
def _built() -> dict:
    """Everything compiled once, two jobs at a time: {(kind, target, name): funcs}."""
    available = [t for t in _isa.TARGETS if _missing(t) is None]
    if not available:
        return {}
    _, source_for, _ = _native_build()
    strategies = _strategy_sources()
    jobs = {}
    for t in available:
        jobs[("prims", t, "")] = _isa.primitives_c()
        jobs[("prims", t, "wrong-mb")] = _isa.primitives_c(WRONG_MB)
        jobs[("prims", t, "wrong-acquire")] = _isa.primitives_c(WRONG_ACQUIRE)
        if t in AARCH64:
            jobs[("prims", t, "wrong-wmb")] = _isa.primitives_c(WRONG_WMB)
            jobs[("hooks", t, "wrong-ishst")] = _hooks_unit(strategies[WHOLE], HOOKS_ISHST)
        jobs[("hooks", t, "wrong-no-mb")] = _hooks_unit(strategies[WHOLE], HOOKS_NO_MB)
        if t in WHOLE_TARGETS:
            jobs[("whole", t, WHOLE)] = source_for(strategies[WHOLE])
        for name, c in strategies.items():
            jobs[("hooks", t, name)] = _hooks_unit(c)
    tmp = Path(tempfile.mkdtemp(prefix="aiocore-isa-"))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futs = {
                k: pool.submit(_compile, k[1], src, tmp, f"{k[0]}-{k[2] or 'table'}")
                for k, src in sorted(jobs.items(), key=lambda kv: kv[0][0] != "whole")
            }
            out = {k: f.result() for k, f in futs.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["strategies"] = strategies
    return out


def _need(target: str) -> dict:
    why = _missing(target)
    if why:
        pytest.skip(why)
    return _built()


def _expected(hooks_c: str) -> dict:
    csrc, _, _ = _native_build()
    helpers = _isa.helper_counter_adds((csrc / "aio_notifier.h").read_text())
    return _isa.hook_calls(hooks_c, helpers)


# ---------------------------------------------------------------------------
# The table itself


def test_table_has_a_row_for_every_primitive_of_aio_prims_h():
    """Every primitive aio_prims.h defines (native build) has a row, and no row is invented."""
    csrc, _, _ = _native_build()
    native = (csrc / "aio_prims.h").read_text().split("#else /* AIO_TRACE */")[0]
    defined = set(re.findall(r"#define\s+((?:atomic|smp)_\w+)\(", native))
    assert defined == set(_isa.PRIMITIVE_NAMES)
    assert "atomic_mb_read" not in defined


def test_docstring_states_the_table_the_checks_use():
    """The module docstring's table is the rendered data, cell for cell."""
    assert _isa.render_table() in _isa.__doc__


def test_unknown_primitive_or_target_is_named():
    """Asking the table for a row or target it lacks names what is missing."""
    with pytest.raises(KeyError, match="atomic_mb_read"):
        _isa.sequence("atomic_mb_read", "x86-64")
    with pytest.raises(KeyError, match="riscv64"):
        _isa.sequence("smp_mb", "riscv64")


def test_acquiring_lse_load_into_the_zero_register_is_not_modelled():
    """An LDADDAL/SWPAL whose destination is wzr loses its acquire half, and is reported."""
    funcs = _isa.parse_objdump(
        "0000000000000000 <isa_hook_x>:\n"
        "   0:\tswpal\tw1, wzr, [x0]\n"
        "   4:\tswpal\twzr, w2, [x0]\n"
        "   8:\tret\n"
    )
    problems = _isa.check_hook("aarch64-lse", funcs, "isa_hook_x", None)
    assert len(problems) == 1 and "zr destination" in problems[0], problems


# ---------------------------------------------------------------------------
# The primitives


@pytest.mark.parametrize("target", list(_isa.TARGETS))
def test_primitives_compile_to_the_table(target):
    """Each primitive, alone in a function, compiles to its cell of the table."""
    funcs = _need(target)[("prims", target, "")]
    problems = [p for name in _isa.PRIMITIVE_NAMES if (p := _isa.check_primitive(target, name, funcs))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("target", list(_isa.TARGETS))
def test_release_fence_for_smp_mb_is_reported_where_it_differs(target):
    """smp_mb spelled as a release fence is reported on x86 (nothing emitted); on aarch64 both are dmb ish."""
    funcs = _need(target)[("prims", target, "wrong-mb")]
    got = _isa.check_primitive(target, "smp_mb", funcs)
    if target == "x86-64":
        assert got and "compiled to (nothing)" in got, got
        assert _isa.check_primitive(target, "atomic_mb_set", funcs)
    else:
        assert got is None, got


@pytest.mark.parametrize("target", AARCH64)
def test_linux_dmb_ishst_for_smp_wmb_is_reported(target):
    """smp_wmb as Linux's `dmb ishst` is not the dmb ish the ARM models assume."""
    funcs = _need(target)[("prims", target, "wrong-wmb")]
    got = _isa.check_primitive(target, "smp_wmb", funcs)
    assert got and "dmb ishst" in got, got
    assert "dmb ishst" in (_isa.check_primitive(target, "atomic_mb_set", funcs) or "")


@pytest.mark.parametrize("target", AARCH64)
def test_plain_load_where_ldar_is_modelled_is_reported(target):
    """A relaxed load standing in for atomic_load_acquire is an ldr, not the modelled ldar."""
    funcs = _need(target)[("prims", target, "wrong-acquire")]
    got = _isa.check_primitive(target, "atomic_load_acquire", funcs)
    assert got and "compiled to ldr" in got, got


def test_armv8_1_code_is_not_armv8_0_code():
    """The LSE build, read against the LL/SC column, fails on every RMW and nothing else."""
    funcs = _need("aarch64-lse")[("prims", "aarch64-lse", "")]
    failing = {name for name in _isa.PRIMITIVE_NAMES if _isa.check_primitive("aarch64-llsc", name, funcs)}
    rmws = {p.name for p in _isa.PRIMITIVES if p.c11 == "seq_cst read-modify-write"}
    assert failing == rmws


def test_outline_helpers_choose_lse_or_llsc_at_run_time():
    """Each libgcc helper the default build calls holds the lse cell's instruction and the llsc cell's loop."""
    if _missing("aarch64-default"):
        pytest.skip(_missing("aarch64-default"))
    t = _isa.TARGETS["aarch64-default"]
    libgcc = subprocess.run([t.cc, "-print-libgcc-file-name"], capture_output=True, text=True).stdout.strip()
    helpers = {}
    for name in _isa.PRIMITIVE_NAMES:
        seq = _isa.sequence(name, "aarch64-default")
        calls = [s[3:] for s in seq if s.startswith("bl __aarch64_")]
        if calls:
            helpers[calls[0]] = Counter(_isa.sequence(name, "aarch64-lse")) + Counter(
                _isa.sequence(name, "aarch64-llsc"))
    (relax,) = _isa.counter_add("aarch64-default")
    helpers[relax[3:]] = Counter(_isa.counter_add("aarch64-lse")) + Counter(_isa.counter_add("aarch64-llsc"))
    out = subprocess.run([t.objdump, "-d", "--no-show-raw-insn", libgcc], capture_output=True, text=True,
                         timeout=60).stdout
    funcs = _isa.parse_objdump(out)
    assert len(helpers) == 6  # swp, cas, ldadd, ldset, ldclr acq_rel; ldadd8 relax
    for helper, want in helpers.items():
        assert helper in funcs, f"{helper} not in {libgcc}"
        assert any(i.target == "__aarch64_have_lse_atomics" or "__aarch64_have_lse_atomics" in i.operands
                   for i in funcs[helper]), f"{helper} does not test __aarch64_have_lse_atomics"
        got = Counter(_isa.tokens("aarch64-llsc", funcs[helper], plain=False))
        assert got == want, f"{helper}: {dict(got)} != {dict(want)}"


# ---------------------------------------------------------------------------
# The strategies' hooks


def _strategy_names():
    names = sorted(
        e.name for e in importlib.metadata.entry_points(group="aiocore.strategies")
        if e.value.startswith("aiocore_strategies.")
    )
    return names + [HANDWRITTEN]


@pytest.mark.parametrize("name", _strategy_names())
@pytest.mark.parametrize("target", list(_isa.TARGETS))
def test_hooks_use_only_the_modelled_instructions(target, name):
    """Every ordering instruction of each compiled hook is one the table has, as many as its C's primitives."""
    built = _need(target)
    hooks_c = built["strategies"][name]
    funcs = built[("hooks", target, name)]
    calls = _expected(hooks_c)
    assert calls, f"{name}: no strategy_* hook found in its C"
    problems, counted = [], 0
    for hook, c in calls.items():
        expected = None if c is None else _isa.expected_classes(target, c)
        counted += expected is not None
        problems += _isa.check_hook(target, funcs, f"isa_hook_{hook}", expected)
    assert not problems, "\n".join(problems)
    assert counted >= len(calls) - 1, f"{name}: counts checked on only {counted} of {len(calls)} hooks"


@pytest.mark.parametrize("target", WHOLE_TARGETS)
def test_hooks_in_the_whole_module_are_the_same_code(target):
    """In the built module's whole translation unit the hooks compile to the same ordering instructions."""
    built = _need(target)
    whole, alone = built[("whole", target, WHOLE)], built[("hooks", target, WHOLE)]
    hooks = [h for h, c in _expected(built["strategies"][WHOLE]).items()]
    compared = 0
    for hook in hooks:
        root = f"aio_bench_hook_{hook}"
        if root not in whole:
            continue
        compared += 1

        def ordering(funcs, r):
            return Counter(t for f in _isa.closure(funcs, r)
                           for t in _isa.tokens(target, funcs[f], plain=False))

        assert ordering(whole, root) == ordering(alone, f"isa_hook_{hook}"), hook
        assert not _isa.check_hook(target, whole, root, None)
    assert compared >= 6


@pytest.mark.parametrize("target", AARCH64)
def test_hook_with_a_store_store_barrier_is_reported(target):
    """explicit-mb with smp_mb as `dmb ishst` is reported as an instruction no primitive has."""
    built = _need(target)
    funcs = built[("hooks", target, "wrong-ishst")]
    problems = [p for hook in ("notify", "poll_begin")
                for p in _isa.check_hook(target, funcs, f"isa_hook_{hook}", None)]
    assert problems and all("dmb ishst" in p for p in problems), problems


@pytest.mark.parametrize("target", list(_isa.TARGETS))
def test_hook_whose_fence_compiled_away_is_reported(target):
    """explicit-mb with smp_mb a compiler barrier has fewer fences than its C says, and is reported."""
    built = _need(target)
    funcs = built[("hooks", target, "wrong-no-mb")]
    calls = _expected(built["strategies"][WHOLE])
    got = _isa.check_hook(target, funcs, "isa_hook_poll_begin",
                          _isa.expected_classes(target, calls["poll_begin"]))
    assert got and "but the C's primitives compile to" in got[-1], got
