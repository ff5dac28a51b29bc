/*
 * aio_bh.c -- bottom halves, aio_notify, timers and the owner's fd handlers.
 *
 * Part of the core template: #included by aio_core.c into one translation
 * unit per strategy (see aio_core.c), never compiled alone.
 */
/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */
/* ------------------------------------------------------------------ */

static AioBHSlot *aio_bh_get(AioContext *ctx, int id)
{
    if (id < 0 || (uint32_t)id >= ctx->n_bh) {
        return NULL;
    }
    AioBHSlot *bh = &ctx->bh[id];
    return RAW_READ(&bh->state) == AIO_BH_ALLOCATED ? bh : NULL;
}

/* The current high-water mark of BH slots, bounded by our own capacity. */
static uint32_t aio_bh_hwm(AioContext *ctx)
{
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    return hwm > ctx->n_bh ? ctx->n_bh : hwm;
}

/* Take slot id from state `from` to `to`: 1 if we got it.  Acquire: pairs
 * with the release that freed or deleted it, so whoever used it last is
 * done with it. */
static int aio_bh_cas_state(AioBHSlot *bh, uint32_t from, uint32_t to)
{
    return RAW_READ(&bh->state) == from &&
           __atomic_compare_exchange_n(&bh->state, &from, to, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/*
 * A slot for a new bottom half, put in state `to` (ALLOCATED: aio_bh_new,
 * the owner; ONESHOT: aio_bh_schedule_oneshot, any process).  `reuse_first`:
 * look for a free slot below the high-water mark before opening a fresh
 * one (one-shots, which come and go); aio_bh_new opens fresh slots first
 * and reuses free or deleted ones only when none is left.  A fresh slot
 * (state FREE: the segment starts zeroed) is taken by compare-and-swap and
 * the mark raised after it by compare-and-swap, so processes racing for
 * slots each get their own.  Returns the id, or AIO_E_FULL.
 */
static int aio_bh_take(AioContext *ctx, uint32_t to, int reuse_first)
{
    for (int pass = 0; pass < 2; pass++) {
        if (pass == (reuse_first ? 1 : 0)) {
            /* open a fresh slot */
            for (;;) {
                uint32_t hwm = aio_bh_hwm(ctx);
                if (hwm >= ctx->n_bh) {
                    break;
                }
                if (aio_bh_cas_state(&ctx->bh[hwm], AIO_BH_FREE, to)) {
                    uint32_t cur = hwm;
                    /* Publish the slot (its state) before the mark that
                     * makes pollers look at it; pairs with the reads of
                     * bh_hwm, which only need to see it eventually. */
                    while (cur <= hwm && !__atomic_compare_exchange_n(
                               &ctx->shm->owner.bh_hwm, &cur, hwm + 1, 0,
                               __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
                    }
                    return (int)hwm;
                }
                if (RAW_READ(&ctx->shm->owner.bh_hwm) == hwm) {
                    /* taken but the mark not raised yet: help */
                    uint32_t cur = hwm;
                    __atomic_compare_exchange_n(&ctx->shm->owner.bh_hwm, &cur, hwm + 1, 0,
                                                __ATOMIC_RELEASE, __ATOMIC_RELAXED);
                }
            }
        } else {
            uint32_t hwm = aio_bh_hwm(ctx);
            for (uint32_t id = 0; id < hwm; id++) {
                if (aio_bh_cas_state(&ctx->bh[id], AIO_BH_FREE, to) ||
                    (to == AIO_BH_ALLOCATED && aio_bh_cas_state(&ctx->bh[id], AIO_BH_DELETED, to))) {
                    return (int)id;
                }
            }
        }
    }
    return AIO_E_FULL;
}

int aio_bh_new(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    int id = aio_bh_take(ctx, AIO_BH_ALLOCATED, 0);
    if (id < 0) {
        return id;
    }
    AioBHSlot *bh = &ctx->bh[id];
    RAW_SET(&bh->scheduled, 0);
    RAW_SET(&bh->next, 0);
    RAW_SET(&bh->action, 0);
    return id;
}

/* Mark a 0->1 schedule as undone, for the lost-work accounting. */
static void aio_bh_uncount(AioBHSlot *bh)
{
    RAW_ADD(&bh->cancels, 1);
}

/* Any process.  One C call from Python: the strategy's schedule hook. */
int aio_bh_schedule(AioContext *ctx, int id)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE || aio_owner_tick(ctx)) {
        return AIO_E_OWNER_GONE;
    }
    strategy_schedule(ctx, bh);
    return AIO_OK;
}

/* qemu_bh_cancel: the strategy's cancel hook (it counts what it takes back). */
int aio_bh_cancel(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    strategy_cancel(ctx, bh);
    return AIO_OK;
}

/*
 * aio_bh_schedule_oneshot: any process.  A slot of its own (aio_bh_take:
 * a free one, else a fresh one), its word and link zeroed as g_new's
 * zeroed QEMUBH is, then the strategy's schedule_oneshot hook.  The poller
 * that runs its callback frees the slot (aio_dispatch).  Returns the slot's
 * id, for Python to bind a callback to (the owner) or for a native action.
 */
int aio_bh_schedule_oneshot(AioContext *ctx, uint32_t action, uint32_t arg)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE || aio_owner_tick(ctx)) {
        return AIO_E_OWNER_GONE;
    }
    int id = aio_bh_take(ctx, AIO_BH_ONESHOT, 1);
    if (id < 0) {
        return id;
    }
    AioBHSlot *bh = &ctx->bh[id];
    RAW_SET(&bh->scheduled, 0);
    RAW_SET(&bh->next, 0);
    RAW_SET(&bh->arg, arg);
    RAW_SET(&bh->action, action);
    strategy_schedule_oneshot(ctx, bh);
    return id;
}

