/*
 * aio_bench.c -- measurement loops for `aiocore bench` (floors and fast paths
 * timed in C, so that no Python sits inside what is measured).
 *
 * This file is compiled into every strategy module, after the strategy's
 * hooks and the core, so the loops below call that strategy's hooks inline,
 * exactly as aio_poll does.  Declarations for cffi: cdef_bench.h.
 *
 * Every loop returns what it measured (ns per iteration, or fills an array of
 * per-round-trip latencies); Python takes medians over repeats and divides by
 * floors measured in the same run (aiocore/_bench/_all.py).
 *
 * Cross-process loops take a `stop` word in shared memory and give up when it
 * becomes non-zero, so that a watchdog can end a run that lost a wake-up
 * (it sets stop, then wakes the sleeper through the context's rescue fd).
 */
#include <sched.h>
#include <sys/eventfd.h>

static volatile uint32_t bench_sink;

#define BENCH_STOPPED(stop) (__atomic_load_n((stop), __ATOMIC_RELAXED) != 0)

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#else
    barrier();
#endif
}

/* ------------------------------------------------------------------ */
/* Floors                                                              */
/* ------------------------------------------------------------------ */

/* An empty loop (the loop's own cost, for reference). */
double aio_bench_loop(uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        barrier();
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* A bare seq_cst fence plus a relaxed load: what aio_notify's fast path
 * must at least do (smp_mb; atomic_read(&ctx->notify_me)).  Same field. */
double aio_bench_fence_load(AioContext *ctx, uint64_t n)
{
    uint32_t acc = 0;
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        acc += __atomic_load_n(&ctx->shm->notify_me, __ATOMIC_RELAXED);
    }
    int64_t t1 = aio_clock_ns();
    bench_sink = acc;
    return (double)(t1 - t0) / (double)n;
}

/* mfence alone (gcc spells smp_mb as `lock orq $0,(%rsp)`; this is the
 * other spelling, for reference). */
