# The entries of an ARM window (aiocore._checker._window's module comment
# says what each is): their kinds, and the registers of the pending loads.
#
# May import: nothing of the project (a leaf of _window and _speculation).
from __future__ import annotations

ST, REL, RMWW, LD, CTRLK, PAY, SPEC = range(7)


def _pending(buf):
    """The registers of the loads a window holds pending."""
    return {e[1] for e in buf if e[2] == LD and e[1] >= 0}
