# The intermediate form of a strategy: what its hooks do, in QEMU's vocabulary.
#
# A strategy is written once, as Python (see _strategy.py).  Tracing it gives
# this IR: for every hook, a tree of primitive operations on named shared
# fields, with branches on values read.  Everything downstream reads this one
# form -- the C code generator, the Promela exporter, the model checker, the
# trace-build faithfulness tests and the fingerprint in the segment header --
# so that what runs natively and what is model-checked cannot drift apart.
#
# Shape:
#   Hook body     = tuple of statements
#   Statement     = Read | Write | Rmw | Fence | MbSet | EventSet
#                 | EventTestAndClear | Call | If | Return | Loop | Break
#   Expression    = Const | Tmp | Un | Bin | BhSelf
#
# Tmps are single-assignment values produced by reads, RMWs and
# event_test_and_clear.  A Tmp's name is derived from the source line of the
# operation that produced it, so the same operation gets the same name on every
# path through a hook (which lets the code generator hoist common tails out of
# an if/else).
#
# The bottom-half side (issue 23).  A bottom half's own words are
# ``bh_scheduled`` / ``bh_flags`` (two names of one 32-bit word: QEMU's
# bh->scheduled of 2014, its bh->flags of today) and ``bh_next`` (the link of
# a lock-free list); ``bh_list`` is the context's list head.  A BH hook
# (schedule, schedule_oneshot, cancel, claim, bh_pending) runs with one bottom
# half in hand, whose identity as a list value (its id + 1, never 0) is the
# expression BhSelf.  ``Loop(limit, body)`` is a bounded retry loop (the
# description's ``for _ in s.retry(limit):``): the body runs at most `limit`
# times, and leaves early through Break (QEMU's cmpxchg loop, whose `while`
# retries until the cmpxchg saw the value it expected).
from __future__ import annotations

import hashlib
import json
from typing import Union

import attrs

#: Bumped whenever the meaning of the IR changes; part of every fingerprint.
IR_VERSION = 2

#: Shared 32-bit fields a hook may name.  ``bh_scheduled`` / ``bh_flags`` (one
#: word, two names) and ``bh_next`` belong to the bottom half of a BH hook
#: (BH_FIELDS); ``bh_list`` is the context's list head, for any hook.
CORE_FIELDS = ("notify_me", "notified", "bh_scheduled", "bh_flags", "bh_next", "bh_list")

#: The fields of the bottom half in hand: only BH hooks (BH_HOOKS) name them.
BH_FIELDS = ("bh_scheduled", "bh_flags", "bh_next")

#: The two names of the BH's word (the checker, the C and the trace build
#: see one location).
BH_WORD = ("bh_scheduled", "bh_flags")

#: How many strategy-private shared fields a strategy may declare.
MAX_STRATEGY_FIELDS = 4

#: Hooks, in the order the skeleton documents them (aio_trace.c's numbers).
HOOKS = (
    "notify",
    "accept",
    "poll_begin",
    "poll_end",
    "prepare",
    "check",
    "on_event",
    "schedule",
    "timeout_zero",
    # the bottom-half side
    "schedule_oneshot",
    "cancel",
    "claim",
    "claim_list",
    "bh_pending",
    # the three sites timeout_zero stands for
    "notifier_poll",
    "last_look",
    "compute_timeout",
)

#: Hooks that run with one bottom half in hand (bh_scheduled, bh_next, bh_self).
BH_HOOKS = ("schedule", "schedule_oneshot", "cancel", "claim", "bh_pending")

#: Hooks that return a value (the skeleton reads it; no hook may call them).
VALUE_HOOKS = ("timeout_zero", "claim", "claim_list", "bh_pending", "notifier_poll",
               "last_look", "compute_timeout")

#: Hooks a strategy may leave out, the core then doing what it did before
#: issue 23 at that site (see StrategyIR.site).  The other hooks are traced
#: from Strategy's own methods when a strategy does not write them.
OPTIONAL_HOOKS = ("timeout_zero", "claim_list", "notifier_poll", "last_look", "compute_timeout")

#: The timeout sites, each the hook of its name, else timeout_zero (the
#: shorthand for all three), else the core's default there.
TIMEOUT_SITES = ("notifier_poll", "last_look", "compute_timeout")

#: A retry loop runs at most this many times.
MAX_RETRY = 64

READ_KINDS = ("atomic_read", "atomic_load_acquire")
WRITE_KINDS = ("atomic_set", "atomic_store_release")
RMW_KINDS = (
    "atomic_xchg",
    "atomic_cmpxchg",
    "atomic_fetch_add",
    "atomic_fetch_sub",
    "atomic_fetch_or",
    "atomic_fetch_and",
    "atomic_add",
    "atomic_sub",
    "atomic_or",
    "atomic_and",
)
#: RMWs whose result is discarded (QEMU's atomic_add & co.).
VOID_RMW_KINDS = ("atomic_add", "atomic_sub", "atomic_or", "atomic_and")
#: smp_mb__before_rmw / smp_mb__after_rmw (QEMU ff00bed1): a full fence where
#: a seq_cst RMW is not one (ARM), a compiler barrier where it is (x86).
FENCE_KINDS = ("smp_mb", "smp_wmb", "smp_rmb", "smp_mb__before_rmw", "smp_mb__after_rmw")
RMW_FENCE_KINDS = ("smp_mb__before_rmw", "smp_mb__after_rmw")

