/*
 * aio_segment.c -- the segment: layout, header validation, create / attach /
 * close, the home-process test, the owner-liveness check and the context
 * lock.
 *
 * Part of the core template: #included by aio_core.c into one translation
 * unit per strategy (see aio_core.c), never compiled alone.
 */
/* ------------------------------------------------------------------ */
/* Layout, header validation                                           */
/* ------------------------------------------------------------------ */

static uint32_t aio_align(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

/* The size and offsets a segment with these capacities must have. */
static int aio_layout(uint32_t n_bh, uint32_t n_timers, uint32_t n_procs,
                      uint32_t *bh_off, uint32_t *timer_off,
                      uint32_t *proc_off, uint32_t *size)
{
    if (n_bh == 0 || n_bh > AIO_MAX_BH || n_timers > AIO_MAX_TIMERS ||
        n_procs > AIO_NPROCS) {
        return AIO_E_INVAL;
    }
    uint32_t b = aio_align(sizeof(AioShared), AIO_CACHELINE);
    uint32_t t = b + n_bh * (uint32_t)sizeof(AioBHSlot);
    uint32_t p = t + n_timers * (uint32_t)sizeof(AioTimerSlot);
    uint32_t s = aio_align(p + n_procs * (uint32_t)sizeof(AioProcSlot), 4096);
    if (s > AIO_MAX_SEGMENT) {
        return AIO_E_INVAL;
    }
    *bh_off = b; *timer_off = t; *proc_off = p; *size = s;
    return AIO_OK;
}

/* FNV-1a over the header up to (not including) the checksum. */
static uint32_t aio_header_sum(const AioHeader *h)
{
    const unsigned char *p = (const unsigned char *)h;
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < offsetof(AioHeader, checksum); i++) {
        x = (x ^ p[i]) * 16777619u;
    }
    return x;
}

static int aio_cstr_ok(const char *s, size_t n)
{
    return memchr(s, 0, n) != NULL;
}

/*
 * Validate a header copied out of a segment of actual_size bytes.  buf is a
 * private copy, so a concurrent writer cannot change it under the checks.
 */
