"""The corpus programs the project writes itself: classic shapes with their
fence / acquire / release / RMW variants, coherence and RMW atomicity, and the
wake-up shapes of aio_notify / aio_poll / bh_schedule.

Each entry is (name, source, threads, regs, final): the outcome asked is the
registers ``regs`` and final memory ``final`` (usually the non-SC outcome).
build_corpus.py adds them to corpus.json with herd7's verdicts.
"""
from __future__ import annotations

CLASSIC = "classic shape (written for aiocore)"
WAKEUP = "wake-up shape (written for aiocore)"

# First access of a thread that stores 1 to loc: the store itself, or a seq_cst RMW doing it.
STORES = {
    "st": lambda x, r: [("st", x, 1)],
    "rel": lambda x, r: [("st_rel", x, 1)],
    "xchg": lambda x, r: [("xchg", x, 1, r)],
    "add": lambda x, r: [("add", x, 1)],
    "faddr": lambda x, r: [("fetch_add", x, 1, r)],
    "cas": lambda x, r: [("cmpxchg", x, 0, 1, r)],
    "or": lambda x, r: [("or", x, 1)],
}
# A read of loc into reg: plain, acquire, or an RMW that reads (fetch_or 0 leaves memory as it is).
LOADS = {
    "ld": lambda x, r: [("ld", x, r)],
    "acq": lambda x, r: [("ld_acq", x, r)],
    "forr": lambda x, r: [("fetch_or", x, 0, r)],
    "casfail": lambda x, r: [("cmpxchg", x, 7, 8, r)],  # never succeeds: a seq_cst read alone
}
LINKS = {"po": [], "mb": [("mb",)], "wmb": [("wmb",)], "rmb": [("rmb",)]}


def _sb():
    out = []
    # one side varies (store kind x link x load kind), the other side st; mb; ld
    for s in ("st", "rel", "xchg", "add", "faddr", "cas"):
        for link in ("po", "mb", "wmb", "rmb"):
            for ld in ("ld", "acq"):
                if link != "po" and ld == "acq":
                    continue
                t0 = STORES[s]("x", "a0") + LINKS[link] + LOADS[ld]("y", "r0")
                t1 = [("st", "y", 1), ("mb",), ("ld", "x", "r1")]
                out.append((f"SB+{s}-{link}-{ld}+mb", CLASSIC, [t0, t1], {"r0": 0, "r1": 0}, {}))
    # symmetric
    for s, link, ld in (("st", "po", "ld"), ("rel", "po", "acq"), ("xchg", "po", "ld"), ("add", "po", "ld"),
                        ("xchg", "mb", "ld"), ("st", "wmb", "ld"), ("st", "rmb", "ld"), ("cas", "po", "ld"),
                        ("st", "po", "forr"), ("rel", "po", "ld"), ("st", "po", "acq")):
        t0 = STORES[s]("x", "a0") + LINKS[link] + LOADS[ld]("y", "r0")
        t1 = STORES[s]("y", "a1") + LINKS[link] + LOADS[ld]("x", "r1")
        out.append((f"SB+{s}-{link}-{ld}s", CLASSIC, [t0, t1], {"r0": 0, "r1": 0}, {}))
    return out


def _mp():
    out = []
    writers = [("po", [("st", "d", 1), ("st", "f", 1)]), ("wmb", [("st", "d", 1), ("wmb",), ("st", "f", 1)]),
               ("mb", [("st", "d", 1), ("mb",), ("st", "f", 1)]), ("rel", [("st", "d", 1), ("st_rel", "f", 1)]),
               ("rmb", [("st", "d", 1), ("rmb",), ("st", "f", 1)]),
               ("xchg-st", [("xchg", "d", 1), ("st", "f", 1)]), ("st-xchg", [("st", "d", 1), ("xchg", "f", 1)]),
               ("add-st", [("add", "d", 1), ("st", "f", 1)])]
    readers = [("po", [("ld", "f", "r0"), ("ld", "d", "r1")]), ("rmb", [("ld", "f", "r0"), ("rmb",), ("ld", "d", "r1")]),
               ("acq", [("ld_acq", "f", "r0"), ("ld", "d", "r1")]), ("ctrl", [("ld", "f", "r0"), ("br", "r0"), ("ld", "d", "r1")]),
               ("mb", [("ld", "f", "r0"), ("mb",), ("ld", "d", "r1")]), ("wmb", [("ld", "f", "r0"), ("wmb",), ("ld", "d", "r1")]),
               ("forr", [("fetch_or", "f", 0, "r0"), ("ld", "d", "r1")])]
    for wn, w in writers:
        for rn, r in readers:
            if wn not in ("po", "wmb", "rel") and rn not in ("po", "rmb"):
                continue
            out.append((f"MP+{wn}+{rn}", CLASSIC, [w, r], {"r0": 1, "r1": 0}, {}))
    return out


