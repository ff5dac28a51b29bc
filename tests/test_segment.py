"""Segments: bad names and bad segments refused by name, close, exit and gc cleanup (aiocore/_context/_segment.py)."""
from __future__ import annotations

import os
import random

import posix_ipc
import pytest

import aiocore
from aiocore._context import _aio as C
from aiocore._context._segment import LAYOUT_VERSION
from conftest import PREFIX

ATTACH = """
import sys, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
"""


# --- bad input and cleanup ---------------------------------------------------------------


def test_attach_missing_name(shm_name):
    """Attaching to a name that does not exist raises SegmentNotFound."""
    with pytest.raises(aiocore.SegmentNotFound, match="no aiocore context named"):
        aiocore.AioContext.attach(shm_name)


@pytest.mark.parametrize("bad", ["", "a/b", "../etc", "x" * 300, "sp ace", "/.."])
def test_bad_names_rejected(bad):
    """Names that are not plain words are refused before touching /dev/shm."""
    with pytest.raises(ValueError, match="bad context name"):
        aiocore.AioContext.create("unconditional-c", name=bad)


def _raw_segment(name, data: bytes, size=None):
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size or len(data))
    os.pwrite(shm.fd, data, 0)
    shm.close_fd()


def _header_of(ctx) -> bytearray:
    with open("/dev/shm" + ctx.name, "rb") as f:
        return bytearray(f.read())


def _fnv(data: bytes) -> int:
    x = 2166136261
    for b in data:
        x = ((x ^ b) * 16777619) & 0xFFFFFFFF
    return x


FINGERPRINT_AT = 4 * 6 + 8 * 2 + 4 * 8 + 32  # offsetof(AioHeader, fingerprint)
SKELETON_AT = FINGERPRINT_AT + 24  # offsetof(AioHeader, skeleton)
CHECKSUM_AT = SKELETON_AT + 4 * 4 + 8  # offsetof(AioHeader, checksum)


def _resum(seg: bytearray):
    seg[CHECKSUM_AT : CHECKSUM_AT + 4] = _fnv(bytes(seg[:CHECKSUM_AT])).to_bytes(4, "little")


def test_attach_not_ours_bad_magic(shm_name):
    """A segment that is not aiocore's is refused with BadMagic."""
    _raw_segment(shm_name, b"hello world" + bytes(4096))
    try:
        with pytest.raises(aiocore.BadMagic, match="not an aiocore context"):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


def test_attach_other_layout_version(shm_name):
    """A header of another layout version is refused with LayoutMismatch."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        seg = _header_of(ctx)
    seg[4:8] = (99).to_bytes(4, "little")
    _resum(seg)
    _raw_segment(shm_name, bytes(seg))
    try:
        with pytest.raises(aiocore.LayoutMismatch, match="layout version 99"):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


@pytest.mark.parametrize("keep", [0, 3, 100, 4096])
def test_attach_truncated(shm_name, keep):
    """A segment shorter than its header says is refused with TruncatedSegment."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        seg = _header_of(ctx)
    shm = posix_ipc.SharedMemory(shm_name, posix_ipc.O_CREX, mode=0o600, size=keep)
    if keep:
        os.pwrite(shm.fd, bytes(seg[:keep]), 0)
    shm.close_fd()
    try:
        with pytest.raises(aiocore.TruncatedSegment, match="truncated"):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


@pytest.mark.parametrize("seed", range(5))
def test_attach_garbage_with_magic(shm_name, seed):
    """Random bytes behind a valid magic are refused as CorruptSegment, not a crash."""
    rnd = random.Random(seed)
    data = b"AIOC" + LAYOUT_VERSION.to_bytes(4, "little") + bytes(rnd.getrandbits(8) for _ in range(8184))
    _raw_segment(shm_name, data)
    try:
        with pytest.raises(aiocore.CorruptSegment, match="corrupt header"):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


def test_attach_resized_segment(shm_name):
    """A segment grown after creation is refused."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        seg = _header_of(ctx)
    _raw_segment(shm_name, bytes(seg), size=len(seg) + 4096)
    try:
        with pytest.raises(aiocore.CorruptSegment):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


def test_attach_with_other_fingerprint(shm_name):
    """A segment whose strategy fingerprint differs from ours is refused."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        seg = _header_of(ctx)
    fp_at = FINGERPRINT_AT
    seg[fp_at : fp_at + 24] = b"0123456789abcdef".ljust(24, b"\0")
    _resum(seg)
    _raw_segment(shm_name, bytes(seg))
    try:
        with pytest.raises(aiocore.StrategyMismatch, match="fingerprint 0123456789abcdef"):
            aiocore.AioContext.attach(shm_name)
    finally:
        posix_ipc.unlink_shared_memory(shm_name)


