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
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from filelock import FileLock
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution
from poisonlab_course import reader

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


def glue_problems(executed: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """What the site build (``-W``) would reject in an executed chapter's glued values: a key
    glued twice, or a key the prose quotes that no cell glued."""
    glued = [
        o["metadata"]["scrapbook"]["name"]
        for cell in executed.cells
        for o in cell.get("outputs", [])
        if "scrapbook" in o.get("metadata", {})
    ]
    quoted = {
        ref.split(":")[0]
        for cell in source.cells
        if cell.cell_type == "markdown"
        for ref in re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", cell.source)
    }
    twice = sorted({k for k in glued if glued.count(k) > 1})
    missing = sorted(quoted - set(glued))
    return [f"glued more than once: {twice}"] * bool(twice) + [f"quoted but never glued: {missing}"] * bool(missing)


def execute_into_cache(path: Path, cache_path: Path, *, fresh: bool = False) -> str | None:
    """Execute the notebook at ``path`` into the jupyter-cache at ``cache_path`` unless the cache
    already holds a successful execution of exactly this code (``fresh`` executes anyway).

    Returns None on success, else a message naming the notebook and either the failing cell, the
    error and the traceback, or the glued values the site would reject (:func:`glue_problems`).
    """
    cache_path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_path / "tests.lock"))  # pytest-xdist workers share one database
    nb = nbformat.read(path, as_version=4)
    with lock:
        cache = get_cache(str(cache_path))
        if not fresh:
            try:
                record = cache.match_cache_notebook(nb)
            except KeyError:
                pass
            else:  # executed with exactly this code before, and succeeded
                problems = glue_problems(cache.get_cache_bundle(record.pk).nb, nb)
                return f"{path.name}: " + "; ".join(problems) if problems else None
        record = cache.add_nb_to_project(str(path))
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=CELL_TIMEOUT, allow_errors=False, meta_override=True)
    if result.err is not None:
        where = _failing_cell(nb) or "a cell"
        return f"{path.name}: {where} raised {type(result.err).__name__}\n{result.exc_string}"
    problems = glue_problems(nb, nbformat.read(path, as_version=4))
    with lock:
        get_cache(str(cache_path)).cache_notebook_bundle(
            CacheBundleIn(nb, record.uri, data={"execution_seconds": result.time}), check_validity=False, overwrite=True
        )
    return f"{path.name}: " + "; ".join(problems) if problems else None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_executes(path: Path) -> None:
    """The chapter executes without error, and its reader copy in ``notebooks/`` is the one
    regenerated from this very execution (checked here, not in a separate test, because pytest-xdist
    gives no guarantee that another test runs after this one in the same worker)."""
    failure = execute_into_cache(path, CACHE_PATH, fresh=bool(os.environ.get("CHAPTERS_FRESH")))
    if failure:
        pytest.fail(failure, pytrace=False)
    executed = reader.executed_chapter(path, CACHE_PATH)
    stored = (ROOT / "notebooks" / path.name).read_text()
    assert reader.matches(stored, path, executed, reader.book()), (
        f"notebooks/{path.name} is out of date with this run of chapters/{path.name}: run `make notebooks`"
    )


def test_a_failing_cell_is_reported_and_a_passing_notebook_is_cached(tmp_path: Path) -> None:
    def notebook(name: str, *sources: str) -> Path:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = tmp_path / name
        nbformat.write(nb, path)
        return path

    cache = tmp_path / "cache"
    bad = notebook("bad.ipynb", "x = 1", "assert x == 2, 'the claim no longer holds'")
    failure = execute_into_cache(bad, cache)
    assert failure is not None
    assert "bad.ipynb: cell 1 raised" in failure and "the claim no longer holds" in failure
    good = notebook("good.ipynb", "print('ran')")
    assert execute_into_cache(good, cache) is None
    cached = get_cache(str(cache)).match_cache_notebook(nbformat.read(good, as_version=4))
    assert cached is not None  # make book would now reuse it instead of executing it again
    assert execute_into_cache(bad, cache) is not None  # a failure is never cached


def test_glue_keys_glued_twice_or_never_are_reported(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "from myst_nb import glue\nglue('a', 1, display=False)\nglue('a', 2, display=False)"
            ),
            nbformat.v4.new_markdown_cell("Quoted: {glue:text}`a:.1f` and {glue:text}`b`."),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "glued.ipynb"
    nbformat.write(nb, path)
    failure = execute_into_cache(path, tmp_path / "cache")
    assert failure is not None and "glued more than once: ['a']" in failure and "never glued: ['b']" in failure
    # the same verdict when the execution comes from the cache
    assert execute_into_cache(path, tmp_path / "cache") == failure


def test_the_site_reads_the_cache_these_tests_fill() -> None:
    """make book reuses these executions only while it executes in cache mode from this path."""
    assert CONFIG["execute_notebooks"] == "cache"
    assert CACHE_PATH == ROOT / "_build" / ".jupyter_cache"
    assert CONFIG["allow_errors"] is False