def _lb():
    out = []
    links = {"po": lambda x, r: [], "mb": lambda x, r: [("mb",)], "rmb": lambda x, r: [("rmb",)],
             "wmb": lambda x, r: [("wmb",)], "ctrl": lambda x, r: [("br", r)]}
    for name, l0, l1, ld, st in (("po", "po", "po", "ld", "st"), ("ctrls", "ctrl", "ctrl", "ld", "st"),
                                 ("mb+po", "mb", "po", "ld", "st"), ("rmbs", "rmb", "rmb", "ld", "st"),
                                 ("wmbs", "wmb", "wmb", "ld", "st"), ("ctrl+po", "ctrl", "po", "ld", "st"),
                                 ("acqs", "po", "po", "acq", "st"), ("rels", "po", "po", "ld", "rel"),
                                 ("xchgs", "po", "po", "ld", "xchg"), ("forrs", "po", "po", "forr", "st"),
                                 ("ctrl+mb", "ctrl", "mb", "ld", "st")):
        t0 = LOADS[ld]("x", "r0") + links[l0]("x", "r0") + STORES[st]("y", "a0")
        t1 = LOADS[ld]("y", "r1") + links[l1]("y", "r1") + STORES[st]("x", "a1")
        out.append((f"LB+{name}", CLASSIC, [t0, t1], {"r0": 1, "r1": 1}, {}))
    return out


