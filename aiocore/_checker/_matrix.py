# Running the checker over strategies x models x configs, and comparing the
# verdicts with what the strategies declare.
#
# Expectations (Strategy.expected / expected_configs):
#   * a run whose config has a declared per-config verdict is compared with it;
#   * otherwise, for each (strategy, model), the worst verdict over the configs
#     run is compared with `expected[model]` -- but only when every config the
#     strategy supports ran (the worst over fewer configs may be milder);
#   * a failing verdict where `pass` is expected is a mismatch in any case.
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import attrs

from . import CONFIGS, DEFAULT_BOUNDS, MODELS, Bounds, CheckResult, check_ir, supported_configs, worst

_MODEL_COST = {"sc": 1.0, "tso": 1.2, "arm": 8.0}
_CONFIG_COST = {"home": 1.0, "gsource": 1.0, "foreign": 2.0}


@attrs.define
class Row:
    info: object  # StrategyInfo
    model: str
    config: str
    result: CheckResult | None = None
    expected: str | None = None  # what this row is compared with, if anything
    status: str = "-"  # "ok", "MISMATCH", "-" (nothing to compare with), "error"
    error: str = ""


@attrs.define
class Summary:
    """Worst verdict over the configs run, per (strategy, model)."""

    name: str
    model: str
    configs: tuple
    verdict: str
    expected: str | None
    complete: bool  # every supported config ran
    status: str  # "ok", "MISMATCH", "-"


def plan(infos, models=MODELS, configs=CONFIGS) -> list[Row]:
    rows = []
    for info in infos:
        sup = supported_configs(info.ir)
        for m in models:
            for c in configs:
                if c in sup:
                    rows.append(Row(info, m, c))
    return rows


# --- running ---------------------------------------------------------------------

_JOBS: list = []  # (ir, model, config) of the current run, inherited by forked workers
_BOUNDS: Bounds = DEFAULT_BOUNDS


def _work(k: int):
    ir, model, config = _JOBS[k]
    try:
        return k, check_ir(ir, model, config, _BOUNDS), ""
    except Exception as e:  # a strategy the checker cannot handle: report it, go on
        return k, None, f"{type(e).__name__}: {e}"


def run(rows: list[Row], bounds: Bounds = DEFAULT_BOUNDS, jobs: int | None = None, progress=None):
    """Check every row (in place).  jobs > 1 forks that many workers."""
    global _JOBS, _BOUNDS
    _JOBS = [(r.info.ir, r.model, r.config) for r in rows]
    _BOUNDS = bounds
    order = sorted(range(len(rows)), key=lambda k: -_MODEL_COST[rows[k].model] * _CONFIG_COST[rows[k].config])
    if jobs is None:
        jobs = os.cpu_count() or 1
    jobs = max(1, min(jobs, len(rows)))
    if jobs == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for k in order:
            _store(rows, *_work(k))
            if progress:
                progress(rows[k])
        return rows
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futs = [pool.submit(_work, k) for k in order]
        for f in as_completed(futs):
            k, res, err = f.result()
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


def expected_for(info, model, config):
    """(per-config expectation or None, strategy-wide expectation or None)."""
    per = (getattr(info, "expected_configs", None) or {}).get(config, {}).get(model)
    return per, (info.expected or {}).get(model)


def assess(rows: list[Row]) -> list[Summary]:
    """Fill each row's status; return the per-(strategy, model) summaries,
    whose status says whether that strategy and model match expectations."""
    groups = {}
    for r in rows:
        groups.setdefault((r.info.name, r.info.source, r.model), []).append(r)
    summaries = []
    for (name, _src, model), rs in groups.items():
        info = rs[0].info
        wide = (info.expected or {}).get(model)
        for r in rs:
            if r.status == "error" or r.result is None:
                continue
            if r.result.truncated:
                r.status = "error"
                r.error = (f"stopped after {r.result.states:,} states (--max-states): the verdict is "
                           f"not established; lower the bounds or raise the limit")
                continue
            per, _ = expected_for(info, model, r.config)
            v = r.result.verdict
            r.expected = per if per is not None else ("pass" if wide == "pass" else None)
            if r.expected is None:
                r.status = "-"
            else:
                r.status = "ok" if v == r.expected else "MISMATCH"
        done = [r for r in rs if r.result is not None]
        ran = tuple(r.config for r in done)
        complete = bool(done) and set(supported_configs(info.ir)) <= set(ran)
        w = worst(r.result.verdict for r in done) if done else "-"
        if any(r.status in ("MISMATCH", "error") for r in rs):
            status = "MISMATCH"
        elif wide is not None and complete:
            status = "ok" if w == wide else "MISMATCH"
        elif any(r.status == "ok" for r in rs):
            status = "ok"
        else:
            status = "-"
        summaries.append(Summary(name, model, ran, w, wide, complete, status))
    return summaries


def failed(rows, summaries) -> bool:
    """True if a verdict differs from its declared expectation (or a run failed)."""
    return any(s.status == "MISMATCH" for s in summaries) or any(r.status == "error" for r in rows)


def timed_run(rows, bounds=DEFAULT_BOUNDS, jobs=None, progress=None):
    t0 = time.monotonic()
    run(rows, bounds, jobs, progress)
    return time.monotonic() - t0
