/*
 * aio_poll_polling.c -- the polling aio_poll skeleton: QEMU's aio_poll as it
 * is today (util/aio-posix.c: aio_poll, try_poll_mode, run_poll_handlers,
 * run_poll_handlers_once, adjust_polling_time; util/async.c:
 * aio_notify_accept, aio_context_notifier_poll).
 *
 * The spec is aiocore/_compiler/_skeleton.py ("polling"); the named steps, in order:
 *
 *   compute_timeout  QEMU: timeout = blocking ? aio_compute_timeout(ctx) : 0,
 *                    *before* notify_me is raised
 *   poll_handlers    QEMU: try_poll_mode -> run_poll_handlers: busy-poll for
 *                    max_ns = qemu_soonest_timeout(timeout, poll_ns), each
 *                    round run_poll_handlers_once; a ready handler sets
 *                    *timeout = 0, which ends the loop
 *   poll_begin       QEMU: use_notify_me = timeout != 0; if so
 *                    notify_me += 2; smp_mb()  (the strategy's poll_begin)
 *   last_look        QEMU: "Don't block if aio_notify() was called":
 *                    if (qatomic_read(&ctx->notified)) timeout = 0
 *                    (the strategy's timeout_zero hook if it has one)
 *   wait             QEMU: if (timeout || fdmon_ops->need_wait(ctx))
 *                    fdmon_ops->wait(...)  -- otherwise no system call
 *   poll_end         QEMU: if (use_notify_me) store_release(notify_me - 2);
 *                    aio_notify_accept(ctx)  (the strategy's poll_end, which
 *                    calls accept; else the accept hook alone)
 *   adjust           QEMU: if (ctx->poll_max_ns) adjust_polling_time(ctx,
 *                    block_ns) with block_ns measured from aio_poll's start
 *   dispatch         QEMU: aio_bh_poll, aio_dispatch_ready_handlers, timers
 *
 * The poll handlers of one round (run_poll_handlers_once) are the context's
 * own notifier (aio_context_notifier_poll: atomic_read(notified), or the
 * strategy's notifier_poll / timeout_zero hook), the bottom halves (the
 * strategy's bh_pending, as the spec asks: in QEMU a BH is seen through
 * aio_notify's notified; looking at the BHs too makes the poll phase see the
 * work of strategies that never set notified, which the checker then
 * judges), and the owner's fds' native
 * poll handlers (a readiness word in the segment, compared with the value
 * last consumed).  As in QEMU, a ready notifier sets timeout = 0 but is not
 * progress; progress comes from dispatch.
 *
 * need_wait (QEMU's fdmon_poll_need_wait: poll_disable_cnt != 0) is true
 * when an owner fd handler has no poll handler: its readiness can only be
 * learnt by a system call, so polling is pointless (try_poll_mode does not
 * poll) and even a zero-timeout aio_poll must ppoll.
 *
 * No locked instruction of the core's own sits between the poll_begin hook
 * and the last look (counters are added before and after), so that a fence
 * the strategy forgot is not supplied by us.
 */

/* QEMU's fdmon_poll_need_wait (aio_poll_disabled). */
static inline int aio_need_wait(AioContext *ctx)
{
    return ctx->n_nopoll_fds > 0;
}

/* qemu_soonest_timeout: -1 (infinite) is the largest value. */
static inline int64_t aio_soonest(int64_t a, int64_t b)
{
    return (uint64_t)a < (uint64_t)b ? a : b;
}

/* The owner's fds' native poll handlers: a poll word that moved since it
 * was last consumed.  Acquire: pairs with the release in aio_poll_word_add,
 * so what the producer wrote before bumping the word is visible to the fd's
 * handler. */
static inline int aio_fd_poll_ready(AioContext *ctx, int i)
{
    int w = ctx->fd_poll[i];
    return w >= 0 &&
           __atomic_load_n(&ctx->shm->poll_word[w].v, __ATOMIC_ACQUIRE) != ctx->fd_poll_seen[i];
}

/* run_poll_handlers_once: 1 if a handler is ready (and then *timeout = 0). */
static int aio_run_poll_handlers_once(AioContext *ctx, int64_t *timeout)
{
    /* aio_context_notifier_poll ("no need for memory barriers here
     * because we're only reading ctx->notified"), or the strategy's own
     * notifier_poll; then the bottom halves (bh_pending). */
    int ready = aio_site_notifier_poll(ctx) || aio_any_bh_pending(ctx);
    for (int i = 0; i < ctx->nfds && !ready; i++) {
        ready = aio_fd_poll_ready(ctx, i);
    }
    if (ready) {
        *timeout = 0;
    }
    return ready;
}

