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
 * The home owner's own counters.  On x86 a lock-prefixed add is a full
 * fence (and ~2.5 ns); the 2015 skeleton keeps them for its aio_poll-wide
 * counters, and the checker models them there ("counters: lock-prefixed
 * adds").  QEMU has no such counters, so on the polling skeleton -- whose
 * counters and poll_seq the home owner alone writes (no foreign poller runs
 * a polling-skeleton aio_poll of a strategy that declares it) -- and for
 * the per-BH dispatch counts of both (aio_dispatch_bh, unless the strategy
 * allows foreign pollers, which may dispatch the same BH) the home owner
 * adds with a relaxed load and store: no fence the strategy did not ask
 * for, and none in the checker either.  A foreign poller keeps the atomic
 * add (it may race the home owner).
 */
static inline void aio_own_add(int foreign, uint64_t *v)
{
    if (foreign) {
        RAW_ADD(v, 1);
    } else {
        RAW_SET(v, RAW_READ(v) + 1);
    }
}

static inline void aio_own_count(AioContext *ctx, int foreign, int i)
{
    aio_own_add(foreign, &ctx->shm->counter[i].v);
}


/*
 * The bottom halves a poller looks at, and whether one is pending.
 *
 * Without a claim_list hook, every BH slot below the high-water mark, in id
 * order (QEMU until 2020 walked its whole bh list).  With one, the list
 * the strategy keeps: the head ctx->shm->bh_list, then each BH's link
 * (values id + 1, 0 = end) -- QEMU's lock-free bh_list since 2020.  The
 * walk's loads are acquire: they stand for the address dependency of
 * following a pointer, which orders them on every architecture (the model
 * checker reads them the same way).  Values come from shared memory: a
 * link out of range ends the walk, and no walk is longer than n_bh steps,
 * so a corrupted or cyclic list cannot hang or crash a poller.
 */
static inline uint32_t aio_bh_link(uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static AioBHSlot *aio_bh_at(AioContext *ctx, uint32_t link, uint32_t hwm)
{
    return link && link - 1 < hwm ? &ctx->bh[link - 1] : NULL;
}

/* Is any BH pending (the strategy's bh_pending on each)? */
static int aio_any_bh_pending(AioContext *ctx)
{
    uint32_t hwm = aio_bh_hwm(ctx);
#if AIO_STRATEGY_HAS_CLAIM_LIST
    AioBHSlot *bh = aio_bh_at(ctx, aio_bh_link(&ctx->shm->bh_list), hwm);
    for (uint32_t steps = 0; bh && steps < hwm; steps++) {
        if (strategy_bh_pending(ctx, bh)) {
            return 1;
        }
        bh = aio_bh_at(ctx, aio_bh_link(&bh->next), hwm);
    }
#else
    for (uint32_t i = 0; i < hwm; i++) {
        if (strategy_bh_pending(ctx, &ctx->bh[i])) {
            return 1;
        }
    }
#endif
    return 0;
}

/*
 * The three sites where a strategy may force a zero timeout (issue 23
 * split QEMU's three apart; timeout_zero is the shorthand for all of them):
 * compute_timeout -- aio_compute_timeout, i.e. GSource prepare's timeout
 * and a blocking aio_poll's; notifier_poll -- the context's own poll
 * handler in the polling phase (QEMU's aio_context_notifier_poll); and
 * last_look -- the polling skeleton's "don't block if aio_notify() was
 * called".  The last two read `notified` by default, as QEMU does.
 */
static inline int aio_site_compute_timeout(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_COMPUTE_TIMEOUT
    return strategy_compute_timeout(ctx) != 0;
#elif AIO_STRATEGY_HAS_TIMEOUT_ZERO
    return strategy_timeout_zero(ctx) != 0;
#else
    (void)ctx;
    return 0;
#endif
}

static inline int aio_site_notifier_poll(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_NOTIFIER_POLL
    return strategy_notifier_poll(ctx) != 0;
#elif AIO_STRATEGY_HAS_TIMEOUT_ZERO
    return strategy_timeout_zero(ctx) != 0;
#else
    return RAW_READ(&ctx->shm->notified) != 0;
#endif
}

static inline int aio_site_last_look(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_LAST_LOOK
    return strategy_last_look(ctx) != 0;
#elif AIO_STRATEGY_HAS_TIMEOUT_ZERO
    return strategy_timeout_zero(ctx) != 0;
#else
    return RAW_READ(&ctx->shm->notified) != 0;
#endif
}

/*
 * 0 if a bottom half is pending (or the strategy's compute_timeout says
 * so), else the time to the nearest timer, else -1 (infinite).  Reads the
 * BH state with the strategy's bh_pending (relaxed by default, as QEMU's
 * aio_compute_timeout read bh->scheduled): ordering it after the write to
 * notify_me is the poll_begin hook's business, and that is the point.
 */
static int64_t aio_compute_timeout(AioContext *ctx)
{
    if (aio_site_compute_timeout(ctx)) {
        return 0;
    }
    if (aio_any_bh_pending(ctx)) {
        return 0;
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
 * One bottom half, in aio_bh_poll: the strategy's claim; if it says so, the
 * callback starts -- a native action runs here, in C, right after the claim
 * (nothing between them: a fence there would hide what the claim failed to
 * order, e.g. QEMU e8d3b1a2's plain `bh->scheduled = 0`), a Python callback
 * is handed back.  Counted after the callback, with the home owner's plain
 * adds (aio_own_add): no locked instruction of ours follows a claim.  A
 * one-shot slot is freed once its callback ran.
 */
static int aio_dispatch_bh(AioContext *ctx, AioBHSlot *bh, int *n)
{
    if (!strategy_claim(ctx, bh)) {
        return 0;
    }
    uint32_t st = RAW_READ(&bh->state);
    if (st != AIO_BH_ALLOCATED && st != AIO_BH_ONESHOT) {
        return 0;   /* garbage in a free or deleted slot: drop it */
    }
    int id = (int)(bh - ctx->bh), shared = !aio_is_home(ctx) || AIO_STRATEGY_FOREIGN_POLLERS;
    uint32_t action = RAW_READ(&bh->action);
    if (action == 0 || !aio_bh_run_native(ctx, id, action, RAW_READ(&bh->arg))) {
        aio_push(ctx, n, st == AIO_BH_ONESHOT ? AIO_EV_BH_ONESHOT : AIO_EV_BH, id, 0, 0);
    }
    aio_own_add(shared, &bh->dispatches);
    aio_own_add(shared, &ctx->shm->counter[AIO_C_BH_DISPATCHES].v);
    if (st == AIO_BH_ONESHOT) {
        /* Release: the callback (and the claim) before the slot is seen
         * free; pairs with the acquire CAS of aio_bh_take. */
        __atomic_store_n(&bh->state, AIO_BH_FREE, __ATOMIC_RELEASE);
    }
    return 1;
}

/*
 * The dispatch phase shared by aio_poll and the GSource path: aio_bh_poll
 * (without a claim_list hook, every BH in id order; with one, the list it
 * takes, walked through the links, each link read before the claim -- the
 * claim may let a scheduler put the BH on the list again), then the fd
 * handlers -- the notifier's own handler is the strategy's on_event and
 * does not count as progress -- then the expired timers.  Returns the
 * number of events for Python; *progress as in QEMU.
 */
static int aio_dispatch(AioContext *ctx, struct pollfd *pfd, int npfd, int *progress)
{
    int n = 0;
    int prog = 0;
    int home = aio_is_home(ctx);
    uint32_t hwm = aio_bh_hwm(ctx);

    /* now_hint: the caller's position stamp (polling skeleton), or 0; a
     * stamp only -- timers below read the clock. */
    int64_t now0 = ctx->now_hint ? ctx->now_hint : aio_stamp_ns();
    ctx->now_hint = 0;
    aio_set_pos_at(ctx, AIO_POS_DISPATCH, 0, now0);
    ctx->poll_progress = 0;
#if AIO_STRATEGY_HAS_CLAIM_LIST
    AioBHSlot *bh = aio_bh_at(ctx, strategy_claim_list(ctx), hwm);
    for (uint32_t steps = 0; bh && steps < hwm; steps++) {
        AioBHSlot *next = aio_bh_at(ctx, aio_bh_link(&bh->next), hwm);
        prog |= aio_dispatch_bh(ctx, bh, &n);
        bh = next;
    }
#else
    for (uint32_t i = 0; i < hwm; i++) {
        prog |= aio_dispatch_bh(ctx, &ctx->bh[i], &n);
    }
#endif

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

