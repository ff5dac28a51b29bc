# aiocore's built-in notification strategies.
#
# Each module holds one strategy and is registered in pyproject.toml under the
# entry-point group "aiocore.strategies", exactly as a third-party plugin
# would be: nothing in aiocore imports this package directly, so discovery
# stays lazy (only the strategy asked for is imported) and the built-ins get
# no privileges a plugin could not have.
#
# The strategies retrace QEMU's history of aio_notify (2015-2020) plus the
# known-bad variants of the seeds' Promela model, so that every checker and
# stress test can be shown to catch them:
#
#   late_clear          eabc9779  clear in the notifier's fd handler
#   unconditional       21a03d17  test_and_clear right after ppoll
#   notified            05e514b1  skip the clear unless aio_notify set it
#   notified_blocking   b37548fc  ... and accept only in blocking aio_poll
#   explicit_mb         5710a3e0  relaxed notify_me + explicit smp_mb
#   always_notified     601829f8 + 44277bf9, upstream today
#   no_mb               explicit_mb without its smp_mb (known bad)
#   bug1, bug2          the Promela model's BUG1 / BUG2 (known bad)
#   selfpipe            asyncio's self-pipe
