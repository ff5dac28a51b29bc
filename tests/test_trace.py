# Faithfulness (aiocore._compiler._trace): the compiled C of every built-in, run in its
# trace build, logs exactly what the Python description (and the IR) does on
# every path; and the check does catch C that differs.
from __future__ import annotations

import pytest
from strategies_helpers import BUILTINS

from aiocore._compiler import _load, _plugins
from aiocore._compiler._build import load_cached
from aiocore._compiler._codegen import generate_c
from aiocore._compiler._strategy import Strategy, describe
from aiocore._compiler._trace import Unfaithful, check_hook, check_strategy, run_c


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_is_faithful_on_every_path(name):
    """Python, IR and compiled C agree on every script; every branch arm is reached."""
    report = check_strategy(_plugins.get(name))
    assert report.uncovered == {}
    assert {h.hook for h in report.hooks} >= {"notify", "schedule", "poll_begin", "poll_end"}
    assert report.scripts >= 9


def test_handwritten_reference_is_faithful_to_unconditional():
    """The hand-written unconditional-c does exactly what unconditional's description says."""
    core = _plugins.get(_plugins.HANDWRITTEN)
    report = check_strategy(_plugins.get("unconditional"), ffi_lib=_load.load_trace(core))
    assert report.uncovered == {}


@pytest.mark.parametrize("other", ["bug1", "bug2", "unconditional", "explicit-mb"])
def test_different_c_is_caught(other):
    """C compiled from another strategy's description is reported as unfaithful to notified's."""
    notified = _plugins.get("notified")
    other_info = _plugins.get(other)
    ffi_lib = _load.load_trace(other_info)
    with pytest.raises(Unfaithful, match="differs from the description"):
        check_strategy(notified, ffi_lib=ffi_lib)


def test_mismatch_report_shows_the_logs():
    """An Unfaithful error shows the read values and the three logs side by side."""
    notified = _plugins.get("notified")
    ffi, lib = _load.load_trace(_plugins.get("bug1"))
    with pytest.raises(Unfaithful) as ei:
        check_hook(notified.cls, notified.ir, ffi, lib, "notify")
    text = str(ei.value)
    assert "hook notify, read values" in text and "!! python" in text


def test_trace_log_records_primitives():
    """The trace build logs op, field, written and scripted read values."""
    ffi, lib = _load.load_trace(_plugins.get("explicit-mb"))
    log, ret = run_c(ffi, lib, "poll_begin", [40])
    assert log == [
        ("atomic_read", "notify_me", None, 40),
        ("atomic_set", "notify_me", 42, None),
        ("smp_mb", None, None, None),
    ]
    assert ret == 0


def test_private_fields_and_return_values(tmp_path, monkeypatch):
    """Strategy fields, cmpxchg operands and timeout_zero's value are compared too."""
    monkeypatch.setenv("AIOCORE_CACHE", str(tmp_path))

    class Rich(Strategy):
        name = "rich"
        shared = ("a", "b")

        def notify(s):
            old = s.atomic_cmpxchg(s.b, 3, s.atomic_read(s.a) + 1)
            if old != 3:
                s.atomic_store_release(s.a, ~old)
            s.event_set()

        def timeout_zero(s):
            return s.atomic_load_acquire(s.b) ^ 1

    ir = describe(Rich)
    ffi, lib = load_cached(f"rich-{ir.fingerprint}", generate_c(ir), trace=True)
    rep = check_hook(Rich, ir, ffi, lib, "notify")
    assert rep.uncovered == 0 and rep.scripts == 25
    log, _ = run_c(ffi, lib, "notify", [7, 3], ("a", "b"))
    assert log[1] == ("atomic_cmpxchg", "b", 8, 3, 3)
    rep = check_hook(Rich, ir, ffi, lib, "timeout_zero")
    assert rep.scripts == 5
    _, ret = run_c(ffi, lib, "timeout_zero", [6], ("a", "b"))
    assert ret == 7