/* run_poll_handlers: poll until a handler is ready or max_ns has passed;
 * then "if time has passed with no successful polling, adjust *timeout to
 * keep the same ending time".  t_start is a stopwatch reading (aio_ticks)
 * taken at aio_poll's start.  QEMU reads the clock after the round that
 * found a handler ready too; we do not: the loop ends whatever it says (the
 * ready handler made *timeout 0, so max_ns is 0), and the wake-up it would
 * delay is the one polling exists to speed up. */
static int aio_run_poll_handlers(AioContext *ctx, int64_t max_ns, int64_t *timeout,
                                 int64_t t_start)
{
    int64_t elapsed;
    for (;;) {
        if (aio_run_poll_handlers_once(ctx, timeout)) {
            return 1;
        }
        elapsed = aio_ticks_ns(aio_ticks() - t_start);
        max_ns = aio_soonest(*timeout, max_ns);
        if (elapsed >= max_ns || aio_need_wait(ctx)) {
            break;
        }
    }
    if (*timeout != -1) {
        *timeout -= *timeout < elapsed ? *timeout : elapsed;
    }
    return 0;
}

/* adjust_polling_time, with poll_ns in the segment's owner block (so that
 * `aiocore info` and the watchdog can read it). */
static void aio_adjust_polling_time(AioContext *ctx, int64_t block_ns)
{
    int64_t ns = RAW_READ(&ctx->shm->owner.poll_ns), old = ns;
    if (block_ns <= ns) {
        return;                       /* the sweet spot */
    }
    if (block_ns > ctx->poll_max_ns) {
        /* We'd have to poll for too long, poll less. */
        ns = ctx->poll_shrink ? ns / ctx->poll_shrink : 0;
    } else if (ns < ctx->poll_max_ns && block_ns < ctx->poll_max_ns) {
        /* There is room to grow, poll longer. */
        int64_t grow = ctx->poll_grow ? ctx->poll_grow : 2;
        ns = ns ? ns * grow : 4000;   /* start polling at 4 microseconds */
        if (ns > ctx->poll_max_ns) {
            ns = ctx->poll_max_ns;
        }
    }
    if (ns != old) {
        RAW_SET(&ctx->shm->owner.poll_ns, ns);
        aio_own_count(ctx, 0, ns > old ? AIO_C_POLL_GROWS : AIO_C_POLL_SHRINKS);   /* home only */
    }
}

