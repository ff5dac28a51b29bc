# `python -m aiocore.toxenv ENV [ARGS...]`: the public entry of tox cells,
# for aiocore's own tox.ini and for a strategy author's (docs/plugins.md,
# examples/aiocore-strategy-example/tox.ini):
#
#   ENV = STRATEGY-MODEL[-SKELETON]    aiocore check STRATEGY --model MODEL
#                                      --skeleton SKELETON (default 2015)
#   ENV = STRATEGY-native[-SKELETON]   the conformance suite for that strategy
#                                      and skeleton on this machine
#
# A launcher at the command line's level: the work is aiocore._cli._toxenv's.
import sys

from ._cli._toxenv import command, main, split  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
