/*
 * aio_bench_virtio.c -- virtio-net-tx for `aiocore bench` (aiocore/_bench/
 * _strategies.py, _polling.py): a guest process fills a ring and kicks the
 * device with a cross-process bh_schedule; the owner's tx BH drains it
 * (QEMU's virtio_net_tx_bh).  Also the ring's own floor (a host with no
 * AioContext) and the two paired in one session.  Included after
 * aio_bench.c (BenchShared, bench_publish); declarations in cdef_bench.h.
 */
/* ------------------------------------------------------------------ */
/* virtio-net-tx: a guest fills a ring, the tx BH drains it             */
/* ------------------------------------------------------------------ */

/*
 * The guest: fills every free slot of the ring, publishes the avail index
 * once per batch, and kicks the device -- virtio_net_handle_tx_bh: if the
 * host wants kicks, disable them and qemu_bh_schedule(tx_bh) -- until stop.
 * Batching keeps the guest ahead of the host, so the host (the protocol and
 * the BH) is what limits throughput, as in QEMU's tx path.
 */
int64_t aio_bench_virtio_guest(AioContext *ctx, int bh, void *mem)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t h = LD(&s->head.v), seq = 0, kicks = 0;
    unsigned spins = 0;
    while (!BENCH_STOPPED(stop)) {
        uint64_t t = LD_ACQ(&s->tail.v);
        uint64_t room = BENCH_RING - (h - t);
        if (room == 0) {
            if (++spins > 64) {
                sched_yield();
                spins = 0;
            } else {
                bench_cpu_relax();
            }
            continue;
        }
        spins = 0;
        for (uint64_t i = 0; i < room; i++) {
            s->ring[(h + i) % BENCH_RING] = ++seq;
        }
        h += room;
        ST_REL(&s->head.v, h);
        /* virtio's guest: publish the avail index before reading the flag;
         * pairs with the host's fence between re-enabling kicks and its
         * second flush (bench_tx_bh): one of the two sees the other. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!LD(&s->no_notify.v)) {
            ST(&s->no_notify.v, 1);
            kicks++;
            aio_bh_schedule(ctx, bh);
        }
    }
    ST(&s->stats[BS_PRODUCED].v, seq);
    ST(&s->stats[BS_KICKS].v, kicks);
    /* Wake the host in case it sleeps, so it sees stop. */
    aio_bh_schedule(ctx, bh);
    return (int64_t)seq;
}

/* virtio_net_flush_tx: transmit up to burst packets; returns how many. */
static uint64_t bench_flush_tx(BenchShared *s, uint64_t burst, uint64_t *sum)
{
    uint64_t t = LD(&s->tail.v);
    uint64_t h = LD_ACQ(&s->head.v);
    uint64_t n = h - t;
    if (n > burst) {
        n = burst;
    }
    for (uint64_t i = 0; i < n; i++) {
        *sum += s->ring[(t + i) % BENCH_RING];
    }
    ST_REL(&s->tail.v, t + n);
    return n;
}

/*
 * virtio_net_tx_bh: flush a burst; a full burst reschedules the BH at once;
 * otherwise re-enable kicks, flush again, and reschedule if anything came.
 * Returns the packets flushed.
 */
static uint64_t bench_tx_bh(AioContext *ctx, int bh, BenchShared *s, uint64_t burst,
                            uint64_t *sum, uint64_t *resched)
{
    uint64_t got = bench_flush_tx(s, burst, sum), total = got;
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
    got = bench_flush_tx(s, burst, sum);
    total += got;
    if (got > 0) {
        ST(&s->no_notify.v, 1);
        (*resched)++;
        aio_bh_schedule(ctx, bh);
    }
    return total;
}

/* The tx BH's dispatches among the events of one aio_poll. */
static uint64_t bench_run_tx(AioContext *ctx, int bh, BenchShared *s, int n, uint64_t burst,
                             uint64_t *sum, uint64_t *resched, uint64_t *dispatches)
{
    uint64_t consumed = 0;
    aio_event *ev = ctx->events;
    for (int k = 0; k < n; k++) {
        if (ev[k].kind == AIO_EV_BH && ev[k].id == bh) {
            (*dispatches)++;
            consumed += bench_tx_bh(ctx, bh, s, burst, sum, resched);
        }
    }
    return consumed;
}

