# The strategy compiler's back end: IR -> C hooks, in QEMU's style.
#
# The output of generate_c() is the text that aio_notifier.h's hook interface
# asks for (strategy_notify(), ..., the AIO_STRATEGY_* macros); _build.py
# puts it in front of the core template, so the hooks inline into aio_poll
# exactly as the hand-written strategy_unconditional.h does.
#
# The C is meant to be read side by side with QEMU's util/async.c, so:
#
# * a value read is inlined into its single use when that keeps the order of
#   the primitives -- the use must be the very next statement, and the value
#   must be evaluated before anything else that statement does (not under the
#   right operand of && or ||, not in a cmpxchg, whose two operands C may
#   evaluate in either order).  `if (atomic_read(&ctx->shm->notify_me))` and
#   `atomic_set(&ctx->shm->notify_me, atomic_read(&ctx->shm->notify_me) + 2)`
#   come out as QEMU spells them;
# * other values get a local named after what they hold (notify_me, old, ...);
# * every fence carries a comment saying what it pairs with (the `pairs=`
#   argument the description had to give);
# * in schedule and schedule_oneshot, a read-modify-write of the BH's word
#   (bh->scheduled, alias bh->flags) keeps the old value and reports the
#   transition to aio_bh_note(), which is how the core counts 0->1 schedules
#   for its per-BH accounting; in cancel, aio_bh_note_cancel() counts the
#   schedules taken back.  The void forms (atomic_add & co.) are emitted as
#   the matching fetch form for that reason -- the same seq_cst C11
#   operation, with the result kept (see C_OP_FOR_BH).  A plain store to the
#   word (QEMU 2014's `bh->scheduled = 1`) is not counted: no locked
#   instruction may be added beside it, so such a strategy's per-BH counts
#   are not kept (AIO_STRATEGY_BH_COUNTED 0) and lost work is judged by the
#   payload each schedule publishes (docs/plugins.md);
# * a retry loop (s.retry(n)) is a `for` over AIO_RETRY(n) attempts, whose
#   body leaves with `break` (aio_prims.h: the trace build clamps AIO_RETRY).
#
# Nothing here is semantic: the IR says what happens; this module only
# spells it.  The trace-build tests (_trace.py) check the spelling against
# the Python description on every path.
from __future__ import annotations

from . import _ir
from .._errors import StrategyError

#: Bumped when the generated C changes for the same IR.
CODEGEN_VERSION = 2

#: The void RMWs on bh->scheduled are emitted as these, to keep the old value.
C_OP_FOR_BH = {
    "atomic_add": "atomic_fetch_add",
    "atomic_sub": "atomic_fetch_sub",
    "atomic_or": "atomic_fetch_or",
    "atomic_and": "atomic_fetch_and",
}

# How the new value of a bh->scheduled RMW follows from the old one.
_RMW_NEW = {
    "atomic_xchg": None,  # the operand itself
    "atomic_fetch_add": "+",
    "atomic_add": "+",
    "atomic_fetch_sub": "-",
    "atomic_sub": "-",
    "atomic_fetch_or": "|",
    "atomic_or": "|",
    "atomic_fetch_and": "&",
    "atomic_and": "&",
}

# C precedence of the binary operators (higher binds tighter).
_PREC = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "+": 8, "-": 8,
}
_ARITH = ("+", "-", "|", "&", "^")
_HOOK_SIG = "AioContext *ctx"

#: C words a local may not be named after (a shared field may be "int").
_C_WORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while bool true false uint32_t ctx bh old was_set tries".split()
)

#: The hooks whose RMWs on the BH's word are counted, and how (see above).
_NOTE = {"schedule": "aio_bh_note", "schedule_oneshot": "aio_bh_note", "cancel": "aio_bh_note_cancel"}


