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
# Python sets things up, runs callbacks and reports; every protocol sequence
# is one call into the strategy's compiled module (see _csrc/aio_core.c).
# The hot calls (bh_schedule, notify) are bound per instance to closures over
# the C function, so that scheduling from Python costs about one cffi call.
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

import array
import atexit
import errno
import os
import re
import secrets
import socket
import stat
import struct
import threading
import weakref

import attrs
import posix_ipc

from . import _errors as E
from . import _skeleton as SK
from ._plugins import load_strategy

DEFAULT_STRATEGY = "unconditional"
DEFAULT_N_BH = 1024
DEFAULT_N_TIMERS = 256
NOTIFIER_EVENTFD = 1
NOTIFIER_PIPE = 2

COUNTER_NAMES = (
    "polls",
    "blocking_polls",
    "wakeups",
    "event_sets",
    "event_clear_calls",
    "event_clears",
    "bh_dispatches",
    "spurious_wakeups",
    "notifies",
    "infinite_waits",
    "timer_fires",
    "fd_dispatches",
    "gsource_iterations",
    "rescues",
    "foreign_polls",
    "recoveries",
    "polls_no_syscall",
    "poll_successes",
    "poll_grows",
    "poll_shrinks",
)

POSITIONS = (
    "idle",
    "poll_begin",
    "compute_timeout",
    "wait_timed",
    "wait_infinite",
    "poll_end",
    "dispatch",
    "prepare",
    "check",
    "polling",
)

#: aio_prim op numbers (see aio_core.c), by primitive name.
PRIM_OPS = {
    "atomic_read": 0,
    "atomic_set": 1,
    "atomic_load_acquire": 2,
    "atomic_store_release": 3,
    "atomic_xchg": 4,
    "atomic_cmpxchg": 5,
    "atomic_fetch_add": 6,
    "atomic_fetch_sub": 7,
    "atomic_fetch_or": 8,
    "atomic_fetch_and": 9,
    "atomic_add": 10,
    "atomic_sub": 11,
    "atomic_or": 12,
    "atomic_and": 13,
    "atomic_mb_set": 14,
    "smp_mb": 15,
    "smp_wmb": 16,
    "smp_rmb": 17,
}

_NAME_RE = re.compile(r"^/?[A-Za-z0-9._-]{1,200}$")
_HEADER_BYTES = 256
_HELLO = b"AIOC1"

_EV_BH, _EV_FD, _EV_TIMER = 1, 2, 3


@attrs.frozen
class Counters:
    """A snapshot of a context's counters (kept in C, in the segment)."""

    polls: int
    blocking_polls: int
    wakeups: int
    event_sets: int
    event_clear_calls: int
    event_clears: int
    bh_dispatches: int
    spurious_wakeups: int
    notifies: int
    infinite_waits: int
    timer_fires: int
    fd_dispatches: int
    gsource_iterations: int
    rescues: int
    foreign_polls: int
    recoveries: int  # a dead process's traces undone (aio_recovery.h)
    polls_no_syscall: int  # polling skeleton: aio_poll calls that made no ppoll
    poll_successes: int  # polling skeleton: busy-poll phases that found work
    poll_grows: int  # adjust_polling_time grew poll_ns
    poll_shrinks: int  # adjust_polling_time shrank poll_ns
    bh_schedules: int  # 0->1 transitions, summed over bottom halves
    bh_cancels: int  # 0->1 schedules undone by bh_cancel/bh_delete
    bh_pending: int  # bottom halves scheduled right now

    @property
    def lost_work(self) -> int:
        """0->1 schedules neither dispatched, cancelled nor still pending."""
        return self.bh_schedules - self.bh_dispatches - self.bh_cancels - self.bh_pending


