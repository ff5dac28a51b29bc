/*
 * aio_bench_virtio.c -- virtio-net-tx for `aiocore bench` (aiocore/_bench/
 * _strategies.py, _polling.py): a guest process fills a ring and kicks the
 * device; the owner drains it (QEMU's virtio_net_tx_bh).  Also the ring's
 * own floor (a host with no AioContext) and the two paired in one session
 * (the same session stamped per ring is aio_bench_virtio_steps.c).
 * Included after aio_bench.c (BenchShared, bench_publish); declarations in
 * cdef_bench.h.
 *
 * The virtqueue: the slots and the used index (tail) are in BenchShared;
 * the avail index is the context's poll word BENCH_AVAIL_WORD, where a
 * native poll handler can watch it as QEMU's virtio_queue_host_notifier_
 * aio_poll reads the avail index.  Every host -- the floor's too -- reads
 * the same index in the same place.
 *
 * Two hosts, one per skeleton:
 *   2015     no ioeventfd: the guest's kick runs the handler in its own
 *            thread (virtio_net_handle_tx_bh: disable kicks, qemu_bh_schedule
 *            the tx BH) -- a cross-process bh_schedule; the tx BH flushes a
 *            burst, reschedules itself after a full one, else re-enables
 *            kicks and flushes once more.
 *   polling  the virtqueue's host notifier is an ioeventfd with a native poll
 *            handler on the avail index (QEMU's aio_set_event_notifier with
 *            virtio_queue_host_notifier_aio_poll): while aio_poll busy-polls,
 *            the word's `started` suppresses kicks (io_poll_begin); the
 *            guest writes the ioeventfd only when the owner is not polling.
 */
/* ------------------------------------------------------------------ */
/* The virtqueue and the stamps of aio_bench_virtio_steps                */
/* ------------------------------------------------------------------ */

#define BENCH_AVAIL_WORD 0

static inline uint32_t *bench_avail(AioContext *ctx)
{
    return &ctx->shm->poll_word[BENCH_AVAIL_WORD].v;
}

/*
 * Stamps of aio_bench_virtio_steps (the per-step timeline of each ring), in
 * a MAP_SHARED block of their own: each side writes only its records, read
 * after the session.  NULL in the measured runs: the stamping loops are
 * these same loops, inlined with st == NULL.
 */
enum { BENCH_G_AVAIL, BENCH_G_ROOM, BENCH_G_PUB, BENCH_G_KICKED, BENCH_G_N };
enum { BENCH_H_TAIL, BENCH_H_GOT, BENCH_H_IN, BENCH_H_OUT, BENCH_H_POLL_RET, BENCH_H_PHASE,
       BENCH_H_N };
typedef struct BenchStamps {
    /* One line per writer: a shared line would put a cache miss per
     * record into the very steps the stamps time. */
    struct {
        int64_t cap;          /* records per side */
        int64_t ng;           /* records written */
        char _p[AIO_CACHELINE - 16];
    } g;                      /* the guest's */
    struct {
        int64_t nh;           /* records written */
        int64_t phase;        /* the phase's kind (0 floor, 1 AioContext) */
        int64_t poll_ret;     /* when its last aio_poll returned */
        int64_t cap;
        char _p[AIO_CACHELINE - 32];
    } h;                      /* the host's */
    /* followed by int64_t g[cap][BENCH_G_N], h[cap][BENCH_H_N] */
} BenchStamps;

static inline int64_t *bench_stamps_g(BenchStamps *st) { return (int64_t *)(st + 1); }
static inline int64_t *bench_stamps_h(BenchStamps *st) { return bench_stamps_g(st) + st->h.cap * BENCH_G_N; }

/* A stamp: a bare TSC read (~10 ns here).  lfence on both sides would
 * order it exactly, but tripled its cost and slowed the stamped loops
 * enough to change the lock step they time; unfenced, a stamp may run a
 * few ns ahead of the loads before it, alike in every phase. */
static inline int64_t bench_stamp(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return aio_rdtsc();
#else
    return aio_clock_ns();
#endif
}

