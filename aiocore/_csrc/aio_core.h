/*
 * aio_core.h -- the shared segment's layout and the per-process context.
 *
 * The segment is what several processes share: QEMU's AioContext fields
 * (notify_me, notified, the bottom halves' scheduled flags, the timers)
 * plus a header that says whose it is and a block of counters.  Fields that
 * different processes race on each get a cache line of their own, so that a
 * notifier hammering bh->scheduled does not slow the poller's notify_me, and
 * so that what the stress tests measure is the protocol, not false sharing.
 *
 * Nothing in the segment is trusted as an index or a size: every process
 * copies the capacities it validated at attach time into its own AioContext
 * (below) and bounds-checks against those, so a corrupted or hostile segment
 * can make the protocol misbehave but cannot make C read out of bounds.
 *
 * A strategy's hooks see the segment through AioContext; see aio_core.c for
 * the hook interface.
 */
#ifndef AIOCORE_CORE_H
#define AIOCORE_CORE_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <poll.h>
#include "aio_prims.h"

#define AIO_MAGIC            0x434f4941u   /* "AIOC" in memory order */
#define AIO_LAYOUT_VERSION   3u   /* 2: skeleton and poll parameters in the header;
                                     3: the BH list (bh_list, bh->next), one-shot slots */
#define AIO_CACHELINE        64
#define AIO_HEADER_SIZE      256
#define AIO_MAX_SEGMENT      (1u << 20)    /* the segment is small: <= 1 MiB */
#define AIO_MAX_BH           8192
#define AIO_MAX_TIMERS       2048
#define AIO_NPROCS           64
#define AIO_NCOUNTERS        24
#define AIO_NSTRATEGY_FIELDS 4
#define AIO_MAX_FDS          64
#define AIO_PFD_CAP          (AIO_MAX_FDS + 2 + AIO_NPROCS)  /* + recovery's pidfds */
#define AIO_NPOLL_WORDS      16    /* readiness words for native poll handlers */
#define AIO_MAX_POLL_MAX_NS  1000000000ll   /* _skeleton.MAX_POLL_MAX_NS */

/* Skeletons (header.skeleton; aiocore/_compiler/_skeleton.py SKELETONS). */
enum { AIO_SKEL_2015 = 0, AIO_SKEL_POLLING = 1 };


/* Header flags (header.flags, fixed at creation). */
enum { AIO_FLAG_RECOVERY = 1u };   /* the owner recovers from attached processes' deaths */

/* Process-slot role of an attached process registered for recovery
 * (aio_recovery.h); the drivers' roles (aio_drivers.h) are 1..7. */
enum { AIO_ROLE_ATTACHED = 16 };

/* Segment states (header.state). */
enum { AIO_STATE_LIVE = 1, AIO_STATE_CLOSED = 2 };

/* Bottom-half slot states.  ONESHOT: allocated by aio_bh_schedule_oneshot
 * (any process), freed by the poller that ran its callback. */
enum { AIO_BH_FREE = 0, AIO_BH_ALLOCATED = 1, AIO_BH_DELETED = 2, AIO_BH_ONESHOT = 3 };

/* Where the owner is in aio_poll (for the watchdog; relaxed, diagnostic). */
enum {
    AIO_POS_IDLE = 0, AIO_POS_POLL_BEGIN, AIO_POS_COMPUTE_TIMEOUT,
    AIO_POS_WAIT_TIMED, AIO_POS_WAIT_INFINITE, AIO_POS_POLL_END,
    AIO_POS_DISPATCH, AIO_POS_PREPARE, AIO_POS_CHECK,
    AIO_POS_POLLING,        /* the polling skeleton's busy-poll phase: spinning on purpose */
    AIO_POS_RECOVERY,       /* awake after a wait that saw a death: recovering (aio_recovery.h) */
};

/* Counter indexes (mirrored in aiocore/_context/_aio.py COUNTER_NAMES). */
enum {
    AIO_C_POLLS = 0, AIO_C_BLOCKING_POLLS, AIO_C_WAKEUPS, AIO_C_EVENT_SETS,
    AIO_C_EVENT_CLEAR_CALLS, AIO_C_EVENT_CLEARS, AIO_C_BH_DISPATCHES,
    AIO_C_SPURIOUS_WAKEUPS, AIO_C_NOTIFIES, AIO_C_INFINITE_WAITS,
    AIO_C_TIMER_FIRES, AIO_C_FD_DISPATCHES, AIO_C_GSOURCE_ITERATIONS,
    AIO_C_RESCUES, AIO_C_FOREIGN_POLLS,
    AIO_C_RECOVERIES,        /* aio_recovery.h (crash helper): a dead process's traces undone */
    AIO_C_POLLS_NO_SYSCALL,  /* polling skeleton: aio_poll calls that made no ppoll (a hook may
                              * still make one: selfpipe's accept drains with read()) */
    AIO_C_POLL_SUCCESSES,    /* polling skeleton: busy-poll phases ended by a ready handler */
    AIO_C_POLL_GROWS,        /* adjust_polling_time grew poll_ns */
    AIO_C_POLL_SHRINKS,      /* adjust_polling_time shrank poll_ns */
    AIO_C_USED /* number of counters in use */
};

