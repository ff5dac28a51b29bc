"""Crash-stop faults natively: stop a notifier at a chosen primitive, kill it,
and say what the owner does.

The breakpoint build (``-DAIO_PRIM_HOOKS -DAIO_BREAKPOINT``, aio_breakpoint.h)
stops a process with SIGSTOP just before the k-th primitive of a strategy's
hooks since it was armed -- the model checker's crash point k: exactly k-1
primitives done.  Its parent then SIGKILLs it (:func:`kill_stopped`).

:func:`classify_owner` reads what the owner does afterwards, from the segment
(the owner's position and poll_seq, the notifier's readability, the pending
BHs, the counter ``recoveries``), in the checker's words: ``lost-wakeup``
(asleep in an infinite wait, a BH pending, the notifier not readable),
``busy-loop`` (iterating with the notifier readable and nothing pending) or
``fine``.  Bounded waits only back the state reads up.

:func:`kill_notifier` is the small reusable piece a stress runner can call
for random kills (``--kill-rate``): SIGKILL one notifier process, reap it if
it is ours, and say what was done.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import attrs

#: The C flags of the breakpoint build.
BREAKPOINT_CFLAGS = ("-DAIO_PRIM_HOOKS", "-DAIO_BREAKPOINT")

#: Op codes of aio_prims.h (AIO_OP_*), for naming stopping points.
PRIM_NAMES = (None, "atomic_read", "atomic_set", "load_acquire", "store_release", "xchg",
              "cmpxchg", "fetch_add", "fetch_sub", "fetch_or", "fetch_and", "add", "sub", "or",
              "and", "smp_mb", "smp_wmb", "smp_rmb", "event_set", "event_test_and_clear",
              "smp_mb__before_rmw", "smp_mb__after_rmw")

VERDICTS = ("fine", "lost-wakeup", "busy-loop")  # the checker's verdict names ("pass" = fine)


def prim_name(op: int) -> str:
    return PRIM_NAMES[op] if 0 < op < len(PRIM_NAMES) else f"op{op}"


# --- the breakpoint build, reached from Python --------------------------------------------------

_BP_CDEF = "int aio_breakpoint_arm(int k); int aio_breakpoint_count(int *out, int max);"


class Breakpoint:
    """The breakpoint of this process's breakpoint-build module of ``ctx``."""

    def __init__(self, ctx):
        from cffi import FFI

        mod = next((m for m in list(sys.modules.values())
                    if getattr(m, "lib", None) is ctx._lib and getattr(m, "__file__", None)), None)
        if mod is None:
            raise RuntimeError("the context's C module is not a loaded extension module")
        self._ffi = FFI()
        self._ffi.cdef(_BP_CDEF)
        try:
            self._lib = self._ffi.dlopen(mod.__file__)
            self._lib.aio_breakpoint_arm
        except (OSError, AttributeError) as e:
            raise RuntimeError(
                f"{ctx.strategy!r}'s module is not a breakpoint build ({e}); attach with "
                "attach_stoppable()") from None
        self._buf = self._ffi.new("int[64]")

    def arm(self, k: int) -> None:
        """Stop (SIGSTOP) before the k-th primitive from now; k <= 0: only count."""
        self._lib.aio_breakpoint_arm(k)

    def count(self) -> tuple[int, list[str]]:
        """Primitives since armed, and their names."""
        n = self._lib.aio_breakpoint_count(self._buf, 64)
        return n, [prim_name(self._buf[i]) for i in range(min(n, 64))]


def attach_stoppable(name: str):
    """Attach to ``name`` with the strategy's breakpoint build: (ctx, Breakpoint)."""
    from .._context._aio import AioContext

    ctx = AioContext.attach(name, _cflags=BREAKPOINT_CFLAGS)
    return ctx, Breakpoint(ctx)


#: A notifier process for kill_at runs: attaches with the breakpoint build,
#: then per stdin line "count OP" (arm without stopping, run OP, print the
#: primitives) or "stop K OP" (arm at K, run OP: stops inside if K <= n).
#: OP is "schedule" (bh_schedule(0)) or "notify" (aio_notify).
NOTIFIER = r"""
import sys
from aiocore._faults._breakpoint import attach_stoppable
ctx, bp = attach_stoppable(sys.argv[1])
ops = {"schedule": lambda: ctx.bh_schedule(0), "notify": ctx.notify}
print("ready", flush=True)
for line in sys.stdin:
    w = line.split()
    bp.arm(int(w[1]) if w[0] == "stop" else 0)
    ops[w[-1]]()
    n, names = bp.count()
    bp.arm(0)
    print(n, " ".join(names), flush=True)
"""


