"""Faults: hostile shared memory (fuzzed live segment under ASan; segments replaced or resized by name)."""
from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
import time

import posix_ipc
import pytest

import aiocore
from aiocore._context import _aio as C

#: Seconds of fuzzing per strategy (AIOCORE_FUZZ_SECONDS for longer runs).
FUZZ_SECONDS = float(os.environ.get("AIOCORE_FUZZ_SECONDS", "6"))


def _libasan():
    try:
        out = subprocess.run(
            ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


# Loads the strategy's module compiled with AddressSanitizer (cached by
# fingerprint) and makes AioContext use it, in the owner and the fuzzer.
ASAN_PRELUDE = r"""
import os, sys, json, random, time, mmap
import aiocore
from aiocore._compiler import _build, _load, _plugins
from aiocore._context import _aio as _context
STRATEGY = sys.argv[1]
info = _plugins.get(STRATEGY)
ffi, lib = _build.load_cached(
    f"{STRATEGY}-{info.ir.fingerprint if info.ir else 'c'}-asan",
    _load.c_source(info),
    extra_cflags=("-fsanitize=address", "-fno-omit-frame-pointer"),
)
_context.load_strategy = lambda name: (info, ffi, lib)
assert ffi.string(lib.aio_strategy_fingerprint()).decode() == (info.ir.fingerprint if info.ir else
    ffi.string(__import__("aiocore._core", fromlist=["lib"]).lib.aio_strategy_fingerprint()).decode())
errors = {}
def note(e):
    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
"""

# The owner polls and uses every owner-side API while the segment is fuzzed.
OWNER = ASAN_PRELUDE + r"""
seconds = float(sys.argv[2])
rnd = random.Random(1)
ctx = aiocore.AioContext.create(STRATEGY, n_bh=64, n_timers=16)
ran = [0]
bhs = [ctx.bh_new(lambda: ran.__setitem__(0, ran[0] + 1)) for _ in range(16)]
timers = [ctx.timer_new(lambda: None) for _ in range(4)]
r, w = os.pipe2(os.O_NONBLOCK)
ctx.set_fd_handler(r, lambda: os.read(r, 4096))
print(ctx.name, flush=True)
sys.stdin.readline()   # go: the fuzzers are attached
polls = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        ctx.timer_mod_ns(timers[0], ctx.clock_ns() + 20_000_000)   # failsafe
    except aiocore.AioError as e:   # the fuzzer freed it; the fuzzer also rescues
        note(e)
    try:
        op = rnd.random()
        if op < 0.5:
            ctx.aio_poll(rnd.random() < 0.7)
            polls += 1
        elif op < 0.6:
            ctx.gsource_iteration(may_block=rnd.random() < 0.5)
            polls += 1
        elif op < 0.7:
            ctx.bh_schedule(rnd.choice(bhs))
            if rnd.random() < 0.3:
                ctx.bh_cancel(rnd.choice(bhs))
        elif op < 0.75:
            i = rnd.randrange(len(bhs))
            ctx.bh_delete(bhs[i])
            bhs[i] = ctx.bh_new(lambda: None)
        elif op < 0.8:
            t = rnd.choice(timers[1:])
            ctx.timer_mod_ns(t, ctx.clock_ns() + rnd.randrange(0, 5_000_000))
            if rnd.random() < 0.3:
                ctx.timer_del(t)
        elif op < 0.85:
            os.write(w, b"x")
        elif op < 0.9:
            ctx.counters(); ctx.snapshot(); ctx.bh_stats(rnd.choice(bhs))
            ctx.notify()
        else:
            ctx.info()
    except (aiocore.AioError, OSError) as e:   # reported corruption: fine
        note(e)
        try:   # the fuzzer freed our slots: take new ones if any is left
            if isinstance(e, aiocore.BadBottomHalf):
                bhs[rnd.randrange(len(bhs))] = ctx.bh_new(lambda: None)
            if isinstance(e, aiocore.BadTimer):
                timers[rnd.randrange(len(timers))] = ctx.timer_new(lambda: None)
        except aiocore.AioError as e2:
            note(e2)
c = ctx.counters()
ctx.close()
print(json.dumps({"polls": polls, "ran": ran[0], "errors": errors, "dispatches": c.bh_dispatches}), flush=True)
"""

# Attached under ASan too: writes random bytes over every field of the live
# segment (but the context lock) through its own mapping, and keeps using
# the attached-side API (schedule, notify, counters, foreign polls).
FUZZER = ASAN_PRELUDE + r"""
name, seconds, seed = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
ctx = aiocore.AioContext.attach(name)
fd = os.open("/dev/shm" + name, os.O_RDWR)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size)
os.close(fd)
u32 = lambda off: int.from_bytes(m[off:off + 4], "little")
n_bh, n_timers, n_procs = u32(40), u32(44), u32(48)
bh_off, timer_off, proc_off = u32(56), u32(60), u32(64)
CO = lib.aio_counter_offset()
assert CO == 896 and bh_off == 3456, (CO, bh_off)   # layout 3: bh_list after notified
LOCK = (768, 896)
print("ready", flush=True)
sys.stdin.readline()   # every fuzzer attaches and reads the layout before any writes
regions = [
    ("header", 0, 256, 3), ("notify_me", 256, 260, 3), ("notified", 320, 324, 3),
    ("bh_list", 384, 388, 2), ("strategy_fields", 448, 704, 2), ("owner", 704, 768, 3),
    ("counters", CO, CO + 24 * 64, 1),
    ("poll_words", CO + 24 * 64, bh_off, 1),
    ("bh_active", bh_off, bh_off + 20 * 64, 6), ("bh_all", bh_off, timer_off, 1),
    ("timers", timer_off, proc_off, 3), ("procs", proc_off, size, 1),
]
weights = [r[3] for r in regions]
SPECIAL = [0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, n_bh, n_bh + 1, 64, 65, 1 << 20, 0xFFFF]
writes = {}
end = time.monotonic() + seconds
ops = 0
while time.monotonic() < end:
    reg, lo, hi, _ = rnd.choices(regions, weights)[0]
    off = rnd.randrange(lo, hi)
    k = rnd.random()
    if k < 0.4:
        off, data = off & ~3, rnd.choice(SPECIAL).to_bytes(4, "little")
    elif k < 0.6:
        off, data = off & ~7, rnd.getrandbits(64).to_bytes(8, "little")
    else:
        data = rnd.randbytes(rnd.randrange(1, 16))
    data = data[: max(hi - off, 0)]   # stay inside the field's region
    if off < LOCK[1] and off + len(data) > LOCK[0]:
        raise SystemExit(f"bug in the fuzzer: wrote the lock at {off}")
    m[off:off + len(data)] = data
    writes[reg] = writes.get(reg, 0) + 1
    ops += 1
    if ops % 50 == 0:
        try:
            ctx.rescue()   # so that no blocking poll waits on a disarmed timer forever
            ctx.bh_schedule(rnd.randrange(-2, 70))
        except aiocore.AioError as e:
            note(e)
        try:
            ctx.notify(); ctx.counters(); ctx.snapshot(); ctx.bh_stats(rnd.randrange(64))
            if lib.aio_strategy_foreign_pollers():
                ctx.aio_poll(False)
        except aiocore.AioError as e:
            note(e)
        time.sleep(0.0005)
m.close()
ctx.close()
print(json.dumps({"writes": writes, "errors": errors, "ops": ops}), flush=True)
"""


def _spawn(procs, code, *args, env):
    """procs.start with our own environment (the helper is killed at teardown)."""
    p = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    procs.procs.append(p)
    return p


@pytest.mark.parametrize("strategy", ["unconditional-c", "notified"])
def test_fuzzed_live_segment_never_crashes_owner_under_asan(procs, strategy):
    """Random bytes written over every field of a live segment never crash the owner or an attached process (ASan build)."""
    libasan = _libasan()
    if libasan is None:
        pytest.skip("gcc's libasan.so is not installed (needed to run the C under AddressSanitizer)")
    env = {
        **os.environ,
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86",
    }
    # The owner stops polling before the fuzzers stop writing and rescuing:
    # a blocking poll on a timer the fuzzer pushed far away must be woken.
    owner = _spawn(procs, OWNER, strategy, max(FUZZ_SECONDS - 1, 1), env=env)
    name = owner.stdout.readline().strip()
    assert name.startswith("/"), owner.communicate(timeout=60)[1]
    fuzzers = [
        _spawn(procs, FUZZER, strategy, name, FUZZ_SECONDS, seed, env=env)
        for seed in (1, 2)
    ]
    for p in fuzzers:
        assert p.stdout.readline().strip() == "ready", p.communicate(timeout=60)[1]
    for p in fuzzers + [owner]:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in fuzzers:
        out, err = p.communicate(timeout=FUZZ_SECONDS + 120)
        assert "AddressSanitizer" not in err, err[-4000:]
        # The owner may close first: the fuzzer then sees OwnerGone, never a crash.
        assert p.returncode == 0, f"fuzzer exited {p.returncode}:\n{err[-3000:]}"
        results.append(json.loads(out.splitlines()[-1]))
    out, err = owner.communicate(timeout=FUZZ_SECONDS + 120)
    assert "AddressSanitizer" not in err, err[-4000:]
    assert owner.returncode == 0, f"owner exited {owner.returncode}:\n{err[-3000:]}"
    summary = json.loads(out.splitlines()[-1])
    print(f"owner: {summary}; fuzzers: {results}")
    assert summary["polls"] > 50, summary
    for r in results:
        assert set(r["writes"]) >= {"header", "bh_active", "timers", "counters", "owner", "notify_me"}, r
    assert not os.path.exists("/dev/shm" + name)


# --- segments replaced, resized or truncated under their name -----------------------


def _replace(name, data: bytes, size: int | None = None):
    posix_ipc.unlink_shared_memory(name)
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size or len(data))
    os.pwrite(shm.fd, data, 0)
    shm.close_fd()