BIN_OPS = ("+", "-", "|", "&", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||")
UN_OPS = ("~", "!")

#: Every primitive name of the vocabulary (DESIGN.md's table).
PRIMITIVES = (
    READ_KINDS
    + WRITE_KINDS
    + RMW_KINDS
    + FENCE_KINDS
    + ("atomic_mb_set", "event_set", "event_test_and_clear")
)

MASK32 = 0xFFFFFFFF


# --- expressions -----------------------------------------------------------


@attrs.frozen
class Const:
    value: int


@attrs.frozen
class Tmp:
    name: str


@attrs.frozen
class Un:
    op: str
    a: "Expr"


@attrs.frozen
class Bin:
    op: str
    a: "Expr"
    b: "Expr"


@attrs.frozen
class BhSelf:
    """The bottom half in hand as a list value: its id + 1 (never 0)."""


Expr = Union[Const, Tmp, Un, Bin, BhSelf]

#: The env key of BhSelf's value when an expression is evaluated.
SELF = "$bh_self"


def eval_expr(e: Expr, env: dict) -> int:
    """Evaluate an expression on 32-bit unsigned values, as the C does."""
    if isinstance(e, Const):
        return e.value & MASK32
    if isinstance(e, Tmp):
        return env[e.name]
    if isinstance(e, BhSelf):
        return env.get(SELF, 1)
    if isinstance(e, Un):
        a = eval_expr(e.a, env)
        return (~a) & MASK32 if e.op == "~" else int(a == 0)
    a = eval_expr(e.a, env)
    if e.op == "&&":
        return int(bool(a) and bool(eval_expr(e.b, env)))
    if e.op == "||":
        return int(bool(a) or bool(eval_expr(e.b, env)))
    b = eval_expr(e.b, env)
    op = e.op
    if op == "+":
        return (a + b) & MASK32
    if op == "-":
        return (a - b) & MASK32
    if op == "|":
        return a | b
    if op == "&":
        return a & b
    if op == "^":
        return a ^ b
    return int(
        {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    )


def expr_tmps(e: Expr) -> set[str]:
    if isinstance(e, Tmp):
        return {e.name}
    if isinstance(e, Un):
        return expr_tmps(e.a)
    if isinstance(e, Bin):
        return expr_tmps(e.a) | expr_tmps(e.b)
    return set()


# --- statements ------------------------------------------------------------


@attrs.frozen
class Read:
    """dst = atomic_read(field) / atomic_load_acquire(field)."""

    kind: str
    field: str
    dst: str


@attrs.frozen
class Write:
    """atomic_set(field, value) / atomic_store_release(field, value)."""

    kind: str
    field: str
    value: Expr


@attrs.frozen
class Rmw:
    """A seq_cst read-modify-write.  ``dst`` is None for the void forms.

    For atomic_cmpxchg, ``value`` is the new value and ``expected`` the value
    compared against; dst receives the old value (QEMU's convention)."""

    kind: str
    field: str
    value: Expr
    dst: str | None = None
    expected: Expr | None = None


@attrs.frozen
class Fence:
    kind: str
    pairs: str


@attrs.frozen
class MbSet:
    """atomic_mb_set(field, value): smp_wmb; atomic_set; smp_mb."""

    field: str
    value: Expr
    pairs: str


@attrs.frozen
class EventSet:
    pass


@attrs.frozen
class EventTestAndClear:
    """dst = whether the notifier was readable; it is cleared either way."""

    dst: str | None = None


@attrs.frozen
class Call:
    """Run another hook of the same strategy (e.g. poll_end calls accept)."""

    hook: str


@attrs.frozen
class If:
    cond: Expr
    then: tuple = ()
    orelse: tuple = ()


@attrs.frozen
class Return:
    """Only in the value hooks (VALUE_HOOKS): timeout_zero's non-zero forces
    a zero poll timeout, claim's non-zero runs the callback, ..."""

    value: Expr


@attrs.frozen
class Loop:
    """A bounded retry loop: ``body`` runs at most ``limit`` times; a Break
    in it leaves the loop, falling off its end runs it again."""

    limit: int
    body: tuple = ()


@attrs.frozen
class Break:
    """Leave the innermost Loop."""


Stmt = Union[Read, Write, Rmw, Fence, MbSet, EventSet, EventTestAndClear, Call, If, Return, Loop,
             Break]


@attrs.frozen
class StrategyIR:
    """Everything about a strategy that affects its behaviour."""

    name: str
    hooks: dict  # hook name -> tuple of statements (absent hook: empty tuple)
    fields: tuple  # CORE_FIELDS + the strategy's own fields
    foreign_pollers: bool = False
    accept_nonblocking: bool = False
    has_timeout_zero: bool = False
    schedule_is_default: bool = True
    #: the OPTIONAL_HOOKS the strategy defines (sorted)
    optional: tuple = ()
    #: whether the core's per-BH counts are exact for it (derived from the
    #: hooks, so not part of the fingerprint; see _strategy.bh_counted)
    bh_counted: bool = True

    def has(self, hook: str) -> bool:
        """Whether the strategy defines an optional hook (timeout_zero, ...)."""
        return hook in self.optional or (hook == "timeout_zero" and self.has_timeout_zero)

    def site(self, site: str) -> str | None:
        """The hook run at a timeout site (TIMEOUT_SITES): the site's own hook,
        else timeout_zero, else None (the core's default there: the notifier
        poll and the last look read `notified`, compute_timeout nothing)."""
        if site not in TIMEOUT_SITES:
            raise ValueError(f"unknown timeout site {site!r} (sites: {', '.join(TIMEOUT_SITES)})")
        if self.has(site):
            return site
        if self.has("timeout_zero"):
            return "timeout_zero"
        return None

    @property
    def has_list(self) -> bool:
        """aio_bh_poll takes a list (claim_list) rather than looking at every BH."""
        return self.has("claim_list")

    def to_json(self) -> dict:
        """A stable, machine-readable form (the model checker's input)."""
        return {
            "ir_version": IR_VERSION,
            "name": self.name,
            "fields": list(self.fields),
            "foreign_pollers": self.foreign_pollers,
            "accept_nonblocking": self.accept_nonblocking,
            "has_timeout_zero": self.has_timeout_zero,
            "schedule_is_default": self.schedule_is_default,
            "optional": list(self.optional),
            "hooks": {h: [stmt_to_json(s) for s in self.hooks.get(h, ())] for h in HOOKS},
        }

    @property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the behaviour (not the name or prose)."""
        body = _canonical_tmps(self.to_json())
        body.pop("name")
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _canonical_tmps(doc: dict) -> dict:
    """Rename tmps t0, t1, ... in order of first appearance, so that the
    fingerprint does not depend on the source lines tmps are named after."""
    names: dict = {}

    def ren(x):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if k in ("tmp", "dst") and isinstance(v, str):
                    out[k] = names.setdefault(v, f"t{len(names)}")
                else:
                    out[k] = ren(v)
            return out
        if isinstance(x, list):
            return [ren(v) for v in x]
        return x

    hooks = {h: ren(doc["hooks"][h]) for h in HOOKS}
    return {**doc, "hooks": hooks}


def expr_to_json(e: Expr):
    if isinstance(e, Const):
        return {"const": e.value}
    if isinstance(e, Tmp):
        return {"tmp": e.name}
    if isinstance(e, BhSelf):
        return {"bh_self": True}
    if isinstance(e, Un):
        return {"op": e.op, "a": expr_to_json(e.a)}
    return {"op": e.op, "a": expr_to_json(e.a), "b": expr_to_json(e.b)}


def stmt_to_json(s: Stmt) -> dict:
    if isinstance(s, Read):
        return {"stmt": "read", "kind": s.kind, "field": s.field, "dst": s.dst}
    if isinstance(s, Write):
        return {"stmt": "write", "kind": s.kind, "field": s.field, "value": expr_to_json(s.value)}
    if isinstance(s, Rmw):
        d = {"stmt": "rmw", "kind": s.kind, "field": s.field, "value": expr_to_json(s.value), "dst": s.dst}
        if s.expected is not None:
            d["expected"] = expr_to_json(s.expected)
        return d
    if isinstance(s, Fence):
        return {"stmt": "fence", "kind": s.kind, "pairs": s.pairs}
    if isinstance(s, MbSet):
        return {"stmt": "mb_set", "field": s.field, "value": expr_to_json(s.value), "pairs": s.pairs}
    if isinstance(s, EventSet):
        return {"stmt": "event_set"}
    if isinstance(s, EventTestAndClear):
        return {"stmt": "event_test_and_clear", "dst": s.dst}
    if isinstance(s, Call):
        return {"stmt": "call", "hook": s.hook}
    if isinstance(s, If):
        return {
            "stmt": "if",
            "cond": expr_to_json(s.cond),
            "then": [stmt_to_json(x) for x in s.then],
            "else": [stmt_to_json(x) for x in s.orelse],
        }
    if isinstance(s, Return):
        return {"stmt": "return", "value": expr_to_json(s.value)}
    if isinstance(s, Loop):
        return {"stmt": "loop", "limit": s.limit, "body": [stmt_to_json(x) for x in s.body]}
    if isinstance(s, Break):
        return {"stmt": "break"}
    raise TypeError(f"not an IR statement: {s!r}")


def walk(body):
    """Yield every statement of a body, depth first, including nested ones."""
    for s in body:
        yield s
        if isinstance(s, If):
            yield from walk(s.then)
            yield from walk(s.orelse)
        elif isinstance(s, Loop):
            yield from walk(s.body)
