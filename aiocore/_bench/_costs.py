# The machine, and what a strategy costs by construction: fences and locked
# ops counted from its description (per path), and the same counted in its
# compiled code (objdump), so the bench can say the two agree.
from __future__ import annotations

import asyncio
import gc
import itertools
import mmap
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter

from .._compiler import _ir


from ._base import *  # noqa: F401,F403

# --- the machine ----------------------------------------------------------------


def machine_info() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cc = "?"
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True, timeout=5).stdout.splitlines()[0]
    except Exception:
        pass
    hyp = "?"
    try:
        with open("/proc/cpuinfo") as f:
            hyp = "hypervisor" if " hypervisor" in f.read() else "bare metal"
    except OSError:
        pass
    return dict(
        cpu=cpu,
        cpus=os.cpu_count(),
        virtualization=hyp,
        arch=platform.machine(),
        kernel=platform.release(),
        python=platform.python_version(),
        compiler=cc,
        loadavg_start=list(os.getloadavg()),
    )


# --- fences and locked ops: from the description, and from the compiled code --------


def _x86_costs(ir, hook, reads, clear_result=0, counts=None, env=None, depth=0):
    """Walk one path of a hook (values read come from `reads`, by field) and
    count what it costs on x86: full fences (smp_mb, the smp_mb of
    atomic_mb_set), locked RMWs, compiler-only barriers (smp_wmb/smp_rmb),
    event_set and event_test_and_clear (system calls)."""
    counts = Counter() if counts is None else counts
    env = {} if env is None else env
    if depth > 8:
        return counts
    body = ir.hooks.get(hook, ())
    if hook == "schedule" and not body and ir.schedule_is_default:
        counts["locked"] += 1
        if not reads.get("bh_scheduled", 0):
            _x86_costs(ir, "notify", reads, clear_result, counts, env, depth + 1)
        return counts

    def run(stmts):
        for s in stmts:
            if isinstance(s, _ir.Read):
                env[s.dst] = reads.get(s.field, 0)
            elif isinstance(s, _ir.Write):
                pass
            elif isinstance(s, _ir.Rmw):
                counts["locked"] += 1
                if s.dst:
                    env[s.dst] = reads.get(s.field, 0)
            elif isinstance(s, _ir.Fence):
                counts["fences" if s.kind == "smp_mb" else "compiler_barriers"] += 1
            elif isinstance(s, _ir.MbSet):
                counts["fences"] += 1
                counts["compiler_barriers"] += 1
            elif isinstance(s, _ir.EventSet):
                counts["event_set"] += 1
            elif isinstance(s, _ir.EventTestAndClear):
                counts["event_clear"] += 1
                if s.dst:
                    env[s.dst] = clear_result
            elif isinstance(s, _ir.Call):
                _x86_costs(ir, s.hook, reads, clear_result, counts, env, depth + 1)
            elif isinstance(s, _ir.If):
                if _ir.eval_expr(s.cond, env):
                    if run(s.then):
                        return True
                elif run(s.orelse):
                    return True
            elif isinstance(s, _ir.Return):
                return True
        return False

    run(body)
    return counts


def _static_costs(ir, hook, depth=0):
    """Every statement of a hook, both sides of every branch (what the
    compiled code of the hook contains, before instrumentation)."""
    c = Counter()
    if depth > 8:
        return c
    body = ir.hooks.get(hook, ())
    if hook == "schedule" and not body and ir.schedule_is_default:
        c["locked"] += 1
        c.update(_static_costs(ir, "notify", depth + 1))
        return c
    for s in _ir.walk(body):
        if isinstance(s, _ir.Rmw):
            c["locked"] += 1
        elif isinstance(s, _ir.Fence):
            c["fences" if s.kind == "smp_mb" else "compiler_barriers"] += 1
        elif isinstance(s, _ir.MbSet):
            c["fences"] += 1
        elif isinstance(s, _ir.EventSet):
            c["event_set"] += 1
        elif isinstance(s, _ir.EventTestAndClear):
            c["event_clear"] += 1
        elif isinstance(s, _ir.Call):
            c.update(_static_costs(ir, s.hook, depth + 1))
    return c


HOOKS_DISASSEMBLED = ("notify", "accept", "poll_begin", "poll_end", "schedule")


def expected_compiled(ir, hook) -> dict:
    """What the disassembly of aio_bench_hook_<hook> must contain: the
    description's fences and locked ops, plus the core's instrumentation --
    one relaxed counter increment (`lock add`) per event_set, two per
    event_test_and_clear (calls, clears), one per schedule (aio_bh_note)."""
    c = _static_costs(ir, hook)
    locked = c["locked"] + c["event_set"] + 2 * c["event_clear"] + (1 if hook == "schedule" else 0)
    return dict(fences=c["fences"], locked=locked)


