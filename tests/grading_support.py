"""Helpers of the grading tests (test_grading.py, test_grading_integrity.py): chapter 5's student
notebook, answered and handed in."""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ROOT / "chapters" / "05-limits-of-detection.ipynb"


def submit(folder: Path, student: str, nb) -> None:
    """Hand in ``nb`` (a notebook, or any text) as ``student``'s chapter 5."""
    (folder / student).mkdir(parents=True, exist_ok=True)
    path = folder / student / f"{LIMITS.stem}.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, path)


def student_notebook(course: Path):
    """Chapter 5's student notebook, as released in ``course``."""
    return nbformat.read(course / "release" / LIMITS.stem / f"{LIMITS.stem}.ipynb", as_version=4)


def answer(nb, number: int, source: str):
    """``nb`` with ``source`` as the answer of exercise ``number``."""
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    cells[number - 1].source = source
    return nb


def points(rows, student):
    """``student``'s points, exercise by exercise."""
    return [g.points for g in rows if g.student == student]