def _not_callable(caller: str, callee: str) -> str | None:
    """Why hook `caller` may not call `callee` (None if it may)."""
    if callee in _ir.VALUE_HOOKS:
        return f"{callee} returns a value: the skeleton alone calls it"
    if callee in _ir.BH_HOOKS and caller not in _ir.BH_HOOKS:
        return f"{callee} needs a bottom half, which only the bottom-half hooks have"
    return None


def field_ptr(ir: _ir.StrategyIR, field: str) -> str:
    """The C pointer expression of a shared field."""
    if field == "notify_me":
        return "&ctx->shm->notify_me"
    if field == "notified":
        return "&ctx->shm->notified"
    if field == "bh_scheduled":
        return "&bh->scheduled"
    if field == "bh_flags":
        return "&bh->flags"
    if field == "bh_next":
        return "&bh->next"
    if field == "bh_list":
        return "&ctx->shm->bh_list"
    own = list(ir.fields[len(_ir.CORE_FIELDS):])
    if field in own:
        return f"&ctx->shm->strategy_field[{own.index(field)}].v /* {field} */"
    raise StrategyError(f"{ir.name}: unknown field {field!r}")


def validate(ir: _ir.StrategyIR) -> None:
    """Reject what the C back end (and the core) cannot honour."""
    for hook, body in ir.hooks.items():
        _check_breaks(ir, hook, body, False)
        for s in _ir.walk(body):
            if isinstance(s, _ir.Call) and s.hook not in _ir.HOOKS:
                raise StrategyError(f"{ir.name}: hook {hook} calls unknown hook {s.hook!r}")
            if isinstance(s, _ir.Call) and _not_callable(hook, s.hook):
                raise StrategyError(f"{ir.name}: hook {hook} calls {s.hook}: {_not_callable(hook, s.hook)}")
            f = getattr(s, "field", None)
            if f in _ir.BH_FIELDS and hook not in _ir.BH_HOOKS:
                raise StrategyError(f"{ir.name}: hook {hook} names {f}, but has no bottom half")
            if isinstance(s, _ir.Loop) and not 1 <= s.limit <= _ir.MAX_RETRY:
                raise StrategyError(f"{ir.name}: hook {hook} has a retry loop of {s.limit} attempts "
                                    f"(1 to {_ir.MAX_RETRY})")
            for kind_attr in ("kind",):
                k = getattr(s, kind_attr, None)
                if k is not None and k not in _ir.PRIMITIVES:
                    raise StrategyError(f"{ir.name}: hook {hook} uses unknown primitive {k!r}")
            f = getattr(s, "field", None)
            if f is not None and f not in ir.fields:
                raise StrategyError(f"{ir.name}: hook {hook} names unknown field {f!r}")
    if len(ir.fields) - len(_ir.CORE_FIELDS) > _ir.MAX_STRATEGY_FIELDS:
        raise StrategyError(f"{ir.name}: at most {_ir.MAX_STRATEGY_FIELDS} shared fields")


def _check_breaks(ir, hook, body, in_loop):
    for s in body:
        if isinstance(s, _ir.Break) and not in_loop:
            raise StrategyError(f"{ir.name}: hook {hook} has a break outside a retry loop")
        if isinstance(s, _ir.If):
            _check_breaks(ir, hook, s.then, in_loop)
            _check_breaks(ir, hook, s.orelse, in_loop)
        elif isinstance(s, _ir.Loop):
            _check_breaks(ir, hook, s.body, True)


# --- expressions -----------------------------------------------------------


def _is_unsigned(e) -> bool:
    """Whether C gives e an unsigned type (tmps and fields are uint32_t)."""
    if isinstance(e, (_ir.Tmp, _ir.BhSelf)):
        return True
    if isinstance(e, _ir.Const):
        return e.value > 0x7FFFFFFF
    if isinstance(e, _ir.Un):
        return e.op == "~" and _is_unsigned(e.a)
    if e.op in _ARITH:
        return _is_unsigned(e.a) or _is_unsigned(e.b)
    return False


