# Running one (strategy, workload) pair.
#
# The runner process is the context's owner: it creates the segment, the
# bottom halves (each with a native action), the timers and pipes, and the
# driver area (a memfd), then starts the workload's other processes with
# subprocess -- unrelated programs that attach by name -- and runs the
# owner's C loop in a thread while its main thread is the watchdog.  At the
# end it stops everybody, drains what is still scheduled, and does the
# accounting.
#
# Cleanup is unconditional (try/finally): children are stopped through the
# driver area, then killed if they do not exit; they also die with the
# runner (PR_SET_PDEATHSIG), and the owner unlinks the segment when it
# closes (and at interpreter exit).  Nothing is left in /dev/shm.
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

import attrs

import aiocore
from aiocore._compiler._plugins import get as get_strategy

from ._base import OWNER_MODE, Plan, Workload, allows_foreign_pollers, with_path
from ._chaos import ENV as CHAOS_ENV, Chaos, configure as chaos_configure, use_build
from ._verdict import RunResult, Stopped, expected_on, judge  # noqa: F401  (RunResult & co. are the runner's API)
from ._watchdog import Watchdog

ACTION_PINGPONG = 2
ACTION_VIRTIO_TX = 3
ACTION_POOL = 4
ACTION_COUNT = 1
ROLE_OWNER = 1


def default_path(workload: Workload) -> str:
    """The path a workload runs on when none is asked for."""
    return {"gsource": "gsource", "foreign": "foreign"}.get(workload.config, "aio_poll")


def _cpus(pin):
    """(owner's CPU set, the others' CPU set), or (None, None) not to pin.

    With two CPUs or more, the owner gets one and every other process the
    rest, so that a notifier's event_set never wakes the owner onto the
    notifier's own CPU: then the scheduler would preempt the notifier in
    the middle of aio_notify and the two would take turns instead of racing.
    Under pytest-xdist, workers pick different owner CPUs."""
    if not pin:
        return None, None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    k = int(w[2:]) if w[2:].isdigit() else 0
    own = cpus[k % len(cpus)]
    return {own}, set(cpus) - {own}


def _spawn(role, index, name, area_fd, extra_fds, errfile, cpus=None, chaos=None, tail=None):
    cmd = [
        sys.executable, "-m", "aiocore_workloads._child", role, str(index), name,
        str(area_fd), str(os.getpid()), ",".join(str(f) for f in extra_fds),
    ] + ([tail] if tail else [])
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env[CHAOS_ENV] = (chaos or Chaos()).env()
    # `python -m` would put the current directory first on sys.path: from a
    # source checkout after a plain `pip install .`, that is the uncompiled
    # aiocore/ tree.  Import the installed package.
    env["PYTHONSAFEPATH"] = "1"
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errfile,
        pass_fds=(area_fd, *extra_fds),
        start_new_session=True,  # a terminal's ^C goes to the runner only
        env=env,
        close_fds=True,
    )
    if cpus:
        try:
            os.sched_setaffinity(p.pid, cpus)  # long before "go"
        except OSError:
            pass
    return p


