# A stress campaign for one strategy on one aio_poll skeleton: `aiocore
# stress` spends a budget per strategy and skeleton, not per pair.
#
# Why.  A bug confined to one of the owner's paths (a GSource prepare
# without its smp_mb) is met only by traffic run on that path, and a window
# of nanoseconds is hit only with the right chaos mode (pauses in the
# notifiers widen an ordering mistake in their schedule path; store
# buffering is sought with no pause on the side whose buffer matters).
# Running every (traffic, path, chaos) cell for a fixed time spends most of
# the budget where the strategy cannot fail.  So, as the issue that asked
# for it puts it, the campaign first asks the model checker where the
# strategy can fail on this machine (tso), then spends its budget there:
#
# 1. predict(): the checker on tso (and sc, to tell an ordering mistake that
#    fails everywhere from a store-buffering one) for every config the
#    strategy supports on the skeleton, at the default bounds -- a tenth of
#    a second each -- with the counterexample.
# 2. arms(): every (traffic, path, chaos[, poll_max_ns]) the strategy can
#    run, each with a weight.  A path whose configs have a tso counterexample
#    weighs more; for an sc-level counterexample notifier-side chaos weighs
#    more (it widens the window between the notifier's two stores or its
#    store and its load), for a tso-only one no pause weighs more (a pause
#    drains the store buffer the bug needs) and so does store-buffer
#    pressure (aio_chaos.h: the strategy's stores wait behind cache misses,
#    which keeps them in the buffer longer).  On the polling skeleton the
#    owner's busy-poll bound is an axis too (QEMU's default, or 0 as in its
#    main loop), weighted by whether the counterexample's owner busy-polls;
#    the ping-pong traffic aims its schedules at the owner's last look
#    before it blocks (the polling skeleton stamps its wait position after
#    the last look).  Where the checker passes the strategy on tso, every
#    arm weighs the same: the budget is spread evenly.
# 3. run(): slices (run_pair, until the first finding) drawn by weight from
#    a seeded RNG, until a finding or the budget's end.  Each native finding
#    is matched with the counterexample it reproduces (same kind, a config
#    the path exercises); one the checker did not predict is a headline --
#    the model or the compiler is wrong -- and is printed with its snapshot.
#
# Every slice's seed is in --json and --detail, with the argument that runs
# it again: `aiocore stress -s S --replay SEED:TRAFFIC:PATH:CHAOS[:POLL_MAX_NS]`.
#
# A campaign whose declared x86 verdict the checker contradicts on its
# skeleton has failed (Campaign.failed): the declaration is wrong, whether
# or not the native slices showed it.
from __future__ import annotations

import os
import random
import time

import attrs

from aiocore._compiler._plugins import get as get_strategy

from ._base import PATH_CONFIGS, PATHS, allows_foreign_pollers, path_configs
from ._chaos import Chaos
from ._runner import RunResult, Stopped, expected_on, run_pair

CHAOS_MODES = ("off", "notifiers", "owner", "pressure")
#: The polling skeleton's busy-poll bound, an axis of its own there: None is
#: QEMU's iothread default (the owner busy-polls up to 32 us before it raises
#: notify_me), 0 its main loop's (it never busy-polls: compute_timeout,
#: poll_begin, the last look and the wait follow each other at once).
POLL_MAX_NS = (None, 0)


@attrs.frozen
class Prediction:
    """The checker's verdict for one config on tso (this machine)."""

    config: str
    verdict: str  # "pass", "lost-wakeup", "busy-loop", ...
    sc_too: bool  # the same config fails under sc: an ordering mistake, not store buffering
    steps: int  # length of the counterexample (0 for pass)
    explanation: str = ""
    trace: str = ""  # the counterexample, as `aiocore check` prints it
    busy_polls: bool = False  # the counterexample's owner busy-polls (polling skeleton)

    @property
    def fails(self) -> bool:
        return self.verdict not in ("pass", "unknown")

    def label(self) -> str:
        kind = "sc and tso" if self.sc_too else "tso only"
        return f"{self.config} {self.verdict} ({self.steps} steps, {kind})"


