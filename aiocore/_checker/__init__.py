"""aiocore's model checker: every strategy's verdict under SC, x86-TSO and an
ARM-like weak memory model, with the shortest counterexample.

What it holds, bottom to top: ``_contract`` (QEMU's bottom-half contract:
the BHs' payloads, the moves that read them, the end-state check),
``_program`` (the instruction set and its builder), ``_poller`` (the skeletons written in it), ``_assemble`` (a
strategy's IR + a configuration -> the Program of one check), ``_steps``,
``_reductions``, ``_trace`` (counterexamples); ``_explore`` (the memory
models: what each process may do next), ``_search`` (the breadth-first loop
in Python, the reference), ``_core_c`` with ``chk_store.c`` / ``chk_search.c``
and ``_fast`` (the same loop in C), ``_engine`` (which loop runs); this
module (check_ir, verdicts, bounds), ``_matrix`` (many checks in parallel),
``litmus``, ``spin``; ``toxenv`` is tox's launcher of ``aiocore check``.

May import: aiocore._errors and aiocore._compiler (the IR, the skeletons,
the cffi build cache).  Never the context, fault injection, the benchmarks or
the command line (except ``toxenv``, which stands at the command line's
level: see tests/test_layout.py).

What is explored
================

The strategy's IR (aiocore._compiler._ir) is inlined into the skeleton of
``aiocore/_csrc/aio_core.c`` -- the same sequence the native context runs --
and the resulting processes are explored exhaustively, breadth first, with
state hashing:

``home``       the home poller, blocking ``aio_poll`` forever:
               [lock-prefixed counter adds] poll_begin; compute_timeout
               (timeout_zero if the strategy has it -> 0; else a relaxed read
               of every BH flag -> 0 if one is set; else infinite); ppoll on
               the notifier; poll_end; dispatch (per BH: relaxed read, then
               ``atomic_xchg(scheduled, 0)`` claims it); on_event if the
               notifier was readable at the ppoll.  On the polling skeleton
               (``--skeleton polling``, _poller.polling_poller) the steps of
               QEMU's aio_poll of today, with no counter fence: the home
               owner's counters there are plain stores.
``gsource``    the home poller driven the glib way (aio_gsource_*): prepare;
               compute_timeout; ppoll(timeout); check; ppoll(0) (the one
               whose readiness dispatch uses); [lock add]; dispatch.
``foreign``    ``home`` plus a temporary second poller running the same
               aio_poll (under the context lock, dropped around its ppoll),
               which may leave before any iteration.  Only for strategies
               that declare ``foreign_pollers``.
notifiers      N processes, each scheduling its own BH up to K times through
               the schedule hook (default: ``if atomic_xchg(&bh->scheduled,
               1) == 0: notify()``), leaving before any of them (like the
               seeds' notifier; "up to" costs a few percent more states and
               lets the breadth-first counterexample use no more
               notifications than it needs).

The bounds (N, K) are printed with every result; see ``Bounds``.  The home
poller loops forever and the foreign poller may loop forever: there is no
bound on poll iterations, the state space is finite without one.

Memory models
=============

``sc``   every access is one atomic step on memory; fences are no-ops.

``tso``  x86-TSO: each process has a FIFO store buffer; a load reads its own
         latest buffered store to the location (forwarding), else memory; the
         oldest buffered store becomes visible at any time (a transition of
         its own); ``smp_mb``, every seq_cst RMW (lock prefix) and the
         2015 skeleton's and the GSource path's own lock-prefixed counter
         updates wait for the buffer to drain; ``smp_wmb``/``smp_rmb``,
         release and acquire are plain (compiler barriers on x86).

``arm``  an ARMv8-like model (other-multi-copy-atomic: one memory that
         stores reach, per-process buffers before it):

         * stores wait in a per-process buffer and become visible in any
           order, except that two stores to one location stay in order and a
           store never overtakes a barrier: ``smp_wmb``, a release store, an
           ``smp_mb`` (which drains the buffer) or a seq_cst RMW put one in;
         * a seq_cst RMW (ldaxr/stlxr) reads the latest value and leaves its
           store in the buffer, after every earlier store (release); until it
           is visible no other process may make a store to that location
           visible or start an RMW on it (the exclusive monitor), so the RMW
           stays atomic -- but *later loads may be satisfied before its store
           is visible*, which is the 2020 aarch64 hang: ``atomic_add(
           &notify_me, 2)`` does not order the relaxed reads of the BH flags;
         * loads may be reordered with loads: a plain load may return any
           value the location held since the process's last load barrier
           (``smp_rmb``, ``smp_mb``, an acquire load, a seq_cst RMW) --
           i.e. it was satisfied early.  Reads of one location stay coherent
           (a later read never returns an older value than an earlier one).
           Per location the older values kept are the distinct ones, each at
           its latest position, which keeps every single stale read and
           loses only some sequences of several stale reads of one location
           between two barriers (no strategy reads a location twice there);
         * an acquire load may itself return a stale value, and later loads
           are satisfied no earlier than it executes; loads are never
           satisfied after a later store of the same process is visible (no
           load buffering: ARMv8 allows it; no strategy can observe it).

The notifier and the wait
=========================

``event`` is the EventNotifier: one bit, "readable", outside the memory
model.  The kernel serializes every operation on it, so it is sequentially
consistent in every model:

* ``event_set()`` makes it readable; ``event_test_and_clear()`` returns
  whether it was readable and makes it not readable (an eventfd counter and
  a drained pipe both behave as one bit here);
* ppoll with a zero timeout samples it; ppoll with an infinite timeout blocks
  until it is readable and returns "readable".  Readiness is level-triggered
  and re-checked when the sleeper runs: if another poller clears the
  notifier first, the sleeper keeps sleeping (that is how late-clear's
  foreign poller eats a wake-up).  A wait whose timeout is zero never blocks.
* Each of the three is a system call and is modelled as a full fence of the
  calling process: its store buffer drains before it, and no later load is
  satisfied before it returns.  Why: in this implementation
  ``event_notifier_set`` and ``event_notifier_test_and_clear`` start with a
  lock-prefixed counter update (a full fence on x86), and the kernel's
  eventfd/pipe paths run under the wait-queue spinlock, whose lock/unlock
  pair and the wake-up path (``try_to_wake_up``'s barriers; Linux's
  memory-barriers.txt: sleep and wake-up functions imply barriers) order
  the caller's earlier stores before the notifier is seen readable and the
  sleeper's later loads after it is woken.  What the verdicts actually need
  is less, and was measured: with only a release before ``event_set`` and an
  acquire after ``event_test_and_clear`` and the wait, every reference
  verdict is unchanged; without the release, selfpipe fails on ARM (its
  notifier publishes the BH flag with an RMW whose store may still be in
  flight when it writes the pipe) -- the message-passing guarantee asyncio's
  self-pipe, and any program handing data over a pipe, relies on.  Every
  reordering bug of the reference table lies between two memory accesses
  with no system call between them.  (Treating the wait as a fence also
  bounds the store buffers: every poll iteration passes one.)
* The foreign poller's context lock never blocks (the home poller does not
  take it in aio_core.c); its acquire/release are modelled as fences (x86:
  locked instructions; ARM: acquire / release).

Properties (DESIGN.md)
======================

``lost-wakeup``  a reachable end state (no process can move, all store
                 buffers empty) where the home poller sleeps in ppoll with an
                 infinite timeout, the notifier is not readable and a BH flag
                 is set.
``busy-loop``    after every notifier and the foreign poller have left (and
                 their stores are visible), the home poller can run forever
                 without blocking: a cycle among those states.
``lost-work``    a BH dispatched more often than it was scheduled 0->1
                 (checked on every transition), or an end state where a 0->1
                 schedule was never dispatched although no flag is set.

The verdict of a run is the worst failure found, in the order pass <
lost-wakeup < busy-loop < lost-work (VERDICTS of aiocore._compiler._strategy); the
counterexample is the shortest path (BFS) to the first bad state of that kind
(for a busy loop: to the first state of the loop, then the loop).

Reductions (all exact): local steps are merged into the visible operation
before them; stores entering a store buffer, loads forwarded from it and
fences that need not wait are local (nobody else can observe them); the
choice to leave (notifiers, foreign poller) is a move of the next visible
operation rather than a step of its own; dead locals are zeroed and stale
values nobody can read any more are dropped, so that states differing only
in those are one state.  States are flat tuples of interned ids, and each
process's moves are computed once per (its own state, the shared state) and
reused across every state that shares them.

Known limits of the ARM-like model, none observable by the strategies here:
no load buffering (a load is never satisfied after a later store of its
process is visible); when an acquire load itself returns a stale value,
later loads are still satisfied only after it executes; several stale reads
of one location between two barriers may not return every older sequence
(each single stale read is exact); a cycle of RMWs whose stores wait on each
other's exclusive monitors is treated as an execution that cannot happen
(real hardware would retry the exclusives) rather than as an end state.
"""
from __future__ import annotations

