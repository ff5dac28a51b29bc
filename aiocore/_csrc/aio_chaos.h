/*
 * aio_chaos.h -- the chaos build of a strategy (-DAIO_PRIM_HOOKS -DAIO_CHAOS):
 * a seeded, random short pause at the primitive boundaries of the
 * strategy's hooks, to widen the race windows stress looks for.
 *
 * Generated from the same IR as the default build (aio_prims.h calls
 * aio_prim_hook(op) just before every primitive; aio_primhook.c dispatches
 * here).  Off until the process calls aio_chaos_config(on, seed, pct,
 * max_ns): the stress runner turns it on per process, which is how a run
 * picks its mode --
 *
 *   notifiers: only the processes that schedule and notify pause.  The
 *              owner's hooks run untouched, so the store-buffering window
 *              between its write of notify_me and its reads of the BH flags
 *              (poll_begin / prepare -> compute_timeout) stays as narrow and
 *              as real as the hardware makes it: a pause there would let
 *              the store drain and hide the bug being sought.
 *   owner:     only the owner pauses (widens its accept / poll_end windows,
 *              e.g. bug1's accept landing between notified=1 and the event).
 *
 * A pause is a spin on the clock: no system call, no locked instruction,
 * no fence -- nothing that drains the pausing CPU's store buffer sooner
 * than it drains by itself.  PRNG: xorshift64*, one state per process,
 * seeded from the run's seed (printed by `aiocore stress`; --seed replays
 * the same decisions, up to the machine's timing).
 */
#ifndef AIO_CHAOS_H
#define AIO_CHAOS_H

static int aio_chaos_on;
static uint32_t aio_chaos_pct;       /* % of primitives preceded by a pause */
static uint32_t aio_chaos_max_ns;    /* pause length: uniform in [0, max_ns] */
static uint64_t aio_chaos_rng = 1;
static uint64_t aio_chaos_pauses;

static inline uint64_t aio_chaos_rand(void)
{
    uint64_t x = aio_chaos_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    aio_chaos_rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline int64_t aio_chaos_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void aio_chaos_prim(int op)
{
    (void)op;
    if (!aio_chaos_on) {
        return;
    }
    uint64_t r = aio_chaos_rand();
    if (r % 100 >= aio_chaos_pct) {
        return;
    }
    int64_t end = aio_chaos_now() + (int64_t)((r >> 8) % ((uint64_t)aio_chaos_max_ns + 1));
    aio_chaos_pauses++;
    while (aio_chaos_now() < end) {
        __asm__ __volatile__("" ::: "memory");   /* compiler barrier only */
    }
}

/* Turn chaos on (on=1) or off for this process; returns 1 (a chaos build). */
int aio_chaos_config(int on, uint64_t seed, uint32_t pct, uint32_t max_ns)
{
    aio_chaos_rng = seed ? seed : 1;
    aio_chaos_pct = pct > 100 ? 100 : pct;
    aio_chaos_max_ns = max_ns;
    aio_chaos_on = on;
    return 1;
}

/* Pauses taken so far in this process. */
uint64_t aio_chaos_count(void)
{
    return aio_chaos_pauses;
}

#endif
