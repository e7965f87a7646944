"""The worker of :mod:`poisonlab_course.grade`: execute one graded notebook.

``python -m poisonlab_course.worker <notebook>`` runs every code cell of the notebook, in order, in a
fresh ``python3`` kernel whose working folder is the notebook's, and goes on after a cell that raises:
the grader scores what the notebook's recording cells saved, not its outputs. The grader starts it in
a process of its own, under a time and a memory limit, and kills it and its kernel when it ends.
"""

from __future__ import annotations

import sys
from pathlib import Path


def run(path: str) -> int:
    """Execute the notebook at ``path``; 0 once every cell has run."""
    # nbclient imports nbformat, whose jsonschema compiles some forty grammars of rfc3987-syntax (when it
    # is installed) at import, for the "iri" formats that no notebook schema uses: seconds for every
    # submission (python-jsonschema/jsonschema#1428). jsonschema goes on without that optional module.
    sys.modules.setdefault("rfc3987_syntax", None)
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=None,
        kernel_name="python3",
        allow_errors=True,
        # the answers are saved by then; the kernel is killed, not asked to stop (which takes seconds)
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(Path(path).parent)}},
    ).execute()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m poisonlab_course.worker <notebook>")
    raise SystemExit(run(sys.argv[1]))