def _bytes_of(name):
    with open("/dev/shm" + name, "rb") as f:
        return bytearray(f.read())


@pytest.mark.parametrize(
    "how, exc, match",
    [
        ("garbage", aiocore.BadMagic, "not an aiocore context"),
        ("truncated", aiocore.TruncatedSegment, "truncated"),
        ("grown", aiocore.CorruptSegment, "corrupt header"),
        ("copy-of-live", aiocore.BadSegment, "replaced under the same name"),
        ("other-owner", aiocore.BadSegment, "replaced under the same name"),
    ],
)
def test_segment_replaced_under_same_name_while_attached(procs, how, exc, match):
    """A segment replaced by name while a process is attached: the attached mapping keeps working, a new attach gets a clear error."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        bh = ctx.bh_new(lambda: None)
        att = aiocore.AioContext.attach(ctx.name)
        original = _bytes_of(ctx.name)
        if how == "garbage":
            _replace(ctx.name, os.urandom(len(original)))
        elif how == "truncated":
            _replace(ctx.name, bytes(original[:1000]))
        elif how == "grown":
            _replace(ctx.name, bytes(original), size=len(original) + 4096)
        elif how == "copy-of-live":
            # A byte-for-byte copy: same header, same owner -- but not the
            # owner's memory.  The owner's socket still answers, so the attach
            # must notice that the segment is not the one the owner maps.
            _replace(ctx.name, bytes(original))
        elif how == "other-owner":
            # Another live context's bytes under our name.
            with aiocore.AioContext.create("unconditional-c") as other:
                _replace(ctx.name, bytes(_bytes_of(other.name)))
        # The process attached before the swap still drives the real context.
        att.bh_schedule(bh)
        assert ctx.aio_poll(False)
        assert ctx.bh_stats(bh)["dispatches"] == 1
        with pytest.raises(exc, match=match):
            late = aiocore.AioContext.attach(ctx.name)
            late.close()
        att.close()
