/*
 * aio_prims.h -- QEMU's atomic vocabulary, on 32-bit fields of the segment.
 *
 * Each primitive has exactly the C11 ordering DESIGN.md's table gives it,
 * spelled with GCC's __atomic builtins so that the compiler, not a hand-picked
 * instruction, decides what the ordering costs on this machine:
 *
 *   atomic_read / atomic_set              relaxed load / store
 *   atomic_load_acquire                   acquire load
 *   atomic_store_release                  release store
 *   atomic_xchg, atomic_cmpxchg,
 *   atomic_fetch_{add,sub,or,and},
 *   atomic_{add,sub,or,and}               seq_cst read-modify-write
 *   smp_mb                                seq_cst fence
 *   smp_wmb                               release fence (orders stores)
 *   smp_rmb                               acquire fence (orders loads)
 *   atomic_mb_set                         smp_wmb; atomic_set; smp_mb
 *   smp_mb__before_rmw, smp_mb__after_rmw a full fence where a seq_cst RMW is
 *                                         not one (aarch64), a compiler barrier
 *                                         where it is (x86: the lock prefix)
 *
 * Note what the RMW row implies, which is the 2020 aarch64 hang in one line:
 * a seq_cst RMW is a full fence on x86 (lock prefix) but on ARMv8 it is an
 * ldaxr/stlxr loop that does *not* order a later relaxed load.  Code that
 * needs store->load order must say smp_mb().
 *
 * With AIO_TRACE defined (the trace build used by the faithfulness tests),
 * every primitive instead appends (op, field, value written, value read) to
 * a log and returns a scripted value: memory is not touched, so the tests
 * can steer a hook down every one of its paths.
 */
#ifndef AIOCORE_PRIMS_H
#define AIOCORE_PRIMS_H

#include <stdint.h>
#include <stdbool.h>

/* Compiler-only barrier. */
#define barrier() __asm__ __volatile__("" ::: "memory")

/* A strategy's retry loop (s.retry(n)) makes at most AIO_RETRY(n) attempts.
 * The trace build clamps every loop to 2 (first attempt, one retry), which
 * keeps the scripts it enumerates few; the Python side clamps the same way
 * when it compares (aiocore/_trace.py TRACE_RETRY_CAP). */
#ifdef AIO_TRACE
#define AIO_RETRY(n) ((n) < 2 ? (n) : 2)
#else
#define AIO_RETRY(n) (n)
#endif

/* Operation codes of the primitives: the trace log's (mirrored in
 * aiocore/_compiler/_trace.py) and the argument of AIO_PRIM_HOOK. */
enum {
    AIO_OP_ATOMIC_READ = 1, AIO_OP_ATOMIC_SET, AIO_OP_LOAD_ACQUIRE,
    AIO_OP_STORE_RELEASE, AIO_OP_XCHG, AIO_OP_CMPXCHG, AIO_OP_FETCH_ADD,
    AIO_OP_FETCH_SUB, AIO_OP_FETCH_OR, AIO_OP_FETCH_AND, AIO_OP_ADD,
    AIO_OP_SUB, AIO_OP_OR, AIO_OP_AND, AIO_OP_SMP_MB, AIO_OP_SMP_WMB,
    AIO_OP_SMP_RMB, AIO_OP_EVENT_SET, AIO_OP_EVENT_TEST_AND_CLEAR,
    AIO_OP_SMP_MB_BEFORE_RMW, AIO_OP_SMP_MB_AFTER_RMW,
};

/*
 * Primitive hooks (AIO_PRIM_HOOKS builds only): aio_prim_hook(op) runs just
 * before every primitive of a strategy's hooks, the EventNotifier's two
 * included, and never inside the core's own RAW_* accesses.  The chaos
 * build (aio_chaos.h: a seeded pause that widens race windows) and the
 * breakpoint build (aio_breakpoint.h: stop before the k-th primitive, for
 * the crash-stop kill test) are the two users; aio_primhook.c dispatches to
 * whichever of them the build includes.  In the default build the macros
 * expand to the bare builtins: not one instruction is added to a hook.
 */