@attrs.frozen
class SegmentInfo:
    """What a segment's header says (see `aiocore info`)."""

    name: str
    size: int
    layout_version: int
    owner_pid: int
    owner_alive: bool
    state: str
    created_ns: int
    strategy: str
    fingerprint: str
    n_bh: int
    n_timers: int
    notifier: str
    skeleton: str = SK.DEFAULT_SKELETON
    poll_max_ns: int = 0
    poll_grow: int = 0
    poll_shrink: int = 0


@attrs.frozen
class PollState:
    """The polling skeleton's adaptive state (owner block of the segment)."""

    skeleton: str
    poll_max_ns: int
    poll_ns: int  # the current busy-poll time, adjusted after every aio_poll
    need_wait: bool  # an fd handler has no poll handler: every aio_poll makes a syscall


@attrs.frozen
class Snapshot:
    """The protocol state at one instant (for the watchdog and reports)."""

    notify_me: int
    notified: int
    notifier_readable: bool
    position: str
    since_ns: int
    wait_timeout_ns: int
    poll_seq: int
    bh_hwm: int


# --- names, paths, processes ------------------------------------------------


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.strip("/") in (".", ".."):
        raise ValueError(
            f"bad context name {name!r}: use 1-200 letters, digits, '.', '_' or '-' "
            "(an optional leading '/')"
        )
    return name if name.startswith("/") else "/" + name


def _new_name() -> str:
    # AIOCORE_NAME_PREFIX lets a test run (one per xdist worker) recognise
    # its own segments; the random part keeps names unguessable.
    prefix = os.environ.get("AIOCORE_NAME_PREFIX", "aiocore-")
    return _check_name("/" + prefix.strip("/") + secrets.token_hex(10))


def socket_dir() -> str:
    """The private directory holding the owners' fd-passing sockets."""
    uid = os.getuid()
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and os.path.isdir(run) and os.access(run, os.W_OK):
        d = os.path.join(run, "aiocore")
    else:
        d = f"/tmp/aiocore-{uid}"
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise E.AioError(
            f"refusing to use {d} for aiocore's sockets: it must be a real directory "
            f"owned by uid {uid} with mode 0700 (is {oct(st.st_mode & 0o777)}, uid {st.st_uid})"
        )
    return d