def _others():
    o = []
    a = o.append
    for n, l0, l1 in (("po", [], []), ("mbs", [("mb",)], [("mb",)]), ("wmbs", [("wmb",)], [("wmb",)])):
        a((f"2+2W+{n}", CLASSIC, [[("st", "x", 1)] + l0 + [("st", "y", 2)], [("st", "y", 1)] + l1 + [("st", "x", 2)]],
           {}, {"x": 1, "y": 1}))
    a(("2+2W+rels", CLASSIC, [[("st", "x", 1), ("st_rel", "y", 2)], [("st", "y", 1), ("st_rel", "x", 2)]], {}, {"x": 1, "y": 1}))
    a(("2+2W+xchgs", CLASSIC, [[("xchg", "x", 1), ("st", "y", 2)], [("xchg", "y", 1), ("st", "x", 2)]], {}, {"x": 1, "y": 1}))
    for n, w, r in (("po", [], []), ("mbs", [("mb",)], [("mb",)]), ("rel+mb", "rel", [("mb",)]),
                    ("xchg+mb", "xchg", [("mb",)]), ("wmb+mb", [("wmb",)], [("mb",)])):
        t0 = [("st", "x", 1)] + (w if isinstance(w, list) else []) + (
            [("st_rel", "y", 1)] if w == "rel" else [("xchg", "y", 1)] if w == "xchg" else [("st", "y", 1)])
        a((f"R+{n}", CLASSIC, [t0, [("st", "y", 2)] + r + [("ld", "x", "r0")]], {"r0": 0}, {"y": 2}))
        t1 = [("ld", "y", "r0")] + r + [("st", "x", 1)]
        a((f"S+{n}", CLASSIC, [[("st", "x", 2)] + t0[1:], t1], {"r0": 1}, {"x": 2}))
    a(("S+wmb+ctrl", CLASSIC, [[("st", "x", 2), ("wmb",), ("st", "y", 1)], [("ld", "y", "r0"), ("br", "r0"), ("st", "x", 1)]],
       {"r0": 1}, {"x": 2}))
    for n, rd in (("po", []), ("rmbs", [("rmb",)]), ("mbs", [("mb",)])):
        a((f"IRIW+{n}", CLASSIC, [[("st", "x", 1)], [("ld", "x", "r0")] + rd + [("ld", "y", "r1")], [("st", "y", 1)],
                                  [("ld", "y", "r2")] + rd + [("ld", "x", "r3")]], {"r0": 1, "r1": 0, "r2": 1, "r3": 0}, {}))
    a(("IRIW+acqs", CLASSIC, [[("st", "x", 1)], [("ld_acq", "x", "r0"), ("ld", "y", "r1")], [("st", "y", 1)],
                              [("ld_acq", "y", "r2"), ("ld", "x", "r3")]], {"r0": 1, "r1": 0, "r2": 1, "r3": 0}, {}))
    for n, l1, l2 in (("po", [], []), ("mb+rmb", [("mb",)], [("rmb",)]), ("ctrl+rmb", "ctrl", [("rmb",)]),
                      ("rel+acq", "rel", "acq")):
        t1 = [("ld_acq" if l1 == "rel" else "ld", "x", "r0")] + (l1 if isinstance(l1, list) else [("br", "r0")] if l1 == "ctrl" else []) + [
            ("st_rel" if l1 == "rel" else "st", "y", 1)]
        t2 = [("ld_acq" if l2 == "acq" else "ld", "y", "r1")] + (l2 if isinstance(l2, list) else []) + [("ld", "x", "r2")]
        a((f"WRC+{n}", CLASSIC, [[("st", "x", 1)], t1, t2], {"r0": 1, "r1": 1, "r2": 0}, {}))
    for n, l0, l1, l2 in (("po", [], [], []), ("mbs", [("mb",)], [("mb",)], [("mb",)]),
                          ("wmb+ctrl+rmb", [("wmb",)], "ctrl", [("rmb",)])):
        t0 = [("st", "x", 1)] + l0 + [("st", "y", 1)]
        t1 = [("ld", "y", "r0")] + (l1 if isinstance(l1, list) else [("br", "r0")]) + [("st", "z", 1)]
        t2 = [("ld", "z", "r1")] + l2 + [("ld", "x", "r2")]
        a((f"ISA2+{n}", CLASSIC, [t0, t1, t2], {"r0": 1, "r1": 1, "r2": 0}, {}))
    a(("ISA2+rel+acq-rel+acq", CLASSIC, [[("st", "x", 1), ("st_rel", "y", 1)], [("ld_acq", "y", "r0"), ("st_rel", "z", 1)],
                                         [("ld_acq", "z", "r1"), ("ld", "x", "r2")]], {"r0": 1, "r1": 1, "r2": 0}, {}))
    for n, l1, l2 in (("po", [], []), ("mbs", [("mb",)], [("mb",)]), ("rmb+mb", [("rmb",)], [("mb",)])):
        a((f"RWC+{n}", CLASSIC, [[("st", "x", 1)], [("ld", "x", "r0")] + l1 + [("ld", "y", "r1")],
                                 [("st", "y", 1)] + l2 + [("ld", "x", "r2")]], {"r0": 1, "r1": 0, "r2": 0}, {}))
    a(("RWC+xchg-ld", CLASSIC, [[("st", "x", 1)], [("ld", "x", "r0"), ("mb",), ("ld", "y", "r1")],
                                [("xchg", "y", 1), ("ld", "x", "r2")]], {"r0": 1, "r1": 0, "r2": 0}, {}))
    return o


def _coherence():
    o = []
    a = o.append
    a(("CoRR", CLASSIC, [[("st", "x", 1)], [("ld", "x", "r0"), ("ld", "x", "r1")]], {"r0": 1, "r1": 0}, {}))
    a(("CoRR2", CLASSIC, [[("st", "x", 1)], [("st", "x", 2)], [("ld", "x", "r0"), ("ld", "x", "r1")],
                          [("ld", "x", "r2"), ("ld", "x", "r3")]], {"r0": 1, "r1": 2, "r2": 2, "r3": 1}, {}))
    a(("CoWW", CLASSIC, [[("st", "x", 1), ("st", "x", 2)]], {}, {"x": 1}))
    a(("CoRW1", CLASSIC, [[("ld", "x", "r0"), ("st", "x", 1)]], {"r0": 1}, {}))
    a(("CoRW2", CLASSIC, [[("ld", "x", "r0"), ("st", "x", 1)], [("st", "x", 2)]], {"r0": 2}, {"x": 2}))
    a(("CoWR", CLASSIC, [[("st", "x", 1), ("ld", "x", "r0")], [("st", "x", 2)]], {"r0": 2}, {"x": 1}))
    a(("CoWR0", CLASSIC, [[("st", "x", 1), ("ld", "x", "r0")]], {"r0": 0}, {}))
    a(("CoRR+acq", CLASSIC, [[("st", "x", 1)], [("ld_acq", "x", "r0"), ("ld", "x", "r1")]], {"r0": 1, "r1": 0}, {}))
    a(("CoRW+rmw", CLASSIC, [[("fetch_add", "x", 1, "r0")], [("st", "x", 5)]], {"r0": 5}, {"x": 5}))
    a(("CoWR+rmw", CLASSIC, [[("xchg", "x", 1), ("ld", "x", "r0")], [("st", "x", 2)]], {"r0": 2}, {"x": 1}))
    return o


