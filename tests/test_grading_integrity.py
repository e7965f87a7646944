"""`make grade` against submissions that crash, hang or cheat: each runs apart, under limits, and is
scored in the grader's process, so it gains nothing and the batch goes on.

(What honest submissions score: test_grading.py.)
"""

import csv

import nbformat
import pytest
from grading_support import LIMITS, answer, points, student_notebook, submit
from poisonlab_course import grade

pytest.importorskip("nbgrader")


def test_untouched_malformed_and_hanging_submissions_score_zero_and_the_batch_goes_on(nbgrader_course, tmp_path):
    subs = tmp_path / "subs"
    submit(subs, "a-untouched", student_notebook(nbgrader_course))
    submit(subs, "b-not-json", "{this is not a notebook")
    # never returns; asleep rather than spinning, so that it leaves the CPU to the other tests (the
    # grader's limit is on wall-clock time either way)
    hang = "import time\n\nwhile True:\n    time.sleep(1)"
    submit(subs, "c-hangs", answer(student_notebook(nbgrader_course), 1, hang))
    right = "def best_detector(p, q):\n    return (q > p).double()"
    submit(subs, "d-right", answer(student_notebook(nbgrader_course), 1, right))
    # two at a time: the others are graded while the hanging one waits out its limit
    rows = grade.grade(subs, nbgrader_course, tmp_path / "out", timeout=25, jobs=2)
    assert points(rows, "a-untouched") == [0, 0, 0]
    assert points(rows, "b-not-json") == [0, 0, 0]
    assert all("not a valid notebook" in g.message for g in rows if g.student == "b-not-json")
    assert points(rows, "c-hangs") == [0, 0, 0]
    assert all("time limit" in g.message for g in rows if g.student == "c-hangs")
    assert points(rows, "d-right") == [2.0, 0, 0]  # graded while the hang waited out its limit: nothing lost
    with open(tmp_path / "out" / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12 and set(table[0]) == {"student", "chapter", "exercise", "points", "max", "message"}
    assert (
        (tmp_path / "out" / "feedback" / "d-right" / f"{LIMITS.stem}.md")
        .read_text()
        .startswith(f"# {LIMITS.stem}: 2 of 6 points")
    )


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
    nb = answer(student_notebook(nbgrader_course), 1, patch)
    # an extra cell of the submission's own, which the grader never runs
    nb.cells.insert(0, nbformat.v4.new_code_cell("import poisonlab.check.limits as m\nm.check_best_detector = None"))
    submit(tmp_path / "subs", "cheater", nb)
    # a submission that saves a pickle instead of answers: torch.load(weights_only=True) refuses it
    evil = (
        "import torch\n_save = torch.save\ntorch.save = lambda obj, path: _save(object(), path)\n\n\n"
        "def best_detector(p, q):\n    return (q > p).double()"
    )
    submit(tmp_path / "subs", "pickler", answer(student_notebook(nbgrader_course), 1, evil))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, out, timeout=60, jobs=2)
    assert points(rows, "cheater") == [0, 0, 0]
    assert points(rows, "pickler")[0] == 0 and "could not be read" in rows[3].message
    text = forged_csv.read_text()
    assert "forged" not in text and "cheater,x" not in text


def test_a_memory_hog_is_stopped(nbgrader_course, tmp_path):
    hog = "import torch\n_big = torch.ones(600_000_000)\n\n\ndef best_detector(p, q):\n    return (q > p).double()"
    submit(tmp_path / "subs", "hog", answer(student_notebook(nbgrader_course), 1, hog))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60, memory_mb=1024)
    assert points(rows, "hog") == [0, 0, 0]


def test_answers_that_break_the_comparison_or_read_the_checker_score_zero(nbgrader_course, tmp_path):
    subs = tmp_path / "subs"
    sparse = "import torch\n\n\ndef best_detector(p, q):\n    return (q > p).double().to_sparse()"
    numpy_answer = "def best_detector(p, q):\n    return (q > p).double().numpy()"
    peek = (
        "import sys\n\n\ndef best_detector(p, q):\n    f = sys._getframe(1)\n"
        "    while 'case' not in f.f_locals:\n        f = f.f_back\n    return f.f_locals['case'].expected"
    )
    submit(subs, "a-sparse", answer(student_notebook(nbgrader_course), 1, sparse))
    submit(subs, "b-numpy", answer(student_notebook(nbgrader_course), 1, numpy_answer))
    submit(subs, "c-peek", answer(student_notebook(nbgrader_course), 1, peek))
    rows = grade.grade(subs, nbgrader_course, tmp_path / "out", timeout=60, jobs=2)
    assert points(rows, "a-sparse") == [0, 0, 0] and "could not be read" in rows[0].message
    assert points(rows, "b-numpy") == [2.0, 0, 0]  # an honest numpy answer is read back as a tensor
    assert points(rows, "c-peek") == [0, 0, 0] and "inspect" in rows[6].message


def test_a_process_left_behind_does_not_hold_up_the_batch(nbgrader_course, tmp_path):
    leave = (
        "import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\n\n\n"
        "def best_detector(p, q):\n    return (q > p).double()"
    )
    submit(tmp_path / "subs", "a-leaves", answer(student_notebook(nbgrader_course), 1, leave))
    # a second copy of the same chapter is ignored, not graded twice
    (tmp_path / "subs" / "a-leaves" / LIMITS.stem).mkdir()
    nbformat.write(
        student_notebook(nbgrader_course), tmp_path / "subs" / "a-leaves" / LIMITS.stem / f"{LIMITS.stem}.ipynb"
    )
    import time

    start = time.perf_counter()
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert time.perf_counter() - start < 50
    assert points(rows, "a-leaves") == [2.0, 0, 0]


def test_no_expected_answer_is_within_reach_of_the_student_function(nbgrader_course, tmp_path):
    # walks every frame above it looking for the checker's cases, with the names disguised so that the
    # textual check does not catch it: the worker holds only inputs, so it finds nothing
    disguised = (
        "import sys\n\n\ndef best_detector(p, q):\n    frame = getattr(sys, '_get' + 'frame')(1)\n"
        "    while frame is not None:\n        found = getattr(frame, 'f_' + 'locals').get('case')\n"
        "        if found is not None:\n            return found.expected\n"
        "        frame = getattr(frame, 'f_' + 'back')\n    return torch.zeros_like(p)"
    )
    submit(tmp_path / "subs", "snoop", answer(student_notebook(nbgrader_course), 1, disguised))
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert points(rows, "snoop")[0] < 1.0  # at most the P = Q case, where zeros are right


def test_a_submission_cannot_read_the_instructors_notebooks(nbgrader_course, tmp_path):
    if not grade.sandbox_prefix([]):
        pytest.skip("unshare cannot make a private mount namespace on this machine")
    source = nbgrader_course / "source" / LIMITS.stem / f"{LIMITS.stem}.ipynb"
    # copy the reference solution out of the instructor's notebook, then run it
    steal = (
        f"import json\ncells = json.load(open({str(source)!r}))['cells']\n"
        "exec(next(''.join(c['source']) for c in cells if 'def best_detector' in ''.join(c['source'])))"
    )
    submit(tmp_path / "subs", "thief", answer(student_notebook(nbgrader_course), 1, steal))
    assert source.exists()  # readable here, in the grader's process
    rows = grade.grade(tmp_path / "subs", nbgrader_course, tmp_path / "out", timeout=60)
    assert points(rows, "thief") == [0, 0, 0]
