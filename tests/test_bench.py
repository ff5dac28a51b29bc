# Fast checks of `aiocore bench`: it runs, its JSON has the promised shape,
# and the fences/locked ops counted from each strategy's description match
# its compiled code.  No timing assertions: timings are the benchmark's
# business, not the tests'.
import json
import platform
import shutil

import pytest

from aiocore._bench import _all as B
from aiocore._cli._main import main
from aiocore._compiler._load import load_strategy

x86 = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not shutil.which("objdump"),
    reason="counts compiled x86-64 code with objdump",
)


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory):
    import io
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--quick", "--repeats", "2", "--json", "-s", "unconditional-c",
                   "-s", "unconditional", "-s", "notified", "-s", "always-notified", "-s", "selfpipe"])
    assert rc == 0
    return json.loads(buf.getvalue())


def _figures(obj, path=""):
    """Every dict that carries a 'value' (a figure), with where it is."""
    if isinstance(obj, dict):
        if "value" in obj:
            yield path, obj
        for k, v in obj.items():
            if k not in ("protocol_costs", "compiled_check"):
                yield from _figures(v, f"{path}.{k}")


def test_quick_json_has_the_keys(quick_json):
    assert {"machine", "floors", "peers", "strategies"} <= set(quick_json)
    assert {"cpu", "cpus", "kernel", "python"} <= set(quick_json["machine"])
    assert {"fence_load", "eventfd_pingpong", "cffi_empty_call"} <= set(quick_json["floors"])
    assert {"asyncio", "mp_event", "mp_condition", "posix_sem", "eventfd_py"} <= set(quick_json["peers"])
    d = quick_json["strategies"]["notified"]
    for k in ("notify_ns", "poll_round_ns", "fences_per_notify", "locked_per_notify",
              "fences_per_poll", "locked_per_poll", "round_event_sets_per_1k",
              "round_event_clears_per_1k", "wakeup_p50", "wakeup_p99", "virtio_pps",
              "pool_completions_per_s", "py_bh_schedule_ns"):
        assert k in d, k
    assert "notify_vs_handwritten" in quick_json["strategies"]["unconditional"]
    assert quick_json["targets"], "targets are checked and reported"


def test_json_records_the_repeats_and_the_load(quick_json):
    """--repeats sets the run's repeats, and the load average is recorded per repeat."""
    m = quick_json["machine"]
    assert m["repeats"] == 2
    assert len(m["loadavg_per_repeat"]) == 2 and all(len(x) == 3 for x in m["loadavg_per_repeat"])
    assert len(m["loadavg_start"]) == 3 and len(m["loadavg_end"]) == 3


def test_bad_repeats_is_a_clear_error(capsys):
    """--repeats 0 fails with exit status 1 and says why."""
    assert main(["bench", "--quick", "--repeats", "0", "-s", "unconditional-c"]) == 1
    assert "repeats must be at least 1" in capsys.readouterr().err


def test_selfpipe_rows_are_the_peer_baseline(quick_json):
    """Every selfpipe target row is marked as the peer baseline, judged by no limit; no other row is."""
    rows = quick_json["targets"]
    sp = [t for t in rows if t["strategy"] == "selfpipe"]
    assert sp and all(t.get("baseline") and t["met"] is None and "peer baseline" in t["note"] for t in sp)
    assert not any(t.get("baseline") for t in rows if t["strategy"] != "selfpipe")
    # Its figures are still reported: a write() per schedule costs far more than a call.
    assert quick_json["strategies"]["selfpipe"]["py_bh_schedule_vs_cffi_empty"]["value"] > 1.5


def test_wake_up_steps_are_measured_interleaved(quick_json):
    """The wake-up is reported beside the eventfd and ppoll+read floors of its own session, per step."""
    for s in ("unconditional-c", "notified", "always-notified"):
        d = quick_json["strategies"][s]
        e, y, a = (d[k]["value"] for k in ("wakeup_eventfd_paired_p50", "wakeup_syscalls_paired_p50", "wakeup_p50"))
        assert e > 0 and y > 0 and a > 0
        w = d["wakeup_steps"]
        assert (w["eventfd"], w["syscalls_extra"], w["protocol_extra"]) == (e, y - e, a - y)
        assert d["wakeup_p50_vs_eventfd_paired"]["value"] > 0
        assert d["wakeup_polls"]["value"] >= 1  # the aio kind slept and woke in aio_poll
    names = {t["target"] for t in quick_json["targets"]}
    assert "wake-up p50 <= 1.3x C eventfd ping-pong (interleaved)" in names


def test_virtio_polling_is_paired_with_the_ring_floor(quick_json):
    """Each polling strategy's virtio-net-tx is judged against the ring floor of its own session."""
    d = quick_json["strategies"]["always-notified"]
    for k in ("virtio_ring_floor_paired_pps", "virtio_polling_paired_pps", "virtio_polling_pps_vs_ring_floor_paired"):
        assert d[k]["value"] > 0, k
    assert d["virtio_polling_kicks_per_dispatch"]["value"] >= 0
    t = [t for t in quick_json["targets"] if t["target"].startswith("virtio-net-tx on polling")]
    assert {x["strategy"] for x in t} == {"always-notified", "selfpipe"}
    assert all(x["limit"] == 0.9 and x["cmp"] == ">=" for x in t)
    assert not any("10x selfpipe" in x["target"] for x in quick_json["targets"])


