/*
 * aio_core.c -- AioContext in shared memory: bottom halves, timers, fd
 * handlers, aio_poll and the GSource path.
 *
 * This file is a template: every strategy module is this file compiled after
 * that strategy's hooks (see aio_notifier.h for the hook interface), so the
 * hooks inline into aio_poll and aio_notify exactly as QEMU's code does and
 * the fast paths cost what they would cost in QEMU.  The skeleton below never
 * changes from one strategy to another.
 *
 * The core's own accesses to shared memory use the __atomic builtins
 * directly (RAW_*), not the vocabulary of aio_prims.h: only the strategy's
 * hooks are traced in the trace build, and only they are the subject of the
 * model checker.  Every RAW_ access says why its ordering is enough.
 *
 * Callbacks are Python's: aio_poll claims bottom halves, reads fd readiness
 * and expires timers in C, and hands back a list (ctx->events) that Python
 * dispatches after the C part returns.  No Python runs between writing
 * notify_me and reading the bottom-half flags (DESIGN.md, consequence 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RAW_READ(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
#define RAW_SET(p, v)      __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define RAW_XCHG(p, v)     __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define RAW_ADD(p, v)      ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))

#ifndef AIO_STRATEGY_HAS_TIMEOUT_ZERO
#define AIO_STRATEGY_HAS_TIMEOUT_ZERO 0
#endif

#include "aio_drivers.h"

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

/*
 * Owner: initialise a freshly created (zeroed, ftruncated) segment.
 * notifier_kind 1 creates an eventfd, 2 a pipe pair.
 */
int aio_ctx_create(AioContext *ctx, int shm_fd, uint32_t n_bh, uint32_t n_timers,
                   uint64_t owner_start, int notifier_kind)
{
    uint32_t bo, to, po, size;
    int r = aio_layout(n_bh, n_timers, AIO_NPROCS, &bo, &to, &po, &size);
    if (r != AIO_OK) {
        return r;
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
    ctx->shm->owner.wait_timeout_ns = -1;
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
                   int owner_pidfd)
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
    if (r != AIO_OK) {
        munmap(ctx->shm, ctx->map_size);
        ctx->shm = NULL;
        return r;
    }
    ctx->n_bh = h.n_bh;
    ctx->n_timers = h.n_timers;
    ctx->n_procs = h.n_procs;
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
    ctx->closed = 0;
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

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */
/* ------------------------------------------------------------------ */

static AioBHSlot *aio_bh_get(AioContext *ctx, int id)
{
    if (id < 0 || (uint32_t)id >= ctx->n_bh) {
        return NULL;
    }
    AioBHSlot *bh = &ctx->bh[id];
    return RAW_READ(&bh->state) == AIO_BH_ALLOCATED ? bh : NULL;
}

int aio_bh_new(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    uint32_t id;
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }
    if (hwm < ctx->n_bh) {
        id = hwm;
    } else {
        /* Reuse a deleted slot only when no fresh one is left. */
        for (id = 0; id < ctx->n_bh; id++) {
            if (RAW_READ(&ctx->bh[id].state) != AIO_BH_ALLOCATED) {
                break;
            }
        }
        if (id == ctx->n_bh) {
            return AIO_E_FULL;
        }
    }
    AioBHSlot *bh = &ctx->bh[id];
    RAW_SET(&bh->scheduled, 0);
    RAW_SET(&bh->action, 0);
    /* Publish the slot before the high-water mark that makes pollers and
     * schedulers look at it: pairs with the acquire-free reads in
     * aio_bh_get, which only need to see ALLOCATED eventually. */
    __atomic_store_n(&bh->state, AIO_BH_ALLOCATED, __ATOMIC_RELEASE);
    if (id >= hwm) {
        __atomic_store_n(&ctx->shm->owner.bh_hwm, id + 1, __ATOMIC_RELEASE);
    }
    return (int)id;
}

