/*
 * aio_trace.h -- the trace build's recording primitive.
 *
 * With AIO_TRACE defined, aio_prims.h turns every atomic primitive, and
 * aio_notifier.h every notifier call, into aio_trace_op(): no memory is
 * touched, the call is logged and, for a read, answered from a script.
 * aio_trace.c defines it and runs a strategy's hooks under it
 * (aiocore/_compiler/_trace.py compares the log with the Python description).
 *
 * Declarations only, so that the primitives need nothing of aio_trace.c and
 * the include order stays one way: aio_trace.c -> hooks -> aio_notifier.h ->
 * aio_core.h -> aio_prims.h -> aio_trace.h.
 */
#ifndef AIOCORE_TRACE_H
#define AIOCORE_TRACE_H

#include <stdint.h>

typedef struct aio_trace_rec {
    int32_t op;
    int32_t field;          /* -1 none, 0 notify_me, 1 notified, 2 bh's word, 3+ strategy,
                             * 7 event, 8 bh->next, 9 bh_list */
    int64_t written;        /* -1 if none */
    int64_t read;           /* -1 if none */
    int64_t expected;       /* cmpxchg's expected value, else -1 */
} aio_trace_rec;

/* Log one primitive; returns the scripted value for one that reads. */
uint32_t aio_trace_op(int op, const volatile uint32_t *p, int64_t written,
                      int64_t expected);

/* Run one hook (its index in aiocore._compiler._ir.HOOKS) over a script;
 * see aio_trace.c. */
int aio_trace_run(int hook, const uint32_t *script, int nscript,
                  aio_trace_rec *log, int maxlog, int32_t *ret);

#endif /* AIOCORE_TRACE_H */
