/*
 * aio_notifier.h -- the EventNotifier, and the helpers a strategy's hooks
 * may call besides the atomic primitives.
 *
 * The notifier is an eventfd where the kernel has one (a pipe pair
 * otherwise), as QEMU's EventNotifier is.  event_notifier_set() is what
 * wakes a poller sleeping in ppoll(); event_notifier_test_and_clear() is
 * the read() that makes the fd quiet again.  Both are system calls, which
 * is what the notify_me/notified optimizations exist to avoid.
 *
 * A strategy hook is a static function over an AioContext:
 *
 *     static void strategy_notify(AioContext *ctx);
 *     static void strategy_accept(AioContext *ctx);
 *     static void strategy_poll_begin(AioContext *ctx);
 *     static void strategy_poll_end(AioContext *ctx);
 *     static void strategy_prepare(AioContext *ctx);
 *     static void strategy_check(AioContext *ctx);
 *     static void strategy_on_event(AioContext *ctx);
 *     static void strategy_schedule(AioContext *ctx, AioBHSlot *bh);
 *     static int  strategy_timeout_zero(AioContext *ctx);   (optional)
 *
 * and the macros AIO_STRATEGY_NAME, AIO_STRATEGY_FINGERPRINT,
 * AIO_STRATEGY_FOREIGN_POLLERS, AIO_STRATEGY_ACCEPT_NONBLOCKING and
 * AIO_STRATEGY_HAS_TIMEOUT_ZERO.  The shared fields are
 * ctx->shm->notify_me, ctx->shm->notified, bh->scheduled and
 * ctx->shm->strategy_field[i].v.  After any read-modify-write of
 * bh->scheduled a hook calls aio_bh_note(bh, old, new) so that 0->1
 * schedules are counted (that is how "lost work" is accounted).
 */
#ifndef AIOCORE_NOTIFIER_H
#define AIOCORE_NOTIFIER_H

#include <errno.h>
#include <unistd.h>
#include "aio_core.h"

#define AIO_COUNTER_ADD(ctx, i, n) \
    ((void)__atomic_fetch_add(&(ctx)->shm->counter[(i)].v, (n), __ATOMIC_RELAXED))

#ifndef AIO_TRACE

static inline void event_notifier_set(AioContext *ctx)
{
    AIO_PRIM_HOOK(AIO_OP_EVENT_SET);
    AIO_COUNTER_ADD(ctx, AIO_C_EVENT_SETS, 1);
    if (ctx->notifier_kind == 1) {
        uint64_t one = 1;
        /* EAGAIN only if the counter would overflow: it is set already. */
        ssize_t r = write(ctx->notifier_wfd, &one, sizeof(one));
        (void)r;
    } else {
        char c = 1;
        /* A full pipe is a readable pipe: nothing more to do. */
        ssize_t r = write(ctx->notifier_wfd, &c, 1);
        (void)r;
    }
}

/* Returns whether the notifier was readable; leaves it not readable. */
static inline int event_notifier_test_and_clear(AioContext *ctx)
{
    int was_set = 0;
    AIO_PRIM_HOOK(AIO_OP_EVENT_TEST_AND_CLEAR);
    AIO_COUNTER_ADD(ctx, AIO_C_EVENT_CLEAR_CALLS, 1);
    if (ctx->notifier_kind == 1) {
        uint64_t v;
        was_set = read(ctx->notifier_rfd, &v, sizeof(v)) == (ssize_t)sizeof(v);
    } else {
        char buf[512];
        ssize_t r;
        while ((r = read(ctx->notifier_rfd, buf, sizeof(buf))) > 0) {
            was_set = 1;
        }
    }
    if (was_set) {
        AIO_COUNTER_ADD(ctx, AIO_C_EVENT_CLEARS, 1);
    }
    return was_set;
}

/* Count a 0->1 schedule.  Relaxed: the count is read at the end of a run,
 * it orders nothing. */
static inline void aio_bh_note(AioBHSlot *bh, uint32_t old, uint32_t new_)
{
    if (old == 0 && new_ != 0) {
        __atomic_fetch_add(&bh->schedules, 1, __ATOMIC_RELAXED);
    }
}

#else /* AIO_TRACE */

static inline void event_notifier_set(AioContext *ctx)
{
    (void)ctx;
    (void)aio_trace_op(AIO_OP_EVENT_SET, 0, -1, -1);
}

static inline int event_notifier_test_and_clear(AioContext *ctx)
{
    (void)ctx;
    return aio_trace_op(AIO_OP_EVENT_TEST_AND_CLEAR, 0, -1, -1) != 0;
}

static inline void aio_bh_note(AioBHSlot *bh, uint32_t old, uint32_t new_)
{
    (void)bh; (void)old; (void)new_;
}

#endif /* AIO_TRACE */

#endif /* AIOCORE_NOTIFIER_H */
