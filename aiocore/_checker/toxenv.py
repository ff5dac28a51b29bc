"""``python -m aiocore._checker.toxenv ENVNAME``: the old name of
``python -m aiocore.toxenv`` (tox.ini files written before it was public)."""
from __future__ import annotations

import sys

from .._cli._toxenv import main, split  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
