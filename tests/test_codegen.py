# IR -> C (aiocore._compiler._codegen): QEMU-like text, fences commented, every
# built-in compiles, the prebuilt modules carry the description's
# fingerprint, and bad input is refused with a clear error.
from __future__ import annotations

import re

import pytest
from strategies_helpers import BUILTINS, builtin_class

from aiocore._compiler import _ir
from aiocore._compiler._build import hooks_header, load_cached
from aiocore._compiler._codegen import generate_c
from aiocore._errors import StrategyError
from aiocore._compiler._strategy import Strategy, describe


def c_of(name_or_cls):
    cls = builtin_class(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    return generate_c(describe(cls), origin=cls.origin, doc=cls.__doc__ or "")


def function(c: str, name: str) -> str:
    m = re.search(r"^static \w+ " + name + r"\(.*?^}", c, re.S | re.M)
    assert m, f"{name} not in\n{c}"
    return m.group(0)


def strip_comments(c: str) -> str:
    c = re.sub(r"/\*.*?\*/", "", c, flags=re.S)
    return "\n".join(ln.strip() for ln in c.splitlines() if ln.strip())


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_fence_is_commented(name):
    """Each smp_* and atomic_mb_set in the generated C follows a 'Pairs with' comment."""
    lines = c_of(name).splitlines()
    fences = 0
    for i, ln in enumerate(lines):
        if re.search(r"\b(smp_mb|smp_wmb|smp_rmb|atomic_mb_set)\(", ln):
            fences += 1
            before = "\n".join(lines[max(0, i - 4) : i])
            assert "Pairs with" in before, f"{name}: uncommented fence at line {i}: {ln}"
    ir = describe(builtin_class(name))
    n_ir = sum(isinstance(s, (_ir.Fence, _ir.MbSet)) for b in ir.hooks.values() for s in _ir.walk(b))
    assert fences == n_ir


def test_handwritten_fences_are_commented():
    """The hand-written reference comments its fences too."""
    c = hooks_header("unconditional")
    i = c.index("smp_mb();")
    assert "Pairs with" in c[max(0, i - 300) : i]


def test_unconditional_matches_the_handwritten_reference():
    """Generated notify/accept/poll hooks of unconditional equal the hand-written C, comments aside."""
    gen, ref = c_of("unconditional"), hooks_header("unconditional")
    for fn in ("strategy_notify", "strategy_accept", "strategy_poll_begin", "strategy_poll_end",
               "strategy_prepare", "strategy_check", "strategy_schedule"):
        assert strip_comments(function(gen, fn)) == strip_comments(function(ref, fn)), fn


def test_reads_are_inlined_in_qemu_style():
    """Single-use reads are inlined where order is kept: QEMU's spelling of 5710a3e0."""
    c = c_of("explicit-mb")
    assert "atomic_set(&ctx->shm->notify_me, atomic_read(&ctx->shm->notify_me) + 2);" in c
    assert "atomic_store_release(&ctx->shm->notify_me, atomic_read(&ctx->shm->notify_me) & ~1u);" in c
    assert "if (atomic_xchg(&ctx->shm->notified, 0)) {" in c
    assert "if (atomic_read(&ctx->shm->notify_me)) {" in c


def test_negated_branch_reads_naturally():
    """`if not read: ...` is emitted as `if (!read)` rather than an empty then-block."""
    c = function(c_of("bug2"), "strategy_notify")
    assert "if (!atomic_read(&ctx->shm->notified)) {" in c
    assert "{\n        }" not in c


def test_two_reads_in_one_expression_keep_their_order():
    """Only the last read is inlined when an expression uses two (C leaves operand order open)."""

    class Two(Strategy):
        name = "two"
        shared = ("x",)

        def notify(s):
            if s.atomic_read(s.x) | s.atomic_read(s.notify_me):
                s.event_set()

    c = function(c_of(Two), "strategy_notify")
    assert "uint32_t x = atomic_read(&ctx->shm->strategy_field[0].v /* x */);" in c
    assert "if (x | atomic_read(&ctx->shm->notify_me)) {" in c


def test_reads_under_short_circuit_are_not_inlined():
    """A read whose use sits right of && keeps its own statement (it must happen first)."""

    class SC(Strategy):
        name = "sc"

        def notify(s):
            a = s.atomic_read(s.notified)
            b = s.atomic_read(s.notify_me)
            s.atomic_set(s.notified, (a == 0) & (b != 0))

    c = function(c_of(SC), "strategy_notify")
    assert c.index("atomic_read(&ctx->shm->notified)") < c.index("atomic_read(&ctx->shm->notify_me)")


def test_bh_rmw_keeps_old_value_for_accounting():
    """A void RMW on bh->scheduled becomes its fetch form and reports to aio_bh_note."""

    class OrSchedule(Strategy):
        name = "or-schedule"

        def notify(s):
            s.event_set()

        def schedule(s):
            s.atomic_or(s.bh_scheduled, 1)
            s.notify()

    c = function(c_of(OrSchedule), "strategy_schedule")
    assert "uint32_t old = atomic_fetch_or(&bh->scheduled, 1);" in c
    assert "aio_bh_note(bh, old, old | 1);" in c


def test_cmpxchg_schedule_notes_the_new_value():
    """cmpxchg on bh->scheduled notes new = (old == expected ? new : old)."""

    class Cas(Strategy):
        name = "cas"

        def notify(s):
            s.event_set()

        def schedule(s):
            if s.atomic_cmpxchg(s.bh_scheduled, 0, 1) == 0:
                s.notify()

    c = function(c_of(Cas), "strategy_schedule")
    assert "uint32_t old = atomic_cmpxchg(&bh->scheduled, 0, 1);" in c
    assert "aio_bh_note(bh, old, old == 0 ? 1 : old);" in c


@pytest.mark.parametrize("prim", ["atomic_set", "atomic_store_release", "atomic_mb_set"])
def test_plain_write_to_bh_scheduled_is_not_counted(prim):
    """A plain store to the BH's word (QEMU 2014) compiles, uncounted: no aio_bh_note beside it."""

    def schedule(s):
        getattr(s, prim)(s.bh_scheduled, 1)

    cls = type("W", (Strategy,), {"name": "w", "notify": lambda s: s.event_set(), "schedule": schedule})
    ir = describe(cls)
    c = generate_c(ir)
    body = c.split("static void strategy_schedule(")[1].split("\n}\n")[0]
    assert f"{prim}(&bh->scheduled, 1);" in body and "aio_bh_note" not in body
    assert not ir.bh_counted and "#define AIO_STRATEGY_BH_COUNTED 0" in c


def test_calling_schedule_is_refused():
    """accept cannot call schedule: there is no bottom half there."""
    cls = type("C", (Strategy,), {"name": "c", "notify": lambda s: s.event_set(), "accept": lambda s: s.schedule()})
    with pytest.raises(StrategyError, match="calls schedule, which needs a bottom half"):
        describe(cls)


def test_timeout_sites_and_macros():
    """always-notified (upstream) defines QEMU's two sites that read notified, its BH list, and the flag macros."""
    c = c_of("always-notified")
    assert "#define AIO_STRATEGY_HAS_TIMEOUT_ZERO 0" in c
    assert "#define AIO_STRATEGY_HAS_COMPUTE_TIMEOUT 0" in c  # aio_compute_timeout never reads notified
    assert "#define AIO_STRATEGY_HAS_NOTIFIER_POLL 1" in c and "#define AIO_STRATEGY_HAS_LAST_LOOK 1" in c
    assert "return atomic_read(&ctx->shm->notified);" in function(c, "strategy_notifier_poll")
    assert "return atomic_read(&ctx->shm->notified);" in function(c, "strategy_last_look")
    assert "return atomic_xchg(&ctx->shm->bh_list, 0);" in function(c, "strategy_claim_list")
    assert "#define AIO_STRATEGY_ACCEPT_NONBLOCKING 1" in c
    assert "#define AIO_STRATEGY_FOREIGN_POLLERS 0" in c
    nb = c_of("notified-blocking")
    assert "#define AIO_STRATEGY_ACCEPT_NONBLOCKING 0" in nb
    assert "strategy_timeout_zero" not in nb and "#define AIO_STRATEGY_HAS_CLAIM_LIST 0" in nb


def test_unsigned_arithmetic_on_comparisons():
    """Arithmetic on a comparison result stays unsigned in C, as in the IR's 32-bit semantics."""

    class Cmp(Strategy):
        name = "cmp"

        def notify(s):
            v = s.atomic_read(s.notify_me)
            if ((v == 1) - 2) < 3:
                s.event_set()

    c = function(c_of(Cmp), "strategy_notify")
    assert "2u" in c


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_prebuilt_module_matches_description(name):
    """The module built at install time carries the current description's fingerprint."""
    import importlib

    from aiocore._compiler._load import builtin_module_name

    m = importlib.import_module(builtin_module_name(name))
    fp = m.ffi.string(m.lib.aio_strategy_fingerprint()).decode()
    assert fp == describe(builtin_class(name)).fingerprint, "stale build: rerun pip install -e ."
    assert m.ffi.string(m.lib.aio_strategy_name()).decode() == name


def test_compile_error_names_the_strategy(tmp_path, monkeypatch):
    """C that does not compile gives a StrategyError naming the strategy."""
    monkeypatch.setenv("AIOCORE_CACHE", str(tmp_path))
    with pytest.raises(StrategyError, match="strategy broken-c does not compile"):
        load_cached("broken-c", "this is not C;")
