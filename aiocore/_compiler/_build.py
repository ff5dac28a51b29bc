# Building context modules with cffi (API mode).
#
# Every strategy becomes one compiled module: its hooks (C text, hand-written
# or generated from the Python description) followed by the core template
# aio_core.c, so that hooks inline into aio_poll and aio_notify.  All such
# modules share one cdef, so the Python side (aiocore/_context/_aio.py) drives any of them
# the same way.
#
# Built-in strategies are compiled at `pip install` (setup.py lists them as
# cffi_modules through _build_builtins.py).  Anything else is compiled on
# first use into a cache directory keyed by the strategy's fingerprint, and
# loaded from there afterwards.
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

#: The C core lives in aiocore/_csrc (a data directory: the compiler reads it,
#: nothing there imports Python).
CSRC = Path(__file__).resolve().parent.parent / "_csrc"

CDEF_NATIVE = r"""
typedef struct AioContext AioContext;

typedef struct aio_event {
    int32_t kind;
    int32_t id;
    uint32_t revents;
    int32_t _r;
    int64_t deadline_ns;
} aio_event;

typedef struct aio_info {
    uint32_t magic, layout_version, size, header_size, owner_pid, state;
    uint64_t owner_start, created_ns;
    uint32_t n_bh, n_timers, n_procs, notifier_kind;
    char strategy[32];
    char fingerprint[24];
    uint32_t skeleton, poll_grow, poll_shrink;
    int64_t poll_max_ns;
    uint32_t flags;
} aio_info;

const char *aio_strategy_name(void);
const char *aio_strategy_fingerprint(void);
int aio_strategy_foreign_pollers(void);

int aio_peek(const void *buf, size_t len, uint64_t actual_size, aio_info *out);
AioContext *aio_ctx_new(void);
void aio_ctx_free(AioContext *ctx);
int aio_ctx_create(AioContext *ctx, int shm_fd, uint32_t n_bh, uint32_t n_timers,
                   uint64_t owner_start, int notifier_kind, int skeleton,
                   int64_t poll_max_ns, uint32_t poll_grow, uint32_t poll_shrink);
int aio_ctx_attach(AioContext *ctx, int shm_fd, uint64_t actual_size,
                   int notifier_rfd, int notifier_wfd, int rescue_fd, int owner_pidfd,
                   int skeleton);
int aio_ctx_fds(AioContext *ctx, int *out);
int aio_ctx_set_flags(AioContext *ctx, uint32_t flags);
int aio_recovery_after_fork(AioContext *ctx);
int aio_ctx_close(AioContext *ctx);
int64_t aio_clock_ns(void);
int aio_check_owner(AioContext *ctx);
int aio_acquire(AioContext *ctx);
int aio_release(AioContext *ctx);

int aio_bh_new(AioContext *ctx);
int aio_bh_schedule(AioContext *ctx, int id);
int aio_bh_cancel(AioContext *ctx, int id);
int aio_bh_schedule_oneshot(AioContext *ctx, uint32_t action, uint32_t arg);
int aio_bh_delete(AioContext *ctx, int id);
int aio_bh_set_action(AioContext *ctx, int id, uint32_t action, uint32_t arg);
int aio_notify(AioContext *ctx);

int aio_timer_new(AioContext *ctx);
int aio_timer_mod_ns(AioContext *ctx, int id, int64_t deadline_ns);
int aio_timer_del(AioContext *ctx, int id);
int aio_timer_free(AioContext *ctx, int id);
int aio_set_fd_handler(AioContext *ctx, int fd, uint32_t events, int poll_word);
int aio_poll_word_add(AioContext *ctx, int word, uint32_t n);
int aio_poll_state(AioContext *ctx, int64_t *out4);
int aio_step_log_read(int *out, int max);
size_t aio_poll_ns_offset(void);

int aio_poll(AioContext *ctx, int blocking, int *progress);
aio_event *aio_events(AioContext *ctx);
int aio_gsource_prepare(AioContext *ctx, int64_t *timeout_ns);
int aio_gsource_wait(AioContext *ctx, int64_t timeout_ns);
int aio_gsource_check(AioContext *ctx);
int aio_gsource_dispatch(AioContext *ctx, int *progress);

int aio_counters(AioContext *ctx, uint64_t *out, int n);
int aio_bh_totals(AioContext *ctx, uint64_t *out4);
int aio_bh_stat(AioContext *ctx, int id, uint64_t *out4);
int aio_snapshot(AioContext *ctx, int64_t *out8);
int aio_rescue(AioContext *ctx);
int aio_last_errno(AioContext *ctx);
size_t aio_counter_offset(void);
int aio_prim(AioContext *ctx, int op, int field, uint32_t a, uint32_t b, uint32_t *out);
void aio_empty(void);
int aio_empty2(AioContext *ctx, int id);
"""

CDEF_TRACE = r"""
typedef struct aio_trace_rec {
    int32_t op;
    int32_t field;
    int64_t written;
    int64_t read;
    int64_t expected;
} aio_trace_rec;
int aio_trace_run(int hook, const uint32_t *script, int nscript,
                  aio_trace_rec *log, int maxlog, int32_t *ret);
const char *aio_strategy_name(void);
const char *aio_strategy_fingerprint(void);
"""

#: Declarations of the C files the core includes after itself (drivers for
#: workloads, benchmark loops), one cdef file each, so that each layer keeps
#: its declarations next to its code.
CDEF_FILES = ("cdef_drivers.h", "cdef_bench.h")


