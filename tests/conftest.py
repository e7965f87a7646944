"""Shared fixtures: small datasets, loaded once per test session, and the chapters made into nbgrader
assignments once per test run, whatever the number of pytest-xdist workers.

PyTorch and poisonlab are imported by the fixtures that need them, not here: pytest-xdist's controller
process loads this file too, and runs no test."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock

if TYPE_CHECKING:
    import poisonlab as pl
    import torch

# As poisonlab_course.worker does: without rfc3987-syntax, the jsonschema that nbformat imports (in the
# test modules, collected after this file) does not compile that package's grammars for the "iri"
# formats, which no notebook schema uses: seconds in every pytest worker.
sys.modules.setdefault("rfc3987_syntax", None)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
LIMITS = ROOT / "chapters" / "05-limits-of-detection.ipynb"
#: The roster of ``roster_course``: ada's variant derived from her id, bo's given.
ROSTER = "student,variant\nada,\nbo,9\n"


@pytest.fixture(scope="session")
def mnist5k() -> pl.Dataset:
    import poisonlab as pl

    return pl.load("mnist5k")


@pytest.fixture(scope="session")
def digits() -> pl.Dataset:
    import poisonlab as pl

    return pl.load("digits")


def _made_once(tmp_path_factory, name: str, make: Callable[[Path], list[Path]]) -> tuple[Path, list[Path]]:
    """The folder ``name``, filled by ``make(folder)`` once per test run, and what ``make`` returned.
    Under pytest-xdist the workers share it: the first to ask makes it while the others wait. Tests
    read it and write nothing into it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, above each worker's own
    folder, done = base / name, base / f"{name}.json"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            made = make(folder)
            done.write_text(json.dumps([str(p) for p in made]))
    return folder, [Path(p) for p in json.loads(done.read_text())]


@pytest.fixture(scope="session")
def made_once(tmp_path_factory) -> Callable[[str, Callable[[Path], list[Path]]], tuple[Path, list[Path]]]:
    """:func:`_made_once` for the tests' own fixtures: ``made_once(name, make)``."""
    return lambda name, make: _made_once(tmp_path_factory, name, make)


@pytest.fixture(scope="session")
def nbgrader_course(tmp_path_factory) -> Path:
    """Every chapter made into an nbgrader assignment (``make assignments``), 2 points per exercise."""
    pytest.importorskip("nbgrader")
    from poisonlab_course import assignments

    return _made_once(tmp_path_factory, "course", lambda out: assignments.generate(CHAPTERS, out))[0]


@pytest.fixture(scope="session")
def roster_course(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Chapter 5 made into an assignment from :data:`ROSTER` (``make assignments ROSTER=…``): the course
    folder and the student notebooks, one per student, in the order ``generate`` returned them."""
    pytest.importorskip("nbgrader")
    from poisonlab_course import assignments

    def make(out: Path) -> list[Path]:
        roster = out.parent / f"{out.name}-roster.csv"
        roster.write_text(ROSTER)
        return assignments.generate([LIMITS], out, roster=roster)

    return _made_once(tmp_path_factory, "roster-course", make)


@pytest.fixture
def tiny_images() -> tuple[torch.Tensor, torch.Tensor]:
    """12 random 1×8×8 images in [0, 1] and labels in {0, 1, 2}."""
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.rand(12, 1, 8, 8, generator=g), torch.arange(12) % 3