double aio_bench_mfence(uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("mfence" ::: "memory");
#else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* A seq_cst RMW on a private line (xchg: a locked op on x86). */
double aio_bench_xchg(uint64_t n)
{
    static uint32_t word __attribute__((aligned(64)));
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        (void)__atomic_exchange_n(&word, (uint32_t)i, __ATOMIC_SEQ_CST);
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* getpid(): a real system call with glibc >= 2.25 (no pid cache); the
 * core's aio_is_home() makes one, several times per aio_poll. */
double aio_bench_getpid(uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        bench_sink += (uint32_t)getpid();
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* clock_gettime(CLOCK_MONOTONIC) through the vDSO (aio_clock_ns). */
double aio_bench_clock(uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        bench_sink += (uint32_t)aio_clock_ns();
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* eventfd write + read, one thread, nobody waiting. */
double aio_bench_eventfd_local(uint64_t n)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        return -1.0;
    }
    uint64_t v = 1;
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        ssize_t w = write(fd, &v, sizeof(v));
        ssize_t r = read(fd, &v, sizeof(v));
        (void)w; (void)r;
        v = 1;
    }
    int64_t t1 = aio_clock_ns();
    close(fd);
    return (double)(t1 - t0) / (double)n;
}

/* ppoll with a zero timeout on the context's two fds (what every aio_poll
 * round does even when work is pending). */
double aio_bench_ppoll0(AioContext *ctx, uint64_t n)
{
    struct pollfd pfd[2];
    struct timespec ts = { 0, 0 };
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        pfd[0].fd = ctx->notifier_rfd; pfd[0].events = POLLIN; pfd[0].revents = 0;
        pfd[1].fd = ctx->rescue_fd;    pfd[1].events = POLLIN; pfd[1].revents = 0;
        (void)ppoll(pfd, 2, &ts, NULL);
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/*
 * Blocking eventfd ping-pong between two processes (the physical floor of a
 * cross-process wake-up here).  The initiator writes efd_tx and blocks
 * reading efd_rx; the responder does the reverse.  Both fds are blocking.
 * lat (initiator only) gets n round-trip times in ns.  Returns rounds done.
 */
int64_t aio_bench_efd_pingpong(int efd_tx, int efd_rx, int initiator, uint64_t n,
                               int64_t *lat, uint32_t *stop)
{
    uint64_t v;
    uint64_t i;
    for (i = 0; i < n && !BENCH_STOPPED(stop); i++) {
        if (initiator) {
            int64_t t0 = aio_clock_ns();
            v = 1;
            if (write(efd_tx, &v, sizeof(v)) != sizeof(v)) break;
            if (read(efd_rx, &v, sizeof(v)) != sizeof(v)) break;
            lat[i] = aio_clock_ns() - t0;
        } else {
            if (read(efd_rx, &v, sizeof(v)) != sizeof(v)) break;
            v = 1;
            if (write(efd_tx, &v, sizeof(v)) != sizeof(v)) break;
        }
    }
    return (int64_t)i;
}

/* ------------------------------------------------------------------ */
/* Strategy fast paths                                                 */
/* ------------------------------------------------------------------ */

/* The strategy's notify hook, inline, nobody sleeping (notify_me == 0). */
double aio_bench_notify_hook(AioContext *ctx, uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        strategy_notify(ctx);
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* The public aio_notify (the hook plus the notifies counter), in a C loop. */
double aio_bench_aio_notify(AioContext *ctx, uint64_t n)
{
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        aio_notify(ctx);
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* A 0->1 aio_bh_schedule (nobody sleeping), then a relaxed reset of the flag
 * by the loop (a plain store: no fence), so every call is a real schedule. */
double aio_bench_schedule(AioContext *ctx, int bh, uint64_t n)
{
    if (bh < 0 || (uint32_t)bh >= ctx->n_bh) {
        return -1.0;
    }
    uint32_t *flag = &ctx->bh[bh].scheduled;
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        aio_bh_schedule(ctx, bh);
        __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
    }
    int64_t t1 = aio_clock_ns();
    /* Keep the lost-work accounting straight: these were cancelled. */
    __atomic_fetch_add(&ctx->bh[bh].cancels, n, __ATOMIC_RELAXED);
    return (double)(t1 - t0) / (double)n;
}

/* One aio_poll round with work pending: schedule the BH (0->1), then
 * aio_poll(blocking), which sees the BH in compute_timeout, does not sleep,
 * runs poll_begin/poll_end and claims the BH.  Events are left for nobody
 * (the BH has no callback to run: we measure the protocol). */
double aio_bench_poll_round(AioContext *ctx, int bh, int blocking, uint64_t n)
{
    int progress;
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        aio_bh_schedule(ctx, bh);
        if (aio_poll(ctx, blocking, &progress) < 0) {
            return -1.0;
        }
    }
    return (double)(aio_clock_ns() - t0) / (double)n;
}

/* ------------------------------------------------------------------ */
/* Cross-process wake-up of a sleeping owner                           */
/* ------------------------------------------------------------------ */

/* Poll `own` (blocking) until a BH was dispatched; -1 if stopped/error. */
static int bench_wait_progress(AioContext *own, uint32_t *stop)
{
    int progress = 0;
    do {
        if (aio_poll(own, 1, &progress) < 0 || BENCH_STOPPED(stop)) {
            return -1;
        }
    } while (!progress);
    return 0;
}

/*
 * Ping-pong between two owners, each sleeping in aio_poll on its own context
 * and scheduling a BH in the other's: a round trip is two wake-ups of a
 * sleeping owner.  The initiator records round-trip times in lat.
 */
int64_t aio_bench_aio_pingpong(AioContext *own, AioContext *peer, int peer_bh,
                               int initiator, uint64_t n, int64_t *lat, uint32_t *stop)
{
    uint64_t i;
    for (i = 0; i < n && !BENCH_STOPPED(stop); i++) {
        if (initiator) {
            int64_t t0 = aio_clock_ns();
            if (aio_bh_schedule(peer, peer_bh) < 0) break;
            if (bench_wait_progress(own, stop) < 0) break;
            lat[i] = aio_clock_ns() - t0;
        } else {
            if (bench_wait_progress(own, stop) < 0) break;
            if (aio_bh_schedule(peer, peer_bh) < 0) break;
        }
    }
    return (int64_t)i;
}

/* ------------------------------------------------------------------ */
/* The shared page of the cross-process loops: virtio-net-tx (its loops */
/* are in aio_bench_virtio.c) and thread-pool                          */
/* ------------------------------------------------------------------ */

#define BENCH_RING 256u       /* virtqueue size */

typedef struct bench_line { uint64_t v; char _p[AIO_CACHELINE - 8]; } bench_line;

typedef struct BenchShared {
    bench_line stop;          /* 32-bit stop word in v's low half */
    bench_line head;          /* producer index (guest / owner) */
    bench_line tail;          /* consumer index */
    bench_line no_notify;     /* the host does not want kicks (VRING_USED_F_NO_NOTIFY) */
    bench_line head2;         /* second ring (thread pool: completions) */
    bench_line tail2;
    bench_line stats[8];      /* produced, consumed, kicks, dispatches, sum, ... */
    uint64_t ring[BENCH_RING];
    uint64_t ring2[BENCH_RING];
} BenchShared;

size_t aio_bench_shared_size(void) { return sizeof(BenchShared); }

uint32_t *aio_bench_stop_word(void *mem)
{
    return (uint32_t *)&((BenchShared *)mem)->stop.v;
}

enum { BS_PRODUCED = 0, BS_CONSUMED, BS_KICKS, BS_DISPATCHES, BS_SUM, BS_RESCHEDULES,
       BS_T0, BS_T1 };

uint64_t aio_bench_stat(void *mem, int i)
{
    return (i >= 0 && i < 8) ? __atomic_load_n(&((BenchShared *)mem)->stats[i].v, __ATOMIC_RELAXED) : 0;
}

#define LD_ACQ(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ST_REL(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define LD(p)         __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v)      __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* The consumer side's results of one run (virtio-net-tx, thread-pool);
 * t1 == 0 means the run ended without reaching its duration: stamp now. */
static void bench_publish(BenchShared *s, uint64_t consumed, uint64_t dispatches,
                          uint64_t sum, int64_t t0, int64_t t1)
{
    if (!t1) {
        t1 = aio_clock_ns();
    }
    ST(&s->stats[BS_CONSUMED].v, consumed);
    ST(&s->stats[BS_DISPATCHES].v, dispatches);
    ST(&s->stats[BS_SUM].v, sum);
    ST(&s->stats[BS_T0].v, (uint64_t)t0);
    ST(&s->stats[BS_T1].v, (uint64_t)t1);
}

/* ------------------------------------------------------------------ */
/* thread-pool: a worker completes requests and schedules a BH          */
/* ------------------------------------------------------------------ */

/*
 * QEMU's thread-pool.c: the owner submits requests and posts the worker's
 * semaphore (here an eventfd, read blocking); the worker runs each request
 * and, per completed request, pushes it on the completion list and calls
 * qemu_bh_schedule(pool->completion_bh) -- from outside the home thread,
 * so aio_notify really sets the EventNotifier whenever the owner sleeps.
 * Ring 1 carries requests (owner -> worker), ring 2 completions.
 */
int64_t aio_bench_pool_worker(AioContext *ctx, int bh, void *mem, int efd)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t done = 0, t = LD(&s->tail.v), h2 = LD(&s->head2.v);
    uint64_t v;
    while (!BENCH_STOPPED(stop)) {
        if (read(efd, &v, sizeof(v)) != sizeof(v)) {
            break;
        }
        uint64_t h = LD_ACQ(&s->head.v);
        while (t != h) {
            uint64_t req = s->ring[t % BENCH_RING];
            ST_REL(&s->tail.v, ++t);
            /* the request's work: trivial */
            s->ring2[h2 % BENCH_RING] = req * 2 + 1;
            ST_REL(&s->head2.v, ++h2);
            done++;
            aio_bh_schedule(ctx, bh);
        }
    }
    ST(&s->stats[BS_PRODUCED].v, done);
    return (int64_t)done;
}

/* The owner: submits depth requests, then in aio_poll's loop the completion
 * BH reaps completions and submits as many new requests. */
int64_t aio_bench_pool_owner(AioContext *ctx, int bh, void *mem, int efd, int depth,
                             int64_t duration_ns)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t h = LD(&s->head.v), t2 = LD(&s->tail2.v), completed = 0, dispatches = 0, sum = 0;
    int progress;
    if (depth < 1) depth = 1;
    if ((uint32_t)depth > BENCH_RING) depth = (int)BENCH_RING;
    for (int i = 0; i < depth; i++) {
        s->ring[h % BENCH_RING] = h;
        ST_REL(&s->head.v, ++h);
    }
    uint64_t one = (uint64_t)depth;
    if (write(efd, &one, sizeof(one)) != sizeof(one)) {
        return -1;
    }
    int64_t t0 = aio_clock_ns(), t1 = 0;
    for (;;) {
        int n = aio_poll(ctx, 1, &progress);
        if (n < 0) {
            break;
        }
        aio_event *ev = ctx->events;
        for (int k = 0; k < n; k++) {
            if (ev[k].kind != AIO_EV_BH || ev[k].id != bh) {
                continue;
            }
            dispatches++;
            uint64_t h2 = LD_ACQ(&s->head2.v), got = 0;
            while (t2 != h2) {
                sum += s->ring2[t2 % BENCH_RING];
                t2++;
                got++;
            }
            ST_REL(&s->tail2.v, t2);
            completed += got;
            for (uint64_t i = 0; i < got; i++) {
                s->ring[h % BENCH_RING] = h;
                ST_REL(&s->head.v, ++h);
            }
            if (got) {
                ssize_t w = write(efd, &got, sizeof(got));
                (void)w;
            }
        }
        if (BENCH_STOPPED(stop)) {
            break;
        }
        if (aio_clock_ns() - t0 >= duration_ns) {
            t1 = aio_clock_ns();
            ST(stop, 1);
            one = 1;
            ssize_t w = write(efd, &one, sizeof(one));   /* wake the worker */
            (void)w;
            break;
        }
    }
    bench_publish(s, completed, dispatches, sum, t0, t1);
    return (int64_t)completed;
}

