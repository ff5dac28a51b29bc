# Retry loops in a strategy's description: ``for _ in s.retry(n): ... break``.
#
# The tracer (_strategy.py) runs a retry loop's body once, between markers
# in its item stream: ("loop", n) before it; ("break",) when the body left
# with break (CPython closes a for loop's iterator at once when the loop is
# left, which is where _PathTracer.retry learns it); ("continue",) when the
# body ran to its end -- the loop would run it again, and on that path the
# tracer goes on after the loop, which is also where the loop ends once its
# limit is spent.  The paths are merged into a tree as usual; this module
# turns the markers into an _ir.Loop, checks that what follows the loop does
# not depend on how it ended, and that no value read inside it is used after
# it.  The hoisting helpers _defined and _uses live here too (the tracer's
# _hoist and these checks share them).
#
# May import: _ir, _errors (it sits between _codegen and _strategy).
from __future__ import annotations

from . import _ir
from .._errors import StrategyError


def _defined(body):
    names = set()
    for s in _ir.walk(body):
        d = getattr(s, "dst", None)
        if d:
            names.add(d)
    return names


def _uses(s):
    u = set()
    for attr in ("value", "expected", "cond"):
        e = getattr(s, attr, None)
        if e is not None and not isinstance(e, str):
            u |= _ir.expr_tmps(e)
    if isinstance(s, _ir.If):
        for x in _ir.walk(s.then + s.orelse):
            u |= _uses(x)
    if isinstance(s, _ir.Loop):
        for x in _ir.walk(s.body):
            u |= _uses(x)
    return u


def _is_marker(x, kind=None):
    return isinstance(x, tuple) and x and x[0] in ("loop", "break", "continue") and (
        kind is None or x[0] == kind)


def _fold_loops(body, hook):
    """Turn the loop markers of a frozen body into _ir.Loop nodes.

    Before hoisting, an If is the last item of its list (everything a path
    does after a branch is inside the branch), so a loop's body is what lies
    between its ("loop", n) marker and, on every path, a ("break",) or
    ("continue",) marker; what follows that marker is the code after the
    loop, which must be the same on every path."""
    out = []
    for j, s in enumerate(body):
        if _is_marker(s, "loop"):
            inner, cont = _split_loop(list(body[j + 1:]), hook)
            out.append(_ir.Loop(s[1], tuple(inner)))
            out.extend(_fold_loops(cont, hook))
            return out
        if _is_marker(s):
            raise StrategyError(f"hook {hook}: a retry loop ends twice")
        if isinstance(s, _ir.If):
            out.append(_ir.If(s.cond, tuple(_fold_loops(s.then, hook)), tuple(_fold_loops(s.orelse, hook))))
        else:
            out.append(s)
    return out


def _split_loop(seq, hook):
    """(the loop body, the code after the loop) of the items after a loop marker."""
    body = []
    for j, s in enumerate(seq):
        if _is_marker(s, "break"):
            body.append(_ir.Break())
            return body, seq[j + 1:]
        if _is_marker(s, "continue"):
            return body, seq[j + 1:]
        if _is_marker(s, "loop"):
            inner, rest = _split_loop(seq[j + 1:], hook)
            more, cont = _split_loop(rest, hook)
            return body + [_ir.Loop(s[1], tuple(inner))] + more, cont
        if isinstance(s, _ir.If):
            tb, tc = _split_loop(list(s.then), hook)
            eb, ec = _split_loop(list(s.orelse), hook)
            if tc != ec:
                raise StrategyError(
                    f"hook {hook}: what follows a retry loop must not depend on how the loop "
                    f"ended (no `return` inside it, no `for ... else`)")
            body.append(_ir.If(s.cond, tuple(tb), tuple(eb)))
            return body, tc
        body.append(s)
    raise StrategyError(f"hook {hook}: a retry loop never ends (write `for _ in s.retry(n):`, "
                        f"not an iterator kept in a variable)")


def _check_loops(body, hook, outer=()):
    """A value computed inside a retry loop is not used after it (in C it
    would be out of scope; which iteration's value would it be?)."""
    defined_before = set(outer)
    for s in body:
        if isinstance(s, _ir.Loop):
            inside = _defined(s.body)
            after = set()
            for t in body[body.index(s) + 1:]:
                after |= _uses(t)
            bad = inside & after
            if bad:
                raise StrategyError(f"hook {hook}: {', '.join(sorted(bad))} is read inside a retry "
                                    f"loop and used after it; keep it inside the loop")
            _check_loops(s.body, hook, defined_before)
        elif isinstance(s, _ir.If):
            _check_loops(s.then, hook, defined_before)
            _check_loops(s.orelse, hook, defined_before)
        d = getattr(s, "dst", None)
        if d:
            defined_before.add(d)