@attrs.frozen
class Arm:
    """One cell of the search: what the notifiers do, the owner's path, the chaos mode."""

    traffic: str
    path: str
    chaos: str
    poll_max_ns: int | None = None  # polling skeleton: None = the default bound

    def where(self) -> str:
        pm = "" if self.poll_max_ns is None else f", poll_max_ns {self.poll_max_ns}"
        return f"{self.path} × {self.traffic}, chaos {self.chaos}{pm}"


@attrs.define
class Campaign:
    """One strategy's campaign on one skeleton: its predictions, its slices and its verdict."""

    strategy: str
    expected: str  # the x86 expectation: declared, else the checker's
    expectation_source: str  # "declared" | "checker"
    budget: float
    predictions: list = attrs.field(factory=list)
    runs: list = attrs.field(factory=list)  # RunResult per slice (its path, workload, chaos: the arm)
    seconds: float = 0.0
    first_finding_s: float | None = None  # campaign time (not slice time) to the first finding
    first_arm: Arm | None = None
    headlines: list = attrs.field(factory=list)  # native findings the checker did not predict
    reproduces: list = attrs.field(factory=list)  # "native kind on arm = checker's prediction"
    interrupted: bool = False
    load: tuple = ()  # 1-minute load average at the campaign's start and end
    skeleton: str = "2015"

    def counts(self) -> dict:
        c = {"lost-wakeup": 0, "busy-loop": 0, "lost-work": 0, "timeout": 0, "error": 0}
        for r in self.runs:
            c["lost-wakeup"] += r.lost_wakeups
            c["busy-loop"] += r.busy_loops
            c["lost-work"] += r.lost_work
            c["timeout"] += r.lost_wakeups_timed + r.busy_loops_timed
            c["error"] += len(r.errors)
        return c

    def observed(self) -> list[str]:
        c = self.counts()
        out = [k for k in ("lost-wakeup", "busy-loop", "lost-work") if c[k]]
        if c["timeout"] and not (c["lost-wakeup"] or c["busy-loop"]):
            out.append("timeout-only")
        if c["error"]:
            out.append("error")
        return out

    @property
    def verdict(self) -> str:
        return "+".join(self.observed()) or "pass"

    @property
    def failed(self) -> bool:
        """Expected to pass here and showed a finding, a slice failed, or the
        checker contradicts the declared x86 verdict on this skeleton (the
        declaration is wrong, whatever the native slices showed)."""
        if self.counts()["error"] or self.checker_disagrees():
            return True
        return self.expected == "pass" and self.verdict != "pass"

    @property
    def shortfall(self) -> bool:
        """An expected bug that was not reproduced: the tool's shortfall."""
        return self.expected not in ("pass", "unknown") and self.expected not in self.observed()

    def checker_disagrees(self) -> str:
        """The checker's tso verdict where it differs from a declared expectation ("" if not)."""
        from aiocore._checker import worst

        if self.expectation_source != "declared" or not self.predictions:
            return ""
        paths = {r.path for r in self.runs} or set(PATHS)
        configs = {c for p in paths for c in PATH_CONFIGS[p]}
        v = worst([p.verdict for p in self.predictions if p.config in configs])
        return "" if v == self.expected else v

    def matches(self) -> str:
        if self.counts()["error"]:
            return "unknown (a run failed)"
        if self.expected == "pass":
            return "yes" if self.verdict == "pass" else f"UNEXPECTED {self.verdict}"
        if self.shortfall:
            if self.observed():
                return f"UNEXPECTED {self.verdict} (expected {self.expected})"
            return f"not reproduced in {self.seconds:.0f} s"
        return "yes"

    def row(self) -> dict:
        """The --json object of this strategy (per-slice detail in `runs`)."""
        return dict(
            strategy=self.strategy,
            skeleton=self.skeleton,
            expected=self.expected,
            expectation_source=self.expectation_source,
            checker_says=self.checker_disagrees() or self.expected,
            declaration_contradicted=bool(self.checker_disagrees()),
            verdict=self.verdict,
            matches=self.matches(),
            failed=self.failed,
            shortfall=self.shortfall,
            budget=self.budget,
            seconds=round(self.seconds, 3),
            first_finding_s=None if self.first_finding_s is None else round(self.first_finding_s, 3),
            where=None if self.first_arm is None else attrs.asdict(self.first_arm),
            findings=self.counts(),
            predictions=[attrs.asdict(p) for p in self.predictions],
            reproduces=self.reproduces,
            headlines=self.headlines,
            runs=[dict(r.row(), traffic=r.workload, replay=replay_id(r)) for r in self.runs],
            load=dict(zip(("start", "end"), self.load), cpus=os.cpu_count()),
        )

    def loaded(self) -> bool:
        """The machine had more runnable work than CPUs during the campaign:
        the races a store-buffering bug needs are then rarer (a shortfall may
        be the machine's, not the tool's)."""
        return bool(self.load) and max(self.load) > (os.cpu_count() or 1)


