# IR -> a Promela model of the strategy, in the style of the seeds'
# aio_notify_accept.promela, for spin.
#
# The model is the sequentially consistent reading of the description: every
# primitive is one indivisible step of its process, fences are no-ops (they
# are kept as comments), an RMW is an `atomic { }`.  Spin's verdict is used
# to cross-check the model checker's SC verdicts (aiocore check), so the
# processes follow the same skeleton as aio_core.c, not the seeds' simpler
# AIO_POLL macro:
#
#   waiter()            the home poller, forever:
#                         poll_begin; compute the timeout (timeout_zero, then
#                         the BH flag); wait -- with a zero timeout, sample
#                         the notifier; otherwise block until it is readable;
#                         poll_end; claim the BH (xchg to 0); on_event if the
#                         notifier was readable at the wait.
#                       With -DGSOURCE it runs glib's iteration instead:
#                         prepare; compute the timeout; wait; check; sample
#                         the notifier (aio_gsource_check's ppoll(0));
#                         dispatch as above.
#                       With -DPOLLING it runs the polling skeleton (QEMU's
#                       aio_poll of today, aiocore/_compiler/_skeleton.py): compute the
#                       timeout; if not zero, up to POLL_ROUNDS busy-poll
#                       rounds (the notifier poll -- timeout_zero, else
#                       notified -- and the BH flag); use_notify_me = timeout
#                       != 0: poll_begin and the last look; the wait only if
#                       the timeout is not zero; poll_end if use_notify_me,
#                       else accept; dispatch (on_event only after a wait).
#   temporary_waiter()  -DFOREIGN, only for strategies that allow foreign
#                       pollers: the same aio_poll, a nondeterministic number
#                       of times, then it leaves (the seeds' process of that
#                       name; 2015-era bdrv_drain under the AioContext lock).
#   notifier()          NOTIFIERS copies (default 1): bh_schedule (the
#                       strategy's schedule hook) a nondeterministic number
#                       of times, then it leaves.
#
# One bottom half (`bh`, its word; `bh_next`, its link; `bh_list`, the
# context's list head) stands for all of them.  The bottom-half hooks run on
# it: the notifiers' schedule; the poller's bh_pending (the timeout, the poll
# phase) and claim (dispatch: the callback starts when it returns non-zero),
# after claim_list if the strategy keeps a list, which the poller then walks
# (BhSelf is 1: the one BH).  A value hook sets ret_<hook>; a retry loop is
# a `do` bounded by its limit, left by `break`.
#
# Properties.  The seeds state "event toggles infinitely often" as a never
# claim.  That claim assumes every aio_notify writes the event (the seeds'
# default USE_NOTIFY_ME=0); with the notify_me optimization a correct
# strategy legitimately leaves the event quiet forever while the poller
# keeps finding its work without sleeping, so the claim would flag it.  The
# model therefore states DESIGN.md's two failures directly, as two named
# never claims in the seeds' style, checked under weak fairness:
#
#   lost_wakeup   <>[] (home_waiting && bh): the home poller sleeps with an
#                 infinite timeout while the BH is pending, forever.
#   busy_loop     <>[] (event && notifier_done): after the last aio_notify
#                 the notifier stays readable forever, so every ppoll
#                 returns at once and the poller never sleeps again.
#
# Reading the verdict (run_spin does this):
#
#   spin -a model.pml; gcc -O2 -DNFAIR=3 -o pan pan.c
#   ./pan -a -f -N lost_wakeup     "errors: 0" -> no lost wakeup;
#                                  "acceptance cycle" + "errors: 1" -> lost-wakeup
#   ./pan -a -f -N busy_loop       likewise -> busy-loop
#
# verdict = lost-wakeup if the first claim is violated, else busy-loop if the
# second is, else pass.  Add -DFOREIGN / -DGSOURCE / -DNOTIFIERS=2 to spin -a
# for the other configurations.
#
# Values are Promela ints (signed 32-bit) where the C has uint32_t: the same
# bits for + - | & ^ ~, but < <= > >= compare as signed.  No built-in
# strategy compares a shared value with < or >.
from __future__ import annotations

