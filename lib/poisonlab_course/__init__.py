"""poisonlab_course — the instructors' tooling of *Poisoned Data*: the chapters as nbgrader assignments.

The chapters are the single source of every exercise; this package turns them into assignments and
grades what students hand back. It is installed with ``poisonlab`` (same project, same ``lib/``
folder) but needs the ``course`` extra (nbgrader, psutil), and no chapter imports it.

- :mod:`poisonlab_course.assignments` (``make assignments``): finds a chapter's exercises (a solution
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, then a ``poisonlab.check`` cell), makes the
  student's stub of a solution, writes the instructor's and the student's notebooks with
  ``nbgrader generate_assignment``;
- :mod:`poisonlab_course.grade` (``make grade``): grades submitted notebooks, each run apart under
  limits by :mod:`poisonlab_course.worker`, and scores them in the grader's own process.

Run them as ``python -m poisonlab_course.assignments`` and ``python -m poisonlab_course.grade``.
"""