def wait_stopped(pid: int, timeout: float = 10.0) -> bool:
    """Wait (bounded) until child ``pid`` is stopped by a signal; False if it exited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
        if p == pid:
            if os.WIFSTOPPED(status):
                return True
            raise ChildProcessError(f"process {pid} exited (status {status}) instead of stopping")
        time.sleep(0.001)
    raise TimeoutError(f"process {pid} did not stop within {timeout}s")


def kill_stopped(proc) -> None:
    """SIGKILL a stopped child (a subprocess.Popen) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


# --- random kills (the stress runner's --kill-rate) ---------------------------------------------


@attrs.frozen
class Kill:
    """One notifier killed by kill_notifier."""

    pid: int
    delivered: bool  # the SIGKILL was delivered (False: it had already exited)
    reaped: bool  # it was our child and is reaped
    status: int | None  # its wait status, if reaped


def fork_hammering_notifier(ctx, n_bh: int) -> int:
    """Fork a notifier of attached context ``ctx`` that loops on bh_schedule
    (BHs 0..n_bh-1 in turn) and aio_notify (every fourth round) until it is
    killed; return its pid once it is in its loop.  The child registers its
    own process slot (at-fork hook), as any attached process does."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, b"x")
            os.close(w)
            sched, notify = ctx.bh_schedule, ctx.notify
            k = 0
            while True:
                sched(k % n_bh)
                if k & 3 == 0:
                    notify()
                k += 1
        finally:
            os._exit(1)   # only if the loop raised (e.g. the owner is gone)
    os.close(w)
    os.read(r, 1)         # the child is in its loop
    os.close(r)
    return pid


def kill_notifier(pid: int, *, delay_s: float = 0.0, reap: bool = True) -> Kill:
    """SIGKILL notifier process ``pid`` after ``delay_s`` (a random instant of
    its loop, for a stress runner's ``--kill-rate``), and reap it if it is
    our child.  A notifier that dies mid-protocol is what recovery is for:
    run the owner with ``AioContext.create(..., recovery=True)``."""
    if delay_s > 0:
        time.sleep(delay_s)
    try:
        os.kill(pid, signal.SIGKILL)
        delivered = True
    except ProcessLookupError:
        delivered = False
    status = None
    reaped = False
    if reap:
        try:
            _, status = os.waitpid(pid, 0)
            reaped = True
        except ChildProcessError:
            pass  # not our child: its parent reaps it
    return Kill(pid, delivered, reaped, status)


# --- the owner, and what it does after a kill ----------------------------------------------------


class OwnerLoop:
    """The owner's infinite blocking aio_poll loop, in a thread of this process
    (cffi releases the GIL in aio_poll).  stop() wakes it with the rescue
    channel (outside the protocol) and joins it."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._stop = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop:
                self.ctx.aio_poll(True)
        except BaseException as e:  # reported by stop()
            self.error = e

    def stop(self):
        self._stop = True
        for _ in range(1000):
            if not self.thread.is_alive():
                break
            self.ctx.rescue()
            self.thread.join(0.01)
        if self.thread.is_alive():
            raise RuntimeError("the owner loop did not stop")
        if self.error is not None:
            raise self.error


@attrs.frozen
class OwnerState:
    """What the owner does after a kill (checker's words, see VERDICTS)."""

    verdict: str
    position: str
    pending: int
    readable: bool
    polls_per_window: int  # poll_seq advance over one observation window
    recoveries: int
    detail: str = ""


def wait_asleep(ctx, timeout: float = 5.0) -> None:
    """Wait (bounded) until the owner sleeps in an infinite wait."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = ctx.snapshot()
        if s.position == "wait_infinite":
            time.sleep(0.002)
            if ctx.snapshot().poll_seq == s.poll_seq:
                return
        time.sleep(0.001)
    raise TimeoutError(f"the owner never slept: {ctx.snapshot()}")


def classify_owner(ctx, *, recoveries_before: int | None = None, window: float = 0.02,
                   timeout: float = 3.0) -> OwnerState:
    """The owner's state after a kill, once settled.  With recovery
    (``recoveries_before`` given), first wait for the counter to move: the
    owner has seen the death.  A state is taken as settled when two
    consecutive windows agree."""
    end = time.monotonic() + timeout
    if recoveries_before is not None:
        while ctx.counters().recoveries <= recoveries_before:
            if time.monotonic() > end:
                c = ctx.counters()
                return OwnerState("unsettled", ctx.snapshot().position, c.bh_pending,
                                  ctx.snapshot().notifier_readable, 0, c.recoveries,
                                  "the owner never recovered from the death")
            time.sleep(0.001)
    last = None
    while True:
        s0 = ctx.snapshot()
        time.sleep(window)
        s1 = ctx.snapshot()
        c = ctx.counters()
        polls = s1.poll_seq - s0.poll_seq
        iterating = polls > 20
        if iterating and s1.notifier_readable and c.bh_pending == 0:
            v = "busy-loop"
        elif (not iterating and polls == 0 and s1.position == "wait_infinite"
              and not s1.notifier_readable):
            v = "lost-wakeup" if c.bh_pending else "fine"
        else:
            v = None
        st = OwnerState(v or "unsettled", s1.position, c.bh_pending, s1.notifier_readable,
                        polls, c.recoveries)
        if v is not None and last is not None and last.verdict == v:
            return st
        last = st
        if time.monotonic() > end:
            return attrs.evolve(st, verdict="unsettled", detail="no stable state")


# --- the deterministic kill test: every stopping point of one hook -------------------------------


@attrs.frozen
class KillPoint:
    """The notifier stopped before primitive ``k`` (named ``prim``) and killed there."""

    k: int
    prim: str
    state: OwnerState


def _notifier(name):
    import subprocess

    p = subprocess.Popen([sys.executable, "-c", NOTIFIER, name], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "ready":
        p.kill()
        _, err = p.communicate(timeout=10)
        raise RuntimeError(f"the breakpoint notifier did not start: {line!r} {err}")
    return p


def _one_run(strategy, op, k, *, recovery, skeleton, name_prefix):
    """A fresh context whose owner sleeps in an infinite aio_poll; a notifier
    runs ``op`` stopping before primitive k (k = 0: just count them) and is
    SIGKILLed there.  Returns (n primitives, their names) for k = 0, else the
    owner's state."""
    from .._context._aio import AioContext

    name = f"{name_prefix}-{os.getpid()}-{k}-{os.urandom(3).hex()}" if name_prefix else None
    ctx = AioContext.create(strategy, name, n_bh=2, recovery=recovery, skeleton=skeleton)
    p = owner = None
    try:
        ctx.bh_new(lambda: None)
        p = _notifier(ctx.name)
        owner = OwnerLoop(ctx)
        wait_asleep(ctx)
        if k == 0:
            p.stdin.write(f"count {op}\n")
            p.stdin.flush()
            words = p.stdout.readline().split()
            return int(words[0]), words[1:]
        before = ctx.counters().recoveries
        p.stdin.write(f"stop {k} {op}\n")
        p.stdin.flush()
        wait_stopped(p.pid)
        kill_stopped(p)
        return classify_owner(ctx, recoveries_before=before if recovery else None)
    finally:
        try:
            if owner is not None:
                owner.stop()
        finally:
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.communicate(timeout=10)
            ctx.close()


def kill_at_each_point(strategy: str, op: str = "schedule", *, recovery: bool = False,
                       skeleton: str = "2015", name_prefix: str | None = None) -> list[KillPoint]:
    """For every stopping point k of ``op`` ("schedule": bh_schedule, "notify":
    aio_notify) while the owner sleeps: kill the notifier there, classify the owner."""
    n, prims = _one_run(strategy, op, 0, recovery=recovery, skeleton=skeleton, name_prefix=name_prefix)
    return [KillPoint(k, prims[k - 1], _one_run(strategy, op, k, recovery=recovery, skeleton=skeleton,
                                                name_prefix=name_prefix))
            for k in range(1, n + 1)]


def checker_crash_verdicts(strategy: str, *, recovery: bool, skeleton: str = "2015",
                           model: str = "tso") -> tuple[frozenset, frozenset]:
    """The checker's failing verdicts for one notifier scheduling once (the
    kill test's run), config home: (with crash-stop faults, without faults)."""
    from .._checker import Bounds, check_ir
    from .._compiler._load import load_strategy

    ir = load_strategy(strategy)[0].ir
    b = Bounds(notifiers=1, schedules=1)
    out = []
    for faults, rec in (("crash", recovery), ("none", False)):
        r = check_ir(ir, model, "home", b, want_trace=False, skeleton=skeleton, faults=faults,
                     recovery=rec)
        out.append(frozenset(v for v in {r.verdict, *r.other} if v != "pass"))
    return out[0], out[1]


class GSourceLoop(OwnerLoop):
    """The owner on the GSource path: gsource_iteration(may_block=True) forever."""

    def _run(self):
        try:
            while not self._stop:
                self.ctx.gsource_iteration(True)
        except BaseException as e:  # reported by stop()
            self.error = e
