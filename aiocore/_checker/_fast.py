# The search of _search.py with its loop in C (_core_c.py): the same states,
# discovered in the same order with the same parents, so the same verdicts
# and the same shortest counterexamples; only the bookkeeping per state
# (building each successor, hashing it, the visited set, the parent links)
# is done in C.  Every move is still computed by the Explorer in Python, once
# per memo key (Explorer.memo_moves: keyed on what the moves touch), when C
# asks for it (see _core_c.py).
#
# The module is compiled once with cffi into the cache directory of
# aiocore._compiler._build (keyed by the source's digest).  Without a C compiler, or
# for a program C cannot take (more than 16 processes, locations beyond 64),
# the Python loop runs instead: available() says which.
from __future__ import annotations

import hashlib
import sys
import time

from . import _core_c

(R_LAYER, R_MISS_MOVES, R_MISS_COMMIT, R_MISS_PINFO, R_TERMINAL, R_VIOLATION, R_CHECK, R_NOMEM,
 R_WIDE) = range(9)


NO_LOC = 0xFFFFFFFF


class TooWide(Exception):
    """The program's ids do not pack into 63 bits: the Python loop must run it."""


_lib = None
_why_not = None


def _load():
    """(ffi, lib) of the compiled core, building it on first use; None if impossible."""
    global _lib, _why_not
    if _lib is not None or _why_not is not None:
        return _lib
    try:
        from .._compiler import _build

        digest = hashlib.sha256((_core_c.CDEF + _core_c.SOURCE + sys.version).encode()).hexdigest()[:16]
        modname = f"_aiocore_checker_{digest}"
        def compile_ffi(tmp):
            from cffi import FFI

            ffi = FFI()
            ffi.cdef(_core_c.CDEF)
            ffi.set_source(modname, _core_c.SOURCE, extra_compile_args=["-O2", "-std=gnu11"])
            return ffi.compile(tmpdir=str(tmp), verbose=False)

        m = _build.import_cached(_build.cache_dir() / f"checker-{digest}", modname, compile_ffi,
                                 lambda: RuntimeError("no C compiler"))
        _lib = (m.ffi, m.lib)
    except Exception as e:  # no compiler, no cffi backend: the Python loop does it
        _why_not = f"{type(e).__name__}: {e}"
    return _lib


def available(ex=None) -> bool:
    """True if the C loop can run (this program, if given)."""
    if ex is not None and (ex.n > 16 or ex.L > 64):
        return False
    return _load() is not None


def why_not() -> str | None:
    _load()
    return _why_not


class _Handle:
    """Owns one chk context (freed when the last result using it is gone)."""

    def __init__(self, ffi, lib, n, arm):
        self.ffi, self.lib = ffi, lib
        self.c = lib.chk_new(n, arm)
        if self.c == ffi.NULL:
            raise MemoryError("the checker's C core could not allocate its tables")
        self.W = n + 1
        self._out = ffi.new("uint32_t[]", n + 1)

    def __del__(self):
        c, self.c = getattr(self, "c", None), None
        if c is not None:
            self.lib.chk_free(c)

    def state(self, idx):
        self.lib.chk_state(self.c, idx, self._out)
        return tuple(self._out)


class CParents:
    """The parent links kept in C, read like the dict of _search.py."""

    def __init__(self, h, count):
        self.h = h
        self.count = count
        self._index = {}

    def index(self, state):
        k = self._index.get(state)
        if k is None:
            for j in range(self.count):  # only for states handed out by index below
                if self.h.state(j) == state:
                    k = j
                    break
            else:
                raise KeyError(state)
            self._index[state] = k
        return k

    def state(self, idx):
        s = self.h.state(idx)
        self._index[s] = idx
        return s

    def path_to(self, state):
        lib, c = self.h.lib, self.h.c
        k = self.index(state)
        out = []
        while True:
            out.append(self.state(k))
            p = lib.chk_parent(c, k)
            if p == 0xFFFFFFFF:
                break
            k = p
        out.reverse()
        return out

    def as_dict(self):
        lib, c = self.h.lib, self.h.c
        states = [self.h.state(k) for k in range(self.count)]
        out = {}
        for k, s in enumerate(states):
            p = lib.chk_parent(c, k)
            out[s] = None if p == 0xFFFFFFFF else states[p]
        return out

    def __iter__(self):
        return iter(self.as_dict())

    def __len__(self):
        return self.count

    def __contains__(self, state):
        try:
            self.index(state)
        except KeyError:
            return False
        return True