_LOCK_FENCE = re.compile(r"\block\s+or[bwlq]?\s+\$0x0,\(%[re]sp\)")


def _so_of(lib) -> str | None:
    for name, m in list(sys.modules.items()):
        if not (name == "aiocore._core" or name.startswith(("aiocore._s_", "_aiocore_s_"))):
            continue
        if getattr(m, "lib", None) is lib and str(getattr(m, "__file__", "")).endswith(".so"):
            return m.__file__
    return None


def _functions(asm: str) -> dict:
    """objdump -d text -> {function name: [instruction text, ...]}."""
    funcs, cur = {}, None
    for line in asm.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is not None and "\t" in line:
            cur.append(line.split("\t", 1)[1].strip())
        elif not line.strip():
            cur = None
    return funcs


def _closure_counts(funcs, root) -> dict:
    """Fences and locked ops in a function and in the local functions it
    calls or jumps to (gcc outlines cold paths: strategy_notify.part.0,
    event_notifier_test_and_clear.isra.0), each counted once."""
    seen, todo = set(), [root]
    fences = locked = syscalls = 0
    while todo:
        f = todo.pop()
        if f in seen or f not in funcs:
            continue
        seen.add(f)
        for ins in funcs[f]:
            if "mfence" in ins or _LOCK_FENCE.search(ins):
                fences += 1
            elif re.match(r"lock\b", ins):
                locked += 1
            elif re.match(r"xchg[bwlq]?\s", ins) and "(" in ins:
                locked += 1
            m = re.match(r"(?:call|jmp)\w*\s+[0-9a-f]+ <([^>+@]+)(@plt)?>", ins)
            if m:
                if m.group(2):
                    syscalls += m.group(1) in ("write", "read", "ppoll")
                else:
                    todo.append(m.group(1))
    return dict(fences=fences, locked=locked)


def disassembled_counts(lib, hooks=HOOKS_DISASSEMBLED) -> dict | None:
    """Fences and locked instructions in the compiled hooks (x86-64 only):
    a fence is `mfence` or `lock or $0,(%rsp)` (gcc's smp_mb); a locked op
    is any other lock-prefixed instruction or an xchg with memory (implicitly
    locked).  None if objdump or the module file is missing."""
    so = _so_of(lib)
    if not so or not shutil.which("objdump") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        out = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", so], capture_output=True, text=True, timeout=60
        ).stdout
    except Exception:
        return None
    funcs = _functions(out)
    return {h: _closure_counts(funcs, f"aio_bench_hook_{h}") for h in hooks if f"aio_bench_hook_{h}" in funcs}


def protocol_costs(info) -> dict:
    """Per-path costs from the description (x86), and the compiled check."""
    ir = info.ir
    if ir is None:  # the hand-written reference: same protocol as unconditional
        from .._compiler._plugins import get

        ir = get("unconditional").ir
    idle = dict(notify_me=0, notified=0, bh_scheduled=0)
    notify = _x86_costs(ir, "notify", idle)
    sleeping = _x86_costs(ir, "notify", dict(notify_me=2, notified=0, bh_scheduled=0))
    sched = _x86_costs(ir, "schedule", idle)
    # A blocking aio_poll that finds work pending: poll_begin, the
    # timeout_zero hook (if any), no sleep, poll_end (accept inside), with
    # notified as the preceding schedule left it (nobody slept: for the
    # conditional strategies nothing set it; always-notified sets it always).
    after_sched = dict(notify_me=2, notified=1 if ir.name == "always-notified" else 0, bh_scheduled=1)
    poll = Counter()
    poll.update(_x86_costs(ir, "poll_begin", after_sched))
    if ir.has_timeout_zero:
        poll.update(_x86_costs(ir, "timeout_zero", after_sched))
    poll.update(_x86_costs(ir, "poll_end", after_sched, clear_result=0))
    per_dispatch = Counter(sched)
    per_dispatch.update(poll)

    def pick(c):
        return dict(
            fences=c["fences"], locked=c["locked"], compiler_barriers=c["compiler_barriers"],
            event_set=c["event_set"], event_clear=c["event_clear"],
        )

    return dict(
        notify_idle=pick(notify),
        notify_sleeping=pick(sleeping),
        schedule_idle=pick(sched),
        poll_round=pick(poll),
        per_dispatch=pick(per_dispatch),
        ir_name=ir.name,
    )


def compiled_check(info, lib) -> dict:
    ir = info.ir
    if ir is None:
        from .._compiler._plugins import get

        ir = get("unconditional").ir
    got = disassembled_counts(lib)
    exp = {h: expected_compiled(ir, h) for h in HOOKS_DISASSEMBLED}
    if got is None:
        return dict(checked=False, expected=exp, compiled=None, match=None)
    return dict(checked=True, expected=exp, compiled=got, match=all(got.get(h) == exp[h] for h in exp))
