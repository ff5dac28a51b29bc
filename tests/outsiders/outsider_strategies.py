# Strategies written for the tests, as a stranger would write them: they
# import only aiocore's public Strategy base and share no code with
# strategies/.  Three are subtly wrong, two are correct designs aiocore does
# not ship.  The tests install this module as a distribution of its own
# ("outsider-strategies", tests/outsiders/install.py) and let the checker
# and `aiocore stress` judge them; nothing here tells either tool the answer
# except what a real author would declare.
from aiocore import Strategy


class EarlyKick(Strategy):
    """Kicks the poller *before* publishing the bottom half: wrong even under SC."""

    name = "early-kick"
    origin = "tests: notify before the BH flag (an SC ordering mistake in the schedule path)"
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}  # what its author believed

    def schedule(s):
        s.notify()
        s.atomic_xchg(s.bh_scheduled, 1)

    def notify(s):
        s.smp_mb(pairs="the fence after raising notify_me in poll_begin / prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="the fence at the top of notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="the fence at the top of notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


class GlibNoFence(Strategy):
    """Fenced aio_poll, but glib's prepare raises its bit with no fence:
    store buffering on the GSource path only."""

    name = "glib-nofence"
    origin = "tests: prepare without its smp_mb (a TSO mistake confined to the GSource path)"
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}  # what its author believed

    def notify(s):
        s.smp_mb(pairs="the fence after raising notify_me in poll_begin")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="the fence at the top of notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


class KickAlways(Strategy):
    """Kicks even when nobody polls, but only remembers kicks made while
    someone polls: a kick nobody will clear (a busy loop, not bug1's)."""

    name = "kick-always"
    origin = "tests: an unconditional event_set with a conditional `kicked` flag"
    shared = ("kicked",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}  # what its author believed

    def notify(s):
        s.smp_mb(pairs="the fence after raising notify_me in poll_begin / prepare")
        if s.atomic_read(s.notify_me):
            s.atomic_mb_set(s.kicked, 1, pairs="the xchg of kicked in accept")
        s.event_set()

    def accept(s):
        if s.atomic_xchg(s.kicked, 0):
            s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="the fence at the top of notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="the fence at the top of notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


class XchgGate(Strategy):
    """notify_me as a flag raised and dropped with xchg (a full barrier on
    x86), an unconditional clear of the event: correct on x86; ARM's RMW
    does not order the loads after it."""

    name = "xchg-gate"
    origin = "tests: a correct design aiocore does not ship"
    expected = {"sc": "pass", "tso": "pass", "arm": "lost-wakeup"}

    def notify(s):
        s.smp_mb(pairs="the xchg that raises notify_me in poll_begin / prepare")
        if s.atomic_read(s.notify_me):
            s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_begin(s):
        s.atomic_xchg(s.notify_me, 2)

    def poll_end(s):
        s.atomic_xchg(s.notify_me, 0)
        s.accept()

    def prepare(s):
        s.atomic_xchg(s.notify_me, 1)

    def check(s):
        s.atomic_xchg(s.notify_me, 0)
        s.accept()


class CoalescedKick(Strategy):
    """At most one kick in flight: a `kicked` flag claimed with xchg before
    the event is written, dropped with xchg only *after* the event is
    cleared (dropping it first would let a kick be cleared while its claim
    stands, and every later notifier skip the write: a lost wakeup)."""

    name = "coalesced-kick"
    origin = "tests: a correct design aiocore does not ship"
    shared = ("kicked",)
    expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

    def notify(s):
        s.smp_mb(pairs="the fence after raising notify_me in poll_begin / prepare")
        if s.atomic_read(s.notify_me):
            if s.atomic_xchg(s.kicked, 1) == 0:
                s.event_set()

    def accept(s):
        s.event_test_and_clear()
        # A full barrier (an RMW): the dispatch's reads of the BH flags come
        # after the claim is dropped.  Pairs with the xchg of kicked in notify.
        s.atomic_xchg(s.kicked, 0)

    def poll_begin(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) + 2)
        s.smp_mb(pairs="the fence at the top of notify")

    def poll_end(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) - 2)
        s.accept()

    def prepare(s):
        s.atomic_set(s.notify_me, s.atomic_read(s.notify_me) | 1)
        s.smp_mb(pairs="the fence at the top of notify")

    def check(s):
        s.atomic_store_release(s.notify_me, s.atomic_read(s.notify_me) & ~1)
        s.accept()


#: entry-point name -> class name (what the distribution registers).
ENTRY_POINTS = {
    "early-kick": "EarlyKick",
    "glib-nofence": "GlibNoFence",
    "kick-always": "KickAlways",
    "xchg-gate": "XchgGate",
    "coalesced-kick": "CoalescedKick",
}
