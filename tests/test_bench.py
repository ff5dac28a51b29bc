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
    assert {"machine", "load", "floors", "peers", "strategies", "targets"} <= set(quick_json)
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
    """--repeats sets the run's repeats; the top-level `load` records the load
    averages at the start, per repeat and at the end, and the share of the CPUs
    other processes used -- numbers, never None."""
    assert quick_json["machine"]["repeats"] == 2
    load = quick_json["load"]
    assert load["cpus"] == quick_json["machine"]["cpus"] >= 1
    for k in ("loadavg_start", "loadavg_end"):
        assert len(load[k]) == 3 and all(isinstance(x, (int, float)) and x >= 0 for x in load[k]), k
    assert len(load["loadavg_per_repeat"]) == 2
    assert all(len(x) == 3 and all(isinstance(v, (int, float)) for v in x) for x in load["loadavg_per_repeat"])
    every = [load["loadavg_start"], load["loadavg_end"], *load["loadavg_per_repeat"]]
    assert load["loadavg_1min_max"] == max(x[0] for x in every)
    if platform.system() == "Linux":
        assert 0.0 <= load["others_cpu_fraction"] <= 1.0 and 0.0 <= load["steal_fraction"] <= 1.0
        assert len(load["others_cpu_fraction_per_repeat"]) == 2
    assert all(v is not None for v in load.values())
    # machine keeps the load averages too (older readers)
    assert quick_json["machine"]["loadavg_start"] == load["loadavg_start"]


def test_load_meter_counts_other_processes_only():
    """Others' share = busy time less this process's own, over all CPUs' time."""
    from aiocore._bench._costs import LoadMeter

    m = LoadMeter()
    m.cpus, m.hz = 2, 100
    a = dict(loadavg=[1.0, 1.0, 1.0], stat=dict(busy=1000, total=4000, steal=10), own=5.0)
    # 2 s of wall time on 2 CPUs = 400 ticks; 300 busy ticks, 1 s of them ours.
    b = dict(loadavg=[2.0, 1.5, 1.0], stat=dict(busy=1300, total=4400, steal=30), own=6.0)
    others, steal = m._between(a, b)
    assert others == pytest.approx((3.0 - 1.0) / 4.0) and steal == pytest.approx(0.2 / 4.0)
    m.marks = [a, a, b]
    rec = m.record()
    assert rec["loadavg_1min_max"] == 2.0 and rec["loadavg_per_repeat"] == [[1.0, 1.0, 1.0]]
    assert rec["others_cpu_fraction_per_repeat"] == [pytest.approx(0.5)]
    m.marks = [dict(a, stat=None), b]                       # no /proc/stat: loadavg only
    assert "others_cpu_fraction" not in m.record()


def test_bad_repeats_is_a_clear_error(capsys):
    """--repeats 0 fails with exit status 1 and says why."""
    assert main(["bench", "--quick", "--repeats", "0", "-s", "unconditional-c"]) == 1
    assert "repeats must be at least 1" in capsys.readouterr().err


def test_selfpipe_rows_are_the_peer_baseline(quick_json):
    """Every selfpipe target row is marked as the peer baseline, judged by no limit; no other row is."""
    rows = quick_json["targets"]
    sp = [t for t in rows if t["strategy"] == "selfpipe"]
    assert sp and all(t["baseline"] is True and t["met"] is None and t["by"] is None
                      and t["note"].startswith("peer baseline") for t in sp)
    others = [t for t in rows if t["strategy"] != "selfpipe"]
    assert others and all(t["baseline"] is False and t["met"] in (True, False) for t in others)
    # Its figures are still reported: a write() per schedule costs far more than a call.
    assert quick_json["strategies"]["selfpipe"]["py_bh_schedule_vs_cffi_empty"]["value"] > 1.5