int aio_peek(const void *buf, size_t len, uint64_t actual_size, aio_info *out)
{
    AioHeader h;
    uint32_t bo, to, po, sz;

    memset(out, 0, sizeof(*out));
    if (len < sizeof(AioHeader) || actual_size < sizeof(AioHeader)) {
        return AIO_E_TRUNCATED;
    }
    memcpy(&h, buf, sizeof(h));
    out->magic = h.magic;
    out->layout_version = h.layout_version;
    out->size = h.size;
    if (h.magic != AIO_MAGIC) {
        return AIO_E_BAD_MAGIC;
    }
    if (h.layout_version != AIO_LAYOUT_VERSION) {
        return AIO_E_LAYOUT;
    }
    if (aio_header_sum(&h) != h.checksum || h.header_size != AIO_HEADER_SIZE ||
        !aio_cstr_ok(h.strategy, sizeof(h.strategy)) ||
        !aio_cstr_ok(h.fingerprint, sizeof(h.fingerprint))) {
        return AIO_E_CORRUPT;
    }
    out->header_size = h.header_size;
    out->owner_pid = h.owner_pid;
    out->state = h.state;
    out->owner_start = h.owner_start;
    out->created_ns = h.created_ns;
    out->n_bh = h.n_bh;
    out->n_timers = h.n_timers;
    out->n_procs = h.n_procs;
    out->notifier_kind = h.notifier_kind;
    memcpy(out->strategy, h.strategy, sizeof(h.strategy));
    memcpy(out->fingerprint, h.fingerprint, sizeof(h.fingerprint));
    out->skeleton = h.skeleton;
    out->poll_grow = h.poll_grow;
    out->poll_shrink = h.poll_shrink;
    out->poll_max_ns = h.poll_max_ns;
    out->flags = h.flags;
    if (h.skeleton > AIO_SKEL_POLLING || h.poll_max_ns < 0 ||
        h.poll_max_ns > AIO_MAX_POLL_MAX_NS) {
        return AIO_E_CORRUPT;
    }
    if (aio_layout(h.n_bh, h.n_timers, h.n_procs, &bo, &to, &po, &sz) != AIO_OK ||
        bo != h.bh_off || to != h.timer_off || po != h.proc_off || sz != h.size ||
        (h.state != AIO_STATE_LIVE && h.state != AIO_STATE_CLOSED) ||
        (h.notifier_kind != 1 && h.notifier_kind != 2)) {
        return AIO_E_CORRUPT;
    }
    if (actual_size < h.size) {
        return AIO_E_TRUNCATED;
    }
    if (actual_size != h.size) {
        return AIO_E_CORRUPT;   /* resized after creation */
    }
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* Creating, attaching, closing                                        */
/* ------------------------------------------------------------------ */

const char *aio_strategy_name(void) { return AIO_STRATEGY_NAME; }
const char *aio_strategy_fingerprint(void) { return AIO_STRATEGY_FINGERPRINT; }
int aio_strategy_foreign_pollers(void) { return AIO_STRATEGY_FOREIGN_POLLERS; }

AioContext *aio_ctx_new(void)
{
    AioContext *ctx = calloc(1, sizeof(*ctx));
    if (ctx) {
        ctx->closed = 1;
        ctx->notifier_rfd = ctx->notifier_wfd = ctx->rescue_fd = -1;
        ctx->owner_pidfd = -1;
        ctx->rec_slot = -1;
        for (int i = 0; i < AIO_NPROCS; i++) {
            ctx->rec_fd[i] = -1;   /* recovery: no pidfd watched */
        }
    }
    return ctx;
}

static void aio_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void aio_release_resources(AioContext *ctx)
{
    if (ctx->shm) {
        munmap(ctx->shm, ctx->map_size);
        ctx->shm = NULL;
    }
    if (ctx->notifier_wfd != ctx->notifier_rfd) {
        aio_close_fd(&ctx->notifier_wfd);
    }
    ctx->notifier_wfd = -1;
    aio_close_fd(&ctx->notifier_rfd);
    aio_close_fd(&ctx->rescue_fd);
    aio_close_fd(&ctx->owner_pidfd);
    aio_recovery_release(ctx);
    free(ctx->events);
    ctx->events = NULL;
    ctx->bh = NULL;
    ctx->timer = NULL;
    ctx->proc = NULL;
}

static void aio_handle_drop(AioContext *ctx);

void aio_ctx_free(AioContext *ctx)
{
    if (ctx) {
        aio_handle_drop(ctx);
        aio_release_resources(ctx);
        free(ctx);
    }
}

static int aio_map(AioContext *ctx, int shm_fd, uint32_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (p == MAP_FAILED) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    ctx->shm = p;
    ctx->map_size = size;
    return AIO_OK;
}

static int aio_alloc_events(AioContext *ctx)
{
    ctx->events_cap = (int)(ctx->n_bh + ctx->n_timers + AIO_MAX_FDS);
    ctx->events = calloc((size_t)ctx->events_cap, sizeof(aio_event));
    return ctx->events ? AIO_OK : AIO_E_SYS;
}

static void aio_set_slots(AioContext *ctx, uint32_t bo, uint32_t to, uint32_t po)
{
    char *base = (char *)ctx->shm;
    ctx->bh = (AioBHSlot *)(base + bo);
    ctx->timer = (AioTimerSlot *)(base + to);
    ctx->proc = (AioProcSlot *)(base + po);
}

/* Copy the skeleton and its poll parameters into the private context: the
 * skeleton code reads only these copies, never the segment's. */
static void aio_adopt_skeleton(AioContext *ctx, const AioHeader *h)
{
    ctx->skeleton = (int)h->skeleton;
    ctx->poll_max_ns = h->poll_max_ns;
    ctx->poll_grow = h->poll_grow;
    ctx->poll_shrink = h->poll_shrink;
}

/*
 * Owner: initialise a freshly created (zeroed, ftruncated) segment.
 * notifier_kind 1 creates an eventfd, 2 a pipe pair.
 */
int aio_ctx_create(AioContext *ctx, int shm_fd, uint32_t n_bh, uint32_t n_timers,
                   uint64_t owner_start, int notifier_kind, int skeleton,
                   int64_t poll_max_ns, uint32_t poll_grow, uint32_t poll_shrink)
{
    uint32_t bo, to, po, size;
    int r = aio_layout(n_bh, n_timers, AIO_NPROCS, &bo, &to, &po, &size);
    if (r != AIO_OK) {
        return r;
    }
    if (skeleton < AIO_SKEL_2015 || skeleton > AIO_SKEL_POLLING || poll_max_ns < 0 ||
        poll_max_ns > AIO_MAX_POLL_MAX_NS) {
        return AIO_E_SKELETON;
    }
    if (ftruncate(shm_fd, size) < 0) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    if ((r = aio_map(ctx, shm_fd, size)) != AIO_OK) {
        return r;
    }
    ctx->n_bh = n_bh;
    ctx->n_timers = n_timers;
    ctx->n_procs = AIO_NPROCS;
    aio_set_slots(ctx, bo, to, po);

    if (notifier_kind == 1) {
        ctx->notifier_rfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        ctx->notifier_wfd = ctx->notifier_rfd;
    } else {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
            ctx->notifier_rfd = p[0];
            ctx->notifier_wfd = p[1];
        }
    }
    ctx->rescue_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ctx->notifier_rfd < 0 || ctx->rescue_fd < 0 || aio_alloc_events(ctx) != AIO_OK) {
        ctx->last_errno = errno;
        aio_release_resources(ctx);
        return AIO_E_SYS;
    }
    ctx->notifier_kind = notifier_kind;

    /* The lock: recursive (QEMU's RFifoLock is), process-shared, and robust
     * so that a holder killed with -9 does not wedge every other process. */
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&ctx->shm->lock.mutex, &a);
    pthread_mutexattr_destroy(&a);

    AioHeader *h = &ctx->shm->h;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->layout_version = AIO_LAYOUT_VERSION;
    h->size = size;
    h->header_size = AIO_HEADER_SIZE;
    h->owner_pid = (uint32_t)getpid();
    h->state = AIO_STATE_LIVE;
    h->owner_start = owner_start;
    h->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    h->n_bh = n_bh;
    h->n_timers = n_timers;
    h->n_procs = AIO_NPROCS;
    h->bh_off = bo;
    h->timer_off = to;
    h->proc_off = po;
    h->notifier_kind = (uint32_t)notifier_kind;
    strncpy(h->strategy, AIO_STRATEGY_NAME, sizeof(h->strategy) - 1);
    strncpy(h->fingerprint, AIO_STRATEGY_FINGERPRINT, sizeof(h->fingerprint) - 1);
    h->skeleton = (uint32_t)skeleton;
    h->poll_max_ns = skeleton == AIO_SKEL_POLLING ? poll_max_ns : 0;
    h->poll_grow = poll_grow;
    h->poll_shrink = poll_shrink;
    h->flags = ctx->create_flags & AIO_FLAG_RECOVERY;   /* aio_ctx_set_flags */
    ctx->recovery = (h->flags & AIO_FLAG_RECOVERY) != 0;
    aio_adopt_skeleton(ctx, h);
    ctx->shm->owner.wait_timeout_ns = -1;
    ctx->shm->owner.poll_ns = 0;   /* QEMU starts at 0 and grows from 4 us */
    /* The magic goes last, so that a process attaching before we are done
     * sees a bad magic rather than a half-written header. */
    h->checksum = 0;
    __atomic_store_n(&h->magic, AIO_MAGIC, __ATOMIC_RELEASE);
    h->checksum = aio_header_sum(h);

    ctx->owner_pid = h->owner_pid;
    ctx->is_owner = 1;
    ctx->closed = 0;
    return AIO_OK;
}

