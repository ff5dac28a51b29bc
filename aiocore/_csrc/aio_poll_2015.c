/*
 * aio_poll_2015.c -- the 2015 aio_poll skeleton (QEMU 2.4-2.8).
 *
 * The skeleton of DESIGN.md ("The aio_poll skeleton and its hook points"),
 * with its named steps (aiocore/_compiler/_skeleton.py STEPS["2015"]) marked by
 * AIO_STEP: poll_begin, compute_timeout, wait, poll_end, dispatch.  Every
 * aio_poll makes one ppoll system call, blocking or not.
 *
 * Part of the core template: #included by aio_core.c into one translation
 * unit per strategy (see aio_core.c), never compiled alone.
 */
static int aio_poll_2015(AioContext *ctx, int blocking, int *progress)
{
    struct pollfd pfd[AIO_PFD_CAP];
    int npfd, ncore, r, foreign;
    int64_t timeout;

    foreign = !aio_is_home(ctx);
    if (foreign) {
        if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE) {
            return AIO_E_OWNER_GONE;
        }
        /* 2015-era QEMU: pollers are serialized by the context lock,
         * which is dropped around the wait. */
        if ((r = aio_acquire(ctx)) != AIO_OK) {
            return r;
        }
        AIO_COUNTER_ADD(ctx, AIO_C_FOREIGN_POLLS, 1);
    }
    AIO_COUNTER_ADD(ctx, AIO_C_POLLS, 1);
    if (blocking) {
        AIO_COUNTER_ADD(ctx, AIO_C_BLOCKING_POLLS, 1);
    }
    npfd = ncore = aio_build_pollfds(ctx, pfd);
    aio_recovery_pollfds(ctx, pfd, &npfd);
    /* Counters and positions are written before poll_begin, so that no
     * locked instruction of ours sits between the hook's write of notify_me
     * and compute_timeout's reads of the BH flags. */
    aio_set_pos(ctx, AIO_POS_POLL_BEGIN, 0);

    AIO_STEP(AIO_STEP_POLL_BEGIN);
    if (blocking) {
        strategy_poll_begin(ctx);
    }
    AIO_STEP(AIO_STEP_COMPUTE_TIMEOUT);
    timeout = blocking ? aio_compute_timeout(ctx) : 0;
    aio_set_pos(ctx, timeout < 0 ? AIO_POS_WAIT_INFINITE : AIO_POS_WAIT_TIMED, timeout);

    if (foreign) {
        aio_release(ctx);
    }
    AIO_STEP(AIO_STEP_WAIT);
    r = aio_wait(ctx, pfd, npfd, timeout);
    aio_recovery_after_wait(ctx, pfd, npfd);
    if (foreign) {
        int r2 = aio_acquire(ctx);
        if (r2 != AIO_OK) {
            return r2;   /* e.g. the owner died while we slept */
        }
    }
    aio_set_pos(ctx, AIO_POS_POLL_END, 0);

    AIO_STEP(AIO_STEP_POLL_END);
    if (blocking) {
        strategy_poll_end(ctx);
    } else if (AIO_STRATEGY_ACCEPT_NONBLOCKING) {
        strategy_accept(ctx);
    }
    if (r < 0) {
        if (foreign) {
            aio_release(ctx);
        }
        aio_set_pos(ctx, AIO_POS_IDLE, 0);
        return r;
    }

    AIO_STEP(AIO_STEP_DISPATCH);
    r = aio_dispatch(ctx, pfd, ncore, progress);
    if (blocking && timeout < 0) {
        AIO_COUNTER_ADD(ctx, AIO_C_INFINITE_WAITS, 1);
    }
    if (blocking && (pfd[0].revents & POLLIN)) {
        AIO_COUNTER_ADD(ctx, AIO_C_WAKEUPS, 1);
        if (!*progress) {
            AIO_COUNTER_ADD(ctx, AIO_C_SPURIOUS_WAKEUPS, 1);
        }
    }
    RAW_ADD(&ctx->shm->owner.poll_seq, 1);
    aio_set_pos(ctx, AIO_POS_IDLE, 0);
    if (foreign) {
        aio_release(ctx);
    }
    return r;
}

/* The entry point: the skeleton the segment was created with. */
static int aio_poll_polling(AioContext *ctx, int blocking, int *progress);

int aio_poll(AioContext *ctx, int blocking, int *progress)
{
    int r;
    *progress = 0;
    CHECK_OPEN(ctx);
    if ((r = aio_may_poll(ctx)) != AIO_OK) {
        return r;
    }
    if (ctx->skeleton == AIO_SKEL_POLLING) {
        return aio_poll_polling(ctx, blocking, progress);
    }
    return aio_poll_2015(ctx, blocking, progress);
}

aio_event *aio_events(AioContext *ctx)
{
    return ctx->events;
}

