/*
 * strategy_unconditional.h -- the hand-written reference strategy.
 *
 * QEMU 21a03d17 ("AioContext: fix broken placement of
 * event_notifier_test_and_clear", 2015): clear the EventNotifier right after
 * ppoll returns, before any handler runs, in every aio_poll, blocking or not.
 * Before that commit the clear ran in the notifier's fd handler during
 * dispatch, where a second poller could eat a wake-up meant for the first.
 *
 * This file is written by hand, not generated.  It stays as the reference
 * the generated C of the "unconditional" plugin is measured against.
 */
#include "aio_notifier.h"

#define AIO_STRATEGY_NAME "unconditional-c"
#define AIO_STRATEGY_FINGERPRINT "handwritten-1"
#define AIO_STRATEGY_FOREIGN_POLLERS 0
#define AIO_STRATEGY_ACCEPT_NONBLOCKING 1
#define AIO_STRATEGY_HAS_TIMEOUT_ZERO 0
#define AIO_STRATEGY_BH_COUNTED 1

static void strategy_notify(AioContext *ctx)
{
    /* Write e.g. bh->scheduled before reading ctx->notify_me.  Pairs with
     * the atomic_add in strategy_poll_begin (a full barrier on x86 only;
     * see the explicit-mb strategy for what ARM needs).
     */
    smp_mb();
    if (atomic_read(&ctx->shm->notify_me)) {
        event_notifier_set(ctx);
    }
}

static void strategy_accept(AioContext *ctx)
{
    event_notifier_test_and_clear(ctx);
}

static void strategy_poll_begin(AioContext *ctx)
{
    atomic_add(&ctx->shm->notify_me, 2);
}

static void strategy_poll_end(AioContext *ctx)
{
    atomic_sub(&ctx->shm->notify_me, 2);
    strategy_accept(ctx);
}

static void strategy_prepare(AioContext *ctx)
{
    atomic_or(&ctx->shm->notify_me, 1);
}

static void strategy_check(AioContext *ctx)
{
    atomic_and(&ctx->shm->notify_me, ~1u);
    strategy_accept(ctx);
}

static void strategy_on_event(AioContext *ctx)
{
    (void)ctx;  /* the clear already happened in strategy_accept */
}

static void strategy_schedule(AioContext *ctx, AioBHSlot *bh)
{
    uint32_t old = atomic_xchg(&bh->scheduled, 1);
    aio_bh_note(bh, old, 1);
    if (old == 0) {
        strategy_notify(ctx);
    }
}

/* The bottom-half side: aiocore's defaults (Strategy.schedule_oneshot,
 * cancel, claim, bh_pending), as the generated C spells them. */
static void strategy_schedule_oneshot(AioContext *ctx, AioBHSlot *bh)
{
    strategy_schedule(ctx, bh);
}

static void strategy_cancel(AioContext *ctx, AioBHSlot *bh)
{
    (void)ctx;
    uint32_t old = atomic_xchg(&bh->scheduled, 0);
    aio_bh_note_cancel(bh, old, 0);
}

static uint32_t strategy_claim(AioContext *ctx, AioBHSlot *bh)
{
    (void)ctx;
    if (atomic_read(&bh->scheduled)) {
        return atomic_xchg(&bh->scheduled, 0);
    }
    return 0;
}

static uint32_t strategy_bh_pending(AioContext *ctx, AioBHSlot *bh)
{
    (void)ctx;
    return atomic_read(&bh->scheduled);
}
