/*
 * aio_gsource.c -- the GSource path, reading state, primitives on named
 * fields and the one-argument handles.
 *
 * Part of the core template: #included by aio_core.c into one translation
 * unit per strategy (see aio_core.c), never compiled alone.
 */
/* ------------------------------------------------------------------ */
/* The GSource path: prepare / (the caller's poll) / check / dispatch  */
/* ------------------------------------------------------------------ */

/* glib's prepare: returns 1 if ready without polling; *timeout_ns is -1 for
 * infinite.  Only the home process, as aio_ctx_prepare in QEMU. */
int aio_gsource_prepare(AioContext *ctx, int64_t *timeout_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    aio_set_pos(ctx, AIO_POS_PREPARE, 0);
    strategy_prepare(ctx);
    *timeout_ns = aio_compute_timeout(ctx);
    aio_set_pos(ctx, *timeout_ns < 0 ? AIO_POS_WAIT_INFINITE : AIO_POS_WAIT_TIMED, *timeout_ns);
    return *timeout_ns == 0;
}

/* The wait glib does between prepare and check, on our fds. */
int aio_gsource_wait(AioContext *ctx, int64_t timeout_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    int n = ctx->gs_npfd = aio_build_pollfds(ctx, ctx->gs_pfd);
    /* Recovery's pidfds join this wait (the model's gsource_poller: _wait
     * then _recover); gs_npfd stays the core's entries, which dispatch
     * alone looks at (check rebuilds them anyway). */
    aio_recovery_pollfds(ctx, ctx->gs_pfd, &n);
    int r = aio_wait(ctx, ctx->gs_pfd, n, timeout_ns);
    aio_recovery_after_wait(ctx, ctx->gs_pfd, n);
    return r;
}

/* glib's check: is anything ready?  Refreshes fd readiness without waiting. */
int aio_gsource_check(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    aio_set_pos(ctx, AIO_POS_CHECK, 0);
    strategy_check(ctx);
    ctx->gs_npfd = aio_build_pollfds(ctx, ctx->gs_pfd);
    int r = aio_wait(ctx, ctx->gs_pfd, ctx->gs_npfd, 0);
    if (r < 0) {
        return r;
    }
    int ready = r > 0 || aio_any_bh_pending(ctx);
    int64_t now = aio_clock_ns();
    for (uint32_t i = 0; i < ctx->n_timers && !ready; i++) {
        AioTimerSlot *t = &ctx->timer[i];
        ready = RAW_READ(&t->state) == 1 && RAW_READ(&t->armed) &&
                RAW_READ(&t->deadline_ns) <= now;
    }
    return ready;
}

