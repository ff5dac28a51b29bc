/*
 * aio_process.c -- the calling process against the context: the closed
 * check, this process's pid and the home-process test, the clocks (the
 * monotonic clock and the polling skeleton's stopwatch), the owner-liveness
 * check of attached processes and the context lock.
 *
 * Part of the core template: #included by aio_core.c after aio_segment.c
 * into one translation unit per strategy (see aio_core.c), never compiled
 * alone.
 */

#define CHECK_OPEN(ctx) do { if ((ctx)->closed) return AIO_E_CLOSED; } while (0)

/*
 * This process's pid, cached.  glibc no longer caches getpid() (a real
 * system call, ~110 ns here), and the home-process test runs several times
 * per aio_poll.  A fork child refreshes the cache in its atfork handler
 * (Python's os.fork runs them); subprocess children exec and start afresh.
 */
static uint32_t aio_self_pid;
static pthread_once_t aio_pid_once = PTHREAD_ONCE_INIT;

static void aio_pid_refresh(void)
{
    __atomic_store_n(&aio_self_pid, (uint32_t)getpid(), __ATOMIC_RELAXED);
}

static void aio_pid_init(void)
{
    aio_pid_refresh();
    pthread_atfork(NULL, NULL, aio_pid_refresh);
}

static inline uint32_t aio_getpid(void)
{
    pthread_once(&aio_pid_once, aio_pid_init);
    return __atomic_load_n(&aio_self_pid, __ATOMIC_RELAXED);
}

/* Polling is the home process's job (QEMU asserts in_aio_context_home_thread),
 * unless the strategy comes from the era of foreign pollers. */
static int aio_may_poll(AioContext *ctx)
{
    if (ctx->is_owner && aio_getpid() == ctx->owner_pid) {
        return AIO_OK;
    }
    return AIO_STRATEGY_FOREIGN_POLLERS ? AIO_OK : AIO_E_NOT_HOME;
}

static int aio_is_home(AioContext *ctx)
{
    return ctx->is_owner && aio_getpid() == ctx->owner_pid;
}

int64_t aio_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * The polling skeleton's stopwatch: how long a busy-poll phase or an
 * aio_poll has lasted (run_poll_handlers' elapsed, adjust_polling_time's
 * block_ns), never a point in time -- deadlines and timers keep
 * CLOCK_MONOTONIC (the owner's position stamps extrapolate it: see
 * aio_stamp_at below).  QEMU reads
 * qemu_clock_get_ns(QEMU_CLOCK_REALTIME) for these; a vDSO clock_gettime
 * costs ~25 ns here and a polling wake-up does three of them, a third of a
 * ~130 ns wake-up.  RDTSC costs ~10 ns.  It is used only where the kernel
 * itself trusts the TSC as its clocksource (which it does only for an
 * invariant TSC, synchronised across CPUs, so a duration measured across a
 * migration is still right); the ns per tick come from a 2 ms calibration
 * against CLOCK_MONOTONIC, once per process, good to ~5e-5 -- far below
 * what adjust_polling_time resolves (it doubles or halves).  Elsewhere the
 * stopwatch is clock_gettime.
 */
static double aio_ns_per_tick;      /* 0: use clock_gettime */
static pthread_once_t aio_tick_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static inline int64_t aio_rdtsc(void) { return (int64_t)__rdtsc(); }

static int aio_tsc_is_clocksource(void)
{
    char buf[32] = {0};
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || buf[3] == 0);
}

/* A (CLOCK_MONOTONIC, TSC) pair read together: the TSC bracketed by two
 * clock readings less than 200 ns apart (~60 ns normally), so that a
 * preemption between the two readings cannot skew the pair by a time
 * slice; 0 if no attempt was quick enough. */
static int aio_tsc_pair(int64_t *mono, int64_t *tsc)
{
    for (int k = 0; k < 1000; k++) {
        int64_t a = aio_clock_ns(), t = aio_rdtsc(), b = aio_clock_ns();
        if (b - a < 200) {
            *mono = a + (b - a) / 2;
            *tsc = t;
            return 1;
        }
    }
    return 0;
}

static void aio_tick_init(void)
{
    int64_t m0, t0, m1, t1;
    if (!aio_tsc_is_clocksource() || getenv("AIOCORE_NO_TSC") || !aio_tsc_pair(&m0, &t0)) {
        return;
    }
    while (aio_clock_ns() - m0 < 2000000) {
    }
    /* Two pairs 2 ms apart, each good to ~100 ns: the ns per tick to ~5e-5. */
    if (aio_tsc_pair(&m1, &t1) && t1 > t0) {
        aio_ns_per_tick = (double)(m1 - m0) / (double)(t1 - t0);
    }
}
#else
static inline int64_t aio_rdtsc(void) { return 0; }
static int aio_tsc_pair(int64_t *mono, int64_t *tsc) { (void)mono; (void)tsc; return 0; }
static void aio_tick_init(void) {}
#endif

/* A stopwatch reading: ticks (or ns where there is no usable TSC). */
static inline int64_t aio_ticks(void)
{
    pthread_once(&aio_tick_once, aio_tick_init);
    return aio_ns_per_tick > 0 ? aio_rdtsc() : aio_clock_ns();
}

/* The ns between two stopwatch readings. */
static inline int64_t aio_ticks_ns(int64_t dt)
{
    return aio_ns_per_tick > 0 ? (int64_t)((double)dt * aio_ns_per_tick) : dt;
}

