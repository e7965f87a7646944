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