def predict(info, skeleton: str = "2015") -> list[Prediction]:
    """The checker's tso verdict per config the strategy supports on the
    skeleton (sc beside it), with the counterexample."""
    from aiocore._checker import DEFAULT_BOUNDS, check_ir, supported_configs

    if info is None or getattr(info, "ir", None) is None:
        return []
    configs = [c for c in supported_configs(info.ir, skeleton)
               if c != "foreign" or allows_foreign_pollers(info)]
    out = []
    for cfg in configs:
        tso = check_ir(info.ir, "tso", cfg, DEFAULT_BOUNDS, want_trace=True, skeleton=skeleton)
        sc_fails = False
        trace = ""
        if tso.verdict not in ("pass", "unknown"):
            sc = check_ir(info.ir, "sc", cfg, DEFAULT_BOUNDS, want_trace=False, skeleton=skeleton)
            sc_fails = sc.verdict not in ("pass", "unknown")
            trace = tso.format_trace() if tso.trace else ""
        # The polling skeleton's counterexample says whether its owner busy-polled
        # ("poll_handlers ... busy-polls") or went straight to poll_begin.
        busy = skeleton == "polling" and "does not busy-poll" not in trace and "poll_handlers" in trace
        out.append(Prediction(cfg, tso.verdict, sc_fails, len(tso.trace or []), tso.explanation,
                              trace, busy))
    return out


def arms(info, traffics, paths=None, chaos_modes=CHAOS_MODES, predictions=(),
         skeleton: str = "2015") -> list[tuple[Arm, float]]:
    """Every (traffic, path, chaos[, poll_max_ns]) a strategy can run on the
    skeleton, with its weight.

    Where the checker predicts a failure on a path's configs, that path
    weighs more, and so does the chaos that widens the counterexample's
    window: pauses in the notifiers for an ordering mistake that fails
    under sc too; for a tso-only one (store buffering) no pause at all --
    a pause drains the buffer the bug needs -- or store-buffer pressure,
    which keeps the store in the buffer longer.  On the polling skeleton
    the owner's busy-poll bound is an axis: where the counterexample's
    owner does not busy-poll, poll_max_ns 0 (QEMU's main loop) weighs more:
    its owner reaches poll_begin, the last look and the wait at once."""
    failing = [p for p in predictions if p.fails]
    bounds = POLL_MAX_NS if skeleton == "polling" else (None,)
    out = []
    for wl in traffics:
        if not wl.applies_to(info):
            continue
        for path in wl.paths_for(info):
            if paths and path not in paths:
                continue
            if path == "foreign" and skeleton != "2015":
                continue  # no foreign poller runs the polling skeleton
            configs = PATH_CONFIGS[path]
            hits = [p for p in failing if p.config in configs]
            for mode in chaos_modes:
                for pm in bounds:
                    w = 1.0
                    if failing:
                        if hits:
                            # The mixed path meets the bug only part of the time.
                            w = 2.0 if path == "mixed" else 4.0
                            sc_level = any(p.sc_too for p in hits)
                            favoured = ("notifiers",) if sc_level else ("off", "pressure")
                            w *= 3.0 if mode in favoured else 1.0
                            if len(bounds) > 1:
                                busy = any(p.busy_polls for p in hits)
                                w *= 3.0 if (pm is None) == busy else 1.0
                        else:
                            w = 0.25  # a little budget where nothing is predicted: a headline lives there
                    out.append((Arm(wl.name, path, mode, pm), w))
    return out


