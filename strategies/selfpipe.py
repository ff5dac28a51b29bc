# selfpipe: asyncio's self-pipe (call_soon_threadsafe / _write_to_self).
#
# No notify_me, no notified: every schedule writes the wake-up fd, and the
# loop drains it on every iteration.  It is the baseline the QEMU
# optimizations are measured against: always correct (the write follows the
# flag, the drain precedes the dispatch that reads it), and a system call on
# every schedule.
#
# Skeletons: 2015 and polling.  notify writes the fd unconditionally, so a
# notify the poll phase and the last look miss (selfpipe never sets
# notified) still makes the ppoll return; the accept after every wait
# drains it.  Correct, but the drain is a read() on every aio_poll, so the
# polling skeleton saves selfpipe no system call.
from aiocore._compiler._strategy import Strategy


class SelfPipe(Strategy):
    """Always write the notifier, always drain it (asyncio's self-pipe)."""

    name = "selfpipe"
    origin = "python asyncio self-pipe (call_soon_threadsafe)"
    skeletons = ("2015", "polling")
    # The checker's verdict on the polling skeleton (aiocore check --skeleton polling),
    # worst over home and gsource; see the comment above on why.
    expected_skeletons = {"polling": {"sc": "pass", "tso": "pass", "arm": "pass",
                                     "arm-llsc": "pass", "arm-lse": "pass"}}
    foreign_pollers = False
    accept_nonblocking = True
    expected = {"sc": "pass", "tso": "pass", "arm": "pass",
                "arm-llsc": "pass", "arm-lse": "pass"}

    def schedule(s):
        # The RMW keeps 0->1 schedules countable; the wake-up is unconditional.
        s.atomic_xchg(s.bh_scheduled, 1)
        s.notify()

    def notify(s):
        s.event_set()

    def accept(s):
        s.event_test_and_clear()

    def poll_end(s):
        s.accept()

    def check(s):
        s.accept()
