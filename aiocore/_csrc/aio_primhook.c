/*
 * aio_primhook.c -- the one aio_prim_hook() of an AIO_PRIM_HOOKS build.
 *
 * aio_prims.h calls aio_prim_hook(op) just before every primitive of a
 * strategy's hooks.  Two builds use it, and a build may use both:
 *
 *   AIO_BREAKPOINT  aio_breakpoint.h: stop this process before its k-th
 *                   primitive since it was armed (the crash-stop kill test
 *                   SIGKILLs it there);
 *   AIO_CHAOS       aio_chaos.h: a seeded pause, to widen race windows.
 *
 * Each user defines a static function of the same shape; this file only
 * dispatches, so that neither knows about the other.  The breakpoint runs
 * first: a process stopped for good must not pause first.
 */
#ifdef AIO_BREAKPOINT
#if defined(__has_include)
#if __has_include("aio_breakpoint.h")
#include "aio_breakpoint.h"
#endif
#else
#include "aio_breakpoint.h"
#endif
#endif

void aio_prim_hook(int op)
{
    (void)op;
#if defined(AIO_BREAKPOINT) && defined(AIO_BREAKPOINT_H)
    aio_breakpoint_prim(op);
#endif
#if defined(AIO_CHAOS) && defined(AIO_CHAOS_H)
    aio_chaos_prim(op);
#endif
}