/*
 * Another process: map and validate a segment whose header aio_peek() has
 * already accepted, and adopt the notifier fds received from the owner.
 */
int aio_ctx_attach(AioContext *ctx, int shm_fd, uint64_t actual_size,
                   int notifier_rfd, int notifier_wfd, int rescue_fd,
                   int owner_pidfd, int skeleton)
{
    AioHeader h;
    aio_info info;
    int r;
    if (actual_size < sizeof(AioHeader) || actual_size > AIO_MAX_SEGMENT) {
        return actual_size < sizeof(AioHeader) ? AIO_E_TRUNCATED : AIO_E_CORRUPT;
    }
    if ((r = aio_map(ctx, shm_fd, (uint32_t)actual_size)) != AIO_OK) {
        return r;
    }
    memcpy(&h, &ctx->shm->h, sizeof(h));
    r = aio_peek(&h, sizeof(h), actual_size, &info);
    if (r == AIO_OK && (strcmp(info.strategy, AIO_STRATEGY_NAME) != 0 ||
                        strcmp(info.fingerprint, AIO_STRATEGY_FINGERPRINT) != 0)) {
        r = AIO_E_STRATEGY;
    }
    if (r == AIO_OK && skeleton >= 0 && info.skeleton != (uint32_t)skeleton) {
        r = AIO_E_SKELETON;   /* the caller asked for another skeleton */
    }
    if (r != AIO_OK) {
        munmap(ctx->shm, ctx->map_size);
        ctx->shm = NULL;
        return r;
    }
    ctx->n_bh = h.n_bh;
    ctx->n_timers = h.n_timers;
    ctx->n_procs = h.n_procs;
    aio_adopt_skeleton(ctx, &h);
    aio_set_slots(ctx, h.bh_off, h.timer_off, h.proc_off);
    if (aio_alloc_events(ctx) != AIO_OK) {
        aio_release_resources(ctx);
        return AIO_E_SYS;
    }
    ctx->notifier_rfd = notifier_rfd;
    ctx->notifier_wfd = notifier_wfd;
    ctx->notifier_kind = (int)h.notifier_kind;
    ctx->rescue_fd = rescue_fd;
    ctx->owner_pidfd = owner_pidfd;
    ctx->owner_pid = h.owner_pid;
    ctx->is_owner = 0;
    ctx->recovery = (h.flags & AIO_FLAG_RECOVERY) != 0;
    if (ctx->recovery && aio_recovery_register(ctx) != AIO_OK) {
        /* Every process slot is taken: the owner could not watch us. */
        ctx->notifier_rfd = ctx->notifier_wfd = ctx->rescue_fd = ctx->owner_pidfd = -1;
        aio_release_resources(ctx);
        return AIO_E_FULL;
    }
    ctx->closed = 0;
    return AIO_OK;
}

