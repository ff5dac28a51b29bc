# Running the checker over strategies x models x configs, and comparing the
# verdicts with what the strategies declare.
#
# Every skeleton a strategy is judged on is a row group of its own
# (judged_skeletons: those it declares in `skeletons` and those it declares
# verdicts for in `expected_skeletons`); on 2015 the verdicts are `expected`
# and `expected_configs`, on another skeleton `expected_skeletons[skeleton]`.
#
# Expectations (Strategy.expected / expected_configs / expected_skeletons):
#   * a run whose config has a declared per-config verdict is compared with it;
#   * otherwise, for each (strategy, model), the worst verdict over the configs
#     run is compared with `expected[model]` -- but only when every config the
#     strategy supports ran (the worst over fewer configs may be milder);
#   * a failing verdict where `pass` is expected is a mismatch in any case;
#   * an arm run is also judged per profile (with_profiles): arm-llsc and
#     arm-lse as declared, or implied (an arm pass is a pass on each; arm is
#     the worse of the two: _meta.with_profiles).
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import attrs

from .._compiler import _meta
from .._compiler._skeleton import DEFAULT_SKELETON, SKELETONS
from . import (
    _WORST_ORDER, CONFIGS, DEFAULT_BOUNDS, DEFAULT_MODELS, MODELS, PROFILES, Bounds, CheckResult, _union, check_ir,
    supported_configs, worst,
)

VERDICT_RANK = {v: i for i, v in enumerate(_WORST_ORDER)}

# relative cost of a run, to start the longest first (measured on `aiocore check`'s
# default matrix: an arm profile ~2x sc, foreign ~1/3 of home)
_MODEL_COST = {"sc": 1.0, "tso": 1.0, "arm-llsc": 2.2, "arm-lse": 1.8, "arm": 4.0}
_CONFIG_COST = {"home": 1.0, "gsource": 1.0, "foreign": 0.35}


@attrs.frozen
class Options:
    """What the runs explore beyond the bounds: the aio_poll skeleton (None:
    every skeleton each strategy is judged on), faults, recovery."""

    skeleton: str | None = None
    faults: str = "none"
    recovery: bool = False
    engine: str = "auto"  # the search loop: "c", "python" or "auto" (same results)
    # keep each ARM counterexample as a litmus program (CheckResult.litmus), made in the
    # worker that ran it: the explorer it needs stays there
    export: bool = False
    speculate: bool = False  # ARM: speculate past branches on pending loads (check_ir)

    def describe(self) -> str:
        out = f"skeleton {self.skeleton}" if self.skeleton else "every declared skeleton"
        if self.faults != "none":
            out += f", faults {self.faults} ({'with' if self.recovery else 'without'} recovery)"
        if self.speculate:
            out += ", ARM branches speculated"
        return out


DEFAULT_OPTIONS = Options()


@attrs.define
class Row:
    info: object  # StrategyInfo
    model: str
    config: str
    result: CheckResult | None = None
    skeleton: str = "2015"
    expected: str | None = None  # what this row is compared with, if anything
    status: str = "-"  # "ok", "MISMATCH", "UNKNOWN", "-" (nothing to compare with), "error"
    error: str = ""
    derived: bool = False  # one profile's run inside an arm run (with_profiles), not a run of its own

    def unknown_text(self) -> str:
        """The one line that says a run proved nothing, and what to do."""
        sk = "" if self.skeleton == DEFAULT_SKELETON else f" {self.skeleton}"
        return (f"{self.info.name}{sk} {self.model} {self.config}: unknown, "
                f"{self.result.stop_reason()}; raise it or lower the bounds")


@attrs.define
class Summary:
    """Worst verdict over the configs run, per (strategy, model)."""

    name: str
    model: str
    configs: tuple
    verdict: str
    expected: str | None
    complete: bool  # every supported config ran
    status: str  # "ok", "MISMATCH", "UNKNOWN" (a run cut short, nothing failed), "-"
    skeleton: str = "2015"


def declared_skeletons(info) -> tuple:
    """The skeletons a strategy runs on natively (its `skeletons`)."""
    return tuple(getattr(info, "skeletons", None) or (DEFAULT_SKELETON,))


def judged_skeletons(info) -> tuple:
    """The skeletons whose verdicts a strategy declares, in SKELETONS order:
    those it runs on (`skeletons`), and those it declares verdicts for
    without running there (`expected_skeletons`, e.g. explicit-mb's
    lost-wakeup on polling, which says why it does not run there)."""
    declared = declared_skeletons(info)
    esk = getattr(info, "expected_skeletons", None) or {}
    return tuple(sk for sk in SKELETONS if sk in declared or esk.get(sk))