def search(ex, *, deadline=None, max_memory=None, narrow=None, progress=None):
    """_search.search, with the loop in C (same result).  ``narrow`` (tests):
    start every id position that many bits wide, to exercise re-packing."""
    from ._search import MEMORY_CHECK_EVERY, ExploreResult, rss_bytes

    ffi, lib = _load()
    n, arm = ex.n, bool(getattr(ex, "window", False)) and not ex.lse
    h = _Handle(ffi, lib, n, arm)
    c = h.c
    if narrow is not None and lib.chk_narrow(c, narrow) != 0:
        raise ValueError(f"cannot start {narrow} bits wide")
    t0 = time.monotonic()
    init = ex.initial()
    if lib.chk_add_initial(c, ffi.new("uint32_t[]", list(init))) != 0:
        raise MemoryError("the checker's C core ran out of memory")
    found = {}
    via = {}  # the double dispatch's target -> the state it was made from
    bads = [None]  # explanation of each "bad" move (index 0: none)
    bad_index = {}
    pushed = 0
    miss = ffi.new("uint32_t[6]")
    batch = ffi.new("uint32_t[]", 5 * 256)
    mbuf = ffi.new("uint32_t[]", 5 * 64)  # one fill's moves, handed to chk_moves
    viol = ffi.new("uint64_t[3]")  # target, explanation, the state it was made from
    done_pcs = ex.done_pcs
    # done with an empty buffer, and no "leave" move there: no moves at all (idle, chk_pinfo)
    exits = [P.exits for P in ex.prog.procs]
    PR = ex.PR

    def push_pinfo():
        nonlocal pushed
        for pid in range(pushed, len(PR)):
            pc, _env, buf, _st = PR[pid]
            resv = ex.resv_mask(buf) if arm else 0
            quiet = 0
            if not buf:
                for q in range(n):
                    if pc in done_pcs[q]:
                        quiet |= (1 << q if q else 0) | (0 if pc in exits[q] else 1 << (32 + q))
            lib.chk_pinfo(c, pid, resv, quiet)
        pushed = len(PR)

    def fill_moves(i, x, sh, resv_mask):
        nonlocal mbuf
        resv = tuple(l for l in range(ex.L) if resv_mask >> l & 1) if resv_mask else ()
        flat = []
        for sh2, pid2, _commit, bad, _info in ex.memo_moves(i, x, sh, resv):
            b = 0
            if bad:
                b = bad_index.get(bad)
                if b is None:
                    b = bad_index[bad] = len(bads)
                    bads.append(bad)
            flat += (sh2, pid2, NO_LOC, 0, b)
        if len(flat) > len(mbuf):
            mbuf = ffi.new("uint32_t[]", 2 * len(flat))
        mbuf[0:len(flat)] = flat
        r = lib.chk_moves(c, i, x, sh, resv_mask, len(flat) // 5, mbuf)
        if r != 0:
            raise MemoryError("the checker's C core ran out of memory (moves)")

    index = {}

    def known(idx):
        s = h.state(idx)
        index[s] = idx
        return s

    push_pinfo()
    stopped_by = None
    check_every = MEMORY_CHECK_EVERY if max_memory else None
    if check_every:
        lib.chk_set_check_at(c, check_every)
    peak = 0
    while True:
        code = lib.chk_run(c)
        if code == R_LAYER:
            count = lib.chk_count(c)
            if stopped_by is None:
                if count > ex.max_states:
                    stopped_by = "max-states"
                elif deadline is not None and time.monotonic() > deadline:
                    stopped_by = "max-seconds"
            if count == lib.chk_layer_end(c) or stopped_by is not None:
                break
            lib.chk_next_layer(c)
            if progress is not None:
                progress(count)
        elif code == R_MISS_MOVES:  # the misses gathered ahead, in order (chk_search.c, gather)
            for k in range(lib.chk_batch(c, batch)):
                b = batch[5 * k:5 * k + 5]
                fill_moves(b[0], b[1], b[2], b[3] | (b[4] << 32))
                if pushed < len(PR):
                    push_pinfo()
        elif code == R_MISS_COMMIT:
            lib.chk_miss(c, miss)
            q, x, loc, old = miss[0], miss[1], miss[2], miss[3]
            y = ex.smemo.get((q, x, loc, old))
            if y is None:
                y = ex.stale_after_commit(q, x, loc, old)
            if lib.chk_commit(c, q, x, loc, old, y) != 0:
                raise MemoryError("the checker's C core ran out of memory (commits)")
            push_pinfo()
        elif code == R_MISS_PINFO:
            push_pinfo()
        elif code == R_TERMINAL:
            s = known(lib.chk_current(c))
            t = ex.classify_terminal(s)
            if t is not None and t[0] not in found:
                found[t[0]] = (s, t[1])
            lib.chk_ack_terminal(c)
        elif code == R_VIOLATION:
            if lib.chk_resolve(c) != 0:
                raise MemoryError("the checker's C core ran out of memory (resolve)")
            lib.chk_violation(c, viol)
            found["lost-work"] = (known(viol[0]), bads[viol[1]])
            via[found["lost-work"][0]] = known(viol[2])
            break
        elif code == R_CHECK:
            count = lib.chk_count(c)
            lib.chk_set_check_at(c, count + check_every)
            peak = max(peak, rss_bytes())
            if peak > max_memory:
                stopped_by = "max-memory"
                break
        elif code == R_WIDE:
            raise TooWide()
        elif code == R_NOMEM:
            stopped_by = "max-memory"  # malloc failed: the machine's memory is the limit
            break
        else:  # pragma: no cover
            raise RuntimeError(f"checker core: unexpected return {code}")
    count = lib.chk_count(c)
    parents = CParents(h, count)
    parents._index.update(index)
    cycle = None
    if stopped_by is None and "lost-work" not in found:
        cyc = None
        if lib.chk_nedges(c):  # the lasso of _search.find_cycle, found in C (the same one)
            if lib.chk_resolve(c) != 0:
                raise MemoryError("the checker's C core ran out of memory (resolve)")
            start = lib.chk_cycle_start(c)
            if start == -2:
                raise MemoryError("the checker's C core ran out of memory (cycle)")
            if start >= 0:
                path, at = [], {}
                cur = start
                while cur not in at:
                    at[cur] = len(path)
                    path.append(cur)
                    cur = lib.chk_cycle_next(c, cur)
                cyc = (start, path, at[cur])
        if cyc is not None:
            start, path, k = cyc
            cycle = (parents.state(start), [parents.state(x) for x in path], k)
            found["busy-loop"] = (cycle[0], "after the last notification the home poller never "
                                  "sleeps again: the loop above repeats forever")
    r = ExploreResult(ex, parents, found, cycle, count, lib.chk_transitions(c),
                      time.monotonic() - t0, stopped_by, peak, via)
    r.engine = "c"
    return r
