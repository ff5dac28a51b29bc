# The `aiocore` command.
#
# Each feature contributes its subcommands: a module listed in FEATURES
# defines register(subparsers), which adds parsers whose defaults carry a
# `func(args) -> int`.  A feature whose module fails to import is reported,
# and the others still work.
from __future__ import annotations

import argparse
import importlib
import sys

FEATURES = (
    "aiocore._cli._info",        # info, gc
    "aiocore._cli._strategies",  # strategies, show
    "aiocore._cli._check",       # check (model checker)
    "aiocore._cli._stress",      # stress (workloads + watchdog)
    "aiocore._cli._bench",       # bench
)


def build_parser():
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="aiocore",
        description="QEMU's AioContext wake-up protocol in shared memory: strategies, "
        "stress, model checking, benchmarks.",
    )
    p.add_argument("--version", action="version", version=f"aiocore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    broken = []
    for modname in FEATURES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue  # feature not present in this build
            broken.append((modname, e))
            continue
        except Exception as e:  # report, keep the other commands
            broken.append((modname, e))
            continue
        mod.register(sub)
    return p, broken


def main(argv=None) -> int:
    import os

    # Our child processes (workload drivers, helpers) must import the same
    # aiocore as this process.  PYTHONSAFEPATH keeps a source checkout in
    # the current directory off their sys.path (it would build its own
    # modules into the cache, see _inplace.py); when this process itself
    # runs a source tree, _inplace.py has put it on PYTHONPATH, which
    # PYTHONSAFEPATH leaves in place.
    os.environ.setdefault("PYTHONSAFEPATH", "1")
    p, broken = build_parser()
    args = p.parse_args(argv)
    for modname, e in broken:
        print(f"aiocore: {modname} failed to load: {type(e).__name__}: {e}", file=sys.stderr)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
