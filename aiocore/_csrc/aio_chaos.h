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
 *   pressure:  nobody pauses; every process, before some of its strategy's
 *              stores (atomic_set, atomic_store_release), first writes
 *              AIO_DRV_PRESS cache lines that the other CPU holds.  The
 *              strategy's store then waits in the store buffer behind those
 *              misses -- for hundreds of nanoseconds instead of tens -- while
 *              the process goes on loading: the store-buffering windows
 *              (a store, then a load of another location, with no fence
 *              between) widen, and only they do.  Every fence, locked
 *              instruction and system call still waits for the buffer to
 *              drain, so a strategy that orders its store before its load
 *              is exactly as correct as without pressure, and every outcome
 *              is one x86-TSO allows (the checker's store buffers hold a
 *              store as long as they like).  Each process keeps the other
 *              side's pressure lines written while it waits
 *              (aio_chaos_keep_warm), so that the pressure stores miss.
 *
 * A pause is a spin on the clock: no system call, no locked instruction,
 * no fence -- nothing that drains the pausing CPU's store buffer sooner
 * than it drains by itself.  PRNG: xorshift64*, one state per process,
 * seeded from the run's seed (printed by `aiocore stress`; --seed replays
 * the same decisions, up to the machine's timing).
 */
#ifndef AIO_CHAOS_H
#define AIO_CHAOS_H

enum { AIO_CHAOS_OFF = 0, AIO_CHAOS_PAUSE = 1, AIO_CHAOS_PRESSURE = 2 };

static int aio_chaos_on;             /* AIO_CHAOS_* */
static uint32_t aio_chaos_pct;       /* % of primitives preceded by a pause */
static uint32_t aio_chaos_max_ns;    /* pause length: uniform in [0, max_ns] */
static uint64_t aio_chaos_rng = 1;
static uint64_t aio_chaos_pauses;    /* pauses, or pressure bursts, so far */
static aio_drv_line *aio_chaos_press;       /* this side's pressure lines (driver area) */
static aio_drv_line *aio_chaos_press_peer;  /* the other side's, kept warm here */
static uint64_t aio_chaos_press_seq;

/* Where the pressure lines are (aio_drv_area_map; NULL: no pressure). */
static void aio_chaos_pressure_lines(aio_drv_line *mine, aio_drv_line *peer)
{
    aio_chaos_press = mine;
    aio_chaos_press_peer = peer;
}

/* Relaxed stores to every line of `lines`: no fence, nothing ordered. */
static inline void aio_chaos_write_lines(aio_drv_line *lines)
{
    uint64_t v = ++aio_chaos_press_seq;
    for (int i = 0; i < AIO_DRV_PRESS; i++) {
        __atomic_store_n(&lines[i].v, v, __ATOMIC_RELAXED);
    }
}

/* Pressure mode, outside any protocol call (a process waiting): write the
 * other side's lines, so that its next pressure burst misses in its cache. */
static inline void aio_chaos_keep_warm(void)
{
    if (aio_chaos_on == AIO_CHAOS_PRESSURE && aio_chaos_press_peer) {
        aio_chaos_write_lines(aio_chaos_press_peer);
    }
}

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
    if (!aio_chaos_on) {
        return;
    }
    if (aio_chaos_on == AIO_CHAOS_PRESSURE) {
        /* Before a store of the strategy only: queued behind the misses, it
         * becomes visible late; a load or a fence here would gain nothing. */
        if ((op == AIO_OP_ATOMIC_SET || op == AIO_OP_STORE_RELEASE) && aio_chaos_press &&
            aio_chaos_rand() % 100 < aio_chaos_pct) {
            aio_chaos_write_lines(aio_chaos_press);
            aio_chaos_pauses++;
        }
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

/* Turn chaos on for this process (on=1: pauses; on=2: store-buffer
 * pressure before pct% of the strategy's stores) or off (on=0); returns 1
 * (a chaos build). */
int aio_chaos_config(int on, uint64_t seed, uint32_t pct, uint32_t max_ns)
{
    aio_chaos_rng = seed ? seed : 1;
    aio_chaos_pct = pct > 100 ? 100 : pct;
    aio_chaos_max_ns = max_ns;
    aio_chaos_on = on == AIO_CHAOS_PAUSE || on == AIO_CHAOS_PRESSURE ? on : AIO_CHAOS_OFF;
    return 1;
}

/* Pauses (or pressure bursts) taken so far in this process. */
uint64_t aio_chaos_count(void)
{
    return aio_chaos_pauses;
}

#endif