/* Mark a 0->1 schedule as undone, for the lost-work accounting. */
static void aio_bh_uncount(AioBHSlot *bh)
{
    RAW_ADD(&bh->cancels, 1);
}

/* Any process.  One C call from Python: the strategy's schedule hook. */
int aio_bh_schedule(AioContext *ctx, int id)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE || aio_owner_tick(ctx)) {
        return AIO_E_OWNER_GONE;
    }
    strategy_schedule(ctx, bh);
    return AIO_OK;
}

int aio_bh_cancel(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    if (RAW_XCHG(&bh->scheduled, 0)) {
        aio_bh_uncount(bh);
    }
    return AIO_OK;
}

int aio_bh_delete(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    __atomic_store_n(&bh->state, AIO_BH_DELETED, __ATOMIC_RELEASE);
    if (RAW_XCHG(&bh->scheduled, 0)) {
        aio_bh_uncount(bh);
    }
    return AIO_OK;
}

int aio_bh_set_action(AioContext *ctx, int id, uint32_t action, uint32_t arg)
{
    CHECK_OPEN(ctx);
    AioBHSlot *bh = aio_bh_get(ctx, id);
    if (!bh) {
        return AIO_E_BAD_BH;
    }
    RAW_SET(&bh->arg, arg);
    RAW_SET(&bh->action, action);
    return AIO_OK;
}

/* aio_notify: the strategy's notify hook, for callers outside a BH. */
int aio_notify(AioContext *ctx)
{
    if (ctx->closed) {
        return AIO_E_CLOSED;
    }
    if (aio_owner_tick(ctx)) {
        return AIO_E_OWNER_GONE;
    }
    strategy_notify(ctx);
    /* Diagnostic, so a plain (unlocked) increment: a lock add here would
     * cost as much as the whole fast path (one fence plus one load).
     * Concurrent notifiers may lose counts. */
    RAW_SET(&ctx->shm->counter[AIO_C_NOTIFIES].v, RAW_READ(&ctx->shm->counter[AIO_C_NOTIFIES].v) + 1);
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

static AioTimerSlot *aio_timer_get(AioContext *ctx, int id)
{
    if (id < 0 || (uint32_t)id >= ctx->n_timers) {
        return NULL;
    }
    AioTimerSlot *t = &ctx->timer[id];
    return RAW_READ(&t->state) == 1 ? t : NULL;
}

int aio_timer_new(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    for (uint32_t i = 0; i < ctx->n_timers; i++) {
        if (RAW_READ(&ctx->timer[i].state) == 0) {
            RAW_SET(&ctx->timer[i].armed, 0);
            RAW_SET(&ctx->timer[i].state, 1);
            return (int)i;
        }
    }
    return AIO_E_FULL;
}

int aio_timer_mod_ns(AioContext *ctx, int id, int64_t deadline_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->deadline_ns, deadline_ns);
    RAW_SET(&t->armed, 1);
    return AIO_OK;
}

int aio_timer_del(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->armed, 0);
    return AIO_OK;
}

int aio_timer_free(AioContext *ctx, int id)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AioTimerSlot *t = aio_timer_get(ctx, id);
    if (!t) {
        return AIO_E_BAD_TIMER;
    }
    RAW_SET(&t->armed, 0);
    RAW_SET(&t->state, 0);
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* fd handlers (the owner's)                                           */
/* ------------------------------------------------------------------ */

int aio_set_fd_handler(AioContext *ctx, int fd, uint32_t events)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        return AIO_E_BAD_FD;
    }
    int i;
    for (i = 0; i < ctx->nfds; i++) {
        if (ctx->fd[i] == fd) {
            break;
        }
    }
    if (events == 0) {
        if (i < ctx->nfds) {
            ctx->fd[i] = ctx->fd[ctx->nfds - 1];
            ctx->fd_events[i] = ctx->fd_events[ctx->nfds - 1];
            ctx->nfds--;
        }
        return AIO_OK;
    }
    if (i == ctx->nfds) {
        if (ctx->nfds == AIO_MAX_FDS) {
            return AIO_E_FULL;
        }
        ctx->nfds++;
    }
    ctx->fd[i] = fd;
    ctx->fd_events[i] = events & (POLLIN | POLLOUT | POLLPRI);
    return AIO_OK;
}

