"""The core: an AioContext in shared memory, driven across processes."""
from __future__ import annotations

import os
import random
import stat
import time

import posix_ipc
import pytest

import aiocore
from aiocore import _context as C
from conftest import PREFIX, poll_until

ATTACH = """
import sys, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
"""


# --- creating and attaching -------------------------------------------------------


def test_create_defaults_unguessable_name_mode_0600(no_fd_leak):
    """create() picks a random name and makes a 0600 segment that close() unlinks."""
    with aiocore.AioContext.create("unconditional-c") as a, aiocore.AioContext.create("unconditional-c") as b:
        assert a.name != b.name and len(a.name) > 20
        st = os.stat("/dev/shm" + a.name)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
        assert st.st_size <= 1 << 20
        sock = C.socket_path(a.name)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o700
    assert not os.path.exists("/dev/shm" + a.name)
    assert not os.path.exists(sock)


def test_header_records_owner_strategy_and_layout(shm_name):
    """The header names the owner pid, strategy, fingerprint, size and version."""
    with aiocore.AioContext.create("unconditional-c", name=shm_name) as ctx:
        info = ctx.info()
        assert info.name == shm_name
        assert info.owner_pid == os.getpid() and info.owner_alive
        assert info.strategy == "unconditional-c" and info.fingerprint == ctx.fingerprint
        assert info.layout_version == 2 and info.state == "live"
        assert info.skeleton == "2015" and info.poll_max_ns == 0
        assert abs(info.created_ns / 1e9 - time.time()) < 60
        assert info.size == os.stat("/dev/shm" + shm_name).st_size


def test_create_existing_name_refused(shm_name):
    """A name that exists already is refused (O_CREX), never reused."""
    with aiocore.AioContext.create("unconditional-c", name=shm_name):
        with pytest.raises(aiocore.AioError, match="already exists"):
            aiocore.AioContext.create("unconditional-c", name=shm_name)


def test_pipe_notifier_works_like_eventfd(procs):
    """The pipe-pair EventNotifier (for systems without eventfd) wakes the owner."""
    with aiocore.AioContext.create("unconditional-c", notifier="pipe") as ctx:
        assert ctx.info().notifier == "pipe"
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        p = procs.start(ATTACH + "import time; time.sleep(0.2); ctx.bh_schedule(int(sys.argv[2]))", ctx.name, bh)
        poll_until(ctx, lambda: hits)
        procs.finish(p)
        assert ctx.counters().wakeups >= 1


def test_unrelated_process_attaches_and_schedules(procs, passing_strategy):
    """A process started with subprocess attaches by name and drives the context."""
    with aiocore.AioContext.create(passing_strategy) as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        p = procs.start(
            ATTACH
            + """
print(ctx.strategy, ctx.fingerprint, ctx.is_owner)
ctx.bh_schedule(int(sys.argv[2]))
ctx.close()
""",
            ctx.name,
            bh,
        )
        out = procs.finish(p)
        assert out.split() == [ctx.strategy, ctx.fingerprint, "False"]
        poll_until(ctx, lambda: hits)
        assert hits == [1]


# --- bottom halves -----------------------------------------------------------------


def test_each_0_to_1_schedule_runs_once_in_process():
    """Schedules before a dispatch coalesce; each 0->1 runs the callback once."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        for _ in range(5):
            ctx.bh_schedule(bh)
        assert ctx.aio_poll(False) is True
        assert hits == [1]
        assert ctx.aio_poll(False) is False
        c = ctx.counters()
        assert (c.bh_schedules, c.bh_dispatches, c.lost_work) == (1, 1, 0)


def test_100k_schedules_from_two_processes_exactly_once(procs, passing_strategy):
    """100,000 schedules from two unrelated processes: every 0->1 is dispatched once."""
    with aiocore.AioContext.create(passing_strategy) as ctx:
        runs = {"work": 0, "done": 0}
        work = ctx.bh_new(lambda: runs.__setitem__("work", runs["work"] + 1))
        done = [ctx.bh_new(lambda: runs.__setitem__("done", runs["done"] + 1)) for _ in range(2)]
        code = ATTACH + """
work, done = int(sys.argv[2]), int(sys.argv[3])
s = ctx.bh_schedule
for _ in range(50_000):
    s(work)
