/*
 * aio_drivers.c -- native bottom-half actions and workload hot loops.
 * See aio_drivers.h.  Included at the end of aio_core.c, so that every
 * strategy module has these loops compiled against its own hooks.
 *
 * Each loop below is what one process of a stress run does between "go" and
 * "stop": it never returns to Python in between, so no Python sits inside
 * the protocol and the only thing between two protocol sequences is C.
 * Random jitter comes from a per-process xorshift generator seeded from the
 * run's seed (the runner prints it), so that a run's decisions are
 * reproducible up to the machine's own timing.
 */
#include <sched.h>
#include <sys/stat.h>

#define DRV(ctx)        ((AioDrvArea *)(ctx)->driver)
#define DRV_STOP(a)     __atomic_load_n(&(a)->stop.v, __ATOMIC_RELAXED)
#define DRV_ACQ(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define DRV_REL(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define DRV_FADD(p, v)  __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* Small helpers: randomness, delays, positions                        */
/* ------------------------------------------------------------------ */

static inline uint64_t drv_rand(uint64_t *s)
{
    uint64_t x = *s;          /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t drv_seed(AioDrvArea *a, int w, int role)
{
    uint64_t s = a->seed ^ ((uint64_t)(uint32_t)getpid() << 20) ^
                 ((uint64_t)(uint32_t)w << 8) ^ (uint64_t)role ^ 0x9E3779B97F4A7C15ull;
    return s ? s : 1;
}

/* Busy-wait loops spin on a compiler barrier, not PAUSE: in a KVM guest a
 * PAUSE loop can trigger pause-loop exits, which would move the race
 * windows this code is trying to hit. */
static inline void drv_spin_iters(uint32_t n)
{
    for (volatile uint32_t i = 0; i < n; i++) {
        barrier();
    }
}

static void drv_sleep_ns(int64_t ns)
{
    if (ns <= 0) {
        return;
    }
    struct timespec ts = { .tv_sec = ns / 1000000000ll, .tv_nsec = ns % 1000000000ll };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Spin (reading the clock) for ns nanoseconds; long delays sleep. */
static void drv_delay_ns(AioDrvArea *a, int64_t ns)
{
    if (ns >= 200000) {
        drv_sleep_ns(ns);
        return;
    }
    int64_t end = aio_clock_ns() + ns;
    while (aio_clock_ns() < end && !DRV_STOP(a)) {
        barrier();
    }
}

/* Waiting for another process: spin ~0.3 ms (a cross-process wake-up
 * takes ~50 us here, and a notifier that is asleep when its answer comes
 * cannot race the owner's next poll), yield a little, then sleep. */
static void drv_backoff(uint32_t *spins)
{
    uint32_t s = (*spins)++;
    if (s < 30000) {
        drv_spin_iters(8);
    } else if (s < 30016) {
        sched_yield();
    } else {
        drv_sleep_ns(s < 32000 ? 20000 : 200000);
    }
}

static AioProcSlot *drv_me(AioContext *ctx, int slot)
{
    if (!ctx->proc || slot < 0 || (uint32_t)slot >= ctx->n_procs) {
        return NULL;
    }
    return &ctx->proc[slot];
}

static inline void drv_pos(AioProcSlot *me, uint32_t pos)
{
    RAW_SET(&me->pos, pos);
}

/* Single writer: a plain increment, no locked instruction. */
static inline void drv_op(AioProcSlot *me)
{
    RAW_SET(&me->ops, RAW_READ(&me->ops) + 1);
    RAW_SET(&me->last_ns, (uint64_t)aio_clock_ns());
}

static inline int drv_in_protocol(uint32_t pos)
{
    return pos == AIO_DRV_POS_IN_SCHEDULE || pos == AIO_DRV_POS_IN_NOTIFY ||
           pos == AIO_DRV_POS_IN_POLL;
}

/* bh_schedule, with our position around it (never inside it). */
static int drv_schedule(AioContext *ctx, AioProcSlot *me, int bh)
{
    drv_pos(me, AIO_DRV_POS_IN_SCHEDULE);
    int r = aio_bh_schedule(ctx, bh);
    drv_pos(me, AIO_DRV_POS_WAITING);
    drv_op(me);
    return r;
}

/* The quiet window: every quiet_period_us, for quiet_len_us, every process
 * but the owner pauses, so that a poller that cannot go back to sleep (busy
 * loop) or that sleeps on pending work (lost wakeup) has nobody to rescue
 * it by accident.  Returns 1 if it paused. */
static int drv_quiet(AioDrvArea *a, AioProcSlot *me)
{
    if (!a->quiet_period_us || !a->quiet_len_us) {
        return 0;
    }
    int64_t per = (int64_t)a->quiet_period_us * 1000;
    int64_t len = (int64_t)a->quiet_len_us * 1000;
    int64_t now = aio_clock_ns();
    int64_t phase = now % per;
    if (phase >= len) {
        return 0;
    }
    drv_pos(me, AIO_DRV_POS_PAUSED);
    int64_t end = now - phase + len;
    while (!DRV_STOP(a) && (now = aio_clock_ns()) < end) {
        int64_t d = end - now;
        drv_sleep_ns(d > 2000000 ? 2000000 : d);
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Native bottom-half actions (run by whichever poller claimed the BH) */
/* ------------------------------------------------------------------ */

static void drv_tx(AioContext *ctx, AioDrvArea *a, int id)
{
    uint32_t burst = a->tx_burst ? a->tx_burst : 64;
    for (;;) {
        uint64_t tail = DRV_ACQ(&a->tail.v);
        uint64_t head = DRV_ACQ(&a->head.v);
        uint64_t n = head - tail;
        if (n > AIO_DRV_RING) {
            n = 0;  /* torn read of a concurrent consumer: retry below */
        }
        if (n > burst) {
            n = burst;
        }
        uint64_t bad = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (RAW_READ(&a->ring[(tail + i) & (AIO_DRV_RING - 1)]) != tail + i) {
                bad++;
            }
        }
        /* Claim [tail, tail+n): only the winner's verification counts. */
        uint64_t expect = tail;
        if (n == 0 || __atomic_compare_exchange_n(&a->tail.v, &expect, tail + n, 0,
                                                  __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            if (n) {
                DRV_FADD(&a->tx_packets.v, n);
                if (bad) {
                    DRV_FADD(&a->tx_bad.v, bad);
                }
            }
            /* virtio_net_tx_bh: more work queued?  Reschedule ourselves. */
            if (DRV_ACQ(&a->head.v) != tail + n) {
                (void)aio_bh_schedule(ctx, id);
            }
            return;
        }
    }
}

static void drv_pool_collect(AioDrvArea *a)
{
    uint32_t nw = a->n_pool < AIO_DRV_MAXW ? a->n_pool : AIO_DRV_MAXW;
    for (uint32_t w = 0; w < nw; w++) {
        AioDrvPool *p = &a->pool[w];
        uint64_t d = DRV_ACQ(&p->done);
        uint64_t k = RAW_READ(&p->acked);
        if (d > k && __atomic_compare_exchange_n(&p->acked, &k, d, 0,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            DRV_FADD(&a->pool_completions.v, d - k);
            DRV_REL(&p->req, d + 1);   /* the next request for this worker */
        }
    }
}

static int aio_bh_run_native(AioContext *ctx, int id, uint32_t action, uint32_t arg)
{
    AioDrvArea *a = DRV(ctx);
    switch (action) {
    case AIO_ACTION_COUNT:
        return 1;
    case AIO_ACTION_PINGPONG:
        if (!a || arg >= AIO_DRV_MAXW) {
            return 0;
        }
        {
            AioDrvPP *pp = &a->pp[arg];
            uint64_t n = DRV_FADD(&pp->acked, 1) + 1;
            if (n > RAW_READ(&pp->sent)) {
                DRV_FADD(&a->dup.v, 1);   /* run twice for one schedule */
            }
        }
        return 1;
    case AIO_ACTION_VIRTIO_TX:
        if (!a) {
            return 0;
        }
        drv_tx(ctx, a, id);
        return 1;
    case AIO_ACTION_POOL:
        if (!a) {
            return 0;
        }
        drv_pool_collect(a);
        return 1;
    default:
        return 0;   /* unknown action from shared memory: let Python see it */
    }
}

/* ------------------------------------------------------------------ */
/* The driver area                                                     */
/* ------------------------------------------------------------------ */

size_t aio_drv_area_size(void)
{
    return sizeof(AioDrvArea);
}

/* Map the driver area from fd (a memfd); init=1 sizes and initialises it. */
int aio_drv_area_map(AioContext *ctx, int fd, int init)
{
    CHECK_OPEN(ctx);
    struct stat st;
    size_t size = sizeof(AioDrvArea);
    if (ctx->driver) {
        return AIO_E_INVAL;
    }
    if (init && ftruncate(fd, (off_t)size) < 0) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    if (fstat(fd, &st) < 0) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    if ((size_t)st.st_size != size) {
        return AIO_E_CORRUPT;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    AioDrvArea *a = p;
    if (init) {
        memset(a, 0, size);
        a->size = (uint32_t)size;
        a->bh_tx = a->bh_pool = -1;
        for (int i = 0; i < AIO_DRV_MAXW; i++) {
            a->bh_pp[i] = -1;
        }
        DRV_REL(&a->magic, AIO_DRV_MAGIC);
    } else if (DRV_ACQ(&a->magic) != AIO_DRV_MAGIC || a->size != size) {
        munmap(p, size);
        return AIO_E_CORRUPT;
    }
    ctx->driver = a;
    return AIO_OK;
}

int aio_drv_area_unmap(AioContext *ctx)
{
    if (ctx->driver) {
        munmap(ctx->driver, sizeof(AioDrvArea));
        ctx->driver = NULL;
    }
    return AIO_OK;
}

AioDrvArea *aio_drv_area(AioContext *ctx)
{
    return DRV(ctx);
}

/* Claim a process slot of the segment for this process. */
int aio_drv_proc_claim(AioContext *ctx, uint32_t role)
{
    CHECK_OPEN(ctx);
    uint32_t pid = (uint32_t)getpid();
    for (uint32_t i = 0; i < ctx->n_procs; i++) {
        uint32_t zero = 0;
        if (__atomic_compare_exchange_n(&ctx->proc[i].pid, &zero, pid, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            RAW_SET(&ctx->proc[i].role, role);
            RAW_SET(&ctx->proc[i].ops, 0);
            RAW_SET(&ctx->proc[i].last_ns, (uint64_t)aio_clock_ns());
            DRV_REL(&ctx->proc[i].pos, (uint32_t)AIO_DRV_POS_IDLE);
            return (int)i;
        }
    }
    return AIO_E_FULL;
}

int aio_drv_proc_set_pos(AioContext *ctx, int slot, uint32_t pos)
{
    CHECK_OPEN(ctx);
    AioProcSlot *me = drv_me(ctx, slot);
    if (!me) {
        return AIO_E_INVAL;
    }
    DRV_REL(&me->pos, pos);
    return AIO_OK;
}

/* pid, role, pos, ops, last_ns, alive (0/1) of slot i; returns 0 if free. */
int aio_drv_proc_get(AioContext *ctx, int i, int64_t *out6)
{
    CHECK_OPEN(ctx);
    AioProcSlot *p = drv_me(ctx, i);
    if (!p) {
        return AIO_E_INVAL;
    }
    uint32_t pid = DRV_ACQ(&p->pid);
    out6[0] = pid;
    out6[1] = RAW_READ(&p->role);
    out6[2] = RAW_READ(&p->pos);
    out6[3] = (int64_t)RAW_READ(&p->ops);
    out6[4] = (int64_t)RAW_READ(&p->last_ns);
    out6[5] = pid && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    return pid != 0;
}

/* Ids of the bottom halves scheduled right now. */
int aio_drv_pending(AioContext *ctx, int32_t *ids, int max)
{
    CHECK_OPEN(ctx);
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    int n = 0;
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }
    for (uint32_t i = 0; i < hwm; i++) {
        if (DRV_ACQ(&ctx->bh[i].scheduled)) {
            if (n < max) {
                ids[n] = (int32_t)i;
            }
            n++;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The watchdog's view (one call per sample)                           */
/* ------------------------------------------------------------------ */

static int drv_fd_readable(int fd)
{
    if (fd < 0) {
        return 0;
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/*
 * out[AIO_DRV_NSAMPLE]: see aiocore_workloads/_watchdog.py (SAMPLE_FIELDS).
 * The reads go from the owner's state to the BH flags to the processes'
 * positions, each an acquire load: a notifier writes its position before
 * the xchg of bh->scheduled, so a flag seen set here comes with the
 * position of the process that set it (or a later one).
 */
int aio_drv_sample(AioContext *ctx, int64_t *out, int n)
{
    CHECK_OPEN(ctx);
    int64_t v[24];
    memset(v, 0, sizeof(v));
    AioDrvArea *a = DRV(ctx);
    v[0] = aio_clock_ns();
    v[1] = DRV_ACQ(&ctx->shm->owner.pos);
    v[2] = DRV_ACQ(&ctx->shm->owner.since_ns);
    v[3] = DRV_ACQ(&ctx->shm->owner.wait_timeout_ns);
    v[4] = (int64_t)DRV_ACQ(&ctx->shm->owner.poll_seq);
    int32_t first = -1;
    v[5] = aio_drv_pending(ctx, &first, 1);
    v[6] = first;
    v[7] = drv_fd_readable(ctx->notifier_rfd);
    v[8] = ctx->is_owner ? drv_fd_readable(ctx->rescue_fd) : 0;
    for (uint32_t i = 0; i < ctx->n_procs; i++) {
        AioProcSlot *p = &ctx->proc[i];
        uint32_t pid = DRV_ACQ(&p->pid);
        if (!pid || RAW_READ(&p->role) == AIO_DRV_ROLE_OWNER) {
            continue;
        }
        uint32_t pos = DRV_ACQ(&p->pos);
        int alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
        v[10] += (int64_t)RAW_READ(&p->ops);
        if (drv_in_protocol(pos)) {
            if (alive) {
                v[9]++;
            } else {
                v[14]++;
            }
        }
        v[13] += alive;
    }
    if (a) {
        v[11] = (int64_t)RAW_READ(&a->streak.v);
        v[12] = (int64_t)RAW_READ(&a->streak_seq0.v);
        v[18] = (int64_t)RAW_READ(&a->owner_iters.v);
    }
    v[15] = (int64_t)RAW_READ(&ctx->shm->counter[AIO_C_EVENT_SETS].v);
    v[16] = RAW_READ(&ctx->shm->notify_me);
    v[17] = RAW_READ(&ctx->shm->notified);
    v[19] = (int64_t)RAW_READ(&ctx->shm->counter[AIO_C_WAKEUPS].v);
    v[20] = (int64_t)RAW_READ(&ctx->shm->counter[AIO_C_BH_DISPATCHES].v);
    for (int i = 0; i < n && i < 24; i++) {
        out[i] = v[i];
    }
    return AIO_OK;
}

/* Drain the notifier outside the strategy's hooks (the busy-loop rescue):
 * returns how many reads found it set. */
int aio_drv_drain_notifier(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    int n = 0;
    char buf[512];
    for (int i = 0; i < 64; i++) {
        ssize_t r = read(ctx->notifier_rfd, buf, ctx->notifier_kind == 1 ? 8 : sizeof(buf));
        if (r <= 0) {
            break;
        }
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The owner's loop                                                    */
/* ------------------------------------------------------------------ */

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
 * The owner: blocking aio_poll (gsource=0) or glib's prepare / wait / check /
 * dispatch (gsource=1) until `stop`.  BH actions run natively inside the
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
    while (!DRV_STOP(a)) {
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

/* ------------------------------------------------------------------ */
/* The other processes' loops                                          */
/* ------------------------------------------------------------------ */

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
 * thread-pool: a worker waits for its request, works a random 0..work_ns,
 * publishes the completion and schedules the completion BH (QEMU's
 * thread-pool.c: worker_thread -> qemu_bh_schedule(pool->completion_bh)).
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
            drv_pos(me, AIO_DRV_POS_WORKING);
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
            drv_pos(me, AIO_DRV_POS_AWAY);
            drv_op(me);
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