/* ------------------------------------------------------------------ */
/* aio_poll                                                            */
/* ------------------------------------------------------------------ */

/*
 * 0 if a bottom half is pending (or the strategy says so), else the time to
 * the nearest timer, else -1 (infinite).  Reads the BH flags relaxed, as
 * QEMU's aio_compute_timeout does: ordering them after the write to
 * notify_me is the poll_begin hook's business, and that is the point.
 */
static int64_t aio_compute_timeout(AioContext *ctx)
{
#if AIO_STRATEGY_HAS_TIMEOUT_ZERO
    if (strategy_timeout_zero(ctx)) {
        return 0;
    }
#endif
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }
    for (uint32_t i = 0; i < hwm; i++) {
        if (RAW_READ(&ctx->bh[i].scheduled)) {
            return 0;
        }
    }
    int64_t deadline = INT64_MAX;
    if (aio_is_home(ctx)) {
        for (uint32_t i = 0; i < ctx->n_timers; i++) {
            AioTimerSlot *t = &ctx->timer[i];
            if (RAW_READ(&t->state) == 1 && RAW_READ(&t->armed)) {
                int64_t d = RAW_READ(&t->deadline_ns);
                if (d < deadline) {
                    deadline = d;
                }
            }
        }
    }
    if (deadline == INT64_MAX) {
        return -1;
    }
    int64_t now = aio_clock_ns();
    return deadline <= now ? 0 : deadline - now;
}

static void aio_set_pos(AioContext *ctx, uint32_t pos, int64_t timeout)
{
    if (aio_is_home(ctx)) {
        /* Relaxed, diagnostic only (read by the watchdog): a plain store,
         * which on x86 does not drain the store buffer, so it cannot hide a
         * missing barrier in the hooks around it. */
        RAW_SET(&ctx->shm->owner.wait_timeout_ns, timeout);
        RAW_SET(&ctx->shm->owner.since_ns, aio_clock_ns());
        RAW_SET(&ctx->shm->owner.pos, pos);
    }
}

/* pollfd slots: 0 notifier, 1 rescue (owner) or owner pidfd (attached),
 * then the owner's fd handlers. */
static int aio_build_pollfds(AioContext *ctx, struct pollfd *pfd)
{
    int n = 0;
    pfd[n].fd = ctx->notifier_rfd;
    pfd[n].events = POLLIN;
    pfd[n++].revents = 0;
    pfd[n].fd = ctx->is_owner ? ctx->rescue_fd : ctx->owner_pidfd;
    pfd[n].events = POLLIN;
    pfd[n++].revents = 0;
    if (aio_is_home(ctx)) {
        for (int i = 0; i < ctx->nfds; i++) {
            pfd[n].fd = ctx->fd[i];
            pfd[n].events = (short)ctx->fd_events[i];
            pfd[n++].revents = 0;
        }
    }
    return n;
}

static int aio_wait(AioContext *ctx, struct pollfd *pfd, int n, int64_t timeout)
{
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000000000ll;
        ts.tv_nsec = timeout % 1000000000ll;
        tsp = &ts;
    }
    int r = ppoll(pfd, (nfds_t)n, tsp, NULL);
    if (r < 0 && errno != EINTR) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    return r < 0 ? 0 : r;
}

static int aio_push(AioContext *ctx, int *n, int kind, int id, uint32_t revents,
                    int64_t deadline)
{
    if (*n >= ctx->events_cap) {
        return 0;
    }
    aio_event *e = &ctx->events[(*n)++];
    e->kind = kind;
    e->id = id;
    e->revents = revents;
    e->deadline_ns = deadline;
    return 1;
}