def _atomicity():
    o = []
    a = o.append
    a(("RMW-atomic+adds", CLASSIC, [[("add", "x", 1)], [("add", "x", 1)]], {}, {"x": 1}))
    a(("RMW-atomic+fetch_adds", CLASSIC, [[("fetch_add", "x", 1, "r0")], [("fetch_add", "x", 1, "r1")]], {"r0": 0, "r1": 0}, {}))
    a(("RMW-atomic+xchgs", CLASSIC, [[("xchg", "x", 1, "r0")], [("xchg", "x", 2, "r1")]], {"r0": 0, "r1": 0}, {}))
    a(("RMW-atomic+xchg+st", CLASSIC, [[("xchg", "x", 1, "r0")], [("st", "x", 2)]], {"r0": 0}, {"x": 1}))
    a(("RMW-atomic+cass", CLASSIC, [[("cmpxchg", "x", 0, 1, "r0")], [("cmpxchg", "x", 0, 2, "r1")]], {"r0": 0, "r1": 0}, {}))
    a(("RMW-atomic+or+and", CLASSIC, [[("fetch_or", "x", 1, "r0")], [("fetch_and", "x", 2, "r1")], [("st", "x", 3)]],
       {"r0": 3, "r1": 3}, {"x": 2}))
    a(("RMW-atomic+sub+add", CLASSIC, [[("sub", "x", 2)], [("fetch_add", "x", 2, "r0")]], {"r0": 0}, {"x": 2}))
    a(("RMW-wrap+sub", CLASSIC, [[("fetch_sub", "x", 1, "r0")], [("ld", "x", "r1")]], {"r1": 0xFFFFFFFF}, {}))
    a(("RMW-and-or", CLASSIC, [[("or", "x", 6), ("fetch_and", "x", 3, "r0")], [("ld", "x", "r1")]], {"r0": 6, "r1": 2}, {}))
    a(("CAS-ok-then-fail", CLASSIC, [[("cmpxchg", "x", 0, 1, "r0"), ("cmpxchg", "x", 0, 2, "r1")]], {"r0": 0, "r1": 1}, {"x": 1}))
    return o


