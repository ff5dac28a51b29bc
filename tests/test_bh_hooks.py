"""The bottom-half side as hooks (issue 23): the description language, its C, Promela and natively."""
# Tracing (retry loops, the BH's fields, the defaults, the timeout sites),
# the generated C and Promela, the trace build's faithfulness, and the hooks
# running in a real context: cancel, one-shot, a lock-free list.
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aiocore import AioContext, Strategy
from aiocore._compiler import _ir
from aiocore._compiler._codegen import generate_c
from aiocore._errors import StrategyError
from aiocore._compiler._promela import generate_promela
from aiocore._compiler._strategy import describe

sys.path.insert(0, str(Path(__file__).resolve().parent / "outsiders"))
from outsider_bh import ListedFlags, PlainScheduled, XchgScheduled  # noqa: E402

PENDING, SCHEDULED = 1, 2


class _Base(Strategy):
    name = "t-bh-base"

    def notify(s):
        s.smp_mb(pairs="poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_add(s.notify_me, 2)

    def poll_end(s):
        s.atomic_sub(s.notify_me, 2)
        s.accept()


def _with(name, **hooks):
    return type(name.replace("-", "_"), (_Base,), {"name": name, **hooks})


# --- the description language -------------------------------------------------


def test_retry_loop_traces_to_one_bounded_loop():
    """`for _ in s.retry(n)` with a break on the cmpxchg is one Loop node, not n unrolled copies."""
    ir = describe(ListedFlags)
    loops = [s for s in _ir.walk(ir.hooks["schedule"]) if isinstance(s, _ir.Loop)]
    assert len(loops) == 1 and loops[0].limit == 8
    body = loops[0].body
    assert [type(s).__name__ for s in body] == ["Read", "Write", "Rmw", "If"]
    assert body[-1].then == (_ir.Break(),)
    assert any(isinstance(s, _ir.Call) and s.hook == "notify" for s in ir.hooks["schedule"])


def test_retry_loop_c_is_a_for_loop_with_break():
    """The generated C is QEMU's cmpxchg loop: a bounded for, the link written, break on success."""
    c = generate_c(describe(ListedFlags))
    assert "for (int tries = 0; tries < AIO_RETRY(8); tries++) {" in c
    assert "atomic_set(&bh->next, bh_list);" in c
    assert "atomic_cmpxchg(&ctx->shm->bh_list, bh_list, aio_bh_self(ctx, bh)) == bh_list" in c
    assert "break;" in c and "#define AIO_STRATEGY_HAS_CLAIM_LIST 1" in c


def test_retry_loop_promela_is_a_bounded_do():
    """Promela gets the same loop as a do bounded by its limit, left by break."""
    text = generate_promela(describe(ListedFlags))
    assert ":: tries_schedule_1 < 8 ->" in text and "break;" in text
    assert "inline strategy_claim_list()" in text


@pytest.mark.parametrize("bad,message", [
    (lambda s: [s.atomic_read(s.notify_me) for _ in s.retry(0)], "limit must be an int"),
    (lambda s: [s.atomic_read(s.notify_me) for _ in s.retry(65)], "limit must be an int"),
])
def test_retry_limit_is_checked(bad, message):
    """A retry limit outside 1..64 is refused, naming the limit."""
    with pytest.raises(StrategyError, match=message):
        describe(_with("t-badlimit", prepare=bad))


def test_value_read_in_a_loop_cannot_be_used_after_it():
    """A value read inside a retry loop and used after it is refused (C scope, which attempt?)."""

    def prepare(s):
        for _ in s.retry(3):
            v = s.atomic_read(s.notify_me)
            if s.atomic_cmpxchg(s.notify_me, v, v | 1) == v:
                break
        s.atomic_set(s.notified, v)

    with pytest.raises(StrategyError, match="used after it"):
        describe(_with("t-after", prepare=prepare))


def test_return_inside_a_loop_is_refused():
    """What follows a retry loop must not depend on how it ended: a return inside it is refused."""

    def claim(s):
        for _ in s.retry(2):
            if s.atomic_read(s.bh_scheduled):
                return 1
        return 0

    with pytest.raises(StrategyError, match="must not depend on how the loop"):
        describe(_with("t-ret", claim=claim))


@pytest.mark.parametrize("field", ["bh_flags", "bh_next", "bh_scheduled"])
def test_bh_fields_only_in_bottom_half_hooks(field):
    """The BH's own words are named only in the bottom-half hooks."""
    with pytest.raises(StrategyError, match="outside a bottom-half hook"):
        describe(_with("t-field", poll_begin=lambda s: s.atomic_read(getattr(s, field))))


def test_bh_self_only_in_bottom_half_hooks():
    """bh_self (the BH as a list value) exists only where a BH is in hand."""
    with pytest.raises(StrategyError, match="bh_self outside"):
        describe(_with("t-self", claim_list=lambda s: s.bh_self))


def test_value_hooks_cannot_be_called():
    """claim and the timeout sites return values to the skeleton: no hook calls them."""
    with pytest.raises(StrategyError, match="returns a value"):
        describe(_with("t-call", cancel=lambda s: s.claim()))


def test_plain_stores_to_the_bh_word_are_allowed_and_not_counted():
    """2014's plain `bh->scheduled = 1` compiles; the core then keeps no per-BH counts."""
    ir = describe(PlainScheduled)
    assert not ir.bh_counted and ir.fingerprint
    c = generate_c(ir)
    assert "atomic_set(&bh->scheduled, 1);" in c and "#define AIO_STRATEGY_BH_COUNTED 0" in c
    assert "aio_bh_note" not in c.split("strategy_schedule(")[1].split("}\n")[0]
    assert describe(_Base).bh_counted and not describe(XchgScheduled).bh_counted  # its cancel is plain


def test_defaults_are_the_core_behaviour_spelled_as_hooks():
    """A strategy that writes no BH hook gets Strategy's: xchg schedule, read-then-xchg claim, xchg cancel."""
    ir = describe(_Base)
    claim = ir.hooks["claim"]
    assert isinstance(claim[0], _ir.Read) and claim[0].field == "bh_scheduled"
    assert [s.kind for s in _ir.walk(claim) if isinstance(s, _ir.Rmw)] == ["atomic_xchg"]
    assert [s.kind for s in _ir.walk(ir.hooks["cancel"]) if isinstance(s, _ir.Rmw)] == ["atomic_xchg"]
    assert ir.hooks["schedule_oneshot"] == (_ir.Call("schedule"),)
    assert ir.bh_counted and not ir.has_list and ir.optional == ()


def test_timeout_zero_is_shorthand_for_the_three_sites():
    """timeout_zero alone answers at every site; a site's own hook wins over it; none: the defaults."""
    tz = describe(_with("t-tz", timeout_zero=lambda s: s.atomic_read(s.notified)))
    assert [tz.site(x) for x in _ir.TIMEOUT_SITES] == ["timeout_zero"] * 3
    own = describe(_with("t-ll", timeout_zero=lambda s: s.atomic_read(s.notified),
                         last_look=lambda s: s.atomic_read(s.notify_me)))
    assert own.site("last_look") == "last_look" and own.site("notifier_poll") == "timeout_zero"
    none = describe(_Base)
    assert [none.site(x) for x in _ir.TIMEOUT_SITES] == [None] * 3
    with pytest.raises(ValueError, match="unknown timeout site"):
        none.site("prepare")


# --- the trace build: the C does what the description says ----------------------


@pytest.mark.parametrize("cls", [PlainScheduled, XchgScheduled, ListedFlags], ids=lambda c: c.name)
def test_bh_hooks_are_faithful_in_the_trace_build(cls):
    """Python, the IR and the compiled C agree on every path of every hook (loops clamped alike)."""
    from aiocore._compiler import _build
    from aiocore._compiler._trace import check_hook

    ir = describe(cls)
    ffi, lib = _build.load_cached(f"{ir.name}-{ir.fingerprint}", generate_c(ir), trace=True)
    for hook in ("schedule", "schedule_oneshot", "cancel", "claim", "claim_list", "bh_pending"):
        rep = check_hook(cls, ir, ffi, lib, hook)
        assert rep.uncovered == 0, (hook, rep)


# --- natively ------------------------------------------------------------------


_LIST_SCRIPT = """
from aiocore import AioContext
with AioContext.create(strategy="listed-flags") as ctx:
    ran = []
    bhs = [ctx.bh_new(lambda i=i: ran.append(i)) for i in range(5)]
    for bh in bhs[::-1]:
        ctx.bh_schedule(bh)
    ctx.bh_schedule(bhs[2])            # already pending: coalesced, still listed once
    ctx.bh_cancel(bhs[4])              # BH_SCHEDULED cleared: still on the list, does not run
    assert ctx.aio_poll(blocking=True)
    assert sorted(ran) == [0, 1, 2, 3], ran
    ran.clear()
    ctx.bh_schedule(bhs[4])            # its BH_PENDING was dropped by the claim: listed again
    assert ctx.aio_poll(blocking=False) and ran == [4], ran
    one = ctx.bh_schedule_oneshot(lambda: ran.append("one"))
    assert ctx.aio_poll(blocking=False) and ran == [4, "one"], ran
    assert not ctx.aio_poll(blocking=False)
    # A hostile list: a head out of range, then a cycle of links -- the walks are bounded
    ctx.prim("atomic_set", "bh_list", 0xFFFFFFFF)
    assert not ctx.aio_poll(blocking=False)
    ctx.prim("atomic_set", ("bh_next", bhs[0]), bhs[1] + 1)
    ctx.prim("atomic_set", ("bh_next", bhs[1]), bhs[0] + 1)
    ctx.prim("atomic_set", "bh_list", bhs[0] + 1)
    ctx.bh_schedule(bhs[3])             # PENDING clear: inserted at the head of the cycle
    assert ctx.aio_poll(blocking=False) and ran[-1] == 3, ran
print("ok")
"""


def test_lock_free_list_runs_each_listed_bh_once(tmp_path):
    """listed-flags natively: the list is walked, coalesced schedules run once, cancel is honoured."""
    import os
    import subprocess

    from outsiders.install import install

    env = install(tmp_path / "outs")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env["PYTHONPATH"], os.environ.get("PYTHONPATH")) if p)
    p = subprocess.run([sys.executable, "-c", _LIST_SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]


@pytest.mark.parametrize("name", ["unconditional", "explicit-mb"])
def test_cancel_takes_a_schedule_back(name):
    """bh_cancel (the cancel hook) unschedules a pending BH: it does not run, and it is counted."""
    with AioContext.create(strategy=name) as ctx:
        ran = []
        bh = ctx.bh_new(lambda: ran.append(1))
        ctx.bh_schedule(bh)
        ctx.bh_cancel(bh)
        assert not ctx.aio_poll(blocking=False) and ran == []
        st = ctx.bh_stats(bh)
        assert (st["schedules"], st["cancels"], st["dispatches"]) == (1, 1, 0)
        assert ctx.counters().lost_work == 0


def test_oneshot_runs_once_and_frees_its_slot():
    """bh_schedule_oneshot runs its callback once; its slot is free for the next one-shot."""
    with AioContext.create(strategy="explicit-mb") as ctx:
        ran = []
        a = ctx.bh_schedule_oneshot(lambda: ran.append("a"))
        assert ctx.aio_poll(blocking=True) and ran == ["a"]
        assert not ctx.aio_poll(blocking=False) and ran == ["a"]
        b = ctx.bh_schedule_oneshot(lambda: ran.append("b"))
        assert b == a  # the freed slot again
        assert ctx.aio_poll(blocking=False) and ran == ["a", "b"]
        assert ctx.counters().lost_work == 0
        with pytest.raises(TypeError):
            ctx.bh_schedule_oneshot(42)
