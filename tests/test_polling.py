"""The polling skeleton (QEMU's aio_poll today): selection, bad values,
exactly-once dispatch, cross-process wake-up, adaptive poll_ns, syscall-free
polls, native poll handlers, and the C's step order per skeleton.

Everything asserted comes from counters, the header and the step log, never
from elapsed time (speed targets live in `aiocore bench`)."""
from __future__ import annotations

import os

import posix_ipc
import pytest

import aiocore
from aiocore import _errors as E
from aiocore._compiler import _skeleton as SK
from conftest import poll_until

POLLING = ("always-notified", "selfpipe")  # the built-ins that declare it

ATTACH = """
import sys, aiocore
ctx = aiocore.AioContext.attach(sys.argv[1])
"""


def _polling(strategy="always-notified", **kw):
    return aiocore.AioContext.create(strategy, skeleton="polling", **kw)


# --- selection and bad values ---------------------------------------------------


def test_default_is_2015_and_polling_is_recorded_in_the_header():
    with aiocore.AioContext.create("always-notified") as a, _polling(poll_max_ns=10_000) as b:
        assert a.info().skeleton == "2015" and a.info().poll_max_ns == 0
        ib = b.info()
        assert (ib.skeleton, ib.poll_max_ns, ib.poll_grow, ib.poll_shrink) == ("polling", 10_000, 2, 0)
        st = b.poll_state()
        assert st.skeleton == "polling" and st.poll_ns == 0 and not st.need_wait


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(skeleton="nope"), "unknown skeleton 'nope'"),
        (dict(skeleton="polling", poll_max_ns=-1), "poll_max_ns must be >= 0"),
        (dict(skeleton="polling", poll_max_ns=SK.MAX_POLL_MAX_NS + 1), "absurd"),
        (dict(skeleton="polling", poll_max_ns=1.5), "must be an int"),
        (dict(skeleton="2015", poll_max_ns=1000), "polling' skeleton only"),
        (dict(skeleton="polling", poll_grow=1), "never grow"),
        (dict(skeleton="polling", poll_shrink=-2), "poll_shrink must be"),
    ],
)
def test_bad_skeleton_values_are_clear_errors(kw, match):
    with pytest.raises(E.SkeletonError, match=match):
        aiocore.AioContext.create("always-notified", **kw)


@pytest.mark.parametrize("strategy", ["notified", "unconditional", "late-clear", "unconditional-c"])
def test_strategy_that_does_not_declare_polling_is_refused(strategy):
    with pytest.raises(E.SkeletonError, match=f"{strategy}' does not declare the 'polling' skeleton"):
        _polling(strategy)


def test_attach_with_another_skeleton_is_refused():
    with _polling() as ctx:
        with pytest.raises(E.SkeletonMismatch, match="runs the 'polling' skeleton, not '2015'"):
            aiocore.AioContext.attach(ctx.name, skeleton="2015")
        with pytest.raises(E.SkeletonError, match="unknown skeleton"):
            aiocore.AioContext.attach(ctx.name, skeleton="fast")
        other = aiocore.AioContext.attach(ctx.name, skeleton="polling")
        other.close()


def _fnv(data: bytes) -> int:
    x = 2166136261
    for b in data:
        x = ((x ^ b) * 16777619) & 0xFFFFFFFF
    return x


SKELETON_AT = 4 * 6 + 8 * 2 + 4 * 8 + 32 + 24  # offsetof(AioHeader, skeleton)
CHECKSUM_AT = SKELETON_AT + 4 * 4 + 8


def _rewrite_header(name, **fields):
    with open("/dev/shm" + name, "r+b") as f:
        seg = bytearray(f.read(256))
        if "skeleton" in fields:
            seg[SKELETON_AT : SKELETON_AT + 4] = fields["skeleton"].to_bytes(4, "little")
        if "poll_max_ns" in fields:
            seg[SKELETON_AT + 16 : SKELETON_AT + 24] = fields["poll_max_ns"].to_bytes(8, "little", signed=True)
        seg[CHECKSUM_AT : CHECKSUM_AT + 4] = _fnv(bytes(seg[:CHECKSUM_AT])).to_bytes(4, "little")
        f.seek(0)
        f.write(seg)


def test_attach_to_polling_segment_of_a_strategy_without_polling_is_refused():
    """A header claiming 'polling' for a strategy that does not declare it."""
    with aiocore.AioContext.create("notified") as ctx:
        _rewrite_header(ctx.name, skeleton=1)
        with pytest.raises(E.SkeletonMismatch, match="does not declare"):
            aiocore.AioContext.attach(ctx.name)


