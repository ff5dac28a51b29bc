/*
 * aio_drv_watch.c -- the watchdog's view of a running context: one
 * consistent snapshot per call, and the busy-loop rescue.  Part of
 * aio_drivers.c (included at its end).
 *
 * The snapshot is taken seqlock style, without stopping anybody:
 *
 *   1. every process slot: pos, then ops              (S1)
 *   2. the owner: poll_seq, pos, since, timeout       (O1)
 *   3. the BH flags (how many scheduled, the first), notify_me, notified;
 *      the traffics' payloads (drv_unseen): due, then the BH's word, then seen
 *   4. the notifier's (and the rescue fd's) readability: poll(2), 0 timeout
 *   5. the owner again                                (O2)
 *   6. every process slot again                       (S2)
 *
 * and it is consistent if S1 == S2 and O1 == O2.  Then no protocol call
 * overlapped steps 2-5 unless it shows IN_* in S1 or S2: a call whose
 * effect (a flag set, an event_set) step 3 or 4 saw had published its
 * entry position before that effect (TSO: stores become visible in program
 * order, and a syscall's effect on the notifier is ordered by the kernel's
 * lock), so S2 shows it IN_*, or -- if it has exited since -- a changed ops
 * (drv_call_end bumps ops before it leaves IN_*).  The owner's side is the
 * same: the owner writes its position before it clears the notifier
 * (POLL_END / CHECK come before the hooks that read the eventfd, and that
 * read takes the eventfd's lock), so O2 shows it moved if it woke.
 * Every read is an acquire load: in program order on x86 (plain loads), and
 * ordered on weaker machines too.
 *
 * The lost-work state (DESIGN.md "Lost work", QEMU's bottom-half contract):
 * a payload whose schedule returned (due) that no callback read (seen),
 * while the BH's word is clear, nobody is inside a protocol call and the
 * owner is not dispatching -- then no callback can start that would see it
 * unless somebody schedules again, which (as a later unrelated notify for a
 * lost wake-up) does not undo the finding.  Due is read before the word and
 * the word before seen: a schedule sets the word before its call returns
 * and publishes due after it (TSO: in that order), a claim clears the word
 * before its callback records seen, and a claim happens only in a dispatch,
 * which moves the owner's position and poll_seq -- so a consistent snapshot
 * that shows due > seen with the word clear and the owner elsewhere has no
 * claim of that schedule in flight.
 */

