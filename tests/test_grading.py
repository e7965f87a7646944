"""`make grade`: what a submission scores, exercise by exercise, in every chapter and variant.

(Submissions that crash, hang or cheat: test_grading_integrity.py.)
"""

import threading
from pathlib import Path

import nbformat
import pytest
from grading_support import answer, points, student_notebook, submit
from poisonlab_course import grade

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("nbgrader")
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_reference_solutions_score_full_marks_in_every_chapter(nbgrader_course, tmp_path):
    for path in CHAPTERS:
        reference = nbformat.read(nbgrader_course / "source" / path.stem / f"{path.stem}.ipynb", as_version=4)
        (tmp_path / "teacher").mkdir(exist_ok=True)
        nbformat.write(reference, tmp_path / "teacher" / f"{path.stem}.ipynb")
    rows = grade.grade(tmp_path, nbgrader_course, tmp_path / "out", timeout=120, jobs=2)
    assert {g.chapter for g in rows} == {p.stem for p in CHAPTERS}
    assert all(g.points == g.max_points > 0 for g in rows), [(g.chapter, g.exercise, g.message) for g in rows]


def test_partial_answers_earn_partial_credit(nbgrader_course, tmp_path):
    # flags only half the time: right only when P = Q, 1 of the checker's 4 cases
    timid = "def best_detector(p, q):\n    return 0.5 * (q > p).double()"
    submit(tmp_path / "subs", "partial", answer(student_notebook(nbgrader_course), 1, timid))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert points(rows, "partial") == [0.5, 0, 0]


def test_each_student_is_graded_on_their_own_variant(roster_course, tmp_path):
    course, notebooks = roster_course  # ada's variant derived from her id, bo's 9 (conftest.ROSTER)
    released = {p.parent.name: p for p in notebooks}
    right = "def best_detector(p, q):\n    return (q > p).double()"
    for name in ("ada", "bo"):
        nb = answer(nbformat.read(released[name], as_version=4), 1, right)
        submit(tmp_path / "subs", name, nb)
    submit(tmp_path / "subs", "eve", answer(nbformat.read(released["ada"], as_version=4), 1, right))
    rows = grade.grade(tmp_path / "subs", course, tmp_path / "out", timeout=60, jobs=2)
    assert points(rows, "ada") == [2.0, 0, 0] and points(rows, "bo") == [2.0, 0, 0]
    assert points(rows, "eve") == [0, 0, 0] and "not on the roster" in rows[-1].message


def test_jobs_run_submissions_side_by_side_and_the_rows_keep_their_order(nbgrader_course, tmp_path, monkeypatch):
    both_running = threading.Barrier(2, timeout=30)

    def run_isolated(nb, workdir, **limits):  # a worker that returns only once the other one runs too
        both_running.wait()
        return "stopped after the time limit of 1 s"

    monkeypatch.setattr(grade, "run_isolated", run_isolated)
    for student in ("a", "b"):
        submit(tmp_path / "subs", student, student_notebook(nbgrader_course))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", jobs=2)
    assert [g.student for g in rows] == ["a"] * 3 + ["b"] * 3 and all("time limit" in g.message for g in rows)
    with pytest.raises(ValueError, match="jobs"):
        grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", jobs=0)


def test_grade_reports_an_unknown_assignment(nbgrader_course, tmp_path):
    (tmp_path / "subs" / "someone").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "subs" / "someone" / "homework.ipynb")
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out")
    assert len(rows) == 1 and "no assignment called 'homework'" in rows[0].message


def test_grader_runs_only_the_setup_and_parameters_cells():
    """Hidden cells after the parameters cell glue the chapter's numbers and need its experiments;
    the grader must not run them, nor the hidden tests."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("import torch", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_code_cell("SEED = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("runs = train()"),
        nbformat.v4.new_code_cell("glue('x', runs)", metadata={"tags": ["remove-cell"]}),
    ]
    assert [c.source for c in grade.setup_cells(nb)] == ["import torch", "SEED = 0"]
    nb.cells[1].metadata["tags"] = ["hide-input"]  # the setup cell as the chapters store it: shown collapsed
    assert [c.source for c in grade.setup_cells(nb)] == ["import torch", "SEED = 0"]
    nb.cells[1].metadata["nbgrader"] = {"grade": True}
    assert [c.source for c in grade.setup_cells(nb)] == ["SEED = 0"]