static int aio_poll_polling(AioContext *ctx, int blocking, int *progress)
{
    struct pollfd pfd[AIO_PFD_CAP];
    int npfd, ncore, r = 0, foreign, use_notify_me, waited = 0, polled = 0;
    int64_t timeout, now, max_ns, poll_ns, t_start;

    foreign = !aio_is_home(ctx);
    if (foreign) {
        if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE) {
            return AIO_E_OWNER_GONE;
        }
        if ((r = aio_acquire(ctx)) != AIO_OK) {
            return r;
        }
        AIO_COUNTER_ADD(ctx, AIO_C_FOREIGN_POLLS, 1);
    }
    aio_own_count(ctx, foreign, AIO_C_POLLS);
    if (blocking) {
        aio_own_count(ctx, foreign, AIO_C_BLOCKING_POLLS);
    }
    npfd = ncore = aio_build_pollfds(ctx, pfd);
    aio_recovery_pollfds(ctx, pfd, &npfd);
    /* now: the owner's position stamps (the watchdog's since_ns), renewed
     * after a wait or a fruitless busy-poll; durations use the stopwatch
     * (aio_ticks), deadlines read the clock themselves (aio_process.c says
     * why a polling wake-up reads no clock_gettime). */
    t_start = aio_ticks();
    now = aio_stamp_at(t_start);

    /* compute_timeout -- aio_poll: timeout = blocking ? aio_compute_timeout(ctx) : 0 */
    AIO_STEP(AIO_STEP_COMPUTE_TIMEOUT);
    aio_set_pos_at(ctx, AIO_POS_COMPUTE_TIMEOUT, 0, now);
    timeout = blocking ? aio_compute_timeout(ctx) : 0;

    /* poll_handlers -- try_poll_mode: max_ns = qemu_soonest_timeout(*timeout,
     * ctx->poll_ns); if (max_ns && !need_wait) run_poll_handlers(...) */
    AIO_STEP(AIO_STEP_POLL_HANDLERS);
    poll_ns = foreign ? 0 : RAW_READ(&ctx->shm->owner.poll_ns);
    max_ns = aio_soonest(timeout, poll_ns);
    if (max_ns && !aio_need_wait(ctx)) {
        aio_set_pos_at(ctx, AIO_POS_POLLING, max_ns, now);
        polled = aio_run_poll_handlers(ctx, max_ns, &timeout, t_start);
        if (polled) {
            aio_own_count(ctx, foreign, AIO_C_POLL_SUCCESSES);
        } else {
            now = aio_stamp_ns();   /* polled for microseconds: a fresh stamp */
        }
    }

    /* poll_begin -- aio_poll: use_notify_me = timeout != 0; if so,
     * notify_me += 2 and smp_mb (pairs with smp_mb in aio_notify): the hook. */
    AIO_STEP(AIO_STEP_POLL_BEGIN);
    use_notify_me = timeout != 0;
    aio_set_pos_at(ctx, AIO_POS_POLL_BEGIN, 0, now);   /* relaxed stores only */
    if (use_notify_me) {
        strategy_poll_begin(ctx);
    }

    /* last_look -- aio_poll: "Don't block if aio_notify() was called":
     * if (qatomic_read(&ctx->notified)) timeout = 0 (the last_look site). */
    AIO_STEP(AIO_STEP_LAST_LOOK);
    if (use_notify_me && aio_site_last_look(ctx)) {
        timeout = 0;
    }

    /* wait -- aio_poll: if (timeout || ctx->fdmon_ops->need_wait(ctx))
     * ctx->fdmon_ops->wait(ctx, &ready_list, timeout); */
    AIO_STEP(AIO_STEP_WAIT);
    if (timeout || aio_need_wait(ctx)) {
        /* A fresh stamp (the stopwatch: no system call), taken after the
         * last look: the owner is about to sleep, and the stress drivers
         * aim their schedules at the moment its last look reads
         * (aio_drv_pingpong), which `now` -- aio_poll's start, or the end
         * of the busy-poll phase -- would place a whole compute_timeout
         * and poll_begin early. */
        aio_set_pos_at(ctx, timeout < 0 ? AIO_POS_WAIT_INFINITE : AIO_POS_WAIT_TIMED, timeout,
                       aio_stamp_ns());
        if (foreign) {
            aio_release(ctx);
        }
        r = aio_wait(ctx, pfd, npfd, timeout);
        waited = 1;
        now = aio_clock_ns();
        aio_recovery_after_wait(ctx, pfd, npfd);
        if (foreign) {
            int r2 = aio_acquire(ctx);
            if (r2 != AIO_OK) {
                return r2;   /* e.g. the owner died while we slept */
            }
        }
    }

    /* poll_end -- aio_poll: if (use_notify_me) qatomic_store_release(
     * &ctx->notify_me, notify_me - 2); aio_notify_accept(ctx): the
     * strategy's poll_end (which calls accept), else accept alone. */
    AIO_STEP(AIO_STEP_POLL_END);
    aio_set_pos_at(ctx, AIO_POS_POLL_END, 0, now);
    if (use_notify_me) {
        strategy_poll_end(ctx);
    } else {
        strategy_accept(ctx);
    }
    if (r < 0) {
        if (foreign) {
            aio_release(ctx);
        }
        aio_set_pos(ctx, AIO_POS_IDLE, 0);
        return r;
    }

    /* adjust -- aio_poll: if (ctx->poll_max_ns) { block_ns = now - start;
     * adjust_polling_time(ctx, &ctx->poll, block_ns); }  (by the stopwatch) */
    AIO_STEP(AIO_STEP_ADJUST);
    if (ctx->poll_max_ns && !foreign) {
        aio_adjust_polling_time(ctx, aio_ticks_ns(aio_ticks() - t_start));
    }

    /* dispatch -- aio_bh_poll, aio_dispatch_ready_handlers (an fd whose poll
     * handler was ready counts as readable; its word is consumed), timers.
     * The notifier's on_event runs only if a ppoll ran and saw it. */
    AIO_STEP(AIO_STEP_DISPATCH);
    if (aio_is_home(ctx)) {
        for (int i = 0; i < ctx->nfds && 2 + i < ncore; i++) {
            int w = ctx->fd_poll[i];
            if (w >= 0) {
                uint32_t v = __atomic_load_n(&ctx->shm->poll_word[w].v, __ATOMIC_ACQUIRE);
                if (v != ctx->fd_poll_seen[i]) {
                    ctx->fd_poll_seen[i] = v;
                    pfd[2 + i].revents |= POLLIN;
                }
            }
        }
    }
    ctx->now_hint = now;
    r = aio_dispatch(ctx, pfd, ncore, progress);
    if (!waited) {
        aio_own_count(ctx, foreign, AIO_C_POLLS_NO_SYSCALL);
    }
    if (waited && blocking && timeout < 0) {
        aio_own_count(ctx, foreign, AIO_C_INFINITE_WAITS);
    }
    if (waited && blocking && (pfd[0].revents & POLLIN)) {
        aio_own_count(ctx, foreign, AIO_C_WAKEUPS);
        if (!*progress) {
            aio_own_count(ctx, foreign, AIO_C_SPURIOUS_WAKEUPS);
        }
    }
    aio_own_add(foreign, &ctx->shm->owner.poll_seq);
    aio_set_pos_at(ctx, AIO_POS_IDLE, 0, now);
    if (foreign) {
        aio_release(ctx);
    }
    return r;
}
