"""Progress bars that read well everywhere a chapter runs.

In a notebook, tqdm's widget bar needs a live kernel to draw, so an executed notebook, and the
book's static site, would show it frozen at 0%. Here the bar is tqdm's text bar written into one
output line that is updated in place: live in Jupyter, Colab and VS Code, and complete ("100%")
in the saved outputs. On a terminal it is tqdm's usual bar on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _NotebookLine:
    """A file-like target for tqdm that shows the bar as one line of text in a notebook.

    Each write replaces the line in place (an IPython display handle), so the bar updates live in
    Jupyter, Colab and VS Code, and an executed notebook, the book's site included, keeps the
    final state ("4/4 epochs, loss …") rather than a widget that a static page cannot draw.
    """

    def __init__(self) -> None:
        self._handle = None

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            from IPython.display import display

            if self._handle is None:
                self._handle = display({"text/plain": line}, raw=True, display_id=True)
            else:
                self._handle.update({"text/plain": line}, raw=True)
        return len(text)

    def flush(self) -> None:
        pass


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def progress_bar(total: int, *, desc: str, unit: str = "it"):
    """A tqdm bar: a live text line in notebooks, the usual bar on a terminal. Close it when done."""
    from tqdm import tqdm

    if _in_notebook():
        return tqdm(total=total, desc=desc, unit=unit, file=_NotebookLine(), ncols=80, mininterval=0.0)
    return tqdm(total=total, desc=desc, unit=unit, leave=True)


def track(iterable: Iterable[T], *, desc: str, unit: str = "it") -> Iterator[T]:
    """Iterate over a sized iterable with a progress bar (see :func:`progress_bar`)."""
    items = list(iterable)
    bar = progress_bar(len(items), desc=desc, unit=unit)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
