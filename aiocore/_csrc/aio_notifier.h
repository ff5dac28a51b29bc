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
 *     static void strategy_schedule_oneshot(AioContext *ctx, AioBHSlot *bh);
 *     static void strategy_cancel(AioContext *ctx, AioBHSlot *bh);
 *     static uint32_t strategy_claim(AioContext *ctx, AioBHSlot *bh);
 *     static uint32_t strategy_bh_pending(AioContext *ctx, AioBHSlot *bh);
 *     static int  strategy_timeout_zero(AioContext *ctx);        (optional)
 *     static uint32_t strategy_claim_list(AioContext *ctx);      (optional)
 *     static uint32_t strategy_notifier_poll(AioContext *ctx);   (optional)
 *     static uint32_t strategy_last_look(AioContext *ctx);       (optional)
 *     static uint32_t strategy_compute_timeout(AioContext *ctx); (optional)
 *
 * and the macros AIO_STRATEGY_NAME, AIO_STRATEGY_FINGERPRINT,
 * AIO_STRATEGY_FOREIGN_POLLERS, AIO_STRATEGY_ACCEPT_NONBLOCKING,
 * AIO_STRATEGY_HAS_<HOOK> for each optional hook, and
 * AIO_STRATEGY_BH_COUNTED.  The shared fields are ctx->shm->notify_me,
 * ctx->shm->notified, ctx->shm->bh_list, bh->scheduled (alias bh->flags),
 * bh->next and ctx->shm->strategy_field[i].v.  After a read-modify-write of
 * the BH's word, schedule hooks call aio_bh_note(bh, old, new) so that 0->1
 * schedules are counted and cancel calls aio_bh_note_cancel (that is how
 * the per-BH accounting works; AIO_STRATEGY_BH_COUNTED says whether it is
 * exact for the strategy).  aio_bh_self(ctx, bh) is the BH as a list value.
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

/* Count a schedule taken back by cancel (the word cleared). */
static inline void aio_bh_note_cancel(AioBHSlot *bh, uint32_t old, uint32_t new_)
{
    if (old != 0 && new_ == 0) {
        __atomic_fetch_add(&bh->cancels, 1, __ATOMIC_RELAXED);
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

static inline void aio_bh_note_cancel(AioBHSlot *bh, uint32_t old, uint32_t new_)
{
    (void)bh; (void)old; (void)new_;
}

#endif /* AIO_TRACE */

/* The bottom half in hand as a list value: its id + 1 (0 ends a list). */
static inline uint32_t aio_bh_self(AioContext *ctx, AioBHSlot *bh)
{
    return (uint32_t)(bh - ctx->bh) + 1;
}

#endif /* AIOCORE_NOTIFIER_H */