int aio_bh_delete(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    __atomic_store_n(&bh->state, AIO_BH_DELETED, __ATOMIC_RELEASE);
    /* A BH still on a strategy's list keeps its link: the list walk skips
     * it (its state) and a fresh slot is preferred by aio_bh_new. */
    if (RAW_XCHG(&bh->scheduled, 0)) {
        aio_bh_uncount(bh);
    }
    return AIO_OK;
}

int aio_bh_set_action(AioContext *ctx, int id, uint32_t action, uint32_t arg)
{
    CHECK_OPEN(ctx);
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    RAW_SET(&bh->arg, arg);
    RAW_SET(&bh->action, action);
    return AIO_OK;
}

/* aio_notify: the strategy's notify hook, for callers outside a BH. */
int aio_notify(AioContext *ctx)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    if (aio_owner_tick(ctx)) {
        return AIO_E_OWNER_GONE;
    }
    strategy_notify(ctx);
    /* Diagnostic, so a plain (unlocked) increment: a lock add here would
     * cost as much as the whole fast path (one fence plus one load).
     * Concurrent notifiers may lose counts. */
    RAW_SET(&ctx->shm->counter[AIO_C_NOTIFIES].v, RAW_READ(&ctx->shm->counter[AIO_C_NOTIFIES].v) + 1);
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

static AioTimerSlot *aio_timer_get(AioContext *ctx, int id)
{
    if (id < 0 || (uint32_t)id >= ctx->n_timers) {
        return NULL;
    }
    AioTimerSlot *t = &ctx->timer[id];
    return RAW_READ(&t->state) == 1 ? t : NULL;
}

int aio_timer_new(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    for (uint32_t i = 0; i < ctx->n_timers; i++) {
        if (RAW_READ(&ctx->timer[i].state) == 0) {
            RAW_SET(&ctx->timer[i].armed, 0);
            RAW_SET(&ctx->timer[i].state, 1);
            return (int)i;
        }
    }
    return AIO_E_FULL;
}

int aio_timer_mod_ns(AioContext *ctx, int id, int64_t deadline_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->deadline_ns, deadline_ns);
    RAW_SET(&t->armed, 1);
    return AIO_OK;
}

int aio_timer_del(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->armed, 0);
    return AIO_OK;
}