def run_pair(
    strategy: str,
    workload: Workload,
    seconds: float = 2.0,
    procs: int = 2,
    *,
    seed: int | None = None,
    lost_ms: float = 10.0,
    busy_k: int = 200,
    until_found: bool = False,
    tick=None,
    should_stop=None,
    start_timeout: float = 60.0,
    pin: bool = True,
    chaos: Chaos | None = None,
    path: str | None = None,
    skeleton: str = "2015",
    kill_rate: float = 0.0,
    recovery: bool | None = None,
    poll_max_ns: int | None = None,
) -> RunResult:
    """Run one workload (the traffic) against one strategy on one of the
    owner's paths for `seconds` (or, with until_found, until the
    watchdog's first finding, at most `seconds`).

    ``kill_rate`` > 0 adds a victim server that SIGKILLs that many victim
    notifiers per second at random instants of their protocol calls
    (_child.victim_server); the context then runs with ``recovery`` (default
    on when killing).  The workload's own processes are never killed, so
    its accounting stays exact.  ``poll_max_ns`` (polling skeleton only)
    bounds the owner's busy-poll phase (None: QEMU's iothread default; 0:
    never busy-poll, QEMU's main loop)."""
    info = get_strategy(strategy) if strategy != "unconditional-c" else None
    if info is None:
        from aiocore._compiler._plugins import _core_info

        info = _core_info()
    if kill_rate < 0 or kill_rate > 1000:
        raise ValueError(f"kill_rate must be within 0..1000 kills per second, not {kill_rate!r}")
    recovery = kill_rate > 0 if recovery is None else bool(recovery)
    path = default_path(workload) if path is None else path
    plan: Plan = with_path(workload.plan(procs), path, allows_foreign_pollers(info))
    seed = secrets.randbits(63) if seed is None else seed
    chaos = Chaos() if chaos is None else chaos
    n_bh = max(64, plan.pingpong + plan.timer_racers + plan.filler_bhs + 16)
    # The segment is unlinked whatever instant a signal arrives: SIGINT and
    # SIGTERM are blocked from before the segment exists until the try whose
    # finally closes it has begun (a handler that raises -- a second ^C --
    # could otherwise land between create() returning and the try).
    blocked = _block_signals()
    try:
        with use_build(chaos):
            ctx = aiocore.AioContext.create(strategy, n_bh=min(n_bh, 8192), n_timers=max(16, plan.timers + 4),
                                            skeleton=skeleton, recovery=recovery,
                                            **({"poll_max_ns": poll_max_ns} if poll_max_ns is not None else {}))
    except BaseException:
        _unblock_signals(blocked)
        raise
    try:
        _unblock_signals(blocked)
        chaos_configure(ctx._lib, chaos, "owner", 0)
        r = _run_created(ctx, info, strategy, workload, plan, seconds, seed, lost_ms, busy_k,
                         until_found, tick, should_stop, start_timeout, pin, chaos, kill_rate, skeleton)
        r.chaos = chaos.mode
        r.poll_max_ns = poll_max_ns
        return r
    finally:
        ctx.close()