def _const(v: int, unsigned: bool = False) -> str:
    if v > 0x7FFFFFFF:
        inv = (~v) & _ir.MASK32
        return f"~{inv}u" if inv < 0x10000 else f"0x{v:x}u"
    return f"{v}u" if unsigned else str(v)


class _ExprWriter:
    def __init__(self, names, inlined):
        self.names = names  # tmp -> C local name
        self.inlined = inlined  # tmp -> C text of the producing primitive

    def __call__(self, e, parent_prec=0) -> str:
        if isinstance(e, _ir.Const):
            return _const(e.value)
        if isinstance(e, _ir.Tmp):
            if e.name in self.inlined:
                return self.inlined[e.name]
            return self.names[e.name]
        if isinstance(e, _ir.BhSelf):
            return "aio_bh_self(ctx, bh)"
        if isinstance(e, _ir.Un):
            inner = self(e.a, 99)
            if e.op == "~" and not _is_unsigned(e.a):
                inner = f"(uint32_t){inner}"
            return f"{e.op}{inner}"
        prec = _PREC[e.op]
        a, b = e.a, e.b
        if e.op in _ARITH or e.op in ("==", "!=", "<", "<=", ">", ">="):
            # Keep the arithmetic unsigned, as the 32-bit fields are.
            ua, ub = _is_unsigned(a), _is_unsigned(b)
            if not ua and not ub:
                if isinstance(b, _ir.Const):
                    sb = _const(b.value, unsigned=True)
                    sa = self(a, prec)
                elif isinstance(a, _ir.Const):
                    sa = _const(a.value, unsigned=True)
                    sb = self(b, prec + 1)
                else:
                    sa = f"(uint32_t){self(a, 99)}"
                    sb = self(b, prec + 1)
                text = f"{sa} {e.op} {sb}"
                return f"({text})" if prec < parent_prec or parent_prec == 99 else text
        text = f"{self(a, prec)} {e.op} {self(b, prec + 1)}"
        if prec < parent_prec or parent_prec == 99:
            return f"({text})"
        return text


# --- statements ------------------------------------------------------------


def _stmt_exprs(s):
    """The expressions a statement evaluates, in the order C evaluates them
    (only meaningful for the single-expression statements)."""
    if isinstance(s, _ir.Write) or isinstance(s, _ir.MbSet) or isinstance(s, _ir.Return):
        return [s.value]
    if isinstance(s, _ir.Rmw):
        return [s.value] + ([s.expected] if s.expected is not None else [])
    if isinstance(s, _ir.If):
        return [s.cond]
    return []


def _count_uses(body, counts):
    for s in _ir.walk(body):
        for e in _stmt_exprs(s):
            _count_expr(e, counts)
    return counts


def _count_expr(e, counts):
    if isinstance(e, _ir.Tmp):
        counts[e.name] = counts.get(e.name, 0) + 1
    elif isinstance(e, _ir.Un):
        _count_expr(e.a, counts)
    elif isinstance(e, _ir.Bin):
        _count_expr(e.a, counts)
        _count_expr(e.b, counts)


def _evaluated_first(e, name) -> bool:
    """Whether tmp `name` occurs in e outside the right operand of && / ||
    (so that it is evaluated unconditionally, before any primitive of the
    statement that holds e)."""
    if isinstance(e, _ir.Tmp):
        return e.name == name
    if isinstance(e, _ir.Un):
        return _evaluated_first(e.a, name)
    if isinstance(e, _ir.Bin):
        if e.op in ("&&", "||"):
            return _evaluated_first(e.a, name)
        return _evaluated_first(e.a, name) or _evaluated_first(e.b, name)
    return False