/* How often the hosts read the clock for their deadline: every 64 flushes
 * (the floor's host) or aio_poll calls (the AioContext's).  A clock_gettime
 * per aio_poll (~25 ns here, and the polling host makes two per ring: the
 * full burst, then the one that finds the ring empty) cost the polling host
 * 5-6% of its packets/s -- the benchmark's cost, not the protocol's. */
#define BENCH_CLOCK_EVERY 64

/*
 * The host (the context's owner): aio_poll in a loop, the tx BH on each
 * dispatch.  Runs for duration_ns from the first dispatch, then sets stop.
 */
int64_t aio_bench_virtio_host(AioContext *ctx, int bh, void *mem, uint64_t burst,
                              int64_t duration_ns)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t consumed = 0, dispatches = 0, resched = 0, sum = 0, polls = 0;
    int64_t t0 = 0, t1 = 0, now;
    int progress;
    for (;;) {
        int n = aio_poll(ctx, 1, &progress);
        if (n < 0) {
            break;
        }
        if (t0 == 0 && n > 0) {
            t0 = aio_clock_ns();
        }
        consumed += bench_run_tx(ctx, bh, s, n, burst, &sum, &resched, &dispatches);
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
 * virtio_ring_floor: the virtio-net-tx guest (aio_bench_virtio_guest, kicks
 * suppressed for good: no_notify stays 1) against a host that needs no
 * AioContext at all -- it spins on the avail index and flushes bursts as
 * fast as they come.  The packets/s of the ring itself: no skeleton and no
 * strategy can move packets faster, so it bounds what polling can gain over
 * the 2015 skeleton.  "Dispatches" are flushes that found packets.
 */
void aio_bench_virtio_no_kicks(void *mem)
{
    ST(&((BenchShared *)mem)->no_notify.v, 1);
}

int64_t aio_bench_virtio_ring_floor(void *mem, uint64_t burst, int64_t duration_ns)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t consumed = 0, flushes = 0, sum = 0, k = 0;
    int64_t t0 = 0, t1 = 0;
    while (!BENCH_STOPPED(stop)) {
        uint64_t got = bench_flush_tx(s, burst, &sum);
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
 * aio_poll loop with the tx BH (it takes over as if kicked: it schedules the
 * BH).  Both see the same guest, CPUs and moment, so their ratio is not a
 * ratio of two states of this shared machine (separate sessions of the floor
 * alone differed by +-25% within one run here).  out[2k], out[2k+1]: packets
 * and ns of phase k.  Sets stop at the end; returns the phases run.
 */
int64_t aio_bench_virtio_paired(AioContext *ctx, int bh, void *mem, uint64_t burst,
                                int64_t phase_ns, int phases, int64_t *out)
{
    BenchShared *s = mem;
    uint32_t *stop = (uint32_t *)&s->stop.v;
    uint64_t sum = 0, resched = 0, dispatches = 0, total = 0;
    int progress, k;
    while (!BENCH_STOPPED(stop) && LD_ACQ(&s->head.v) == LD(&s->tail.v)) {
        bench_cpu_relax();    /* the guest's first packets */
    }
    int64_t start = aio_clock_ns();
    for (k = 0; k < phases && !BENCH_STOPPED(stop); k++) {
        uint64_t consumed = 0, it = 0;
        int64_t t0 = aio_clock_ns(), t1 = t0;
        if (k % 2 == 0) {
            ST(&s->no_notify.v, 1);
            while (!BENCH_STOPPED(stop)) {
                uint64_t got = bench_flush_tx(s, burst, &sum);
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
            aio_bh_schedule(ctx, bh);
            while (!BENCH_STOPPED(stop)) {
                int n = aio_poll(ctx, 1, &progress);
                if (n < 0) {
                    break;
                }
                consumed += bench_run_tx(ctx, bh, s, n, burst, &sum, &resched, &dispatches);
                if (++it % BENCH_CLOCK_EVERY == 0 && (t1 = aio_clock_ns()) - t0 >= phase_ns) {
                    break;
                }
            }
        }
        out[2 * k] = (int64_t)consumed;
        out[2 * k + 1] = t1 - t0;
        total += consumed;
    }
    ST(stop, 1);
    bench_publish(s, total, dispatches, sum, start, aio_clock_ns());
    ST(&s->stats[BS_RESCHEDULES].v, resched);
    return k;
}