/* Error codes returned by the public C functions (negative). */
enum {
    AIO_OK = 0,
    AIO_E_CLOSED = -1, AIO_E_NOT_HOME = -2, AIO_E_BAD_BH = -3,
    AIO_E_FULL = -4, AIO_E_BAD_TIMER = -5, AIO_E_SYS = -6,
    AIO_E_OWNER_GONE = -7, AIO_E_BAD_MAGIC = -8, AIO_E_LAYOUT = -9,
    AIO_E_TRUNCATED = -10, AIO_E_CORRUPT = -11, AIO_E_STRATEGY = -12,
    AIO_E_BAD_FD = -13, AIO_E_LOCK = -14, AIO_E_INVAL = -15,
    AIO_E_SKELETON = -16,    /* attach: the segment runs another skeleton */
};

typedef struct AioHeader {
    uint32_t magic;
    uint32_t layout_version;
    uint32_t size;               /* bytes, fixed at creation */
    uint32_t header_size;
    uint32_t owner_pid;
    uint32_t state;              /* AIO_STATE_* */
    uint64_t owner_start;        /* owner's start time (/proc/pid/stat, ticks) */
    uint64_t created_ns;         /* CLOCK_REALTIME at creation */
    uint32_t n_bh;
    uint32_t n_timers;
    uint32_t n_procs;
    uint32_t flags;
    uint32_t bh_off;             /* offsets from the segment start */
    uint32_t timer_off;
    uint32_t proc_off;
    uint32_t notifier_kind;      /* 1 = eventfd, 2 = pipe */
    char strategy[32];           /* NUL-terminated */
    char fingerprint[24];        /* NUL-terminated */
    uint32_t skeleton;           /* AIO_SKEL_*, fixed at creation */
    uint32_t poll_grow;          /* polling skeleton: QEMU's poll-grow (0 = 2) */
    uint32_t poll_shrink;        /* polling skeleton: QEMU's poll-shrink (0 = to 0) */
    uint32_t _r0;
    int64_t poll_max_ns;         /* polling skeleton: QEMU's poll-max-ns (0 = no polling) */
    uint32_t checksum;           /* of the fields above, see aio_header_sum */
} AioHeader;

typedef struct AioBHSlot {
    /* The word schedule, claim and cancel race on, the strategy's to shape:
     * QEMU's bh->scheduled (a 0/1 flag until 2020), its bh->flags today
     * (BH_PENDING | BH_SCHEDULED | ...).  One word, two names. */
    union { uint32_t scheduled; uint32_t flags; };
    uint32_t state;              /* AIO_BH_* (owner writes; ONESHOT: any process) */
    uint32_t action;             /* native action (aio_drivers.c), 0 = none */
    uint32_t arg;
    uint64_t schedules;          /* 0->1 transitions seen by schedulers */
    uint64_t dispatches;         /* callbacks started (claims that returned non-zero) */
    uint64_t cancels;            /* schedules undone by bh_cancel/delete */
    uint32_t next;               /* the strategy's list link: id + 1 of the next BH, 0 = end */
    uint32_t _r;
    char _pad[AIO_CACHELINE - 48];
} AioBHSlot;

typedef struct AioTimerSlot {
    int64_t deadline_ns;         /* CLOCK_MONOTONIC */
    uint32_t armed;
    uint32_t state;              /* 0 free, 1 allocated */
    uint64_t fires;
    char _pad[AIO_CACHELINE - 24];
} AioTimerSlot;

typedef struct AioProcSlot {
    uint32_t pid;                /* 0 = free */
    uint32_t role;               /* 1 owner, 2 notifier, 3 foreign poller */
    uint32_t pos;                /* workload-defined position */
    uint32_t _r;
    uint64_t ops;                /* operations done (workload-defined) */
    uint64_t last_ns;
    char _pad[AIO_CACHELINE - 32];
} AioProcSlot;

typedef struct AioShared {
    union { AioHeader h; char _hpad[AIO_HEADER_SIZE]; };
    union { uint32_t notify_me; char _pad_notify_me[AIO_CACHELINE]; };  /* poller writes, notifiers read */
    union { uint32_t notified; char _pad_notified[AIO_CACHELINE]; };    /* notifiers write, poller clears */
    /* The head of the strategy's lock-free BH list (QEMU's ctx->bh_list
     * since 2020): id + 1 of the first BH, 0 = empty.  Only strategies
     * with a claim_list hook use it. */
    union { uint32_t bh_list; char _pad_bh_list[AIO_CACHELINE]; };
    struct { uint32_t v; char _p[AIO_CACHELINE - 4]; } strategy_field[AIO_NSTRATEGY_FIELDS];
    /* The owner's position, and since when (watchdog). */
    struct {
        uint32_t pos;
        uint32_t bh_hwm;               /* slots [0, bh_hwm) may be allocated */
        int64_t since_ns;
        int64_t wait_timeout_ns;       /* -1 = infinite */
        uint64_t poll_seq;
        int64_t poll_ns;               /* polling skeleton: the adaptive busy-poll time */
        uint32_t procs_gen;            /* recovery: bumped when a process slot is claimed/freed */
        uint32_t _r;
        char _p[AIO_CACHELINE - 48];
    } owner;
    /* The context lock (QEMU's RFifoLock): recursive, robust, shared. */
    union { pthread_mutex_t mutex; char _lpad[2 * AIO_CACHELINE]; } lock;
    struct { uint64_t v; char _p[AIO_CACHELINE - 8]; } counter[AIO_NCOUNTERS];
    /* Readiness words of native poll handlers (aio_poll_word_add): a
     * producer bumps one (release), the owner's poll handler compares it
     * with the value it last consumed (virtio's avail index vs
     * last_avail_idx), so the poll phase sees work without a system call. */
    struct { uint32_t v; char _p[AIO_CACHELINE - 4]; } poll_word[AIO_NPOLL_WORDS];
    /* followed, at the offsets in the header, by:
     *   AioBHSlot    bh[n_bh];
     *   AioTimerSlot timer[n_timers];
     *   AioProcSlot  proc[n_procs];  */
} AioShared;

