"""Natively, the thread-pool and virtio traffics judge the bottom-half contract as a state (issue 23)."""
# A worker publishes its completion count (the payload) before each
# schedule and says when the schedule returned; the completion BH records
# what it saw.  The watchdog's lost-work state: a payload due that no
# callback read, the BH not pending, nobody in a protocol call, the owner not
# dispatching.  The e8d3b1a2-style outsider (plain stores to bh->scheduled)
# is caught this way on x86; correct strategies show nothing.
from __future__ import annotations

import json
import subprocess
import sys

import pytest

W = pytest.importorskip("aiocore_workloads")
from aiocore_workloads import _watchdog as WD  # noqa: E402

F = {n: i for i, n in enumerate(WD.SAMPLE_FIELDS)}


def _sample(**kw):
    s = [0] * len(WD.SAMPLE_FIELDS)
    s[F["consistent"]] = 1
    s[F["pos"]] = WD.POS_WAIT_INFINITE
    for k, v in kw.items():
        s[F[k]] = v
    return s


def test_lost_work_state_needs_every_condition():
    """Unseen payload + consistent + nobody in a call + owner not dispatching; any one missing: no finding."""
    assert WD.lost_work_state(_sample(unseen=1, unseen_due=7, unseen_seen=6))
    assert not WD.lost_work_state(_sample(unseen=0))
    assert not WD.lost_work_state(_sample(unseen=1, consistent=0))
    assert not WD.lost_work_state(_sample(unseen=1, in_protocol=1))
    assert not WD.lost_work_state(_sample(unseen=1, dead_in_protocol=1))
    assert not WD.lost_work_state(_sample(unseen=1, pos=WD.POS_DISPATCH))


class _FakeLib:
    def __init__(self, samples):
        self.samples = list(samples)

    def aio_drv_snap(self, c, buf, n, procs, nprocs):
        s = self.samples.pop(0)
        for i, v in enumerate(s):
            buf[i] = v
        return 0

    def aio_drv_pending(self, c, ids, n):
        return 0


class _FakeCtx:
    def __init__(self, samples):
        from cffi import FFI

        self._ffi = FFI()
        self._lib = _FakeLib(samples)
        self._c = None


def test_watchdog_reports_each_unseen_payload_once():
    """Two snapshots of one lost payload are one finding; a later lost payload is another."""
    a = _sample(unseen=1, unseen_bh=3, unseen_due=10, unseen_seen=9, now=1)
    b = _sample(unseen=1, unseen_bh=3, unseen_due=12, unseen_seen=11, now=2)
    wd = WD.Watchdog(_FakeCtx([a, a, b]))
    assert wd.step() == ["lost-work"] and wd.step() == [] and wd.step() == ["lost-work"]
    assert wd.lost_works == 2 and wd.found == 2
    f = wd.findings[0]
    assert (f.kind, f.detector) == ("lost-work", "state")
    assert f.snapshot["unseen_payload"] == dict(bh=3, due=10, seen=9, count=1)


@pytest.fixture(scope="module")
def outsiders_env(tmp_path_factory):
    from outsiders.install import install

    return install(tmp_path_factory.mktemp("outsiders"))


def _stress(env, *args, timeout=600):
    p = subprocess.run([sys.executable, "-m", "aiocore._cli", "stress", *args, "--json"],
                       capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    (c,) = json.loads(p.stdout)
    return c, p.returncode


@pytest.mark.stress
@pytest.mark.xdist_group("stress-catch")
def test_plain_scheduled_is_caught_as_lost_work_natively(outsiders_env):
    """e8d3b1a2's bug on x86: a completion coalesced into a running callback is a lost-work state."""
    c, rc = _stress(outsiders_env, "-s", "plain-scheduled", "-w", "thread-pool", "--path", "aio_poll",
                    "--chaos", "off", "-d", "120")
    assert "lost-work" in c["verdict"].split("+"), c["verdict"]
    assert c["first_finding_s"] is not None and rc == 0  # expected: its author declared tso lost-work
    runs = [r for r in c["runs"] if r["lost_work_states"]]
    f = next(f for f in runs[0]["findings"] if f["kind"] == "lost-work")
    u = f["snapshot"]["unseen_payload"]
    assert u["due"] > u["seen"] and f["snapshot"]["pending_count"] == 0
    assert all(p["in_call"] is None for p in f["snapshot"]["processes"])


@pytest.mark.stress
@pytest.mark.parametrize("name", ["xchg-scheduled", "listed-flags"])
def test_correct_bottom_halves_show_no_lost_work(outsiders_env, name):
    """The fixed and today's bottom halves run the two traffics clean, payloads checked."""
    # one campaign per traffic: a campaign deals its budget out in slices of random traffic and
    # path, so one campaign over both may give the thread pool no slice at all
    for workload, work in (("thread-pool", "pool_completions"), ("virtio-net-tx", "tx_packets")):
        c, rc = _stress(outsiders_env, "-s", name, "-w", workload, "--chaos", "off", "-d", "4")
        assert c["verdict"] == "pass" and rc == 0, (workload, c["verdict"])
        assert sum(r["work"].get(work, 0) for r in c["runs"]) > 0, (workload, c["runs"])
        assert all(r["lost_work_states"] == 0 for r in c["runs"])
