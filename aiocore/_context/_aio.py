# AioContext: the Python face of a context that lives in shared memory.
#
# The owner creates a POSIX shared-memory segment (posix_ipc, O_CREX, 0600)
# and the EventNotifier (an eventfd), and serves the notifier's fd to other
# processes over a unix socket with SCM_RIGHTS.  Any process of the same user
# can then attach by name -- a child, or an unrelated program started from a
# shell -- schedule bottom halves and notify.  Only the owner polls, unless
# the strategy comes from the era of foreign pollers (then the context lock
# serializes them, as QEMU's RFifoLock did).
#
# The aio_poll skeleton ("2015", or QEMU's "polling" mode with its adaptive
# poll_ns) is chosen at create() and recorded in the segment header; an
# attacher must agree with it (SkeletonMismatch).  Beside it in
# aiocore/_context: _segment.py (the header, names, info, gc), _fdpass.py (fd
# passing), _state.py (the GSource path, the lock, reading state); this
# module is the context.
#
# Python sets things up, runs callbacks and reports; every protocol sequence
# is one call into the strategy's compiled module (see _csrc/aio_core.c).
# The hot calls (bh_schedule, notify) are built-in functions bound per
# instance to the C function (aiocore/_csrc/aio_pycall.c), so that scheduling
# from Python costs less than an empty cffi call.
#
# Getting hold of the notifier, in detail: the owner listens on
#   $XDG_RUNTIME_DIR/aiocore/<name>.sock   (or /tmp/aiocore-<uid>/<name>.sock)
# in a directory it creates with mode 0700 and refuses to use if it is a
# symlink, is not owned by the user, or is open to group/others.  The socket
# itself is 0600, and the server checks SO_PEERCRED: only the same uid gets
# the fds.  The reply carries the segment's fingerprint so an attacher can
# tell it reached the right owner.  The segment name is never used as a path
# without validation (letters, digits, '.', '_', '-').
from __future__ import annotations

import atexit
import os
import weakref

import attrs
import posix_ipc

from .. import _errors as E
from .._compiler import _skeleton as SK
from .._compiler._load import load_pycall, load_strategy
from ._state import _ContextState, after_fork_in_child
from ._fdpass import _FdServer, _receive_fds
from ._segment import *  # noqa: F401,F403  (re-exported: aiocore._context._aio.X)
from ._segment import (_EV_BH, _EV_BH_ONESHOT, _EV_FD, _EV_TIMER, _HEADER_BYTES, _check_name,  # noqa: F401
                       _check_poll_params, _check_skeleton, _core, _decode, _new_name, _peek,
                       _poll_word_of, _segment_error, _unlink)


# --- owner hooks (the janitor) ---------------------------------------------------

_owner_hooks: list = []


def add_owner_hook(fn) -> None:
    """Call fn("create"|"close", name) as this process creates/closes contexts."""
    _owner_hooks.append(fn)


def remove_owner_hook(fn) -> None:
    try:
        _owner_hooks.remove(fn)
    except ValueError:
        pass


def _tell_hooks(event, name):
    for fn in list(_owner_hooks):
        try:
            fn(event, name)
        except Exception:
            pass


# --- cleanup at exit ----------------------------------------------------------

_live: "weakref.WeakSet[AioContext]" = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: after_fork_in_child(_live))  # recovery: child slots


@atexit.register
def _close_all():
    for ctx in list(_live):
        try:
            ctx.close()
        except Exception:
            pass


# --- builds ---------------------------------------------------------------------


def _load_build(strategy, step_log, cflags=()):
    """(info, ffi, lib): the strategy's module, or its step-log build, or a
    variant built with extra C flags (the breakpoint build, _breakpoint.py)."""
    if not step_log and not cflags:
        return load_strategy(strategy)
    from .._compiler._build import load_cached
    from .._compiler._load import c_source

    info = load_strategy(strategy)[0]
    fp = info.ir.fingerprint if info.ir is not None else "handwritten"
    flags = ("-DAIO_STEP_LOG",) if step_log else ()
    ffi, lib = load_cached(f"{info.name}-{fp}", c_source(info), extra_cflags=flags + tuple(cflags))
    return info, ffi, lib


