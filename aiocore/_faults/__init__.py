# Fault injection: stopping, killing and crashing protocol participants at a
# chosen primitive, to test what the context and the checker say about it.
#
# What it holds:
#
#   _breakpoint  the breakpoint build of a strategy (aio_breakpoint.h): a
#                process stops inside a hook after its K-th primitive, so a
#                test can kill it there
#   _kills       kill-at campaigns: every primitive of a hook, native result
#                beside the checker's crash verdict
#
# May import: aiocore._errors, aiocore._compiler, aiocore._context,
# aiocore._checker.