def expectation(info, paths, skeleton="2015", predictions=()) -> tuple[str, str]:
    """(x86 expectation over the paths run, where it comes from)."""
    foreign_ok = allows_foreign_pollers(info)
    configs = sorted({c for p in paths for c in path_configs(p, foreign_ok)})
    declared = expected_on(info, configs, skeleton) if info is not None else None
    if declared is not None:
        return declared, "declared"
    from aiocore._checker import worst

    vs = [p.verdict for p in predictions if p.config in configs]
    return (worst(vs) if vs else "pass"), "checker"


def _predicted(predictions, kind: str, path: str):
    """The prediction a native finding of `kind` on `path` reproduces, or None."""
    for p in predictions:
        if p.fails and p.config in PATH_CONFIGS[path] and p.verdict == kind:
            return p
    return None


def run(strategy: str, traffics, budget: float, *, paths=None, chaos="mix", seed: int = 0,
        procs: int = 2, slice_s: float = 2.0, skeleton: str = "2015", kill_rate: float = 0.0,
        recovery: bool | None = None, guided: bool = True, all_findings: bool = False,
        lost_ms: float = 10.0, busy_k: int = 200, pin: bool = True, should_stop=None,
        on_slice=None, tick=None, replay: str | None = None, predictions=None) -> Campaign:
    """Spend `budget` seconds on one strategy and skeleton, slice by slice,
    until a finding (or, with all_findings, the budget's end).  ``replay``
    ("SEED:TRAFFIC:PATH:CHAOS[:POLL_MAX_NS]", a slice's ``replay`` in
    --json) runs that one slice again.  ``predictions``: predict()'s, if
    the caller has them already."""
    t0 = time.monotonic()  # the checker's time counts: a user waits for it too
    load0 = _loadavg()
    info = get_strategy(strategy)
    if predictions is not None:
        preds = list(predictions) if guided else []
    else:
        preds = predict(info, skeleton) if guided else []
    modes = {"off": ("off",), "on": ("notifiers", "owner", "pressure"), "mix": CHAOS_MODES}[chaos]
    weighted = arms(info, traffics, paths, modes, preds, skeleton)
    fixed_seed = None
    if replay is not None:
        fixed_seed, arm = parse_replay(replay, {w.name for w in traffics})
        weighted = [(arm, 1.0)]
    if not weighted:
        raise ValueError(f"{strategy}: no traffic and path to run it on")
    run_paths = sorted({a.path for a, _ in weighted})
    exp, source = expectation(info, run_paths, skeleton, preds)
    camp = Campaign(strategy, exp, source, budget, preds, skeleton=skeleton)
    rnd = random.Random(seed)
    by_name = {w.name: w for w in traffics}
    k = 0
    while True:
        spent = time.monotonic() - t0
        left = budget - spent
        if left < 0.05 or (should_stop is not None and should_stop()):
            break
        arm = rnd.choices([a for a, _ in weighted], [w for _, w in weighted])[0]
        run_seed = (seed * 1_000_003 + k) & ((1 << 63) - 1) if fixed_seed is None else fixed_seed
        k += 1
        if on_slice is not None:
            on_slice(camp, arm, run_seed)
        try:
            r = run_pair(strategy, by_name[arm.traffic], min(slice_s, left), procs, seed=run_seed,
                         lost_ms=lost_ms, busy_k=busy_k, chaos=Chaos(arm.chaos, run_seed),
                         until_found=not all_findings, path=arm.path, skeleton=skeleton,
                         kill_rate=kill_rate, recovery=recovery, pin=pin,
                         should_stop=should_stop, tick=tick,
                         poll_max_ns=arm.poll_max_ns if skeleton == "polling" else None)
        except Stopped:
            camp.interrupted = True
            break
        except Exception as e:  # one broken slice does not hide the others
            r = RunResult(strategy=strategy, workload=arm.traffic, seconds=0.0, wakeups=0, dispatched=0,
                          lost_wakeups=0, busy_loops=0, lost_work=0, verdict="error", failed=True,
                          matches="unknown (the run failed)", errors=[f"{type(e).__name__}: {e}"],
                          seed=run_seed, chaos=arm.chaos, path=arm.path, skeleton=skeleton,
                          poll_max_ns=arm.poll_max_ns)
        camp.runs.append(r)
        # The finding's wall-clock time since the campaign began: the slice's
        # start-up (processes attaching) counts, and so does its tear-down
        # (a slight overestimate).
        now = time.monotonic() - t0
        found = _note_findings(camp, r, arm, now - max(0.0, r.seconds - (r.first_finding_s or 0.0)))
        if r.errors or (found and not all_findings) or fixed_seed is not None:
            break
    camp.seconds = time.monotonic() - t0
    camp.load = (load0, _loadavg())
    return camp


