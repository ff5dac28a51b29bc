/*
 * aio_core.c -- AioContext in shared memory: bottom halves, timers, fd
 * handlers, aio_poll and the GSource path.
 *
 * This file is a template: every strategy module is this file compiled after
 * that strategy's hooks (see aio_notifier.h for the hook interface), so the
 * hooks inline into aio_poll and aio_notify exactly as QEMU's code does and
 * the fast paths cost what they would cost in QEMU.  The skeleton below never
 * changes from one strategy to another.
 *
 * The core's own accesses to shared memory use the __atomic builtins
 * directly (RAW_*), not the vocabulary of aio_prims.h: only the strategy's
 * hooks are traced in the trace build, and only they are the subject of the
 * model checker.  Every RAW_ access says why its ordering is enough.
 *
 * Callbacks are Python's: aio_poll claims bottom halves, reads fd readiness
 * and expires timers in C, and hands back a list (ctx->events) that Python
 * dispatches after the C part returns.  No Python runs between writing
 * notify_me and reading the bottom-half flags (DESIGN.md, consequence 1).
 *
 * Two aio_poll skeletons live side by side (aiocore/_compiler/_skeleton.py is their
 * spec): the 2015 one (aio_poll_2015.c) and QEMU's current polling mode
 * (aio_poll_polling.c).  Which one a context runs is fixed at creation and
 * recorded in the segment header; both are compiled into every strategy
 * module, so the choice costs one predictable branch per aio_poll.
 *
 * Build flags: AIO_STEP_LOG makes every AIO_STEP() marker append to a
 * per-process step log (aio_step_log_read), for the drift test; AIO_CHAOS
 * pulls in aio_chaos.h (window widening) before the step markers, so it may
 * define AIO_STEP as a pause; AIO_PRIM_HOOKS calls aio_prim_hook() before
 * every primitive of the strategy's hooks (aio_prims.h, aio_primhook.c), for
 * the chaos and breakpoint builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>   /* __rdtsc: the polling skeleton's stopwatch */
#endif

#define RAW_READ(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
#define RAW_SET(p, v)      __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define RAW_XCHG(p, v)     __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define RAW_ADD(p, v)      ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))

#ifndef AIO_STRATEGY_HAS_TIMEOUT_ZERO
#define AIO_STRATEGY_HAS_TIMEOUT_ZERO 0
#endif
#ifndef AIO_STRATEGY_HAS_CLAIM_LIST
#define AIO_STRATEGY_HAS_CLAIM_LIST 0
#endif
#ifndef AIO_STRATEGY_HAS_NOTIFIER_POLL
#define AIO_STRATEGY_HAS_NOTIFIER_POLL 0
#endif
#ifndef AIO_STRATEGY_HAS_LAST_LOOK
#define AIO_STRATEGY_HAS_LAST_LOOK 0
#endif
#ifndef AIO_STRATEGY_HAS_COMPUTE_TIMEOUT
#define AIO_STRATEGY_HAS_COMPUTE_TIMEOUT 0
#endif
#ifndef AIO_STRATEGY_BH_COUNTED
#define AIO_STRATEGY_BH_COUNTED 1
#endif

#include "aio_drivers.h"

/* The step log (trace of the skeletons' named steps, AIO_STEP_LOG builds). */
#define AIO_STEP_LOG_MAX 4096
static int aio_step_log[AIO_STEP_LOG_MAX];
static int aio_step_log_n;
#ifdef AIO_STEP_LOG
#define AIO_STEP(id) \
    ((void)(aio_step_log_n < AIO_STEP_LOG_MAX ? (aio_step_log[aio_step_log_n++] = (id)) : 0))
#endif

#ifdef AIO_CHAOS
#if defined(__has_include)
#if __has_include("aio_chaos.h")
#include "aio_chaos.h"
#endif
#else
#include "aio_chaos.h"
#endif
#endif
#include "aio_steps.h"
#ifdef AIO_PRIM_HOOKS
#include "aio_primhook.c"
#endif

/* Recovery after a crashed process (the crash helper's aio_recovery.h);
 * without it, the two call sites of both skeletons are no-ops. */
#if defined(__has_include)
#if __has_include("aio_recovery.h")
#include "aio_recovery.h"
#endif
#endif
#ifndef AIO_RECOVERY_H
static inline void aio_recovery_pollfds(AioContext *ctx, struct pollfd *pfd, int *n)
{
    (void)ctx; (void)pfd; (void)n;
}
static inline void aio_recovery_after_wait(AioContext *ctx, struct pollfd *pfd, int n)
{
    (void)ctx; (void)pfd; (void)n;
}
#endif

/* The core, room by room (one translation unit: hooks inline everywhere). */
#include "aio_segment.c"      /* layout, create/attach/close */
#include "aio_process.c"      /* home test, clocks, owner liveness, lock */
#include "aio_bh.c"           /* bottom halves, notify, timers, fd handlers */
#include "aio_poll_common.c"  /* compute_timeout, pollfds, wait, dispatch */
#include "aio_poll_2015.c"    /* the 2015 skeleton */
#include "aio_poll_polling.c" /* the polling skeleton (QEMU today) */
#include "aio_gsource.c"      /* GSource path, state, prims */
#include "aio_drivers.c"
#include "aio_bench.c"
#include "aio_bench_virtio.c"
#include "aio_bench_polling.c"
#include "aio_bench_wake.c"
