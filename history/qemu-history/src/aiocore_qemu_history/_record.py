# The historical record of one corpus entry, kept beside its strategy.
#
# Each module of this package holds one strategy (the protocol of one QEMU
# commit, or of the state just before it) and a module-level RECORD: what the
# commit is, what it changed, the bug it fixed or introduced, where that bug
# was seen, and what history reports about the protocol, as verdicts the
# checker can be held against.  The strategy's own `expected`,
# `expected_configs` and `expected_skeletons` are what aiocore's checker gives
# it; the RECORD's `history` is what QEMU's git history, mailing list and bug
# trackers say.  Where the two differ the RECORD says why, in `disagreement`;
# the generator of docs/history.md prints both, and the tests fail if they
# differ without a sentence.
from __future__ import annotations

import re

import attrs

#: What a strategy encodes relative to its commit.
SIDES = (
    "after",   # the protocol as the commit left it
    "before",  # the protocol as the commit found it (its parent)
    "posted",  # a version posted for review and never merged
)

#: What the commit did to the bug named in `bug`.
EFFECTS = ("fixed", "introduced", "exposed", "none")

#: How the checker's notifiers use the bottom half, besides rescheduling it:
#: "oneshot" (every schedule is aio_bh_schedule_oneshot of a fresh BH) or
#: "cancel-reread" (the callback cancels its BH and reads again, as
#: thread-pool.c's completion BH does since b7a745dc).
MODES = ("", "oneshot", "cancel-reread")

#: History's verdicts are named per memory model ("tso": seen on x86;
#: "arm": seen on aarch64) and skeleton; only where the record speaks.
VERDICTS = ("pass", "lost-wakeup", "busy-loop", "lost-work")

_HASH = re.compile(r"[0-9a-f]{40}")
_DATE = re.compile(r"20(1[4-9]|2[0-5])-[01]\d-[0-3]\d")


def _check_hash(inst, attr, value):
    if not _HASH.fullmatch(value):
        raise ValueError(f"{attr.name} must be a full 40-digit lower-case hash, not {value!r}")


def _check_date(inst, attr, value):
    if not _DATE.fullmatch(value):
        raise ValueError(f"{attr.name} must be a date YYYY-MM-DD between 2014 and 2025, not {value!r}")


def _check_history(inst, attr, value):
    for sk, per in value.items():
        if sk not in ("2015", "polling") or not isinstance(per, dict):
            raise ValueError(f"history: unknown skeleton {sk!r} (2015, polling)")
        for model, verdict in per.items():
            if not isinstance(model, str) or verdict not in VERDICTS:
                raise ValueError(f"history[{sk!r}][{model!r}] = {verdict!r} is not a verdict")


@attrs.frozen
class Entry:
    """One commit of QEMU's AioContext history, as the corpus encodes it."""

    strategy: str  # the entry-point name, e.g. "qemu-2015-05e514b1"
    commit: str = attrs.field(validator=_check_hash)  # the full hash
    date: str = attrs.field(validator=_check_date)  # author date
    title: str
    author: str
    side: str = attrs.field(validator=attrs.validators.in_(SIDES))
    changed: str  # one or two sentences: what the commit changed in the protocol
    bug: str  # the bug it fixed or introduced, and how it was seen
    effect: str = attrs.field(validator=attrs.validators.in_(EFFECTS))
    arch: str  # the architecture the bug was seen on ("not stated" when the record is silent)
    #: {skeleton: {model: verdict}}: what history reports, where it does.
    #: With a `mode`, it speaks of the run in that mode.
    history: dict = attrs.field(factory=dict, validator=_check_history)
    #: The checker run the commit is about, if not the default one...
    mode: str = attrs.field(default="", validator=attrs.validators.in_(MODES))
    #: ... and the entry's verdicts in it, {skeleton: {model: verdict}}
    #: (the strategy's own `expected` are those of `aiocore check`'s default run).
    mode_expected: dict = attrs.field(factory=dict, validator=_check_history)
    #: Why the checker's verdict differs from `history` (empty: it does not).
    disagreement: str = ""
    #: Message-ids, bug trackers, the commits it pairs with.
    refs: tuple = ()
    #: How the encoding departs from QEMU where the hooks cannot say it.
    encoding: str = ""

    @property
    def short(self) -> str:
        return self.commit[:8]

    @property
    def year(self) -> int:
        return int(self.date[:4])