@pytest.mark.parametrize("fields", [dict(skeleton=7), dict(poll_max_ns=-5), dict(poll_max_ns=10**12)])
def test_header_with_bad_skeleton_fields_is_corrupt(fields):
    with _polling() as ctx:
        _rewrite_header(ctx.name, **fields)
        with pytest.raises(aiocore.CorruptSegment):
            aiocore.AioContext.attach(ctx.name)


# --- dispatch and wake-ups ----------------------------------------------------------


@pytest.mark.parametrize("strategy", POLLING)
def test_exactly_once_in_process(strategy):
    with _polling(strategy) as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        for i in range(200):
            for _ in range(3):
                ctx.bh_schedule(bh)
            assert ctx.aio_poll(i % 2 == 0) is True
        assert ctx.aio_poll(False) is False
        c = ctx.counters()
        assert hits == [1] * 200
        assert (c.bh_schedules, c.bh_dispatches, c.lost_work) == (200, 200, 0)


@pytest.mark.parametrize("strategy", POLLING)
def test_cross_process_wakeup_and_exactly_once(procs, strategy):
    """Another process schedules 20,000 times while the owner polls (blocking):
    every 0->1 runs once, and a sleeping owner is woken."""
    with _polling(strategy) as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        done = ctx.bh_new(lambda: hits.append("done"))
        p = procs.start(
            ATTACH + """
b, d = int(sys.argv[2]), int(sys.argv[3])
for i in range(20000):
    ctx.bh_schedule(b)
ctx.bh_schedule(d)
ctx.close()
""", ctx.name, bh, done)
        poll_until(ctx, lambda: "done" in hits)
        procs.finish(p)
        ctx.aio_poll(False)
        c = ctx.counters()
        assert c.lost_work == 0 and c.bh_pending == 0
        assert hits.count(1) == c.bh_schedules - 1


def test_blocked_owner_is_woken_by_another_process(procs):
    """The owner blocks with an infinite timeout (no timer): only the event wakes it."""
    with _polling() as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        p = procs.start(ATTACH + """
import time
time.sleep(0.3)
ctx.bh_schedule(int(sys.argv[2]))
ctx.close()
""", ctx.name, bh)
        while not hits:
            ctx.aio_poll(True)
        procs.finish(p)
        c = ctx.counters()
        assert c.infinite_waits >= 1 and c.wakeups >= 1 and hits == [1]


# --- poll_ns, syscall-free polls ----------------------------------------------------


def test_poll_ns_grows_under_load_and_is_capped():
    with _polling(poll_max_ns=20_000, poll_grow=2) as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(200):
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
            if ctx.counters().poll_grows:
                break
        c = ctx.counters()
        assert c.poll_grows >= 1
        assert 4000 <= ctx.poll_state().poll_ns <= 20_000


def test_poll_ns_shrinks_when_idle():
    """An owner that blocks longer than poll_max_ns (a 2 ms timer) shrinks
    poll_ns (to 0 with QEMU's default poll_shrink)."""
    with _polling(poll_max_ns=20_000) as ctx:
        bh = ctx.bh_new(lambda: None)
        while not ctx.counters().poll_grows:
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        assert ctx.poll_state().poll_ns > 0
        t = ctx.timer_new(lambda: None)
        ctx.timer_mod_ns(t, ctx.clock_ns() + 2_000_000)
        while not ctx.counters().timer_fires:
            ctx.aio_poll(True)
        c = ctx.counters()
        assert c.poll_shrinks >= 1 and ctx.poll_state().poll_ns == 0


def test_shrink_by_poll_shrink_divides():
    with _polling(poll_max_ns=1_000_000, poll_shrink=4) as ctx:
        bh = ctx.bh_new(lambda: None)
        while not ctx.counters().poll_grows:
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        before = ctx.poll_state().poll_ns
        t = ctx.timer_new(lambda: None)
        ctx.timer_mod_ns(t, ctx.clock_ns() + 5_000_000)
        while not ctx.counters().timer_fires:
            ctx.aio_poll(True)
        assert ctx.counters().poll_shrinks >= 1
        assert ctx.poll_state().poll_ns <= before // 4


def test_poll_max_ns_zero_never_polls():
    with _polling(poll_max_ns=0) as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(50):
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        c = ctx.counters()
        assert (c.poll_grows, c.poll_successes, ctx.poll_state().poll_ns) == (0, 0, 0)


