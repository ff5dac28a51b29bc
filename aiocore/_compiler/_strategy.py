# Strategies: one Python description of the notification hooks.
#
# A strategy author subclasses Strategy and writes its hooks as plain Python
# over a builder ``s`` that offers exactly DESIGN.md's primitive vocabulary
# (s.atomic_read(s.notify_me), s.smp_mb(pairs=...), s.event_set(), ...).
# The hooks are never run against real memory from Python -- DESIGN.md
# explains why Python must not sit between two protocol operations.  Instead
# they are *traced*: each hook is executed with symbolic values, and every
# ``if`` on a value read is explored both ways by re-running the hook with a
# different list of branch decisions (the way a concolic tester enumerates
# paths).  The recorded paths are merged into the tree of _ir.py, from which
# C, Promela and the model checker's input are all produced.
#
# The same hooks can also be run concretely (_concrete.run_concrete, which
# builds on this module; this one never imports it), with scripted
# values for the reads; the trace-build tests compare that log with the log
# written by the compiled C.
from __future__ import annotations

import sys


from . import _ir
from .._errors import StrategyError
from ._meta import CONFIGS, MODELS, VERDICTS, StrategyInfo, validate_meta as _validate_meta  # noqa: F401
from ._qemu_names import ALIASES, QemuSpellings
from ._retry import _check_loops, _defined, _fold_loops, _uses

#: A hook may not branch more than this many times on one path.
MAX_BRANCH_DEPTH = 16
#: Nor have more than this many paths.
MAX_PATHS = 512



class Strategy:
    """Base class of a notification strategy.

    Class attributes a strategy sets:

    ``name``               its name (unique among installed strategies)
    ``origin``             where it comes from, e.g. "qemu 05e514b1 (2015)"
    ``expected``           {"sc": verdict, "tso": ..., "arm": ...}: the worst
                           verdict over the configs the strategy supports
    ``expected_configs``   optional {config: {model: verdict}} refinements
    ``foreign_pollers``    True if a second, temporary process may poll
                           (2015-era QEMU, under the context lock)
    ``accept_nonblocking`` True if the skeleton calls ``accept`` after the
                           wait of a *non-blocking* aio_poll too (QEMU before
                           b37548fc).  A blocking poll calls whatever
                           ``poll_end`` calls.
    ``shared``             up to four extra 32-bit shared fields, by name
    ``skeletons``          the aio_poll skeletons it declares (aiocore._compiler._skeleton):
                           "2015" (a ppoll on every aio_poll) and/or "polling"
                           (QEMU's polling mode); the native core refuses the
                           others, the checker explores any
    ``expected_skeletons`` {skeleton: {model: verdict}} for skeletons other than
                           "2015" (whose verdicts are ``expected``), worst
                           over the configs of that skeleton

    Hooks (all optional except ``notify``; docs/plugins.md says when the core
    calls each), written over the builder ``s``: notify, accept, poll_begin,
    poll_end, prepare, check, on_event; the bottom-half side (a BH in hand:
    ``s.bh_scheduled`` alias ``s.bh_flags``, ``s.bh_next``, ``s.bh_self``):
    schedule, schedule_oneshot, cancel, claim, bh_pending, and claim_list
    (optional: a list to walk instead of every BH); the timeout sites
    notifier_poll, last_look, compute_timeout, with timeout_zero their
    shorthand.  Value hooks return non-zero for "yes".  Defaults (the core's
    behaviour before these hooks existed):

    schedule          ``if atomic_xchg(&bh->scheduled, 1) == 0: aio_notify()``
    schedule_oneshot  ``schedule()`` (on a fresh BH the core frees after its callback)
    cancel            ``atomic_xchg(&bh->scheduled, 0)``
    claim             ``atomic_read(&bh->scheduled) && atomic_xchg(&bh->scheduled, 0)``
    bh_pending        ``atomic_read(&bh->scheduled)``
    notifier_poll, last_look   timeout_zero, else ``atomic_read(&ctx->notified)``
    compute_timeout   timeout_zero, else nothing
    claim_list        none: aio_bh_poll looks at every BH, in id order
    """

    name: str = ""
    origin: str = ""
    expected: dict = {}
    expected_configs: dict = {}
    foreign_pollers: bool = False
    accept_nonblocking: bool = False
    shared: tuple = ()
    skeletons: tuple = ("2015",)
    expected_skeletons: dict = {}

    def schedule(s):
        if s.atomic_xchg(s.bh_scheduled, 1) == 0:
            s.notify()

    def schedule_oneshot(s):
        s.schedule()

    def cancel(s):
        s.atomic_xchg(s.bh_scheduled, 0)

    def claim(s):
        # A relaxed read first, so that an idle BH costs no locked operation;
        # the xchg is the claim (each 0->1 schedule claimed exactly once).
        if s.atomic_read(s.bh_scheduled):
            return s.atomic_xchg(s.bh_scheduled, 0)
        return 0

    def bh_pending(s):
        return s.atomic_read(s.bh_scheduled)