def _loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # no /proc/loadavg
        return 0.0


def replay_id(r: RunResult) -> str:
    """The --replay argument that runs slice `r` again: SEED:TRAFFIC:PATH:CHAOS,
    and :POLL_MAX_NS where a polling slice bounded its busy-poll phase."""
    pm = "" if getattr(r, "poll_max_ns", None) is None else f":{r.poll_max_ns}"
    return f"{r.seed}:{r.workload}:{r.path}:{r.chaos}{pm}"


def parse_replay(text: str, traffics) -> tuple[int, Arm]:
    """(seed, arm) of a --replay argument, or a ValueError naming what is wrong."""
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise ValueError(f"--replay {text!r}: expected SEED:TRAFFIC:PATH:CHAOS[:POLL_MAX_NS] (a slice's "
                         f"`replay` in --json)")
    pm = None
    if len(parts) == 5:
        if not parts[4].isdigit():
            raise ValueError(f"--replay {text!r}: the poll_max_ns {parts[4]!r} is not a number")
        pm = int(parts.pop())
    seed, traffic, path, chaos = parts
    if not seed.isdigit():
        raise ValueError(f"--replay {text!r}: the seed {seed!r} is not a number")
    if traffic not in traffics:
        raise ValueError(f"--replay {text!r}: no traffic {traffic!r} (traffics: {', '.join(sorted(traffics))})")
    if path not in PATHS:
        raise ValueError(f"--replay {text!r}: no path {path!r} (paths: {', '.join(PATHS)})")
    if chaos not in CHAOS_MODES:
        raise ValueError(f"--replay {text!r}: no chaos mode {chaos!r} (modes: {', '.join(CHAOS_MODES)})")
    return int(seed), Arm(traffic, path, chaos, pm)


def _note_findings(camp: Campaign, r: RunResult, arm: Arm, at: float) -> bool:
    """Record a slice's findings: the first one's time and place, which
    counterexample each reproduces, and headlines.  True if it found one."""
    kinds = []
    if r.lost_wakeups:
        kinds.append("lost-wakeup")
    if r.busy_loops:
        kinds.append("busy-loop")
    if r.lost_work:
        kinds.append("lost-work")
    if not kinds:
        return False
    if camp.first_finding_s is None:
        camp.first_finding_s = at
        camp.first_arm = arm
    for kind in kinds:
        p = _predicted(camp.predictions, kind, arm.path)
        if p is not None:
            camp.reproduces.append(f"{kind} on {arm.where()} (seed {r.seed}) reproduces the "
                                   f"checker's {p.label()}")
        elif camp.predictions or camp.expectation_source == "checker":
            snap = next((f.snapshot for f in r.findings if f.kind == kind and f.detector == "state"), None)
            camp.headlines.append(dict(
                kind=kind, where=arm.where(), seed=r.seed,
                text=(f"{camp.strategy}: native {kind} on {arm.where()} (seed {r.seed}) that the "
                      f"checker did not predict on tso: the model or the compiler is wrong"),
                snapshot=snap,
            ))
    return True


__all__ = ["Arm", "Campaign", "Prediction", "arms", "expectation", "predict", "run", "CHAOS_MODES", "PATHS"]