def socket_path(name: str) -> str:
    return os.path.join(socket_dir(), name.lstrip("/") + ".sock")


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of pid (clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def owner_alive(pid: int, start: int) -> bool:
    """Is the process that created a segment still running (not a reused pid)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    st = process_start_time(pid)
    return st is None or start == 0 or st == start


def _core():
    from . import _core

    return _core.ffi, _core.lib


def _peek(name: str):
    """Open a segment read-only enough to validate its header.

    Returns (shm, size, info) with shm open; raises a specific error."""
    try:
        shm = posix_ipc.SharedMemory(name)
    except posix_ipc.ExistentialError:
        raise E.SegmentNotFound(f"no aiocore context named {name!r} (no such shared memory segment)") from None
    except posix_ipc.PermissionsError as e:
        raise E.AioError(f"cannot open context {name!r}: {e} (segments are private to their user)") from None
    try:
        size = os.fstat(shm.fd).st_size
        buf = os.pread(shm.fd, _HEADER_BYTES, 0)
        ffi, lib = _core()
        info = ffi.new("aio_info *")
        r = lib.aio_peek(buf, len(buf), size, info)
        if r != 0:
            raise _segment_error(name, r, info, size)
        return shm, size, info
    except BaseException:
        shm.close_fd()
        raise


def _segment_error(name, r, info, size):
    if r == -8:
        return E.BadMagic(
            f"{name!r} is not an aiocore context (magic {info.magic:#010x}, expected 0x434f4941)"
        )
    if r == -9:
        return E.LayoutMismatch(
            f"{name!r} has layout version {info.layout_version}; this aiocore reads version 2"
        )
    if r == -10:
        return E.TruncatedSegment(
            f"{name!r} is truncated: {size} bytes, its header says {info.size}"
            if info.size
            else f"{name!r} is truncated: {size} bytes, too small for a header"
        )
    if r == -11:
        return E.CorruptSegment(
            f"{name!r} has a corrupt header (checksum, layout or sizes do not add up; "
            f"segment is {size} bytes)"
        )
    return E.BadSegment(f"{name!r}: header rejected (code {r})")


def _decode(cbuf) -> str:
    from . import _core

    return _core.ffi.string(cbuf).decode("ascii", "replace")


# --- the fd server (owner side) ----------------------------------------------


class _FdServer:
    """Hands the notifier fds to attaching processes of the same user."""

    def __init__(self, path, fds, fingerprint, ident=(0, 0)):
        self.path = path
        self.fds = fds
        # ident: (st_dev, st_ino) of the owner's segment, so that an attacher
        # can tell the segment it opened by name is the one the owner maps
        # (not a copy or another context put in its place under that name).
        self.hello = _HELLO + fingerprint.encode().ljust(24, b"\0") + struct.pack("<QQ", *ident)
        try:
            os.unlink(path)  # stale: our segment name was created O_CREX
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(64)
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._serve, name=f"aiocore-fds {path}", daemon=True)
        self.thread.start()

    def _serve(self):
        import select

        uid = os.getuid()
        while True:
            try:
                r, _, _ = select.select([self.sock, self.stop_r], [], [])
            except (OSError, ValueError):
                return
            if self.stop_r in r:
                return
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                    _pid, peer_uid, _gid = struct.unpack("3i", cred)
                    if peer_uid != uid:
                        continue
                    socket.send_fds(conn, [self.hello], self.fds)
                except OSError:
                    continue

    def close(self):
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _receive_fds(name: str, timeout: float = 5.0):
    path = socket_path(name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise E.OwnerGone(
                f"the owner of {name!r} does not answer on {path}: it has exited or closed the context"
            ) from None
        msg, fds, _flags, _addr = socket.recv_fds(s, 64, 4)
    except socket.timeout:
        raise E.OwnerGone(f"the owner of {name!r} did not hand over the notifier within {timeout}s") from None
    finally:
        s.close()
    if not msg.startswith(_HELLO) or len(fds) != 3 or len(msg) != len(_HELLO) + 40:
        for fd in fds:
            os.close(fd)
        raise E.BadSegment(f"{path} did not answer like an aiocore owner")
    fp = msg[len(_HELLO) : len(_HELLO) + 24].rstrip(b"\0").decode()
    return fp, struct.unpack("<QQ", msg[len(_HELLO) + 24 :]), fds


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


@atexit.register
def _close_all():
    for ctx in list(_live):
        try:
            ctx.close()
        except Exception:
            pass


# --- skeletons and builds -------------------------------------------------------

N_POLL_WORDS = 16  # AIO_NPOLL_WORDS


def _check_skeleton(skeleton) -> int:
    try:
        return SK.SKELETONS.index(SK.check_skeleton(skeleton))
    except ValueError as e:
        raise E.SkeletonError(str(e)) from None


def _check_poll_params(skeleton, poll_max_ns, grow, shrink):
    """(skeleton id, poll_max_ns) or SkeletonError naming the bad value."""
    sid = _check_skeleton(skeleton)
    if skeleton != "polling":
        if poll_max_ns is not None:
            raise E.SkeletonError(
                f"poll_max_ns applies to the 'polling' skeleton only (skeleton={skeleton!r})")
        return sid, 0
    if poll_max_ns is None:
        poll_max_ns = SK.DEFAULT_POLL_MAX_NS
    if isinstance(poll_max_ns, bool) or not isinstance(poll_max_ns, int):
        raise E.SkeletonError(f"poll_max_ns must be an int (ns), not {poll_max_ns!r}")
    if poll_max_ns < 0:
        raise E.SkeletonError(f"poll_max_ns must be >= 0 (0 disables polling), not {poll_max_ns}")
    if poll_max_ns > SK.MAX_POLL_MAX_NS:
        raise E.SkeletonError(
            f"poll_max_ns={poll_max_ns} is absurd: at most {SK.MAX_POLL_MAX_NS} ns "
            "(a poller spinning a second per aio_poll is a configuration mistake)")
    for what, v in (("poll_grow", grow), ("poll_shrink", shrink)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1024:
            raise E.SkeletonError(f"{what} must be an int in [0, 1024] (0 = QEMU's default), not {v!r}")
    if grow == 1:
        raise E.SkeletonError("poll_grow=1 would never grow poll_ns (use 0 for QEMU's default of 2)")
    return sid, poll_max_ns


def _poll_word_of(poll_cb) -> int:
    if poll_cb is None:
        return -1
    if (isinstance(poll_cb, tuple) and len(poll_cb) == 2 and poll_cb[0] == "word"
            and isinstance(poll_cb[1], int) and 0 <= poll_cb[1] < N_POLL_WORDS):
        return poll_cb[1]
    if callable(poll_cb):
        raise TypeError(
            "poll_cb must be a native poll handler, e.g. ('word', i): a Python callable "
            "would run Python in every round of the busy-poll loop")
    raise ValueError(f"poll_cb must be None or ('word', i) with 0 <= i < {N_POLL_WORDS}, not {poll_cb!r}")


def _load_build(strategy, step_log):
    """(info, ffi, lib): the strategy's module, or its step-log build."""
    if not step_log:
        return load_strategy(strategy)
    from ._build import load_cached
    from ._plugins import c_source

    info = load_strategy(strategy)[0]
    fp = info.ir.fingerprint if info.ir is not None else "handwritten"
    ffi, lib = load_cached(f"{info.name}-{fp}", c_source(info), extra_cflags=("-DAIO_STEP_LOG",))
    return info, ffi, lib


# --- AioContext ----------------------------------------------------------------


class AioContext:
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
        poll-shrink).  The strategy must declare the skeleton."""
        name = _new_name() if name is None else _check_name(name)
        if notifier not in ("eventfd", "pipe"):
            raise ValueError(f"notifier must be 'eventfd' or 'pipe', not {notifier!r}")
        for what, v, hi in (("n_bh", n_bh, 8192), ("n_timers", n_timers, 2048)):
            if not isinstance(v, int) or not (1 if what == "n_bh" else 0) <= v <= hi:
                raise ValueError(f"{what} must be an int in [{1 if what == 'n_bh' else 0}, {hi}], not {v!r}")
        skel_id, poll_max_ns = _check_poll_params(skeleton, poll_max_ns, poll_grow, poll_shrink)
        info, ffi, lib = _load_build(strategy, _step_log)
        if skeleton not in info.skeletons and not _undeclared_ok:
            raise E.SkeletonError(
                f"strategy {info.name!r} does not declare the {skeleton!r} skeleton "
                f"(it declares: {', '.join(info.skeletons)}); `aiocore check --skeleton {skeleton}` "
                "shows why a strategy breaks there"
            )
        self = cls._new(name, info, ffi, lib, owner=True)
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600)
        except posix_ipc.ExistentialError:
            raise E.AioError(f"a shared memory segment named {name!r} already exists") from None
        try:
            kind = NOTIFIER_EVENTFD if notifier == "eventfd" else NOTIFIER_PIPE
            start = process_start_time(os.getpid()) or 0
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
            raise
        shm.close_fd()
        self._shm = shm
        self._bind_fast_paths()
        _live.add(self)
        _tell_hooks("create", name)
        return self

    @classmethod
    def attach(cls, name: str, *, strategy: str | None = None, skeleton: str | None = None,
               timeout: float = 5.0, _step_log: bool = False) -> "AioContext":
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
            info, ffi, lib = _load_build(seg_strategy, _step_log)
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
        # Per-instance closures: one cffi call plus a test of its result.
        # The call takes a single int64 handle (context slot and key in the
        # upper bits, see aio_handle_base in aio_core.c): cffi converts one
        # int argument on its fastest path, while a pointer plus an int
        # costs about as much again as the call itself.  Measured by
        # `aiocore bench` (bh_schedule from Python vs an empty cffi call).
        err = self._raise
        base = self._lib.aio_handle_base(self._c)
        if base < 0:
            raise E.Full("too many AioContext objects in this process (4096)")
        schedule_h, notify_h = self._lib.aio_bh_schedule_h, self._lib.aio_notify_h

        def bh_schedule(bh_id):
            r = schedule_h(base + bh_id)
            if r:
                err(r, bh=bh_id)

        def notify():
            r = notify_h(base)
            if r:
                err(r)

        bh_schedule.__doc__ = AioContext.bh_schedule.__doc__
        notify.__doc__ = AioContext.notify.__doc__
        self.bh_schedule = bh_schedule
        self.notify = notify

    # -- errors --

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
        # Replaced per instance by a closure (see _bind_fast_paths).
        raise NotImplementedError  # pragma: no cover

    def notify(self) -> None:
        """aio_notify: wake the poller if it sleeps (the strategy's notify)."""
        raise NotImplementedError  # pragma: no cover

    def bh_cancel(self, bh_id: int) -> None:
        """Unschedule a bottom half if it is pending (any process)."""
        self._raise(self._lib.aio_bh_cancel(self._c, bh_id), bh=bh_id)

    def bh_delete(self, bh_id: int) -> None:
        """Delete a bottom half (owner only); a pending schedule is dropped."""
        self._raise(self._lib.aio_bh_delete(self._c, bh_id), bh=bh_id)
        self._bh_cb.pop(bh_id, None)

    def bh_bind(self, bh_id: int, callback) -> None:
        """Give this process a callback for a BH it may claim as a foreign poller."""
        st = self._ffi.new("uint64_t[4]")
        state = self._lib.aio_bh_stat(self._c, bh_id, st)
        self._raise(state, bh=bh_id)
        if state != 1:
            raise E.BadBottomHalf(f"bottom half {bh_id} is not allocated in {self._name!r}")
        self._bh_cb[bh_id] = callback

    def bh_set_action(self, bh_id: int, action: int, arg: int = 0) -> None:
        """Run a native action (aio_drivers.c) instead of a Python callback."""
        self._raise(self._lib.aio_bh_set_action(self._c, bh_id, action, arg), bh=bh_id)

    def bh_stats(self, bh_id: int) -> dict:
        """Per-BH accounting: schedules (0->1), dispatches, cancels, scheduled."""
        st = self._ffi.new("uint64_t[4]")
        self._raise(self._lib.aio_bh_stat(self._c, bh_id, st), bh=bh_id)
        return dict(schedules=st[0], dispatches=st[1], cancels=st[2], scheduled=st[3])

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

    def poll_word_add(self, word: int, n: int = 1) -> None:
        """Post n to readiness word ``word`` (any process; release order)."""
        if not isinstance(word, int) or not 0 <= word < N_POLL_WORDS:
            raise ValueError(f"poll word must be an int in [0, {N_POLL_WORDS}), not {word!r}")
        self._raise(self._lib.aio_poll_word_add(self._c, word, n & 0xFFFFFFFF))

    def poll_state(self) -> PollState:
        """The skeleton, poll_max_ns and the current adaptive poll_ns."""
        s = self._i64
        self._raise(self._lib.aio_poll_state(self._c, s))
        return PollState(skeleton=SK.SKELETONS[int(s[0])], poll_max_ns=int(s[1]),
                         poll_ns=int(s[2]), need_wait=bool(s[3]))

    @property
    def skeleton(self) -> str:
        return self.poll_state().skeleton

    def _steps(self) -> list[str]:
        """The named steps the C skeleton passed since the last call (a
        context created with _step_log=True; the log is per process)."""
        buf = self._ffi.new("int[4096]")
        n = self._lib.aio_step_log_read(buf, 4096)
        if n < 0:
            raise E.AioError("this context was not created from a step-log build (_step_log=True)")
        names = {v: k for k, v in SK.STEP_IDS.items()}
        return [names.get(buf[i], f"?{buf[i]}") for i in range(n)]

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
        first_exc = None
        for kind, ident, revents in items:
            try:
                if kind == _EV_BH:
                    cb = self._bh_cb.get(ident)
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

    # -- the GSource path --

    def prepare(self) -> tuple[bool, int | None]:
        """glib's prepare: (ready, timeout in ns or None for infinite)."""
        t = self._i64
        r = self._lib.aio_gsource_prepare(self._c, t)
        self._raise(r)
        return bool(r), (None if t[0] < 0 else int(t[0]))

    def wait(self, timeout_ns: int | None) -> None:
        """The wait glib does between prepare and check, on this context's fds."""
        r = self._lib.aio_gsource_wait(self._c, -1 if timeout_ns is None else timeout_ns)
        self._raise(r)

    def check(self) -> bool:
        """glib's check: is anything ready to dispatch?"""
        r = self._lib.aio_gsource_check(self._c)
        self._raise(r)
        return bool(r)

    def dispatch(self) -> bool:
        """glib's dispatch: run what is ready; True if progress."""
        n = self._lib.aio_gsource_dispatch(self._c, self._progress)
        if n < 0:
            self._raise(n)
        progress = bool(self._progress[0])
        if n:
            self._run_events(n)
        return progress

    def gsource_iteration(self, may_block: bool = True) -> bool:
        """prepare, wait, check, dispatch: one g_main_context_iteration."""
        ready, timeout = self.prepare()
        self.wait(0 if ready or not may_block else timeout)
        self.check()
        return self.dispatch()

    # -- the context lock --

    def acquire(self) -> None:
        """Take the recursive cross-process context lock (QEMU's RFifoLock)."""
        self._raise(self._lib.aio_acquire(self._c))

    def release(self) -> None:
        self._raise(self._lib.aio_release(self._c))

    # -- state --

    def counters(self) -> Counters:
        """The counters, from the segment (any attached process)."""
        u = self._u64
        self._raise(self._lib.aio_counters(self._c, u, len(COUNTER_NAMES)))
        vals = [int(u[i]) for i in range(len(COUNTER_NAMES))]
        self._raise(self._lib.aio_bh_totals(self._c, u))
        return Counters(*vals, bh_schedules=int(u[0]), bh_cancels=int(u[2]), bh_pending=int(u[3]))

    def snapshot(self) -> Snapshot:
        s = self._i64
        self._raise(self._lib.aio_snapshot(self._c, s))
        pos = int(s[3])
        return Snapshot(
            notify_me=int(s[0]),
            notified=int(s[1]),
            notifier_readable=bool(s[2]),
            position=POSITIONS[pos] if 0 <= pos < len(POSITIONS) else f"?{pos}",
            since_ns=int(s[4]),
            wait_timeout_ns=int(s[5]),
            poll_seq=int(s[6]),
            bh_hwm=int(s[7]),
        )

    def check_owner(self) -> None:
        """Raise OwnerGone if the owner closed the context or exited (one
        non-blocking poll of its pidfd).  Attached processes also check this
        every 256 bh_schedule/notify calls, and while waiting in acquire()
        or a foreign aio_poll."""
        self._raise(self._lib.aio_check_owner(self._c))

    def rescue(self) -> None:
        """Wake the owner through a channel outside the protocol (watchdog)."""
        self._raise(self._lib.aio_rescue(self._c))

    def prim(self, op: str, field: str | int, a: int = 0, b: int = 0) -> int:
        """Run one primitive of the vocabulary on a named shared field.

        field: "notify_me", "notified", ("bh", id) or a strategy field index."""
        if op not in PRIM_OPS:
            raise ValueError(f"unknown primitive {op!r}; known: {', '.join(PRIM_OPS)}")
        if field == "notify_me":
            f = 0
        elif field == "notified":
            f = 1
        elif isinstance(field, tuple) and field[0] == "bh":
            f = 100 + int(field[1])
        elif isinstance(field, int):
            f = 2 + field
        else:
            raise ValueError(f"unknown field {field!r}")
        out = self._ffi.new("uint32_t *")
        r = self._lib.aio_prim(self._c, PRIM_OPS[op], f, a & 0xFFFFFFFF, b & 0xFFFFFFFF, out)
        if r == -15:
            raise ValueError(f"field {field!r} is out of range")
        self._raise(r)
        return int(out[0])

    def info(self) -> SegmentInfo:
        return segment_info(self._name)

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


# --- segments by name (info, gc) -------------------------------------------------


def segment_info(name: str) -> SegmentInfo:
    """Read and validate a segment's header without attaching."""
    name = _check_name(name)
    shm, size, h = _peek(name)
    shm.close_fd()
    return SegmentInfo(
        name=name,
        size=size,
        layout_version=h.layout_version,
        owner_pid=h.owner_pid,
        owner_alive=owner_alive(h.owner_pid, h.owner_start) and h.state == 1,
        state={1: "live", 2: "closed"}.get(h.state, str(h.state)),
        created_ns=h.created_ns,
        strategy=_decode(h.strategy),
        fingerprint=_decode(h.fingerprint),
        n_bh=h.n_bh,
        n_timers=h.n_timers,
        notifier={1: "eventfd", 2: "pipe"}.get(h.notifier_kind, "?"),
        skeleton=SK.SKELETONS[h.skeleton] if h.skeleton < len(SK.SKELETONS) else str(h.skeleton),
        poll_max_ns=h.poll_max_ns,
        poll_grow=h.poll_grow,
        poll_shrink=h.poll_shrink,
    )


def read_counters(name: str) -> dict:
    """Counters of a segment by name, without the notifier (for `aiocore info`)."""
    import mmap

    name = _check_name(name)
    shm, size, h = _peek(name)
    try:
        m = mmap.mmap(shm.fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        shm.close_fd()
    try:
        base = _core()[1].aio_counter_offset()
        vals = {}
        for i, n in enumerate(COUNTER_NAMES):
            (vals[n],) = struct.unpack_from("<Q", m, base + 64 * i)
        (vals["poll_ns"],) = struct.unpack_from("<q", m, _core()[1].aio_poll_ns_offset())
        return vals
    finally:
        m.close()


def list_segments() -> list[str]:
    """Names of the aiocore-looking segments in /dev/shm (by magic)."""
    out = []
    try:
        entries = os.listdir("/dev/shm")
    except OSError:
        return out
    for e in sorted(entries):
        p = os.path.join("/dev/shm", e)
        try:
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                continue
            with open(p, "rb") as f:
                magic = f.read(4)
        except OSError:
            continue
        if magic == b"AIOC":
            out.append("/" + e)
    return out


def gc_segments(dry_run: bool = False, prefix: str | None = None) -> list[tuple[str, str]]:
    """Unlink segments whose owner is dead (or that it closed); returns (name, why).

    ``prefix`` limits it to names starting with it (with or without '/')."""
    done = []
    want = None if prefix is None else "/" + prefix.lstrip("/")
    for name in list_segments():
        if want is not None and not name.startswith(want):
            continue
        try:
            info = segment_info(name)
        except E.SegmentNotFound:
            continue
        except E.BadSegment as e:
            why = f"unreadable header ({e})"
            if not dry_run:
                _unlink(name)
            done.append((name, why))
            continue
        if info.owner_alive:
            continue
        why = "owner closed it" if info.state == "closed" else f"owner pid {info.owner_pid} is gone"
        if not dry_run:
            reclaim(name)
        done.append((name, why))
    return done


def reclaim(name):
    """Unlink a segment and its owner's socket (the owner must be gone)."""
    _unlink(name)
    try:
        os.unlink(socket_path(name))
    except (FileNotFoundError, E.AioError):
        pass


def _unlink(name):
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        pass
