/*
 * aio_drv_procs.c -- the loops of a stress run's processes besides the
 * owner: ping-pong notifiers, timer racers, thread-pool workers, virtio
 * guests, fd writers and foreign pollers.  Part of aio_drivers.c (included
 * at its end); each loop runs between "go" and "stop" without returning to
 * Python, its protocol calls bracketed as drv_pos's comment says.
 */

#define DRV_PROLOGUE(ctx, slot)                                         \
    CHECK_OPEN(ctx);                                                    \
    AioDrvArea *a = DRV(ctx);                                           \
    AioProcSlot *me = drv_me((ctx), (slot));                            \
    if (!a || !me || w < 0 || w >= AIO_DRV_MAXW) {                      \
        return AIO_E_INVAL;                                             \
    }

/* Wait until the previous schedule of a ping-pong BH ran; 0 on stop. */
static int drv_wait_acked(AioDrvArea *a, AioProcSlot *me, AioDrvPP *pp, uint64_t sent)
{
    uint32_t spins = 0;
    drv_pos(me, AIO_DRV_POS_WAITING);
    while (DRV_ACQ(&pp->acked) < sent) {
        if (DRV_STOP(a)) {
            return 0;
        }
        drv_backoff(&spins);
    }
    return 1;
}

/*
 * ping-pong: one schedule per wakeup.  Each round waits until the previous
 * schedule ran, then picks how to time the next one:
 *  - race_pct% of rounds aim at the owner's next read of the BH flags: the
 *    store-buffering window between its write of notify_me (poll_begin)
 *    and its reads in compute_timeout.  The notifier learns where that is:
 *    in a "measuring" round it lets the owner go to sleep and reads the
 *    owner's since_ns stamp for wait_infinite (taken right after the flags
 *    were read), which gives the delay from the moment it saw its
 *    acknowledgement to the owner's flag reads; in "aiming" rounds it
 *    schedules at that delay plus a jitter of -600..+200 ns.  While it
 *    waits, it reads notify_me, so that the owner's store to it needs an
 *    ownership request and lingers in the store buffer.
 *  - half of the rest spin a random 0..jitter_ns first;
 *  - the others sleep 10-200 us first, so that the owner is surely asleep
 *    (the plain wake-up path).
 */
int aio_drv_pingpong(AioContext *ctx, int w, int slot)
{
    DRV_PROLOGUE(ctx, slot);
    int bh = a->bh_pp[w];
    AioDrvPP *pp = &a->pp[w];
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_NOTIFIER);
    uint64_t sent = RAW_READ(&pp->sent);
    int64_t est = -1;           /* ack seen -> owner's flag reads, ns */
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {
            continue;
        }
        uint32_t spins = 0;
        drv_pos(me, AIO_DRV_POS_WAITING);
        while (DRV_ACQ(&pp->acked) < sent) {
            if (DRV_STOP(a)) {
                goto out;
            }
            (void)RAW_READ(&ctx->shm->notify_me);
            drv_backoff(&spins);
        }
        int64_t t_ack = aio_clock_ns();
        uint64_t r = drv_rand(&rng);
        uint32_t mode = (uint32_t)(r % 100);
        r >>= 8;
        if (mode < a->race_pct) {
            if (est < 0 || r % 8 == 0) {
                /* measure: wait for the owner to go to sleep */
                uint64_t seq = RAW_READ(&ctx->shm->owner.poll_seq);
                for (uint32_t k = 0; k < 200000 && !DRV_STOP(a); k++) {
                    if (RAW_READ(&ctx->shm->owner.pos) == AIO_POS_WAIT_INFINITE &&
                        RAW_READ(&ctx->shm->owner.poll_seq) != seq) {
                        int64_t d = RAW_READ(&ctx->shm->owner.since_ns) - t_ack;
                        if (d > 0 && d < 100000) {
                            est = est < 0 ? d : (est * 7 + d) / 8;
                            RAW_SET(&pp->est_ns, est);
                            RAW_SET(&pp->measured, RAW_READ(&pp->measured) + 1);
                        }
                        break;
                    }
                }
            } else {
                int64_t target = t_ack + est - 600 + (int64_t)((r >> 3) % 800);
                while (aio_clock_ns() < target) {
                    (void)RAW_READ(&ctx->shm->notify_me);
                }
                RAW_SET(&pp->aimed, RAW_READ(&pp->aimed) + 1);
            }
        } else if (mode < a->race_pct + (100 - a->race_pct) / 2) {
            drv_delay_ns(a, (int64_t)(r % ((uint64_t)a->jitter_ns + 1)));
        } else {
            drv_sleep_ns(10000 + (int64_t)(r % 190000));
        }
        sent++;
        RAW_SET(&pp->sent, sent);
        drv_schedule(ctx, me, bh);
    }
