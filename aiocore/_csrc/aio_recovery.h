/*
 * aio_recovery.h -- what the owner does when an attached process dies
 * mid-protocol (crash-stop faults; AioContext.create(..., recovery=True)).
 *
 * A notifier killed between two primitives of its hook can leave the
 * protocol in a state no live notifier would leave it in: the notified
 * family's notifier killed between event_notifier_set and notified = 1
 * leaves the EventNotifier readable with notified == 0, so that
 * aio_notify_accept never clears it and the owner's every ppoll returns at
 * once (a busy loop until some later notify); a notifier killed between
 * its BH flag's 0->1 and its notify leaves a BH pending that nobody wakes
 * the owner for (a lost wake-up).
 *
 * Recovery, step by step, and the model's step it is (aiocore/_checker/
 * _poller.py: _recover, crash_tail; opcodes DEATH and DTAC):
 *
 *   registration     an attached process claims a process slot (role
 *                    AIO_ROLE_ATTACHED) at attach and bumps procs_gen;
 *                    it frees the slot at a clean close.  Not modelled:
 *                    the model's notifiers are attached from the start.
 *   pollfds          the owner pidfd_open()s the pid of every registered
 *                    slot and polls the pidfds in the same ppoll as the
 *                    notifier (aio_recovery_pollfds), so its wait wakes on
 *                    a death as on a notify -- the model's WAIT, which
 *                    returns when ev bit 0 (readable) or bit 1 (a death)
 *                    is set.
 *   death            the kernel makes the dead process's pidfd readable:
 *                    DEATH in crash_tail, after the dead process's store
 *                    buffer has drained (see "ordering" below).
 *   died = ...       right after the wait (aio_recovery_after_wait): every
 *                    readable pidfd whose slot still holds its pid is a
 *                    death; the slot is freed (CAS pid -> 0: handled, a
 *                    second look never counts it again) and the pidfd
 *                    closed: DTAC ("read and clear bit 1").
 *   if died          one unconditional event_notifier_test_and_clear --
 *                    the model's (ETAC, -1) -- and the counter recoveries;
 *   re-check         the skeleton then goes on to poll_end and dispatch,
 *                    which re-reads every BH flag and claims the pending
 *                    ones: the model's _dispatch after _recover.
 *
 * Where it runs: both skeletons call aio_recovery_after_wait right after
 * their ppoll, as the model's poller_2015 and polling_poller do after
 * _wait; the polling skeleton's busy-poll phase does not look at pidfds (a
 * death during it is seen by the next ppoll, whose pidfd is readable at
 * once), and an aio_poll that makes no ppoll (timeout 0) leaves a death
 * for the next one that does -- as in the model, where recovery sits
 * inside the `if timeout != 0` wait.  The GSource path calls both around
 * aio_gsource_wait (the model's gsource_poller: _wait then _recover).
 *
 * Ordering: why the re-check sees what the dead process stored.  A death
 * is observed through the pidfd only after the dead process has run its
 * exit path on its CPU: the kill is an interrupt, the CPU's store buffer
 * drains into memory (it is not dropped), and the exit path's spinlocks
 * and the pidfd's wait-queue wake-up are full barriers on that CPU before
 * the pidfd turns readable.  The owner's ppoll return (a system call, a
 * full barrier here too) orders its later reads of the BH flags and of the
 * notifier after that observation.  So every store the dead notifier
 * executed -- its BH flag's 0->1, its notified = 1, its eventfd write --
 * is visible to the re-check: the checker's "drained" crash tail, where
 * DEATH follows the dead process's DRAIN.  Stores it never executed are
 * the crash's to lose, and the re-check is what makes up for them: a BH
 * flag set is dispatched whether or not its notify ran, and a readable
 * notifier whose notified never came is cleared.
 *
 * A fork child of an attached process registers a slot of its own
 * (aio_recovery_after_fork, run by Python's at-fork hook).  Limits: a
 * child forked outside Python (no at-fork hook) is not watched; pids are not guarded against
 * reuse between a death and the owner's next scan (a pidfd_open of a
 * reused pid watches the wrong process until that one exits).
 *
 * Part of the core template: included by aio_core.c before the rooms.
 */
#ifndef AIO_RECOVERY_H
#define AIO_RECOVERY_H

#include <sys/syscall.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int aio_pidfd_open(uint32_t pid)
{
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);   /* O_CLOEXEC by default */
}

/* Attached process: register this process's pid for the owner to watch.
 * Returns AIO_OK, or AIO_E_FULL if every process slot is taken. */