def _may_inline_into(nxt, tmp, noted=False) -> bool:
    if isinstance(nxt, _ir.Rmw):
        if nxt.kind == "atomic_cmpxchg" or (noted and nxt.field in _ir.BH_WORD):
            return False
    # Not into atomic_mb_set: its macro runs smp_wmb() before evaluating the
    # value, which would move the read after the fence.
    if isinstance(nxt, (_ir.Write, _ir.Rmw, _ir.If, _ir.Return)):
        return _evaluated_first(_stmt_exprs(nxt)[0], tmp)
    return False


class _HookWriter:
    def __init__(self, ir, hook, body):
        self.ir = ir
        self.hook = hook
        self.body = body
        self.uses = _count_uses(body, {})
        self.names = {}
        self.taken = set(_C_WORDS) - {"old", "was_set"}
        self.lines = []
        self.uses_bh = False
        self.note = _NOTE.get(hook)
        self.loops = 0
        for s in _ir.walk(body):
            d = getattr(s, "dst", None)
            if d and d not in self.names:
                self.names[d] = self._pick_name(s)

    def _pick_name(self, s):
        if isinstance(s, _ir.Read):
            base = s.field
        elif isinstance(s, _ir.Rmw):
            base = "old" if s.field in _ir.BH_WORD else f"old_{s.field}"
        else:
            base = "was_set"
        name, n = base, 2
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name

    def counted(self, s):
        """An RMW of the BH's word whose transition this hook reports."""
        return self.note is not None and isinstance(s, _ir.Rmw) and s.field in _ir.BH_WORD

    def ptr(self, field):
        if field in _ir.BH_FIELDS:
            self.uses_bh = True
        return field_ptr(self.ir, field)

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def comment(self, depth, text):
        words = text.split()
        width = 74 - 4 * depth
        lines, cur = [], ""
        for w in words:
            if cur and len(cur) + 1 + len(w) > width:
                lines.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}" if cur else w
        if cur:
            lines.append(cur)
        if len(lines) <= 1:
            self.emit(depth, f"/* {lines[0] if lines else ''} */")
        else:
            self.emit(depth, "/*")
            for ln in lines:
                self.emit(depth, f" * {ln}")
            self.emit(depth, " */")

    # The C text of a value-producing primitive (for inlining or assignment).
    def producer(self, s, ex):
        if isinstance(s, _ir.Read):
            return f"{s.kind}({self.ptr(s.field)})"
        if isinstance(s, _ir.Rmw):
            kind = s.kind
            if self.counted(s) and kind in C_OP_FOR_BH:
                kind = C_OP_FOR_BH[kind]
            if kind == "atomic_cmpxchg":
                return f"atomic_cmpxchg({self.ptr(s.field)}, {ex(s.expected)}, {ex(s.value)})"
            return f"{kind}({self.ptr(s.field)}, {ex(s.value)})"
        if isinstance(s, _ir.EventTestAndClear):
            return "event_notifier_test_and_clear(ctx)"
        raise AssertionError(s)

    def block(self, body, depth, inlined):
        ex = _ExprWriter(self.names, inlined)
        i = 0
        while i < len(body):
            s = body[i]
            dst = getattr(s, "dst", None)
            nxt = body[i + 1] if i + 1 < len(body) else None
            if (
                dst
                and self.uses.get(dst, 0) == 1
                and not self.counted(s)
                and nxt is not None
                and _may_inline_into(nxt, dst, self.note is not None)
            ):
                inlined[dst] = self.producer(s, ex)
                i += 1
                continue
            self.stmt(s, depth, ex, inlined)
            i += 1

    def stmt(self, s, depth, ex, inlined):
        if isinstance(s, (_ir.Read, _ir.EventTestAndClear)) or (
            isinstance(s, _ir.Rmw) and not self.counted(s)
        ):
            text = self.producer(s, ex)
            dst = getattr(s, "dst", None)
            if isinstance(s, _ir.Rmw) and s.kind in _ir.VOID_RMW_KINDS:
                self.emit(depth, f"{text};")
            elif dst and self.uses.get(dst, 0):
                self.emit(depth, f"uint32_t {self.names[dst]} = {text};")
            elif isinstance(s, _ir.EventTestAndClear):
                self.emit(depth, f"{text};")
            else:
                self.emit(depth, f"(void){text};")
        elif isinstance(s, _ir.Rmw):  # on the BH's word: keep old for aio_bh_note
            old = self.names.get(s.dst) if s.dst else None
            if old is None:
                old = self._pick_name(s)
                self.names[f"__bh_{id(s)}"] = old
            text = self.producer(s, ex)
            self.emit(depth, f"uint32_t {old} = {text};")
            if s.kind == "atomic_xchg":
                new = ex(s.value)
            elif s.kind == "atomic_cmpxchg":
                new = f"{old} == {ex(s.expected, 6)} ? {ex(s.value, 1)} : {old}"
            else:
                new = f"{old} {_RMW_NEW[s.kind]} {ex(s.value, _PREC[_RMW_NEW[s.kind]] + 1)}"
            self.emit(depth, f"{self.note}(bh, {old}, {new});")
        elif isinstance(s, _ir.Write):
            self.emit(depth, f"{s.kind}({self.ptr(s.field)}, {ex(s.value)});")
        elif isinstance(s, _ir.Fence):
            self.comment(depth, _pairs_text(s.pairs))
            self.emit(depth, f"{s.kind}();")
        elif isinstance(s, _ir.MbSet):
            self.comment(depth, f"smp_wmb; atomic_set; smp_mb.  {_pairs_text(s.pairs)}")
            self.emit(depth, f"atomic_mb_set({self.ptr(s.field)}, {ex(s.value)});")
        elif isinstance(s, _ir.EventSet):
            self.emit(depth, "event_notifier_set(ctx);")
        elif isinstance(s, _ir.Call):
            why = _not_callable(self.hook, s.hook)
            if why:
                raise StrategyError(f"{self.ir.name}: hook {self.hook} calls {s.hook}: {why}")
            if s.hook in _ir.BH_HOOKS:
                self.uses_bh = True
                self.emit(depth, f"strategy_{s.hook}(ctx, bh);")
            else:
                self.emit(depth, f"strategy_{s.hook}(ctx);")
        elif isinstance(s, _ir.Loop):
            self.loops += 1
            i = "tries" if self.loops == 1 else f"tries_{self.loops}"
            self.emit(depth, f"for (int {i} = 0; {i} < AIO_RETRY({s.limit}); {i}++) {{")
            self.block(s.body, depth + 1, dict(inlined))
            self.emit(depth, "}")
        elif isinstance(s, _ir.Break):
            self.emit(depth, "break;")
        elif isinstance(s, _ir.Return):
            self.emit(depth, f"return {ex(s.value)};")
        elif isinstance(s, _ir.If):
            if not s.then and s.orelse:
                # `if (x) {} else {...}` reads better as `if (!x) {...}`.
                s = _ir.If(_negate(s.cond), s.orelse, ())
            cond = ex(s.cond)
            self.emit(depth, f"if ({cond}) {{")
            self.block(s.then, depth + 1, dict(inlined))
            if s.orelse:
                if len(s.orelse) == 1 and isinstance(s.orelse[0], _ir.If):
                    # else if
                    mark = len(self.lines)
                    self.stmt(s.orelse[0], depth, ex, dict(inlined))
                    first = self.lines[mark].lstrip()
                    self.lines[mark] = "    " * depth + "} else " + first
                    return
                self.emit(depth, "} else {")
                self.block(s.orelse, depth + 1, dict(inlined))
            self.emit(depth, "}")
        else:  # pragma: no cover
            raise StrategyError(f"{self.ir.name}: cannot generate C for {s!r}")

    def render(self):
        ret = "int" if self.hook == "timeout_zero" else "uint32_t" if self.hook in _ir.VALUE_HOOKS else "void"
        sig = _HOOK_SIG + (", AioBHSlot *bh" if self.hook in _ir.BH_HOOKS else "")
        self.block(self.body, 1, {})
        out = [f"static {ret} strategy_{self.hook}({sig})", "{"]
        unused = []
        text = "\n".join(self.lines)
        if "ctx" not in text.replace("AioContext *ctx", ""):
            unused.append("ctx")
        if self.hook in _ir.BH_HOOKS and not self.uses_bh:
            unused.append("bh")
        for u in unused:
            out.append(f"    (void){u};")
        if self.hook in _ir.VALUE_HOOKS and not self.body:
            out.append("    return 0;")
        out.extend(self.lines)
        out.append("}")
        return "\n".join(out)


