"""`make grade`: submissions run apart, under limits, and are scored in the grader's process."""

import csv
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "course"))
import grade  # noqa: E402

pytest.importorskip("nbgrader")
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
LIMITS = ROOT / "chapters" / "05-limits-of-detection.ipynb"


def _submit(folder: Path, student: str, nb) -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    path = folder / student / f"{LIMITS.stem}.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, path)


def _student(course: Path):
    return nbformat.read(course / "release" / LIMITS.stem / f"{LIMITS.stem}.ipynb", as_version=4)


def _answer(nb, number: int, source: str):
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    cells[number - 1].source = source
    return nb


def _points(rows, student):
    return [g.points for g in rows if g.student == student]


def test_reference_solutions_score_full_marks_in_every_chapter(nbgrader_course, tmp_path):
    for path in CHAPTERS:
        reference = nbformat.read(nbgrader_course / "source" / path.stem / f"{path.stem}.ipynb", as_version=4)
        (tmp_path / "teacher").mkdir(exist_ok=True)
        nbformat.write(reference, tmp_path / "teacher" / f"{path.stem}.ipynb")
    rows = grade.grade(tmp_path, nbgrader_course, tmp_path / "out", timeout=120)
    assert {g.chapter for g in rows} == {p.stem for p in CHAPTERS}
    assert all(g.points == g.max_points > 0 for g in rows), [(g.chapter, g.exercise, g.message) for g in rows]


def test_untouched_malformed_and_hanging_submissions_score_zero_and_the_batch_goes_on(nbgrader_course, tmp_path):
    subs = tmp_path / "subs"
    _submit(subs, "a-untouched", _student(nbgrader_course))
    _submit(subs, "b-not-json", "{this is not a notebook")
    _submit(subs, "c-hangs", _answer(_student(nbgrader_course), 1, "while True:\n    pass"))
    right = "def best_detector(p, q):\n    return (q > p).double()"
    _submit(subs, "d-right", _answer(_student(nbgrader_course), 1, right))
    rows = grade.grade(subs, nbgrader_course, tmp_path / "out", timeout=25)
    assert _points(rows, "a-untouched") == [0, 0, 0]
    assert _points(rows, "b-not-json") == [0, 0, 0]
    assert all("not a valid notebook" in g.message for g in rows if g.student == "b-not-json")
    assert _points(rows, "c-hangs") == [0, 0, 0]
    assert all("time limit" in g.message for g in rows if g.student == "c-hangs")
    assert _points(rows, "d-right") == [2.0, 0, 0]  # graded after the hang: nothing lost
    with open(tmp_path / "out" / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12 and set(table[0]) == {"student", "chapter", "exercise", "points", "max", "message"}
    assert (
        (tmp_path / "out" / "feedback" / "d-right" / f"{LIMITS.stem}.md")
        .read_text()
        .startswith(f"# {LIMITS.stem}: 2 of 6 points")
    )


def test_partial_answers_earn_partial_credit(nbgrader_course, tmp_path):
    # flags only half the time: right only when P = Q, 1 of the checker's 4 cases
    timid = "def best_detector(p, q):\n    return 0.5 * (q > p).double()"
    _submit(tmp_path / "subs", "partial", _answer(_student(nbgrader_course), 1, timid))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert _points(rows, "partial") == [0.5, 0, 0]


def test_tampering_gains_nothing(nbgrader_course, tmp_path):
    out = tmp_path / "out"
    forged_csv = out / "grades.csv"
    # patch the checker and its harness, forge the CSV, and leave the function a stub
    patch = f"""
import poisonlab.check.core as _core
import poisonlab.check.limits as _limits
_core.run = lambda *a, **k: type("R", (), {{"ok": True, "passed": 4, "total": 4}})()
_limits.check_best_detector = lambda fn: _core.run()
from pathlib import Path
Path({str(forged_csv)!r}).parent.mkdir(parents=True, exist_ok=True)
Path({str(forged_csv)!r}).write_text("student,chapter,exercise,points,max,message\\ncheater,x,1,100,2,forged\\n")


def best_detector(p, q):
    raise NotImplementedError()
"""
    nb = _answer(_student(nbgrader_course), 1, patch)
    # an extra cell of the submission's own, which the grader never runs
    nb.cells.insert(0, nbformat.v4.new_code_cell("import poisonlab.check.limits as m\nm.check_best_detector = None"))
    _submit(tmp_path / "subs", "cheater", nb)
    # a submission that saves a pickle instead of answers: torch.load(weights_only=True) refuses it
    evil = (
        "import torch\n_save = torch.save\ntorch.save = lambda obj, path: _save(object(), path)\n\n\n"
        "def best_detector(p, q):\n    return (q > p).double()"
    )
    _submit(tmp_path / "subs", "pickler", _answer(_student(nbgrader_course), 1, evil))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, out, timeout=60)
    assert _points(rows, "cheater") == [0, 0, 0]
    assert _points(rows, "pickler")[0] == 0 and "could not be read" in rows[3].message
    text = forged_csv.read_text()
    assert "forged" not in text and "cheater,x" not in text


def test_a_memory_hog_is_stopped(nbgrader_course, tmp_path):
    hog = "import torch\n_big = torch.ones(600_000_000)\n\n\ndef best_detector(p, q):\n    return (q > p).double()"
    _submit(tmp_path / "subs", "hog", _answer(_student(nbgrader_course), 1, hog))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60, memory_mb=1024)
    assert _points(rows, "hog") == [0, 0, 0]


