"""The worker of :mod:`poisonlab_course.grade`: execute one graded notebook.

``python -m poisonlab_course.worker <notebook> [--memory MiB]`` runs every code cell of the notebook, in
order, in a fresh ``python3`` kernel whose working folder is the notebook's, and goes on after a cell
that raises: the grader scores what the notebook's recording cells saved, not its outputs. With
``--memory``, the worker first caps its own data segment (``RLIMIT_DATA``) at that many MiB, before it
starts the kernel, which inherits the cap. The grader starts it in a process of its own, under a time
limit, and kills it and its kernel when it ends.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def limit_memory(memory_mb: int) -> None:
    """Cap this process's data segment, and so that of every process it starts, at ``memory_mb`` MiB."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def run(path: str, memory_mb: int | None = None) -> int:
    """Execute the notebook at ``path`` (under ``memory_mb`` MiB, see :func:`limit_memory`); 0 once
    every cell has run."""
    if memory_mb is not None:
        limit_memory(memory_mb)
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
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "--memory" and args[2].isdigit():
        raise SystemExit(run(args[0], int(args[2])))
    if len(args) != 1:
        raise SystemExit("usage: python -m poisonlab_course.worker <notebook> [--memory MiB]")
    raise SystemExit(run(args[0]))
