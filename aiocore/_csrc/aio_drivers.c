/*
 * aio_drivers.c -- native bottom-half actions and workload hot loops.
 * See aio_drivers.h.
 */
static int aio_bh_run_native(AioContext *ctx, int id, uint32_t action, uint32_t arg)
{
    (void)ctx; (void)id; (void)arg;
    switch (action) {
    case AIO_ACTION_COUNT:
        return 1;
    default:
        return 0;   /* unknown action from shared memory: let Python see it */
    }
}