_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


def _negate(e):
    if isinstance(e, _ir.Un) and e.op == "!":
        return e.a
    if isinstance(e, _ir.Bin) and e.op in _NEGATED:
        return _ir.Bin(_NEGATED[e.op], e.a, e.b)
    return _ir.Un("!", e)


def _pairs_text(pairs: str) -> str:
    p = pairs.strip().rstrip(".")
    if p.lower().startswith(("pairs with", "pairs ")):
        return p[0].upper() + p[1:] + "."
    return f"Pairs with {p}."


def _hook_order(ir):
    """HOOKS order, with every callee before its callers (no prototypes)."""
    done, order = set(), []

    def visit(h, stack=()):
        if h in done:
            return
        if h in stack:
            raise StrategyError(f"{ir.name}: hooks call each other in a cycle: {' -> '.join(stack + (h,))}")
        for s in _ir.walk(ir.hooks.get(h, ())):
            if isinstance(s, _ir.Call):
                visit(s.hook, stack + (h,))
        done.add(h)
        order.append(h)

    for h in _ir.HOOKS:
        if h in _ir.OPTIONAL_HOOKS and not ir.has(h):
            continue
        visit(h)
    return order


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment_safe(s: str) -> str:
    return s.replace("*/", "* /").replace("/*", "/ *")