import time

import attrs

from .._compiler import _ir
from ._explore import VERDICT_ORDER
from ._window import explorer
from ._assemble import build
from ._program import ModelError, supported_configs
from ._trace import crash_of, format_trace, path_of, trace_json

#: Every model a check may name (MODELS), the ARMv8 code-generation profiles
#: (PROFILES) and the configurations are the ones a strategy declares
#: verdicts for (_compiler._meta); ``arm`` is the union of the profiles
#: (_window.py): what GCC's default aarch64 build (-moutline-atomics: LSE or
#: LL/SC chosen at run time) may do.
from .._compiler._meta import CONFIGS, MODELS, PROFILES

#: What ``aiocore check`` and the conformance suite run unless told otherwise.
DEFAULT_MODELS = ("sc", "tso", "arm")


@attrs.frozen
class Bounds:
    """How much the checker explores.

    ``notifiers`` processes each schedule their own BH up to ``schedules`` times
    (configs home and gsource); the foreign config, which adds a second
    poller, runs ``foreign_notifiers`` x ``foreign_schedules``.  The pollers
    loop forever (no bound needed).  ``max_states`` stops a run that grows
    beyond it, ``max_seconds`` one that runs longer, ``max_memory`` (bytes of
    resident memory) one that grows larger: a run cut short by any of them
    has the verdict "unknown" unless it found a failure first (a failure is
    a real execution: it stands).  The default max_states lets 3 x 3 finish
    (6.4 million states for explicit-mb arm home: ~5 s and 250 MB in the C
    loop, ~1.5 min in the Python loop) and stops a run near 500 MB."""

    notifiers: int = 2
    schedules: int = 2
    foreign_notifiers: int = 1
    foreign_schedules: int = 3
    max_states: int = 20_000_000
    max_seconds: float | None = None
    max_memory: int | None = None

    def for_config(self, config: str) -> tuple[int, int]:
        if config == "foreign":
            return self.foreign_notifiers, self.foreign_schedules
        return self.notifiers, self.schedules

    def describe(self) -> str:
        return (
            f"home/gsource: {self.notifiers} notifier(s) x up to {self.schedules} schedule(s) each; "
            f"foreign: {self.foreign_notifiers} notifier(s) x up to {self.foreign_schedules} schedule(s) "
            f"+ a temporary second poller; poll iterations unbounded"
        )

    def to_json(self) -> dict:
        return attrs.asdict(self)