# --- symbolic values -------------------------------------------------------


class Field:
    """A shared 32-bit field, as named in a hook (s.notify_me)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<field {self.name}>"

    def __bool__(self):
        raise StrategyError(
            f"a field ({self.name}) was used as a value; read it first, "
            f"e.g. s.atomic_read(s.{self.name})"
        )


def _expr(v, what="value") -> _ir.Expr:
    if isinstance(v, Sym):
        return v.e
    if isinstance(v, bool):
        return _ir.Const(int(v))
    if isinstance(v, int):
        if not -(2**31) <= v <= _ir.MASK32:
            raise StrategyError(f"{what} {v} does not fit in a 32-bit field")
        return _ir.Const(v & _ir.MASK32)
    if isinstance(v, Field):
        raise StrategyError(
            f"field {v.name} used as a {what}; read it first, e.g. s.atomic_read(s.{v.name})"
        )
    raise StrategyError(f"{what} must be an int or a value read from a field, not {type(v).__name__}")


def _binop(op, swap=False):
    def f(self, other):
        a, b = self.e, _expr(other)
        if swap:
            a, b = b, a
        return Sym(self.tracer, _ir.Bin(op, a, b))

    return f


class Sym:
    """A symbolic 32-bit value: the result of a read, or arithmetic on one."""

    __slots__ = ("tracer", "e")

    def __init__(self, tracer, e):
        self.tracer = tracer
        self.e = e

    __add__ = _binop("+")
    __radd__ = _binop("+", swap=True)
    __sub__ = _binop("-")
    __rsub__ = _binop("-", swap=True)
    __or__ = _binop("|")
    __ror__ = _binop("|", swap=True)
    __and__ = _binop("&")
    __rand__ = _binop("&", swap=True)
    __xor__ = _binop("^")
    __rxor__ = _binop("^", swap=True)
    __eq__ = _binop("==")
    __ne__ = _binop("!=")
    __lt__ = _binop("<")
    __le__ = _binop("<=")
    __gt__ = _binop(">")
    __ge__ = _binop(">=")
    __hash__ = None

    def __invert__(self):
        return Sym(self.tracer, _ir.Un("~", self.e))

    def __bool__(self):
        return self.tracer.decide(self.e)

    def __int__(self):
        raise StrategyError("a value read from shared memory cannot be turned into a Python int")

    __index__ = __int__


# --- the builder a hook sees -----------------------------------------------


class _Builder(QemuSpellings):
    """The ``s`` of a hook: fields, primitives, and calls to other hooks."""

    def __init__(self, cls, tracer, hook):
        self._cls = cls
        self._t = tracer
        self._hook = hook
        for f in _ir.CORE_FIELDS + tuple(cls.shared):
            object.__setattr__(self, f, Field(f))

    @property
    def bh_self(self):
        """The bottom half in hand as a list value (its id + 1, never 0)."""
        if self._hook not in _ir.BH_HOOKS:
            raise StrategyError(f"bh_self outside a bottom-half hook ({', '.join(_ir.BH_HOOKS)}): "
                                f"there is no bottom half in {self._hook}")
        return Sym(self._t, _ir.BhSelf())

    def retry(self, limit):
        """``for _ in s.retry(n):`` -- a loop whose body runs at most n times;
        ``break`` leaves it (QEMU's cmpxchg retry loop, bounded)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _ir.MAX_RETRY:
            raise StrategyError(f"s.retry(limit): limit must be an int from 1 to {_ir.MAX_RETRY}, not {limit!r}")
        return self._t.retry(limit)

    # Unknown attributes: another hook (recorded as a call) or a helper
    # method of the strategy class (inlined); anything else is an error.
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _ir.HOOKS:
            if name == self._hook:
                raise StrategyError(f"hook {name} calls itself")
            if name in _ir.VALUE_HOOKS:
                raise StrategyError(f"hook {self._hook} calls {name}, which returns a value: only the "
                                    f"skeleton calls it")
            if name in _ir.BH_HOOKS and self._hook not in _ir.BH_HOOKS:
                raise StrategyError(f"hook {self._hook} calls {name}, which needs a bottom half: only "
                                    f"the bottom-half hooks ({', '.join(_ir.BH_HOOKS)}) may")
            return lambda: self._t.emit(_ir.Call(name))
        attr = getattr(self._cls, name, None)
        if callable(attr) and not isinstance(attr, type):
            return attr.__get__(self)
        raise StrategyError(
            f"unknown primitive or field {name!r}; the vocabulary is: "
            + ", ".join(_ir.PRIMITIVES)
            + " (or QEMU's spellings: " + ", ".join(ALIASES) + ")"
            + "; fields: "
            + ", ".join(_ir.CORE_FIELDS + tuple(self._cls.shared))
        )

    def _field(self, prim, f):
        if not isinstance(f, Field):
            raise StrategyError(f"{prim} needs a shared field (e.g. s.notify_me), got {f!r}")
        if f.name in _ir.BH_FIELDS and self._hook not in _ir.BH_HOOKS:
            raise StrategyError(f"{prim}({f.name}) outside a bottom-half hook ({', '.join(_ir.BH_HOOKS)}): "
                                f"there is no bottom half in {self._hook}")
        return f.name

    def _tmp(self):
        return self._t.new_tmp()

    # loads
    def atomic_read(self, f):
        return self._load("atomic_read", f)

    def atomic_load_acquire(self, f):
        return self._load("atomic_load_acquire", f)

    def _load(self, kind, f):
        dst = self._tmp()
        self._t.emit(_ir.Read(kind, self._field(kind, f), dst))
        return self._t.value(dst)

    # stores
    def atomic_set(self, f, v):
        self._t.emit(_ir.Write("atomic_set", self._field("atomic_set", f), _expr(v)))

    def atomic_store_release(self, f, v):
        self._t.emit(_ir.Write("atomic_store_release", self._field("atomic_store_release", f), _expr(v)))

    # read-modify-writes (seq_cst)
    def atomic_xchg(self, f, v):
        return self._rmw("atomic_xchg", f, v)

    def atomic_cmpxchg(self, f, expected, new):
        dst = self._tmp()
        self._t.emit(
            _ir.Rmw("atomic_cmpxchg", self._field("atomic_cmpxchg", f), _expr(new), dst, _expr(expected))
        )
        return self._t.value(dst)

    def atomic_fetch_add(self, f, v):
        return self._rmw("atomic_fetch_add", f, v)

    def atomic_fetch_sub(self, f, v):
        return self._rmw("atomic_fetch_sub", f, v)

    def atomic_fetch_or(self, f, v):
        return self._rmw("atomic_fetch_or", f, v)

    def atomic_fetch_and(self, f, v):
        return self._rmw("atomic_fetch_and", f, v)

    def atomic_add(self, f, v):
        self._t.emit(_ir.Rmw("atomic_add", self._field("atomic_add", f), _expr(v)))

    def atomic_sub(self, f, v):
        self._t.emit(_ir.Rmw("atomic_sub", self._field("atomic_sub", f), _expr(v)))

    def atomic_or(self, f, v):
        self._t.emit(_ir.Rmw("atomic_or", self._field("atomic_or", f), _expr(v)))

    def atomic_and(self, f, v):
        self._t.emit(_ir.Rmw("atomic_and", self._field("atomic_and", f), _expr(v)))

    def _rmw(self, kind, f, v):
        dst = self._tmp()
        self._t.emit(_ir.Rmw(kind, self._field(kind, f), _expr(v), dst))
        return self._t.value(dst)

    # fences
    def smp_mb(self, pairs=None):
        self._fence("smp_mb", pairs)

    def smp_wmb(self, pairs=None):
        self._fence("smp_wmb", pairs)

    def smp_rmb(self, pairs=None):
        self._fence("smp_rmb", pairs)

    def _fence(self, kind, pairs):
        if not pairs or not isinstance(pairs, str):
            raise StrategyError(
                f"{kind}() needs pairs=\"...\": say which barrier or access it pairs with "
                f"(e.g. pairs=\"smp_mb in aio_notify()\")"
            )
        self._t.emit(_ir.Fence(kind, pairs))

    def atomic_mb_set(self, f, v, pairs="smp_mb in poll_begin"):
        self._t.emit(_ir.MbSet(self._field("atomic_mb_set", f), _expr(v), pairs))

    # the EventNotifier
    def event_set(self):
        self._t.emit(_ir.EventSet())

    def event_test_and_clear(self):
        dst = self._tmp()
        self._t.emit(_ir.EventTestAndClear(dst))
        return self._t.value(dst)


# --- path enumeration ------------------------------------------------------


class _PathTracer:
    """One execution of a hook along a fixed prefix of branch decisions."""

    def __init__(self, prefix):
        self.prefix = list(prefix)
        self.decisions = []
        self.items = []  # statements and ("branch", expr, decision)
        self.tmp_counts = {}

    def new_tmp(self):
        # Name a tmp after the source line of the hook that produced it.
        # Skip the builder's and tracers' own frames: the first frame left is
        # the hook (which may be Strategy.schedule, defined in this file).
        f = sys._getframe(1)
        while f is not None and f.f_code in _MACHINERY_CODE:
            f = f.f_back
        line = f.f_lineno if f is not None else 0
        n = self.tmp_counts.get(line, 0)
        self.tmp_counts[line] = n + 1
        return f"v{line}" + (f"_{n}" if n else "")

    def value(self, name):
        return Sym(self, _ir.Tmp(name))

    def emit(self, stmt):
        self.items.append(stmt)

    def decide(self, e):
        i = len(self.decisions)
        if i >= MAX_BRANCH_DEPTH:
            raise StrategyError(
                f"more than {MAX_BRANCH_DEPTH} branches on one path (a loop on a shared value?)"
            )
        d = self.prefix[i] if i < len(self.prefix) else True
        self.decisions.append(d)
        self.items.append(("branch", e, d))
        return d

    def retry(self, limit):
        """Trace a retry loop's body once, between markers (see _retry.py)."""
        self.items.append(("loop", limit))
        self.open_loops = getattr(self, "open_loops", 0) + 1
        try:
            yield None
        except GeneratorExit:
            self.items.append(("break",))
            self.open_loops -= 1
            raise
        self.items.append(("continue",))
        self.open_loops -= 1


def _machinery_code():
    codes = set()
    for klass in (_Builder, QemuSpellings, _PathTracer):
        for v in vars(klass).values():
            if callable(v) and hasattr(v, "__code__"):
                codes.add(v.__code__)
    return codes


def _insert(tree, items):
    """Merge one path (statements and branch decisions) into a mutable tree.

    Paths that share a prefix of decisions executed the same statements up
    to their first difference (hooks are deterministic), so the cursor walks
    over what is already there and only appends what is new."""
    node, pos = tree, 0
    for it in items:
        if isinstance(it, tuple) and it and it[0] == "branch":
            _, cond, d = it
            if pos < len(node):
                ifn = node[pos]
                if not (isinstance(ifn, list) and ifn[1] == cond):
                    raise StrategyError("the hook is not deterministic (two runs took different steps)")
            else:
                ifn = ["if", cond, [], []]
                node.append(ifn)
            node, pos = (ifn[2] if d else ifn[3]), 0
        else:
            if pos < len(node):
                if node[pos] != it:
                    raise StrategyError("the hook is not deterministic (two runs took different steps)")
            else:
                node.append(it)
            pos += 1
    return tree


def _freeze(tree):
    out = []
    for x in tree:
        if isinstance(x, list) and x and x[0] == "if":
            out.append(_ir.If(x[1], tuple(_freeze(x[2])), tuple(_freeze(x[3]))))
        else:
            out.append(x)
    return out


def _hoist(body):
    """Move statements common to the end of both branches after the If."""
    out = []
    for s in body:
        if isinstance(s, _ir.Loop):
            out.append(_ir.Loop(s.limit, _hoist(s.body)))
            continue
        if isinstance(s, _ir.If):
            then, orelse = list(_hoist(s.then)), list(_hoist(s.orelse))
            tail = []
            while (then and orelse and then[-1] == orelse[-1]
                   and not isinstance(then[-1], (_ir.Return, _ir.Break))):
                tail.insert(0, then.pop())
                orelse.pop()
            # A hoisted statement must not use a tmp defined inside a branch.
            defined = _defined(then) | _defined(orelse)
            while tail and _uses(tail[0]) & defined:
                then.append(tail[0])
                orelse.append(tail.pop(0))
            out.append(_ir.If(s.cond, tuple(then), tuple(orelse)))
            out.extend(tail)
        else:
            out.append(s)
    return tuple(out)


def trace_hook(cls, hook) -> tuple:
    """Trace one hook of a strategy class into an IR body."""
    fn = getattr(cls, hook, None)
    if fn is None:
        return ()
    if not callable(fn):
        raise StrategyError(f"hook {hook} is not a function")
    tree = []
    work = [()]
    seen = 0
    returned = []
    while work:
        prefix = work.pop()
        seen += 1
        if seen > MAX_PATHS:
            raise StrategyError(f"hook {hook} has more than {MAX_PATHS} paths")
        t = _PathTracer(prefix)
        b = _Builder(cls, t, hook)
        try:
            ret = fn(b)
        except StrategyError as e:
            raise StrategyError(f"hook {hook}: {e}") from None
        except RecursionError:
            raise StrategyError(f"hook {hook}: unbounded recursion") from None
        except Exception as e:  # an author's bug in the description
            raise StrategyError(f"hook {hook} raised {type(e).__name__}: {e}") from e
        if getattr(t, "open_loops", 0):
            raise StrategyError(f"hook {hook}: a retry loop never ends (write `for _ in s.retry(n):`)")
        if hook in _ir.VALUE_HOOKS:
            t.emit(_ir.Return(_expr(ret if ret is not None else 0, f"{hook} return value")))
        elif ret is not None:
            raise StrategyError(f"hook {hook} returns a value; only {', '.join(_ir.VALUE_HOOKS)} may")
        returned.append(ret)
        for i in range(len(prefix), len(t.decisions)):
            work.append(tuple(t.decisions[:i]) + (not t.decisions[i],))
        _insert(tree, t.items)
    body = _hoist(tuple(_fold_loops(_freeze(tree), hook)))
    _check_loops(body, hook)
    return body


def _check_calls(hooks, name):
    # Hooks may call each other, but not in a cycle.
    graph = {h: {s.hook for s in _ir.walk(body) if isinstance(s, _ir.Call)} for h, body in hooks.items()}
    for h, callees in graph.items():
        for c in callees:
            if c in _ir.VALUE_HOOKS:
                raise StrategyError(f"hook {h} calls {c}, which only the skeleton calls")
    state = {}

    def visit(h, path):
        if state.get(h) == 1:
            raise StrategyError(f"hooks call each other in a cycle: {' -> '.join(path + [h])}")
        if state.get(h) == 2:
            return
        state[h] = 1
        for c in graph.get(h, ()):
            visit(c, path + [h])
        state[h] = 2

    for h in graph:
        visit(h, [])


def bh_counted(hooks: dict, has_list: bool) -> bool:
    """Whether the core's per-BH counts (schedules, dispatches, cancels) are
    exact for these hooks: the schedule hooks change the BH's word only with
    read-modify-writes (each one noted, _codegen), claim and cancel are
    Strategy's (the core counts a dispatch per claim that returns non-zero,
    a cancel per RMW of cancel that clears the word), and there is no list."""
    for h in ("schedule", "schedule_oneshot", "cancel"):
        for s in _ir.walk(hooks.get(h, ())):
            if isinstance(s, (_ir.Write, _ir.MbSet)) and s.field in _ir.BH_WORD:
                return False
    return not has_list and all(hooks.get(h, ()) == _default_body(h) for h in ("claim", "cancel"))


_DEFAULT_BODIES: dict = {}


def _default_body(hook):
    if hook not in _DEFAULT_BODIES:
        _DEFAULT_BODIES[hook] = trace_hook(Strategy, hook)
    return _DEFAULT_BODIES[hook]


def describe(cls) -> _ir.StrategyIR:
    """Trace a Strategy subclass into its IR, or raise StrategyError."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{cls!r} is not a Strategy subclass")
    _validate_meta(cls)
    hooks = {h: trace_hook(cls, h) for h in _ir.HOOKS}
    _check_calls(hooks, cls.name)
    for h, body in hooks.items():
        if h not in _ir.VALUE_HOOKS and any(isinstance(s, _ir.Return) for s in _ir.walk(body)):
            raise StrategyError(f"{cls.name}: hook {h} returns a value")
    optional = tuple(sorted(h for h in _ir.OPTIONAL_HOOKS if h != "timeout_zero"
                            and getattr(cls, h, None) is not None))
    ir = _ir.StrategyIR(
        name=cls.name,
        hooks=hooks,
        fields=_ir.CORE_FIELDS + tuple(cls.shared),
        foreign_pollers=bool(cls.foreign_pollers),
        accept_nonblocking=bool(cls.accept_nonblocking),
        has_timeout_zero=getattr(cls, "timeout_zero", None) is not None,
        schedule_is_default=cls.schedule is Strategy.schedule,
        optional=optional,
        bh_counted=bh_counted(hooks, "claim_list" in optional),
    )
    # What neither the C back end nor the core can honour (writes to
    # bh_scheduled that are not RMWs, calls to schedule/timeout_zero).
    from ._codegen import validate

    validate(ir)
    return ir


# Code objects new_tmp() looks through to find the hook's own frame
# (_concrete.py adds its tracer's).
_MACHINERY_CODE = _machinery_code()