def test_grade_reports_an_unknown_assignment(nbgrader_course, tmp_path):
    (tmp_path / "subs" / "someone").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "subs" / "someone" / "homework.ipynb")
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out")
    assert len(rows) == 1 and "no assignment called 'homework'" in rows[0].message


def test_each_student_is_graded_on_their_own_variant(tmp_path):
    import assignments

    roster = tmp_path / "roster.csv"
    roster.write_text("student,variant\nada,3\nbo,8\n")
    course = tmp_path / "course"
    released = {p.parent.name: p for p in assignments.generate([LIMITS], course, roster=roster)}
    right = "def best_detector(p, q):\n    return (q > p).double()"
    for name in ("ada", "bo"):
        nb = _answer(nbformat.read(released[name], as_version=4), 1, right)
        _submit(tmp_path / "subs", name, nb)
    _submit(tmp_path / "subs", "eve", _answer(_student(nbgrader_course_for(course, released)), 1, right))
    rows = grade.grade(tmp_path / "subs", course, tmp_path / "out", timeout=60)
    assert _points(rows, "ada") == [2.0, 0, 0] and _points(rows, "bo") == [2.0, 0, 0]
    assert _points(rows, "eve") == [0, 0, 0] and "not on the roster" in rows[-1].message


def nbgrader_course_for(course: Path, released: dict) -> Path:
    """A folder whose release/ holds one student's notebook, for _student()."""
    target = course / "eve-view"
    (target / "release" / LIMITS.stem).mkdir(parents=True, exist_ok=True)
    nbformat.write(
        nbformat.read(released["ada"], as_version=4), target / "release" / LIMITS.stem / f"{LIMITS.stem}.ipynb"
    )
    return target


def test_answers_that_break_the_comparison_or_read_the_checker_score_zero(nbgrader_course, tmp_path):
    subs = tmp_path / "subs"
    sparse = "import torch\n\n\ndef best_detector(p, q):\n    return (q > p).double().to_sparse()"
    numpy_answer = "def best_detector(p, q):\n    return (q > p).double().numpy()"
    peek = (
        "import sys\n\n\ndef best_detector(p, q):\n    f = sys._getframe(1)\n"
        "    while 'case' not in f.f_locals:\n        f = f.f_back\n    return f.f_locals['case'].expected"
    )
    _submit(subs, "a-sparse", _answer(_student(nbgrader_course), 1, sparse))
    _submit(subs, "b-numpy", _answer(_student(nbgrader_course), 1, numpy_answer))
    _submit(subs, "c-peek", _answer(_student(nbgrader_course), 1, peek))
    rows = grade.grade(subs, nbgrader_course, tmp_path / "out", timeout=60)
    assert _points(rows, "a-sparse") == [0, 0, 0] and "could not be read" in rows[0].message
    assert _points(rows, "b-numpy") == [2.0, 0, 0]  # an honest numpy answer is read back as a tensor
    assert _points(rows, "c-peek") == [0, 0, 0] and "inspect" in rows[6].message


def test_a_process_left_behind_does_not_hold_up_the_batch(nbgrader_course, tmp_path):
    leave = (
        "import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\n\n\n"
        "def best_detector(p, q):\n    return (q > p).double()"
    )
    _submit(tmp_path / "subs", "a-leaves", _answer(_student(nbgrader_course), 1, leave))
    # a second copy of the same chapter is ignored, not graded twice
    (tmp_path / "subs" / "a-leaves" / LIMITS.stem).mkdir()
    nbformat.write(_student(nbgrader_course), tmp_path / "subs" / "a-leaves" / LIMITS.stem / f"{LIMITS.stem}.ipynb")
    import time

    start = time.perf_counter()
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert time.perf_counter() - start < 50
    assert _points(rows, "a-leaves") == [2.0, 0, 0]


def test_no_expected_answer_is_within_reach_of_the_student_function(nbgrader_course, tmp_path):
    # walks every frame above it looking for the checker's cases, with the names disguised so that the
    # textual check does not catch it: the worker holds only inputs, so it finds nothing
    disguised = (
        "import sys\n\n\ndef best_detector(p, q):\n    frame = getattr(sys, '_get' + 'frame')(1)\n"
        "    while frame is not None:\n        found = getattr(frame, 'f_' + 'locals').get('case')\n"
        "        if found is not None:\n            return found.expected\n"
        "        frame = getattr(frame, 'f_' + 'back')\n    return torch.zeros_like(p)"
    )
    _submit(tmp_path / "subs", "snoop", _answer(_student(nbgrader_course), 1, disguised))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert _points(rows, "snoop")[0] < 1.0  # at most the P = Q case, where zeros are right


def test_a_submission_cannot_read_the_instructors_notebooks(nbgrader_course, tmp_path):
    if not grade.sandbox_prefix([]):
        pytest.skip("unshare cannot make a private mount namespace on this machine")
    source = nbgrader_course / "source" / LIMITS.stem / f"{LIMITS.stem}.ipynb"
    # copy the reference solution out of the instructor's notebook, then run it
    steal = (
        f"import json\ncells = json.load(open({str(source)!r}))['cells']\n"
        "exec(next(''.join(c['source']) for c in cells if 'def best_detector' in ''.join(c['source'])))"
    )
    _submit(tmp_path / "subs", "thief", _answer(_student(nbgrader_course), 1, steal))
    assert source.exists()  # readable here, in the grader's process
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert _points(rows, "thief") == [0, 0, 0]


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
    nb.cells[1].metadata["nbgrader"] = {"grade": True}
    assert [c.source for c in grade.setup_cells(nb)] == ["SEED = 0"]