/*
 * A position stamp (the owner's since_ns, read by the watchdog and by the
 * stress drivers, which aim at it to within ~100 ns): CLOCK_MONOTONIC as
 * the stopwatch extrapolates it from an anchor -- a (clock_gettime, TSC)
 * pair of this thread's (aio_tsc_pair), renewed once the anchor is 1 ms
 * old.  The drift over 1 ms is at most ~5e-5 of it (the calibration), so a
 * stamp is within ~100 ns of CLOCK_MONOTONIC; the polling skeleton's fast
 * path then reads no clock at all.  Never used for a deadline (timers read
 * the clock).
 */
static __thread int64_t aio_anchor_ticks = -1, aio_anchor_ns;

/* The stamp of a stopwatch reading t (aio_ticks) just taken. */
static inline int64_t aio_stamp_at(int64_t t)
{
    if (!(aio_ns_per_tick > 0)) {
        return t;                                   /* that is clock_gettime */
    }
    int64_t d = aio_ticks_ns(t - aio_anchor_ticks);
    if (aio_anchor_ticks < 0 || d < 0 || d > 1000000) {
        int64_t m, x;
        if (!aio_tsc_pair(&m, &x)) {
            aio_anchor_ticks = -1;                  /* try again next time */
            return aio_clock_ns();
        }
        aio_anchor_ns = m;
        aio_anchor_ticks = x;
        return m + aio_ticks_ns(t - x);             /* t may precede x: d < 0 is fine here */
    }
    return aio_anchor_ns + d;
}

static inline int64_t aio_stamp_ns(void)
{
    return aio_stamp_at(aio_ticks());
}

/* ------------------------------------------------------------------ */
/* Is the owner still there? (attached processes)                     */
/* ------------------------------------------------------------------ */

/* An attached process checks the owner every this many schedules/notifies
 * (one poll() of its pidfd), so that a notifier loop notices a kill -9 of
 * the owner within a bounded number of calls at ~1 ns per call. */
#define AIO_OWNER_CHECK_EVERY 256

/* 1 if the owner closed the context or exited (kill -9 included): its
 * pidfd is readable once it has exited; without a pidfd, kill(pid, 0). */
static int aio_owner_gone(AioContext *ctx)
{
    if (ctx->is_owner && aio_getpid() == ctx->owner_pid) {
        return 0;
    }
    if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE) {
        return 1;
    }
    if (ctx->owner_pidfd >= 0) {
        struct pollfd p = { .fd = ctx->owner_pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
    }
    return kill((pid_t)ctx->owner_pid, 0) < 0 && errno == ESRCH;
}

/* aio_owner_gone, waiting up to ms for an exit in progress: the kernel
 * releases a dying process's robust locks before its pidfd turns readable. */
static int aio_owner_gone_wait(AioContext *ctx, int ms)
{
    if (!aio_owner_gone(ctx) && ctx->owner_pidfd >= 0) {
        struct pollfd p = { .fd = ctx->owner_pidfd, .events = POLLIN };
        (void)poll(&p, 1, ms);
    }
    return aio_owner_gone(ctx);
}

/* The amortized check of the hot paths (attached processes only). */
static inline int aio_owner_tick(AioContext *ctx)
{
    if (ctx->is_owner || ++ctx->owner_check_ops < AIO_OWNER_CHECK_EVERY) {
        return 0;
    }
    ctx->owner_check_ops = 0;
    return aio_owner_gone(ctx);
}

int aio_check_owner(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    return aio_owner_gone(ctx) ? AIO_E_OWNER_GONE : AIO_OK;
}

/* ------------------------------------------------------------------ */
/* The context lock                                                    */
/* ------------------------------------------------------------------ */

/* How often a process waiting for the lock checks that the owner lives. */
#define AIO_LOCK_CHECK_NS 100000000ll

int aio_acquire(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    int home = ctx->is_owner && aio_getpid() == ctx->owner_pid;
    int r;
    if (home) {
        r = pthread_mutex_lock(&ctx->shm->lock.mutex);
    } else {
        /* An attached process never waits forever: if the owner dies
         * while somebody else holds the lock, it gets OWNER_GONE.  The
         * uncontended path is one trylock, as pthread_mutex_lock's. */
        r = pthread_mutex_trylock(&ctx->shm->lock.mutex);
        for (int waited = 0; r == EBUSY || waited; waited = 1) {
            if (waited && r != ETIMEDOUT) {
                /* Got it after a wait: the holder may have been a process
                 * that gave up because the owner is gone. */
                if (r == 0 && aio_owner_gone(ctx)) {
                    pthread_mutex_unlock(&ctx->shm->lock.mutex);
                    return AIO_E_OWNER_GONE;
                }
                break;
            }
            if (waited && aio_owner_gone(ctx)) {
                return AIO_E_OWNER_GONE;
            }
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += AIO_LOCK_CHECK_NS;
            if (ts.tv_nsec >= 1000000000l) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000l;
            }
            r = pthread_mutex_clocklock(&ctx->shm->lock.mutex, CLOCK_MONOTONIC, &ts);
        }
    }
    if (r == EOWNERDEAD) {
        /* The holder died mid-section.  The lock protects no invariant of
         * its own (the protocol state is lock-free), so carry on -- unless
         * the holder was the owner: then the context is gone. */
        pthread_mutex_consistent(&ctx->shm->lock.mutex);
        if (!home && aio_owner_gone_wait(ctx, 200)) {
            pthread_mutex_unlock(&ctx->shm->lock.mutex);
            return AIO_E_OWNER_GONE;
        }
        r = 0;
    }
    if (r != 0) {
        ctx->last_errno = r;
        return AIO_E_LOCK;
    }
    ctx->lock_depth++;
    return AIO_OK;
}

int aio_release(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (ctx->lock_depth <= 0) {
        return AIO_E_LOCK;
    }
    ctx->lock_depth--;
    pthread_mutex_unlock(&ctx->shm->lock.mutex);
    return AIO_OK;
}

