"""Hand numbers from a notebook's run to its prose.

On the book's site, the MyST role ``glue:text`` with a name, written in a Markdown cell, shows a
value computed by a code cell (myst-nb's *glue*). :func:`glue` stores the value when myst-nb is installed and does
nothing otherwise (plain Jupyter, Colab), so the same notebook runs everywhere.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any) -> Any:
    """Make ``value`` available to the prose under ``name`` (the ``glue:text`` role) and return it
    unchanged."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a valid identifier, got {name!r}")
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return value
    _glue(name, value, display=False)
    return value


class Table:
    """A small results table that notebooks show as an HTML table and terminals as aligned text.

    Build it with :func:`table`; a notebook displays it when it is a cell's last value.
    """

    def __init__(self, header: list[str], rows: list[list[str]], caption: str | None = None) -> None:
        self.header, self.rows, self.caption = header, rows, caption

    def _repr_html_(self) -> str:
        from html import escape

        cell = 'style="padding: 0.2em 0.7em; text-align: right"'  # room between columns on any theme
        head = "".join(f"<th {cell}>{escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td {cell}>{escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [self.header, *self.rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)


def table(
    header: list[str], rows: list[list[Any]], *, caption: str | None = None, formats: dict[int, str] | None = None
) -> Table:
    """A :class:`Table` of ``rows`` (each as long as ``header``), every cell formatted with
    ``formats[column]`` (a format spec such as ``".1%"``) when given, else with ``str``; strings
    (e.g. ``"–"`` for a value that does not apply) are shown as they are."""
    formats = formats or {}
    if not header:
        raise ValueError("header must name at least one column")
    cells = []
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells for {len(header)} columns")
        cells.append(
            [format(v, formats[j]) if j in formats and not isinstance(v, str) else str(v) for j, v in enumerate(row)]
        )
    return Table([str(h) for h in header], cells, caption)
