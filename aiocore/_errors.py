# The exceptions aiocore raises.  Each names the problem in its message; the
# classes let callers tell apart what they may want to handle (a segment that
# is not ours, an owner that is gone, a strategy that does not compile).


class AioError(Exception):
    """Base class of every error aiocore raises on purpose."""


class SegmentNotFound(AioError, FileNotFoundError):
    """No shared segment of that name exists."""


class BadSegment(AioError):
    """The segment exists but is not a usable aiocore context."""


class BadMagic(BadSegment):
    """The segment does not start with aiocore's magic number."""


class LayoutMismatch(BadSegment):
    """The segment was written by another layout version of aiocore."""


class TruncatedSegment(BadSegment):
    """The segment is smaller than its header says, or too small for one."""


class CorruptSegment(BadSegment):
    """A header field holds a value no aiocore context could have written."""


class StrategyMismatch(AioError):
    """The attaching process and the segment disagree on the strategy."""


class OwnerGone(AioError):
    """The process that owns the context has exited."""


class NotHome(AioError):
    """Only the owning (home) process may poll this context."""


class ContextClosed(AioError):
    """The context was closed; it cannot be used any more."""


class BadBottomHalf(AioError, ValueError):
    """A bottom-half id is out of range, deleted, or not this process's."""


class BadTimer(AioError, ValueError):
    """A timer id is out of range or deleted."""


class Full(AioError):
    """No free slot is left (bottom halves, timers, fd handlers)."""


class StrategyError(AioError):
    """A strategy description is malformed or cannot be compiled."""


class CompilerMissing(StrategyError):
    """A strategy must be compiled on first use and no C compiler was found."""


class UnknownStrategy(AioError, LookupError):
    """No installed strategy has that name."""


class SkeletonError(AioError, ValueError):
    """A skeleton that cannot be used: unknown, not declared by the strategy,
    or with poll parameters out of range."""


class SkeletonMismatch(SkeletonError):
    """Attaching with another skeleton than the one the segment was created with."""