static int drv_fd_readable(int fd)
{
    if (fd < 0) {
        return 0;
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

#define DRV_SNAP_MAXP 64

typedef struct {
    uint32_t pid, role, pos;
    uint64_t ops;
} drv_slot_view;

static uint32_t drv_read_slots(AioContext *ctx, drv_slot_view *s)
{
    uint32_t n = ctx->n_procs < DRV_SNAP_MAXP ? ctx->n_procs : DRV_SNAP_MAXP;
    for (uint32_t i = 0; i < n; i++) {
        AioProcSlot *p = &ctx->proc[i];
        s[i].pid = DRV_ACQ(&p->pid);
        s[i].role = DRV_ACQ(&p->role);
        s[i].pos = DRV_ACQ(&p->pos);   /* pos before ops: see drv_call_end */
        s[i].ops = DRV_ACQ(&p->ops);
    }
    return n;
}

static int drv_same_slots(const drv_slot_view *a, const drv_slot_view *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (a[i].pid != b[i].pid || a[i].pos != b[i].pos || a[i].ops != b[i].ops) {
            return 0;
        }
    }
    return 1;
}

/* The payloads due and unseen (see above): how many; the first's BH, its
 * payload due and the payload seen in out3. */
static int64_t drv_unseen(AioContext *ctx, AioDrvArea *a, int64_t *out3)
{
    int64_t n = 0;
    out3[0] = -1;
    if (!a) {
        return 0;
    }
    uint32_t nw = a->n_pool < AIO_DRV_MAXW ? a->n_pool : AIO_DRV_MAXW;
    if (a->bh_pool >= 0 && (uint32_t)a->bh_pool < ctx->n_bh) {
        for (uint32_t w = 0; w < nw; w++) {
            uint64_t due = DRV_ACQ(&a->pool[w].sched_done);
            uint32_t word = DRV_ACQ(&ctx->bh[a->bh_pool].scheduled);
            uint64_t seen = DRV_ACQ(&a->pool[w].acked);
            if (due > seen && !word) {
                if (!n++) {
                    out3[0] = a->bh_pool, out3[1] = (int64_t)due, out3[2] = (int64_t)seen;
                }
            }
        }
    }
    if (a->bh_tx >= 0 && (uint32_t)a->bh_tx < ctx->n_bh) {
        uint64_t due = DRV_ACQ(&a->kicked.v);
        uint32_t word = DRV_ACQ(&ctx->bh[a->bh_tx].scheduled);
        uint64_t seen = DRV_ACQ(&a->seen_head.v);
        if (due > seen && !word) {
            if (!n++) {
                out3[0] = a->bh_tx, out3[1] = (int64_t)due, out3[2] = (int64_t)seen;
            }
        }
    }
    return n;
}

/*
 * out[n]: see aiocore_workloads/_watchdog.py (SAMPLE_FIELDS); procs, if not
 * NULL, gets 4 int64 per live non-owner slot of the consistent snapshot
 * (slot, role, pos, ops), at most nprocs slots.  Retries up to 16 times for
 * a consistent snapshot; out[21] says whether it got one, out[22] how many
 * retries it took.  Returns the number of slots written to procs.
 */
int aio_drv_snap(AioContext *ctx, int64_t *out, int n, int64_t *procs, int nprocs)
{
    CHECK_OPEN(ctx);
    drv_slot_view s1[DRV_SNAP_MAXP], s2[DRV_SNAP_MAXP];
    int64_t v[32];
    AioDrvArea *a = DRV(ctx);
    int consistent = 0, tries = 0;
    uint32_t ns = 0;
    for (tries = 0; tries < 16 && !consistent; tries++) {
        memset(v, 0, sizeof(v));
        ns = drv_read_slots(ctx, s1);
        uint64_t seq1 = DRV_ACQ(&ctx->shm->owner.poll_seq);
        uint32_t pos1 = DRV_ACQ(&ctx->shm->owner.pos);
        v[0] = aio_clock_ns();
        v[1] = pos1;
        v[2] = DRV_ACQ(&ctx->shm->owner.since_ns);
        v[3] = DRV_ACQ(&ctx->shm->owner.wait_timeout_ns);
        v[4] = (int64_t)seq1;
        int32_t first = -1;
        v[5] = aio_drv_pending(ctx, &first, 1);
        v[6] = first;
        v[16] = DRV_ACQ(&ctx->shm->notify_me);
        v[17] = DRV_ACQ(&ctx->shm->notified);
        v[23] = drv_unseen(ctx, a, &v[24]);
        v[15] = (int64_t)DRV_ACQ(&ctx->shm->counter[AIO_C_EVENT_SETS].v);
        v[7] = drv_fd_readable(ctx->notifier_rfd);
        v[8] = ctx->is_owner ? drv_fd_readable(ctx->rescue_fd) : 0;
        uint32_t pos2 = DRV_ACQ(&ctx->shm->owner.pos);
        uint64_t seq2 = DRV_ACQ(&ctx->shm->owner.poll_seq);
        (void)drv_read_slots(ctx, s2);
        consistent = pos1 == pos2 && seq1 == seq2 && drv_same_slots(s1, s2, ns);
    }
    int np = 0;
    for (uint32_t i = 0; i < ns; i++) {
        if (!s2[i].pid || s2[i].role == AIO_DRV_ROLE_OWNER) {
            continue;
        }
        int alive = kill((pid_t)s2[i].pid, 0) == 0 || errno == EPERM;
        v[10] += (int64_t)s2[i].ops;
        if (drv_in_protocol(s2[i].pos) || drv_in_protocol(s1[i].pos)) {
            if (alive) {
                v[9]++;
            } else {
                v[14]++;
            }
        }
        v[13] += alive;
        if (procs && np < nprocs) {
            procs[4 * np + 0] = i;
            procs[4 * np + 1] = s2[i].role;
            procs[4 * np + 2] = s2[i].pos;
            procs[4 * np + 3] = (int64_t)s2[i].ops;
            np++;
        }
    }
    if (a) {
        v[11] = (int64_t)RAW_READ(&a->streak.v);
        v[12] = (int64_t)RAW_READ(&a->streak_seq0.v);
        v[18] = (int64_t)RAW_READ(&a->owner_iters.v);
    }
    v[19] = (int64_t)RAW_READ(&ctx->shm->counter[AIO_C_WAKEUPS].v);
    v[20] = (int64_t)RAW_READ(&ctx->shm->counter[AIO_C_BH_DISPATCHES].v);
    v[21] = consistent;
    v[22] = tries - 1;
    for (int i = 0; i < n && i < 32; i++) {
        out[i] = v[i];
    }
    return np;
}

/* The old one-call sample: the same snapshot without the slots. */
int aio_drv_sample(AioContext *ctx, int64_t *out, int n)
{
    int r = aio_drv_snap(ctx, out, n, NULL, 0);
    return r < 0 ? r : AIO_OK;
}

/* Drain the notifier outside the strategy's hooks (the busy-loop rescue):
 * returns how many reads found it set. */
int aio_drv_drain_notifier(AioContext *ctx)
{
    CHECK_OPEN(ctx);
    int n = 0;
    char buf[512];
    for (int i = 0; i < 64; i++) {
        ssize_t r = read(ctx->notifier_rfd, buf, ctx->notifier_kind == 1 ? 8 : sizeof(buf));
        if (r <= 0) {
            break;
        }
        n++;
    }
    return n;
}