/*
 * Stalls: on this shared 2-vCPU machine either side of the lock-stepped
 * ring is regularly descheduled for milliseconds (other processes run), and
 * the ring stops while it is.  Each side times its own loop; a gap of more
 * than BENCH_STALL_NS between two of its iterations (far above any
 * iteration's own time: a ring, a spin, a busy-poll phase of up to
 * poll_max_ns = 32.8 us) is logged as time it was off its CPU -- unless
 * the iteration was an aio_poll that waited in a system call, which is the
 * AioContext's own time and stays counted -- all but what a kicked host spent
 * waiting for its CPU: a wait that ends more than BENCH_STALL_NS after the
 * guest's kick (~4x this machine's cross-CPU eventfd wake-up) is logged from
 * kick + BENCH_STALL_NS on (bench_late_wake).  Python takes the union of
 * both logs out of every phase, floor and host alike
 * (aiocore/_bench/_virtio_steps.py).
 */
#define BENCH_STALL_NS 100000

typedef struct BenchClock {
    int64_t last, thr;        /* stopwatch ticks: the last tick, the stall threshold */
    int64_t wait_end;         /* the host's: when its last wait in a system call ended */
} BenchClock;

static inline void bench_clock_init(BenchClock *c)
{
    c->last = c->wait_end = aio_ticks();    /* sets up the stopwatch, too */
    c->thr = aio_ns_per_tick > 0 ? (int64_t)(BENCH_STALL_NS / aio_ns_per_tick) : BENCH_STALL_NS;
}

static inline void bench_log_stall(BenchShared *s, int side, int64_t from, int64_t to)
{
    uint64_t n = LD(&s->nstall[side].v);
    if (n < BENCH_STALLS) {
        s->stall[side][n][0] = from;
        s->stall[side][n][1] = to;
        ST(&s->nstall[side].v, n + 1);
    }
}

static __attribute__((always_inline)) inline void
bench_tick(BenchShared *s, int side, BenchClock *c, int waited)
{
    int64_t now = aio_ticks();
    if (now - c->last > c->thr && !waited) {
        bench_log_stall(s, side, c->last, now);
    }
    c->last = now;
}

/* After a host iteration that waited (c->last: when it began): if the guest
 * kicked since the host's previous wait ended -- the kick this wait ended
 * on, made during it or just before (the fd already readable) -- log what
 * lay more than a stall's worth after the later of the kick and the start;
 * a wait no kick ended stays counted.  Returns the ticks the iteration took. */
static inline int64_t bench_late_wake(BenchShared *s, BenchClock *c)
{
    int64_t now = aio_ticks(), kick = (int64_t)LD(&s->kick_at.v);
    int64_t from = (kick > c->last ? kick : c->last) + c->thr;
    if (kick > c->wait_end && now > from) {
        bench_log_stall(s, 1, from, now);
    }
    c->wait_end = now;
    return now - c->last;
}

/* ------------------------------------------------------------------ */
/* The guest                                                           */
/* ------------------------------------------------------------------ */

/*
 * Fills every free slot of the ring, publishes the avail index once per
 * batch, and kicks the device unless it said not to, until stop.  efd < 0:
 * the kick is the 2015 host's (disable kicks, bh_schedule the tx BH); else
 * it writes the ioeventfd efd, and only if the owner is not busy-polling
 * the avail index either (its `started`, Linux's virtqueue_kick_prepare).
 * Batching keeps the guest ahead of the host, so the host (the protocol and
 * the handler) is what limits throughput, as in QEMU's tx path.
 */
