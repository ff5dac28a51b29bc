/*
 * aio_segment.c -- the segment: layout, header validation, create / attach /
 * close.  The home-process test, the clocks, the owner-liveness check and
 * the context lock follow in aio_process.c.
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

void aio_ctx_free(AioContext *ctx)
{
    if (ctx) {
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
