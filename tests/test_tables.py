# Every table the CLI prints, at 80 columns and in a pipe (issue 13, item 3).
#
# Each command runs as a user runs `aiocore ... | cat` in an 80-column
# terminal: a subprocess whose stdout is a pipe, COLUMNS=80, no terminal on
# any standard stream.  Two things are checked on what it prints:
#
# - no line is wider than 80 columns (a wider line wraps in the terminal and
#   breaks the table);
# - every strategy name, and every verdict, appears whole, on the same line
#   as the name of its row (key columns never wrap, so a row's first line
#   has them all; a table printed in parts repeats the name in each part).
#
# The expected cells come from the same command's --json (or from the
# registry), never from the table itself.  A command whose owner has not
# moved its tables to aiocore._cli._tables yet fails here, saying which lines are
# too wide or which cell was cut.  The last tests check _tables.Table on its
# own, with random tables at random widths.
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

WIDTH = 80


def _cli(*args, timeout=300, cwd=None):
    env = dict(os.environ, COLUMNS=str(WIDTH), PYTHONUNBUFFERED="1")
    env.pop("LINES", None)
    return subprocess.run(
        [sys.executable, "-m", "aiocore._cli", *args], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd,
    )


def _cell_len(s: str) -> int:
    from rich.cells import cell_len

    return cell_len(s)


def _whole(word: str) -> re.Pattern:
    """`word` not glued to more of a name: 'notified' is not in 'notified-blocking'."""
    return re.compile(r"(?<![\w\-\[])" + re.escape(word) + r"(?![\w\-\]…])")


def check_80(out: str, rows: dict[str, list[str]], what: str) -> None:
    """No line over WIDTH; for each row name, a line with the name whole and,
    for each of its cells, a line with the name and that cell whole."""
    wide = [ln for ln in out.splitlines() if _cell_len(ln.rstrip()) > WIDTH]
    assert not wide, (
        f"{what}: {len(wide)} lines wider than {WIDTH} columns (the owner should print "
        f"through aiocore._cli._tables.Table on a Console of the real width), e.g.:\n"
        + "\n".join(wide[:3])
    )
    cut = [ln for ln in out.splitlines() if "…" in ln and ln.lstrip()[:1] in "│┃"]
    assert not cut, f"{what}: cells cut with an ellipsis at {WIDTH} columns:\n" + "\n".join(cut[:5])
    lines = out.splitlines()
    for name, cells in rows.items():
        named = [ln for ln in lines if _whole(name).search(ln)]
        assert named, f"{what}: {name!r} never appears whole at {WIDTH} columns:\n{out}"
        for c in cells:
            assert any(_whole(c).search(ln) for ln in named), (
                f"{what}: no line has {name!r} with {c!r} whole at {WIDTH} columns:\n{out}"
            )


# -- aiocore strategies --------------------------------------------------------


def test_strategies_table_at_80_columns():
    j = _cli("strategies", "--json")
    assert j.returncode == 0, j.stderr
    infos = json.loads(j.stdout)
    assert len(infos) >= 11
    # --json is unchanged by the table work
    for r in infos:
        assert set(r) == {"name", "origin", "source", "status", "expected", "expected_configs",
                          "foreign_pollers", "fingerprint", "skeletons", "expected_skeletons",
                          "verdicts"}, sorted(r)
    p = _cli("strategies")
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: [r["expected"][m] for m in ("sc", "tso", "arm") if m in r["expected"]]
            for r in infos if r["status"] == "ok"}
    check_80(p.stdout, rows, "aiocore strategies")


# -- aiocore check ---------------------------------------------------------------


CHECKED = ["notified-blocking", "always-notified", "late-clear"]


def test_check_tables_at_80_columns():
    args = ["check", *CHECKED, "--model", "sc,arm", "--config", "home"]
    j = _cli(*args, "--json")
    assert j.returncode == 0, j.stderr
    runs = json.loads(j.stdout)
    assert {r["strategy"] for r in runs} == set(CHECKED)
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    rows: dict = {}
    for r in runs:
        rows.setdefault(r["strategy"], []).extend([r["model"], r["verdict"]])
    check_80(p.stdout, rows, "aiocore check")


# -- aiocore info ----------------------------------------------------------------


