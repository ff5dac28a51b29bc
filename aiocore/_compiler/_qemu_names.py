# QEMU's spellings of the primitive vocabulary, as a strategy copied from
# today's util/async.c writes them.
#
# QEMU renamed its atomics to qatomic_* in 2020 (d73415a3), replaced
# atomic_mb_set by qatomic_set_mb and dropped qatomic_mb_read in 2023, and
# added smp_mb__before_rmw() / smp_mb__after_rmw() (ff00bed1).  A hook may use
# either spelling: each name below records exactly the primitive of the
# pre-2020 spelling, so both give the same IR, the same fingerprint and the
# same generated C (which keeps aiocore's one spelling, aio_prims.h).
#
#   qatomic_read, qatomic_set, qatomic_load_acquire, qatomic_store_release,
#   qatomic_xchg, qatomic_cmpxchg, qatomic_fetch_{add,sub,or,and},
#   qatomic_{add,sub,or,and}       the atomic_* primitive of the same name
#   qatomic_mb_set, qatomic_set_mb  atomic_mb_set: a store followed by a full
#                                  barrier (QEMU: store-release + smp_mb, or
#                                  an xchg on x86: the same to every model)
#   qatomic_mb_read                atomic_load_acquire (QEMU's definition
#                                  when C11 atomics are available)
#   event_notifier_set,
#   event_notifier_test_and_clear  event_set, event_test_and_clear
#
# smp_mb__before_rmw / smp_mb__after_rmw are primitives of their own (a full
# fence on ARM, a compiler barrier on x86; _ir.RMW_FENCE_KINDS); their pairs=
# note is optional, since they complete the RMW next to them.
#
# This module is part of the compiler room; it imports nothing.
from __future__ import annotations

#: QEMU's name -> the primitive it records.
ALIASES = {
    "qatomic_read": "atomic_read",
    "qatomic_set": "atomic_set",
    "qatomic_load_acquire": "atomic_load_acquire",
    "qatomic_store_release": "atomic_store_release",
    "qatomic_xchg": "atomic_xchg",
    "qatomic_cmpxchg": "atomic_cmpxchg",
    "qatomic_fetch_add": "atomic_fetch_add",
    "qatomic_fetch_sub": "atomic_fetch_sub",
    "qatomic_fetch_or": "atomic_fetch_or",
    "qatomic_fetch_and": "atomic_fetch_and",
    "qatomic_add": "atomic_add",
    "qatomic_sub": "atomic_sub",
    "qatomic_or": "atomic_or",
    "qatomic_and": "atomic_and",
    "qatomic_mb_set": "atomic_mb_set",
    "qatomic_set_mb": "atomic_mb_set",
    "qatomic_mb_read": "atomic_load_acquire",
    "event_notifier_set": "event_set",
    "event_notifier_test_and_clear": "event_test_and_clear",
}

#: The default note of smp_mb__{before,after}_rmw() (the C comment).
RMW_FENCE_NOTE = ("the {} RMW, which it makes a full barrier (a compiler barrier on x86, whose "
                  "RMWs are lock-prefixed; dmb ish on ARM)")
#: The default note of qatomic_set_mb / qatomic_mb_set.
SET_MB_NOTE = "a store then a full barrier (QEMU's qatomic_set_mb)"


class QemuSpellings:
    """The builder's methods under QEMU's names (mixed into _strategy._Builder)."""

    def qatomic_read(self, f):
        return self.atomic_read(f)

    def qatomic_set(self, f, v):
        self.atomic_set(f, v)

    def qatomic_load_acquire(self, f):
        return self.atomic_load_acquire(f)

    def qatomic_store_release(self, f, v):
        self.atomic_store_release(f, v)

    def qatomic_xchg(self, f, v):
        return self.atomic_xchg(f, v)

    def qatomic_cmpxchg(self, f, expected, new):
        return self.atomic_cmpxchg(f, expected, new)

    def qatomic_fetch_add(self, f, v):
        return self.atomic_fetch_add(f, v)

    def qatomic_fetch_sub(self, f, v):
        return self.atomic_fetch_sub(f, v)

    def qatomic_fetch_or(self, f, v):
        return self.atomic_fetch_or(f, v)

    def qatomic_fetch_and(self, f, v):
        return self.atomic_fetch_and(f, v)

    def qatomic_add(self, f, v):
        self.atomic_add(f, v)

    def qatomic_sub(self, f, v):
        self.atomic_sub(f, v)

    def qatomic_or(self, f, v):
        self.atomic_or(f, v)

    def qatomic_and(self, f, v):
        self.atomic_and(f, v)

    def qatomic_set_mb(self, f, v, pairs=SET_MB_NOTE):
        self.atomic_mb_set(f, v, pairs=pairs)

    def qatomic_mb_set(self, f, v, pairs=SET_MB_NOTE):
        self.atomic_mb_set(f, v, pairs=pairs)

    def qatomic_mb_read(self, f):
        return self.atomic_load_acquire(f)

    def event_notifier_set(self):
        self.event_set()

    def event_notifier_test_and_clear(self):
        return self.event_test_and_clear()

    def smp_mb__before_rmw(self, pairs=None):
        self._fence("smp_mb__before_rmw", pairs or RMW_FENCE_NOTE.format("next"))

    def smp_mb__after_rmw(self, pairs=None):
        self._fence("smp_mb__after_rmw", pairs or RMW_FENCE_NOTE.format("previous"))