def test_every_target_is_listed_with_its_ratio(quick_json):
    """`targets` has one row per target and strategy, each with the measured
    ratio, the limit and the comparison: the general four for every strategy,
    the polling four for the strategies that declare that skeleton, the 2015
    baseline for those recorded, and generated vs hand-written unconditional."""
    from aiocore._bench._baseline import POLL_ROUND_VS_PPOLL

    names = ("unconditional-c", "unconditional", "notified", "always-notified", "selfpipe")
    general = ("bh_schedule from Python <= 1.5x empty cffi call", "aio_notify fast path <= 2x fence+load floor",
               "wake-up p50 <= 1.3x C eventfd ping-pong (interleaved)",
               "wake-up p50 >= 3x lower than multiprocessing.Event")
    polling = ("polling wake-up p50 <= 2x shm_spin_pingpong", "polling wake-up p50 >= 20x below eventfd ping-pong",
               "virtio-net-tx on polling >= 0.9x the ring floor (paired phases)",
               "idle owner <= 5% of one CPU (poll_max_ns set)")
    want = {(t, s) for s in names for t in general}
    want |= {(t, s) for s in ("always-notified", "selfpipe") for t in polling}
    want |= {("2015 skeleton poll round no worse than before polling (<= 1.1x baseline)", s)
             for s in names if s in POLL_ROUND_VS_PPOLL}
    want.add(("generated unconditional aio_notify <= 1.2x hand-written (issue 3)", "unconditional"))
    rows = quick_json["targets"]
    got = [(t["target"], t["strategy"]) for t in rows]
    assert sorted(got) == sorted(want)                      # each once, none missing
    for t in rows:
        assert isinstance(t["value"], (int, float)) and t["value"] > 0, t
        assert t["limit"] > 0 and t["cmp"] in ("<=", ">=") and t["unit"] == "x"
        if not t["baseline"]:
            assert t["met"] == (t["value"] <= t["limit"] if t["cmp"] == "<=" else t["value"] >= t["limit"])


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
    """Each polling strategy's virtio-net-tx is judged against the ring floor of
    its own session over running time (wall-time ratio and stalls beside it);
    its poll handler spares the guest's kicks that the bh-kick host needs."""
    for s in ("always-notified", "selfpipe"):
        d = quick_json["strategies"][s]
        for k in ("virtio_ring_floor_paired_pps", "virtio_polling_paired_pps", "virtio_polling_pps_vs_ring_floor_paired",
                  "virtio_polling_pps_vs_ring_floor_paired_wall", "virtio_polling_bh_kick_vs_ring_floor_paired",
                  "virtio_polling_word_round_ns"):
            assert d[k]["value"] > 0, (s, k)
        assert 0 <= d["virtio_polling_paired_stalled"]["value"] <= 1
        assert d["virtio_polling_kicks_per_dispatch"]["value"] >= 0
        steps = d["virtio_polling_steps"]
        for host in ("poll_handler", "bh_kick"):
            for side in ("floor", "host"):
                st = steps[host][side]
                assert st["rings"] > 0 and st["ring"] > 0 and st["host_flush"] > 0, (s, host, side)
            assert steps[host]["floor"]["to_aio_poll_return"] is None
            assert steps[host]["host"]["to_aio_poll_return"] is not None
    # always-notified's host outruns the guest: with a bh_schedule kick it takes
    # one per ring it drained (every ring, in lock step); the poll handler's
    # guest kicks only a host that went to sleep.  (selfpipe's host, slower
    # than the guest, rarely drains the ring: few kicks either way.)
    d = quick_json["strategies"]["always-notified"]
    assert d["virtio_polling_kicks_per_dispatch"]["value"] < d["virtio_polling_bh_kick_kicks_per_dispatch"]["value"]
    t = [t for t in quick_json["targets"] if t["target"].startswith("virtio-net-tx on polling")]
    assert {x["strategy"] for x in t} == {"always-notified", "selfpipe"}
    assert all(x["limit"] == 0.9 and x["cmp"] == ">=" for x in t)
    assert all(x["value"] == quick_json["strategies"][x["strategy"]]["virtio_polling_pps_vs_ring_floor_paired"]["value"]
               for x in t)
    assert not any("10x selfpipe" in x["target"] for x in quick_json["targets"])


def test_stalls_are_taken_out_of_every_phase_alike():
    """A phase's running ticks are its ticks less the union of both sides'
    stall intervals inside it (overlaps counted once); pairs compare floor
    and host over running time, and over wall time beside it."""
    from aiocore._bench._virtio_steps import paired_ratios, running_phases

    phases = [(100, 0, 100), (90, 100, 200), (50, 200, 300), (90, 300, 400)]
    stalls = [(20, 60), (40, 70), (250, 260), (390, 420)]   # two overlap; one runs past the end
    run = running_phases(phases, stalls)
    assert run == [(100, 50, 100), (90, 100, 100), (50, 90, 100), (90, 90, 100)]
    r = paired_ratios(run)
    assert r["pairs"] == 2
    assert r["ratio"] == pytest.approx(((0.9 / 2.0) + (1.0 / (50 / 90))) / 2)
    assert r["ratio_wall"] == pytest.approx((0.9 + 1.8) / 2)
    assert paired_ratios([(0, 10, 10), (5, 10, 10)]) is None   # a floor phase with no packets
    # A pair one of whose phases ran for under a tenth of its wall time is left out.
    r = paired_ratios(run + [(100, 100, 100), (1, 5, 100)])
    assert r["pairs"] == 2 and r["ratio"] == pytest.approx(((0.9 / 2.0) + (1.0 / (50 / 90))) / 2)


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


def test_virtio_paired_runs_again_when_no_phase_pair_counted(monkeypatch):
    """A paired session in which no phase pair ran long enough is run again; after
    PAIRED_ATTEMPTS such sessions the error says the machine was too loaded."""
    from aiocore._bench import _polling
    from aiocore._bench._base import BenchError

    calls = []

    def once(results):
        def f(*a):
            calls.append(a)
            return results.pop(0)
        return f

    monkeypatch.setattr(_polling, "_virtio_paired_once", once([None, None, {"ratio": 0.97}]))
    assert _polling.virtio_paired("notified", 8, 1000, 5.0) == {"ratio": 0.97}
    assert len(calls) == 3
    monkeypatch.setattr(_polling, "_virtio_paired_once", once([None] * _polling.PAIRED_ATTEMPTS))
    with pytest.raises(BenchError, match="too loaded"):
        _polling.virtio_paired("notified", 8, 1000, 5.0)
