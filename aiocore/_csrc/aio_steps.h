/*
 * aio_steps.h -- the named steps of the aio_poll skeletons (aiocore/_compiler/_skeleton.py).
 *
 * aio_core.c marks where each step of a skeleton begins with AIO_STEP(id).
 * The normal build compiles it to nothing.  The trace build logs it, so that
 * tests/test_skeleton_drift.py can compare the C skeleton with the model
 * checker's (which labels the same steps): the two implementations of one
 * skeleton fail a test when they drift apart.  The chaos build (window
 * widening, aiocore stress --chaos) may pause there.
 *
 * The ids are mirrored in aiocore/_compiler/_skeleton.py STEP_IDS (checked by a test).
 */
#ifndef AIOCORE_STEPS_H
#define AIOCORE_STEPS_H

enum {
    AIO_STEP_POLL_BEGIN = 1,
    AIO_STEP_COMPUTE_TIMEOUT = 2,
    AIO_STEP_WAIT = 3,
    AIO_STEP_POLL_END = 4,
    AIO_STEP_DISPATCH = 5,
    AIO_STEP_POLL_HANDLERS = 6,
    AIO_STEP_LAST_LOOK = 7,
    AIO_STEP_ADJUST = 8,
};

#ifndef AIO_STEP
#define AIO_STEP(id) ((void)0)
#endif

#endif /* AIOCORE_STEPS_H */