static int aio_cmp_deadline(const void *a, const void *b)
{
    const aio_event *x = a, *y = b;
    return (x->deadline_ns > y->deadline_ns) - (x->deadline_ns < y->deadline_ns);
}

/*
 * The dispatch phase shared by aio_poll and the GSource path: claim the
 * pending bottom halves (each 0->1 schedule is claimed by exactly one xchg),
 * then the fd handlers -- the notifier's own handler is the strategy's
 * on_event and does not count as progress -- then the expired timers.
 * Returns the number of events for Python; *progress as in QEMU.
 */
static int aio_dispatch(AioContext *ctx, struct pollfd *pfd, int npfd, int *progress)
{
    int n = 0;
    int prog = 0;
    int home = aio_is_home(ctx);
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }

    aio_set_pos(ctx, AIO_POS_DISPATCH, 0);
    ctx->poll_progress = 0;
    for (uint32_t i = 0; i < hwm; i++) {
        AioBHSlot *bh = &ctx->bh[i];
        /* The xchg is the claim (QEMU's aio_bh_poll); the relaxed read in
         * front only skips the locked op for idle slots. */
        if (RAW_READ(&bh->scheduled) && RAW_XCHG(&bh->scheduled, 0)) {
            if (RAW_READ(&bh->state) != AIO_BH_ALLOCATED) {
                continue;   /* garbage in a free slot: drop it */
            }
            RAW_ADD(&bh->dispatches, 1);
            AIO_COUNTER_ADD(ctx, AIO_C_BH_DISPATCHES, 1);
            prog = 1;
            uint32_t action = RAW_READ(&bh->action);
            if (action == 0 || !aio_bh_run_native(ctx, (int)i, action, RAW_READ(&bh->arg))) {
                aio_push(ctx, &n, AIO_EV_BH, (int)i, 0, 0);
            }
        }
    }

    if (npfd > 0 && (pfd[0].revents & POLLIN)) {
        strategy_on_event(ctx);
    }
    if (npfd > 1 && pfd[1].revents) {
        if (ctx->is_owner) {
            uint64_t v;
            if (read(ctx->rescue_fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
                AIO_COUNTER_ADD(ctx, AIO_C_RESCUES, 1);
            }
        } else {
            *progress = prog;
            return AIO_E_OWNER_GONE;
        }
    }
    for (int i = 2; i < npfd; i++) {
        if (pfd[i].revents) {
            aio_push(ctx, &n, AIO_EV_FD, pfd[i].fd, (uint32_t)pfd[i].revents, 0);
            AIO_COUNTER_ADD(ctx, AIO_C_FD_DISPATCHES, 1);
            prog = 1;
        }
    }

    if (home) {
        int64_t now = aio_clock_ns();
        int first_timer = n;
        for (uint32_t i = 0; i < ctx->n_timers; i++) {
            AioTimerSlot *t = &ctx->timer[i];
            if (RAW_READ(&t->state) == 1 && RAW_READ(&t->armed) &&
                RAW_READ(&t->deadline_ns) <= now) {
                RAW_SET(&t->armed, 0);
                RAW_ADD(&t->fires, 1);
                AIO_COUNTER_ADD(ctx, AIO_C_TIMER_FIRES, 1);
                aio_push(ctx, &n, AIO_EV_TIMER, (int)i, 0, RAW_READ(&t->deadline_ns));
                prog = 1;
            }
        }
        if (n - first_timer > 1) {
            qsort(&ctx->events[first_timer], (size_t)(n - first_timer),
                  sizeof(aio_event), aio_cmp_deadline);
        }
    }
    if (ctx->poll_progress) {
        prog = 1;
    }
    *progress = prog;
    return n;
}