#ifdef AIO_PRIM_HOOKS
void aio_prim_hook(int op);
#define AIO_PRIM_HOOK(op)   aio_prim_hook(op)
#define AIO_PRIM(op, e)     (aio_prim_hook(op), (e))
#else
#define AIO_PRIM_HOOK(op)   ((void)0)
#define AIO_PRIM(op, e)     (e)
#endif

#ifndef AIO_TRACE

#define atomic_read(p)              AIO_PRIM(AIO_OP_ATOMIC_READ, __atomic_load_n((p), __ATOMIC_RELAXED))
#define atomic_set(p, v)            AIO_PRIM(AIO_OP_ATOMIC_SET, __atomic_store_n((p), (v), __ATOMIC_RELAXED))
#define atomic_load_acquire(p)      AIO_PRIM(AIO_OP_LOAD_ACQUIRE, __atomic_load_n((p), __ATOMIC_ACQUIRE))
#define atomic_store_release(p, v)  AIO_PRIM(AIO_OP_STORE_RELEASE, __atomic_store_n((p), (v), __ATOMIC_RELEASE))

#define atomic_xchg(p, v)           AIO_PRIM(AIO_OP_XCHG, __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST))
/* Returns the old value, as QEMU's atomic_cmpxchg does. */
#define atomic_cmpxchg(p, old, new_) ({                                     \
    __typeof__(*(p)) _aio_old = (old);                                      \
    AIO_PRIM_HOOK(AIO_OP_CMPXCHG);                                          \
    (void)__atomic_compare_exchange_n((p), &_aio_old, (new_), false,        \
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);  \
    _aio_old;                                                               \
})
#define atomic_fetch_add(p, v)      AIO_PRIM(AIO_OP_FETCH_ADD, __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST))
#define atomic_fetch_sub(p, v)      AIO_PRIM(AIO_OP_FETCH_SUB, __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST))
#define atomic_fetch_or(p, v)       AIO_PRIM(AIO_OP_FETCH_OR, __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST))
#define atomic_fetch_and(p, v)      AIO_PRIM(AIO_OP_FETCH_AND, __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST))
#define atomic_add(p, v)            ((void)AIO_PRIM(AIO_OP_ADD, __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)))
#define atomic_sub(p, v)            ((void)AIO_PRIM(AIO_OP_SUB, __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)))
#define atomic_or(p, v)             ((void)AIO_PRIM(AIO_OP_OR, __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)))
#define atomic_and(p, v)            ((void)AIO_PRIM(AIO_OP_AND, __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)))

/* gcc 12 emits "lock orq $0,(%rsp)" for this on x86-64 (cheaper than mfence). */
#define smp_mb()                    AIO_PRIM(AIO_OP_SMP_MB, __atomic_thread_fence(__ATOMIC_SEQ_CST))
/* On x86 (TSO) these two are compiler barriers only. */
#define smp_wmb()                   AIO_PRIM(AIO_OP_SMP_WMB, __atomic_thread_fence(__ATOMIC_RELEASE))
#define smp_rmb()                   AIO_PRIM(AIO_OP_SMP_RMB, __atomic_thread_fence(__ATOMIC_ACQUIRE))

/* QEMU ff00bed1: make the RMW next to it a full barrier.  x86's RMWs are
 * lock-prefixed, full barriers already: a compiler barrier is enough there;
 * elsewhere a seq_cst fence (aarch64: dmb ish).  Each pairs with whatever
 * the RMW it completes pairs with (the strategy's pairs= note says which). */
