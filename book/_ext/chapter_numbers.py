"""Number each chapter's exercises as "Exercise <chapter>.<n>" (Exercise 2.3 is the third exercise
of chapter 2), on the page and in every cross-reference to it.

Sphinx numbers enumerable nodes through the whole book ("Exercise 17") unless the table of contents
is numbered, which would also number the chapters by their position (the prologue would become
chapter 1). This extension keeps Sphinx's order and restarts the count in each chapter.
The chapter's number is the one in its file name, ``chapters/02-patch-backdoors`` → 2.
"""

from __future__ import annotations

import re

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

CHAPTER = re.compile(r"(?:^|/)chapters/(\d+)-")
NUMBERED = ("exercise",)


def chapter_of(docname: str) -> int | None:
    """The chapter number in a document's name, or None for a page that is not a chapter."""
    match = CHAPTER.search(docname)
    return int(match.group(1)) if match else None


def prefix_chapter_numbers(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Renumber each chapter's exercises 1, 2, … in the order Sphinx numbered them, prefixed by the
    chapter's number (once: numbers that already carry it are left alone, so an incremental build
    that did not renumber does not prefix twice)."""
    for docname, numbers in env.toc_fignumbers.items():
        chapter = chapter_of(docname)
        if chapter is None:
            continue
        for kind in NUMBERED:
            assigned = numbers.get(kind, {})
            if not assigned or any(len(n) != 1 for n in assigned.values()):
                continue
            in_order = sorted(assigned, key=assigned.__getitem__)
            numbers[kind] = {node_id: (chapter, i) for i, node_id in enumerate(in_order, start=1)}
    return []


def setup(app: Sphinx) -> dict:
    # After Sphinx's own numbering, which runs in the TocTreeCollector on the same event.
    app.connect("env-get-updated", prefix_chapter_numbers, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
