"""Grade submitted notebooks: ``make grade SUBMISSIONS=<folder>``.

Layout: ``<folder>/<student>/<chapter>.ipynb`` (or nbgrader's ``<folder>/<student>/<chapter>/<chapter>.ipynb``),
where ``<chapter>`` names an assignment made by ``make assignments`` (``_build/course/source/<chapter>``).

How a submission is graded, and why:

1. **Only the answers are taken from the submission.** The grader builds a fresh notebook from the
   instructor's copy: the chapter's setup and parameters cells, then, for each exercise, the code of the
   submission's solution cell (found by nbgrader's ``grade_id``), then a *recording* cell written by the
   grader. Anything else a student added or changed, a cell that patches the checker for instance,
   is not run at all.
2. **It runs in a separate process, with limits.** A worker process (:mod:`poisonlab_course.worker`)
   executes that notebook in an empty temporary folder, under a wall-clock limit and a memory cap
   (``RLIMIT_DATA``, inherited by the kernel); the worker, its kernel and every process seen under them
   are killed when it ends. A notebook that is not valid JSON, raises, or hangs gets zero for what did
   not run, with a message, and grading goes on. With ``--jobs n``, n workers run side by side, each
   under its own limits; the grader's own work (step 3) is done one submission at a time. Workers that
   run at the same time run as the same user, so one could reach the temporary folder of another:
   one at a time, the default, leaves none to reach.
3. **Scores are computed in the grader's process.** The grader first runs each checker on the instructor's
   reference solution, in its own process, to learn the inputs of every call it makes. The worker only
   calls the student's function on those inputs and saves what it *returned* (with ``torch.save``); no
   checker and no expected answer is ever in the worker's memory. The grader loads the answers with
   ``torch.load(weights_only=True)`` (which cannot run code), replays them into the same checker in its
   own process, and compares them with answers it computes itself. A submission can make its kernel say
   anything; it cannot change what the grader computes.

Variants: the cases are those of the variant the assignment was made with (``make assignments
VARIANT=n``), or of each student's own variant when it was made from a roster (``variants.csv``).

Outputs, under ``--out``: ``grades.csv`` (student, chapter, exercise, points, max, message) and
``feedback/<student>/<chapter>.md``. Partial credit: an exercise's points are its maximum times the share
of its checker's cases that passed.

Usage: ``python -m poisonlab_course.grade <folder> [--course DIR] [--out DIR] [--timeout S] [--memory MiB]
[--jobs N]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from poisonlab_course import assignments

ROOT = Path(__file__).resolve().parents[2]  # the repository: the package is installed editable from it

#: Errors a student's function may raise on purpose, replayed as themselves; any other becomes RuntimeError.
RAISABLE = {
    e.__name__: e
    for e in (
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        LookupError,
        ZeroDivisionError,
        ArithmeticError,
        AssertionError,
        NotImplementedError,
        RuntimeError,
    )
}


@dataclass
class Exercise:
    number: int
    grade_id: str
    points: float
    module: str
    checker: str
    function: str


@dataclass
class Grade:
    student: str
    chapter: str
    exercise: int
    points: float
    max_points: float
    message: str


def exercises_of(source: nbformat.NotebookNode, chapter: str) -> list[Exercise]:
    """The graded exercises of an instructor's notebook, with their points."""
    found = []
    for n, (i, j, module, checker, function) in enumerate(assignments.exercises(source), 1):
        test = next(c for c in source.cells[j + 1 :] if c.metadata.get("nbgrader", {}).get("grade"))
        found.append(
            Exercise(
                n,
                source.cells[i].metadata["nbgrader"]["grade_id"],
                float(test.metadata["nbgrader"]["points"]),
                module,
                checker,
                function,
            )
        )
    if not found:
        raise ValueError(f"{chapter}: the instructor's notebook has no graded exercises")
    return found