out:
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * timers: a ping-pong notifier that aims its schedules at the owner's timer
 * deadlines (read from the segment's timer slots), so that a BH arrives
 * just before, at, or just after the owner's ppoll times out.
 */
int aio_drv_timer_racer(AioContext *ctx, int w, int slot)
{
    DRV_PROLOGUE(ctx, slot);
    int bh = a->bh_pp[w];
    AioDrvPP *pp = &a->pp[w];
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_TIMER_RACER);
    uint64_t sent = RAW_READ(&pp->sent);
    int nt = a->n_timers < AIO_DRV_MAXT ? a->n_timers : AIO_DRV_MAXT;
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {
            continue;
        }
        if (!drv_wait_acked(a, me, pp, sent)) {
            break;
        }
        int64_t now = aio_clock_ns(), best = INT64_MAX;
        for (int t = 0; t < nt; t++) {
            int id = a->timer[t];
            if (id >= 0 && (uint32_t)id < ctx->n_timers && RAW_READ(&ctx->timer[id].armed)) {
                int64_t d = RAW_READ(&ctx->timer[id].deadline_ns);
                if (d > now && d < best) {
                    best = d;
                }
            }
        }
        uint64_t r = drv_rand(&rng);
        if (best != INT64_MAX && best - now < 5000000) {
            /* aim at deadline - 4us .. deadline + 4us */
            int64_t target = best - 4000 + (int64_t)(r % 8000);
            while (aio_clock_ns() < target && !DRV_STOP(a)) {
                barrier();
            }
        } else {
            drv_delay_ns(a, (int64_t)(r % ((uint64_t)a->jitter_ns + 1)));
        }
        sent++;
        RAW_SET(&pp->sent, sent);
        drv_schedule(ctx, me, bh);
    }
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * thread-pool: a worker waits for requests, and for each works a random
 * 0..work_ns, publishes the completion (its `done`, the payload) and
 * schedules the completion BH (QEMU's thread-pool.c: worker_thread ->
 * qemu_bh_schedule(pool->completion_bh)).  Requests come in batches
 * (drv_pool_collect), so a worker completes several back to back.  Once a
 * schedule returns, `sched_done` says its payload is due: the watchdog's
 * lost-work state is a due payload no callback saw with the BH not pending.
 */
int aio_drv_pool_worker(AioContext *ctx, int w, int slot)
{
    DRV_PROLOGUE(ctx, slot);
    AioDrvPool *p = &a->pool[w];
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_WORKER);
    uint64_t done = RAW_READ(&p->done);
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {
            continue;
        }
        uint32_t spins = 0;
        drv_pos(me, AIO_DRV_POS_WAITING);
        while (DRV_ACQ(&p->req) <= done && !DRV_STOP(a)) {
            drv_backoff(&spins);
        }
        if (DRV_STOP(a)) {
            break;
        }
        drv_pos(me, AIO_DRV_POS_WORKING);
        drv_delay_ns(a, (int64_t)(drv_rand(&rng) % ((uint64_t)a->work_ns + 1)));
        done++;
        DRV_REL(&p->done, done);
        drv_schedule(ctx, me, a->bh_pool);
        RAW_SET(&p->sched_done, done);
    }
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * virtio-net-tx: the "guest" fills the tx ring with sequence numbers and
 * kicks the tx BH; the BH (drv_tx) drains up to a burst and reschedules
 * itself while work remains.
 */