int aio_timer_free(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->armed, 0);
    RAW_SET(&t->state, 0);
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* fd handlers (the owner's)                                           */
/* ------------------------------------------------------------------ */

/* QEMU's poll_disable_cnt: fd handlers without a poll handler. */
static void aio_count_nopoll(AioContext *ctx)
{
    int n = 0;
    for (int i = 0; i < ctx->nfds; i++) {
        n += ctx->fd_poll[i] < 0;
    }
    ctx->n_nopoll_fds = n;
}

/*
 * aio_set_fd_handler(ctx, fd, events, poll_word): poll_word -1 means no
 * poll handler (the fd's readiness needs a system call: need_wait), else
 * the index of the segment's readiness word the fd's native poll handler
 * watches (aio_poll_polling.c, aio_fd_poll_ready).
 */
int aio_set_fd_handler(AioContext *ctx, int fd, uint32_t events, int poll_word)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        return AIO_E_BAD_FD;
    }
    if (poll_word < -1 || poll_word >= AIO_NPOLL_WORDS) {
        return AIO_E_INVAL;
    }
    int i;
    for (i = 0; i < ctx->nfds; i++) {
        if (ctx->fd[i] == fd) {
            break;
        }
    }
    if (events == 0) {
        if (i < ctx->nfds) {
            int last = ctx->nfds - 1;
            ctx->fd[i] = ctx->fd[last];
            ctx->fd_events[i] = ctx->fd_events[last];
            ctx->fd_poll[i] = ctx->fd_poll[last];
            ctx->fd_poll_seen[i] = ctx->fd_poll_seen[last];
            ctx->nfds--;
        }
        aio_count_nopoll(ctx);
        return AIO_OK;
    }
    if (i == ctx->nfds) {
        if (ctx->nfds == AIO_MAX_FDS) {
            return AIO_E_FULL;
        }
        ctx->nfds++;
    }
    ctx->fd[i] = fd;
    ctx->fd_events[i] = events & (POLLIN | POLLOUT | POLLPRI);
    ctx->fd_poll[i] = poll_word;
    if (poll_word >= 0) {
        /* Only what is posted from now on is news to this handler. */
        ctx->fd_poll_seen[i] = __atomic_load_n(&ctx->shm->poll_word[poll_word].v, __ATOMIC_ACQUIRE);
    }
    aio_count_nopoll(ctx);
    return AIO_OK;
}

/* A producer (any process) posts to a poll word: the release orders what
 * it wrote before (the "ring" the fd's handler reads) before the word;
 * pairs with the acquire load of aio_fd_poll_ready / the dispatch. */
int aio_poll_word_add(AioContext *ctx, int word, uint32_t n)
{
    CHECK_OPEN(ctx);
    if (word < 0 || word >= AIO_NPOLL_WORDS) {
        return AIO_E_INVAL;
    }
    __atomic_fetch_add(&ctx->shm->poll_word[word].v, n, __ATOMIC_RELEASE);
    return AIO_OK;
}

/* The polling skeleton's state, for `aiocore info` and tests:
 * out4 = skeleton, poll_max_ns, poll_ns, n fd handlers without poll handler. */
int aio_poll_state(AioContext *ctx, int64_t *out4)
{
    CHECK_OPEN(ctx);
    out4[0] = ctx->skeleton;
    out4[1] = ctx->poll_max_ns;
    out4[2] = RAW_READ(&ctx->shm->owner.poll_ns);
    out4[3] = ctx->n_nopoll_fds;
    return AIO_OK;
}

/* The step log (AIO_STEP_LOG builds): copy up to max step ids into out and
 * empty the log; -1 if this module was not built with the step log. */
int aio_step_log_read(int *out, int max)
{
#ifdef AIO_STEP_LOG
    int n = aio_step_log_n < max ? aio_step_log_n : max;
    memcpy(out, aio_step_log, (size_t)n * sizeof(int));
    aio_step_log_n = 0;
    return n;
#else
    (void)out; (void)max;
    return -1;
#endif
}

/* Where poll_ns lives in the segment (for `aiocore info`, which maps the
 * segment read-only without attaching). */
size_t aio_poll_ns_offset(void)
{
    return offsetof(AioShared, owner.poll_ns);
}
