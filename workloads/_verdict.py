# What a finished run means: the RunResult of one (strategy, workload) pair,
# and the judgement of what it observed against what the strategy declares
# (its x86-TSO verdict over the checker configs the owner's path exercises).
#
# Below _runner.py (which fills a RunResult and asks judge()); reads the
# declarations through aiocore's strategy discovery and the checker's
# verdict order.
from __future__ import annotations

import attrs

from aiocore._compiler._plugins import expected_verdict

from ._base import Workload, allows_foreign_pollers, path_configs


@attrs.define
class RunResult:
    strategy: str
    workload: str
    seconds: float
    wakeups: int
    dispatched: int
    lost_wakeups: int  # exact: states seen (aiocore_workloads._watchdog)
    busy_loops: int
    lost_work: int  # the end-of-run accounting's count
    verdict: str
    expected: str | None = None
    matches: str = ""  # "yes", "not reproduced", "UNEXPECTED: ...", "?"
    failed: bool = False  # expected to pass and showed a finding
    first_finding_s: float | None = None
    lost_wakeups_timed: int = 0  # the time-based detector's (second signal)
    busy_loops_timed: int = 0
    near_misses: int = 0
    longest_near_miss_ms: float = 0.0
    max_busy_streak: int = 0
    crash_rescues: int = 0
    lost_work_states: int = 0  # exact: payloads nobody will see (_watchdog.lost_work_state)
    seed: int = 0
    chaos: str = "off"  # the chaos mode of the run (aiocore_workloads._chaos)
    path: str = "aio_poll"  # the owner's path (aiocore_workloads._base.PATHS)
    skeleton: str = "2015"
    poll_max_ns: int | None = None  # polling skeleton: the owner's busy-poll bound (None: default)
    kills: int = 0  # victims killed (--kill-rate)
    kills_recovered: int = 0  # ... whose death the owner's recovery handled in time
    counters: dict = attrs.field(factory=dict)
    work: dict = attrs.field(factory=dict)
    findings: list = attrs.field(factory=list)
    errors: list = attrs.field(factory=list)

    def row(self) -> dict:
        """The --json object of this pair."""
        return dict(
            strategy=self.strategy,
            workload=self.workload,
            seconds=round(self.seconds, 3),
            wakeups=self.wakeups,
            dispatched=self.dispatched,
            lost_wakeups=self.lost_wakeups,
            busy_loops=self.busy_loops,
            lost_work=self.lost_work,
            lost_work_states=self.lost_work_states,
            verdict=self.verdict,
            expected=self.expected,
            matches=self.matches,
            lost_wakeups_timed=self.lost_wakeups_timed,
            busy_loops_timed=self.busy_loops_timed,
            first_finding_s=self.first_finding_s,
            near_misses=self.near_misses,
            longest_near_miss_ms=round(self.longest_near_miss_ms, 3),
            max_busy_streak=self.max_busy_streak,
            seed=self.seed,
            chaos=self.chaos,
            path=self.path,
            skeleton=self.skeleton,
            poll_max_ns=self.poll_max_ns,
            kills=self.kills,
            kills_recovered=self.kills_recovered,
            work=self.work,
            findings=[attrs.asdict(f) for f in self.findings],
            errors=self.errors,
        )


class Stopped(Exception):
    """The run was asked to stop (signal)."""


def expected_on(info, configs, skeleton: str = "2015") -> str | None:
    """A strategy's declared x86 (tso) verdict over the checker configs a
    path exercises: the worst of them (None if it declares none)."""
    from aiocore._checker import worst

    vs = [expected_verdict(info, "tso", cfg, skeleton) for cfg in configs]
    vs = [v for v in vs if v is not None]
    return worst(vs) if vs else None


def judge(info, workload: Workload, observed: list[str], lost_work: int, path: str | None = None,
          skeleton: str = "2015"):
    """(verdict, expected, matches, failed) for a finished run."""
    verdict = "+".join(observed) or "pass"
    configs = path_configs(path, allows_foreign_pollers(info)) if path else (workload.config,)
    exp = expected_on(info, configs, skeleton) if info is not None else None
    assumed = exp is None
    exp = exp or "pass"
    if exp == "pass":
        failed = verdict != "pass"
        matches = "yes" if not failed else f"UNEXPECTED {verdict}"
    else:
        failed = False
        if exp in observed:
            others = [o for o in observed if o != exp]
            matches = "yes" if not others else f"yes (+{'+'.join(others)})"
        elif observed:
            matches = f"UNEXPECTED {verdict}"
        else:
            matches = "not reproduced"
    if "error" in observed and exp not in observed:
        # Cut short by an error: what it would have shown is unknown (never
        # "pass", never "not reproduced"), and the run fails.
        verdict = "error"
        matches = "unknown (the run failed)"
        failed = True
    if assumed:
        matches += " (no tso expectation declared; assumed pass)"
    return verdict, exp, matches, failed