int aio_drv_virtio_guest(AioContext *ctx, int w, int slot)
{
    DRV_PROLOGUE(ctx, slot);
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_GUEST);
    uint64_t head = RAW_READ(&a->head.v);
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {
            continue;
        }
        uint64_t space = AIO_DRV_RING - (head - DRV_ACQ(&a->tail.v));
        if (space == 0) {
            uint32_t spins = 0;
            drv_pos(me, AIO_DRV_POS_WAITING);
            while (AIO_DRV_RING - (head - DRV_ACQ(&a->tail.v)) == 0 && !DRV_STOP(a)) {
                drv_backoff(&spins);
            }
            continue;
        }
        uint64_t r = drv_rand(&rng);
        uint64_t k = 1 + r % (space < 64 ? space : 64);
        drv_pos(me, AIO_DRV_POS_WORKING);
        for (uint64_t i = 0; i < k; i++) {
            RAW_SET(&a->ring[(head + i) & (AIO_DRV_RING - 1)], head + i);
        }
        head += k;
        DRV_REL(&a->head.v, head);
        drv_schedule(ctx, me, a->bh_tx);
        RAW_SET(&a->kicked.v, head);   /* the kick returned: its payload is due */
        r >>= 8;
        if (r % 8 == 0) {
            drv_delay_ns(a, (int64_t)(r % ((uint64_t)a->jitter_ns * 4 + 1)));
        }
    }
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * fd-io: write random bursts into the owner's pipes (its fd handlers drain
 * them), and now and then a bare aio_notify with no work behind it.
 */
int aio_drv_fd_writer(AioContext *ctx, int w, int slot, const int *fds, int nfds)
{
    DRV_PROLOGUE(ctx, slot);
    if (nfds <= 0 || nfds > AIO_DRV_MAXFD) {
        return AIO_E_INVAL;
    }
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_FDWRITER);
    char buf[64];
    memset(buf, 'x', sizeof(buf));
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {
            continue;
        }
        uint64_t r = drv_rand(&rng);
        int fd = fds[r % (uint64_t)nfds];
        r >>= 8;
        size_t len = 1 + r % sizeof(buf);
        r >>= 8;
        drv_pos(me, AIO_DRV_POS_WORKING);
        ssize_t k = write(fd, buf, len);
        if (k > 0) {
            DRV_FADD(&a->fd_bytes_written.v, (uint64_t)k);
            drv_op(me);
        } else {
            drv_sleep_ns(50000);   /* pipe full: the owner is behind */
        }
        if (r % 16 == 0) {
            drv_pos(me, AIO_DRV_POS_IN_NOTIFY);
            (void)aio_notify(ctx);
            drv_call_end(me, AIO_DRV_POS_WORKING);
            DRV_FADD(&a->bare_notifies.v, 1);
        }
        r >>= 8;
        drv_delay_ns(a, 2000 + (int64_t)(r % ((uint64_t)a->jitter_ns * 8 + 1)));
    }
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * foreign: a second, temporary poller (QEMU before 2018: bdrv_drain from
 * another thread, under the AioContext lock; the Promela model's
 * temporary_waiter).  It comes, polls without blocking until it makes
 * progress (or a burst runs out), and goes away for a while.
 */