int aio_poll(AioContext *ctx, int blocking, int *progress)
{
    struct pollfd pfd[AIO_MAX_FDS + 2];
    int npfd, r, foreign;
    int64_t timeout;

    *progress = 0;
    CHECK_OPEN(ctx);
    if ((r = aio_may_poll(ctx)) != AIO_OK) {
        return r;
    }
    foreign = !aio_is_home(ctx);
    if (foreign) {
        if (RAW_READ(&ctx->shm->h.state) != AIO_STATE_LIVE) {
            return AIO_E_OWNER_GONE;
        }
        /* 2015-era QEMU: pollers are serialized by the context lock,
         * which is dropped around the wait. */
        if ((r = aio_acquire(ctx)) != AIO_OK) {
            return r;
        }
        AIO_COUNTER_ADD(ctx, AIO_C_FOREIGN_POLLS, 1);
    }
    AIO_COUNTER_ADD(ctx, AIO_C_POLLS, 1);
    if (blocking) {
        AIO_COUNTER_ADD(ctx, AIO_C_BLOCKING_POLLS, 1);
    }
    npfd = aio_build_pollfds(ctx, pfd);
    /* Counters and positions are written before poll_begin, so that no
     * locked instruction of ours sits between the hook's write of notify_me
     * and compute_timeout's reads of the BH flags. */
    aio_set_pos(ctx, AIO_POS_POLL_BEGIN, 0);

    if (blocking) {
        strategy_poll_begin(ctx);
    }
    timeout = blocking ? aio_compute_timeout(ctx) : 0;
    aio_set_pos(ctx, timeout < 0 ? AIO_POS_WAIT_INFINITE : AIO_POS_WAIT_TIMED, timeout);

    if (foreign) {
        aio_release(ctx);
    }
    r = aio_wait(ctx, pfd, npfd, timeout);
    if (foreign) {
        int r2 = aio_acquire(ctx);
        if (r2 != AIO_OK) {
            return r2;   /* e.g. the owner died while we slept */
        }
    }
    aio_set_pos(ctx, AIO_POS_POLL_END, 0);

    if (blocking) {
        strategy_poll_end(ctx);
    } else if (AIO_STRATEGY_ACCEPT_NONBLOCKING) {
        strategy_accept(ctx);
    }
    if (r < 0) {
        if (foreign) {
            aio_release(ctx);
        }
        aio_set_pos(ctx, AIO_POS_IDLE, 0);
        return r;
    }

    r = aio_dispatch(ctx, pfd, npfd, progress);
    if (blocking && timeout < 0) {
        AIO_COUNTER_ADD(ctx, AIO_C_INFINITE_WAITS, 1);
    }
    if (blocking && (pfd[0].revents & POLLIN)) {
        AIO_COUNTER_ADD(ctx, AIO_C_WAKEUPS, 1);
        if (!*progress) {
            AIO_COUNTER_ADD(ctx, AIO_C_SPURIOUS_WAKEUPS, 1);
        }
    }
    RAW_ADD(&ctx->shm->owner.poll_seq, 1);
    aio_set_pos(ctx, AIO_POS_IDLE, 0);
    if (foreign) {
        aio_release(ctx);
    }
    return r;
}

aio_event *aio_events(AioContext *ctx)
{
    return ctx->events;
}

/* ------------------------------------------------------------------ */
/* The GSource path: prepare / (the caller's poll) / check / dispatch  */
/* ------------------------------------------------------------------ */

/* glib's prepare: returns 1 if ready without polling; *timeout_ns is -1 for
 * infinite.  Only the home process, as aio_ctx_prepare in QEMU. */
int aio_gsource_prepare(AioContext *ctx, int64_t *timeout_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    aio_set_pos(ctx, AIO_POS_PREPARE, 0);
    strategy_prepare(ctx);
    *timeout_ns = aio_compute_timeout(ctx);
    aio_set_pos(ctx, *timeout_ns < 0 ? AIO_POS_WAIT_INFINITE : AIO_POS_WAIT_TIMED, *timeout_ns);
    return *timeout_ns == 0;
}