def _block_signals():
    """Block SIGINT and SIGTERM in this thread (main thread only); returns the old mask."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _unblock_signals(old):
    if old is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _run_created(ctx, info, strategy, workload, plan, seconds, seed, lost_ms, busy_k,
                 until_found, tick, should_stop, start_timeout, pin, chaos, kill_rate=0.0,
                 skeleton="2015") -> RunResult:
    """run_pair's body once the context exists (the caller closes it, always)."""
    lib, ffi, c = ctx._lib, ctx._ffi, ctx._c
    children: list[subprocess.Popen] = []
    pipes: list[tuple[int, int]] = []
    area_fd = -1
    owner_thread = None
    owner_rc = []
    errors: list[str] = []
    errfile = tempfile.TemporaryFile(mode="w+b")
    mapped = False
    wd = None
    t_run = 0.0
    kills_r = -1  # the victim server's kill pipe (read end)
    noop = lambda: None  # noqa: E731
    try:
        area_fd = os.memfd_create("aiocore-stress", os.MFD_CLOEXEC)
        r = lib.aio_drv_area_map(c, area_fd, 1)
        if r != 0:
            raise aiocore.AioError(f"cannot create the driver area ({r})")
        mapped = True
        a = lib.aio_drv_area(c)
        a.seed = seed
        for k in (
            "jitter_ns", "race_pct", "quiet_period_us", "quiet_len_us", "tx_burst",
            "foreign_away_min_us", "foreign_away_max_us", "foreign_burst_max",
            "timer_min_us", "timer_max_us", "timer_idle_pct", "work_ns", "pool_batch",
        ):
            setattr(a, k, int(getattr(plan, k)))
        bhs = []
        # Ping-pong BHs first (low slots), idle fillers after them.
        for i in range(plan.pingpong + plan.timer_racers):
            bh = ctx.bh_new(noop)
            ctx.bh_set_action(bh, ACTION_PINGPONG, i)
            a.bh_pp[i] = bh
            bhs.append(bh)
        a.n_pp = plan.pingpong + plan.timer_racers
        for _ in range(plan.filler_bhs):
            bh = ctx.bh_new(noop)
            ctx.bh_set_action(bh, ACTION_COUNT, 0)
            bhs.append(bh)
        if plan.guests:
            a.bh_tx = ctx.bh_new(noop)
            ctx.bh_set_action(a.bh_tx, ACTION_VIRTIO_TX, 0)
            bhs.append(a.bh_tx)
        if plan.pool_workers:
            a.bh_pool = ctx.bh_new(noop)
            ctx.bh_set_action(a.bh_pool, ACTION_POOL, 0)
            bhs.append(a.bh_pool)
            a.n_pool = plan.pool_workers
            for w in range(plan.pool_workers):
                a.pool[w].req = 1
        timers = [ctx.timer_new(noop) for _ in range(min(plan.timers, 16))]
        for i, t in enumerate(timers):
            a.timer[i] = t
        a.n_timers = len(timers)
        for i in range(min(plan.pipes, 8)):
            rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            pipes.append((rfd, wfd))
            ctx.set_fd_handler(rfd, noop)
            a.fd[i] = rfd
        a.n_fds = len(pipes)
        victim_bh = -1
        if kill_rate > 0:
            victim_bh = ctx.bh_new(noop)
            ctx.bh_set_action(victim_bh, ACTION_COUNT, 0)
        slot = lib.aio_drv_proc_claim(c, ROLE_OWNER)
        owner_cpus, other_cpus = _cpus(pin and plan.pin != "none")

        # Children: the plan's roles, the timer racers ping-pong on the BHs
        # after the plain notifiers'.
        for role, i in plan.children():
            idx = i + plan.pingpong if role == "timer-racer" else i
            extra = [w for _, w in pipes] if role == "fd-writer" else []
            cpus = other_cpus
            if role == "foreign" and plan.pin == "foreign-with-owner" and owner_cpus:
                cpus = owner_cpus
            children.append(_spawn(role, idx, ctx.name, area_fd, extra, errfile, cpus, chaos))
        if kill_rate > 0:
            kills_r, kills_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                children.append(_spawn("victim-server", victim_bh, ctx.name, area_fd, [kills_w], errfile,
                                       other_cpus, chaos, tail=f"{int(kill_rate * 1000)},{seed & 0xFFFFFFFF}"))
            finally:
                os.close(kills_w)
        os.close(area_fd)
        area_fd = -1
        for _, w in pipes:  # the writers have them now
            os.close(w)
        pipes = [(r_, -1) for r_, _ in pipes]

        # Wait until every child has attached and claimed its slot.
        deadline = time.monotonic() + start_timeout
        out = ffi.new("int64_t[6]")
        while True:
            n = sum(1 for i in range(64) if lib.aio_drv_proc_get(c, i, out) > 0 and out[1] != ROLE_OWNER)
            if n >= len(children):
                break
            dead = [p for p in children if p.poll() is not None]
            if dead:
                raise aiocore.AioError(
                    f"a workload process exited before the start (status {dead[0].returncode}): "
                    + _read_err(errfile)
                )
            if time.monotonic() > deadline:
                raise aiocore.AioError("workload processes did not attach in time")
            if should_stop is not None and should_stop():
                raise Stopped()
            time.sleep(0.005)

        def owner():
            if owner_cpus:
                try:
                    os.sched_setaffinity(0, owner_cpus)  # this thread only
                except OSError:
                    pass
            mode = 1 if plan.gsource else OWNER_MODE[plan.path]
            owner_rc.append(lib.aio_drv_owner_run(c, mode, slot))

        wd = Watchdog(ctx, lost_ms=lost_ms, busy_k=busy_k)
        owner_thread = threading.Thread(target=owner, name="aiocore-owner", daemon=True)
        owner_thread.start()
        a.go.v = 1
        t0 = time.monotonic()

        def stop_now():
            if should_stop is not None and should_stop():
                return True
            if until_found and wd.found:
                return True
            if owner_rc:  # the owner loop returned early: an error
                return True
            return any(p.poll() is not None for p in children)

        wd.run_for(seconds, tick=tick, should_stop=stop_now)
        t_run = time.monotonic() - t0
        if should_stop is not None and should_stop():
            raise Stopped()
        for p in children:
            if p.poll() is not None:
                errors.append(f"a workload process exited early (status {p.returncode}): {_read_err(errfile)}")
                break
        if owner_rc and owner_rc[0] != 0:
            errors.append(f"the owner's loop failed (code {owner_rc[0]})")
    except BaseException:
        # Stopped, an error or a second signal: stop everybody, release the
        # run's fds; the caller closes (unlinks) the segment.
        try:
            _stop_all(ctx, lib, c, children, owner_thread, mapped)
        finally:
            if area_fd >= 0:
                os.close(area_fd)
            if kills_r >= 0:
                os.close(kills_r)
            _close_run(lib, c, pipes, errfile)
        raise
    _stop_all(ctx, lib, c, children, owner_thread, mapped)
    kills = _read_kills(kills_r)
    try:
        res = _account(ctx, info, workload, plan, wd, t_run, seed, pipes, errors, strategy,
                       skeleton, kills, victim_bh)
        tail = _read_err(errfile)
        if tail and not res.errors and any(p.returncode not in (0, None, 3, -9) for p in children):
            res.errors.append(tail)
        return res
    finally:
        _close_run(lib, c, pipes, errfile)