int aio_drv_foreign(AioContext *ctx, int w, int slot)
{
    DRV_PROLOGUE(ctx, slot);
    uint64_t rng = drv_seed(a, w, AIO_DRV_ROLE_FOREIGN);
    uint32_t lo = a->foreign_away_min_us, hi = a->foreign_away_max_us;
    uint32_t burst = a->foreign_burst_max ? a->foreign_burst_max : 64;
    if (hi <= lo) {
        hi = lo + 1;
    }
    while (!DRV_STOP(a)) {
        drv_pos(me, AIO_DRV_POS_AWAY);
        int64_t end = aio_clock_ns() + (int64_t)(lo + drv_rand(&rng) % (hi - lo)) * 1000;
        int64_t now;
        while (!DRV_STOP(a) && (now = aio_clock_ns()) < end) {
            int64_t d = end - now;
            drv_sleep_ns(d > 2000000 ? 2000000 : d);
        }
        uint32_t nb = 1 + (uint32_t)(drv_rand(&rng) % burst);
        for (uint32_t k = 0; k < nb && !DRV_STOP(a); k++) {
            int progress = 0;
            drv_pos(me, AIO_DRV_POS_IN_POLL);
            int r = aio_poll(ctx, 0, &progress);
            drv_call_end(me, AIO_DRV_POS_AWAY);
            if (r == AIO_E_OWNER_GONE) {
                goto out;
            }
            if (r < 0) {
                return r;
            }
            if (progress) {
                break;   /* bdrv_drain's condition is met: leave */
            }
        }
    }
out:
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/*
 * A victim of `aiocore stress --kill-rate`: a notifier that exists to be
 * SIGKILLed at a random instant.  It schedules its own BH (a counting
 * action) with a little jitter and now and then makes a bare aio_notify, so
 * that a kill lands inside bh_schedule or aio_notify, between any two of the
 * strategy's primitives, as often as between calls.  Its slot keeps
 * publishing which call it is in: a victim killed in the middle of one is
 * `dead_in_protocol` to the watchdog until the victim server has seen the
 * owner's recovery run and releases the slot (workloads/_child.py).
 */
int aio_drv_victim(AioContext *ctx, int bh, int slot)
{
    int w = 0;
    DRV_PROLOGUE(ctx, slot);
    uint64_t rng = drv_seed(a, (int)getpid(), AIO_DRV_ROLE_NOTIFIER);
    while (!DRV_STOP(a)) {
        if (drv_quiet(a, me)) {   /* nobody rescues a stuck owner by accident */
            continue;
        }
        uint64_t r = drv_rand(&rng);
        if (r % 8 == 0) {
            drv_pos(me, AIO_DRV_POS_IN_NOTIFY);
            (void)aio_notify(ctx);
            drv_call_end(me, AIO_DRV_POS_WORKING);
        } else {
            (void)drv_schedule(ctx, me, bh);
        }
        drv_op(me);
        drv_delay_ns(a, (int64_t)((r >> 8) % ((uint64_t)a->jitter_ns + 1)));
    }
    drv_pos(me, AIO_DRV_POS_EXITED);
    return AIO_OK;
}

/* Free slot `slot` of a process that is gone (the victim server, once the
 * owner's recovery has handled its victim's death).  Only a dead pid is
 * released: a live process keeps its slot. */
int aio_drv_proc_release(AioContext *ctx, int slot)
{
    CHECK_OPEN(ctx);
    AioProcSlot *me = drv_me(ctx, slot);
    if (!me) {
        return AIO_E_INVAL;
    }
    uint32_t pid = RAW_READ(&me->pid);
    if (pid && kill((pid_t)pid, 0) == 0) {
        return AIO_E_INVAL;   /* still alive: not ours to free */
    }
    DRV_REL(&me->pos, (uint32_t)AIO_DRV_POS_EXITED);
    /* Release: the slot's last fields are written before a claimer's CAS
     * can see it free (pairs with the acq_rel CAS in aio_drv_proc_claim). */
    __atomic_store_n(&me->pid, 0, __ATOMIC_RELEASE);
    return AIO_OK;
}