/* The wait glib does between prepare and check, on our fds. */
int aio_gsource_wait(AioContext *ctx, int64_t timeout_ns)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    ctx->gs_npfd = aio_build_pollfds(ctx, ctx->gs_pfd);
    return aio_wait(ctx, ctx->gs_pfd, ctx->gs_npfd, timeout_ns);
}

/* glib's check: is anything ready?  Refreshes fd readiness without waiting. */
int aio_gsource_check(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    aio_set_pos(ctx, AIO_POS_CHECK, 0);
    strategy_check(ctx);
    ctx->gs_npfd = aio_build_pollfds(ctx, ctx->gs_pfd);
    int r = aio_wait(ctx, ctx->gs_pfd, ctx->gs_npfd, 0);
    if (r < 0) {
        return r;
    }
    int ready = r > 0;
    uint32_t hwm = RAW_READ(&ctx->shm->owner.bh_hwm);
    if (hwm > ctx->n_bh) {
        hwm = ctx->n_bh;
    }
    for (uint32_t i = 0; i < hwm && !ready; i++) {
        ready = RAW_READ(&ctx->bh[i].scheduled) != 0;
    }
    int64_t now = aio_clock_ns();
    for (uint32_t i = 0; i < ctx->n_timers && !ready; i++) {
        AioTimerSlot *t = &ctx->timer[i];
        ready = RAW_READ(&t->state) == 1 && RAW_READ(&t->armed) &&
                RAW_READ(&t->deadline_ns) <= now;
    }
    return ready;
}