/* Flags the owner records in the header at aio_ctx_create (AIO_FLAG_*). */
int aio_ctx_set_flags(AioContext *ctx, uint32_t flags)
{
    if (!ctx->closed || (flags & ~(uint32_t)AIO_FLAG_RECOVERY)) {
        return AIO_E_INVAL;
    }
    ctx->create_flags = flags;
    return AIO_OK;
}

/* The fds the owner hands to attaching processes. */
int aio_ctx_fds(AioContext *ctx, int *out)
{
    out[0] = ctx->notifier_rfd;
    out[1] = ctx->notifier_wfd;
    out[2] = ctx->rescue_fd;
    return ctx->notifier_kind;
}

int aio_ctx_close(AioContext *ctx)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    if (ctx->is_owner && ctx->shm) {
        /* Tell attached processes; they check it before scheduling. */
        __atomic_store_n(&ctx->shm->h.state, AIO_STATE_CLOSED, __ATOMIC_RELEASE);
        ctx->shm->h.checksum = aio_header_sum(&ctx->shm->h);
        uint64_t one = 1;
        /* Wake anybody sleeping on the notifier so they see the state. */
        ssize_t w = write(ctx->notifier_wfd, &one, ctx->notifier_kind == 1 ? 8 : 1);
        (void)w;
    }
    while (ctx->lock_depth > 0) {
        pthread_mutex_unlock(&ctx->shm->lock.mutex);
        ctx->lock_depth--;
    }
    if (!ctx->is_owner) {
        aio_recovery_unregister(ctx);   /* a clean close is no death */
    }
    aio_release_resources(ctx);
    ctx->closed = 1;
    return AIO_OK;
}

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

