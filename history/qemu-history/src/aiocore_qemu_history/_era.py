# What QEMU's atomic macros meant in each era, as helpers the strategies of
# that era call.  A helper method on a strategy class is inlined by aiocore's
# tracer: it leaves no trace of its own, only the primitives it emits.
#
# Until a0aa44b4 ("include/qemu/atomic.h: default to __atomic functions",
# 2016-01-28) QEMU's atomic_add/sub/or/and were gcc's __sync_fetch_and_*
# builtins, which gcc documents as full barriers: on x86 a lock-prefixed
# instruction (a fence already), on aarch64 an ldxr/stlxr loop followed by
# `dmb ish` (gcc 5, and 4.9.3 after GCC PR 65697).  aiocore's atomic_add is
# the C11 seq_cst RMW QEMU has used since a0aa44b4, which on ARMv8.0 does
# not order later loads; a 2015 RMW is therefore spelled as the RMW plus
# the barrier gcc emitted after it.  atomic_xchg was already __atomic
# (seq_cst), atomic_mb_set smp_wmb + store + smp_mb (xchg on x86): both as
# in aiocore today.
from __future__ import annotations

_SYNC = "__sync_fetch_and_* is a full barrier (QEMU's atomic.h before a0aa44b4)"


class Sync2015:
    """The RMWs of QEMU's atomic.h before a0aa44b4 (2016): __sync builtins, full barriers."""

    def sync_add(s, f, v):
        s.atomic_add(f, v)
        s.smp_mb(pairs=_SYNC)

    def sync_sub(s, f, v):
        s.atomic_sub(f, v)
        s.smp_mb(pairs=_SYNC)

    def sync_or(s, f, v):
        s.atomic_or(f, v)
        s.smp_mb(pairs=_SYNC)

    def sync_and(s, f, v):
        s.atomic_and(f, v)
        s.smp_mb(pairs=_SYNC)
