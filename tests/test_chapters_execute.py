"""Every chapter executes top to bottom from a fresh kernel, once per change.

A chapter is executed through the site's own notebook cache (jupyter-cache, at the path
``_config.yml`` names), so ``make book`` after ``make test`` reuses each executed notebook instead of
running it again; a chapter whose code changed no longer matches the cache and executes again. A
cell that raises, including a hidden check cell whose claim no longer holds, fails the test with the
chapter, the cell and the traceback. ``CHAPTERS_FRESH=1`` ignores the cache and executes every
chapter anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
import yaml
from filelock import FileLock
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
CACHE_PATH = ROOT / CONFIG["cache"]
CELL_TIMEOUT = int(CONFIG["timeout"])


def _failing_cell(nb: nbformat.NotebookNode) -> str:
    """'cell N' for the first code cell whose outputs hold an error, or '' when none does."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return f"cell {index}"
    return ""


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_executes(path: Path) -> None:
    CACHE_PATH.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(CACHE_PATH / "tests.lock"))  # pytest-xdist workers share one database
    nb = nbformat.read(path, as_version=4)
    with lock:
        cache = get_cache(str(CACHE_PATH))
        if not os.environ.get("CHAPTERS_FRESH"):
            try:
                cache.match_cache_notebook(nb)
                return  # executed with exactly this code before, and succeeded
            except KeyError:
                pass
        record = cache.add_nb_to_project(str(path))
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=CELL_TIMEOUT, allow_errors=False, meta_override=True)
    if result.err is not None:
        where = _failing_cell(nb) or "a cell"
        pytest.fail(f"{path.name}: {where} raised {type(result.err).__name__}\n{result.exc_string}", pytrace=False)
    with lock:
        get_cache(str(CACHE_PATH)).cache_notebook_bundle(
            CacheBundleIn(nb, record.uri, data={"execution_seconds": result.time}), check_validity=False, overwrite=True
        )


def test_the_site_reads_the_cache_these_tests_fill() -> None:
    """make book reuses these executions only while it executes in cache mode from this path."""
    assert CONFIG["execute_notebooks"] == "cache"
    assert CACHE_PATH == ROOT / "_build" / ".jupyter_cache"
    assert CONFIG["allow_errors"] is False
