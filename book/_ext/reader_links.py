"""Point each chapter's Colab and Binder launch buttons at its reader copy.

The theme's launch buttons open the page's own source, ``chapters/<chapter>.ipynb``, which is
written in MyST Markdown for this site: Colab and plain Jupyter show its roles and directives as
raw markup, and its written solutions in plain view. ``make notebooks`` writes a copy of every
chapter in plain Markdown to ``notebooks/<chapter>.ipynb`` (:mod:`poisonlab_course.reader`); this
extension rewrites the launch links of the chapters' pages to open those copies instead.
"""

from __future__ import annotations

import re

from sphinx.application import Sphinx

CHAPTER_SOURCE = re.compile(r"chapters/(?P<stem>\d\d-[\w-]+)\.ipynb")


def reader_url(url: str) -> str:
    """``url`` with the chapter notebook it opens replaced by the chapter's reader copy."""
    return CHAPTER_SOURCE.sub(r"notebooks/\g<stem>.ipynb", url)


def rewrite_launch_buttons(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = reader_url(button["url"])


def setup(app: Sphinx) -> dict:
    # after the theme has added its buttons (sphinx-book-theme adds them at priority 501)
    app.connect("html-page-context", rewrite_launch_buttons, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
