# The shared-memory context: what a process holds when it drives one
# AioContext in a POSIX shared-memory segment.
#
# What it holds:
#
#   _segment   the segment: names, opening with the right permissions,
#              reading the header (layout, magic, owner), listing and gc
#   _fdpass    the owner's fds (notifier, rescue, pidfd) passed to attachers
#              over a unix socket
#   _state     snapshots, counters and poll state read out of the segment
#   _aio       AioContext itself: create / attach / close, bottom halves,
#              timers, fd handlers, aio_poll -- each one call into the
#              strategy's compiled module, whose C core is aiocore/_csrc
#   _janitor   the process that unlinks a dead owner's segment
#
# Design: every protocol sequence runs in C (see DESIGN.md); Python here sets
# things up, runs callbacks and reports.  The context takes a built module
# from the compiler (aiocore._compiler._load) and never compiles or discovers
# anything itself.
#
# May import: aiocore._errors, aiocore._compiler.  Never the checker, the
# benchmarks, fault injection or the command line.