def _recording_cell(ex: Exercise, inputs: str, answers: str) -> str:
    """The worker's cell for one exercise: call the student's function on the inputs the grader wrote,
    one call at a time, and save what it returned. No checker runs in the worker, so no expected answer
    is anywhere in its memory."""
    return f"""
import torch as _torch

_calls = []


def _storable(value):
    # numpy numbers and arrays become what torch.load(weights_only=True) reads back
    if type(value).__module__ == "numpy":
        value = value.item() if getattr(value, "ndim", 1) == 0 else _torch.as_tensor(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_storable(v) for v in value)
    if isinstance(value, dict):
        return {{k: _storable(v) for k, v in value.items()}}
    return value


try:
    for _args, _kwargs in _torch.load({inputs!r}, weights_only=False):
        try:
            _calls.append({{"value": _storable({ex.function}(*_args, **_kwargs))}})
        except Exception as _error:
            _calls.append({{"raised": type(_error).__name__, "message": str(_error)[:300]}})
finally:
    _torch.save(_calls, {answers!r})
""".strip()


class _NoIPython:
    """Stands in for IPython when the grader runs a chapter's setup cell: magics do nothing."""

    def run_line_magic(self, *args, **kwargs) -> None:
        return None

    def system(self, *args, **kwargs) -> None:
        return None


def setup_cells(source: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The chapter's setup and parameters cells: the hidden code cells (``remove-cell``, or
    ``hide-input`` as the setup cell is, shown collapsed on the site) up to and including the cell
    tagged ``parameters``. Hidden cells after it (numbers glued for the prose) depend on the
    chapter's experiments and are not run; nor are the hidden tests (graded cells)."""
    cells = []
    for cell in source.cells:
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        if {"remove-cell", "hide-input", "parameters"} & tags:
            cells.append(cell)
        if "parameters" in tags:
            break
    return cells


def case_inputs(source: nbformat.NotebookNode, ex: Exercise, variant: int) -> list[tuple[tuple, dict]]:
    """The arguments of every call the checker makes, in order, found by running the checker in this
    process on the *reference* solution of the instructor's notebook (trusted code). The worker calls
    the student's function on exactly these."""
    import copy
    import importlib

    from IPython.core.inputtransformer2 import TransformerManager
    from poisonlab.check import core

    namespace: dict = {"get_ipython": _NoIPython}
    transform = TransformerManager().transform_cell
    for cell in setup_cells(source):
        exec(compile(transform(cell.source), "<setup>", "exec"), namespace)
    solution = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == ex.grade_id)
    exec(compile(solution.source, "<reference>", "exec"), namespace)
    reference = namespace[ex.function]
    calls = []

    def recording(*args, **kwargs):
        calls.append((copy.deepcopy(args), copy.deepcopy(kwargs)))
        return reference(*args, **kwargs)

    checker = getattr(importlib.import_module(f"poisonlab.check.{ex.module}"), ex.checker)
    with core.variant(variant):
        checker(recording)
    return calls


def graded_notebook(
    source: nbformat.NotebookNode,
    submission: nbformat.NotebookNode,
    exercises: list[Exercise],
    answers_dir: Path,
    variant: int = 0,
) -> nbformat.NotebookNode:
    """The notebook the worker runs: setup and parameters from the instructor's copy, the submission's
    solution cells, and a recording cell per exercise."""
    by_id = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c
        for c in submission.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }
    cells = [nbformat.v4.new_code_cell(c.source) for c in setup_cells(source)]
    cells[0].source = cells[0].source.replace("%matplotlib inline", "")
    import torch

    for ex in exercises:
        answer = by_id.get(ex.grade_id)
        cells.append(
            nbformat.v4.new_code_cell(
                answer.source
                if answer is not None
                else f"raise LookupError('the cell of exercise {ex.number} is missing')"
            )
        )
        inputs = answers_dir.parent / f"inputs-{ex.number}.pt"
        key = (id(source), ex.number, variant)
        if key not in _INPUTS:
            _INPUTS[key] = case_inputs(source, ex, variant)
        torch.save(_INPUTS[key], inputs)
        recording = _recording_cell(ex, str(inputs), str(answers_dir / f"exercise-{ex.number}.pt"))
        cells.append(nbformat.v4.new_code_cell(recording))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