from . import _ir, _skeleton
from .._errors import StrategyError
# Running spin on a model lives in _spin.py; re-exported here.
from ._spin import (  # noqa: F401
    CLAIMS, ClaimResult, SpinMissing, SpinVerdict, have_spin, parse_pan, run_spin,
)


_BIN = {"&&", "||", "|", "^", "&", "==", "!=", "<", "<=", ">", ">=", "+", "-"}
_PREC = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "+": 8, "-": 8,
}


def _var(field: str) -> str:
    if field in _ir.BH_WORD:
        return "bh"
    if field in ("notify_me", "notified", "bh_next", "bh_list"):
        return field
    return f"s_{field}"


def _const(v: int) -> str:
    if v > 0x7FFFFFFF:
        return f"~{(~v) & _ir.MASK32}"
    return str(v)


class _Writer:
    def __init__(self, ir):
        self.ir = ir
        self.lines = []
        self.loops = {}  # hook -> loops emitted so far (tries_<hook>_<n>)

    def expr(self, e, hook, parent=0):
        if isinstance(e, _ir.Const):
            return _const(e.value)
        if isinstance(e, _ir.Tmp):
            return f"{hook}_{e.name}"
        if isinstance(e, _ir.BhSelf):
            return "1"
        if isinstance(e, _ir.Un):
            return f"{e.op}{self.expr(e.a, hook, 99)}"
        if e.op not in _BIN:  # pragma: no cover - the IR has no other ops
            raise StrategyError(f"{self.ir.name}: no Promela for operator {e.op!r}")
        p = _PREC[e.op]
        text = f"{self.expr(e.a, hook, p)} {e.op} {self.expr(e.b, hook, p + 1)}"
        return f"({text})" if p < parent or parent == 99 else text

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def body(self, stmts, hook, depth):
        start = len(self.lines)
        for s in stmts:
            self.stmt(s, hook, depth)
        if not any(not ln.strip().startswith("/*") for ln in self.lines[start:]):
            self.emit(depth, "skip;")

    def stmt(self, s, hook, depth):
        ex = lambda e: self.expr(e, hook)  # noqa: E731
        if isinstance(s, _ir.Read):
            self.emit(depth, f"{hook}_{s.dst} = {_var(s.field)};   /* {s.kind} */")
        elif isinstance(s, _ir.Write):
            self.emit(depth, f"{_var(s.field)} = {ex(s.value)};   /* {s.kind} */")
        elif isinstance(s, _ir.Rmw):
            f = _var(s.field)
            k = s.kind
            if k == "atomic_xchg":
                new = f"{f} = {ex(s.value)}"
            elif k == "atomic_cmpxchg":
                new = f"if :: {f} == {ex(s.expected)} -> {f} = {ex(s.value)} :: else -> skip fi"
            else:
                op = {"add": "+", "sub": "-", "or": "|", "and": "&"}[k.rsplit("_", 1)[1]]
                new = f"{f} = {f} {op} {self.expr(s.value, hook, _PREC[op] + 1)}"
            if s.dst:
                self.emit(depth, f"atomic {{ {hook}_{s.dst} = {f}; {new} }}   /* {k} */")
            elif k == "atomic_cmpxchg":
                self.emit(depth, f"atomic {{ {new} }}   /* {k} */")
            else:
                self.emit(depth, f"{new};   /* {k} */")
        elif isinstance(s, _ir.Fence):
            self.emit(depth, f"/* {s.kind}(): pairs with {s.pairs} (a no-op under SC) */")
        elif isinstance(s, _ir.MbSet):
            self.emit(depth, f"{_var(s.field)} = {ex(s.value)};   /* atomic_mb_set: pairs with {s.pairs} */")
        elif isinstance(s, _ir.EventSet):
            self.emit(depth, "event = 1;   /* event_notifier_set */")
        elif isinstance(s, _ir.EventTestAndClear):
            if s.dst:
                self.emit(depth, f"atomic {{ {hook}_{s.dst} = event; event = 0 }}   /* event_notifier_test_and_clear */")
            else:
                self.emit(depth, "event = 0;   /* event_notifier_test_and_clear */")
        elif isinstance(s, _ir.Call):
            self.emit(depth, f"strategy_{s.hook}();")
        elif isinstance(s, _ir.Return):
            self.emit(depth, f"ret_{hook} = ({ex(s.value)});")
        elif isinstance(s, _ir.Loop):
            n = self.loops[hook] = self.loops.get(hook, 0) + 1
            t = f"tries_{hook}_{n}"
            self.emit(depth, f"{t} = 0;")
            self.emit(depth, "do")
            self.emit(depth, f":: {t} < {s.limit} ->")
            self.emit(depth + 1, f"{t}++;")
            self.body(s.body, hook, depth + 1)
            self.emit(depth, ":: else -> break")
            self.emit(depth, "od;")
        elif isinstance(s, _ir.Break):
            self.emit(depth, "break;")
        elif isinstance(s, _ir.If):
            self.emit(depth, "if")
            self.emit(depth, f":: {ex(s.cond)} ->")
            self.body(s.then, hook, depth + 1)
            self.emit(depth, ":: else ->")
            self.body(s.orelse, hook, depth + 1)
            self.emit(depth, "fi;")
        else:  # pragma: no cover
            raise StrategyError(f"{self.ir.name}: no Promela for {s!r}")


