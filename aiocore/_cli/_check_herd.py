# `aiocore check --herd DIR`: each counterexample of an ARM run as a herd7
# AArch64 litmus test (aiocore._checker._export makes the program; the runs
# keep it in CheckResult.litmus, made in the worker that ran them).
from __future__ import annotations

#: The models whose counterexamples --herd writes.
ARM_MODELS = ("arm", "arm-llsc", "arm-lse")


def herd_dir(args, err):
    """--herd's directory, made if need be; None after an error."""
    import os

    if not any(m in ARM_MODELS for m in args.model):
        err(f"aiocore check: --herd writes the counterexamples of ARM runs as herd7 AArch64 tests, "
            f"and --model {','.join(args.model)} has none: add arm, arm-llsc or arm-lse")
        return None
    try:
        os.makedirs(args.herd, exist_ok=True)
    except OSError as e:
        err(f"aiocore check: --herd {args.herd}: cannot make that directory ({e.strerror or e})")
        return None
    if not os.access(args.herd, os.W_OK):
        err(f"aiocore check: --herd {args.herd}: not writable")
        return None
    return args.herd


def write_herd(rows, directory) -> list:
    """Write the litmus test of every ARM counterexample of the rows:
    [(row, profile, file name or "" where the run kept none, [its parts' file names])].

    A counterexample too large for herd7 to decide in reasonable time
    (aiocore._checker._export.LitmusExport.parts) is also written in parts,
    <stem>.part1.litmus, ...: if herd7 allows every part, it allows the
    whole (the module comment of _export says why)."""
    import os
    import re

    out = []
    for r in rows:
        res = r.result
        if res is None or r.model not in ARM_MODELS or res.verdict in ("pass", "unknown"):
            continue
        for profile in (res.profiles if r.model == "arm" else (r.model,)):
            x = res.litmus.get(profile)
            if x is None or isinstance(x, str):
                out.append((r, profile, "", []))
                continue
            stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{r.info.name}-{r.skeleton}-{r.config}-{profile}")
            path = os.path.join(directory, stem + ".litmus")
            comment = (f"aiocore check {r.info.name} --skeleton {r.skeleton} --config {r.config} "
                       f"--model {profile} --notifiers {res.notifiers} --schedules {res.schedules}: "
                       f"{res.verdict}")
            n = len(x.parts)
            with open(path, "w") as f:
                f.write(x.herd_text(stem, comment + (
                    f"; too large for herd7 to decide quickly (10^{x.candidates:.0f} rf candidates): "
                    f"also written in {n} parts, {stem}.part1.litmus to .part{n}.litmus; the whole is "
                    f"allowed if every part is (aiocore/_checker/_export.py)" if n else "")))
            parts = []
            for k, part in enumerate(x.parts, 1):
                pstem = f"{stem}.part{k}"
                parts.append(os.path.join(directory, pstem + ".litmus"))
                where = ("from its start to the first cut" if k == 1 else
                         f"from cut {k - 1}, starting from the memory part {k - 1} left,"
                         + (" to the end" if k == n else f" to cut {k}"))
                with open(parts[-1], "w") as f:
                    f.write(part.herd_text(pstem, f"part {k} of {n} of {stem}.litmus ({comment}): its "
                                                  f"accesses {where} (a cut: every window empty)"))
            out.append((r, profile, path, parts))
    return out


def herd_lines(written, directory) -> list:
    """What --herd says it did."""
    import os

    files = [f for _, _, f, _ in written if f]
    lines = [f"herd7 tests of the ARM counterexamples: {len(files)} written to {directory} "
             f"(check one with: herd7 -model aarch64.cat FILE)"]
    for r, profile, f, parts in written:
        if not f:
            why = r.result.litmus.get(profile) or "no counterexample was kept"
            lines.append(f"  {r.info.name} {r.skeleton} {r.config} {profile}: no test ({why})")
        elif parts:
            lines.append(f"  {os.path.basename(f)}: too large for herd7 to decide quickly; also in "
                         f"{len(parts)} parts (.part1 to .part{len(parts)}); the whole is allowed if "
                         f"every part is")
    return lines
