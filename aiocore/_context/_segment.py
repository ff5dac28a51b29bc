# The segment, seen from outside a context: its constants and records, the
# validated names and private socket paths, reading a header without
# attaching (aiocore info), and reclaiming the segments of dead owners
# (aiocore gc).  AioContext (_aio.py) builds on these; _aio
# re-exports every public name here, so `aiocore._context._aio.X` keeps working.
from __future__ import annotations

import os
import re
import secrets
import stat
import struct

import attrs
import posix_ipc

from .. import _errors as E
from .._compiler import _skeleton as SK


DEFAULT_STRATEGY = "unconditional"
DEFAULT_N_BH = 1024
DEFAULT_N_TIMERS = 256
NOTIFIER_EVENTFD = 1
NOTIFIER_PIPE = 2
RECOVERY_FLAG = 1  # header.flags: AIO_FLAG_RECOVERY (aio_core.h)
#: AIO_LAYOUT_VERSION of aio_core.h (3: the BH list and one-shot slots)
LAYOUT_VERSION = 3

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
    "recovery",
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

_EV_BH, _EV_FD, _EV_TIMER, _EV_BH_ONESHOT = 1, 2, 3, 4


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
    polls_no_syscall: int  # polling skeleton: aio_poll calls that made no ppoll (hooks may: selfpipe)
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
    recovery: bool = False  # the owner recovers from attached processes' deaths (aio_recovery.h)


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


# --- skeleton parameters (recorded in the header) -------------------------------------------------------

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
    from .. import _core

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
            f"{name!r} has layout version {info.layout_version}; this aiocore reads version {LAYOUT_VERSION}"
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
    from .. import _core

    return _core.ffi.string(cbuf).decode("ascii", "replace")


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
        recovery=bool(h.flags & RECOVERY_FLAG),
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