static int aio_recovery_register(AioContext *ctx)
{
    uint32_t pid = (uint32_t)getpid();
    ctx->rec_slot = -1;
    for (uint32_t i = 0; i < ctx->n_procs; i++) {
        uint32_t zero = 0;
        /* acq_rel: claims the slot against other attachers and the drivers'
         * claims (aio_drv_proc_claim), which CAS the same pid word. */
        if (__atomic_compare_exchange_n(&ctx->proc[i].pid, &zero, pid, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_store_n(&ctx->proc[i].role, (uint32_t)AIO_ROLE_ATTACHED, __ATOMIC_RELAXED);
            ctx->rec_slot = (int)i;
            /* Release: the slot's pid and role before the generation the
             * owner reads with acquire in aio_recovery_scan. */
            __atomic_fetch_add(&ctx->shm->owner.procs_gen, 1, __ATOMIC_RELEASE);
            /* Wake the owner's current ppoll (outside the protocol, as the
             * watchdog's rescue) so that it rescans and watches this pid
             * from its next wait on.  A death before that scan is still
             * seen: pidfd_open of a dead pid fails (ESRCH) or returns a
             * pidfd readable at once. */
            if (ctx->rescue_fd >= 0) {
                uint64_t one = 1;
                ssize_t w = write(ctx->rescue_fd, &one, sizeof(one));
                (void)w;
            }
            return AIO_OK;
        }
    }
    return AIO_E_FULL;
}

/* A fork child of an attached process (Python's os.register_at_fork, see
 * aiocore/_context/_state.py): the slot is its parent's, so the child
 * registers one of its own -- its death is then watched as well. */
int aio_recovery_after_fork(AioContext *ctx)
{
    if (ctx->closed || ctx->is_owner || !ctx->recovery) {
        return AIO_OK;
    }
    return aio_recovery_register(ctx);
}

/* Attached process, clean close: free the slot (a later exit is no death). */
static void aio_recovery_unregister(AioContext *ctx)
{
    if (ctx->rec_slot < 0 || !ctx->proc) {
        return;
    }
    uint32_t pid = (uint32_t)getpid();
    /* Release: pairs with the owner's acquire of procs_gen and its CAS in
     * aio_recovery_after_wait: a freed slot is seen as freed, not a death. */
    if (__atomic_compare_exchange_n(&ctx->proc[ctx->rec_slot].pid, &pid, 0, 0,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&ctx->shm->owner.procs_gen, 1, __ATOMIC_RELEASE);
    }
    ctx->rec_slot = -1;
}

/* Owner: stop watching slot i. */
static void aio_recovery_unwatch(AioContext *ctx, uint32_t i)
{
    if (ctx->rec_fd[i] >= 0) {
        close(ctx->rec_fd[i]);
    }
    ctx->rec_fd[i] = -1;
    ctx->rec_pid[i] = 0;
}

/* Owner: close every pidfd (at close). */
static void aio_recovery_release(AioContext *ctx)
{
    for (uint32_t i = 0; i < AIO_NPROCS; i++) {
        if (ctx->rec_fd[i] >= 0) {
            close(ctx->rec_fd[i]);
        }
        ctx->rec_fd[i] = -1;
        ctx->rec_pid[i] = 0;
    }
    ctx->rec_n = 0;
    ctx->rec_scanned = 0;
}

/* Owner: bring the watched set up to date with the process slots. */
static void aio_recovery_scan(AioContext *ctx)
{
    /* Acquire: pairs with the release increments of register/unregister,
     * so that the slots read below are at least as new as the generation. */
    uint32_t gen = __atomic_load_n(&ctx->shm->owner.procs_gen, __ATOMIC_ACQUIRE);
    if (ctx->rec_scanned && gen == ctx->rec_gen) {
        return;
    }
    ctx->rec_gen = gen;
    ctx->rec_scanned = 1;
    for (uint32_t i = 0; i < ctx->n_procs && i < AIO_NPROCS; i++) {
        /* Acquire: pairs with the registering CAS (the role store after it
         * is relaxed, and covered by the release of procs_gen). */
        uint32_t pid = __atomic_load_n(&ctx->proc[i].pid, __ATOMIC_ACQUIRE);
        int ours = pid && __atomic_load_n(&ctx->proc[i].role, __ATOMIC_RELAXED) == AIO_ROLE_ATTACHED;
        if (!ours) {
            if (ctx->rec_pid[i]) {
                aio_recovery_unwatch(ctx, i);   /* closed cleanly: no death */
            }
            continue;
        }
        if (ctx->rec_pid[i] == pid && ctx->rec_fd[i] >= 0) {
            continue;
        }
        aio_recovery_unwatch(ctx, i);
        int fd = aio_pidfd_open(pid);
        if (fd < 0) {
            /* ESRCH: it died (and was reaped) before we looked -- a death
             * seen before the wait, recovered right after it.  The CAS
             * frees the slot once (acq_rel as in aio_recovery_after_wait). */
            uint32_t p = pid;
            if (errno == ESRCH &&
                __atomic_compare_exchange_n(&ctx->proc[i].pid, &p, 0, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                ctx->rec_died = 1;
                /* The coming wait must not block on a death already seen
                 * (the model's WAIT returns while bit 1 is set): make our
                 * own rescue eventfd readable, so ppoll returns at once. */
                uint64_t one = 1;
                ssize_t w = write(ctx->rescue_fd, &one, sizeof(one));
                (void)w;
            }
            continue;
        }
        ctx->rec_fd[i] = fd;
        ctx->rec_pid[i] = pid;
    }
}

/* Owner, before the wait: the pidfds join the ppoll's set (after the core's
 * entries, the only ones dispatch looks at). */
static inline void aio_recovery_pollfds(AioContext *ctx, struct pollfd *pfd, int *n)
{
    ctx->rec_n = 0;
    if (!ctx->recovery || !ctx->is_owner) {
        return;
    }
    aio_recovery_scan(ctx);
    ctx->rec_first = *n;
    for (uint32_t i = 0; i < ctx->n_procs && i < AIO_NPROCS; i++) {
        if (ctx->rec_fd[i] >= 0 && *n < AIO_PFD_CAP) {
            pfd[*n].fd = ctx->rec_fd[i];
            pfd[*n].events = POLLIN;
            pfd[*n].revents = 0;
            ctx->rec_map[ctx->rec_n++] = (int)i;
            (*n)++;
        }
    }
}

static void aio_set_pos(AioContext *ctx, uint32_t pos, int64_t timeout);   /* aio_poll_common.c */

/* Owner, right after the wait: DTAC, then one unconditional
 * event_notifier_test_and_clear if a process died (see the top). */
static inline void aio_recovery_after_wait(AioContext *ctx, struct pollfd *pfd, int n)
{
    if (!ctx->recovery || !ctx->is_owner) {
        return;
    }
    int died = ctx->rec_died;
    ctx->rec_died = 0;
    for (int j = 0; j < ctx->rec_n && ctx->rec_first + j < n; j++) {
        if (!pfd[ctx->rec_first + j].revents) {
            continue;
        }
        uint32_t i = (uint32_t)ctx->rec_map[j];
        uint32_t pid = ctx->rec_pid[i];
        /* Still registered: it died attached (a death); freed already: it
         * closed cleanly first.  The CAS frees the slot, so the death is
         * handled once.  Acq_rel: pairs with the registering CAS and with
         * a clean close's release CAS. */
        if (pid && __atomic_compare_exchange_n(&ctx->proc[i].pid, &pid, 0, 0,
                                               __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            died = 1;
        }
        aio_recovery_unwatch(ctx, i);
    }
    ctx->rec_n = 0;
    if (died) {
        /* Out of the wait before the death is counted: whoever frees the
         * dead process's slot on seeing `recoveries` move (the stress
         * victim server) must not leave the watchdog a snapshot of an owner
         * still "asleep" at its wait, with the dead notifier's BH pending,
         * the notifier just cleared below and nobody in a protocol call --
         * a lost wake-up that is really a recovery under way. */
        aio_set_pos(ctx, AIO_POS_RECOVERY, 0);
        /* Release: pairs with the read of `recoveries` (aio_counters) after
         * which the victim server frees the slot, and through that slot's
         * release with the watchdog's acquire reads of the slots, then of
         * pos: a snapshot that sees the slot freed sees the owner out of
         * its wait. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        AIO_COUNTER_ADD(ctx, AIO_C_RECOVERIES, 1);
        /* The model's (ETAC, -1): unconditional -- the notifier may be
         * readable with no notified that would make accept clear it.  A
         * system call, so a full barrier before dispatch's re-check of the
         * BH flags (the model's smp_mb around it). */
        (void)event_notifier_test_and_clear(ctx);
    }
}

#endif /* AIO_RECOVERY_H */
