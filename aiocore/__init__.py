# aiocore: QEMU's AioContext wake-up protocol in POSIX shared memory.
#
# The public API is re-exported here; the implementation lives in private
# subpackages, one room per part (trio's layout; README "Where things are"):
# _compiler (strategy description -> built module), _context (the
# shared-memory context; its C core is _csrc), _checker, _faults, _bench,
# _cli.  Start with AioContext.create() in the process that polls and
# AioContext.attach(name) in any other.
#
# Imported from a source tree (no compiled modules beside this file), the
# compiled core is built on first use into the strategy cache: see
# _compiler/_inplace.py.
__version__ = "0.1.0"

from ._compiler import _inplace

BUILDS_IN_PLACE = _inplace.install()  # False for an installed aiocore

from ._context._aio import (  # noqa: F401
    AioContext,
    Counters,
    SegmentInfo,
    Snapshot,
    gc_segments,
    list_segments,
    segment_info,
)
from ._errors import (  # noqa: F401
    AioError,
    BadBottomHalf,
    BadMagic,
    BadSegment,
    BadTimer,
    CompilerMissing,
    ContextClosed,
    CorruptSegment,
    Full,
    LayoutMismatch,
    NotHome,
    OwnerGone,
    SegmentNotFound,
    StrategyError,
    StrategyMismatch,
    TruncatedSegment,
    UnknownStrategy,
)
from ._compiler._strategy import Strategy  # noqa: F401
