# Benchmarks: what `aiocore bench` measures and how.
#
# What it holds, bottom to top:
#
#   _base        the harness: pinned forked peers, shared result pages,
#                watchdog, timing helpers
#   _baseline    the reference figures of the 2015 skeleton
#   _costs       the costs of single primitives, fences and notifier calls
#   _peers       asyncio and other event loops, for comparison
#   _strategies  each strategy's notify / poll round trips
#   _polling     the polling skeleton (QEMU's aio_poll of today)
#   _all         one run of everything: the results table and its targets
#
# Every timed loop is C (aiocore/_csrc/aio_bench*.c); Python starts the
# processes and reads the results.
#
# May import: aiocore._errors, aiocore._compiler, aiocore._context.
