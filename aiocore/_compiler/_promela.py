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
# One bottom half (`bh`, its scheduled flag) stands for all of them.
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

import os
import re
import shutil
import subprocess
import tempfile
import time

import attrs

from . import _ir, _skeleton
from .._errors import AioError, StrategyError

CLAIMS = ("lost_wakeup", "busy_loop")
_VERDICT_OF_CLAIM = {"lost_wakeup": "lost-wakeup", "busy_loop": "busy-loop"}
_CONFIG_DEFINES = {"home": (), "foreign": ("-DFOREIGN",), "gsource": ("-DGSOURCE",)}

_BIN = {"&&", "||", "|", "^", "&", "==", "!=", "<", "<=", ">", ">=", "+", "-"}
_PREC = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "+": 8, "-": 8,
}


class SpinMissing(AioError):
    """spin (or a C compiler for pan.c) is not installed."""


def _var(field: str) -> str:
    if field == "bh_scheduled":
        return "bh"
    if field in ("notify_me", "notified"):
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

    def expr(self, e, hook, parent=0):
        if isinstance(e, _ir.Const):
            return _const(e.value)
        if isinstance(e, _ir.Tmp):
            return f"{hook}_{e.name}"
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
            self.emit(depth, f"zero_timeout = ({ex(s.value)} != 0);")
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
    for s in _ir.walk(ir.hooks.get(hook, ())):
        d = getattr(s, "dst", None)
        if d:
            out.add(f"{hook}_{d}")
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
        if h == "timeout_zero" and not ir.has_timeout_zero:
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
        "int bh;               /* the bottom half's scheduled flag */",
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

    poll_hooks = ["poll_begin", "poll_end", "prepare", "check", "on_event", "accept"]
    if ir.has_timeout_zero:
        poll_hooks.append("timeout_zero")
    poller_tmps = set()
    for h in poll_hooks:
        poller_tmps |= _tmps(ir, h)
    notifier_tmps = _tmps(ir, "schedule")

    def decls(tmps):
        return [f"    int {t};" for t in sorted(tmps)]

    tz = ["    strategy_timeout_zero();"] if ir.has_timeout_zero else ["    zero_timeout = 0;"]
    L += [
        "/* aio_compute_timeout: zero if the strategy says so, else if the BH is pending. */",
        "inline compute_timeout()",
        "{",
        *tz,
        "    if",
        "    :: !zero_timeout && bh -> zero_timeout = 1",
        "    :: else -> skip",
        "    fi",
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
        "/* aio_dispatch: claim the BH (xchg), then the notifier's fd handler if",
        " * the notifier was readable at the wait. */",
        "inline dispatch()",
        "{",
        "    atomic {",
        "        if",
        "        :: bh -> bh = 0   /* claimed: its callback runs once */",
        "        :: else -> skip",
        "        fi",
        "    }",
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
        "/* aio_context_notifier_poll: zero_timeout = timeout_zero(), else notified. */",
        "inline notifier_poll()",
        "{",
        *(["    strategy_timeout_zero()"] if ir.has_timeout_zero else ["    zero_timeout = (notified != 0)"]),
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
        "        if",
        "        :: !zero_timeout && bh -> zero_timeout = 1",
        "        :: else -> skip",
        "        fi",
        "    :: true -> break   /* poll_ns elapsed, or 0 */",
        "    od;",
        "    use_notify_me = !zero_timeout;",
        "    if",
        "    :: use_notify_me -> strategy_poll_begin(); notifier_poll()   /* the last look */",
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


# --- running spin ----------------------------------------------------------


@attrs.frozen
class ClaimResult:
    claim: str
    errors: int
    states: int
    seconds: float
    output: str


@attrs.frozen
class SpinVerdict:
    """spin's verdict on a model: pass, lost-wakeup or busy-loop."""

    verdict: str
    claims: dict  # claim name -> ClaimResult
    defines: tuple = ()

    @property
    def states(self) -> int:
        return max((c.states for c in self.claims.values()), default=0)


def have_spin() -> bool:
    return shutil.which("spin") is not None and (shutil.which("gcc") or shutil.which("cc")) is not None


def _run(cmd, cwd, timeout):
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AioError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s") from None
    return p


def parse_pan(output: str) -> tuple[int, int]:
    """(errors, states stored) from pan's report."""
    m = re.search(r"errors:\s*(\d+)", output)
    if not m:
        raise AioError(f"cannot read pan's verdict (no 'errors:' line):\n{output[-2000:]}")
    st = re.search(r"(\d+(?:\.\d+)?(?:e\+\d+)?)\s+states, stored", output)
    states = int(float(st.group(1))) if st else 0
    return int(m.group(1)), states


def run_spin(
    model_text: str,
    *,
    config: str = "home",
    defines=(),
    claims=CLAIMS,
    timeout: float = 120.0,
    keep: str | None = None,
    optimize: bool = False,
) -> SpinVerdict:
    """Run spin on a model generated by generate_promela (or any model with
    never claims named lost_wakeup / busy_loop) and give the verdict.

    config: home, foreign or gsource (adds -DFOREIGN / -DGSOURCE);
    defines: more -D options for spin -a (e.g. "-DNOTIFIERS=2").
    pan.c is compiled with -O0 (four times faster to build than -O2, and
    these models have at most ~10^5 states); pass optimize=True for -O2
    when measuring spin's speed.
    Raises SpinMissing if spin or a C compiler is missing, AioError if spin
    rejects the model or pan does not finish within `timeout` seconds."""
    if not have_spin():
        raise SpinMissing("spin not installed (Debian: apt-get install spin), or no C compiler")
    if config not in _CONFIG_DEFINES:
        raise ValueError(f"unknown config {config!r} (configs: {', '.join(_CONFIG_DEFINES)})")
    defs = tuple(_CONFIG_DEFINES[config]) + tuple(defines)
    d = keep or tempfile.mkdtemp(prefix="aiocore-spin-")
    try:
        path = os.path.join(d, "model.pml")
        with open(path, "w") as f:
            f.write(model_text)
        p = _run(["spin", "-a", *defs, "model.pml"], d, timeout)
        if p.returncode != 0 or not os.path.exists(os.path.join(d, "pan.c")):
            raise AioError(f"spin -a rejected the model:\n{(p.stdout + p.stderr)[-3000:]}")
        cc = shutil.which("gcc") or shutil.which("cc")
        p = _run([cc, "-O2" if optimize else "-O0", "-DNFAIR=3", "-DVECTORSZ=4096", "-o", "pan", "pan.c"], d, timeout)
        if p.returncode != 0:
            raise AioError(f"pan.c does not compile:\n{(p.stdout + p.stderr)[-3000:]}")
        results = {}
        verdict = "pass"
        for claim in claims:
            t0 = time.monotonic()
            p = _run(["./pan", "-a", "-f", "-m1000000", "-N", claim], d, timeout)
            out = p.stdout + p.stderr
            errors, states = parse_pan(out)
            results[claim] = ClaimResult(claim, errors, states, time.monotonic() - t0, out)
            if errors and verdict == "pass":
                verdict = _VERDICT_OF_CLAIM.get(claim, claim)
        return SpinVerdict(verdict, results, defs)
    finally:
        if keep is None:
            shutil.rmtree(d, ignore_errors=True)