@pytest.mark.parametrize("skeleton", ["polling", "2015"])
def test_position_stamps_follow_clock_monotonic(skeleton):
    """The owner's since_ns (extrapolated from the TSC on the polling
    skeleton's fast path) lies between two CLOCK_MONOTONIC readings taken
    around the poll, over polls spread across more than one anchor (1 ms)."""
    with aiocore.AioContext.create("always-notified", skeleton=skeleton) as ctx:
        bh = ctx.bh_new(lambda: None)
        for i in range(300):
            ctx.bh_schedule(bh)
            t0 = ctx.clock_ns()
            ctx.aio_poll(True)
            t1 = ctx.clock_ns()
            s = ctx.snapshot().since_ns
            # a stamp may be taken a clock reading's duration before t0's
            # value lands (2 us: a generous bound for that, not a timing)
            assert t0 - 2_000 <= s <= t1, (i, t0, s, t1)
            if i % 50 == 0:
                while ctx.clock_ns() - t1 < 1_500_000:
                    pass


def test_ready_polls_grow_poll_ns_once_then_sit_in_the_sweet_spot():
    """adjust_polling_time on the stopwatch, as QEMU: the first ready poll
    (block_ns > poll_ns = 0, < poll_max_ns) starts polling at 4 us; later
    ready polls, far shorter than 4 us, leave it (block_ns <= poll_ns; a
    poll preempted on a loaded machine may grow it once more, so: a few
    grows in 40 polls, never a shrink)."""
    with _polling(poll_max_ns=1_000_000, poll_grow=2) as ctx:
        bh = ctx.bh_new(lambda: None)
        assert ctx.poll_state().poll_ns == 0
        ctx.bh_schedule(bh)
        ctx.aio_poll(True)
        assert (ctx.counters().poll_grows, ctx.poll_state().poll_ns) == (1, 4000)
        for _ in range(40):
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        c = ctx.counters()
        assert 1 <= c.poll_grows <= 4 and c.poll_shrinks == 0
        assert ctx.poll_state().poll_ns == 4000 * 2 ** (c.poll_grows - 1)


def test_nonblocking_and_ready_polls_need_no_syscall():
    """With no fd handler, a non-blocking aio_poll, and a blocking one that
    finds work, make no ppoll (and always-notified's accept no read())."""
    with _polling() as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(10):
            ctx.aio_poll(False)
        for _ in range(10):
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        c = ctx.counters()
        assert c.polls_no_syscall == 20 and c.event_clear_calls == 0


def test_2015_skeleton_always_makes_the_syscall():
    with aiocore.AioContext.create("always-notified") as ctx:
        bh = ctx.bh_new(lambda: None)
        for _ in range(10):
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        assert ctx.counters().polls_no_syscall == 0


def test_fd_without_poll_handler_needs_wait():
    r, w = os.pipe()
    try:
        with _polling() as ctx:
            ctx.set_fd_handler(r, lambda: os.read(r, 64))
            assert ctx.poll_state().need_wait
            for _ in range(5):
                ctx.aio_poll(False)
            assert ctx.counters().polls_no_syscall == 0
            ctx.set_fd_handler(r, None)
            assert not ctx.poll_state().need_wait
    finally:
        os.close(r)
        os.close(w)


def test_native_poll_handler_sees_a_poll_word_without_syscall(procs):
    """An fd with a poll word: another process posts to the word (and does
    not write the fd); the owner's non-blocking poll runs the fd's read_cb
    without a system call, once per post."""
    r, w = os.pipe()
    try:
        with _polling() as ctx:
            got = []
            ctx.set_fd_handler(r, lambda: got.append(1), poll_cb=("word", 3))
            assert not ctx.poll_state().need_wait
            p = procs.start(ATTACH + "ctx.poll_word_add(3)\nctx.close()\n", ctx.name)
            procs.finish(p)
            assert ctx.aio_poll(False) is True and got == [1]
            assert ctx.aio_poll(False) is False and got == [1]
            c = ctx.counters()
            assert c.polls_no_syscall == 2 and c.fd_dispatches == 1
    finally:
        os.close(r)
        os.close(w)