DEFAULT_BOUNDS = Bounds()


@attrs.frozen
class Reduction:
    """One way the checker avoids states, and whether it runs."""

    name: str
    in_force: bool
    exact: bool  # same verdicts and counterexamples as without it
    what: str


#: Printed with every report and in --json.  The first three are the model's
#: own exact reductions (see the package docstring); symmetry and
#: partial-order reduction were asked for (issue 12) and are off, with why.
REDUCTIONS = (
    Reduction("local-steps", True, True,
              "local steps (branches, bookkeeping, stores entering a buffer, forwarded loads, "
              "fences with nothing to wait for) merged into the visible operation before them"),
    Reduction("leave-folded", True, True,
              "a notifier's choice to leave is a move of its next visible operation"),
    Reduction("dead-values", True, True,
              "dead locals zeroed and stale values nobody can read dropped"),
    Reduction("symmetry", False, False,
              "off: permuting notifiers is not a symmetry, the owner scans bh0, bh1, ... in a "
              "fixed order one read at a time (aiocore/_checker/_reductions.py)"),
    Reduction("partial-order", False, False,
              "off: no persistent set smaller than everything enabled, every visible operation "
              "of a notifier conflicts with one the looping owner can still make "
              "(aiocore/_checker/_reductions.py)"),
)


