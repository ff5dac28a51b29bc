/*
 * aio_drivers.c -- native bottom-half actions and workload hot loops.
 * See aio_drivers.h.  Included at the end of aio_core.c, so that every
 * strategy module has these loops compiled against its own hooks.  This
 * file holds the helpers, the native BH actions and the driver area; it
 * includes, at its end, the watchdog's view (aio_drv_watch.c), the owner's
 * loop (aio_drv_owner.c) and the other processes' loops (aio_drv_procs.c).
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
#ifdef AIO_CHAOS_H
    aio_chaos_keep_warm();   /* pressure mode: the other side's lines, here */
#endif
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

/*
 * Where a process is, published for the watchdog's snapshot
 * (aio_drv_watch.c).  A protocol call (bh_schedule, aio_notify, a foreign
 * aio_poll) is bracketed by
 *
 *     entry:  pos = IN_SCHEDULE | IN_NOTIFY | IN_POLL
 *             ... the call: the strategy's hooks ...
 *     exit:   ops = ops + 1;  pos = <outside>        (drv_call_end)
 *
 * Relaxed (plain) stores, at call boundaries only: never between a
 * strategy's store and its next load.  They cannot hide store buffering:
 * on x86 a plain store does not drain the store buffer (only a locked
 * instruction or a fence does), and a store before the call's first store
 * or after its last load adds no order between the two; on weaker models a
 * relaxed store orders nothing at all.  So the hooks run with exactly the
 * orderings they have, and the pauses of the chaos build (aio_chaos.h) sit
 * beside the primitives, not here.
 *
 * The exit order (ops before pos) is what the snapshot's seqlock relies on:
 * TSO makes stores visible in program order, so a reader that sees the
 * exit's pos also sees the ops it bumped -- a call that ran whole between
 * the snapshot's two reads of the slots changes ops, and a call that
 * started before the second read shows IN_*.
 */
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

/* The end of a protocol call: ops first, then the position (see above). */
static inline void drv_call_end(AioProcSlot *me, uint32_t pos)
{
    drv_op(me);
    drv_pos(me, pos);
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
    drv_call_end(me, AIO_DRV_POS_WAITING);
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

/* The highest head a tx BH has read (a max: foreign pollers run it too).
 * After the read it records, so no fence sits between the claim and it. */
static void drv_seen_head(AioDrvArea *a, uint64_t head)
{
    uint64_t cur = RAW_READ(&a->seen_head.v);
    while (cur < head && !__atomic_compare_exchange_n(&a->seen_head.v, &cur, head, 0,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void drv_tx(AioContext *ctx, AioDrvArea *a, int id)
{
    uint32_t burst = a->tx_burst ? a->tx_burst : 64;
    for (;;) {
        uint64_t tail = DRV_ACQ(&a->tail.v);
        uint64_t head = DRV_ACQ(&a->head.v);
        drv_seen_head(a, head);   /* the guest's payload this callback saw */
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
            uint64_t again = DRV_ACQ(&a->head.v);
            drv_seen_head(a, again);
            if (again != tail + n) {
                (void)aio_bh_schedule(ctx, id);
            }
            return;
        }
    }
}

/*
 * The thread pool's completion BH: collect every worker's completions (the
 * payload: its `done`, read once per callback), and when the whole batch
 * is collected -- every request issued has completed and been seen -- issue
 * the next batch, pool_batch requests per worker.  A guest that submits a
 * batch and waits for all of it (a drain, a synchronous flush) is what
 * turns a completion nobody sees into a hang, as in QEMU e8d3b1a2's report.
 */
static void drv_pool_collect(AioDrvArea *a)
{
    uint32_t nw = a->n_pool < AIO_DRV_MAXW ? a->n_pool : AIO_DRV_MAXW;
    int idle = 1;
    for (uint32_t w = 0; w < nw; w++) {
        AioDrvPool *p = &a->pool[w];
        uint64_t d = DRV_ACQ(&p->done);
        uint64_t k = RAW_READ(&p->acked);
        if (d > k && __atomic_compare_exchange_n(&p->acked, &k, d, 0,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            DRV_FADD(&a->pool_completions.v, d - k);
            k = d;
        }
        if (k < RAW_READ(&p->req)) {
            idle = 0;   /* a request of the batch is still out */
        }
    }
    if (idle) {
        uint64_t batch = a->pool_batch ? a->pool_batch : 1;
        for (uint32_t w = 0; w < nw; w++) {
            DRV_REL(&a->pool[w].req, RAW_READ(&a->pool[w].req) + batch);
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
#ifdef AIO_CHAOS_H
    aio_chaos_pressure_lines(ctx->is_owner ? a->press_owner : a->press_others,
                             ctx->is_owner ? a->press_others : a->press_owner);
#endif
    return AIO_OK;
}

int aio_drv_area_unmap(AioContext *ctx)
{
    if (ctx->driver) {
#ifdef AIO_CHAOS_H
        aio_chaos_pressure_lines(NULL, NULL);
#endif
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

#include "aio_drv_watch.c"   /* the watchdog's consistent snapshot */
#include "aio_drv_owner.c"   /* the owner's loop */
#include "aio_drv_procs.c"   /* notifiers, workers, guests, writers, foreign pollers */

#ifndef AIO_CHAOS_H
/* The default build has no chaos (aio_chaos.h): these say so. */
int aio_chaos_config(int on, uint64_t seed, uint32_t pct, uint32_t max_ns)
{
    (void)on; (void)seed; (void)pct; (void)max_ns;
    return 0;
}

uint64_t aio_chaos_count(void)
{
    return 0;
}
#endif
