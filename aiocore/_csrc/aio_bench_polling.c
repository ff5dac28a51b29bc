/*
 * aio_bench_polling.c -- measurement loops of the polling skeleton's
 * benchmarks (aiocore/_bench/_polling.py): the shm_spin_pingpong floor and
 * the idle owner's CPU time.  Included after aio_bench.c (its helpers);
 * declarations for cffi in cdef_bench.h.
 */
/* ------------------------------------------------------------------ */
/* Polling skeleton: the spinning floor and the idle owner             */
/* ------------------------------------------------------------------ */

/*
 * shm_spin_pingpong: two processes (on different CPUs) bounce one cache
 * line: the initiator stores 2i+1 and spins until it reads 2i+2, the
 * responder spins for an odd value and stores it + 1.  The cheapest possible
 * cross-process wake-up of a partner that is awake and watching memory --
 * the floor of a polling owner's wake-up.  Release/acquire: each side's
 * store publishes, the other's load observes (nothing else is carried).
 */
int64_t aio_bench_spin_pingpong(void *mem, int initiator, uint64_t n, int64_t *lat,
                                uint32_t *stop)
{
    uint64_t *line = (uint64_t *)((char *)mem + AIO_CACHELINE);
    uint64_t i;
    for (i = 0; i < n && !BENCH_STOPPED(stop); i++) {
        uint64_t ping = 2 * i + 1, pong = 2 * i + 2;
        if (initiator) {
            int64_t t0 = aio_clock_ns();
            __atomic_store_n(line, ping, __ATOMIC_RELEASE);
            while (__atomic_load_n(line, __ATOMIC_ACQUIRE) != pong) {
                if (BENCH_STOPPED(stop)) return (int64_t)i;
                bench_cpu_relax();
            }
            lat[i] = aio_clock_ns() - t0;
        } else {
            while (__atomic_load_n(line, __ATOMIC_ACQUIRE) != ping) {
                if (BENCH_STOPPED(stop)) return (int64_t)i;
                bench_cpu_relax();
            }
            __atomic_store_n(line, pong, __ATOMIC_RELEASE);
        }
    }
    return (int64_t)i;
}

/*
 * An idle owner: a timer every tick_ns and nothing else; blocking aio_poll
 * in a loop for duration_ns (the timer re-armed here, in C).  Returns the
 * thread's CPU time divided by the wall-clock time (CLOCK_THREAD_CPUTIME_ID),
 * i.e. the fraction of one CPU the idle owner burns; out[0] = polls.
 */
double aio_bench_idle(AioContext *ctx, int timer, int64_t tick_ns, int64_t duration_ns,
                      int64_t *out)
{
    struct timespec c0, c1;
    int progress;
    int64_t polls = 0;
    int64_t t0 = aio_clock_ns(), now = t0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    while (now - t0 < duration_ns) {
        if (aio_timer_mod_ns(ctx, timer, now + tick_ns) < 0) {
            return -1.0;
        }
        do {
            if (aio_poll(ctx, 1, &progress) < 0) {
                return -1.0;
            }
            polls++;
        } while (!progress);
        now = aio_clock_ns();
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    out[0] = polls;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec);
    return cpu / (double)(now - t0);
}