def test_attach_with_wrong_strategy_name_requested():
    """attach(strategy=...) that disagrees with the segment is refused."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        with pytest.raises(aiocore.StrategyMismatch, match="runs strategy 'unconditional-c'"):
            aiocore.AioContext.attach(ctx.name, strategy="notified")


def test_unknown_strategy():
    """Creating a context with a strategy nobody installed names it."""
    with pytest.raises(aiocore.UnknownStrategy, match="no-such-strategy"):
        aiocore.AioContext.create("no-such-strategy")


def test_closed_context_refuses_use(no_fd_leak):
    """After close(), every operation raises ContextClosed; close is idempotent."""
    ctx = aiocore.AioContext.create("unconditional-c")
    bh = ctx.bh_new(lambda: None)
    ctx.close()
    ctx.close()
    for f in (
        lambda: ctx.bh_schedule(bh),
        ctx.notify,
        lambda: ctx.aio_poll(False),
        ctx.counters,
        lambda: ctx.bh_new(print),
        ctx.prepare,
    ):
        with pytest.raises(aiocore.ContextClosed, match="is closed"):
            f()


def test_attached_process_sees_owner_close(procs):
    """When the owner closes, an attached process gets OwnerGone on its next schedule."""
    ctx = aiocore.AioContext.create("unconditional-c")
    bh = ctx.bh_new(lambda: None)
    p = procs.start(
        ATTACH
        + """
print('attached', flush=True)
sys.stdin.readline()
try:
    ctx.bh_schedule(int(sys.argv[2]))
except aiocore.OwnerGone as e:
    print('gone:', e)
""",
        ctx.name,
        bh,
        stdin=__import__("subprocess").PIPE,
    )
    assert p.stdout.readline().strip() == "attached"
    ctx.close()
    p.stdin.write("\n")
    p.stdin.flush()
    assert "gone:" in procs.finish(p)


def test_owner_unlinks_at_interpreter_exit(procs):
    """An owner that exits without close() still unlinks its segment."""
    p = procs.start("import aiocore; c = aiocore.AioContext.create('unconditional-c'); print(c.name)")
    name = procs.finish(p).strip()
    assert not os.path.exists("/dev/shm" + name)
    assert not os.path.exists(C.socket_path(name))


def test_gc_reclaims_segment_of_dead_owner(procs):
    """A segment whose owner died without cleanup is reported and unlinked by gc."""
    p = procs.start(
        "import os, aiocore; c = aiocore.AioContext.create('unconditional-c'); print(c.name, flush=True); os._exit(0)"
    )
    name = procs.finish(p).strip()
    assert os.path.exists("/dev/shm" + name)
    with pytest.raises(aiocore.OwnerGone, match="has exited"):
        aiocore.AioContext.attach(name)
    assert aiocore.segment_info(name).owner_alive is False
    done = dict(aiocore.gc_segments(prefix=PREFIX))
    assert name in done and "gone" in done[name]
    assert not os.path.exists("/dev/shm" + name)


def test_gc_leaves_live_segments_alone():
    """gc never touches a segment whose owner is alive."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        assert ctx.name not in dict(aiocore.gc_segments(prefix=PREFIX))
        assert os.path.exists("/dev/shm" + ctx.name)


def test_cli_info_prints_header_and_counters(procs):
    """`aiocore info NAME` prints the header and counters of a live segment."""
    import subprocess
    import sys

    with aiocore.AioContext.create("unconditional-c") as ctx:
        bh = ctx.bh_new(lambda: None)
        ctx.bh_schedule(bh)
        ctx.aio_poll(False)
        out = subprocess.run(
            [sys.executable, "-m", "aiocore._cli", "info", ctx.name, "--json"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        import json

        d = json.loads(out.stdout)
        assert d["header"]["strategy"] == "unconditional-c"
        assert d["header"]["owner_pid"] == os.getpid()
        assert d["counters"]["polls"] == 1 and d["counters"]["bh_dispatches"] == 1
    bad = subprocess.run(
        [sys.executable, "-m", "aiocore._cli", "info", "/aiocore-does-not-exist"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 1 and "no aiocore context named" in bad.stderr
