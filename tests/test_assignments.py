"""`make assignments`: the chapters become nbgrader assignments with no solution left in them."""

import re
import sqlite3
from pathlib import Path

import nbformat
import poisonlab
import pytest
import torch
from poisonlab_course import assignments

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("nbgrader")
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _solution_lines(nb) -> set[str]:
    """Every line written between the markers, and every line of a {solution} block, that occurs
    nowhere else in the chapter (a line such as `import math` may legitimately appear elsewhere)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        text = cell.source
        blocks = assignments.SOLUTION_BLOCK.findall(text) if cell.cell_type == "markdown" else []
        for block in blocks:
            inside |= {line.strip() for line in block.splitlines()[2:-1]}
            text = text.replace(block, "")
        lines, on = [], False
        for line in text.splitlines():
            if assignments.BEGIN in line:
                on = True
            elif assignments.END in line:
                on = False
            elif on:
                inside.add(line.strip())
            else:
                lines.append(line.strip())
        outside |= set(lines)
    return {line for line in inside - outside if len(line) > 3 and not line.startswith("#")}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_text_survives_into_the_student_notebook(nbgrader_course, path):
    secret = _solution_lines(nbformat.read(path, as_version=4))
    assert secret, "every chapter has exercises with solutions"
    student = nbgrader_course / "release" / path.stem / f"{path.stem}.ipynb"
    text = "\n".join(c.source for c in nbformat.read(student, as_version=4).cells)
    lines = {line.strip() for line in text.splitlines()}
    # a short line (`continue`) counts only as a whole line: "# Checks (continued)." is no leak
    leaked = sorted(line for line in secret if line in lines or (len(line) > 20 and line in text))
    assert not leaked, f"solution lines in the student notebook: {leaked[:5]}"
    assert "BEGIN HIDDEN TESTS" not in text and "_importlib.reload" not in text


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_keeps_stubs_and_self_checks(nbgrader_course, path):
    chapter = nbformat.read(path, as_version=4)
    student = nbformat.read(nbgrader_course / "release" / path.stem / f"{path.stem}.ipynb", as_version=4)
    found = assignments.exercises(chapter)
    stubs = [c for c in student.cells if c.cell_type == "code" and "raise NotImplementedError()" in c.source]
    checks = [c for c in student.cells if c.cell_type == "code" and re.search(r"exercises\.check_\w+\(", c.source)]
    assert len(stubs) == len(found) and len(checks) == len(found)
    # nbgrader's stubs are the ones assignments.stub makes, which the other tests grade
    assert [c.source for c in stubs] == [assignments.stub(chapter.cells[i].source) for i, *_ in found]

    # everything that is not an exercise is the chapter, unchanged
    def markdown(nb):
        return sum(c.cell_type == "markdown" for c in nb.cells)

    assert markdown(student) == markdown(chapter) + 1  # the note on how the assignment is graded
    assert "How this assignment is graded" in student.cells[1].source


def _graded(source_nb):
    cells = source_nb.cells
    out = []
    for i, c in enumerate(cells):
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution") and c.cell_type == "code":
            test = next(t for t in cells[i + 1 :] if t.metadata.get("nbgrader", {}).get("grade"))
            out.append((c.source, test))
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_hidden_tests_carry_points_and_grade_the_reference_and_the_stub(nbgrader_course, path):
    source = nbformat.read(nbgrader_course / "source" / path.stem / f"{path.stem}.ipynb", as_version=4)
    graded = _graded(source)
    assert len(graded) == len(assignments.exercises(nbformat.read(path, as_version=4)))
    for solution, test in graded:
        assert test.metadata["nbgrader"]["points"] == 2.0 and test.metadata["nbgrader"]["locked"]
        body = test.source
        reference = {"torch": torch, "pl": poisonlab}
        exec(compile(solution, "<solution>", "exec"), reference)
        exec(compile(body, "<hidden tests>", "exec"), reference)  # full marks: no AssertionError
        student = {"torch": torch, "pl": poisonlab}
        exec(compile(assignments.stub(solution), "<stub>", "exec"), student)
        with pytest.raises(AssertionError, match="not written yet"):
            exec(compile(body, "<hidden tests>", "exec"), student)


def test_a_patched_checker_is_restored_before_the_hidden_tests(nbgrader_course):
    path = ROOT / "chapters" / "05-limits-of-detection.ipynb"
    source = nbformat.read(nbgrader_course / "source" / path.stem / f"{path.stem}.ipynb", as_version=4)
    solution, test = _graded(source)[0]
    import poisonlab.check.core as core
    import poisonlab.check.limits as limits

    namespace = {"torch": torch, "pl": poisonlab}
    exec(compile(assignments.stub(solution), "<stub>", "exec"), namespace)
    # a submission that rewrites the checker and the harness so that everything passes
    limits.check_best_detector = lambda fn: type("R", (), {"ok": True})()
    core.run = lambda *a, **k: type("R", (), {"ok": True})()
    try:
        with pytest.raises(AssertionError):
            exec(compile(test.source, "<hidden tests>", "exec"), namespace)
    finally:
        import importlib

        importlib.reload(core)
        importlib.reload(limits)


def test_exercises_rejects_an_exercise_without_a_checker(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(f"def f():\n    {assignments.BEGIN}\n    return 1\n    {assignments.END}")]
    )
    with pytest.raises(ValueError, match="no poisonlab.check cell"):
        assignments.exercises(nb)
    nb.cells[0].source = f"def f():\n    {assignments.BEGIN}\n    return 1"
    with pytest.raises(ValueError, match="without closing"):
        assignments.exercises(nb)


def test_stub_replaces_each_solution_region_as_nbgrader_does():
    solution = f"def f(x):\n    y = 1\n    {assignments.BEGIN}\n    return x + y\n    {assignments.END}\n"
    assert assignments.stub(solution) == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    with pytest.raises(ValueError, match="never closed"):
        assignments.stub(f"{assignments.BEGIN}\nx = 1")
    with pytest.raises(ValueError, match="inside another"):
        assignments.stub(f"{assignments.BEGIN}\n{assignments.BEGIN}\n{assignments.END}")


VARIANTS = [1, 3, 590297]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_reference_solutions_pass_every_variant_and_stubs_fail_it(path):
    from poisonlab.check import variant

    chapter = nbformat.read(path, as_version=4)
    for i, _, module, checker, function in assignments.exercises(chapter):
        solution = chapter.cells[i].source
        for v in VARIANTS:
            with variant(v):
                for source, ok in ((solution, True), (assignments.stub(solution), False)):
                    namespace = {"torch": torch, "pl": poisonlab}
                    exec(compile(source, "<cell>", "exec"), namespace)
                    check = getattr(__import__(f"poisonlab.check.{module}", fromlist=[checker]), checker)
                    assert check(namespace[function]).ok is ok, (path.stem, function, v, ok)


def test_answers_fitted_to_the_published_cases_fail_another_variant():
    from poisonlab.check import limits, variant

    remembered = {}

    def honest(p, q):
        return (q > p).double()

    def recording(p, q):
        remembered[(tuple(p.tolist()), tuple(q.tolist()))] = honest(p, q)
        return remembered[(tuple(p.tolist()), tuple(q.tolist()))]

    assert limits.check_best_detector(recording).ok  # variant 0, the published cases

    def copied(p, q):  # answers looked up, not computed
        return remembered.get((tuple(p.tolist()), tuple(q.tolist())), torch.zeros_like(p))

    assert limits.check_best_detector(copied).ok
    with variant(7):
        assert not limits.check_best_detector(copied).ok
        assert limits.check_best_detector(honest).ok


def test_the_gradebook_records_nbgrader_schema_revision_without_running_alembic(tmp_path, monkeypatch):
    import nbgrader.api
    from nbgrader.dbutil import ALEMBIC_DIR

    # the newest migration: the revision no other migration builds on
    scripts = [p.read_text() for p in Path(ALEMBIC_DIR, "versions").glob("*.py")]
    revisions = {m for text in scripts for m in re.findall(r"^revision = '(\w+)'", text, re.M)}
    older = {m for text in scripts for m in re.findall(r"^down_revision = '(\w+)'", text, re.M)}
    assert len(revisions - older) == 1

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"nbgrader ran {args}")

    monkeypatch.setattr(nbgrader.api.sp, "check_output", no_subprocess)
    assignments.generate([CHAPTERS[0]], tmp_path / "course")
    with sqlite3.connect(tmp_path / "course" / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [((revisions - older).pop(),)]


def test_a_variant_release_draws_its_own_cases(roster_course, tmp_path):
    path = ROOT / "chapters" / "05-limits-of-detection.ipynb"
    assignments.generate([path], tmp_path / "v", variant=4)
    student = nbformat.read(tmp_path / "v" / "release" / path.stem / f"{path.stem}.ipynb", as_version=4)
    checks = [c.source for c in student.cells if assignments.assignments_self_check(c)]
    assert len(checks) == 3 and all("use_variant(4)" in c for c in checks)
    course, released = roster_course  # made from the roster "ada," and "bo,9" (conftest.ROSTER)
    assert sorted(p.parent.name for p in released) == ["ada", "bo"]
    assert "use_variant(9)" in released[1].read_text() and (course / "variants.csv").exists()
    roster = tmp_path / "roster.csv"
    with pytest.raises(ValueError, match="student"):
        roster.write_text("name\nada\n")
        assignments.generate([path], tmp_path / "x", roster=roster)
    with pytest.raises(ValueError, match="variant"):
        assignments.generate([path], tmp_path / "y", variant=-1)
