"""Turn the chapters into nbgrader assignments: ``make assignments``.

The chapters are the single source. Each exercise is a code cell whose solution sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's own markers), followed by a cell that
runs a ``poisonlab.check`` checker on the learner's function. This module writes, for every chapter,
an nbgrader *source* notebook in which

- the solution cell is an nbgrader solution cell (``raise NotImplementedError()`` in the release),
- the self-check cell is kept and locked,
- a locked, graded cell is added after it whose body sits between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``: it reloads the checker module (so that a learner's monkey-patching of
  it in an earlier cell is undone) and asserts that every case passes,
- the worked answers of the exercises' written parts (``{solution}`` blocks of sphinx-exercise) leave
  the notebook for the instructor's ``answers/`` folder;

then runs nbgrader's ``generate_assignment`` on it (in this process, through nbgrader's Python API), which
replaces every solution by :data:`CODE_STUB` (:func:`stub` makes the same student version of a single
cell). The result, under ``<out>/``:

- ``source/<chapter>/<chapter>.ipynb``: the instructor's notebook (solutions, hidden tests, points);
- ``release/<chapter>/<chapter>.ipynb``: the student's notebook (no solutions, no hidden tests);
- ``answers/<chapter>.md``: the worked answers of the written parts;
- ``gradebook.db``: nbgrader's record of the assignments and their point values.

**Variants.** ``--variant n`` makes every self-check and hidden test draw the cases of variant ``n``
(:func:`poisonlab.check.use_variant`: other random data, other target classes), so that answers fitted to
the published cases, or to another student's, fail. ``--roster students.csv`` gives each student a
variant of their own and one notebook each, ``release/<chapter>/<student>/<chapter>.ipynb``.

Usage: ``python -m poisonlab_course.assignments [--out DIR] [--points N] [--variant N | --roster CSV] [chapters ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]  # the repository: the package is installed editable from it
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: What a solution region becomes in the student's notebook (nbgrader's ``ClearSolutions.code_stub``).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
COURSE_ID = "poisoned-data"
SOLUTION_BLOCK = re.compile(r"```\{solution\}.*?\n```", re.DOTALL)
CHECK_CALL = re.compile(r"^(\w+)\.(check_\w+)\((\w+)\)\s*$")
CHECK_IMPORT = re.compile(r"^from poisonlab\.check import (\w+) as (\w+)\s*$", re.MULTILINE)


GRADING_NOTE = """\
```{{admonition}} How this assignment is graded
This notebook has {n} exercises worth {points} points each. Write your code where it says
`# YOUR CODE HERE`, and run the self-check cell below it as often as you like. For grading, only
those cells are run, after the chapter's setup and parameters cells, and each function is
checked case by case: a share of the cases earns that share of the points. Define any helper your
answer needs *inside* its cell.
```"""


def _meta(
    grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False, points: float | None = None
) -> dict:
    meta = {"schema_version": 3, "grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def exercises(nb: nbformat.NotebookNode) -> list[tuple[int, int, str, str, str]]:
    """(solution cell index, check cell index, checker module, checker name, function name) for every
    exercise of a chapter, in order."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        if END not in cell.source:
            raise ValueError(f"cell {i} opens {BEGIN!r} without closing it")
        j = next(
            (
                k
                for k in range(i + 1, len(nb.cells))
                if nb.cells[k].cell_type == "code" and ".check_" in nb.cells[k].source
            ),
            None,
        )
        if j is None:
            raise ValueError(f"the exercise in cell {i} has no poisonlab.check cell after it")
        check = nb.cells[j].source
        imported = CHECK_IMPORT.search(check)
        call = CHECK_CALL.match(check.strip().splitlines()[-1])
        if not imported or not call or call.group(1) != imported.group(2):
            raise ValueError(f"cell {j} must import a poisonlab.check module and end with one checker call")
        found.append((i, j, imported.group(1), call.group(2), call.group(3)))
    return found


def stub(source: str) -> str:
    """The student's version of a solution cell, as nbgrader writes it: every region between the
    markers becomes :data:`CODE_STUB`, indented like the line of the opening marker."""
    out, inside = [], False
    for n, line in enumerate(source.split("\n"), 1):
        if BEGIN in line:
            if inside:
                raise ValueError(f"line {n} opens {BEGIN!r} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + stub_line for stub_line in CODE_STUB.splitlines()]
        elif END in line:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} is never closed")
    return "\n".join(out)


def hidden_test(module: str, checker: str, function: str, variant: int = 0) -> str:
    """The body of an exercise's graded cell: a fresh copy of the checker, the cases of ``variant``,
    every case must pass."""
    return "\n".join(
        [
            "### BEGIN HIDDEN TESTS",
            "import importlib as _importlib",
            "",
            "for _name in ('poisonlab.check.core', f'poisonlab.check.{_module}'):".replace("{_module}", module),
            "    _importlib.reload(_importlib.import_module(_name))  # undo any patching",
            f"_importlib.import_module('poisonlab.check.core').use_variant({variant})",
            f"_result = _importlib.import_module('poisonlab.check.{module}').{checker}({function})",
            "assert _result.ok, repr(_result)",
            "### END HIDDEN TESTS",
        ]
    )


def with_variant(check: str, variant: int) -> str:
    """A self-check cell that draws the cases of ``variant`` (unchanged for variant 0)."""
    if variant == 0:
        return check
    *body, last = check.rstrip().splitlines()
    return "\n".join(
        [
            *body,
            "from poisonlab.check import use_variant",
            "",
            f"use_variant({variant})  # your own variant of the exercises' cases",
            last,
        ]
    )


def roster_variants(path: Path) -> dict[str, int]:
    """{student: variant} from a CSV with a ``student`` column and, optionally, a ``variant`` column;
    without one, each student's variant is derived from their id (stable, never 0)."""
    import csv
    import hashlib

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "student" not in rows[0]:
        raise ValueError(f"{path} must be a CSV with a 'student' column")
    out = {}
    for row in rows:
        student = row["student"].strip()
        if not student or not re.fullmatch(r"[\w.@-]+", student):
            raise ValueError(f"student ids may use letters, digits, '.', '@', '_' and '-', got {student!r}")
        given = (row.get("variant") or "").strip()
        digest = int(hashlib.sha256(student.encode()).hexdigest()[:8], 16)
        out[student] = int(given) if given else 1 + digest % 999_983
    return out


def source_notebook(path: Path, *, points: float = 2.0, variant: int = 0) -> nbformat.NotebookNode:
    """The nbgrader source version of one chapter (see the module's docstring). The worked answers
    of the exercises' written parts are in ``nb.metadata["written_answers"]``, not in any cell."""
    nb = nbformat.read(path, as_version=4)
    stem = path.stem
    found = exercises(nb)
    if not found:
        raise ValueError(f"{path.name} has no exercises")
    cells, answers = [], []
    by_solution = {i: (n, j, module, checker, function) for n, (i, j, module, checker, function) in enumerate(found, 1)}
    checks = {j: (n, module, checker, function) for n, (i, j, module, checker, function) in enumerate(found, 1)}
    for k, cell in enumerate(nb.cells):
        cell = nbformat.from_dict(dict(cell))
        cell.metadata = dict(cell.metadata)
        if cell.cell_type == "markdown" and SOLUTION_BLOCK.search(cell.source):
            answers += SOLUTION_BLOCK.findall(cell.source)
            cell.source = SOLUTION_BLOCK.sub("", cell.source).rstrip() + "\n"
        if cell.cell_type == "markdown" and (BEGIN in cell.source or END in cell.source):
            # prose that *names* the markers (the prologue explains them) must not look like a region
            cell.source = cell.source.replace(BEGIN, BEGIN.replace(" SOLUTION", "\u00a0SOLUTION")).replace(
                END, END.replace(" SOLUTION", "\u00a0SOLUTION")
            )
        if k in by_solution:
            n = by_solution[k][0]
            cell.metadata.update(_meta(f"{stem}-exercise-{n}", solution=True))
            cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "hide-input"]
        elif k in checks:
            n, module, checker, function = checks[k]
            cell.metadata.update(_meta(f"{stem}-exercise-{n}-self-check", locked=True))
            cell.source = with_variant(cell.source, variant)
            cells.append(cell)
            test = nbformat.v4.new_code_cell(hidden_test(module, checker, function, variant))
            test.metadata.update(_meta(f"{stem}-exercise-{n}-tests", grade=True, locked=True, points=points))
            test.metadata["tags"] = ["remove-cell"]
            cells.append(test)
            continue
        cells.append(cell)
    note = nbformat.v4.new_markdown_cell(GRADING_NOTE.format(n=len(found), points=f"{points:g}"))
    nb.cells = cells[:1] + [note] + cells[1:]
    nb.metadata["written_answers"] = answers  # moved to the instructor's folder by generate()
    nb.metadata["poisonlab"] = {"variant": variant}
    return nb


def _nbgrader(out: Path):
    """nbgrader's API on the course folder ``out``, configured like ``out/nbgrader_config.py``. Called
    in this process, it costs nbgrader's start-up once rather than once per chapter."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(out)
    config.CourseDirectory.course_id = COURSE_ID
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def gradebook_version() -> str:
    """The revision of nbgrader's database schema, which nbgrader writes into a new gradebook: the head
    of its alembic migration scripts, read here with alembic's Python API."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


@contextlib.contextmanager
def _gradebook_version_in_process() -> Iterator[None]:
    """nbgrader learns that revision, when it creates a gradebook, by running the ``alembic`` command
    in a new Python, seconds for one line of output: meanwhile it reads :func:`gradebook_version`
    in this process instead."""
    from nbgrader import api

    before = api.get_alembic_version
    api.get_alembic_version = gradebook_version
    try:
        yield
    finally:
        api.get_alembic_version = before


def generate(
    chapters: list[Path], out: Path, *, points: float = 2.0, variant: int = 0, roster: Path | None = None
) -> list[Path]:
    """Write the source notebooks under ``out/source`` and run nbgrader's ``generate_assignment`` on
    each; returns the student notebooks under ``out/release``.

    ``variant`` (≥ 0) makes every self-check and hidden test draw that variant's cases. With a
    ``roster`` (see :func:`roster_variants`) each student gets a variant of their own instead: the
    student notebooks are ``release/<chapter>/<student>/<chapter>.ipynb`` and ``variants.csv`` records
    who has which, for ``grade.py``."""
    if isinstance(variant, bool) or not isinstance(variant, int) or variant < 0:
        raise ValueError(f"variant must be a non-negative integer, got {variant!r}")
    students = roster_variants(roster) if roster is not None else {}
    out = out.resolve()
    for folder in ("source", "release", "answers"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / "gradebook.db").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    # the same configuration as a file, for running nbgrader's own commands in the course folder
    (out / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(out)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}\n"
    )
    api = _nbgrader(out)
    released = []
    for path in chapters:
        stem = path.stem
        (out / "source" / stem).mkdir(parents=True)
        nb = source_notebook(path, points=points, variant=variant)
        answers = nb.metadata.pop("written_answers")
        nbformat.write(nb, out / "source" / stem / f"{stem}.ipynb")
        with _gradebook_version_in_process():
            run = api.generate_assignment(stem, force=True)
        student = out / "release" / stem / f"{stem}.ipynb"
        if not run["success"] or not student.exists():
            raise RuntimeError(f"nbgrader could not generate {stem}:\n{run.get('log', '')}\n{run.get('error', '')}")
        # the written answers stay with the instructor: outside source/, which nbgrader copies from
        (out / "answers").mkdir(exist_ok=True)
        (out / "answers" / f"{stem}.md").write_text(f"# Written answers: {stem}\n\n" + "\n\n".join(answers) + "\n")
        if students:  # one copy per student, each drawing the cases of the student's variant
            base = nbformat.read(student, as_version=4)
            for name, v in students.items():
                copy = nbformat.from_dict(base)
                for cell in copy.cells:
                    if cell.cell_type == "code" and assignments_self_check(cell):
                        cell.source = with_variant(cell.source, v)
                target = out / "release" / stem / name / f"{stem}.ipynb"
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(copy, target)
                released.append(target)
            student.unlink()
        else:
            released.append(student)
    (out / "variants.csv").unlink(missing_ok=True)
    if students:
        (out / "variants.csv").write_text("student,variant\n" + "".join(f"{k},{v}\n" for k, v in students.items()))
    return released


def assignments_self_check(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell is an exercise's self-check (an import of a checker module, then one call)."""
    lines = cell.source.strip().splitlines()
    return bool(lines) and bool(CHECK_IMPORT.search(cell.source)) and bool(CHECK_CALL.match(lines[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter notebooks (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "course", help="course folder")
    parser.add_argument("--points", type=float, default=2.0, help="points per exercise")
    parser.add_argument("--variant", type=int, default=0, help="the variant of the exercises' cases (0: published)")
    parser.add_argument("--roster", type=Path, help="CSV with a 'student' column: one variant per student")
    args = parser.parse_args(argv)
    chapters = args.chapters or sorted((ROOT / "chapters").glob("*.ipynb"))
    for student in generate(chapters, args.out, points=args.points, variant=args.variant, roster=args.roster):
        print(f"student notebook: {student.relative_to(args.out.resolve())}")
    print(f"instructor's notebooks (solutions, hidden tests, points): {args.out / 'source'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