static __attribute__((always_inline)) inline int64_t
bench_virtio_guest(AioContext *ctx, int bh, void *mem, int efd, BenchStamps *st)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint32_t *avail = bench_avail(ctx);
    uint32_t *started = &ctx->shm->poll_word[BENCH_AVAIL_WORD].started;
    uint32_t h = LD(avail);
    uint64_t seq = 0, kicks = 0;
    int64_t spin_t0 = -1;
    BenchClock clk;
    bench_clock_init(&clk);
    while (!BENCH_STOPPED(stop)) {
        bench_tick(s, 0, &clk, 0);
        uint32_t t = (uint32_t)LD_ACQ(&s->tail.v);
        uint32_t room = BENCH_RING - (h - t);
        if (room == 0) {
            /* Spin for the host (it frees the ring in microseconds); yield
             * only after half a stall's worth: yielding sooner handed this
             * CPU to whatever else was runnable for a whole time slice, a
             * stall of the ring made by the wait itself. */
            if (spin_t0 < 0) {
                spin_t0 = clk.last;
            } else if (clk.last - spin_t0 > clk.thr / 2) {
                sched_yield();
                spin_t0 = -1;
            }
            bench_cpu_relax();
            continue;
        }
        spin_t0 = -1;
        int64_t *g = (st && st->g.ng < st->g.cap) ? bench_stamps_g(st) + BENCH_G_N * st->g.ng++ : NULL;
        if (g) {
            g[BENCH_G_ROOM] = bench_stamp();
        }
        for (uint32_t i = 0; i < room; i++) {
            s->ring[(h + i) % BENCH_RING] = ++seq;
        }
        h += room;
        ST_REL(avail, h);
        if (g) {
            g[BENCH_G_PUB] = bench_stamp();
            g[BENCH_G_AVAIL] = h;
        }
        /* virtio's guest: publish the avail index before reading the flags;
         * pairs with the host's fence between re-enabling kicks and its
         * second flush (bench_tx_bh), and with aio_poll_set_started's
         * between clearing started and its last look at the word: one of
         * the two sides sees the other. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!LD(&s->no_notify.v) && (efd < 0 || !LD(started))) {
            kicks++;
            ST(&s->kick_at.v, (uint64_t)clk.last);
            if (efd < 0) {
                ST(&s->no_notify.v, 1);
                aio_bh_schedule(ctx, bh);
            } else {
                uint64_t one = 1;
                (void)!write(efd, &one, sizeof(one));
            }
        }
        if (g) {
            g[BENCH_G_KICKED] = bench_stamp();
        }
    }
    ST(&s->stats[BS_PRODUCED].v, seq);
    ST(&s->stats[BS_KICKS].v, kicks);
    /* Wake the host in case it sleeps, so it sees stop. */
    aio_bh_schedule(ctx, bh);
    return (int64_t)seq;
}

int64_t aio_bench_virtio_guest(AioContext *ctx, int bh, void *mem, int efd)
{
    return bench_virtio_guest(ctx, bh, mem, efd, NULL);
}

/* ------------------------------------------------------------------ */
/* The hosts                                                           */
/* ------------------------------------------------------------------ */

/* virtio_net_flush_tx: transmit up to burst packets; returns how many, and
 * in *left how many it saw but left in the ring. */
static __attribute__((always_inline)) inline uint64_t
bench_flush_tx(AioContext *ctx, BenchShared *s, uint64_t burst, uint64_t *sum, uint32_t *left,
               BenchStamps *st)
{
    int64_t t_in = st ? bench_stamp() : 0;
    uint64_t t = LD(&s->tail.v);
    uint32_t n = LD_ACQ(bench_avail(ctx)) - (uint32_t)t;
    *left = n > burst ? n - (uint32_t)burst : 0;
    n -= *left;
    for (uint32_t i = 0; i < n; i++) {
        *sum += s->ring[(t + i) % BENCH_RING];
    }
    ST_REL(&s->tail.v, t + n);
    if (st && n && st->h.nh < st->h.cap) {
        int64_t *r = bench_stamps_h(st) + BENCH_H_N * st->h.nh++;
        r[BENCH_H_OUT] = bench_stamp();
        r[BENCH_H_IN] = t_in;
        r[BENCH_H_TAIL] = (uint32_t)(t + n);
        r[BENCH_H_GOT] = n;
        r[BENCH_H_POLL_RET] = st->h.poll_ret;
        r[BENCH_H_PHASE] = st->h.phase;
    }
    return n;
}