s(done)
ctx.close()
"""
        ps = [procs.start(code, ctx.name, work, d) for d in done]
        poll_until(ctx, lambda: runs["done"] == 2, timeout=120)
        for p in ps:
            procs.finish(p)
        poll_until(ctx, lambda: ctx.counters().bh_pending == 0, blocking=False)
        c = ctx.counters()
        assert c.bh_schedules == c.bh_dispatches == runs["work"] + runs["done"]
        assert c.lost_work == 0 and c.bh_pending == 0
        # Every schedule either found the flag set (coalesced) or set it: the
        # dispatches can be anywhere in [1, 100000] but never more.
        assert 1 <= runs["work"] <= 100_000


def _declared_pairs():
    """(strategy, skeleton) for every skeleton other than 2015 that a
    natively-passing strategy declares -- the shape of the skeleton
    parameter conformance-style tests take."""
    from conftest import PASSING

    from aiocore._plugins import get

    return [(s, sk) for s in PASSING for sk in get(s).skeletons if sk != "2015"]


@pytest.mark.parametrize("strategy, skeleton", _declared_pairs())
def test_100k_schedules_exactly_once_on_other_skeletons(procs, strategy, skeleton):
    """The 100k exactly-once test above, on each other skeleton a strategy declares."""
    with aiocore.AioContext.create(strategy, skeleton=skeleton) as ctx:
        runs = {"work": 0, "done": 0}
        work = ctx.bh_new(lambda: runs.__setitem__("work", runs["work"] + 1))
        done = [ctx.bh_new(lambda: runs.__setitem__("done", runs["done"] + 1)) for _ in range(2)]
        code = ATTACH + """
work, done = int(sys.argv[2]), int(sys.argv[3])
s = ctx.bh_schedule
for _ in range(50_000):
    s(work)
s(done)
ctx.close()
"""
        ps = [procs.start(code, ctx.name, work, d) for d in done]
        poll_until(ctx, lambda: runs["done"] == 2, timeout=120)
        for p in ps:
            procs.finish(p)
        poll_until(ctx, lambda: ctx.counters().bh_pending == 0, blocking=False)
        c = ctx.counters()
        assert ctx.info().skeleton == skeleton
        assert c.bh_schedules == c.bh_dispatches == runs["work"] + runs["done"]
        assert c.lost_work == 0 and c.bh_pending == 0


def test_blocking_poll_wakes_on_cross_process_schedule(procs, passing_strategy):
    """A sleeping owner (infinite timeout) wakes promptly when another process schedules."""
    with aiocore.AioContext.create(passing_strategy) as ctx:
        woke = []
        bh = ctx.bh_new(lambda: woke.append(time.monotonic()))
        failsafe = []
        t = ctx.timer_new(lambda: failsafe.append(1))
        p = procs.start(
            ATTACH + "import time\nprint(time.monotonic(), flush=True)\ntime.sleep(0.3)\n"
            "print(time.monotonic(), flush=True)\nctx.bh_schedule(int(sys.argv[2]))",
            ctx.name,
            bh,
        )
        ctx.timer_mod_ns(t, ctx.clock_ns() + 20_000_000_000)
        t0 = time.monotonic()
        while not woke and not failsafe:
            ctx.aio_poll(True)
        out = procs.finish(p).split()
        assert woke and not failsafe, "the owner was not woken by the schedule"
        sent = float(out[1])
        assert woke[0] - sent < 2.0, f"woke {woke[0] - sent:.3f}s after the schedule"
        assert woke[0] - t0 >= 0.25  # it really slept
        assert ctx.counters().infinite_waits == 0 or ctx.counters().wakeups >= 1


def test_bh_cancel_and_delete():
    """bh_cancel drops a pending schedule; a deleted BH raises when used."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        ctx.bh_schedule(bh)
        ctx.bh_cancel(bh)
        assert ctx.aio_poll(False) is False and hits == []
        c = ctx.counters()
        assert (c.bh_schedules, c.bh_cancels, c.lost_work) == (1, 1, 0)
        ctx.bh_delete(bh)
        for op in (ctx.bh_schedule, ctx.bh_cancel, ctx.bh_delete):
            with pytest.raises(aiocore.BadBottomHalf, match=f"bottom half {bh}"):
                op(bh)


@pytest.mark.parametrize("bad", [-1, 1024, 10**6, 2**31 - 1])
def test_bh_id_out_of_range_raises(bad):
    """Out-of-range BH ids are rejected by the bounds check in C."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        with pytest.raises(aiocore.BadBottomHalf):
            ctx.bh_schedule(bad)


def test_bh_slots_run_out_cleanly():
    """bh_new past the segment's capacity raises Full, and deleted slots are reused."""
    with aiocore.AioContext.create("unconditional-c", n_bh=4) as ctx:
        ids = [ctx.bh_new(lambda: None) for _ in range(4)]
        with pytest.raises(aiocore.Full):
            ctx.bh_new(lambda: None)
        ctx.bh_delete(ids[2])
        assert ctx.bh_new(lambda: None) == ids[2]