def _close_run(lib, c, pipes, errfile):
    for r_, _ in pipes:
        try:
            os.close(r_)
        except OSError:
            pass
    errfile.close()
    lib.aio_drv_area_unmap(c)


def _read_kills(fd) -> tuple[int, int]:
    """(kills, kills the owner recovered in time) from the victim server's pipe; closes it."""
    if fd < 0:
        return 0, 0
    data = b""
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            data += b
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return len(data), data.count(b"r")


def _read_err(f) -> str:
    try:
        f.flush()
        f.seek(0)
        return f.read().decode(errors="replace").strip()[-2000:]
    except (OSError, ValueError):
        return ""


def _stop_all(ctx, lib, c, children, owner_thread, mapped):
    """Stop every loop; always returns with no child and no owner thread running."""
    a = lib.aio_drv_area(c) if mapped else None
    if a is not None:
        a.stop.v = 1
    deadline = time.monotonic() + 5
    for p in children:
        try:
            p.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    for p in children:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if owner_thread is not None:
        while owner_thread.is_alive():
            try:
                ctx.rescue()  # wake the owner's ppoll: it sees `stop`
            except Exception:
                pass
            owner_thread.join(timeout=0.05)


def _account(ctx, info, workload, plan, wd, t_run, seed, pipes, errors, strategy,
             skeleton="2015", kills=(0, 0), victim_bh=-1) -> RunResult:
    """End-of-run accounting: every 0->1 schedule dispatched exactly once.

    The victims' BH is judged apart: a victim killed inside bh_schedule may
    have claimed the flag without counting its schedule (or counted it
    without having set the flag), so its schedules and dispatches may
    differ by at most one per kill; more than that is lost work."""
    lib, c = ctx._lib, ctx._c
    a = lib.aio_drv_area(c)
    left = lib.aio_drv_owner_drain(c, 100000)
    cnt = ctx.counters()
    # Per BH: schedules == dispatches + cancels + pending, never more dispatches
    # -- where the counts are exact for the strategy (its schedule changes the
    # BH's word with RMWs only, its claim and cancel are the core's: see
    # aiocore._compiler._strategy.bh_counted); else the payloads judge lost work.
    bh_lost = bh_double = 0
    hwm = ctx.snapshot().bh_hwm
    victim_d = 0
    counted = info is None or info.ir is None or info.ir.bh_counted
    for bh in range(hwm if counted else 0):
        st = ctx.bh_stats(bh)
        d = st["schedules"] - st["dispatches"] - st["cancels"] - st["scheduled"]
        if bh == victim_bh:
            victim_d = d
            d = 0 if abs(d) <= kills[0] else d
        if d > 0:
            bh_lost += d
        elif d < 0:
            bh_double += -d
    work = dict(bh_lost=bh_lost, bh_double=bh_double, left_pending=max(0, left))
    if not counted:
        work["bh_counts"] = "not kept (plain stores to the BH's word, or its own claim/cancel)"
    if victim_bh >= 0:
        work.update(victim_schedule_gap=victim_d, kills=kills[0], kills_recovered=kills[1],
                    recoveries=cnt.recoveries)
    wl_issues = 0
    n_pp = plan.pingpong + plan.timer_racers
    if n_pp:
        sent = sum(int(a.pp[i].sent) for i in range(n_pp))
        acked = sum(int(a.pp[i].acked) for i in range(n_pp))
        work.update(pingpong_sent=sent, pingpong_acked=acked)
        wl_issues += abs(sent - acked)
    wl_issues += int(a.dup.v)
    work["dup_actions"] = int(a.dup.v)
    if plan.guests:
        head, tail = int(a.head.v), int(a.tail.v)
        work.update(tx_packets=int(a.tx_packets.v), tx_left=head - tail, tx_bad=int(a.tx_bad.v))
        wl_issues += (head - tail) + int(a.tx_bad.v)
    if plan.pool_workers:
        done = sum(int(a.pool[w].done) for w in range(plan.pool_workers))
        acked = sum(int(a.pool[w].acked) for w in range(plan.pool_workers))
        work.update(pool_completions=int(a.pool_completions.v), pool_uncollected=done - acked)
        wl_issues += done - acked
    if plan.pipes:
        rest = 0
        for r_, _ in pipes:
            try:
                while True:
                    b = os.read(r_, 65536)
                    if not b:
                        break
                    rest += len(b)
            except BlockingIOError:
                pass
        written, read = int(a.fd_bytes_written.v), int(a.fd_bytes_read.v)
        work.update(fd_bytes_written=written, fd_bytes_read=read, fd_bytes_left=rest)
        work["bare_notifies"] = int(a.bare_notifies.v)
    if plan.timers:
        work["timer_fires"] = int(a.timer_fires.v)
    work["owner_iterations"] = int(a.owner_iters.v)
    lost_work = bh_lost + bh_double + wl_issues
    observed = []
    lw = wd.lost_wakeups if wd else 0
    bl = wd.busy_loops if wd else 0
    lws = wd.lost_works if wd else 0
    lwt = wd.lost_wakeups_timed if wd else 0
    blt = wd.busy_loops_timed if wd else 0
    if lw or lwt:
        observed.append("lost-wakeup")
    if bl or blt:
        observed.append("busy-loop")
    if lost_work or lws:
        observed.append("lost-work")
    if errors:
        observed.append("error")
    verdict, exp, matches, failed = judge(info, workload, observed, lost_work, plan.path, skeleton)
    if errors:
        failed = True
    return RunResult(
        strategy=strategy,
        workload=workload.name,
        seconds=t_run,
        wakeups=cnt.wakeups,
        dispatched=cnt.bh_dispatches,
        lost_wakeups=lw,
        busy_loops=bl,
        lost_work=lost_work,
        verdict=verdict,
        expected=exp,
        matches=matches,
        failed=failed,
        lost_wakeups_timed=lwt,
        busy_loops_timed=blt,
        first_finding_s=wd.first_finding_s if wd else None,
        near_misses=wd.near_misses if wd else 0,
        longest_near_miss_ms=wd.longest_near_miss_ms if wd else 0.0,
        max_busy_streak=int(a.max_streak.v),
        crash_rescues=wd.crash_rescues if wd else 0,
        lost_work_states=lws,
        seed=seed,
        path=plan.path,
        skeleton=skeleton,
        kills=kills[0],
        kills_recovered=kills[1],
        counters=attrs.asdict(cnt),
        work=work,
        findings=list(wd.findings) if wd else [],
        errors=list(errors),
    )