@attrs.define
class CheckResult:
    strategy: str
    model: str
    config: str
    verdict: str
    states: int
    transitions: int
    seconds: float
    trace: list | None
    explanation: str = ""
    stopped_by: str | None = None  # the limit that cut the search: "max-states", ...
    notifiers: int = 0
    schedules: int = 0
    other: dict = attrs.field(factory=dict)  # every failure found: verdict -> explanation
    skeleton: str = "2015"
    faults: str = "none"
    recovery: bool = False
    peak_rss: int = 0  # bytes, when max_memory was watched
    engine: str = "python"  # the search loop that ran: "c" or "python"
    # model "arm": each profile's verdict, and the profile(s) whose run
    # found the counterexample shown (those that need the failure)
    by_profile: dict = attrs.field(factory=dict)
    profiles: tuple = ()
    # check_ir(export=True) on an ARM model: {profile: _export.LitmusExport
    # of the counterexample, or why it has none (str)} (model "arm": each
    # profile in `profiles`)
    litmus: dict = attrs.field(factory=dict)
    # model "arm": the profiles' own results, each with its counterexample
    # (_matrix.with_profiles judges each against its declaration)
    parts: tuple = attrs.field(default=(), repr=False)

    @property
    def complete(self) -> bool:
        """True if every reachable state was explored (the verdict is proven)."""
        return self.stopped_by is None

    @property
    def truncated(self) -> bool:
        return self.stopped_by is not None

    def stop_reason(self) -> str:
        """ "stopped after N states by --max-states" ("" for a complete run)."""
        if self.complete:
            return ""
        return f"stopped after {self.states:,} states by --{self.stopped_by}"

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "model": self.model,
            "config": self.config,
            "verdict": self.verdict,
            "complete": self.complete,
            **({} if self.complete else {"stopped_by": self.stopped_by}),
            "states": self.states,
            "seconds": round(self.seconds, 4),
            "notifiers": self.notifiers,
            "schedules": self.schedules,
            "skeleton": self.skeleton,
            "faults": self.faults,
            "recovery": self.recovery,
            "engine": self.engine,
            **({"by_profile": self.by_profile, "profiles": list(self.profiles)} if self.by_profile else {}),
            "trace": self.trace,
        }

    def format_trace(self) -> str:
        return format_trace(self.trace) if self.trace else ""