/*
 * The 2015 host's tx BH (virtio_net_tx_bh): flush a burst; a full burst
 * reschedules the BH at once; otherwise re-enable kicks, flush again, and
 * reschedule if anything came.  Returns the packets flushed.
 */
static __attribute__((always_inline)) inline uint64_t
bench_tx_bh(AioContext *ctx, int bh, BenchShared *s, uint64_t burst, uint64_t *sum,
            uint64_t *resched, BenchStamps *st)
{
    uint32_t left;
    uint64_t got = bench_flush_tx(ctx, s, burst, sum, &left, st), total = got;
    if (got >= burst) {
        (*resched)++;
        aio_bh_schedule(ctx, bh);
        return total;
    }
    ST(&s->no_notify.v, 0);
    /* virtio_queue_set_notification: the flag before re-reading avail;
     * pairs with the guest's fence between publishing the avail index and
     * reading the flag: either we see its packets or it sees the flag. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    got = bench_flush_tx(ctx, s, burst, sum, &left, st);
    total += got;
    if (got > 0) {
        ST(&s->no_notify.v, 1);
        (*resched)++;
        aio_bh_schedule(ctx, bh);
    }
    return total;
}

/*
 * The polling host's queue handler: virtio_queue_host_notifier_aio_poll_ready
 * (or the ioeventfd's read handler) -> handle_output, and the tx BH that
 * continues it.  Flush a burst; if packets are left in the ring -- behind
 * an avail index the poll handler already consumed, so the word will not
 * move for them -- the tx BH continues.  Kicks stay enabled (no_notify 0):
 * while aio_poll polls, the word's started suppresses them.
 */
static __attribute__((always_inline)) inline uint64_t
bench_tx_drain(AioContext *ctx, int bh, BenchShared *s, uint64_t burst, uint64_t *sum,
               uint64_t *resched, BenchStamps *st)
{
    uint32_t left;
    uint64_t got = bench_flush_tx(ctx, s, burst, sum, &left, st);
    if (left) {
        (*resched)++;
        aio_bh_schedule(ctx, bh);
    }
    return got;
}

/*
 * One aio_poll of the host and the handlers of what it dispatched: the tx
 * BH (the 2015 host's, or the polling host's continuation) and the
 * ioeventfd (efd >= 0: the polling host).  The ioeventfd is read -- QEMU's
 * event_notifier_test_and_clear -- only after an aio_poll that made a
 * system call: one that did not saw the avail index move, not a kick.
 * Returns the packets flushed, or -1 if aio_poll failed.
 */
static __attribute__((always_inline)) inline int64_t
bench_host_poll(AioContext *ctx, int bh, int efd, BenchShared *s, uint64_t burst, uint64_t *sum,
                uint64_t *resched, uint64_t *dispatches, int *waited, BenchStamps *st)
{
    uint64_t consumed = 0, nosys = RAW_READ(&ctx->shm->counter[AIO_C_POLLS_NO_SYSCALL].v);
    int progress;
    int n = aio_poll(ctx, 1, &progress);
    if (n < 0) {
        return -1;
    }
    if (st) {
        st->h.poll_ret = bench_stamp();
    }
    *waited = RAW_READ(&ctx->shm->counter[AIO_C_POLLS_NO_SYSCALL].v) == nosys;
    aio_event *ev = ctx->events;
    for (int k = 0; k < n; k++) {
        if (ev[k].kind == AIO_EV_BH && ev[k].id == bh) {
            (*dispatches)++;
            consumed += efd < 0 ? bench_tx_bh(ctx, bh, s, burst, sum, resched, st)
                                : bench_tx_drain(ctx, bh, s, burst, sum, resched, st);
        } else if (efd >= 0 && ev[k].kind == AIO_EV_FD && ev[k].id == efd) {
            (*dispatches)++;
            if (*waited) {
                uint64_t v;
                (void)!read(efd, &v, sizeof(v));
            }
            consumed += bench_tx_drain(ctx, bh, s, burst, sum, resched, st);
        }
    }
    return (int64_t)consumed;
}

/* How often the hosts read the clock for their deadline: every 64 flushes
 * (the floor's host) or aio_poll calls (the AioContext's).  A clock_gettime
 * per aio_poll (~25 ns here, and the polling host made two per ring: the
 * full burst, then the one that found the ring empty) cost the polling host
 * 5-6% of its packets/s -- the benchmark's cost, not the protocol's. */
#define BENCH_CLOCK_EVERY 64

/*
 * The host (the context's owner): aio_poll in a loop and the handlers.
 * efd: the polling host's ioeventfd (registered by the caller as an fd
 * handler with poll word BENCH_AVAIL_WORD), -1 for the 2015 host.  Runs
 * for duration_ns from the first dispatch, then sets stop.
 */
int64_t aio_bench_virtio_host(AioContext *ctx, int bh, void *mem, int efd, uint64_t burst,
                              int64_t duration_ns)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t consumed = 0, dispatches = 0, resched = 0, sum = 0, polls = 0;
    int64_t t0 = 0, t1 = 0, now;
    int waited;
    for (;;) {
        int64_t got = bench_host_poll(ctx, bh, efd, s, burst, &sum, &resched, &dispatches, &waited, NULL);
        if (got < 0) {
            break;
        }
        if (t0 == 0 && dispatches) {
            t0 = aio_clock_ns();
        }
        consumed += (uint64_t)got;
        if (BENCH_STOPPED(stop)) {
            break;
        }
        if (t0 && ++polls % BENCH_CLOCK_EVERY == 0 && (now = aio_clock_ns()) - t0 >= duration_ns) {
            t1 = now;
            ST(stop, 1);
            break;
        }
    }
    bench_publish(s, consumed, dispatches, sum, t0, t1);
    ST(&s->stats[BS_RESCHEDULES].v, resched);
    return (int64_t)consumed;
}