def declared_verdicts(info, skeleton: str) -> dict:
    """{model: verdict} a strategy declares on a skeleton (worst over its configs)."""
    esk = getattr(info, "expected_skeletons", None) or {}
    if skeleton == DEFAULT_SKELETON:
        return _meta.with_profiles(getattr(info, "expected", None) or esk.get(skeleton) or {})
    return _meta.with_profiles(esk.get(skeleton) or {})


def plan(infos, models=DEFAULT_MODELS, configs=CONFIGS, opts: Options = DEFAULT_OPTIONS) -> list[Row]:
    """Rows for every strategy x skeleton (opts.skeleton, or each one it is
    judged on) x model x config it supports."""
    rows = []
    for info in infos:
        for sk in ((opts.skeleton,) if opts.skeleton else judged_skeletons(info)):
            sup = supported_configs(info.ir, sk)
            for m in models:
                for c in configs:
                    if c in sup:
                        rows.append(Row(info, m, c, skeleton=sk))
    return rows


# --- running ---------------------------------------------------------------------

_JOBS: list = []  # (ir, model, config, skeleton) per task, inherited by forked workers
_BOUNDS: Bounds = DEFAULT_BOUNDS
_OPTS: Options = DEFAULT_OPTIONS


def _work(k: int, states_progress=None):
    ir, model, config, skeleton = _JOBS[k]
    o = _OPTS
    try:
        return k, check_ir(ir, model, config, _BOUNDS, skeleton=skeleton, faults=o.faults,
                           recovery=o.recovery, engine=o.engine, progress=states_progress,
                           export=o.export, speculate=o.speculate), ""
    except Exception as e:  # a strategy the checker cannot handle: report it, go on
        return k, None, f"{type(e).__name__}: {e}"


def _tasks(rows, split: bool) -> list:
    """(row index, model) per run: with ``split``, an "arm" row is its two
    profiles' runs, so that two workers share it (then _union'ed)."""
    out = []
    for k, r in enumerate(rows):
        for m in (PROFILES if split and r.model == "arm" else (r.model,)):
            out.append((k, m))
    return out


def run(rows: list[Row], bounds: Bounds = DEFAULT_BOUNDS, jobs: int | None = None, progress=None,
        opts: Options = DEFAULT_OPTIONS, states_progress=None):
    """Check every row (in place).  jobs > 1 forks that many workers, each
    "arm" row then being two runs (one per profile) joined when both end.
    ``progress(row)`` after each row; ``states_progress(states)`` after each
    breadth-first layer of a run made in this process (one job)."""
    global _JOBS, _BOUNDS, _OPTS
    if jobs is None:
        jobs = os.cpu_count() or 1
    forked = jobs > 1 and "fork" in multiprocessing.get_all_start_methods()
    tasks = _tasks(rows, forked)
    _JOBS = [(rows[k].info.ir, m, rows[k].config, rows[k].skeleton) for k, m in tasks]
    _BOUNDS = bounds
    _OPTS = opts
    order = sorted(range(len(tasks)), key=lambda t: -_MODEL_COST[tasks[t][1]] * _CONFIG_COST[rows[tasks[t][0]].config])
    jobs = max(1, min(jobs, len(tasks)))
    if jobs == 1 or not forked:
        for t in order:  # no split: task t is row t
            _store(rows, *_work(t, states_progress))
            if progress:
                progress(rows[t])
        return rows
    parts = {}  # row index -> {profile: result} of an arm row's runs so far
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futs = [pool.submit(_work, t) for t in order]
        index = {f: t for f, t in zip(futs, order)}
        for f in as_completed(futs):
            try:
                t, res, err = f.result()
            except Exception as e:  # a worker died (killed, out of memory): that run is an error
                t, res, err = index[f], None, f"worker failed: {type(e).__name__}: {e}"
            k, m = tasks[t]
            if rows[k].model == "arm":
                got = parts.setdefault(k, {})
                got[m] = (res, err)
                if len(got) < len(PROFILES):
                    continue
                errs = [e for _r, e in got.values() if e]
                res = None if errs else _union([got[p][0] for p in PROFILES])
                err = "; ".join(errs)
            _store(rows, k, res, err)
            if progress:
                progress(rows[k])
    return rows