def test_every_figure_has_a_unit(quick_json):
    figs = list(_figures({k: quick_json[k] for k in ("floors", "peers", "strategies")}))
    assert len(figs) > 50
    for path, f in figs:
        assert f.get("unit"), path
        assert f["value"] is None or isinstance(f["value"], (int, float)), path


def test_counters_tell_strategies_apart(quick_json):
    st = quick_json["strategies"]
    # unconditional clears on every poll, notified never when nobody slept,
    # selfpipe writes on every schedule.
    assert st["unconditional"]["round_event_clears_per_1k"]["value"] == pytest.approx(1000)
    assert st["notified"]["round_event_clears_per_1k"]["value"] == 0
    assert st["selfpipe"]["round_event_sets_per_1k"]["value"] >= 1000


def test_cli_plot_without_matplotlib(monkeypatch, capsys):
    import aiocore._cli._bench as cb

    monkeypatch.setattr(cb, "_check_plot_available", lambda: "needs matplotlib")
    assert main(["bench", "--quick", "--plot", "/nonexistent/x.png"]) == 2
    assert "matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["unconditional-c"] + list(B.SEED_STRATEGIES))
def test_description_counts(name):
    info, ffi, lib = load_strategy(name)
    c = B.protocol_costs(info)
    # The fast path of aio_notify: one full fence, no locked op (selfpipe: a
    # syscall instead), and only selfpipe writes the notifier when nobody sleeps.
    if name == "selfpipe":
        assert c["notify_idle"] == dict(fences=0, locked=0, compiler_barriers=0, event_set=1, event_clear=0)
    else:
        assert c["notify_idle"]["fences"] == 1 and c["notify_idle"]["locked"] == 0
        assert c["notify_idle"]["event_set"] == 0
    if name in ("notified", "notified-blocking", "explicit-mb"):
        # 05e514b1's atomic_mb_set: one more fence when the owner sleeps.
        assert c["notify_sleeping"]["fences"] == 2
        assert c["poll_round"]["event_clear"] == 0
    if name in ("unconditional", "unconditional-c"):
        assert c["poll_round"]["event_clear"] == 1


@x86
@pytest.mark.parametrize("name", ["unconditional-c"] + list(B.SEED_STRATEGIES))
def test_description_matches_compiled_code(name):
    info, ffi, lib = load_strategy(name)
    chk = B.compiled_check(info, lib)
    assert chk["checked"]
    assert chk["compiled"] == chk["expected"], chk


def test_polling_figures_and_targets(quick_json):
    """The polling skeleton's floor, figures, seed question and targets are in the JSON."""
    assert {"shm_spin_pingpong", "shm_spin_pingpong_p99", "virtio_ring_floor_pps"} <= set(quick_json["floors"])
    assert quick_json["floors"]["virtio_ring_floor_pps"]["value"] > 0
    assert quick_json["floors"]["virtio_ring_floor_flushes_per_s"]["value"] > 0
    sp = quick_json["strategies"]["selfpipe"]
    for k in ("wakeup_polling_p50", "wakeup_polling_p99", "wakeup_polling_p50_vs_spin",
              "virtio_polling_dispatches_per_s", "virtio_polling_pps_vs_ring_floor", "idle_cpu_fraction"):
        assert sp[k]["value"] is not None, k
    # notified does not declare the polling skeleton: no polling wake-up for it.
    assert "wakeup_polling_p50" not in quick_json["strategies"]["notified"]
    assert quick_json["strategies"]["notified"]["skeletons"] == ["2015"]
    seed = quick_json["seed_polling"]
    # On the polling skeleton with work pending no ppoll runs: unconditional's
    # accept is still a read() per aio_poll, notified's never.
    assert seed["unconditional"]["event_clear_calls_per_poll"]["value"] == pytest.approx(1.0)
    assert seed["notified"]["event_clear_calls_per_poll"]["value"] == 0
    assert seed["notified"]["no_syscall_polls"]["value"] == pytest.approx(1.0)
    names = {t["target"] for t in quick_json["targets"]}
    assert {"polling wake-up p50 <= 2x shm_spin_pingpong", "polling wake-up p50 >= 20x below eventfd ping-pong",
            "idle owner <= 5% of one CPU (poll_max_ns set)"} <= names
    for t in quick_json["targets"]:
        assert t["met"] in (True, False, None) and (t["met"] is None or t["by"] is not None)


def test_render_keeps_names_whole_at_80_columns(quick_json):
    import io

    from rich.console import Console

    from aiocore._cli._bench import render

    buf = io.StringIO()
    render(quick_json, Console(file=buf, width=80, highlight=False, color_system=None))
    out = buf.getvalue()
    for name in ("unconditional-c", "unconditional", "notified", "always-notified", "selfpipe",
                 "shm_spin_pingpong"):
        assert name in out, name
    assert "unconditio…" not in out and "shm_spin_pi…" not in out
