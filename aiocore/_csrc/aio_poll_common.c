/*
 * aio_poll_common.c -- what both aio_poll skeletons share: compute_timeout,
 * the owner's position, pollfds, the wait, and the dispatch phase.
 *
 * Part of the core template: #included by aio_core.c into one translation
 * unit per strategy (see aio_core.c), never compiled alone.
 */
/* ------------------------------------------------------------------ */
/* aio_poll                                                            */
/* ------------------------------------------------------------------ */

/*
 * 0 if a bottom half is pending (or the strategy says so), else the time to
 * the nearest timer, else -1 (infinite).  Reads the BH flags relaxed, as
 * QEMU's aio_compute_timeout does: ordering them after the write to
 * notify_me is the poll_begin hook's business, and that is the point.
 */
static int64_t aio_compute_timeout(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_TIMEOUT_ZERO
    if (strategy_timeout_zero(ctx)) {
        return 0;
    }
#endif
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }
    for (uint32_t i = 0; i < hwm; i++) {
        if (RAW_READ(&ctx->bh[i].scheduled)) {
            return 0;
        }
    }
    int64_t deadline = INT64_MAX;
    if (aio_is_home(ctx)) {
        for (uint32_t i = 0; i < ctx->n_timers; i++) {
            AioTimerSlot *t = &ctx->timer[i];
            if (RAW_READ(&t->state) == 1 && RAW_READ(&t->armed)) {
                int64_t d = RAW_READ(&t->deadline_ns);
                if (d < deadline) {
                    deadline = d;
                }
            }
        }
    }
    if (deadline == INT64_MAX) {
        return -1;
    }
    int64_t now = aio_clock_ns();
    return deadline <= now ? 0 : deadline - now;
}

/* The owner's position since `now` (a stamp the caller already has: the
 * polling skeleton reuses its own, see aio_stamp_ns). */
static void aio_set_pos_at(AioContext *ctx, uint32_t pos, int64_t timeout, int64_t now)
{
    if (aio_is_home(ctx)) {
        /* Relaxed, diagnostic only (read by the watchdog): a plain store,
         * which on x86 does not drain the store buffer, so it cannot hide a
         * missing barrier in the hooks around it. */
        RAW_SET(&ctx->shm->owner.wait_timeout_ns, timeout);
        RAW_SET(&ctx->shm->owner.since_ns, now);
        RAW_SET(&ctx->shm->owner.pos, pos);
    }
}

static void aio_set_pos(AioContext *ctx, uint32_t pos, int64_t timeout)
{
    aio_set_pos_at(ctx, pos, timeout, aio_clock_ns());
}

/* pollfd slots: 0 notifier, 1 rescue (owner) or owner pidfd (attached),
 * then the owner's fd handlers. */
static int aio_build_pollfds(AioContext *ctx, struct pollfd *pfd)
{
    int n = 0;
    pfd[n].fd = ctx->notifier_rfd;
    pfd[n].events = POLLIN;
    pfd[n++].revents = 0;
    pfd[n].fd = ctx->is_owner ? ctx->rescue_fd : ctx->owner_pidfd;
    pfd[n].events = POLLIN;
    pfd[n++].revents = 0;
    if (aio_is_home(ctx)) {
        for (int i = 0; i < ctx->nfds; i++) {
            pfd[n].fd = ctx->fd[i];
            pfd[n].events = (short)ctx->fd_events[i];
            pfd[n++].revents = 0;
        }
    }
    return n;
}

static int aio_wait(AioContext *ctx, struct pollfd *pfd, int n, int64_t timeout)
{
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000000000ll;
        ts.tv_nsec = timeout % 1000000000ll;
        tsp = &ts;
    }
    int r = ppoll(pfd, (nfds_t)n, tsp, NULL);
    if (r < 0 && errno != EINTR) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    return r < 0 ? 0 : r;
}

static int aio_push(AioContext *ctx, int *n, int kind, int id, uint32_t revents,
                    int64_t deadline)
{
    if (*n >= ctx->events_cap) {
        return 0;
    }
    aio_event *e = &ctx->events[(*n)++];
    e->kind = kind;
    e->id = id;
    e->revents = revents;
    e->deadline_ns = deadline;
    return 1;
}