/*
 * virtio_ring_floor: the virtio-net-tx guest (kicks suppressed for good:
 * no_notify stays 1) against a host that needs no AioContext at all -- it
 * spins on the avail index and flushes bursts as fast as they come.  The
 * packets/s of the ring itself: no skeleton and no strategy can move
 * packets faster, so it bounds what polling can gain over the 2015
 * skeleton.  "Dispatches" are flushes that found packets.
 */
void aio_bench_virtio_no_kicks(void *mem)
{
    ST(&((BenchShared *)mem)->no_notify.v, 1);
}

int64_t aio_bench_virtio_ring_floor(AioContext *ctx, void *mem, uint64_t burst, int64_t duration_ns)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t consumed = 0, flushes = 0, sum = 0, k = 0;
    uint32_t left;
    int64_t t0 = 0, t1 = 0;
    while (!BENCH_STOPPED(stop)) {
        uint64_t got = bench_flush_tx(ctx, s, burst, &sum, &left, NULL);
        if (got) {
            if (t0 == 0) {
                t0 = aio_clock_ns();
            }
            consumed += got;
            flushes++;
        } else {
            bench_cpu_relax();
        }
        if (t0 && (++k & 63) == 0 && aio_clock_ns() - t0 >= duration_ns) {
            t1 = aio_clock_ns();
            ST(stop, 1);
            break;
        }
    }
    bench_publish(s, consumed, flushes, sum, t0, t1);
    return (int64_t)consumed;
}

/*
 * The ring floor and the AioContext's host, paired: one guest, one session,
 * phases of phase_ns alternating -- even phases the ring floor's host (kicks
 * off for good, spinning on the avail index), odd phases this context's
 * aio_poll loop and handlers (it takes over as if kicked: it schedules the
 * tx BH, and re-enables kicks if it has an ioeventfd).  Both see the same
 * guest, CPUs and moment, so their ratio is not a ratio of two states of
 * this shared machine (separate sessions of the floor alone differed by
 * +-25% within one run here).  Per phase k, out[BENCH_PHASE_N * k ...]:
 * packets, ns, its first and last stopwatch tick (to take the stall logs
 * out of it), the host's aio_polls that waited in a system call and the
 * ticks they took.  Sets stop at the end; returns the phases run.
 */
