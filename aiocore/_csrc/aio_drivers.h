/*
 * aio_drivers.h -- native bottom-half actions.
 *
 * A bottom half normally runs a Python callback in the process that claims
 * it.  A BH may instead carry a native action (bh->action != 0) that the
 * claiming poller runs in C, inside aio_dispatch: workload drivers use this
 * so that their hot loops never return to Python (DESIGN.md, consequence 1).
 */
#ifndef AIOCORE_DRIVERS_H
#define AIOCORE_DRIVERS_H

enum {
    AIO_ACTION_NONE = 0,      /* run the Python callback */
    AIO_ACTION_COUNT = 1,     /* nothing but the dispatch count */
};

/* Returns 1 if the action ran natively, 0 to hand the BH to Python. */
static int aio_bh_run_native(AioContext *ctx, int id, uint32_t action, uint32_t arg);

#endif
