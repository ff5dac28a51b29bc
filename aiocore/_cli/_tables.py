# Tables the CLI prints, readable at 80 columns and in a pipe.
#
# rich shrinks every column of a table that does not fit and, for columns
# that may not wrap, cuts the cell with an ellipsis: "uncondit…".  A strategy
# name or a verdict cut like that is worse than no table.  So every table of
# aiocore's CLI is built here, and the widths are computed here rather than
# left to rich:
#
# - *key* columns (names, verdicts, figures) are as wide as their widest
#   cell and never wrap; only their header may fold onto more lines, at
#   spaces;
# - the other columns (descriptions, origins, causes) take what is left and
#   wrap at spaces (a word longer than the column is folded);
# - when the key columns alone do not fit (a wide table of figures), the
#   table is printed in parts, each repeating the first key column (the
#   row's name) and titled "(1/2)", "(2/2)": every cell stays whole;
# - a row whose cells cannot fit even so is printed as "header: value" lines.
#
# In a pipe rich assumes 80 columns (or $COLUMNS), the width a newcomer's
# terminal has; every line printed is at most the console's width.
#
#     Table("aiocore strategies").column("name", key=True).column("origin")
#         .row("late-clear", "qemu 2014").print()
from __future__ import annotations

import attrs

#: rich's default box: one border per column plus one, two padding spaces.
_BORDER, _PAD = 1, 2
#: A wrapping column is never made narrower than this (or its content).
MIN_WRAP = 10


@attrs.define
class _Col:
    header: str
    key: bool
    justify: str
    style: str | None


@attrs.define
class Table:
    """A table whose key columns are never truncated (see the module comment)."""

    title: str | None = None
    cols: list = attrs.field(factory=list)
    rows: list = attrs.field(factory=list)

    def column(self, header: str, *, key: bool = False, justify: str = "left",
               style: str | None = None) -> "Table":
        self.cols.append(_Col(header, key, justify, style))
        return self

    def row(self, *cells) -> "Table":
        if len(cells) != len(self.cols):
            raise ValueError(f"row has {len(cells)} cells, the table {len(self.cols)} columns")
        self.rows.append(tuple("" if c is None else str(c) for c in cells))
        return self

    # -- layout --

    def _natural(self, i: int) -> int:
        return max([_plain_len(self.cols[i].header)] + [_plain_len(r[i]) for r in self.rows])

    def _need(self, i: int) -> int:
        """The narrowest width column i may have."""
        c = self.cols[i]
        word = _longest_word(c.header)
        if c.key:
            return max([word] + [_plain_len(r[i]) for r in self.rows])
        return min(self._natural(i), max(word, MIN_WRAP))

    def widths(self, idx: list[int], width: int) -> list[int] | None:
        """Widths for the columns idx within `width`, or None if they do not fit."""
        nat = [self._natural(i) for i in idx]
        need = [self._need(i) for i in idx]
        frame = (_PAD + _BORDER) * len(idx) + _BORDER
        if sum(nat) + frame <= width:
            return nat
        if sum(need) + frame > width:
            return None
        out = list(need)
        spare = width - frame - sum(need)
        while spare > 0:  # share what is left among the columns that want more
            want = [j for j in range(len(idx)) if out[j] < nat[j]]
            if not want:
                break
            total = sum(nat[j] - out[j] for j in want)
            given = 0
            for j in want:
                g = min(nat[j] - out[j], max(1, spare * (nat[j] - out[j]) // total), spare - given)
                out[j] += g
                given += g
                if given >= spare:
                    break
            spare -= given
        return out

    def parts(self, width: int) -> list[tuple[list[int], list[int]]]:
        """[(column indexes, widths), ...]: one part if the table fits, else
        several, each starting with the first key column.  [] if even one
        column beside the label cannot fit (see print: records)."""
        every = list(range(len(self.cols)))
        w = self.widths(every, width)
        if w is not None:
            return [(every, w)]
        label = next((i for i, c in enumerate(self.cols) if c.key), 0)
        rest = [i for i in every if i != label]
        out, cur = [], []
        for i in rest:
            if self.widths([label, *cur, i], width) is not None:
                cur.append(i)
                continue
            if not cur:
                return []
            out.append(cur)
            cur = [i]
            if self.widths([label, i], width) is None:
                return []
        if cur:
            out.append(cur)
        return [([label, *p], self.widths([label, *p], width)) for p in out]

    # -- rendering --

    def renderables(self, width: int) -> list:
        """The rich renderables that print this table within `width` columns."""
        from rich.table import Table as RichTable
        from rich.text import Text

        parts = self.parts(width)
        if not parts:
            return [self._records(width)]
        out = []
        for n, (idx, ws) in enumerate(parts, 1):
            title = self.title
            if len(parts) > 1:
                title = f"{self.title or ''} ({n}/{len(parts)})".lstrip()
            t = RichTable(title=title, title_justify="left")
            for i, w in zip(idx, ws):
                c = self.cols[i]
                t.add_column(c.header, justify=c.justify, style=c.style, width=w, overflow="fold")
            for r in self.rows:
                t.add_row(*(_cell(r[i], self.cols[i].key, Text) for i in idx))
            out.append(t)
        return out

    def __rich_console__(self, console, options):
        # Laid out when printed, for the width the console really has.
        yield from self.renderables(options.max_width)

    def rich(self):
        """A rich renderable (this table itself: console.print(t.rich()))."""
        return self

    def _records(self, width: int):
        """Last resort: each row as 'header: value' lines."""
        from rich.console import Group
        from rich.text import Text

        lines = [Text.from_markup(f"[bold]{_esc(self.title)}[/bold]")] if self.title else []
        for r in self.rows:
            lines.append(Text(""))
            for c, v in zip(self.cols, r):
                t = Text(f"{c.header}: ")
                t.append_text(_markup(v))
                lines.append(t)
        return Group(*lines)

    def print(self, console=None) -> None:
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        console.print(self)


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _markup(cell: str):
    from rich.text import Text

    try:
        return Text.from_markup(cell)
    except Exception:  # not markup after all
        return Text(cell)


def _cell(cell: str, key: bool, Text):
    t = _markup(cell)
    if key:
        t.no_wrap = True  # the column is as wide as its widest cell
    return t


def _plain_len(cell: str) -> int:
    """Width of a cell as printed (rich markup removed, longest line)."""
    from rich.cells import cell_len

    return max((cell_len(line) for line in _markup(cell).plain.splitlines()), default=0)


def _longest_word(cell: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(w) for w in _markup(cell).plain.split()), default=0)


__all__ = ["Table"]