def _store(rows, k, res, err):
    rows[k].result = res
    if err:
        rows[k].status = "error"
        rows[k].error = err


# --- comparing ----------------------------------------------------------------------


def expected_for(info, model, config, opts: Options = DEFAULT_OPTIONS, skeleton: str | None = None):
    """(per-config expectation or None, strategy-wide expectation or None).

    On another skeleton than 2015, what the strategy declares for it
    (expected_skeletons); under crash faults with recovery, its crash-free
    verdict (recovery is meant to restore it); under crash faults without
    recovery nothing is declared, so nothing is compared."""
    if opts.faults != "none" and not opts.recovery:
        return None, None
    skeleton = skeleton or opts.skeleton or DEFAULT_SKELETON
    wide = declared_verdicts(info, skeleton).get(model)
    if skeleton != DEFAULT_SKELETON:
        return None, wide
    per = _meta.with_profiles((getattr(info, "expected_configs", None) or {}).get(config, {})).get(model)
    return per, wide


def with_profiles(rows: list[Row]) -> list[Row]:
    """The rows, each arm run followed by its profiles' runs as rows of their
    own (``derived``), so that what a strategy declares for arm-llsc and
    arm-lse is judged, and shown, like any model's verdict.  A profile the
    plan runs by itself is not repeated."""
    if any(r.derived for r in rows):
        return rows
    planned = {(r.info.name, r.skeleton, r.model, r.config) for r in rows}
    out = []
    for r in rows:
        out.append(r)
        if r.model != "arm" or r.result is None:
            continue
        for part in r.result.parts:
            if (r.info.name, r.skeleton, part.model, r.config) not in planned:
                out.append(Row(r.info, part.model, r.config, part, r.skeleton, derived=True))
    return out


def assess(rows: list[Row], opts: Options = DEFAULT_OPTIONS) -> list[Summary]:
    """Fill each row's status; return the per-(strategy, model) summaries,
    whose status says whether that strategy and model match expectations."""
    groups = {}
    for r in rows:
        groups.setdefault((r.info.name, r.info.source, r.skeleton, r.model), []).append(r)
    summaries = []
    for (name, _src, skeleton, model), rs in groups.items():
        info = rs[0].info
        wide = expected_for(info, model, None, opts, skeleton)[1]
        for r in rs:
            if r.status == "error" or r.result is None:
                continue
            per, _ = expected_for(info, model, r.config, opts, skeleton)
            if r.result.verdict == "unknown":
                # Nothing is proven either way: never a pass, never a match.
                r.expected = per if per is not None else wide
                r.status = "UNKNOWN"
                continue
            # A failure found before a cut is a real execution: compared as any other.
            v = r.result.verdict
            r.expected = per if per is not None else ("pass" if wide == "pass" else None)
            if r.expected is None:
                r.status = "-"
            else:
                r.status = "ok" if v == r.expected else "MISMATCH"
        done = [r for r in rs if r.result is not None]
        ran = tuple(r.config for r in done)
        complete = bool(done) and set(supported_configs(info.ir, skeleton)) <= set(ran)
        w = worst(r.result.verdict for r in done) if done else "-"
        if any(r.status in ("MISMATCH", "error") for r in rs):
            status = "MISMATCH"
        elif any(r.status == "UNKNOWN" for r in rs) and (wide is None or w == "unknown"
                                                          or VERDICT_RANK[w] < VERDICT_RANK[wide]):
            # a cut run may hide the failure (or the worse one) that was expected
            status = "UNKNOWN"
        elif wide is not None and complete:
            status = "ok" if w == wide else "MISMATCH"
        elif any(r.status == "ok" for r in rs):
            status = "ok"
        else:
            status = "-"
        summaries.append(Summary(name, model, ran, w, wide, complete, status, skeleton))
    return summaries


def failed(rows, summaries) -> bool:
    """True if a verdict differs from its declared expectation, a run failed,
    or a run was cut short before it proved anything (unknown)."""
    return (any(s.status in ("MISMATCH", "UNKNOWN") for s in summaries)
            or any(r.status in ("error", "UNKNOWN") for r in rows))


def timed_run(rows, bounds=DEFAULT_BOUNDS, jobs=None, progress=None, opts: Options = DEFAULT_OPTIONS,
              states_progress=None):
    t0 = time.monotonic()
    run(rows, bounds, jobs, progress, opts, states_progress)
    return time.monotonic() - t0
