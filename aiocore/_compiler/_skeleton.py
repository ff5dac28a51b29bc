# The two aio_poll skeletons, as named steps: the contract between the C core
# (aiocore/_csrc/aio_core.c) and the model checker (aiocore/_checker/_program.py).
#
# A strategy fills hooks; the skeleton decides where the hooks run.  The C
# and the checker each implement the skeleton (one in C, one as instructions
# for the explorer), so that they cannot drift apart silently both mark the
# same named steps, in the same order:
#
#   * the C, with AIO_STEP(AIO_STEP_<NAME>) (aio_steps.h): nothing in the
#     normal build, a log entry in the trace build;
#   * the checker, with a label "step:<name>" on the instruction that begins
#     the step (Proc.steps: pc -> name).
#
# tests/test_skeleton_drift.py runs one blocking aio_poll of each skeleton in
# the trace build along a chosen path and compares the steps logged by the C
# with the steps the checker's home process passes on the same path.
#
# 2015 (QEMU 2.4-2.8, util/aio-posix.c before polling mode)
# ---------------------------------------------------------
#   poll_begin        if blocking: the poll_begin hook (e.g. notify_me += 2; smp_mb)
#   compute_timeout   timeout_zero hook, then every BH flag (relaxed): 0 if one is
#                     set, else the nearest timer, else infinite
#   wait              ppoll(notifier, fds, timeout)
#   poll_end          if blocking: the poll_end hook (which calls accept); else
#                     accept if the strategy declares accept_nonblocking
#   dispatch          claim every pending BH (xchg), on_event if the notifier was
#                     readable, fd handlers, timers
#
# polling (QEMU today: util/aio-posix.c aio_poll, try_poll_mode,
# run_poll_handlers, adjust_polling_time; util/async.c aio_notify_accept,
# aio_context_notifier_poll)
# -------------------------------------------------------------------------
#   compute_timeout   blocking ? aio_compute_timeout : 0 -- timeout_zero hook, then
#                     the BH flags (relaxed), timers.  QEMU computes it *before*
#                     notify_me is raised.
#   poll_handlers     try_poll_mode: if timeout != 0 and poll_ns > 0, busy-poll for
#                     up to min(poll_ns, timeout): each round runs the poll
#                     handlers -- the context's own notifier poll (the strategy's
#                     timeout_zero hook if it has one, else atomic_read(notified):
#                     aio_context_notifier_poll), the BH flags (relaxed), the
#                     owner's fd poll_cb's -- and a success sets timeout = 0.
#                     The checker explores 0..POLL_ROUNDS rounds (poll_ns may have
#                     shrunk to 0, and the owner may stop polling at any time).
#   poll_begin        use_notify_me = timeout != 0; if so: the poll_begin hook
#                     (notify_me += 2; smp_mb: pairs with smp_mb in aio_notify)
#   last_look         if use_notify_me: the notifier poll once more (timeout_zero
#                     hook, else atomic_read(notified)): non-zero -> timeout = 0
#                     ("Don't block if aio_notify() was called")
#   wait              if timeout != 0 or need_wait (an fd handler without poll_cb):
#                     ppoll(notifier, fds, timeout).  Otherwise no system call.
#   poll_end          if use_notify_me: the poll_end hook (notify_me -= 2, release;
#                     it calls accept); else the accept hook: aio_notify_accept
#                     runs after every wait
#   adjust            adjust_polling_time(block_ns): grow by poll_grow (first 4 us)
#                     up to poll_max_ns, shrink by poll_shrink (or to 0) past it
#   dispatch          as in 2015; on_event only if a ppoll ran and saw the
#                     notifier readable
#
# Which strategies are meaningful on the polling skeleton: those whose notify
# leaves a trace the poll phase and the last look can see without the event,
# i.e. that set `notified` (or what their timeout_zero reads) whenever a BH was
# scheduled -- upstream's always-notified.  A strategy sets `skeletons` to the
# ones it declares; the checker can explore any strategy on either skeleton
# (that is how one learns why a 2015-era strategy breaks on the new one).
from __future__ import annotations

SKELETONS = ("2015", "polling")
DEFAULT_SKELETON = "2015"

#: The named steps of one blocking aio_poll, in order, per skeleton.
STEPS = {
    "2015": ("poll_begin", "compute_timeout", "wait", "poll_end", "dispatch"),
    "polling": ("compute_timeout", "poll_handlers", "poll_begin", "last_look", "wait",
                "poll_end", "adjust", "dispatch"),
}

#: Step ids of aio_steps.h (AIO_STEP_<NAME>).
STEP_IDS = {"poll_begin": 1, "compute_timeout": 2, "wait": 3, "poll_end": 4, "dispatch": 5,
            "poll_handlers": 6, "last_look": 7, "adjust": 8}

#: The checker explores up to this many busy-poll rounds per aio_poll.
POLL_ROUNDS = 2

#: QEMU's defaults (iothread poll-max-ns 32 us, grow 2 from 4 us, shrink to 0).
DEFAULT_POLL_MAX_NS = 32_768
POLL_START_NS = 4_000
DEFAULT_POLL_GROW = 2
DEFAULT_POLL_SHRINK = 0
#: poll_max_ns above this is refused (a poller spinning a whole second per poll
#: is a configuration mistake, not a mode).
MAX_POLL_MAX_NS = 1_000_000_000


def check_skeleton(name: str) -> str:
    """The skeleton's name, or ValueError naming the known ones."""
    if name not in SKELETONS:
        raise ValueError(f"unknown skeleton {name!r} (skeletons: {', '.join(SKELETONS)})")
    return name


__all__ = ["SKELETONS", "DEFAULT_SKELETON", "STEPS", "STEP_IDS", "POLL_ROUNDS", "check_skeleton",
           "DEFAULT_POLL_MAX_NS", "POLL_START_NS", "DEFAULT_POLL_GROW", "DEFAULT_POLL_SHRINK",
           "MAX_POLL_MAX_NS"]
