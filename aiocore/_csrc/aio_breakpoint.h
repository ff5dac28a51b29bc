/*
 * aio_breakpoint.h -- the breakpoint build (-DAIO_PRIM_HOOKS -DAIO_BREAKPOINT):
 * stop this process before the k-th primitive of a strategy's hooks since it
 * was armed, for the crash-stop kill test (tests/test_faults_kill_at.py,
 * aiocore/_faults/_breakpoint.py), which SIGKILLs it there.
 *
 * aio_primhook.c calls aio_breakpoint_prim(op) just before every primitive
 * of the hooks (the EventNotifier's set and test_and_clear included, the
 * core's RAW_* accesses not), so "before the k-th primitive" is the model
 * checker's crash point k: the process has executed exactly k-1 of its
 * hook's primitives.  The stop is raise(SIGSTOP): the process stays as it
 * is, store buffer drained (the kernel's entry path), until its parent
 * kills it -- the checker's "drained" crash.
 *
 * The three entry points are exported (not static) so that aiocore/
 * _breakpoint.py can reach them with a second cffi FFI dlopen()ing the
 * same module: the default build's cdef stays as it is.  Process-local,
 * single-threaded use (the notifier arms, then calls its hook).
 */
#ifndef AIO_BREAKPOINT_H
#define AIO_BREAKPOINT_H

#include <signal.h>

#define AIO_BP_LOG 64

static int aio_bp_k;               /* stop before primitive k since armed; 0 = never */
static int aio_bp_n;               /* primitives since armed */
static int aio_bp_ops[AIO_BP_LOG]; /* their op codes (AIO_OP_*), the first AIO_BP_LOG */

/* Arm: count from now; stop before the k-th primitive (k <= 0: only count). */
int aio_breakpoint_arm(int k)
{
    aio_bp_n = 0;
    aio_bp_k = k > 0 ? k : 0;
    return 0;
}

/* Primitives since armed; their op codes into out[0..min(n, max)). */
int aio_breakpoint_count(int *out, int max)
{
    for (int i = 0; i < aio_bp_n && i < max && i < AIO_BP_LOG; i++) {
        out[i] = aio_bp_ops[i];
    }
    return aio_bp_n;
}

static void aio_breakpoint_prim(int op)
{
    if (aio_bp_n < AIO_BP_LOG) {
        aio_bp_ops[aio_bp_n] = op;
    }
    aio_bp_n++;
    if (aio_bp_k && aio_bp_n == aio_bp_k) {
        raise(SIGSTOP);   /* stopped for good: the parent SIGKILLs us here */
    }
}

#endif /* AIO_BREAKPOINT_H */
