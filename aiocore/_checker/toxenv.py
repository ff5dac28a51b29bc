"""``python -m aiocore._checker.toxenv ENVNAME``: what tox.ini's
``{strategy}-{sc,tso,arm}`` environments run.

The environment name is the strategy's name, a dash, and the memory model
(strategy names contain dashes themselves, so tox's factors cannot carry the
name).  Runs ``aiocore check STRATEGY --model MODEL`` -- every config the
strategy supports -- whose exit status says whether the verdict matches the
strategy's declared expectation."""
from __future__ import annotations

import sys

MODELS = ("sc", "tso", "arm")


def split(envname: str) -> tuple[str, str]:
    name, sep, model = envname.rpartition("-")
    if not sep or not name or model not in MODELS:
        raise SystemExit(f"aiocore._checker.toxenv: {envname!r} is not STRATEGY-{{{','.join(MODELS)}}}")
    return name, model


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m aiocore._checker.toxenv STRATEGY-MODEL", file=sys.stderr)
        return 2
    name, model = split(argv[0])
    from aiocore._cli._main import main as cli

    return cli(["check", name, "--model", model])


if __name__ == "__main__":
    sys.exit(main())