/* ------------------------------------------------------------------ */
/* The hooks, out of line, for disassembly (fences and locked ops of    */
/* the compiled code are counted in these; see _bench/_all.py)            */
/* ------------------------------------------------------------------ */

#define BENCH_NOINLINE __attribute__((noinline, used))

BENCH_NOINLINE void aio_bench_hook_notify(AioContext *ctx) { strategy_notify(ctx); }
BENCH_NOINLINE void aio_bench_hook_accept(AioContext *ctx) { strategy_accept(ctx); }
BENCH_NOINLINE void aio_bench_hook_poll_begin(AioContext *ctx) { strategy_poll_begin(ctx); }
BENCH_NOINLINE void aio_bench_hook_poll_end(AioContext *ctx) { strategy_poll_end(ctx); }
BENCH_NOINLINE void aio_bench_hook_prepare(AioContext *ctx) { strategy_prepare(ctx); }
BENCH_NOINLINE void aio_bench_hook_check(AioContext *ctx) { strategy_check(ctx); }
BENCH_NOINLINE void aio_bench_hook_on_event(AioContext *ctx) { strategy_on_event(ctx); }
BENCH_NOINLINE void aio_bench_hook_schedule(AioContext *ctx, AioBHSlot *bh) { strategy_schedule(ctx, bh); }
BENCH_NOINLINE int aio_bench_hook_timeout_zero(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_TIMEOUT_ZERO
    return strategy_timeout_zero(ctx);
#else
    (void)ctx;
    return 0;
#endif
}