#define BENCH_PHASE_N 6
static __attribute__((always_inline)) inline int64_t
bench_virtio_paired(AioContext *ctx, int bh, void *mem, int efd, uint64_t burst, int64_t phase_ns,
                    int phases, int64_t *out, BenchStamps *st)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t sum = 0, resched = 0, dispatches = 0, total = 0;
    uint32_t left;
    int k, waited = 0;
    BenchClock clk;
    while (!BENCH_STOPPED(stop) && LD_ACQ(bench_avail(ctx)) == (uint32_t)LD(&s->tail.v)) {
        bench_cpu_relax();    /* the guest's first packets */
    }
    int64_t start = aio_clock_ns();
    bench_clock_init(&clk);
    for (k = 0; k < phases && !BENCH_STOPPED(stop); k++) {
        uint64_t consumed = 0, it = 0;
        int64_t t0 = aio_clock_ns(), t1 = t0, waits = 0, waited_ticks = 0;
        int64_t *o = out + BENCH_PHASE_N * k;
        bench_tick(s, 1, &clk, 0);
        o[2] = clk.last;
        if (st) {
            st->h.phase = k % 2;
            st->h.poll_ret = 0;
        }
        if (k % 2 == 0) {
            ST(&s->no_notify.v, 1);
            while (!BENCH_STOPPED(stop)) {
                bench_tick(s, 1, &clk, 0);
                uint64_t got = bench_flush_tx(ctx, s, burst, &sum, &left, st);
                if (got) {
                    consumed += got;
                } else {
                    bench_cpu_relax();
                }
                if (++it % BENCH_CLOCK_EVERY == 0 && (t1 = aio_clock_ns()) - t0 >= phase_ns) {
                    break;
                }
            }
        } else {
            if (efd >= 0) {
                /* The polling host wants kicks whenever it does not poll;
                 * aio_poll_set_started's fence orders this store before
                 * any sleep. */
                ST(&s->no_notify.v, 0);
            }
            aio_bh_schedule(ctx, bh);
            while (!BENCH_STOPPED(stop)) {
                bench_tick(s, 1, &clk, waited);
                int64_t got = bench_host_poll(ctx, bh, efd, s, burst, &sum, &resched, &dispatches,
                                              &waited, st);
                if (got < 0) {
                    break;
                }
                if (waited) {
                    waits++;
                    waited_ticks += bench_late_wake(s, &clk);
                }
                consumed += (uint64_t)got;
                if (++it % BENCH_CLOCK_EVERY == 0 && (t1 = aio_clock_ns()) - t0 >= phase_ns) {
                    break;
                }
            }
            bench_tick(s, 1, &clk, waited);
            waited = 0;
        }
        o[0] = (int64_t)consumed;
        o[1] = t1 - t0;
        o[3] = clk.last;
        o[4] = waits;
        o[5] = waited_ticks;
        total += consumed;
    }
    ST(stop, 1);
    bench_publish(s, total, dispatches, sum, start, aio_clock_ns());
    ST(&s->stats[BS_RESCHEDULES].v, resched);
    return k;
}

int64_t aio_bench_virtio_paired(AioContext *ctx, int bh, void *mem, int efd, uint64_t burst,
                                int64_t phase_ns, int phases, int64_t *out)
{
    return bench_virtio_paired(ctx, bh, mem, efd, burst, phase_ns, phases, out, NULL);
}

/* The stall logs (0 the guest's, 1 the host's): entries, and each
 * [start, end) in stopwatch ticks at out[2i], out[2i + 1]. */
int64_t aio_bench_stalls(void *mem, int side, int64_t *out, int64_t cap)
{
    BenchShared *s = mem;
    if (side < 0 || side > 1) {
        return -1;
    }
    int64_t n = (int64_t)LD(&s->nstall[side].v);
    for (int64_t i = 0; i < n && i < cap; i++) {
        out[2 * i] = s->stall[side][i][0];
        out[2 * i + 1] = s->stall[side][i][1];
    }
    return n;
}

double aio_bench_ns_per_tick(void)
{
    aio_tick_setup();
    return aio_ns_per_tick > 0 ? aio_ns_per_tick : 1.0;
}