static int aio_cmp_deadline(const void *a, const void *b)
{
    const aio_event *x = a, *y = b;
    return (x->deadline_ns > y->deadline_ns) - (x->deadline_ns < y->deadline_ns);
}

/*
 * The dispatch phase shared by aio_poll and the GSource path: claim the
 * pending bottom halves (each 0->1 schedule is claimed by exactly one xchg),
 * then the fd handlers -- the notifier's own handler is the strategy's
 * on_event and does not count as progress -- then the expired timers.
 * Returns the number of events for Python; *progress as in QEMU.
 */
static int aio_dispatch(AioContext *ctx, struct pollfd *pfd, int npfd, int *progress)
{
    int n = 0;
    int prog = 0;
    int home = aio_is_home(ctx);
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }

    /* now_hint: the caller's position stamp (polling skeleton), or 0; a
     * stamp only -- timers below read the clock. */
    int64_t now0 = ctx->now_hint ? ctx->now_hint : aio_stamp_ns();
    ctx->now_hint = 0;
    aio_set_pos_at(ctx, AIO_POS_DISPATCH, 0, now0);
    ctx->poll_progress = 0;
    for (uint32_t i = 0; i < hwm; i++) {
        AioBHSlot *bh = &ctx->bh[i];
        /* The xchg is the claim (QEMU's aio_bh_poll); the relaxed read in
         * front only skips the locked op for idle slots. */
        if (RAW_READ(&bh->scheduled) && RAW_XCHG(&bh->scheduled, 0)) {
            if (RAW_READ(&bh->state) != AIO_BH_ALLOCATED) {
                continue;   /* garbage in a free slot: drop it */
            }
            RAW_ADD(&bh->dispatches, 1);
            AIO_COUNTER_ADD(ctx, AIO_C_BH_DISPATCHES, 1);
            prog = 1;
            uint32_t action = RAW_READ(&bh->action);
            if (action == 0 || !aio_bh_run_native(ctx, (int)i, action, RAW_READ(&bh->arg))) {
                aio_push(ctx, &n, AIO_EV_BH, (int)i, 0, 0);
            }
        }
    }

    if (npfd > 0 && (pfd[0].revents & POLLIN)) {
        strategy_on_event(ctx);
    }
    if (npfd > 1 && pfd[1].revents) {
        if (ctx->is_owner) {
            uint64_t v;
            if (read(ctx->rescue_fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
                AIO_COUNTER_ADD(ctx, AIO_C_RESCUES, 1);
            }
        } else {
            *progress = prog;
            return AIO_E_OWNER_GONE;
        }
    }
    for (int i = 2; i < npfd; i++) {
        if (pfd[i].revents) {
            aio_push(ctx, &n, AIO_EV_FD, pfd[i].fd, (uint32_t)pfd[i].revents, 0);
            AIO_COUNTER_ADD(ctx, AIO_C_FD_DISPATCHES, 1);
            prog = 1;
        }
    }

    if (home) {
        int64_t now = 0;   /* read once, and only if a timer is armed */
        int first_timer = n;
        for (uint32_t i = 0; i < ctx->n_timers; i++) {
            AioTimerSlot *t = &ctx->timer[i];
            if (RAW_READ(&t->state) == 1 && RAW_READ(&t->armed) &&
                RAW_READ(&t->deadline_ns) <= (now ? now : (now = aio_clock_ns()))) {
                RAW_SET(&t->armed, 0);
                RAW_ADD(&t->fires, 1);
                AIO_COUNTER_ADD(ctx, AIO_C_TIMER_FIRES, 1);
                aio_push(ctx, &n, AIO_EV_TIMER, (int)i, 0, RAW_READ(&t->deadline_ns));
                prog = 1;
            }
        }
        if (n - first_timer > 1) {
            qsort(&ctx->events[first_timer], (size_t)(n - first_timer),
                  sizeof(aio_event), aio_cmp_deadline);
        }
    }
    if (ctx->poll_progress) {
        prog = 1;
    }
    *progress = prog;
    return n;
}