# --- AioContext ----------------------------------------------------------------


class AioContext(_ContextState):
    """An AioContext in a POSIX shared-memory segment.

    Create one with AioContext.create() (the owner: the one process that
    polls) or AioContext.attach(name) (any other process of the same user:
    schedules bottom halves and notifies).  Close it with close() or use it
    as a context manager; the owner unlinks the segment when it closes, and
    at interpreter exit.
    """

    def __init__(self, *_a, **_k):
        raise TypeError("use AioContext.create() or AioContext.attach(name)")

    @classmethod
    def _new(cls, name, info, ffi, lib, owner):
        self = object.__new__(cls)
        self._name = name
        self._info = info
        self._ffi = ffi
        self._lib = lib
        self._owner = owner
        self._closed = False
        self._server = None
        self._shm = None
        self._c = ffi.gc(lib.aio_ctx_new(), lib.aio_ctx_free)
        if self._c == ffi.NULL:
            raise MemoryError("aio_ctx_new")
        self._bh_cb = {}
        self._oneshot_cb = {}  # one-shot BH id -> its callback, until it runs
        self._timer_cb = {}
        self._fd_cb = {}
        self._progress = ffi.new("int *")
        self._u64 = ffi.new("uint64_t[32]")
        self._i64 = ffi.new("int64_t[8]")
        self._pid = os.getpid()
        return self

    # -- construction --

    @classmethod
    def create(
        cls,
        strategy: str = DEFAULT_STRATEGY,
        name: str | None = None,
        *,
        n_bh: int = DEFAULT_N_BH,
        n_timers: int = DEFAULT_N_TIMERS,
        notifier: str = "eventfd",
        skeleton: str = SK.DEFAULT_SKELETON,
        poll_max_ns: int | None = None,
        poll_grow: int = SK.DEFAULT_POLL_GROW,
        poll_shrink: int = SK.DEFAULT_POLL_SHRINK,
        recovery: bool = False,
        _step_log: bool = False,
        _undeclared_ok: bool = False,
    ) -> "AioContext":
        """Create a context (this process becomes its owner).

        ``name`` defaults to an unguessable one; ``notifier`` is "eventfd" or
        "pipe" (the fallback where eventfd is missing).  ``skeleton`` is the
        aio_poll skeleton ("2015": a ppoll every aio_poll; "polling": QEMU's
        polling mode, busy-polling up to an adaptive poll_ns capped by
        ``poll_max_ns`` (default QEMU's 32768 ns; 0 disables polling) and
        adjusted by ``poll_grow`` / ``poll_shrink`` as QEMU's poll-grow /
        poll-shrink).  The strategy must declare the skeleton.  ``recovery``
        (recorded in the header): the owner watches every attached process's
        pidfd and, when one dies, makes one unconditional
        event_notifier_test_and_clear and re-checks every BH flag (counter
        ``recoveries``; aio_recovery.h, ``aiocore check --faults crash --recovery``)."""
        name = _new_name() if name is None else _check_name(name)
        if notifier not in ("eventfd", "pipe"):
            raise ValueError(f"notifier must be 'eventfd' or 'pipe', not {notifier!r}")
        for what, v, hi in (("n_bh", n_bh, 8192), ("n_timers", n_timers, 2048)):
            if not isinstance(v, int) or not (1 if what == "n_bh" else 0) <= v <= hi:
                raise ValueError(f"{what} must be an int in [{1 if what == 'n_bh' else 0}, {hi}], not {v!r}")
        if not isinstance(recovery, bool):
            raise ValueError(f"recovery must be a bool, not {recovery!r}")
        skel_id, poll_max_ns = _check_poll_params(skeleton, poll_max_ns, poll_grow, poll_shrink)
        info, ffi, lib = _load_build(strategy, _step_log)
        if skeleton not in info.skeletons and not _undeclared_ok:
            raise E.SkeletonError(
                f"strategy {info.name!r} does not declare the {skeleton!r} skeleton "
                f"(it declares: {', '.join(info.skeletons)}); `aiocore check --skeleton {skeleton}` "
                "shows why a strategy breaks there"
            )
        self = cls._new(name, info, ffi, lib, owner=True)
        # Hooks (the janitor) hear of the name before the segment exists: a
        # SIGKILL between shm_open and the end of create() must not leave a
        # segment nobody was told about.  The janitor unlinks a listed name
        # whose header is still unwritten once we are gone.
        _tell_hooks("create", name)
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600)
        except posix_ipc.ExistentialError:
            _tell_hooks("close", name)
            raise E.AioError(f"a shared memory segment named {name!r} already exists") from None
        try:
            kind = NOTIFIER_EVENTFD if notifier == "eventfd" else NOTIFIER_PIPE
            start = process_start_time(os.getpid()) or 0
            self._raise(lib.aio_ctx_set_flags(self._c, RECOVERY_FLAG if recovery else 0))
            r = lib.aio_ctx_create(self._c, shm.fd, n_bh, n_timers, start, kind,
                                   skel_id, poll_max_ns, poll_grow, poll_shrink)
            if r == -15:
                raise ValueError(
                    f"n_bh={n_bh}, n_timers={n_timers} do not fit in a 1 MiB segment"
                )
            self._raise(r)
            fds = ffi.new("int[3]")
            lib.aio_ctx_fds(self._c, fds)
            st = os.fstat(shm.fd)
            self._server = _FdServer(
                socket_path(name),
                [fds[0], fds[1], fds[2]],
                _decode(lib.aio_strategy_fingerprint()),
                (st.st_dev, st.st_ino),
            )
        except BaseException:
            lib.aio_ctx_close(self._c)
            shm.close_fd()
            try:
                shm.unlink()
            except posix_ipc.ExistentialError:
                pass
            _tell_hooks("close", name)
            raise
        shm.close_fd()
        self._shm = shm
        self._bind_fast_paths()
        _live.add(self)
        return self

    @classmethod
    def attach(cls, name: str, *, strategy: str | None = None, skeleton: str | None = None,
               timeout: float = 5.0, _step_log: bool = False, _cflags=()) -> "AioContext":
        """Attach to a context another process created.

        The strategy is read from the segment's header and loaded here; its
        fingerprint must match the owner's.  ``strategy`` and ``skeleton``,
        if given, must be the segment's."""
        name = _check_name(name)
        if skeleton is not None:
            _check_skeleton(skeleton)
        shm, size, hdr = _peek(name)
        try:
            seg_strategy = _decode(hdr.strategy)
            seg_fp = _decode(hdr.fingerprint)
            seg_skel = SK.SKELETONS[hdr.skeleton]
            if strategy is not None and strategy != seg_strategy:
                raise E.StrategyMismatch(
                    f"{name!r} runs strategy {seg_strategy!r}, not {strategy!r}"
                )
            if skeleton is not None and skeleton != seg_skel:
                raise E.SkeletonMismatch(
                    f"{name!r} runs the {seg_skel!r} skeleton, not {skeleton!r} "
                    "(the skeleton is fixed when the owner creates the context)"
                )
            if hdr.state != 1:
                raise E.OwnerGone(f"the owner of {name!r} closed it")
            if not owner_alive(hdr.owner_pid, hdr.owner_start):
                raise E.OwnerGone(
                    f"the owner of {name!r} (pid {hdr.owner_pid}) has exited; "
                    "`aiocore gc` reclaims the segment"
                )
            info, ffi, lib = _load_build(seg_strategy, _step_log, _cflags)
            if seg_skel not in info.skeletons:
                raise E.SkeletonMismatch(
                    f"{name!r} runs strategy {seg_strategy!r} on the {seg_skel!r} skeleton, which "
                    f"this process's {seg_strategy!r} does not declare ({', '.join(info.skeletons)})"
                )
            local_fp = _decode(lib.aio_strategy_fingerprint())
            if local_fp != seg_fp:
                raise E.StrategyMismatch(
                    f"{name!r} was created with strategy {seg_strategy!r} fingerprint {seg_fp}; "
                    f"this process's {seg_strategy!r} has fingerprint {local_fp} "
                    "(different versions of the strategy)"
                )
            served_fp, served_ident, fds = _receive_fds(name, timeout)
            try:
                st = os.fstat(shm.fd)
                if tuple(served_ident) != (st.st_dev, st.st_ino):
                    raise E.BadSegment(
                        f"{name!r} is not the segment its owner (pid {hdr.owner_pid}) created: "
                        "it was replaced under the same name (a copy, or another context's segment)"
                    )
                if served_fp != seg_fp:
                    raise E.StrategyMismatch(
                        f"the owner of {name!r} serves fingerprint {served_fp}, the segment says {seg_fp}"
                    )
                try:
                    pidfd = os.pidfd_open(hdr.owner_pid)
                except (OSError, AttributeError):
                    pidfd = -1
                self = cls._new(name, info, ffi, lib, owner=False)
                r = lib.aio_ctx_attach(self._c, shm.fd, size, fds[0], fds[1], fds[2], pidfd,
                                       hdr.skeleton)
                if r != 0:
                    if pidfd >= 0:
                        os.close(pidfd)
                    if r in (-8, -9, -10, -11):
                        raise _segment_error(name, r, hdr, size)
                    self._raise(r)
            except BaseException:
                for fd in fds:
                    os.close(fd)
                raise
        finally:
            shm.close_fd()
        self._bind_fast_paths()
        _live.add(self)
        return self

    def _bind_fast_paths(self):
        # bh_schedule and notify are built-in functions bound to this context
        # (aiocore/_csrc/aio_pycall.c): one C call into this strategy
        # module's own aio_bh_schedule / aio_notify with the bounds check in
        # C, and _raise called only when the call fails.  About a third of an
        # empty cffi call (`aiocore bench`: py_bh_schedule_vs_cffi_empty).
        ffi, lib = self._ffi, self._lib

        def addr(fn):
            return int(ffi.cast("uintptr_t", ffi.addressof(lib, fn)))

        pc, c = load_pycall(), int(ffi.cast("uintptr_t", self._c))
        self.bh_schedule = pc.bind(True, addr("aio_bh_schedule"), c, self._raise_bh, self._c,
                                   "bh_schedule", AioContext.bh_schedule.__doc__)
        self.notify = pc.bind(False, addr("aio_notify"), c, self._raise, self._c,
                              "notify", AioContext.notify.__doc__)

    # -- errors --

    def _raise_bh(self, r, bh_id):
        self._raise(r, bh=bh_id)

    def _raise(self, r, bh=None, timer=None, fd=None):
        if r >= 0:
            return
        if r == -1:
            raise E.ContextClosed(f"context {self._name!r} is closed")
        if r == -2:
            raise E.NotHome(
                f"only the owner (pid {self._owner_pid()}) may do that on {self._name!r}"
                + (
                    ""
                    if self._info.name is None
                    else f"; strategy {self._info.name!r} does not allow foreign pollers"
                )
            )
        if r == -3:
            raise E.BadBottomHalf(f"bottom half {bh!r} is out of range or deleted in {self._name!r}")
        if r == -4:
            raise E.Full(f"no free slot left in {self._name!r}")
        if r == -5:
            raise E.BadTimer(f"timer {timer!r} is out of range or freed in {self._name!r}")
        if r == -7:
            raise E.OwnerGone(
                f"the owner of {self._name!r} is gone (it closed the context or exited); "
                "`aiocore gc` reclaims the segment of an owner that died"
            )
        if r == -13:
            raise E.AioError(f"fd {fd!r} is not an open file descriptor")
        if r == -12:
            raise E.StrategyMismatch(f"{self._name!r}: strategy fingerprint mismatch")
        if r == -16:
            raise E.SkeletonMismatch(f"{self._name!r}: the segment runs another skeleton")
        if r == -11:
            raise E.CorruptSegment(
                f"{self._name!r}: corrupt shared state (a field holds a value no aiocore process writes)"
            )
        if r in (-8, -9, -10):
            raise E.BadSegment(f"{self._name!r}: bad segment (code {r})")
        if r == -14:
            raise E.AioError(f"context lock of {self._name!r}: not held by this process")
        if r == -6:
            en = self._lib.aio_last_errno(self._c)
            raise OSError(en, f"{os.strerror(en)} (in {self._name!r})")
        raise E.AioError(f"{self._name!r}: error {r}")

    def _owner_pid(self):
        try:
            return self.info().owner_pid
        except Exception:
            return "?"

    # -- properties --

    @property
    def name(self) -> str:
        """The segment's name (pass it to AioContext.attach)."""
        return self._name

    @property
    def strategy(self) -> str:
        return self._info.name

    @property
    def fingerprint(self) -> str:
        return _decode(self._lib.aio_strategy_fingerprint())

    @property
    def is_owner(self) -> bool:
        return self._owner

    @property
    def closed(self) -> bool:
        return self._closed

    # -- bottom halves --

    def bh_new(self, callback) -> int:
        """Create a bottom half (owner only); returns its integer id."""
        if not callable(callback):
            raise TypeError(f"bh_new needs a callable, not {type(callback).__name__}")
        r = self._lib.aio_bh_new(self._c)
        self._raise(r)
        self._bh_cb[r] = callback
        return r

    def bh_schedule(self, bh_id: int) -> None:
        """Schedule a bottom half (any process): each 0->1 runs it once."""
        # Replaced per instance by a bound built-in (see _bind_fast_paths).
        raise NotImplementedError  # pragma: no cover

    def notify(self) -> None:
        """aio_notify: wake the poller if it sleeps (the strategy's notify)."""
        raise NotImplementedError  # pragma: no cover

    def bh_cancel(self, bh_id: int) -> None:
        """qemu_bh_cancel: unschedule a bottom half if it is pending (any
        process; the strategy's cancel hook)."""
        self._raise(self._lib.aio_bh_cancel(self._c, bh_id), bh=bh_id)

    def bh_schedule_oneshot(self, callback=None, *, action: int = 0, arg: int = 0) -> int:
        """aio_bh_schedule_oneshot: schedule a fresh bottom half that runs once
        and is then freed (any process; the strategy's schedule_oneshot hook).
        ``callback`` runs in this process's aio_poll (the owner's, or a
        foreign poller's); a native ``action`` (aio_drivers.c) runs in
        whichever poller claims it.  Returns the slot's id."""
        if callback is not None and not callable(callback):
            raise TypeError(f"bh_schedule_oneshot needs a callable, not {type(callback).__name__}")
        r = self._lib.aio_bh_schedule_oneshot(self._c, action, arg)
        self._raise(r)
        if callback is not None:
            self._oneshot_cb[r] = callback
        return r

    def bh_delete(self, bh_id: int) -> None:
        """Delete a bottom half (owner only); a pending schedule is dropped."""
        self._raise(self._lib.aio_bh_delete(self._c, bh_id), bh=bh_id)
        self._bh_cb.pop(bh_id, None)

    # -- timers --

    def timer_new(self, callback) -> int:
        """Create a timer (owner only); arm it with timer_mod_ns."""
        if not callable(callback):
            raise TypeError(f"timer_new needs a callable, not {type(callback).__name__}")
        r = self._lib.aio_timer_new(self._c)
        self._raise(r)
        self._timer_cb[r] = callback
        return r

    def timer_mod_ns(self, timer_id: int, deadline_ns: int) -> None:
        """Arm a timer to fire at deadline_ns on clock_ns()'s clock."""
        self._raise(self._lib.aio_timer_mod_ns(self._c, timer_id, deadline_ns), timer=timer_id)

    def timer_del(self, timer_id: int) -> None:
        """Disarm a timer (it can be armed again)."""
        self._raise(self._lib.aio_timer_del(self._c, timer_id), timer=timer_id)

    def timer_free(self, timer_id: int) -> None:
        self._raise(self._lib.aio_timer_free(self._c, timer_id), timer=timer_id)
        self._timer_cb.pop(timer_id, None)

    def clock_ns(self) -> int:
        """CLOCK_MONOTONIC in ns: the clock of timer deadlines."""
        return self._lib.aio_clock_ns()

    # -- fd handlers --

    def set_fd_handler(self, fd: int, read_cb=None, write_cb=None, poll_cb=None) -> None:
        """Watch fd in aio_poll (owner only); both callbacks None removes it.

        ``poll_cb`` is the fd's poll handler for the polling skeleton, and it
        must be native, so that the busy-poll loop stays in C: ``("word", i)``
        watches readiness word i of the segment (0 <= i < 16; producers call
        ``poll_word_add(i)`` after publishing their data, then wake the fd as
        usual).  An fd without a poll handler makes every aio_poll of the
        polling skeleton a system call (QEMU's need_wait).  A Python callable
        is refused: it would put Python (~80 ns a call, and a store-buffer
        drain) in every round of the poll loop."""
        if hasattr(fd, "fileno"):
            fd = fd.fileno()
        word = _poll_word_of(poll_cb)
        events = (1 if read_cb else 0) | (4 if write_cb else 0)
        if word >= 0 and not read_cb:
            raise ValueError("a poll_cb needs a read_cb: it is what runs when the poll handler is ready")
        self._raise(self._lib.aio_set_fd_handler(self._c, fd, events, word if events else -1), fd=fd)
        if events:
            self._fd_cb[fd] = (read_cb, write_cb)
        else:
            self._fd_cb.pop(fd, None)

    # -- polling --

    def aio_poll(self, blocking: bool = True) -> bool:
        """One iteration of QEMU's aio_poll; True if any handler made progress.

        The protocol runs in C; the callbacks of what it dispatched run here
        afterwards, in order: bottom halves, fd handlers, timers."""
        n = self._lib.aio_poll(self._c, 1 if blocking else 0, self._progress)
        if n < 0:
            self._raise(n)
        progress = bool(self._progress[0])
        if n:
            self._run_events(n)
        return progress

    def _run_events(self, n):
        ev = self._lib.aio_events(self._c)
        items = [(ev[i].kind, ev[i].id, ev[i].revents) for i in range(n)]
        # A one-shot's slot is free again once claimed: take its callback now,
        # before a callback below schedules a new one-shot in the same slot.
        oneshots = {ident: self._oneshot_cb.pop(ident, None) for kind, ident, _ in items
                    if kind == _EV_BH_ONESHOT}
        first_exc = None
        for kind, ident, revents in items:
            try:
                if kind == _EV_BH:
                    cb = self._bh_cb.get(ident)
                    if cb is not None:
                        cb()
                elif kind == _EV_BH_ONESHOT:
                    cb = oneshots.get(ident)
                    if cb is not None:
                        cb()
                elif kind == _EV_FD:
                    rcb, wcb = self._fd_cb.get(ident, (None, None))
                    if rcb and revents & (0x001 | 0x008 | 0x010):  # POLLIN|POLLERR|POLLHUP
                        rcb()
                    if wcb and revents & 0x004:
                        wcb()
                elif kind == _EV_TIMER:
                    cb = self._timer_cb.get(ident)
                    if cb is not None:
                        cb()
            except BaseException as e:  # run the others: each claim is final
                if first_exc is None:
                    first_exc = e
        if first_exc is not None:
            raise first_exc

    # -- closing --

    def close(self) -> None:
        """Close (idempotent).  The owner marks the segment closed, unlinks
        it and its socket; every process unmaps it and closes its fds."""
        if self._closed:
            return
        self._closed = True
        _live.discard(self)
        if os.getpid() != self._pid:
            # A forked child inherited this object: drop our mapping only.
            self._lib.aio_ctx_close(self._c)
            return
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lib.aio_ctx_close(self._c)
        if self._owner and self._shm is not None:
            try:
                self._shm.unlink()
            except posix_ipc.ExistentialError:
                pass
            self._shm = None
            _tell_hooks("close", self._name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        role = "owner" if self._owner else "attached"
        state = "closed" if self._closed else role
        return f"<AioContext {self._name} strategy={self._info.name} {state}>"
