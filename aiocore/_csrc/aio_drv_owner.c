/*
 * aio_drv_owner.c -- the owner's loop of a stress run and its end-of-run
 * drain.  Part of aio_drivers.c (included at its end).
 */

static void drv_arm(AioContext *ctx, AioDrvArea *a, int t, uint64_t *rng)
{
    uint32_t lo = a->timer_min_us ? a->timer_min_us : 50;
    uint32_t hi = a->timer_max_us > lo ? a->timer_max_us : lo + 1;
    int64_t d = (int64_t)(lo + drv_rand(rng) % (hi - lo)) * 1000;
    (void)aio_timer_mod_ns(ctx, t, aio_clock_ns() + d);
}

static void drv_drain_fd(AioDrvArea *a, int fd)
{
    char buf[4096];
    ssize_t r;
    uint64_t total = 0;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        total += (uint64_t)r;
    }
    if (total) {
        DRV_FADD(&a->fd_bytes_read.v, total);
    }
}

/*
 * The owner: blocking aio_poll (gsource=0), glib's prepare / wait / check /
 * dispatch (gsource=1), or either at random per iteration (gsource=2: QEMU's
 * main loop, where glib drives the context and bdrv_drain's blocking aio_poll
 * runs on the same context in between) until `stop`.  BH actions run natively inside the
 * dispatch; the timer and fd events it hands back are handled here in C
 * (timers re-armed with jitter, or left dormant so that the owner sometimes
 * waits with an infinite timeout; pipes drained).
 *
 * Busy-loop accounting: a blocking poll that was woken by the notifier, made
 * no progress, and during which nobody wrote the notifier (event_sets did
 * not move) extends the streak; anything else ends it.  A correct strategy
 * keeps the streak at one or two (a notifier between its event_set and its
 * notified=1); a notifier left readable that nobody clears grows it without
 * bound.  The watchdog judges (it knows whether a notifier was preempted
 * inside aio_notify).
 */
int aio_drv_owner_run(AioContext *ctx, int gsource, int slot)
{
    CHECK_OPEN(ctx);
    AioDrvArea *a = DRV(ctx);
    AioProcSlot *me = drv_me(ctx, slot);
    if (!a || !me || !aio_is_home(ctx)) {
        return !a || !me ? AIO_E_INVAL : AIO_E_NOT_HOME;
    }
    uint64_t rng = drv_seed(a, 0, AIO_DRV_ROLE_OWNER);
    int nt = a->n_timers < AIO_DRV_MAXT ? a->n_timers : AIO_DRV_MAXT;
    int nfd = a->n_fds < AIO_DRV_MAXFD ? a->n_fds : AIO_DRV_MAXFD;
    uint8_t dormant[AIO_DRV_MAXT];
    uint64_t streak = 0, max_streak = RAW_READ(&a->max_streak.v), iters = 0;
    uint64_t *wk = &ctx->shm->counter[AIO_C_WAKEUPS].v;
    uint64_t *es = &ctx->shm->counter[AIO_C_EVENT_SETS].v;

    for (int i = 0; i < nt; i++) {
        dormant[i] = 0;
        drv_arm(ctx, a, a->timer[i], &rng);
    }
    drv_pos(me, AIO_DRV_POS_OWNER);
    int mode = gsource;
    while (!DRV_STOP(a)) {
        if (mode == 2) {
            gsource = (int)(drv_rand(&rng) & 1);
        }
        uint64_t w0 = RAW_READ(wk), e0 = RAW_READ(es);
        uint64_t seq0 = RAW_READ(&ctx->shm->owner.poll_seq);
        int progress = 0, n, woke, bh_progress = 0;
        if (!gsource) {
            n = aio_poll(ctx, 1, &progress);
            if (n < 0) {
                return n;
            }
            woke = RAW_READ(wk) != w0;
        } else {
            int64_t to;
            int r = aio_gsource_prepare(ctx, &to);
            if (r < 0) {
                return r;
            }
            if (r) {
                to = 0;
            }
            r = aio_gsource_wait(ctx, to);
            if (r < 0) {
                return r;
            }
            woke = to != 0 && ctx->gs_npfd > 0 && (ctx->gs_pfd[0].revents & POLLIN);
            if (woke) {
                AIO_COUNTER_ADD(ctx, AIO_C_WAKEUPS, 1);
            }
            r = aio_gsource_check(ctx);
            if (r < 0) {
                return r;
            }
            n = aio_gsource_dispatch(ctx, &progress);
            if (n < 0) {
                return n;
            }
            /* aio_poll counts its own; the GSource path is counted here. */
            RAW_ADD(&ctx->shm->owner.poll_seq, 1);
        }
        int timer_fired = 0;
        for (int i = 0; i < n && i < ctx->events_cap; i++) {
            aio_event *ev = &ctx->events[i];
            if (ev->kind == AIO_EV_TIMER) {
                timer_fired = 1;
                RAW_SET(&a->timer_fires.v, RAW_READ(&a->timer_fires.v) + 1);
                for (int t = 0; t < nt; t++) {
                    if (a->timer[t] == ev->id) {
                        if (drv_rand(&rng) % 100 < a->timer_idle_pct) {
                            dormant[t] = 1;
                        } else {
                            drv_arm(ctx, a, ev->id, &rng);
                        }
                    }
                }
            } else if (ev->kind == AIO_EV_FD) {
                for (int f = 0; f < nfd; f++) {
                    if (a->fd[f] == ev->id) {
                        drv_drain_fd(a, ev->id);
                    }
                }
            }
        }
        bh_progress = progress && !timer_fired;
        if (bh_progress) {
            for (int t = 0; t < nt; t++) {
                if (dormant[t]) {
                    dormant[t] = 0;
                    drv_arm(ctx, a, a->timer[t], &rng);
                }
            }
        }
        if (woke && !progress && RAW_READ(es) == e0) {
            if (streak == 0) {
                RAW_SET(&a->streak_seq0.v, seq0);
            }
            streak++;
            if (streak > max_streak) {
                max_streak = streak;
                RAW_SET(&a->max_streak.v, max_streak);
            }
        } else {
            streak = 0;
        }
        RAW_SET(&a->streak.v, streak);
        RAW_SET(&a->owner_iters.v, ++iters);
#ifdef AIO_CHAOS_H
        aio_chaos_keep_warm();   /* pressure mode: the notifiers' lines, outside aio_poll */
#endif
    }
    RAW_SET(&a->streak.v, 0);
    for (int t = 0; t < nt; t++) {
        (void)aio_timer_del(ctx, a->timer[t]);
    }
    return AIO_OK;
}

/* Run pending work without blocking until nothing is scheduled (end of a
 * run, after every other process stopped).  Returns the BHs left pending. */
int aio_drv_owner_drain(AioContext *ctx, int max_rounds)
{
    CHECK_OPEN(ctx);
    int progress;
    for (int i = 0; i < max_rounds; i++) {
        int32_t id;
        if (aio_drv_pending(ctx, &id, 1) == 0) {
            return 0;
        }
        int r = aio_poll(ctx, 0, &progress);
        if (r < 0) {
            return r;
        }
    }
    int32_t id;
    return aio_drv_pending(ctx, &id, 1);
}

