# Assembling one check: a strategy's IR and a configuration in, the Program
# of processes the Explorer runs out (home poller, notifiers, maybe a
# foreign poller, each an instruction list of _program.py built by the
# skeletons of _poller.py).
#
# Above _program (the instruction set and its builder) and _poller (the
# skeletons written with it): neither knows this module.
from __future__ import annotations

from .._compiler import _ir
from . import _poller
from ._contract import BH_MODES, CALLBACKS, BhLocs, bh_pending_fn
from ._program import (
    FAULTS, MODEL_CODES, SKELETONS, ModelError, Proc, Program, _Builder, _fold_stops, _loc_names,
    analyse,
)


def build(ir: _ir.StrategyIR, model: str, config: str, notifiers: int, schedules: int, *,
          skeleton: str = "2015", faults: str = "none", recovery: bool = False,
          bh_mode: str = "reuse", callback: str = "read") -> Program:
    """The processes of one check: home poller, notifiers, maybe a foreign poller.

    ``skeleton`` is the aio_poll the home poller runs ("2015" or "polling",
    aiocore._compiler._skeleton); ``faults="crash"`` lets every notifier (and the
    foreign poller) crash between any two primitives; ``recovery`` adds the
    owner's reaction to a death (see _poller.py); ``bh_mode`` and
    ``callback`` (BH_MODES, CALLBACKS) say how the BHs are scheduled and what
    their callbacks do."""
    if model not in MODEL_CODES:
        raise ModelError(f"unknown model {model!r} (models: {', '.join(MODEL_CODES)})")
    m = MODEL_CODES[model]
    if config not in ("home", "foreign", "gsource"):
        raise ModelError(f"unknown config {config!r}")
    if skeleton not in SKELETONS:
        raise ModelError(f"unknown skeleton {skeleton!r} (skeletons: {', '.join(SKELETONS)})")
    if faults not in FAULTS:
        raise ModelError(f"unknown faults {faults!r} (faults: {', '.join(FAULTS)})")
    if config == "foreign" and not ir.foreign_pollers:
        raise ModelError(f"{ir.name} does not allow foreign pollers")
    if config == "foreign" and skeleton == "polling":
        raise ModelError(
            "config foreign exists on the 2015 skeleton only: the polling skeleton is QEMU's "
            "aio_poll of today, which only the home thread may run (foreign pollers are gone "
            "since b37548fc, 2018, before polling mode's use_notify_me)")
    if bh_mode not in BH_MODES:
        raise ModelError(f"unknown bh mode {bh_mode!r} (modes: {', '.join(BH_MODES)})")
    if callback not in CALLBACKS:
        raise ModelError(f"unknown callback {callback!r} (callbacks: {', '.join(CALLBACKS)})")
    if recovery and faults != "crash":
        raise ModelError("recovery models the owner's reaction to a crash: it needs faults='crash'")
    if notifiers < 1 or schedules < 1:
        raise ModelError("need at least one notifier scheduling at least once")
    used = set()
    for body in ir.hooks.values():
        for s in _ir.walk(body):
            f = getattr(s, "field", None)
            if f:
                used.add(f)
    if skeleton == "polling" and not (ir.site("notifier_poll") and ir.site("last_look")):
        used.add("notified")  # aio_context_notifier_poll reads it
    if ir.has_list:
        used |= {"bh_list", "bh_next"}  # the core walks the list
    fields = [f for f in ir.fields if f in used and f not in _ir.BH_FIELDS]
    locs = {f: i for i, f in enumerate(fields)}
    bhs, nxt = [], len(fields)
    per = schedules if bh_mode == "oneshot" else 1  # BHs per notifier
    for k in range(notifiers * per):
        word, payload = nxt, nxt + 1
        link = nxt + 2 if "bh_next" in used else -1
        nxt += 3 if link >= 0 else 2
        bhs.append(BhLocs(word, link, k + 1, payload))
    bhs = tuple(bhs)
    bh_owner = tuple(1 + k // per for k in range(len(bhs)))
    bh_locs = tuple(b.word for b in bhs)
    names = _loc_names(locs, bhs, "flags" if "bh_flags" in used and "bh_scheduled" not in used
                       else "scheduled")
    procs = []
    crash = faults == "crash"

    def new(name, role):
        p = Proc(name, role)
        b = _Builder(p, ir, m, locs, bh_locs)
        b.bhs = bhs
        b._names = names
        b.crash_points = crash and role != "home"
        return p, b

    p, b = new("home", "home")
    b.callback = callback
    if config == "gsource":
        _poller.gsource_poller(b, ir, recovery)
    elif skeleton == "polling":
        _poller.polling_poller(b, ir, recovery)
    else:
        _poller.poller_2015(b, ir, foreign=False, recovery=recovery)
    procs.append(p)
    for k in range(notifiers):
        p, b = new(f"notifier{k}", "notifier")
        _poller.notifier(b, ir, bhs[k * per:(k + 1) * per], schedules, bh_mode == "oneshot")
        if crash:
            _poller.crash_tail(b, recovery)
        procs.append(p)
    if config == "foreign":
        p, b = new("foreign", "foreign")
        b.callback = callback
        _poller.poller_2015(b, ir, foreign=True, recovery=False)
        if crash:
            _poller.crash_tail(b, recovery)
        procs.append(p)
    for p in procs:
        for pc, ins in enumerate(p.code):
            if ins is None or not isinstance(ins[0], int):
                raise ModelError(f"internal: unpatched instruction at {p.name}:{pc}")
        _fold_stops(p, m)
        analyse(p, m)
    return Program(m, names, bh_locs, procs, config, ir.name, skeleton, faults, recovery,
                   tuple(b.payload for b in bhs), bhs, bh_owner, bh_mode, callback,
                   bh_pending_fn(ir, locs, bhs))
