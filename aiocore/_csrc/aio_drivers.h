/*
 * aio_drivers.h -- native bottom-half actions and the workload drivers'
 * shared state.
 *
 * A bottom half normally runs a Python callback in the process that claims
 * it.  A BH may instead carry a native action (bh->action != 0) that the
 * claiming poller runs in C, inside aio_dispatch: workload drivers use this
 * so that their hot loops never return to Python (DESIGN.md, consequence 1).
 *
 * The workload drivers (aio_drivers.c, driven from aiocore_workloads) share
 * a second memory area besides the segment: the "driver area", an anonymous
 * memfd the stress runner creates and hands to the processes it starts
 * (pass_fds).  It holds what the protocol does not: the stop flag, the
 * parameters, the virtio ring, the thread pool's request/completion
 * counters, the ping-pong sequence numbers and the owner's busy-loop
 * streak.  Every process maps it with aio_drv_area_map(); the pointer lives
 * in ctx->driver.  Fields that different processes race on get a cache line
 * each, as in the segment.
 *
 * Each process of a run also claims one of the segment's process slots
 * (AioProcSlot: pid, role, pos, ops, last_ns) and keeps its position there
 * (AIO_DRV_POS_*), so that the watchdog can tell "nobody is inside a
 * protocol call" from "a notifier was preempted between its xchg and its
 * event_set".  Positions are plain stores next to (never between) protocol
 * operations: on x86 a plain store does not drain the store buffer, so it
 * cannot hide a missing barrier.
 */
#ifndef AIOCORE_DRIVERS_H
#define AIOCORE_DRIVERS_H

enum {
    AIO_ACTION_NONE = 0,      /* run the Python callback */
    AIO_ACTION_COUNT = 1,     /* nothing but the dispatch count */
    AIO_ACTION_PINGPONG = 2,  /* arg = notifier index: acknowledge its schedule */
    AIO_ACTION_VIRTIO_TX = 3, /* drain the tx ring up to a burst, reschedule while work remains */
    AIO_ACTION_POOL = 4,      /* collect thread-pool completions, issue the next requests */
};

/* Returns 1 if the action ran natively, 0 to hand the BH to Python. */
static int aio_bh_run_native(AioContext *ctx, int id, uint32_t action, uint32_t arg);

#define AIO_DRV_MAGIC   0x31565244u   /* "DRV1" */
#define AIO_DRV_MAXW    32            /* notifiers / workers of one kind */
#define AIO_DRV_RING    1024          /* virtio tx ring entries (power of 2) */
#define AIO_DRV_MAXT    16            /* owner timers driven natively */
#define AIO_DRV_PRESS   48            /* store-buffer pressure lines per side (chaos) */
#define AIO_DRV_MAXFD   8             /* owner fds drained natively */

/* Roles (AioProcSlot.role). */
enum {
    AIO_DRV_ROLE_OWNER = 1, AIO_DRV_ROLE_NOTIFIER = 2, AIO_DRV_ROLE_FOREIGN = 3,
    AIO_DRV_ROLE_WORKER = 4, AIO_DRV_ROLE_GUEST = 5, AIO_DRV_ROLE_FDWRITER = 6,
    AIO_DRV_ROLE_TIMER_RACER = 7,
};

/* Positions (AioProcSlot.pos).  IN_SCHEDULE, IN_NOTIFY and IN_POLL are
 * "inside the protocol": the watchdog never judges the owner stuck while a
 * live process is there, because that process may be about to wake it. */
enum {
    AIO_DRV_POS_NONE = 0, AIO_DRV_POS_IDLE, AIO_DRV_POS_WAITING,
    AIO_DRV_POS_IN_SCHEDULE, AIO_DRV_POS_IN_NOTIFY, AIO_DRV_POS_IN_POLL,
    AIO_DRV_POS_AWAY, AIO_DRV_POS_PAUSED, AIO_DRV_POS_WORKING,
    AIO_DRV_POS_EXITED, AIO_DRV_POS_OWNER,
};

typedef struct { uint64_t v; char _p[AIO_CACHELINE - 8]; } aio_drv_line;