def test_callback_exception_does_not_drop_other_bhs():
    """A raising callback propagates, but the other claimed BHs still run."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        hits = []

        def boom():
            raise RuntimeError("boom")

        a = ctx.bh_new(boom)
        b = ctx.bh_new(lambda: hits.append("b"))
        ctx.bh_schedule(a)
        ctx.bh_schedule(b)
        with pytest.raises(RuntimeError, match="boom"):
            ctx.aio_poll(False)
        assert hits == ["b"]
        assert ctx.counters().lost_work == 0


# --- timers and fd handlers --------------------------------------------------------


def test_timers_fire_in_deadline_order():
    """Expired timers fire in deadline order, and a deleted timer does not fire."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        fired = []
        order = list(range(8))
        random.Random(7).shuffle(order)
        now = ctx.clock_ns()
        ids = {}
        for k in order:
            ids[k] = ctx.timer_new(lambda k=k: fired.append(k))
            ctx.timer_mod_ns(ids[k], now + 20_000_000 + k * 1_000_000)
        gone = ctx.timer_new(lambda: fired.append("deleted"))
        ctx.timer_mod_ns(gone, now + 5_000_000)
        ctx.timer_del(gone)
        time.sleep(0.05)  # all deadlines pass: they expire in one poll
        ctx.aio_poll(True)
        assert fired == sorted(order)
        assert ctx.counters().timer_fires == 8


def test_blocking_poll_sleeps_until_timer():
    """With only a timer armed, a blocking poll sleeps until its deadline."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        fired = []
        t = ctx.timer_new(lambda: fired.append(time.monotonic()))
        t0 = time.monotonic()
        ctx.timer_mod_ns(t, ctx.clock_ns() + 100_000_000)
        while not fired:
            ctx.aio_poll(True)
        assert fired[0] - t0 >= 0.095


def test_bad_timer_ids_raise():
    """A timer id out of range or freed raises BadTimer."""
    with aiocore.AioContext.create("unconditional-c", n_timers=2) as ctx:
        t = ctx.timer_new(lambda: None)
        ctx.timer_free(t)
        with pytest.raises(aiocore.BadTimer):
            ctx.timer_mod_ns(t, 0)
        with pytest.raises(aiocore.BadTimer):
            ctx.timer_del(5)


def test_fd_handlers_read_and_write(no_fd_leak):
    """Readable and writable fds call their handlers; removing one stops it."""
    r, w = os.pipe()
    try:
        with aiocore.AioContext.create("unconditional-c") as ctx:
            got = []
            ctx.set_fd_handler(r, lambda: got.append(os.read(r, 100)))
            assert ctx.aio_poll(False) is False
            os.write(w, b"ping")
            assert ctx.aio_poll(True) is True
            assert got == [b"ping"]
            wrote = []
            ctx.set_fd_handler(w, None, lambda: wrote.append(1))
            ctx.aio_poll(False)
            assert wrote == [1]
            ctx.set_fd_handler(w, None, None)
            ctx.set_fd_handler(r, None, None)
            os.write(w, b"x")
            assert ctx.aio_poll(False) is False and got == [b"ping"]
            with pytest.raises(aiocore.AioError, match="not an open file descriptor"):
                ctx.set_fd_handler(9999, lambda: None)
    finally:
        os.close(r)
        os.close(w)


def test_fd_written_by_other_process_wakes_owner(procs, no_fd_leak):
    """An fd handler's fd made readable by another process wakes a sleeping owner."""
    r, w = os.pipe()
    try:
        with aiocore.AioContext.create("unconditional-c") as ctx:
            got = []
            ctx.set_fd_handler(r, lambda: got.append(os.read(r, 100)))
            p = procs.start("import os, sys, time; time.sleep(0.2); os.write(int(sys.argv[1]), b'hi')", w, pass_fds=(w,))
            poll_until(ctx, lambda: got)
            procs.finish(p)
            assert got == [b"hi"]
    finally:
        os.close(r)
        os.close(w)


# --- the GSource path ---------------------------------------------------------------


def test_gsource_prepare_check_dispatch(procs, passing_strategy):
    """prepare/wait/check/dispatch, as glib calls them, run BHs scheduled elsewhere."""
    with aiocore.AioContext.create(passing_strategy) as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        ready, timeout = ctx.prepare()
        assert (ready, timeout) == (False, None)
        assert ctx.check() is False
        assert ctx.dispatch() is False
        ctx.bh_schedule(bh)
        ready, timeout = ctx.prepare()
        assert ready and timeout == 0
        assert ctx.check() is True
        assert ctx.dispatch() is True and hits == [1]
        # Now from another process, while the owner waits in glib's poll.
        p = procs.start(ATTACH + "import time; time.sleep(0.2); ctx.bh_schedule(int(sys.argv[2]))", ctx.name, bh)
        t = ctx.timer_new(lambda: None)
        ctx.timer_mod_ns(t, ctx.clock_ns() + 20_000_000_000)
        deadline = time.monotonic() + 20
        while len(hits) < 2 and time.monotonic() < deadline:
            ctx.gsource_iteration(may_block=True)
        procs.finish(p)
        assert hits == [1, 1]
        assert ctx.counters().gsource_iterations >= 3


