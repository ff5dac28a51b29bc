# `python -m aiocore._cli ...` is the `aiocore` command.
import sys

from ._main import main

sys.exit(main())