def _extra_cdef() -> str:
    return "".join((CSRC / f).read_text() for f in CDEF_FILES if (CSRC / f).exists())

CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-Wno-unused-variable"]


def hooks_header(name: str) -> str:
    """The hand-written hooks shipped in _csrc (only unconditional today)."""
    return (CSRC / f"strategy_{name}.h").read_text()


def source_for(hooks_c: str, *, trace: bool = False) -> str:
    pre = "#define AIO_TRACE 1\n" if trace else ""
    tail = "aio_trace.c" if trace else "aio_core.c"
    return (
        f"{pre}#define _GNU_SOURCE 1\n"
        '#include "aio_core.h"\n'
        '#include "aio_notifier.h"\n'
        "/* ---- the strategy's hooks ---- */\n"
        f"{hooks_c}\n"
        "/* ---- the core ---- */\n"
        f'#include "{tail}"\n'
    )


def make_ffi(module_name: str, hooks_c: str, *, trace: bool = False, extra_cflags=()):
    """A cffi FFI for one strategy module (used by setup.py and the cache)."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(CDEF_TRACE if trace else CDEF_NATIVE + _extra_cdef())
    ffi.set_source(
        module_name,
        source_for(hooks_c, trace=trace),
        include_dirs=[str(CSRC)],
        extra_compile_args=CFLAGS + list(extra_cflags),
        libraries=[] if trace else ["pthread"],
    )
    return ffi


def cache_dir() -> Path:
    base = os.environ.get("AIOCORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aiocore"
    )
    return Path(base)


def _csrc_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(CSRC.iterdir()):
        if p.suffix in (".c", ".h"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()[:12]


def _have_compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None or shutil.which("cc") is not None


def import_cached(d: Path, modname: str, compile_ffi, no_compiler):
    """Import cffi module ``modname`` from cache directory ``d``, compiling it
    there first if it is missing: ``compile_ffi(tmpdir)`` builds it and
    returns the .so's path; ``no_compiler()`` is the exception raised when no
    C compiler is found.  The build happens in a private temporary directory
    published with one rename, so processes racing to build the same module
    never see half of one (the loser's copy is thrown away)."""
    so = next(iter(d.glob(modname + "*.so")), None) if d.is_dir() else None
    if so is None:
        if not _have_compiler():
            raise no_compiler()
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=d.name + ".", dir=d.parent))
        try:
            built = compile_ffi(tmp)
            out = tmp / "out"
            out.mkdir()
            shutil.move(built, out / Path(built).name)
            try:
                os.rename(out, d)  # atomic publish; another process may win
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        so = next(iter(d.glob(modname + "*.so")))
    spec = importlib.util.spec_from_file_location(modname, so)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def load_cached(key: str, hooks_c: str, *, trace: bool = False, extra_cflags=()):
    """Compile (once) and import a strategy module; returns (ffi, lib).

    ``key`` names the strategy (its name and fingerprint); the core sources'
    digest and the build flavour are added, so editing the core or switching
    the trace build never loads a stale module."""
    from .._errors import CompilerMissing, StrategyError

    flavour = ("trace" if trace else "native") + ("_" + "_".join(extra_cflags) if extra_cflags else "")
    digest = hashlib.sha256(
        (key + flavour + _csrc_digest() + hooks_c).encode()
    ).hexdigest()[:16]
    modname = f"_aiocore_s_{digest}"
    if modname in sys.modules:
        m = sys.modules[modname]
        return m.ffi, m.lib

    def compile_ffi(tmp):
        ffi = make_ffi(modname, hooks_c, trace=trace, extra_cflags=extra_cflags)
        try:
            return ffi.compile(tmpdir=str(tmp), verbose=False)
        except Exception as e:  # cffi raises VerificationError & co.
            raise StrategyError(f"strategy {key} does not compile: {e}") from None

    def no_compiler():
        return CompilerMissing(
            f"strategy {key} must be compiled on first use, and no C compiler was found "
            f"(install gcc, or set CC)"
        )

    m = import_cached(cache_dir() / digest, modname, compile_ffi, no_compiler)
    sys.modules[modname] = m
    return m.ffi, m.lib


#: The direct calls of ctx.bh_schedule / ctx.notify (a CPython extension, not
#: cffi: see aio_pycall.c); setup.py builds it as aiocore._pycall.
PYCALL_SOURCE = CSRC / "aio_pycall.c"


def load_pycall_cached():
    """Compile (once) and import aio_pycall.c as a plain CPython extension in
    the cache, keyed by its source and this Python -- for a source tree,
    whose aiocore/ has no aiocore._pycall of `pip install`."""
    from .._errors import CompilerMissing, StrategyError

    src = PYCALL_SOURCE.read_bytes()
    digest = hashlib.sha256(src + sys.version.encode()).hexdigest()[:16]
    modname = "_pycall"

    def compile_ext(tmp):
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        dist = Distribution({"ext_modules": [Extension(modname, [str(PYCALL_SOURCE)],
                                                       extra_compile_args=["-O2"])]})
        cmd = build_ext(dist)
        cmd.build_lib, cmd.build_temp = str(tmp), str(tmp / "build")
        cmd.ensure_finalized()
        try:
            cmd.run()
        except Exception as e:
            raise StrategyError(f"aio_pycall.c does not compile: {e}") from None
        return cmd.get_ext_fullpath(modname)

    def no_compiler():
        return CompilerMissing("aiocore._pycall must be compiled on first use, and no C "
                               "compiler was found (install gcc, or set CC)")

    return import_cached(cache_dir() / f"pycall-{digest}", modname, compile_ext, no_compiler)
