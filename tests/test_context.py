"""The core: an AioContext in shared memory, driven across processes."""
from __future__ import annotations

import os
import random
import stat
import time

import pytest

import aiocore
from aiocore._context import _aio as C
from conftest import poll_until

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
        assert info.layout_version == 3 and info.state == "live"
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

    from aiocore._compiler._plugins import get

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


@pytest.mark.parametrize("bad", [2**31, -(2**31) - 1, 2**40, 2**80])
def test_bh_id_beyond_a_c_int_raises_naming_it(bad):
    """An int id that does not fit a C int is a bad bottom half, named as given."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        with pytest.raises(aiocore.BadBottomHalf, match=f"bottom half {bad} "):
            ctx.bh_schedule(bad)


@pytest.mark.parametrize("bad", ["0", 1.0, None])
def test_bh_id_not_an_int_raises_type_error(bad):
    """A bottom-half id that is not an integer is a TypeError, as before."""
    with aiocore.AioContext.create("unconditional-c") as ctx:
        with pytest.raises(TypeError):
            ctx.bh_schedule(bad)


def test_bh_schedule_and_notify_are_bound_to_their_context():
    """Each context's bh_schedule and notify reach its own segment only."""
    with aiocore.AioContext.create("notified") as a, aiocore.AioContext.create("always-notified") as b:
        hits = []
        ba = a.bh_new(lambda: hits.append("a"))
        bb = b.bh_new(lambda: hits.append("b"))
        assert (ba, bb) == (0, 0)
        b.bh_schedule(bb)
        assert a.aio_poll(False) is False and hits == []
        assert b.aio_poll(False) is True and hits == ["b"]
        n0 = (a.counters().notifies, b.counters().notifies)
        a.notify()
        assert (a.counters().notifies, b.counters().notifies) == (n0[0] + 1, n0[1])
        assert a.bh_schedule.__doc__ == aiocore.AioContext.bh_schedule.__doc__
        assert a.bh_schedule.__name__ == "bh_schedule" and a.notify.__name__ == "notify"


def test_bound_calls_outlive_their_context_safely():
    """A kept ctx.bh_schedule / ctx.notify of a closed, dropped context raises ContextClosed."""
    import gc

    ctx = aiocore.AioContext.create("unconditional-c")
    bh = ctx.bh_new(lambda: None)
    sched, notify = ctx.bh_schedule, ctx.notify
    ctx.close()
    del ctx
    gc.collect()
    with pytest.raises(aiocore.ContextClosed):
        sched(bh)
    with pytest.raises(aiocore.ContextClosed):
        notify()


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
