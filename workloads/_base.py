# What a workload is: a named composition of native drivers.
#
# A workload does not run Python inside the protocol.  It says which
# processes to start and with which parameters (a Plan); the runner
# (_runner.py) starts them as unrelated processes that attach to the context
# by name, and each runs one C loop of aiocore/_csrc/aio_drivers.c until the
# run stops.  The owner's loop (blocking aio_poll, or the GSource path) runs
# in C too, with the bottom halves' work done by native actions.
#
# Third-party workloads subclass Workload and register it under the
# entry-point group "aiocore.workloads" (the entry-point name is the
# workload's name), exactly as the built-ins in builtin.py are registered in
# aiocore's pyproject.toml.
from __future__ import annotations

import attrs

#: The process kinds a plan can ask for (each is one C loop).
ROLES = ("pingpong", "timer-racer", "pool-worker", "guest", "fd-writer", "foreign")

#: The owner's poll paths, the second axis beside the traffic (the
#: workload): QEMU's blocking aio_poll (the home poller), glib's GSource
#: prepare / check / dispatch, aio_poll plus a temporary foreign poller in
#: another process (bdrv_drain before 2018), or all of them at once -- the
#: owner picks aio_poll or the GSource path at random per iteration, as
#: QEMU's main loop runs glib with bdrv_drain's blocking aio_poll in between,
#: with a foreign poller when the strategy allows one.
PATHS = ("aio_poll", "gsource", "foreign", "mixed")

#: The checker's configs a path exercises (whose expected verdicts apply).
PATH_CONFIGS = {
    "aio_poll": ("home",),
    "gsource": ("gsource",),
    "foreign": ("foreign",),
    "mixed": ("home", "gsource", "foreign"),
}


def path_configs(path: str, foreign_ok: bool) -> tuple[str, ...]:
    """The checker configs a path exercises with a strategy: "mixed" brings
    its foreign poller only where the strategy allows one (with_path)."""
    return tuple(c for c in PATH_CONFIGS[path] if c != "foreign" or foreign_ok)


#: The owner loop's mode per path (aio_drv_owner_run's `gsource` argument).
OWNER_MODE = {"aio_poll": 0, "gsource": 1, "foreign": 0, "mixed": 2}


@attrs.define
class Plan:
    """What to start for one run, and the drivers' parameters.

    Counts are numbers of processes (each an unrelated process attaching by
    name), except ``timers`` (owner timers re-armed with jitter in C),
    ``pipes`` (pipes whose read ends are the owner's fd handlers) and
    ``filler_bhs`` (allocated bottom halves that are never scheduled: they
    lengthen every scan of the BH flags, as a busy QEMU context does)."""

    #: True fixes the path to "gsource" whatever --path says (workloads
    #: written before paths were an axis).
    gsource: bool = False
    #: The owner's path (PATHS); the runner sets it (with_path).
    path: str = "aio_poll"
    pingpong: int = 0
    timer_racers: int = 0
    pool_workers: int = 0
    guests: int = 0
    fd_writers: int = 0
    foreign: int = 0
    timers: int = 0
    pipes: int = 0
    filler_bhs: int = 0
    # driver parameters (see AioDrvArea in aio_drivers.h)
    jitter_ns: int = 2000
    race_pct: int = 60
    quiet_period_us: int = 50_000
    quiet_len_us: int = 6_000
    tx_burst: int = 64
    foreign_away_min_us: int = 15_000
    foreign_away_max_us: int = 40_000
    foreign_burst_max: int = 64
    timer_min_us: int = 30
    timer_max_us: int = 2_000
    timer_idle_pct: int = 30
    work_ns: int = 3_000
    pool_batch: int = 4
    # CPU placement: "split" pins the owner to one CPU and everybody else to
    # the others; "foreign-with-owner" also puts a foreign poller on the
    # owner's CPU (the owner mostly sleeps there), so that it races the
    # notifiers instead of taking turns with them; "none" pins nobody.
    pin: str = "split"

    def children(self) -> list[tuple[str, int]]:
        """(role, index) of every process to start besides the owner."""
        out = []
        for role, n in (
            ("pingpong", self.pingpong),
            ("timer-racer", self.timer_racers),
            ("pool-worker", self.pool_workers),
            ("guest", self.guests),
            ("fd-writer", self.fd_writers),
            ("foreign", self.foreign),
        ):
            out += [(role, i) for i in range(n)]
        return out


def with_path(plan: Plan, path: str, foreign_ok: bool) -> Plan:
    """The traffic's plan run on `path`.  A foreign path adds the temporary
    poller, sharing the (mostly asleep) owner's CPU so that it races the
    notifiers, and idle filler BHs that make each of its scans of the flags
    take microseconds, as in a busy QEMU -- so that a poller away for
    longer than it should leaves a visible state.  On "mixed" the foreign
    poller comes only if the strategy allows it."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r} (paths: {', '.join(PATHS)})")
    if plan.gsource and path != "gsource":
        raise ValueError(f"this traffic runs on the gsource path only, not {path!r}")
    if path == "foreign" and not foreign_ok:
        raise ValueError("the foreign path needs a strategy that allows foreign pollers")
    p = attrs.evolve(plan, path=path)
    if path == "foreign" or (path == "mixed" and foreign_ok):
        p = attrs.evolve(p, foreign=max(1, p.foreign), filler_bhs=max(p.filler_bhs, 1000),
                         pin="foreign-with-owner")
    return p


class Workload:
    """Base class of workloads.

    Subclasses set ``name`` (the entry-point name), ``description``,
    ``config`` -- which of a strategy's expected verdicts applies: "home"
    (one home poller), "foreign" (plus a temporary poller in another
    process) or "gsource" (the glib path) -- and ``needs_foreign_pollers``;
    and implement ``plan(procs)``, where ``procs`` is the number of
    processes the user asked for (``--procs``)."""

    name: str = ""
    description: str = ""
    config: str = "home"
    needs_foreign_pollers: bool = False

    def applies_to(self, info) -> bool:
        """Whether this workload can run a strategy (a StrategyInfo)."""
        return not self.needs_foreign_pollers or allows_foreign_pollers(info)

    def paths_for(self, info) -> tuple[str, ...]:
        """The paths this traffic can run on with a strategy: every one, but
        foreign only where the strategy allows foreign pollers (and only
        gsource for a plan that fixes it)."""
        if self.config == "gsource":
            return ("gsource",)
        if self.config == "foreign":
            return ("foreign",)
        ok = allows_foreign_pollers(info)
        return tuple(p for p in PATHS if p != "foreign" or ok)

    def plan(self, procs: int) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<workload {self.name}>"


def allows_foreign_pollers(info) -> bool:
    """Whether a strategy's compiled module lets other processes poll (what
    the C says wins over what the description or the registry says)."""
    try:
        from aiocore._compiler._load import load_strategy

        _info, _ffi, lib = load_strategy(info.name)
        return bool(lib.aio_strategy_foreign_pollers())
    except Exception:
        return bool(getattr(info, "foreign_pollers", False))