def _wakeup():
    """aio_poll's poll_begin (notify_me += 2) against aio_notify / bh_schedule, and their fixes."""
    o = []
    a = o.append
    poller = {
        "add-ld": [("add", "notify_me", 2), ("ld", "bh", "r0")],                       # 2015-2020: the 1805256 hang
        "add-mb-ld": [("add", "notify_me", 2), ("mb",), ("ld", "bh", "r0")],          # 5710a3e0
        "st-mb-ld": [("st", "notify_me", 2), ("mb",), ("ld", "bh", "r0")],            # plain store + smp_mb
        "st-ld": [("st", "notify_me", 2), ("ld", "bh", "r0")],                        # no-mb
        "rel-acq": [("st_rel", "notify_me", 2), ("ld_acq", "bh", "r0")],              # release store, acquire load
        "faddr-ld": [("fetch_add", "notify_me", 2, "n0"), ("ld", "bh", "r0")],
        "xchg-ld": [("xchg", "notify_me", 2), ("ld", "bh", "r0")],
        "cas-ld": [("cmpxchg", "notify_me", 0, 2), ("ld", "bh", "r0")],
        "or-ld": [("or", "notify_me", 2), ("ld", "bh", "r0")],
        "add-acq": [("add", "notify_me", 2), ("ld_acq", "bh", "r0")],
        "add-wmb-ld": [("add", "notify_me", 2), ("wmb",), ("ld", "bh", "r0")],
        "add-rmb-ld": [("add", "notify_me", 2), ("rmb",), ("ld", "bh", "r0")],
    }
    notifier = {
        "xchg-mb-ld": [("xchg", "bh", 1, "s0"), ("mb",), ("ld", "notify_me", "r1")],   # bh_schedule; aio_notify
        "st-mb-ld": [("st", "bh", 1), ("mb",), ("ld", "notify_me", "r1")],
        "xchg-ld": [("xchg", "bh", 1, "s0"), ("ld", "notify_me", "r1")],              # aio_notify without smp_mb
        "xchg-br-mb-ld": [("xchg", "bh", 1, "s0"), ("br", "s0"), ("mb",), ("ld", "notify_me", "r1")],
    }
    for pn, p in poller.items():
        for nn in (("xchg-mb-ld", "xchg-ld") if pn in ("add-ld", "st-mb-ld", "add-mb-ld", "rel-acq") else ("xchg-mb-ld",)):
            a((f"WAKE+{pn}+{nn}", WAKEUP, [p, notifier[nn]], {"r0": 0, "r1": 0}, {}))
    a(("WAKE+add-ld+st-mb-ld", WAKEUP, [poller["add-ld"], notifier["st-mb-ld"]], {"r0": 0, "r1": 0}, {}))
    a(("WAKE+add-ld+xchg-br-mb-ld", WAKEUP, [poller["add-ld"], notifier["xchg-br-mb-ld"]], {"r0": 0, "r1": 0}, {}))
    # poll_end: notify_me -= 2 then accept: atomic_xchg(notified, 0) vs aio_notify's atomic_mb_set(notified, 1)
    a(("WAKE+sub-xchg+mbset", WAKEUP, [[("sub", "notify_me", 2), ("xchg", "notified", 0, "r0")],
                                       [("ld", "notify_me", "r1"), ("wmb",), ("st", "notified", 1), ("mb",)]],
       {"r0": 0, "r1": 0}, {"notified": 1}))
    # RMW then a plain store (the store may pass the LL/SC RMW's store): MP with an RMW as the first write
    for w in ("add", "xchg", "faddr", "cas"):
        a((f"WAKE+{w}-st+rmb", WAKEUP, [STORES[w]("notify_me", "a0") + [("st", "flag", 1)],
                                        [("ld", "flag", "r0"), ("rmb",), ("ld", "notify_me", "r1")]], {"r0": 1, "r1": 0}, {}))
    a(("WAKE+add-st+acq", WAKEUP, [[("add", "notify_me", 2), ("st", "flag", 1)],
                                   [("ld_acq", "flag", "r0"), ("ld", "notify_me", "r1")]], {"r0": 1, "r1": 0}, {}))
    # atomic_mb_set(notified, 1) = smp_wmb; atomic_set; smp_mb -- against accept's xchg
    a(("WAKE+mbset+xchg", WAKEUP, [[("st", "event", 1), ("wmb",), ("st", "notified", 1), ("mb",), ("ld", "notify_me", "r0")],
                                   [("st", "notify_me", 2), ("xchg", "notified", 0, "r1"), ("ld", "event", "r2")]],
       {"r0": 0, "r1": 1, "r2": 0}, {}))
    # bh_schedule's 0->1 claim against dispatch's claim
    a(("WAKE+claim", WAKEUP, [[("xchg", "bh", 1, "r0"), ("ld", "notify_me", "r1")],
                              [("ld", "bh", "r2"), ("br", "r2"), ("xchg", "bh", 0, "r3")]], {"r0": 0, "r2": 1, "r3": 0}, {}))
    # the GSource prepare/check path: notify_me |= 1 ... &= ~1
    a(("WAKE+or-and", WAKEUP, [[("or", "notify_me", 1), ("ld", "bh", "r0"), ("and", "notify_me", 2)],
                               [("st", "bh", 1), ("mb",), ("ld", "notify_me", "r1")]], {"r0": 0, "r1": 0}, {}))
    return o


def programs():
    """Every project-written corpus entry."""
    return _sb() + _mp() + _lb() + _others() + _coherence() + _atomicity() + _wakeup()