def generate_c(ir: _ir.StrategyIR, *, origin: str = "", doc: str = "", source: str = "") -> str:
    """The C hooks of a strategy, for the core template (see _build.py)."""
    validate(ir)
    head = [f"strategy_{ir.name.replace('-', '_')} -- generated by aiocore from the Python",
            f"description of strategy \"{ir.name}\"; do not edit."]
    if source:
        head.append(f"Description: {source}")
    if origin:
        head.append(f"Origin: {origin}")
    head.append(f"Fingerprint: {ir.fingerprint} (IR version {_ir.IR_VERSION}, codegen {CODEGEN_VERSION})")
    if doc:
        head.append("")
        head.extend(doc.strip().splitlines())
    out = ["/*"]
    for ln in head:
        out.append((" * " + _comment_safe(ln)).rstrip())
    out.append(" */")
    out.append(f"#define AIO_STRATEGY_NAME {_c_string(ir.name)}")
    out.append(f"#define AIO_STRATEGY_FINGERPRINT {_c_string(ir.fingerprint)}")
    out.append(f"#define AIO_STRATEGY_FOREIGN_POLLERS {int(ir.foreign_pollers)}")
    out.append(f"#define AIO_STRATEGY_ACCEPT_NONBLOCKING {int(ir.accept_nonblocking)}")
    out.append(f"#define AIO_STRATEGY_HAS_TIMEOUT_ZERO {int(ir.has_timeout_zero)}")
    for h in _ir.OPTIONAL_HOOKS[1:]:
        out.append(f"#define AIO_STRATEGY_HAS_{h.upper()} {int(ir.has(h))}")
    out.append(f"#define AIO_STRATEGY_BH_COUNTED {int(ir.bh_counted)}")
    for h in _hook_order(ir):
        out.append("")
        out.append(_HookWriter(ir, h, ir.hooks.get(h, ())).render())
    return "\n".join(out) + "\n"
