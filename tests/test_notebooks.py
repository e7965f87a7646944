"""The chapters as files: stored clean, listed in the book, built to the notebook anatomy of
ARCHITECTURE.md, with exercises that fail on the stub and pass on the hidden solution.

(Executing the chapters top to bottom is tests/test_chapters_execute.py's job.)
"""

import json
import re
from pathlib import Path

import nbformat
import poisonlab
import pytest
import torch
import yaml
from poisonlab_course.assignments import BEGIN, END, exercises, stub

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _read(path):
    return nbformat.read(path, as_version=4)


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def _toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        if "root" in node:
            yield node["root"]
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def test_there_are_chapters():
    assert CHAPTERS, "chapters/ holds no notebook"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_stored_without_outputs(path):
    nb = _read(path)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; strip them before committing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_cell_ids_are_unique(path):
    """nbformat silently renames a repeated id, so links and reader copies would drift."""
    ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]  # as stored: nbformat would fix them
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_listed_in_the_table_of_contents(path):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert f"chapters/{path.stem}" in set(_toc_files(toc))


def test_table_of_contents_points_at_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for entry in _toc_files(toc):
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_follows_the_notebook_anatomy(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "title first"
    assert "After this chapter you will be able to" in first.source
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in setup.source and "pip install" in setup.source, "the setup cell is the first code cell"
    assert "hide-input" in _tags(setup), "the setup cell is shown collapsed (tag 'hide-input')"
    assert setup.metadata.get("mystnb", {}).get("code_prompt_show") == "Show the setup"
    assert any("parameters" in _tags(c) for c in nb.cells), "a cell tagged 'parameters'"
    checks = [c for c in nb.cells if "remove-input" in _tags(c) and "assert" in c.source]
    assert checks, "a hidden check cell that asserts the chapter's claims"
    headings = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any("## Key takeaways" in h for h in headings)
    assert any("## Exercises" in h for h in headings)
    assert any("## References" in h for h in headings)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_cells_that_only_glue_numbers_are_removed_from_the_page(path):
    """A cell that computes the numbers quoted in the prose is plumbing: the page shows the numbers
    in the text, not a code toggle (nor a stray value) for the cell."""
    shown = [
        i
        for i, c in enumerate(_read(path).cells)
        if c.cell_type == "code"
        and c.source.startswith("# Numbers quoted in the text")
        and "remove-cell" not in _tags(c)
    ]
    assert not shown, f"cells {shown} glue numbers for the prose; tag them 'remove-cell'"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_solution_cells_are_collapsed_and_labelled_as_solutions(path):
    unlabelled = [
        i
        for i, c in enumerate(_read(path).cells)
        if c.cell_type == "code"
        and BEGIN in c.source
        and not (
            "hide-input" in _tags(c) and c.metadata.get("mystnb", {}).get("code_prompt_show") == "Show the solution"
        )
    ]
    assert not unlabelled, f"solution cells {unlabelled}: tag 'hide-input', mystnb.code_prompt_show 'Show the solution'"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_glued_number_in_the_prose_is_computed(path):
    nb = _read(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    used = set()
    for c in nb.cells:
        if c.cell_type == "markdown":
            used |= set(re.findall(r"\{glue:text\}`([A-Za-z_]\w*)", c.source))
    glued = set(re.findall(r"glue\(\s*\"(\w+)\"", code))
    prefixes = set(re.findall(r"glue\(\s*f\"(\w*)\{", code))  # names built in a loop: glue(f"x_{i}", …)
    missing = {u for u in used - glued if not any(u.startswith(p) for p in prefixes if p)}
    assert not missing, f"prose uses {sorted(missing)} that no code cell glues"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_glue_role_is_closed(path):
    """`{glue:text}`name:format`` must end with its own backtick; a brace typed instead of the
    backtick swallows the following text into the key."""
    for c in _read(path).cells:
        if c.cell_type == "markdown":
            bad = re.findall(r"\{glue:text\}`[^`]*[{}\n][^`]*`", c.source)
            assert not bad, f"malformed glue roles: {bad}"


def _open_fences(text: str) -> list[str]:
    """The fences (``` or :::, any length) a markdown text opens and never closes."""
    stack: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^(`{3,}|:{3,})(\S*)", line)
        if m:
            if stack and m.group(1) == stack[-1] and not m.group(2):
                stack.pop()
            else:
                stack.append(m.group(1))
    return stack


def test_the_fence_check_finds_an_unclosed_directive():
    assert _open_fences("```{exercise}\nbody\n```\n\n```{solution} x\nbody\n") == ["```"]
    assert _open_fences("````{solution} x\n```python\n1\n```\n````\n") == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_directive_is_closed_in_its_own_cell(path):
    """The site forgives a fence left open at the end of a cell; the reader copies, which read the
    chapter as one text, do not (the next cell's fence would close it)."""
    open_ = {c.get("id"): _open_fences(c.source) for c in _read(path).cells if c.cell_type == "markdown"}
    assert not {k: v for k, v in open_.items() if v}, "close every ``` or ::: fence in the cell that opens it"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_exercises_are_referred_to_by_label_not_by_a_typed_number(path):
    """The site numbers exercises per chapter (Exercise 2.3, book/_ext/chapter_numbers.py); a number
    typed into the prose would go stale when an exercise is added or moved."""
    nb = _read(path)
    typed = [
        m.group(0)
        for c in nb.cells
        if c.cell_type == "markdown"
        for m in re.finditer(r"\b[Ee]xercises? \d+(\.\d+)?", c.source)
    ]
    assert not typed, f"refer to exercises with {{ref}}`label`, not by number: {typed}"
    labels = {
        m
        for other in CHAPTERS
        for c in _read(other).cells
        if c.cell_type == "markdown"
        for m in re.findall(r"^:label: (\S+)", c.source, re.M)
    }
    refs = {
        m
        for c in nb.cells
        if c.cell_type == "markdown"
        for m in re.findall(r"\{(?:ref|numref)\}`(?:[^`<]*<)?([\w-]+-ex-[\w-]+)>?`", c.source)
    }
    assert refs <= labels, f"references to exercises that do not exist: {sorted(refs - labels)}"


def _exercises(path):
    """(solution cell, self-check cell) of every exercise, found as ``make assignments`` finds them."""
    nb = _read(path)
    return [(nb.cells[i].source, nb.cells[j].source) for i, j, *_ in exercises(nb)]


EXERCISES = [(p, i, sol, chk) for p in CHAPTERS for i, (sol, chk) in enumerate(_exercises(p))]


def _check_result(solution: str, check: str):
    namespace = {"torch": torch, "pl": poisonlab}
    exec(compile(solution, "<solution>", "exec"), namespace)
    *body, last = check.strip().splitlines()
    exec(compile("\n".join(body), "<check>", "exec"), namespace)
    return eval(compile(last, "<check>", "eval"), namespace)


@pytest.mark.parametrize(
    "path, index, solution, check", EXERCISES, ids=[f"{p.name}-exercise{i + 1}" for p, i, _, _ in EXERCISES]
)
def test_exercise_passes_on_the_solution_and_fails_on_the_stub(path, index, solution, check):
    assert END in solution
    assert _check_result(solution, check).ok, "the hidden solution must pass its checker"
    student = stub(solution)
    assert BEGIN not in student and "NotImplementedError" in student
    result = _check_result(student, check)
    assert not result.ok and "not written yet" in repr(result)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_code_cell_on_the_page_is_short(path):
    """A code cell the page shows (collapsed or not) reads at a glance: 25 lines at most. Longer
    mechanics belong in poisonlab, where they get tests."""
    long = [
        (i, len(c.source.splitlines()))
        for i, c in enumerate(_read(path).cells)
        if c.cell_type == "code"
        and not {"remove-cell", "remove-input"} & set(_tags(c))
        and len(c.source.splitlines()) > 25
    ]
    assert not long, f"(cell, lines) over 25 lines on the page: {long}"
