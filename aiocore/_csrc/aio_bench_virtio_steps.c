/*
 * aio_bench_virtio_steps.c -- what the polling host adds per ring, step by
 * step: the paired virtio-net-tx session of aio_bench_virtio.c with stamps
 * (aio_bench_virtio_steps, read by aiocore/_bench/_virtio_steps.py), and
 * the polling host's aio_poll per batch in one process
 * (aio_bench_word_round).  Included after aio_bench_virtio.c;
 * declarations in cdef_bench.h.
 */
/*
 * What the polling host's aio_poll costs per batch, one process: post to
 * the avail word, then a blocking aio_poll that finds it in the poll phase
 * and dispatches the ioeventfd's handler (efd registered on the word by the
 * caller; poll_ns must already be > 0, e.g. after a BH round).  ns/round.
 */
double aio_bench_word_round(AioContext *ctx, int efd, uint64_t n)
{
    uint32_t *avail = bench_avail(ctx);
    int progress, hit = 0, kicked;
    int64_t t0 = aio_clock_ns();
    for (uint64_t i = 0; i < n; i++) {
        ST_REL(avail, LD(avail) + 1);
        kicked = aio_poll_word_kick_prepare(ctx, BENCH_AVAIL_WORD) == 1;
        if (kicked) {
            uint64_t one = 1;   /* poll mode is off (poll_ns shrank): a producer kicks */
            (void)!write(efd, &one, sizeof(one));
        }
        int k = aio_poll(ctx, 1, &progress);
        if (k < 0) {
            return -1.0;
        }
        if (k > 0 && ctx->events[0].kind == AIO_EV_FD && ctx->events[0].id == efd) {
            hit++;
            if (kicked) {
                uint64_t v;
                (void)!read(efd, &v, sizeof(v));   /* event_notifier_test_and_clear */
            }
        }
    }
    int64_t t1 = aio_clock_ns();
    return hit == (int)n ? (double)(t1 - t0) / (double)n : -1.0;
}

/* ------------------------------------------------------------------ */
/* aio_bench_virtio_steps: the paired session, stamped                  */
/* ------------------------------------------------------------------ */

/*
 * `stamps`: a MAP_SHARED block of aio_bench_stamps_size(cap) bytes, set up
 * by aio_bench_stamps_init.  The guest (aio_bench_virtio_guest_stamped,
 * forked) writes g: per fill, the avail index it published, when it saw
 * room, when it had published, when it had kicked (or decided not to).
 * This host writes h: per flush that found packets, the used index it
 * published, how many, entry and exit of the flush, the return of the
 * aio_poll that led to it (0 in floor phases), the phase's kind.
 * Stamps are TSC ticks (aio_bench_ns_per_tick); aiocore/_bench/
 * _virtio_steps.py matches them ring by ring.
 */
size_t aio_bench_stamps_size(int64_t cap)
{
    return sizeof(BenchStamps) + (size_t)cap * (BENCH_G_N + BENCH_H_N) * sizeof(int64_t);
}

/* Zeroes the whole block, so that no page is first touched (faulted in)
 * inside the session. */
void aio_bench_stamps_init(void *stamps, int64_t cap)
{
    BenchStamps *st = stamps;
    memset(st, 0, aio_bench_stamps_size(cap));
    st->g.cap = st->h.cap = cap;
}

/* Records written: out2 = guest, host. */
void aio_bench_stamps_count(void *stamps, int64_t *out2)
{
    BenchStamps *st = stamps;
    out2[0] = st->g.ng;
    out2[1] = st->h.nh;
}

int64_t *aio_bench_stamps_guest(void *stamps)
{
    return bench_stamps_g(stamps);
}

int64_t *aio_bench_stamps_host(void *stamps)
{
    return bench_stamps_h(stamps);
}

int64_t aio_bench_virtio_guest_stamped(AioContext *ctx, int bh, void *mem, int efd, void *stamps)
{
    return bench_virtio_guest(ctx, bh, mem, efd, stamps);
}

int64_t aio_bench_virtio_steps(AioContext *ctx, int bh, void *mem, int efd, uint64_t burst,
                               int64_t phase_ns, int phases, int64_t *out, void *stamps)
{
    return bench_virtio_paired(ctx, bh, mem, efd, burst, phase_ns, phases, out, stamps);
}