int aio_gsource_dispatch(AioContext *ctx, int *progress)
{
    *progress = 0;
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AIO_COUNTER_ADD(ctx, AIO_C_GSOURCE_ITERATIONS, 1);
    int r = aio_dispatch(ctx, ctx->gs_pfd, ctx->gs_npfd, progress);
    ctx->gs_npfd = 0;
    aio_set_pos(ctx, AIO_POS_IDLE, 0);
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading state (counters, per-BH accounting, the owner's position)   */
/* ------------------------------------------------------------------ */

int aio_counters(AioContext *ctx, uint64_t *out, int n)
{
    CHECK_OPEN(ctx);
    for (int i = 0; i < n && i < AIO_NCOUNTERS; i++) {
        out[i] = RAW_READ(&ctx->shm->counter[i].v);
    }
    return AIO_OK;
}

/* Totals over the BH slots in use so far (below the high-water mark, one-shot
 * slots freed again included: their counts stay): schedules, dispatches,
 * cancels, and the BHs pending (allocated or one-shot, word non-zero). */
int aio_bh_totals(AioContext *ctx, uint64_t *out4)
{
    CHECK_OPEN(ctx);
    memset(out4, 0, 4 * sizeof(uint64_t));
    uint32_t hwm = aio_bh_hwm(ctx);
    for (uint32_t i = 0; i < hwm; i++) {
        AioBHSlot *bh = &ctx->bh[i];
        uint32_t st = RAW_READ(&bh->state);
        out4[0] += RAW_READ(&bh->schedules);
        out4[1] += RAW_READ(&bh->dispatches);
        out4[2] += RAW_READ(&bh->cancels);
        out4[3] += (st == AIO_BH_ALLOCATED || st == AIO_BH_ONESHOT) && RAW_READ(&bh->scheduled);
    }
    return AIO_OK;
}

int aio_bh_stat(AioContext *ctx, int id, uint64_t *out4)
{
    CHECK_OPEN(ctx);
    if (id < 0 || (uint32_t)id >= ctx->n_bh) {
        return AIO_E_BAD_BH;
    }
    AioBHSlot *bh = &ctx->bh[id];
    out4[0] = RAW_READ(&bh->schedules);
    out4[1] = RAW_READ(&bh->dispatches);
    out4[2] = RAW_READ(&bh->cancels);
    out4[3] = RAW_READ(&bh->scheduled);
    /* The state comes from shared memory: garbage must not pass for an
     * error code of ours (or a valid state). */
    uint32_t st = RAW_READ(&bh->state);
    return st <= AIO_BH_DELETED ? (int)st : AIO_E_CORRUPT;
}

/* A snapshot of the protocol state, for the watchdog and `aiocore info`. */
int aio_snapshot(AioContext *ctx, int64_t *out8)
{
    CHECK_OPEN(ctx);
    struct pollfd p = { .fd = ctx->notifier_rfd, .events = POLLIN };
    out8[0] = RAW_READ(&ctx->shm->notify_me);
    out8[1] = RAW_READ(&ctx->shm->notified);
    out8[2] = poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
    out8[3] = RAW_READ(&ctx->shm->owner.pos);
    out8[4] = RAW_READ(&ctx->shm->owner.since_ns);
    out8[5] = RAW_READ(&ctx->shm->owner.wait_timeout_ns);
    out8[6] = (int64_t)RAW_READ(&ctx->shm->owner.poll_seq);
    out8[7] = RAW_READ(&ctx->shm->owner.bh_hwm);
    return AIO_OK;
}

/* The watchdog's channel outside the protocol: wakes the owner's ppoll
 * without touching the notifier, notify_me or notified. */
int aio_rescue(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    uint64_t one = 1;
    if (ctx->rescue_fd < 0 || write(ctx->rescue_fd, &one, sizeof(one)) != sizeof(one)) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    return AIO_OK;
}

size_t aio_counter_offset(void)
{
    return offsetof(AioShared, counter);
}

int aio_last_errno(AioContext *ctx)
{
    return ctx->last_errno;
}

/* ------------------------------------------------------------------ */
/* Primitives on named fields, for tests and tools                     */
/* ------------------------------------------------------------------ */

/* field: 0 notify_me, 1 notified, 2..5 strategy fields, 6 bh_list,
 * 100+id a BH's word, 20000+id a BH's link */
static uint32_t *aio_field_ptr(AioContext *ctx, int field)
{
    if (field == 0) return &ctx->shm->notify_me;
    if (field == 1) return &ctx->shm->notified;
    if (field == 6) return &ctx->shm->bh_list;
    if (field >= 20000 && (uint32_t)(field - 20000) < ctx->n_bh) {
        return &ctx->bh[field - 20000].next;
    }
    if (field >= 2 && field < 2 + AIO_NSTRATEGY_FIELDS) {
        return &ctx->shm->strategy_field[field - 2].v;
    }
    if (field >= 100 && (uint32_t)(field - 100) < ctx->n_bh) {
        return &ctx->bh[field - 100].scheduled;
    }
    return NULL;
}

/* One primitive of the vocabulary (op numbers: aiocore/_context/_aio.py PRIM_OPS). */
int aio_prim(AioContext *ctx, int op, int field, uint32_t a, uint32_t b, uint32_t *out)
{
    CHECK_OPEN(ctx);
    uint32_t *p = aio_field_ptr(ctx, field);
    if (!p && op < 15) {
        return AIO_E_INVAL;
    }
    uint32_t v = 0;
    switch (op) {
    case 0: v = __atomic_load_n(p, __ATOMIC_RELAXED); break;
    case 1: __atomic_store_n(p, a, __ATOMIC_RELAXED); break;
    case 2: v = __atomic_load_n(p, __ATOMIC_ACQUIRE); break;
    case 3: __atomic_store_n(p, a, __ATOMIC_RELEASE); break;
    case 4: v = __atomic_exchange_n(p, a, __ATOMIC_SEQ_CST); break;
    case 5: v = a; __atomic_compare_exchange_n(p, &v, b, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); break;
    case 6: v = __atomic_fetch_add(p, a, __ATOMIC_SEQ_CST); break;
    case 7: v = __atomic_fetch_sub(p, a, __ATOMIC_SEQ_CST); break;
    case 8: v = __atomic_fetch_or(p, a, __ATOMIC_SEQ_CST); break;
    case 9: v = __atomic_fetch_and(p, a, __ATOMIC_SEQ_CST); break;
    case 10: __atomic_fetch_add(p, a, __ATOMIC_SEQ_CST); break;
    case 11: __atomic_fetch_sub(p, a, __ATOMIC_SEQ_CST); break;
    case 12: __atomic_fetch_or(p, a, __ATOMIC_SEQ_CST); break;
    case 13: __atomic_fetch_and(p, a, __ATOMIC_SEQ_CST); break;
    case 14:
        /* atomic_mb_set, as a unit */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        __atomic_store_n(p, a, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        break;
    case 15: __atomic_thread_fence(__ATOMIC_SEQ_CST); break;
    case 16: __atomic_thread_fence(__ATOMIC_RELEASE); break;
    case 17: __atomic_thread_fence(__ATOMIC_ACQUIRE); break;
    default: return AIO_E_INVAL;
    }
    *out = v;
    return AIO_OK;
}

/* Floors for the benchmarks: an empty call, and the same shape as
 * aio_bh_schedule (a context and an int). */
void aio_empty(void) {}
int aio_empty2(AioContext *ctx, int id) { (void)ctx; return id & 0; }
