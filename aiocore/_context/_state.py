# AioContext's second half: the GSource path (prepare / wait / check /
# dispatch), the context lock, and reading state (counters, snapshot, poll
# state, the step log, primitives on named fields, per-BH state and native
# actions).  A mixin so that
# _aio.py keeps construction, bottom halves, timers, fd handlers and
# aio_poll; every method here is one C call (the protocol stays in C).
from __future__ import annotations

from .. import _errors as E
from .._compiler import _skeleton as SK
from ._segment import (
    COUNTER_NAMES,
    N_POLL_WORDS,
    POSITIONS,
    PRIM_OPS,
    Counters,
    PollState,
    SegmentInfo,
    Snapshot,
    segment_info,
)


class _ContextState:
    """The GSource path, the lock and state of an AioContext (a mixin)."""

    # -- bottom halves: another process's, native actions, per-BH state --

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

    # -- readiness words, polling state, ... --

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

        field: "notify_me", "notified", "bh_list", ("bh", id) (its word),
        ("bh_next", id) (its list link) or a strategy field index (0..3)."""
        if op not in PRIM_OPS:
            raise ValueError(f"unknown primitive {op!r}; known: {', '.join(PRIM_OPS)}")
        if field == "notify_me":
            f = 0
        elif field == "notified":
            f = 1
        elif field == "bh_list":
            f = 6
        elif isinstance(field, tuple) and field[0] == "bh":
            f = 100 + int(field[1])
        elif isinstance(field, tuple) and field[0] == "bh_next":
            f = 20000 + int(field[1])
        elif isinstance(field, int) and 0 <= field < 4:
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


def after_fork_in_child(live) -> None:
    """os.register_at_fork(after_in_child=...): every attached context of a
    recovery segment registers the child's own process slot, so that the
    owner watches the child's death too (aio_recovery_after_fork)."""
    for ctx in list(live):
        if not ctx._closed and not ctx._owner:
            ctx._lib.aio_recovery_after_fork(ctx._c)