typedef struct AioDrvPP {           /* one ping-pong notifier */
    uint64_t sent;                  /* schedules issued (notifier writes) */
    int64_t est_ns;                 /* its estimate of ack -> owner's flag reads */
    uint64_t measured, aimed;       /* rounds of each kind */
    uint64_t early;                 /* aimed rounds the owner saw before sleeping */
    char _p1[AIO_CACHELINE - 40];
    uint64_t acked;                 /* BH actions run for it (pollers write) */
    char _p2[AIO_CACHELINE - 8];
} AioDrvPP;

typedef struct AioDrvPool {         /* one thread-pool worker */
    uint64_t req;                   /* requests issued (pollers write) */
    char _p1[AIO_CACHELINE - 8];
    uint64_t done;                  /* requests completed: the payload of its schedules (worker) */
    uint64_t sched_done;            /* `done` of its last schedule that returned (worker) */
    char _p2[AIO_CACHELINE - 16];
    uint64_t acked;                 /* completions collected: the payload seen (pollers write) */
    char _p3[AIO_CACHELINE - 8];
} AioDrvPool;

typedef struct AioDrvArea {
    /* Written by the runner before `go`, read-only afterwards. */
    uint32_t magic, size;
    uint32_t n_pp, n_pool;          /* ping-pong notifiers, pool workers */
    uint64_t seed;
    uint32_t jitter_ns;             /* max random delay before a schedule */
    uint32_t quiet_period_us;       /* every period, everybody but the owner */
    uint32_t quiet_len_us;          /*   pauses this long (0: never) */
    uint32_t tx_burst;              /* virtio tx BH: entries per run */
    uint32_t foreign_away_min_us, foreign_away_max_us, foreign_burst_max;
    uint32_t timer_min_us, timer_max_us, timer_idle_pct;
    uint32_t work_ns;               /* thread-pool request cost */
    uint32_t pool_batch;            /* thread-pool: requests per worker per batch (0 = 1) */
    uint32_t race_pct;              /* ping-pong: % of rounds aimed at poll_begin */
    int32_t bh_pp[AIO_DRV_MAXW];
    int32_t bh_tx, bh_pool;
    int32_t n_timers, n_fds;
    int32_t timer[AIO_DRV_MAXT];
    int32_t fd[AIO_DRV_MAXFD];      /* the owner's (read ends, nonblocking) */
    char _pad0[AIO_CACHELINE];

    aio_drv_line stop;              /* 1: every loop returns */
    aio_drv_line go;                /* 1: start */
    aio_drv_line ready;             /* processes attached and waiting for go */

    /* The owner's loop (single writer: the owner). */
    aio_drv_line streak;            /* consecutive polls woken by a notifier nobody
                                     * wrote, with no progress (busy loop) */
    aio_drv_line streak_seq0;       /* poll_seq when the streak began */
    aio_drv_line max_streak;
    aio_drv_line owner_iters;
    aio_drv_line timer_fires;
    aio_drv_line fd_bytes_read;

    /* Totals written by the other processes. */
    aio_drv_line fd_bytes_written;
    aio_drv_line dup;               /* BH actions run twice for one schedule */
    aio_drv_line tx_packets;        /* consumed by the tx BH */
    aio_drv_line tx_bad;            /* ring entries out of sequence */
    aio_drv_line pool_completions;
    aio_drv_line bare_notifies;

    /* virtio tx ring: head (guest writes), tail (tx BH writes). */
    aio_drv_line head;
    aio_drv_line tail;
    /* The bottom-half contract (DESIGN.md "Lost work"): the head of the
     * guest's last kick that returned, and the highest head a tx BH read. */
    aio_drv_line kicked;
    aio_drv_line seen_head;
    uint64_t ring[AIO_DRV_RING];

    AioDrvPP pp[AIO_DRV_MAXW];
    AioDrvPool pool[AIO_DRV_MAXW];

    /* Store-buffer pressure (the chaos build's "pressure" mode, aio_chaos.h):
     * the lines the owner's strategy stores queue behind, and the others'.
     * Each side keeps the other side's lines written while it waits, so
     * that a pressure store is a cache miss. */
    aio_drv_line press_owner[AIO_DRV_PRESS];
    aio_drv_line press_others[AIO_DRV_PRESS];
} AioDrvArea;

#endif