def _tmps(ir, hook, seen=None):
    """Locals needed by a hook and the hooks it calls: (hook, tmp) pairs."""
    seen = set() if seen is None else seen
    if hook in seen:
        return set()
    seen.add(hook)
    out = set()
    loops = 0
    if hook in _ir.VALUE_HOOKS:
        out.add(f"ret_{hook}")
    for s in _ir.walk(ir.hooks.get(hook, ())):
        d = getattr(s, "dst", None)
        if d:
            out.add(f"{hook}_{d}")
        if isinstance(s, _ir.Loop):
            loops += 1
            out.add(f"tries_{hook}_{loops}")
        if isinstance(s, _ir.Call):
            out |= _tmps(ir, s.hook, seen)
    return out


def _order(ir):
    done, order = set(), []

    def visit(h):
        if h in done:
            return
        done.add(h)
        for s in _ir.walk(ir.hooks.get(h, ())):
            if isinstance(s, _ir.Call):
                visit(s.hook)
        order.append(h)

    for h in _ir.HOOKS:
        if h in _ir.OPTIONAL_HOOKS and not ir.has(h):
            continue
        visit(h)
    return order


def generate_promela(ir: _ir.StrategyIR, *, origin: str = "", doc: str = "") -> str:
    """A Promela model of the strategy under SC (see the module comment)."""
    from ._codegen import validate

    validate(ir)
    w = _Writer(ir)
    own = ir.fields[len(_ir.CORE_FIELDS):]
    L = w.lines
    L += [
        "/*",
        f" * Strategy \"{ir.name}\": Promela model generated by aiocore from its Python",
        " * description (do not edit; `aiocore show NAME --promela` regenerates it).",
    ]
    if origin:
        L.append(f" * Origin: {origin}")
    L.append(f" * Fingerprint: {ir.fingerprint}")
    if doc:
        L.append(" *")
        L += [(" * " + ln.replace("*/", "* /")).rstrip() for ln in doc.strip().splitlines()]
    L += [
        " *",
        " * Sequentially consistent: each primitive is one step, fences are no-ops,",
        " * RMWs are atomic.  The processes follow aio_core.c's skeleton.",
        " *",
        " * To verify (config home):",
        " *     spin -a model.pml",
        " *     gcc -O2 -DNFAIR=3 -o pan pan.c",
        " *     ./pan -a -f -N lost_wakeup     (errors: 0 = no lost wakeup)",
        " *     ./pan -a -f -N busy_loop       (errors: 0 = no busy loop)",
        " * Polling skeleton (QEMU today): spin -a -DPOLLING (home only).",
        " * Other configs: spin -a -DGSOURCE, -DFOREIGN"
        + (" (allowed: the strategy declares foreign pollers)" if ir.foreign_pollers else " (refused: no foreign pollers)")
        + ", -DNOTIFIERS=2.",
        " */",
        "",
        "#ifndef NOTIFIERS",
        "#define NOTIFIERS 1",
        "#endif",
        "#ifndef POLL_ROUNDS",
        f"#define POLL_ROUNDS {_skeleton.POLL_ROUNDS}",
        "#endif",
        "#if defined(POLLING) && defined(FOREIGN)",
        '#error "the polling skeleton has no foreign pollers (2015 skeleton only)"',
        "#endif",
    ]
    if not ir.foreign_pollers:
        L += [
            "#ifdef FOREIGN",
            f'#error "strategy {ir.name} does not allow foreign pollers"',
            "#endif",
        ]
    L += [
        "",
        "int notify_me;",
        "int notified;",
    ]
    L += [f"int {_var(f)};   /* strategy field {f} */" for f in own]
    L += [
        "int bh;               /* the bottom half's word (scheduled / flags) */",
        "int bh_next;          /* its list link */",
        "int bh_list;          /* the context's list head (1: the BH, 0: empty) */",
        "bool event;           /* the EventNotifier is readable */",
        "bool home_waiting;    /* the home poller sleeps in ppoll, timeout infinite */",
        "byte notifiers_done;",
        "",
        "#define notifier_done (notifiers_done == NOTIFIERS)",
        "",
    ]
    for h in _order(ir):
        L.append(f"inline strategy_{h}()")
        L.append("{")
        w.body(ir.hooks.get(h, ()), h, 1)
        L.append("}")
        L.append("")

    poll_hooks = ["poll_begin", "poll_end", "prepare", "check", "on_event", "accept", "claim",
                  "bh_pending"]
    poll_hooks += [h for h in _ir.OPTIONAL_HOOKS if ir.has(h)]
    poller_tmps = set()
    for h in poll_hooks:
        poller_tmps |= _tmps(ir, h)
    notifier_tmps = _tmps(ir, "schedule")

    def decls(tmps):
        return [f"    int {t};" for t in sorted(tmps)]

    def site(name, default, last=True):
        h = ir.site(name)
        end = "" if last else ";"
        return [f"    strategy_{h}();", f"    zero_timeout = (ret_{h} != 0){end}"] if h else [f"    {default}{end}"]

    if ir.has_list:
        pending = [
            "    /* the list the strategy keeps: bh_list, then bh_next */",
            "    if",
            "    :: !zero_timeout && bh_list == 1 -> strategy_bh_pending(); zero_timeout = (ret_bh_pending != 0)",
            "    :: else -> skip",
            "    fi",
        ]
        claims = [
            "    strategy_claim_list();",
            "    if",
            "    :: ret_claim_list == 1 ->   /* the list holds the BH: claim it */",
            "        strategy_claim()   /* ret_claim: the callback starts */",
            "    :: else -> skip",
            "    fi;",
        ]
    else:
        pending = [
            "    if",
            "    :: !zero_timeout -> strategy_bh_pending(); zero_timeout = (ret_bh_pending != 0)",
            "    :: else -> skip",
            "    fi",
        ]
        claims = ["    strategy_claim();   /* ret_claim: the callback starts */"]
    L += [
        "/* aio_compute_timeout: zero if the strategy's compute_timeout says so,",
        " * else if the BH is pending (bh_pending). */",
        "inline compute_timeout()",
        "{",
        *site("compute_timeout", "zero_timeout = 0", last=False),
        *pending,
        "}",
        "",
        "/* ppoll on the notifier: a zero timeout samples it, an infinite one blocks",
        " * until it is readable. */",
        "inline wait(home)",
        "{",
        "    if",
        "    :: zero_timeout -> readable = event",
        "    :: else ->",
        "        if",
        "        :: home -> home_waiting = 1",
        "        :: else -> skip",
        "        fi;",
        "        atomic { event -> readable = 1; home_waiting = 0 }",
        "    fi",
        "}",
        "",
        "/* aio_dispatch: aio_bh_poll (the strategy's claim), then the notifier's",
        " * fd handler if the notifier was readable at the wait. */",
        "inline dispatch()",
        "{",
        *claims,
        "    if",
        "    :: readable -> strategy_on_event()",
        "    :: else -> skip",
        "    fi",
        "}",
        "",
        "inline aio_poll(home)   /* blocking */",
        "{",
        "    strategy_poll_begin();",
        "    compute_timeout();",
        "    wait(home);",
        "    strategy_poll_end();",
        "    dispatch()",
        "}",
        "",
        "/* aio_context_notifier_poll: the notifier_poll site (timeout_zero, else notified). */",
        "inline notifier_poll()",
        "{",
        *site("notifier_poll", "zero_timeout = (notified != 0)"),
        "}",
        "",
        "/* \"Don't block if aio_notify() was called\": the last_look site. */",
        "inline last_look()",
        "{",
        *site("last_look", "zero_timeout = (notified != 0)"),
        "}",
        "",
        "inline aio_poll_polling()   /* blocking, home */",
        "{",
        "    compute_timeout();",
        "    rounds = 0;   /* try_poll_mode: nothing if the timeout is already 0 */",
        "    do",
        "    :: !zero_timeout && rounds < POLL_ROUNDS ->",
        "        rounds++;",
        "        notifier_poll();",
        *["    " + x for x in pending[:-1]],
        "        fi",
        "    :: true -> break   /* poll_ns elapsed, or 0 */",
        "    od;",
        "    use_notify_me = !zero_timeout;",
        "    if",
        "    :: use_notify_me -> strategy_poll_begin(); last_look()",
        "    :: else -> skip",
        "    fi;",
        "    if",
        "    :: !zero_timeout -> wait(1)",
        "    :: else -> readable = 0   /* no system call */",
        "    fi;",
        "    if",
        "    :: use_notify_me -> strategy_poll_end()",
        "    :: else -> strategy_accept()",
        "    fi;",
        "    dispatch()",
        "}",
        "",
        "inline gsource_iteration()",
        "{",
        "    strategy_prepare();",
        "    compute_timeout();",
        "    wait(1);",
        "    strategy_check();",
        "    readable = event;   /* aio_gsource_check refreshes readiness */",
        "    dispatch()",
        "}",
        "",
        "active proctype waiter()",
        "{",
        *decls(poller_tmps),
        "    bool zero_timeout, readable, use_notify_me;",
        "    byte rounds;",
        "",
        "    do",
        "#ifdef GSOURCE",
        "    :: true -> gsource_iteration()",
        "#elif defined(POLLING)",
        "    :: true -> aio_poll_polling()",
        "#else",
        "    :: true -> aio_poll(1)",
        "#endif",
        "    od",
        "}",
        "",
    ]
    if ir.foreign_pollers:
        L += [
            "#ifdef FOREIGN",
            "/* Same as waiter(), but disappears after a while. */",
            "active proctype temporary_waiter()",
            "{",
            *decls(poller_tmps),
            "    bool zero_timeout, readable;",
            "",
            "    do",
            "    :: true -> aio_poll(0)",
            "    :: true -> break",
            "    od",
            "}",
            "#endif",
            "",
        ]
    L += [
        "active [NOTIFIERS] proctype notifier()",
        "{",
        *decls(notifier_tmps),
        "",
        "    do",
        "    :: true -> strategy_schedule()",
        "    :: true -> break",
        "    od;",
        "    notifiers_done++",
        "}",
        "",
        "/* The home poller sleeps forever while the BH is pending. */",
        "never lost_wakeup {",
        "    do",
        "    :: home_waiting && bh -> goto accept_if_sleeping_with_work;",
        "    :: true -> skip;",
        "    od;",
        "accept_if_sleeping_with_work:",
        "    if",
        "    :: home_waiting && bh -> goto accept_if_sleeping_with_work;",
        "    fi;",
        "}",
        "",
        "/* After the last notification the event stays readable forever: every",
        " * ppoll returns at once. */",
        "never busy_loop {",
        "    do",
        "    :: event && notifier_done -> goto accept_if_event_stays_set;",
        "    :: true -> skip;",
        "    od;",
        "accept_if_event_stays_set:",
        "    if",
        "    :: event && notifier_done -> goto accept_if_event_stays_set;",
        "    fi;",
        "}",
    ]
    return "\n".join(L) + "\n"