int aio_gsource_dispatch(AioContext *ctx, int *progress)
{
    *progress = 0;
    CHECK_OPEN(ctx);
    if (!aio_is_home(ctx)) {
        return AIO_E_NOT_HOME;
    }
    AIO_COUNTER_ADD(ctx, AIO_C_GSOURCE_ITERATIONS, 1);
    int r = aio_dispatch(ctx, ctx->gs_pfd, ctx->gs_npfd, progress);
    ctx->gs_npfd = 0;
    aio_set_pos(ctx, AIO_POS_IDLE, 0);
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading state (counters, per-BH accounting, the owner's position)   */
/* ------------------------------------------------------------------ */

int aio_counters(AioContext *ctx, uint64_t *out, int n)
{
    CHECK_OPEN(ctx);
    for (int i = 0; i < n && i < AIO_NCOUNTERS; i++) {
        out[i] = RAW_READ(&ctx->shm->counter[i].v);
    }
    return AIO_OK;
}

/* Totals over allocated BHs: schedules, dispatches, cancels, pending. */
int aio_bh_totals(AioContext *ctx, uint64_t *out4)
{
    CHECK_OPEN(ctx);
    memset(out4, 0, 4 * sizeof(uint64_t));
    for (uint32_t i = 0; i < ctx->n_bh; i++) {
        AioBHSlot *bh = &ctx->bh[i];
        if (RAW_READ(&bh->state) == AIO_BH_FREE) {
            continue;
        }
        out4[0] += RAW_READ(&bh->schedules);
        out4[1] += RAW_READ(&bh->dispatches);
        out4[2] += RAW_READ(&bh->cancels);
        out4[3] += RAW_READ(&bh->scheduled) ? 1 : 0;
    }
    return AIO_OK;
}

int aio_bh_stat(AioContext *ctx, int id, uint64_t *out4)
{
    CHECK_OPEN(ctx);
    if (id < 0 || (uint32_t)id >= ctx->n_bh) {
        return AIO_E_BAD_BH;
    }
    AioBHSlot *bh = &ctx->bh[id];
    out4[0] = RAW_READ(&bh->schedules);
    out4[1] = RAW_READ(&bh->dispatches);
    out4[2] = RAW_READ(&bh->cancels);
    out4[3] = RAW_READ(&bh->scheduled);
    /* The state comes from shared memory: garbage must not pass for an
     * error code of ours (or a valid state). */
    uint32_t st = RAW_READ(&bh->state);
    return st <= AIO_BH_DELETED ? (int)st : AIO_E_CORRUPT;
}

/* A snapshot of the protocol state, for the watchdog and `aiocore info`. */
int aio_snapshot(AioContext *ctx, int64_t *out8)
{
    CHECK_OPEN(ctx);
    struct pollfd p = { .fd = ctx->notifier_rfd, .events = POLLIN };
    out8[0] = RAW_READ(&ctx->shm->notify_me);
    out8[1] = RAW_READ(&ctx->shm->notified);
    out8[2] = poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
    out8[3] = RAW_READ(&ctx->shm->owner.pos);
    out8[4] = RAW_READ(&ctx->shm->owner.since_ns);
    out8[5] = RAW_READ(&ctx->shm->owner.wait_timeout_ns);
    out8[6] = (int64_t)RAW_READ(&ctx->shm->owner.poll_seq);
    out8[7] = RAW_READ(&ctx->shm->owner.bh_hwm);
    return AIO_OK;
}

/* The watchdog's channel outside the protocol: wakes the owner's ppoll
 * without touching the notifier, notify_me or notified. */
int aio_rescue(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    uint64_t one = 1;
    if (ctx->rescue_fd < 0 || write(ctx->rescue_fd, &one, sizeof(one)) != sizeof(one)) {
        ctx->last_errno = errno;
        return AIO_E_SYS;
    }
    return AIO_OK;
}

size_t aio_counter_offset(void)
{
    return offsetof(AioShared, counter);
}

int aio_last_errno(AioContext *ctx)
{
    return ctx->last_errno;
}

/* ------------------------------------------------------------------ */
/* Primitives on named fields, for tests and tools                     */
/* ------------------------------------------------------------------ */

/* field: 0 notify_me, 1 notified, 2..5 strategy fields, 100+id a BH flag */
static uint32_t *aio_field_ptr(AioContext *ctx, int field)
{
    if (field == 0) return &ctx->shm->notify_me;
    if (field == 1) return &ctx->shm->notified;
    if (field >= 2 && field < 2 + AIO_NSTRATEGY_FIELDS) {
        return &ctx->shm->strategy_field[field - 2].v;
    }
    if (field >= 100 && (uint32_t)(field - 100) < ctx->n_bh) {
        return &ctx->bh[field - 100].scheduled;
    }
    return NULL;
}

/* One primitive of the vocabulary (op numbers: aiocore/_context.py PRIM_OPS). */
int aio_prim(AioContext *ctx, int op, int field, uint32_t a, uint32_t b, uint32_t *out)
{
    CHECK_OPEN(ctx);
    uint32_t *p = aio_field_ptr(ctx, field);
    if (!p && op < 15) {
        return AIO_E_INVAL;
    }
    uint32_t v = 0;
    switch (op) {
    case 0: v = __atomic_load_n(p, __ATOMIC_RELAXED); break;
    case 1: __atomic_store_n(p, a, __ATOMIC_RELAXED); break;
    case 2: v = __atomic_load_n(p, __ATOMIC_ACQUIRE); break;
    case 3: __atomic_store_n(p, a, __ATOMIC_RELEASE); break;
    case 4: v = __atomic_exchange_n(p, a, __ATOMIC_SEQ_CST); break;
    case 5: v = a; __atomic_compare_exchange_n(p, &v, b, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); break;
    case 6: v = __atomic_fetch_add(p, a, __ATOMIC_SEQ_CST); break;
    case 7: v = __atomic_fetch_sub(p, a, __ATOMIC_SEQ_CST); break;
    case 8: v = __atomic_fetch_or(p, a, __ATOMIC_SEQ_CST); break;
    case 9: v = __atomic_fetch_and(p, a, __ATOMIC_SEQ_CST); break;
    case 10: __atomic_fetch_add(p, a, __ATOMIC_SEQ_CST); break;
    case 11: __atomic_fetch_sub(p, a, __ATOMIC_SEQ_CST); break;
    case 12: __atomic_fetch_or(p, a, __ATOMIC_SEQ_CST); break;
    case 13: __atomic_fetch_and(p, a, __ATOMIC_SEQ_CST); break;
    case 14:
        /* atomic_mb_set, as a unit */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        __atomic_store_n(p, a, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        break;
    case 15: __atomic_thread_fence(__ATOMIC_SEQ_CST); break;
    case 16: __atomic_thread_fence(__ATOMIC_RELEASE); break;
    case 17: __atomic_thread_fence(__ATOMIC_ACQUIRE); break;
    default: return AIO_E_INVAL;
    }
    *out = v;
    return AIO_OK;
}

/* Floors for the benchmarks: an empty call, and the same shape as
 * aio_bh_schedule (a context and an int). */
void aio_empty(void) {}
int aio_empty2(AioContext *ctx, int id) { (void)ctx; return id & 0; }

/* ------------------------------------------------------------------ */
/* Handles: the one-argument fast path from Python                     */
/* ------------------------------------------------------------------ */

/*
 * cffi converts a single int argument on its fastest path (METH_O); a
 * pointer plus an int costs about as much again as the call itself.  So
 * bh_schedule and notify from Python pass one int64 "handle":
 *     slot << 48 | key << 32 | bh_id
 * where slot indexes this process's table of contexts and key is a random
 * 16-bit tag, so that a garbage bh_id that spills into the upper bits lands
 * on a mismatching key (BAD_BH), never on another context's bottom half.
 * Slots are freed only when the AioContext is freed (Python's GC), so a
 * stale handle of a closed context still finds it and gets AIO_E_CLOSED.
 */
#define AIO_HANDLES 4096
static AioContext *aio_handle_ctx[AIO_HANDLES];
static uint32_t aio_handle_key[AIO_HANDLES];

int64_t aio_handle_base(AioContext *ctx)
{
    static uint32_t seq;
    for (int i = 0; i < AIO_HANDLES; i++) {
        if (!aio_handle_ctx[i]) {
            uint32_t k = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)aio_clock_ns() ^ (++seq * 40503u);
            k = 1 + (k % 0xfffe);             /* 1..0xfffe: never 0 or 0xffff */
            aio_handle_ctx[i] = ctx;
            aio_handle_key[i] = k;
            return ((int64_t)i << 48) | ((int64_t)k << 32);
        }
    }
    return -1;
}

static void aio_handle_drop(AioContext *ctx)
{
    for (int i = 0; i < AIO_HANDLES; i++) {
        if (aio_handle_ctx[i] == ctx) {
            aio_handle_ctx[i] = NULL;
        }
    }
}

static AioContext *aio_handle_get(int64_t h)
{
    if (h < 0) {
        return NULL;
    }
    uint64_t slot = (uint64_t)h >> 48, key = ((uint64_t)h >> 32) & 0xffff;
    if (slot >= AIO_HANDLES || key != aio_handle_key[slot]) {
        return NULL;
    }
    return aio_handle_ctx[slot];
}

int aio_bh_schedule_h(int64_t h)
{
    AioContext *ctx = aio_handle_get(h);
    uint64_t id = (uint64_t)h & 0xffffffffu;
    if (!ctx || id > 0x7fffffffu) {
        return AIO_E_BAD_BH;
    }
    return aio_bh_schedule(ctx, (int)id);
}

int aio_notify_h(int64_t h)
{
    AioContext *ctx = aio_handle_get(h);
    if (!ctx || (h & 0xffffffff)) {
        return AIO_E_INVAL;
    }
    return aio_notify(ctx);
}

#include "aio_drivers.c"
#include "aio_bench.c"
