# Tables the CLI prints, readable at 80 columns and in a pipe.
#
# rich shrinks every column of a table that does not fit and, for columns
# that may not wrap, cuts the cell with an ellipsis: "uncondit…".  A strategy
# name or a verdict cut like that is worse than no table.  So every table of
# aiocore's CLI is built here: *key* columns (names, verdicts, figures) get a
# minimum width equal to their widest cell and never wrap; the other columns
# (descriptions, origins, causes) take what is left and fold onto more lines.
# In a pipe rich assumes 80 columns, the width a newcomer's terminal has.
from __future__ import annotations

import attrs


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

    def rich(self):
        """The rich.table.Table to print."""
        from rich.table import Table as RichTable

        t = RichTable(title=self.title, title_justify="left")
        for i, c in enumerate(self.cols):
            if c.key:
                widest = max([len(c.header)] + [_plain_len(r[i]) for r in self.rows])
                t.add_column(c.header, justify=c.justify, style=c.style, no_wrap=True,
                             min_width=widest)
            else:
                t.add_column(c.header, justify=c.justify, style=c.style, overflow="fold")
        for r in self.rows:
            t.add_row(*r)
        return t

    def print(self, console=None) -> None:
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        console.print(self.rich())


def _plain_len(cell: str) -> int:
    """Width of a cell as printed (rich markup removed, longest line)."""
    from rich.text import Text

    try:
        text = Text.from_markup(cell)
    except Exception:  # not markup after all
        text = Text(cell)
    return max((len(line) for line in text.plain.splitlines()), default=0)


__all__ = ["Table"]