#if defined(__x86_64__) || defined(__i386__)
#define smp_mb__before_rmw()        AIO_PRIM(AIO_OP_SMP_MB_BEFORE_RMW, __atomic_signal_fence(__ATOMIC_SEQ_CST))
#define smp_mb__after_rmw()         AIO_PRIM(AIO_OP_SMP_MB_AFTER_RMW, __atomic_signal_fence(__ATOMIC_SEQ_CST))
#else
#define smp_mb__before_rmw()        AIO_PRIM(AIO_OP_SMP_MB_BEFORE_RMW, __atomic_thread_fence(__ATOMIC_SEQ_CST))
#define smp_mb__after_rmw()         AIO_PRIM(AIO_OP_SMP_MB_AFTER_RMW, __atomic_thread_fence(__ATOMIC_SEQ_CST))
#endif

#define atomic_mb_set(p, v) do {                                            \
    smp_wmb();  /* earlier stores before the flag: pairs as the caller says */ \
    atomic_set((p), (v));                                                   \
    smp_mb();   /* the flag before later loads: pairs as the caller says */  \
} while (0)

#else /* AIO_TRACE */

#include "aio_trace.h"   /* aio_trace_op: declared there, defined in aio_trace.c */

#define atomic_read(p)              aio_trace_op(AIO_OP_ATOMIC_READ, (p), -1, -1)
#define atomic_set(p, v)            ((void)aio_trace_op(AIO_OP_ATOMIC_SET, (p), (uint32_t)(v), -1))
#define atomic_load_acquire(p)      aio_trace_op(AIO_OP_LOAD_ACQUIRE, (p), -1, -1)
#define atomic_store_release(p, v)  ((void)aio_trace_op(AIO_OP_STORE_RELEASE, (p), (uint32_t)(v), -1))
#define atomic_xchg(p, v)           aio_trace_op(AIO_OP_XCHG, (p), (uint32_t)(v), -1)
#define atomic_cmpxchg(p, o, n)     aio_trace_op(AIO_OP_CMPXCHG, (p), (uint32_t)(n), (uint32_t)(o))
#define atomic_fetch_add(p, v)      aio_trace_op(AIO_OP_FETCH_ADD, (p), (uint32_t)(v), -1)
#define atomic_fetch_sub(p, v)      aio_trace_op(AIO_OP_FETCH_SUB, (p), (uint32_t)(v), -1)
#define atomic_fetch_or(p, v)       aio_trace_op(AIO_OP_FETCH_OR, (p), (uint32_t)(v), -1)
#define atomic_fetch_and(p, v)      aio_trace_op(AIO_OP_FETCH_AND, (p), (uint32_t)(v), -1)
#define atomic_add(p, v)            ((void)aio_trace_op(AIO_OP_ADD, (p), (uint32_t)(v), -1))
#define atomic_sub(p, v)            ((void)aio_trace_op(AIO_OP_SUB, (p), (uint32_t)(v), -1))
#define atomic_or(p, v)             ((void)aio_trace_op(AIO_OP_OR, (p), (uint32_t)(v), -1))
#define atomic_and(p, v)            ((void)aio_trace_op(AIO_OP_AND, (p), (uint32_t)(v), -1))
#define smp_mb()                    ((void)aio_trace_op(AIO_OP_SMP_MB, 0, -1, -1))
#define smp_wmb()                   ((void)aio_trace_op(AIO_OP_SMP_WMB, 0, -1, -1))
#define smp_rmb()                   ((void)aio_trace_op(AIO_OP_SMP_RMB, 0, -1, -1))
#define smp_mb__before_rmw()        ((void)aio_trace_op(AIO_OP_SMP_MB_BEFORE_RMW, 0, -1, -1))
#define smp_mb__after_rmw()         ((void)aio_trace_op(AIO_OP_SMP_MB_AFTER_RMW, 0, -1, -1))
#define atomic_mb_set(p, v) do { smp_wmb(); atomic_set((p), (v)); smp_mb(); } while (0)

#endif /* AIO_TRACE */

#endif /* AIOCORE_PRIMS_H */