_SANDBOX: list[bool] = []  # whether unshare can give the worker a private view of the file system


def sandbox_prefix(hidden: list[Path]) -> list[str]:
    """A command prefix that runs the worker in its own user and mount namespaces (Linux ``unshare``),
    where each folder in ``hidden`` is an empty, private tmpfs: the submission can neither read the
    instructor's notebooks nor write the grades. Empty when ``unshare`` is missing or not allowed."""
    if not _SANDBOX:
        tool = shutil.which("unshare")
        ok = (
            tool is not None
            and subprocess.run([tool, "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode
            == 0
        )
        _SANDBOX.append(ok)
        if not ok:
            print(
                "note: unshare is not available, so submissions run without a private view of the file "
                "system (see the instructors' guide)",
                flush=True,
            )
    if not _SANDBOX[0]:
        return []
    mounts = " && ".join(f"mount -t tmpfs -o size=1m none {shlex.quote(str(p))}" for p in hidden if p.is_dir())
    return [
        shutil.which("unshare"),
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        f'{mounts or "true"} && exec "$0" "$@"',
    ]


def run_isolated(
    nb: nbformat.NotebookNode, workdir: Path, *, timeout: float, memory_mb: int, hidden: list[Path] | None = None
) -> str | None:
    """Execute ``nb`` in a worker process inside ``workdir``, with the folders in ``hidden`` out of its
    sight (see :func:`sandbox_prefix`) and its memory capped by the worker itself before it starts the
    kernel; None if it finished, else why not. Safe to call from several threads at once."""
    import psutil

    path = workdir / "graded.ipynb"
    nbformat.write(nb, path)
    log = workdir / "worker.log"  # a file, not a pipe: a process the submission leaves behind cannot block us
    command = [
        *sandbox_prefix(hidden or []),
        sys.executable,
        "-m",
        "poisonlab_course.worker",
        str(path),
        "--memory",
        str(int(memory_mb)),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=workdir, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    worker = psutil.Process(proc.pid)
    seen: set[psutil.Process] = set()
    deadline = time.monotonic() + timeout
    stopped = None
    while proc.poll() is None:
        try:
            seen.update(worker.children(recursive=True))  # the kernel and whatever it starts
        except psutil.Error:
            pass
        if time.monotonic() > deadline:
            stopped = f"stopped after the time limit of {timeout:g} s"
            break
        time.sleep(0.2)
    for p in [worker, *seen]:  # the worker, its kernel and their children, finished or not
        try:
            for child in p.children(recursive=True):
                child.kill()
            p.kill()
        except psutil.Error:
            pass
    proc.wait()
    if stopped:
        return stopped
    if proc.returncode != 0:
        tail = log.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
        return f"the notebook could not be run: {tail[-1] if tail else proc.returncode}"
    return None


#: The largest answers file the grader reads (the checkers' answers are small).
MAX_ANSWERS_BYTES = 64 * 1024 * 1024


def _read_answers(path: Path) -> bytes:
    """The bytes of a regular answers file, never following a link and never blocking on a pipe."""
    info = os.lstat(path)  # FileNotFoundError when the recording cell never ran
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ANSWERS_BYTES:
        raise ValueError("the answers file is not a regular file of reasonable size")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_ANSWERS_BYTES + 1)


def _plain(value) -> bool:
    """Answers the checkers compare: dense CPU tensors, numbers, strings, None and lists, tuples and
    dicts of them (no sparse or other exotic tensors, which could break the comparison)."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, torch.Tensor):
        return type(value) is torch.Tensor and value.layout == torch.strided and value.device.type == "cpu"
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    return False


def replay(ex: Exercise, recorded: Path, variant: int = 0) -> tuple[float, str]:
    """Replay a student's recorded answers into the checker, in this process: (share passed, report)."""
    import importlib

    import torch

    try:
        calls = torch.load(io.BytesIO(_read_answers(recorded)), weights_only=True)
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise TypeError("not a list of answers")
        if not all(_plain(c.get("value")) for c in calls):
            raise TypeError("answers of a type the checkers do not take")
    except FileNotFoundError:
        return 0.0, "no answers were recorded (the exercise's cell raised, or the run stopped before it)"
    except Exception as error:  # a file the recording cell did not write, or answers of unknown types
        return 0.0, f"the recorded answers could not be read ({type(error).__name__})"
    queue = list(calls)

    def replayed(*args, **kwargs):
        if not queue:
            raise RuntimeError("the submission gave no answer for this case")
        call = queue.pop(0)
        if "raised" in call:  # the same built-in error again (checkers test that bad input raises)
            kind = RAISABLE.get(str(call["raised"]))
            message = str(call.get("message", ""))
            raise kind(message) if kind else RuntimeError(f"{call['raised']}: {message}")
        return call.get("value")

    from poisonlab.check import core

    checker = getattr(importlib.import_module(f"poisonlab.check.{ex.module}"), ex.checker)
    with core.variant(variant):  # the same cases, in the same order, as the worker drew
        try:
            result = checker(replayed)
        except Exception as error:  # an answer the comparison itself cannot handle
            return 0.0, f"the recorded answers could not be checked ({type(error).__name__}: {str(error)[:200]})"
    return result.passed / result.total if result.total else 0.0, repr(result)


def _submissions(folder: Path) -> list[tuple[str, str, Path]]:
    """(student, chapter, path), one per student and chapter: a second copy of a chapter is ignored."""
    found, seen = [], set()
    for student in sorted(p for p in folder.iterdir() if p.is_dir()):
        for nb in sorted(student.rglob("*.ipynb"), key=lambda p: (len(p.parts), str(p))):
            if ".ipynb_checkpoints" not in nb.parts and (student.name, nb.stem) not in seen:
                seen.add((student.name, nb.stem))
                found.append((student.name, nb.stem, nb))
    return found


#: Solution code that reads the checker's own frames (where the expected answers live) is not graded.
INTROSPECTION = re.compile(r"_getframe|f_locals|f_back|f_globals|\binspect\b|\bgc\b|currentframe|tb_frame")


_SOURCES: dict[str, nbformat.NotebookNode] = {}  # the instructor's notebooks, read once by grade()
_INPUTS: dict[tuple, list] = {}  # (notebook, exercise, variant) -> the checker's calls, computed once
_HIDDEN: list[Path] = []  # other folders the workers must not see: the grades, the submissions
#: Held while a submission's notebook is built and while its answers are replayed: the checkers run in
#: this process and draw their cases from one global variant, so one submission at a time does that.
_IN_PROCESS = threading.Lock()


def variants(course: Path) -> dict[str, int] | None:
    """{student: variant} when the assignments were made from a roster, else None."""
    path = course / "variants.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        return {row["student"]: int(row["variant"]) for row in csv.DictReader(f)}


def grade_one(student: str, chapter: str, path: Path, course: Path, *, timeout: float, memory_mb: int) -> list[Grade]:
    source = _SOURCES.get(chapter)
    if source is None:
        return [Grade(student, chapter, 0, 0.0, 0.0, f"no assignment called {chapter!r} in {course}")]
    exercises = exercises_of(source, chapter)

    def zero(message: str) -> list[Grade]:
        return [Grade(student, chapter, ex.number, 0.0, ex.points, message) for ex in exercises]

    roster = variants(course)
    if roster is not None and student not in roster:
        return zero(f"{student!r} is not on the roster the assignments were made from")
    variant = roster[student] if roster is not None else int(source.metadata.get("poisonlab", {}).get("variant", 0))

    try:
        submission = nbformat.read(path, as_version=4)
    except Exception as error:
        return zero(f"not a valid notebook: {type(error).__name__}: {str(error)[:200]}")
    answers_code = "\n".join(
        c.source for c in submission.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    )
    if INTROSPECTION.search(answers_code):
        return zero(
            "the answers inspect the interpreter's frames or objects (inspect, gc, sys._getframe): "
            "not graded automatically; ask the instructor"
        )
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp)
        answers = work / "answers"
        answers.mkdir()
        with _IN_PROCESS:
            graded = graded_notebook(source, submission, exercises, answers, variant)
        stopped = run_isolated(graded, work, timeout=timeout, memory_mb=memory_mb, hidden=[course.resolve(), *_HIDDEN])
        grades = []
        with _IN_PROCESS:
            for ex in exercises:
                share, report = replay(ex, answers / f"exercise-{ex.number}.pt", variant)
                if stopped and share == 0:
                    report = f"{stopped}; {report}"
                grades.append(Grade(student, chapter, ex.number, round(share * ex.points, 2), ex.points, report))
    return grades


def grade(
    folder: Path, course: Path, out: Path, *, timeout: float = 120, memory_mb: int = 2048, jobs: int = 1
) -> list[Grade]:
    """Grade every submission under ``folder``, ``jobs`` at a time (each under its own limits); writes
    ``out/grades.csv`` and ``out/feedback``. The rows come in the order of the submissions, whatever
    order they finish in."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    import importlib
    import pkgutil

    import poisonlab.check

    # Everything the scores depend on is loaded before the first submission runs, so that a submission
    # that rewrites files on disk cannot change how the next ones are scored.
    for module in pkgutil.iter_modules(poisonlab.check.__path__):
        importlib.import_module(f"poisonlab.check.{module.name}")
    _SOURCES.clear()
    _INPUTS.clear()
    for path in (course / "source").glob("*/*.ipynb"):
        _SOURCES[path.stem] = nbformat.read(path, as_version=4)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "feedback", ignore_errors=True)
    _HIDDEN[:] = [out.resolve(), folder.resolve()]
    sandbox_prefix([])  # decided (and said) once, before the workers start
    submissions = _submissions(folder)

    def timed(submission: tuple[str, str, Path]) -> tuple[list[Grade], float]:
        start = time.perf_counter()
        grades = grade_one(*submission, course, timeout=timeout, memory_mb=memory_mb)
        return grades, time.perf_counter() - start

    rows = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        # each result as soon as it and those before it are in: feedback and progress as grading goes
        for (student, chapter, _), (grades, seconds) in zip(submissions, pool.map(timed, submissions)):
            rows += grades
            feedback = out / "feedback" / student / f"{chapter}.md"
            feedback.parent.mkdir(parents=True, exist_ok=True)
            total, most = sum(g.points for g in grades), sum(g.max_points for g in grades)
            sections = [
                f"## Exercise {g.exercise}: {g.points:g} of {g.max_points:g}\n\n```\n{g.message}\n```" for g in grades
            ]
            feedback.write_text(f"# {chapter}: {total:g} of {most:g} points\n\n" + "\n\n".join(sections) + "\n")
            print(f"{student:>20} {chapter}: {total:g}/{most:g} ({seconds:.1f} s)", flush=True)
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "chapter", "exercise", "points", "max", "message"])
        for g in rows:
            writer.writerow(
                [
                    g.student,
                    g.chapter,
                    g.exercise,
                    g.points,
                    g.max_points,
                    g.message.splitlines()[0] if g.message else "",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, nargs="?", help="folder of <student>/<chapter>.ipynb")
    parser.add_argument("--course", type=Path, default=ROOT / "_build" / "course", help="made by make assignments")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per submission")
    parser.add_argument("--memory", type=int, default=2048, help="MiB per submission")
    parser.add_argument("--jobs", type=int, default=1, help="submissions run side by side")
    args = parser.parse_args(argv)
    if args.submissions is None or not args.submissions.is_dir():
        parser.error("give the folder of submissions, e.g. make grade SUBMISSIONS=path/to/folder")
    grade(args.submissions, args.course, args.out, timeout=args.timeout, memory_mb=args.memory, jobs=args.jobs)
    print(f"grades: {args.out / 'grades.csv'}; feedback: {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