def check_ir(ir: _ir.StrategyIR, model: str, config: str, bounds: Bounds = DEFAULT_BOUNDS,
             *, want_trace: bool = True, skeleton: str = "2015", faults: str = "none",
             recovery: bool = False, engine: str = "auto", progress=None, bh_mode: str = "reuse",
             callback: str = "read", export: bool = False, speculate: bool = False) -> CheckResult:
    """Explore one strategy under one memory model and configuration.

    ``engine`` picks the search loop: "c" (aiocore/_checker/_fast.py),
    "python" (_search.py) or "auto" (C when it can be built); both explore
    the same states and give the same verdicts and counterexamples.
    ``progress(states)``, if given, is called after each breadth-first layer.
    ``bh_mode`` ("reuse", "oneshot") and ``callback`` ("read",
    "cancel-reread") say how notifiers schedule bottom halves and what the
    callbacks do (aiocore._checker._program.BH_MODES, CALLBACKS).  ``export``
    (ARM models): keep the counterexample as a litmus program for herd7
    (CheckResult.litmus; aiocore._checker._export).  ``speculate`` (ARM
    models): let a process run past a branch on a load not yet performed, as
    ARMv8 does (aiocore._checker._window: exact, and several times the states;
    off, such a branch waits for its load)."""
    if model not in MODELS:
        raise ModelError(f"unknown model {model!r} (models: {', '.join(MODELS)})")
    if config not in CONFIGS:
        raise ModelError(f"unknown config {config!r} (configs: {', '.join(CONFIGS)})")
    if model == "arm":
        parts = []
        for m in PROFILES:
            done = sum(r.states for r in parts)  # progress counts both runs' states, in turn
            prog_m = (lambda s, done=done: progress(done + s)) if progress is not None else None
            parts.append(check_ir(ir, m, config, bounds, want_trace=want_trace, skeleton=skeleton,
                                  faults=faults, recovery=recovery, engine=engine, progress=prog_m,
                                  bh_mode=bh_mode, callback=callback, export=export,
                                  speculate=speculate))
        return _union(parts)
    n, k = bounds.for_config(config)
    t0 = time.monotonic()
    prog = build(ir, model, config, n, k, skeleton=skeleton, faults=faults, recovery=recovery,
                 bh_mode=bh_mode, callback=callback)
    ex = explorer(prog, max_states=bounds.max_states)
    ex.set_speculation(speculate)
    deadline = t0 + bounds.max_seconds if bounds.max_seconds else None
    r = ex.explore(deadline=deadline, max_memory=bounds.max_memory, engine=engine,
                   progress=progress)
    verdict = r.verdict  # "unknown" if cut short before any failure was found
    trace = None
    explanation = ""
    litmus = {}
    if verdict not in ("pass", "unknown"):
        state, explanation = r.found[verdict]
        path = path_of(r, verdict, state) if want_trace or export else None
        descs = r.steps(path[0]) if path else None
        if export and model in PROFILES:
            from ._export import ExportError, export as export_path

            try:
                litmus[model] = export_path(ex, path[0], descs, loop_from=path[1])
            except ExportError as e:  # the verdict stands; say why there is no test
                litmus[model] = str(e)
        if want_trace:
            trace = trace_json(r, verdict, state, explanation, path, descs)
            c = crash_of(trace)  # faults="crash": name the crash the failure follows
            if c:
                explanation += f" (after a crash: {c['process']} {c['op']}, step {c['step']})"
    seconds = time.monotonic() - t0
    other = {v: e for v, (_, e) in r.found.items()}
    return CheckResult(
        ir.name, model, config, verdict, r.states, r.transitions, seconds, trace,
        explanation, r.stopped_by, n, k, other, skeleton, faults, recovery, r.peak_rss,
        getattr(r, "engine", "python"), litmus=litmus,
    )


def _union(parts: list) -> CheckResult:
    """model "arm": the profiles' runs as one result.  An outcome is allowed
    if either profile allows it, so the verdict is the worse of the two; the
    counterexample is that of the first profile that has it, and names every
    profile with that verdict."""
    v = worst(r.verdict for r in parts)
    shown = next(r for r in parts if r.verdict == v)
    needs = tuple(r.model for r in parts if r.verdict == v)
    other = {}
    for r in parts:
        for verdict, text in r.other.items():
            other.setdefault(verdict, f"{text} [{r.model}]")
    explanation = shown.explanation
    if v not in ("pass", "unknown"):
        explanation += f" [{', '.join(needs)}]"
    stopped = next((r.stopped_by for r in parts if r.stopped_by), None)
    return attrs.evolve(
        shown, model="arm", verdict=v, explanation=explanation,
        states=sum(r.states for r in parts), transitions=sum(r.transitions for r in parts),
        seconds=sum(r.seconds for r in parts), stopped_by=stopped if v == "unknown" or
        shown.stopped_by else None, other=other, peak_rss=max(r.peak_rss for r in parts),
        by_profile={r.model: r.verdict for r in parts}, profiles=needs, parts=tuple(parts),
        litmus={m: x for r in parts if r.model in needs for m, x in r.litmus.items()})


#: unknown ranks above pass (nothing is proven) and below every failure (a
#: failure found anywhere is proven whatever else was cut short).
_WORST_ORDER = ("pass", "unknown") + VERDICT_ORDER[1:]


def worst(verdicts) -> str:
    """The worst of some verdicts (pass < unknown < lost-wakeup < busy-loop < lost-work)."""
    vs = [v for v in verdicts if v in _WORST_ORDER]
    return max(vs, key=_WORST_ORDER.index) if vs else "pass"


__all__ = [
    "Bounds", "DEFAULT_BOUNDS", "REDUCTIONS", "Reduction", "CheckResult", "ModelError", "check_ir", "supported_configs",
    "worst", "MODELS", "PROFILES", "DEFAULT_MODELS", "CONFIGS", "VERDICT_ORDER",
]
