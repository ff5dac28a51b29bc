# `python -m aiocore.toxenv ENV [ARGS...]`: one cell of a tox matrix, named
# by its environment.
#
#   ENV = STRATEGY-MODEL[-SKELETON]     aiocore check STRATEGY --model MODEL
#                                       --skeleton SKELETON (default 2015):
#                                       every config the strategy supports,
#                                       compared with what it declares
#   ENV = STRATEGY-native[-SKELETON]    the conformance suite (pytest --pyargs
#                                       aiocore.conformance) for that strategy
#                                       and skeleton on this machine; ARGS go
#                                       to pytest
#
# Strategy names contain dashes, so tox's factors cannot carry them: the
# name is what is left once the skeleton (a known suffix) and the model (the
# longest known suffix: "arm-llsc" before "arm") are split off.  The models
# are the checker's (aiocore._checker.MODELS), the skeletons the core's.
#
# Exit status: the check's or pytest's; 2 for a name that is not a cell
# (the message says what a cell looks like and lists the models).
from __future__ import annotations

import subprocess
import sys

NATIVE = "native"
USAGE = "usage: python -m aiocore.toxenv STRATEGY-MODEL[-SKELETON] [pytest args for native cells]"


def _models() -> tuple[str, ...]:
    from .._checker import MODELS

    return tuple(MODELS)


def _skeletons() -> tuple[str, ...]:
    from .._compiler._skeleton import SKELETONS

    return tuple(SKELETONS)


def split(envname: str, models=None, skeletons=None) -> tuple[str, str, str]:
    """(strategy, model or "native", skeleton) of a cell's name, or ValueError."""
    models = tuple(models or _models())
    skeletons = tuple(skeletons or _skeletons())
    rest, skeleton = envname, "2015"
    for sk in skeletons:
        if rest.endswith("-" + sk):
            rest, skeleton = rest[: -len(sk) - 1], sk
            break
    for kind in sorted(models + (NATIVE,), key=len, reverse=True):
        if rest.endswith("-" + kind) and len(rest) > len(kind) + 1:
            return rest[: -len(kind) - 1], kind, skeleton
    raise ValueError(
        f"{envname!r} is not a cell: STRATEGY-MODEL[-SKELETON] with MODEL one of "
        f"{', '.join(models)} or {NATIVE}, SKELETON one of {', '.join(skeletons)} "
        f"(e.g. polling-flag-tso-polling)")


def command(envname: str, args=()) -> list[str]:
    """The command a cell runs (argv of a new process)."""
    name, kind, skeleton = split(envname)
    if kind == NATIVE:
        return [sys.executable, "-m", "pytest", "--pyargs", "aiocore.conformance", "-p",
                "no:cacheprovider", "--aio-strategy", name, "--aio-skeleton", skeleton, *args]
    if args:
        raise ValueError(f"{envname}: a checker cell takes no arguments (got {' '.join(args)})")
    return [sys.executable, "-m", "aiocore._cli", "check", name, "--model", kind,
            "--skeleton", skeleton]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2 if not argv else 0
    try:
        cmd = command(argv[0], argv[1:])
    except ValueError as e:
        print(f"aiocore.toxenv: {e}", file=sys.stderr)
        return 2
    if cmd[2] == "pytest":
        try:
            import pytest  # noqa: F401
        except ImportError:
            print(f"aiocore.toxenv: {argv[0]} runs aiocore's conformance suite, which needs "
                  "pytest (deps = pytest in the cell's tox.ini section)", file=sys.stderr)
            return 2
    print("aiocore.toxenv:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    if cmd[2] == "aiocore._cli":
        from ._main import main as cli

        return cli(cmd[3:])
    return subprocess.call(cmd)
