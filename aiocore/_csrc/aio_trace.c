/*
 * aio_trace.c -- the trace build of a strategy's hooks.
 *
 * Compiled with AIO_TRACE, every primitive of aio_prims.h and the notifier
 * calls land in aio_trace_op(), which appends (op, field, written, expected)
 * to a log and returns the next scripted value for anything that reads.
 * Memory is never touched.  The faithfulness tests run each hook of the
 * compiled C this way and compare the log with what the Python description
 * does given the same script (aiocore/_compiler/_trace.py).
 */
#include <string.h>
#include "aio_trace.h"
#include "aio_notifier.h"

/* The strategy's hooks (strategy_notify ...) precede this file in the
 * translation unit (see aiocore/_compiler/_build.py, source_for). */

static AioShared aio_trace_shm;
static AioBHSlot aio_trace_bh;
static const uint32_t *aio_trace_script;
static int aio_trace_nscript, aio_trace_iscript;
static aio_trace_rec *aio_trace_log;
static int aio_trace_nlog, aio_trace_maxlog, aio_trace_overflow;

static int aio_trace_field(const volatile uint32_t *p)
{
    if (!p) return -1;
    if (p == &aio_trace_shm.notify_me) return 0;
    if (p == &aio_trace_shm.notified) return 1;
    if (p == &aio_trace_bh.scheduled) return 2;   /* alias bh->flags */
    if (p == &aio_trace_bh.next) return 8;
    if (p == &aio_trace_shm.bh_list) return 9;
    for (int i = 0; i < AIO_NSTRATEGY_FIELDS; i++) {
        if (p == &aio_trace_shm.strategy_field[i].v) return 3 + i;
    }
    return -2;
}

static int aio_trace_reads(int op)
{
    switch (op) {
    case AIO_OP_ATOMIC_SET: case AIO_OP_STORE_RELEASE: case AIO_OP_ADD:
    case AIO_OP_SUB: case AIO_OP_OR: case AIO_OP_AND: case AIO_OP_SMP_MB:
    case AIO_OP_SMP_WMB: case AIO_OP_SMP_RMB: case AIO_OP_EVENT_SET:
    case AIO_OP_SMP_MB_BEFORE_RMW: case AIO_OP_SMP_MB_AFTER_RMW:
        return 0;
    default:
        return 1;
    }
}

uint32_t aio_trace_op(int op, const volatile uint32_t *p, int64_t written, int64_t expected)
{
    int64_t v = -1;
    /* The void RMWs read too, but their value is not observable: script them
     * anyway so the log records the same old value Python was given. */
    int reads = aio_trace_reads(op) || op == AIO_OP_ADD || op == AIO_OP_SUB ||
                op == AIO_OP_OR || op == AIO_OP_AND;
    if (reads) {
        v = aio_trace_iscript < aio_trace_nscript ? aio_trace_script[aio_trace_iscript++] : 0;
    }
    if (aio_trace_nlog < aio_trace_maxlog) {
        aio_trace_rec *r = &aio_trace_log[aio_trace_nlog++];
        r->op = op;
        r->field = op == AIO_OP_EVENT_SET || op == AIO_OP_EVENT_TEST_AND_CLEAR ? 7 : aio_trace_field(p);
        r->written = written;
        r->read = v;
        r->expected = expected;
    } else {
        aio_trace_overflow = 1;
    }
    return (uint32_t)(v < 0 ? 0 : v);
}

/* hook: the index in aiocore._compiler._ir.HOOKS -- 0 notify, 1 accept, 2 poll_begin,
 * 3 poll_end, 4 prepare, 5 check, 6 on_event, 7 schedule, 8 timeout_zero,
 * 9 schedule_oneshot, 10 cancel, 11 claim, 12 claim_list, 13 bh_pending,
 * 14 notifier_poll, 15 last_look, 16 compute_timeout.  The BH in hand is BH
 * 0 (aio_bh_self 1).  Returns the log length, or -1 if the log overflowed,
 * or -2 for an unknown hook. */
int aio_trace_run(int hook, const uint32_t *script, int nscript,
                  aio_trace_rec *log, int maxlog, int32_t *ret)
{
    static AioContext ctx;
    memset(&aio_trace_shm, 0, sizeof(aio_trace_shm));
    memset(&aio_trace_bh, 0, sizeof(aio_trace_bh));
    memset(&ctx, 0, sizeof(ctx));
    ctx.shm = &aio_trace_shm;
    ctx.bh = &aio_trace_bh;
    ctx.n_bh = 1;
    aio_trace_script = script;
    aio_trace_nscript = nscript;
    aio_trace_iscript = 0;
    aio_trace_log = log;
    aio_trace_nlog = 0;
    aio_trace_maxlog = maxlog;
    aio_trace_overflow = 0;
    *ret = 0;
    switch (hook) {
    case 0: strategy_notify(&ctx); break;
    case 1: strategy_accept(&ctx); break;
    case 2: strategy_poll_begin(&ctx); break;
    case 3: strategy_poll_end(&ctx); break;
    case 4: strategy_prepare(&ctx); break;
    case 5: strategy_check(&ctx); break;
    case 6: strategy_on_event(&ctx); break;
    case 7: strategy_schedule(&ctx, &aio_trace_bh); break;
    case 8:
#if AIO_STRATEGY_HAS_TIMEOUT_ZERO
        *ret = strategy_timeout_zero(&ctx);
#endif
        break;
    case 9: strategy_schedule_oneshot(&ctx, &aio_trace_bh); break;
    case 10: strategy_cancel(&ctx, &aio_trace_bh); break;
    case 11: *ret = (int32_t)strategy_claim(&ctx, &aio_trace_bh); break;
    case 12:
#if AIO_STRATEGY_HAS_CLAIM_LIST
        *ret = (int32_t)strategy_claim_list(&ctx);
#endif
        break;
    case 13: *ret = (int32_t)strategy_bh_pending(&ctx, &aio_trace_bh); break;
    case 14:
#if AIO_STRATEGY_HAS_NOTIFIER_POLL
        *ret = (int32_t)strategy_notifier_poll(&ctx);
#endif
        break;
    case 15:
#if AIO_STRATEGY_HAS_LAST_LOOK
        *ret = (int32_t)strategy_last_look(&ctx);
#endif
        break;
    case 16:
#if AIO_STRATEGY_HAS_COMPUTE_TIMEOUT
        *ret = (int32_t)strategy_compute_timeout(&ctx);
#endif
        break;
    default: return -2;
    }
    return aio_trace_overflow ? -1 : aio_trace_nlog;
}

const char *aio_strategy_name(void) { return AIO_STRATEGY_NAME; }
const char *aio_strategy_fingerprint(void) { return AIO_STRATEGY_FINGERPRINT; }
