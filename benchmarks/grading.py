"""Benchmark: grading N submissions of one chapter with :mod:`poisonlab_course.grade` (time per submission).

Run it with ``.venv/bin/python benchmarks/grading.py [--n 30] [--chapter 00-prologue]``. It makes the
assignments into a temporary folder, submits the reference solution N times, grades them all and
prints the total and per-submission wall time. Each submission starts its own worker and kernel, which is
most of the cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat
from poisonlab_course import assignments, grade

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--chapter", default="00-prologue")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assignments.generate([ROOT / "chapters" / f"{args.chapter}.ipynb"], tmp / "course")
        reference = nbformat.read(tmp / "course" / "source" / args.chapter / f"{args.chapter}.ipynb", as_version=4)
        for i in range(args.n):
            (tmp / "subs" / f"student-{i:02d}").mkdir(parents=True)
            nbformat.write(reference, tmp / "subs" / f"student-{i:02d}" / f"{args.chapter}.ipynb")
        start = time.perf_counter()
        rows = grade.grade(tmp / "subs", tmp / "course", tmp / "out")
        total = time.perf_counter() - start
    full = sum(g.points == g.max_points for g in rows) / len(rows)
    print(
        f"grading {args.n} submissions of {args.chapter}: {total:.1f} s, {total / args.n:.2f} s per submission "
        f"({full:.0%} of exercises at full marks)"
    )


if __name__ == "__main__":
    main()