def test_info_tables_at_80_columns():
    import aiocore

    with aiocore.AioContext.create(strategy="notified-blocking") as ctx:
        listing = _cli("info", timeout=60)
        one = _cli("info", ctx.name, timeout=60)
        js = _cli("info", ctx.name, "--json", timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert one.returncode == 0, one.stderr
    hdr = json.loads(js.stdout)["header"]
    name = ctx.name.lstrip("/")
    check_80(listing.stdout, {name: ["notified-blocking", hdr["state"]]}, "aiocore info")
    check_80(one.stdout, {"strategy": ["notified-blocking"], "fingerprint": [hdr["fingerprint"]],
                          "name": [name]},
             "aiocore info NAME")
    for counter in json.loads(js.stdout)["counters"]:
        assert _whole(counter).search(one.stdout), f"counter {counter!r} cut:\n{one.stdout}"


# -- aiocore stress --------------------------------------------------------------


STRESSED = ["notified-blocking", "unconditional-c", "always-notified"]
#: Words `aiocore stress` prints for a pair's outcome (the pair matrix's
#: verdict and "matches" columns, and the campaign's).
STRESS_VERDICTS = {"pass", "lost-wakeup", "busy-loop", "lost-work", "error", "caught", "FAIL",
                   "unexpected", "UNEXPECTED", "shortfall", "unknown", "yes", "not reproduced"}


@pytest.mark.stress
def test_stress_table_at_80_columns():
    """The campaign table and --detail's slices: every strategy and the traffic whole,
    no cell cut, an outcome word whole.  (Whether a row or a table title
    names the strategy is the command's choice.)"""
    args = ["stress", "-w", "ping-pong", "-d", "0.3", "--seed", "1", "--detail"]
    for s in STRESSED:
        args += ["-s", s]
    p = _cli(*args, timeout=180)
    assert p.returncode in (0, 1), p.stderr
    check_80(p.stdout, {s: [] for s in STRESSED} | {"ping-pong": []}, "aiocore stress")
    words = [v for v in STRESS_VERDICTS if _whole(v).search(p.stdout)]
    assert words, f"aiocore stress: no outcome word appears whole at {WIDTH} columns:\n{p.stdout}"


# -- aiocore bench --quick ---------------------------------------------------------


BENCHED = ["notified-blocking", "unconditional-c", "unconditional"]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    args = ["bench", "--quick", "--json"]
    for s in BENCHED:
        args += ["-s", s]
    p = _cli(*args, timeout=600)
    assert p.returncode == 0, p.stderr
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    path.write_text(p.stdout)
    return path


def test_bench_tables_at_80_columns(bench_json):
    """`aiocore bench --quick`'s tables, rendered from a saved result by the
    command's own rendering function, in a pipe at 80 columns."""
    code = ("import json, sys; from aiocore._cli._bench import render; "
            "render(json.load(open(sys.argv[1])))")
    env = dict(os.environ, COLUMNS=str(WIDTH))
    p = subprocess.run([sys.executable, "-c", code, str(bench_json)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(bench_json.read_text())
    assert set(BENCHED) <= set(res["strategies"])
    check_80(p.stdout, {s: [] for s in BENCHED}, "aiocore bench --quick")
    for t in res.get("targets", []):  # the targets table: every strategy named whole
        assert _whole(t["strategy"]).search(p.stdout), t


# -- _tables.Table itself ------------------------------------------------------------


def _render(t, width: int) -> str:
    from rich.console import Console

    buf = io.StringIO()
    t.print(Console(width=width, file=buf, highlight=False, color_system=None))
    return buf.getvalue()


def test_table_keeps_key_cells_whole_and_wraps_the_rest():
    from aiocore._cli._tables import Table

    t = Table("t").column("name", key=True).column("verdict", key=True).column("origin")
    t.row("notified-blocking", "lost-wakeup", "qemu b37548fc (2018), " * 6)
    out = _render(t, 40)
    assert all(_cell_len(ln) <= 40 for ln in out.splitlines()), out
    first = next(ln for ln in out.splitlines() if "notified-blocking" in ln)
    assert "lost-wakeup" in first
    assert out.count("b37548fc") == 6, out  # wrapped, nothing lost


def test_table_too_wide_for_its_keys_prints_in_parts_repeating_the_name():
    from aiocore._cli._tables import Table

    t = Table("figures")
    for h in ["strategy"] + [f"figure {i}" for i in range(8)]:
        t.column(h, key=True)
    t.row("notified-blocking", *[f"{i}.25 µs [{i}.0–{i}.5]" for i in range(8)])
    out = _render(t, 80)
    assert all(_cell_len(ln) <= 80 for ln in out.splitlines()), out
    assert "figures (1/" in out and "figures (2/" in out
    for i in range(8):
        assert any("notified-blocking" in ln and f"{i}.25 µs [{i}.0–{i}.5]" in ln
                   for ln in out.splitlines()), out


def test_table_whose_cells_cannot_fit_prints_records():
    from aiocore._cli._tables import Table

    t = Table("narrow").column("name", key=True).column("value", key=True)
    t.row("a-very-long-strategy-name-indeed", "x" * 30)
    out = _render(t, 40)
    assert "name: a-very-long-strategy-name-indeed" in out
    assert "value: " + "x" * 30 in out


def test_table_rejects_a_row_of_the_wrong_length():
    from aiocore._cli._tables import Table

    with pytest.raises(ValueError, match="row has 1 cells, the table 2 columns"):
        Table().column("a", key=True).column("b").row("x")


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789.×µ", min_size=1, max_size=14)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=30, max_value=140),
    keys=st.lists(st.booleans(), min_size=1, max_size=9),
    data=st.data(),
)
def test_random_tables_fit_and_keep_key_cells_whole(width, keys, data):
    """Whatever the cells: no line over the width, and each key cell (when it
    fits the width at all) on one line with its row's first key cell."""
    from aiocore._cli._tables import Table

    t = Table("random")
    for i, k in enumerate(keys):
        t.column(f"col {i}", key=k)
    nrows = data.draw(st.integers(min_value=1, max_value=4))
    rows = []
    for r in range(nrows):
        cells = [f"r{r}c{i}" + data.draw(_word) if k else " ".join(data.draw(st.lists(_word, max_size=6)))
                 for i, k in enumerate(keys)]
        rows.append(cells)
        t.row(*cells)
    out = _render(t, width)
    assert all(_cell_len(ln) <= width for ln in out.splitlines()), out
    label = next((i for i, k in enumerate(keys) if k), None)
    if label is None:
        return
    lines = out.splitlines()
    if not t.parts(width):  # records: "header: cell", one per line, where it fits
        for cells in rows:
            for i, k in enumerate(keys):
                rec = f"col {i}: {cells[i]}"
                if k and _cell_len(rec) <= width:
                    assert any(rec in ln for ln in lines), (rec, out)
        return
    for cells in rows:
        for i, k in enumerate(keys):
            if k:
                assert any(cells[label] in ln and cells[i] in ln for ln in lines), (cells[i], out)