# --- the home-process rule and the context lock -------------------------------------


def test_attached_process_may_not_poll_or_own(procs):
    """aio_poll, prepare, check, bh_new and timers from a non-owner raise NotHome."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        p = procs.start(
            ATTACH
            + """
errs = []
for f in (lambda: ctx.aio_poll(False), ctx.prepare, ctx.check, lambda: ctx.bh_new(print),
          lambda: ctx.timer_new(print)):
    try:
        f()
    except aiocore.NotHome as e:
        errs.append(str(e))
print(len(errs))
print(errs[0])
""",
            ctx.name,
        )
        out = procs.finish(p).splitlines()
        assert out[0] == "5"
        assert "only the owner" in out[1] and str(os.getpid()) in out[1]


def test_forked_child_is_not_home():
    """A fork of the owner is another process: it may not poll."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ctx.aio_poll(False)
            except aiocore.NotHome:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_context_lock_is_recursive_and_cross_process(procs):
    """The context lock nests, excludes another process, and survives a holder's death."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        ctx.acquire()
        ctx.acquire()
        ctx.release()
        ctx.release()
        with pytest.raises(aiocore.AioError, match="not held"):
            ctx.release()
        p = procs.start(
            ATTACH + "import time\nctx.acquire()\nprint('held', flush=True)\ntime.sleep(0.4)\nctx.release()",
            ctx.name,
        )
        assert p.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        ctx.acquire()
        waited = time.monotonic() - t0
        ctx.release()
        procs.finish(p)
        assert waited >= 0.2, f"acquire did not wait for the other holder ({waited:.3f}s)"
        # A holder killed with -9 does not wedge the lock (it is robust).
        p = procs.start(
            ATTACH + "import time\nctx.acquire()\nprint('held', flush=True)\ntime.sleep(60)", ctx.name
        )
        assert p.stdout.readline().strip() == "held"
        p.kill()
        p.wait()
        ctx.acquire()
        ctx.release()


# --- counters --------------------------------------------------------------------------


def test_counters_readable_from_attached_process(procs):
    """Counters live in the segment: another process reads the owner's."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(3):
            ctx.bh_schedule(bh)
            ctx.aio_poll(False)
        p = procs.start(ATTACH + "c = ctx.counters(); print(c.polls, c.bh_dispatches, c.bh_schedules)", ctx.name)
        assert procs.finish(p).split() == ["3", "3", "3"]


def test_notify_with_sleeper_sets_event_and_poll_clears_it():
    """aio_notify sets the notifier only while notify_me is raised; accept clears it."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        ctx.notify()
        c = ctx.counters()
        assert c.event_sets == 0 and c.notifies == 1  # nobody sleeping
        ctx.prim("atomic_add", "notify_me", 2)  # as poll_begin would
        ctx.notify()
        assert ctx.snapshot().notifier_readable
        ctx.prim("atomic_sub", "notify_me", 2)
        ctx.aio_poll(False)  # unconditional accepts after every wait
        assert not ctx.snapshot().notifier_readable
        c = ctx.counters()
        assert c.event_sets == 1 and c.event_clears == 1


def test_primitives_have_their_values():
    """The primitive vocabulary on shared fields returns QEMU's results."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        p = ctx.prim
        assert p("atomic_set", "notified", 5) == 0 and p("atomic_read", "notified") == 5
        assert p("atomic_xchg", "notified", 1) == 5
        assert p("atomic_cmpxchg", "notified", 1, 7) == 1 and p("atomic_read", "notified") == 7
        assert p("atomic_cmpxchg", "notified", 1, 9) == 7 and p("atomic_load_acquire", "notified") == 7
        assert p("atomic_fetch_add", "notify_me", 2) == 0 and p("atomic_fetch_sub", "notify_me", 1) == 2
        assert p("atomic_fetch_or", "notify_me", 4) == 1 and p("atomic_fetch_and", "notify_me", ~1) == 5
        p("atomic_store_release", "notify_me", 3)
        p("atomic_mb_set", "notified", 0)
        for f in ("smp_mb", "smp_wmb", "smp_rmb"):
            p(f, "notify_me")
        assert (p("atomic_read", "notify_me"), p("atomic_read", "notified")) == (3, 0)
        with pytest.raises(ValueError, match="unknown primitive"):
            p("atomic_frobnicate", "notified")
        with pytest.raises(ValueError, match="out of range"):
            p("atomic_read", ("bh", 5000))


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
    data = b"AIOC" + (2).to_bytes(4, "little") + bytes(rnd.getrandbits(8) for _ in range(8184))
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
import time
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