/* One entry of what aio_poll hands back to Python for dispatch. */
typedef struct aio_event {
    int32_t kind;                /* 1 BH, 2 fd, 3 timer */
    int32_t id;                  /* bh id, fd, timer id */
    uint32_t revents;
    int32_t _r;
    int64_t deadline_ns;         /* for timers: the order they fire in */
} aio_event;

enum { AIO_EV_BH = 1, AIO_EV_FD = 2, AIO_EV_TIMER = 3,
       AIO_EV_BH_ONESHOT = 4 };  /* a one-shot BH: its slot is free again already */

/* What a public C function of the segment header says (aio_peek). */
typedef struct aio_info {
    uint32_t magic, layout_version, size, header_size, owner_pid, state;
    uint64_t owner_start, created_ns;
    uint32_t n_bh, n_timers, n_procs, notifier_kind;
    char strategy[32];
    char fingerprint[24];
    uint32_t skeleton, poll_grow, poll_shrink;
    int64_t poll_max_ns;
    uint32_t flags;              /* AIO_FLAG_* */
} aio_info;

/*
 * The per-process context.  Capacities are copied here once, validated, and
 * every index is checked against these copies, never against the segment.
 */
typedef struct AioContext {
    AioShared *shm;
    size_t map_size;
    AioBHSlot *bh;
    AioTimerSlot *timer;
    AioProcSlot *proc;
    uint32_t n_bh, n_timers, n_procs;
    int is_owner;
    int closed;
    int notifier_rfd;            /* eventfd, or the pipe's read end */
    int notifier_wfd;            /* eventfd, or the pipe's write end */
    int notifier_kind;
    int rescue_fd;               /* owner: eventfd outside the protocol */
    int owner_pidfd;             /* attached: readable when the owner exits */
    uint32_t owner_pid;
    uint32_t owner_check_ops;    /* attached: schedules/notifies since the last owner check */
    int lock_depth;              /* this process's recursion on the lock */
    int last_errno;
    int nfds;                    /* the owner's fd handlers */
    int fd[AIO_MAX_FDS];
    uint32_t fd_events[AIO_MAX_FDS];
    int fd_poll[AIO_MAX_FDS];    /* the fd's native poll handler: -1 none, else a poll word */
    uint32_t fd_poll_seen[AIO_MAX_FDS];  /* the poll word's value last consumed */
    int n_nopoll_fds;            /* fd handlers without a poll handler: QEMU's need_wait */
    int skeleton;                /* AIO_SKEL_*, copied from the header */
    int64_t poll_max_ns;         /* copied from the header */
    uint32_t poll_grow, poll_shrink;
    int64_t now_hint;            /* a fresh clock reading for aio_dispatch, or 0 */
    aio_event *events;           /* dispatch list, capacity events_cap */
    int events_cap;
    int poll_progress;           /* set by native BH actions */
    struct pollfd gs_pfd[AIO_PFD_CAP];   /* the GSource path's fds (+ recovery's pidfds) */
    int gs_npfd;
    void *driver;                /* aio_drivers.c state, if any */
    /* Recovery (aio_recovery.h).  create_flags: AIO_FLAG_* the owner writes
     * into the header at creation.  Owner: the pidfd it watches for each
     * process slot (rec_fd[i], -1 = none, of pid rec_pid[i]), the procs_gen
     * it last scanned at, which pollfd entries are pidfds (rec_first and
     * rec_map), and a death seen outside a wait (rec_died).  Attached:
     * rec_slot, the slot this process registered in (-1 = none). */
    uint32_t create_flags;
    int recovery;                /* the header's AIO_FLAG_RECOVERY, copied */
    int rec_fd[AIO_NPROCS];
    uint32_t rec_pid[AIO_NPROCS];
    uint32_t rec_gen;
    int rec_scanned;
    int rec_first, rec_n;
    int rec_map[AIO_NPROCS];
    int rec_died;
    int rec_slot;
} AioContext;

#endif /* AIOCORE_CORE_H */
