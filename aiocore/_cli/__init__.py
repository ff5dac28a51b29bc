# The `aiocore` command line.
#
# What it holds:
#
#   _main          the parser; each feature module adds its subcommands
#   _info          info, gc
#   _strategies    strategies, show
#   _check         check (the model checker); _check_report its output
#   _stress        stress (workloads, watchdog, campaigns)
#   _bench         bench
#   _tables        the tables every subcommand prints (rich, or plain text)
#   _toxenv        what a tox cell named {strategy}-{model}[-skeleton] runs
#
# The top of aiocore: it may import every other room (and aiocore_workloads);
# nothing imports it except the tox launchers aiocore.toxenv (public) and
# aiocore._checker.toxenv (its old name).
from ._main import main  # noqa: F401  (the console script aiocore._cli:main)