def test_poll_phase_ends_on_a_poll_word():
    """A blocking poll whose poll word was posted finishes in the poll phase."""
    r, w = os.pipe()
    try:
        with _polling(poll_max_ns=1_000_000) as ctx:
            got = []
            ctx.set_fd_handler(r, lambda: got.append(1), poll_cb=("word", 0))
            bh = ctx.bh_new(lambda: None)
            while not ctx.poll_state().poll_ns:
                ctx.bh_schedule(bh)
                ctx.aio_poll(True)
            ctx.poll_word_add(0)
            successes = ctx.counters().poll_successes
            ctx.aio_poll(True)
            assert got == [1] and ctx.counters().poll_successes == successes + 1
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("bad", [lambda: True, ("word", 16), ("word", -1), "fd", 3])
def test_bad_poll_cb(bad):
    r, w = os.pipe()
    try:
        with _polling() as ctx:
            with pytest.raises((TypeError, ValueError), match="poll_cb"):
                ctx.set_fd_handler(r, lambda: None, poll_cb=bad)
            with pytest.raises(ValueError, match="poll word"):
                ctx.poll_word_add(16)
    finally:
        os.close(r)
        os.close(w)


def test_counter_and_position_names_match_the_c():
    """The counters the polling skeleton adds are where _context/_aio.py reads them."""
    with _polling() as ctx:
        ctx.aio_poll(False)
        assert ctx.counters().polls_no_syscall == 1 and ctx.counters().polls == 1
        assert ctx.snapshot().position == "idle"
    import re
    from importlib.resources import files

    from aiocore._context._aio import POSITIONS

    header = files("aiocore._csrc").joinpath("aio_core.h").read_text()
    enum = header[header.index("AIO_POS_IDLE = 0"):]
    enum = enum[:enum.index("};")]
    assert tuple(n.lower() for n in re.findall(r"AIO_POS_(\w+)", enum)) == POSITIONS


# --- the C's step order --------------------------------------------------------------


def _scenarios(ctx):
    """Three concrete blocking aio_polls: BH pending, timer (sleeps), poll-word ready."""
    bh = ctx.bh_new(lambda: None)
    ctx.bh_schedule(bh)
    yield "bh pending"
    t = ctx.timer_new(lambda: None)
    ctx.timer_mod_ns(t, ctx.clock_ns() + 300_000)
    yield "timer"
    ctx.bh_schedule(bh)
    ctx.notify()
    yield "notified"


@pytest.mark.parametrize("skeleton, strategy", [("2015", "notified"), ("2015", "always-notified"),
                                                ("polling", "always-notified"), ("polling", "selfpipe")])
def test_c_steps_of_one_blocking_poll_equal_the_spec(skeleton, strategy):
    with aiocore.AioContext.create(strategy, skeleton=skeleton, _step_log=True) as ctx:
        ctx._steps()
        for what in _scenarios(ctx):
            ctx.aio_poll(True)
            assert tuple(ctx._steps()) == SK.STEPS[skeleton], what


def test_step_log_needs_the_step_log_build():
    with aiocore.AioContext.create("always-notified") as ctx:
        with pytest.raises(aiocore.AioError, match="step-log build"):
            ctx._steps()


def test_step_ids_match_aio_steps_h():
    import re
    from pathlib import Path

    text = (Path(aiocore.__file__).parent / "_csrc" / "aio_steps.h").read_text()
    ids = {m[0].lower(): int(m[1]) for m in re.findall(r"AIO_STEP_([A-Z_]+) = (\d+)", text)}
    assert ids == SK.STEP_IDS


def test_aiocore_info_shows_skeleton_and_poll_ns(capsys):
    from aiocore._cli._main import main

    with _polling(poll_max_ns=20_000) as ctx:
        bh = ctx.bh_new(lambda: None)
        while not ctx.poll_state().poll_ns:
            ctx.bh_schedule(bh)
            ctx.aio_poll(True)
        assert main(["info", ctx.name]) == 0
        out = capsys.readouterr().out
        assert "polling" in out and "poll_max_ns" in out and "20000" in out
        assert f"poll_ns (now)" in out and str(ctx.poll_state().poll_ns) in out
        assert "polls_no_syscall" in out and "poll_grows" in out


def test_gsource_path_works_on_the_polling_skeleton():
    """The GSource path (glib's prepare/check) is the same on both skeletons."""
    with _polling() as ctx:
        hits = []
        bh = ctx.bh_new(lambda: hits.append(1))
        ctx.bh_schedule(bh)
        assert ctx.gsource_iteration() is True and hits == [1]
        ready, timeout = ctx.prepare()
        assert not ready and timeout is None
        ctx.check()
        assert ctx.dispatch() is False
