"""The reader copies of the chapters (notebooks/, ``make notebooks``): plain Markdown that Colab and
Jupyter render, no solution text, in sync with the chapters (poisonlab_course.reader)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt
from poisonlab_course import reader
from poisonlab_course.assignments import BEGIN, END, SOLUTION_BLOCK, stub

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
COPIES = ROOT / "notebooks"
MYST_LEFT = [
    re.compile(r"\{[a-z]+(?::[a-z]+)?\}`"),  # a role: {glue:text}`x`, {cite}`k`, {eq}`l`
    re.compile(r"^(?:`{3,}|:{3,})\{", re.M),  # a directive: ```{exercise}
    re.compile(r"^:(?:label|class):", re.M),  # a directive's option
    re.compile(r"^\([\w-]+\)=", re.M),  # a target: (label)=
    re.compile(r"\$\$\s*\([\w-]+\)"),  # a labelled equation: $$ (label)
]


def _copy(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(COPIES / path.name, as_version=4)


def _myst_left(markdown: str) -> list[str]:
    """The MyST fragments left in ``markdown``: in its text (mathematics left out, since LaTeX has
    braces too) and in what a CommonMark renderer makes of it (a directive becomes a code block of
    "language" ``{name}``, a role a ``{name}`` before inline code)."""
    without_math = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", " ", markdown, flags=re.S)
    html = MarkdownIt("commonmark").render(without_math)
    left = [m.group(0) for pattern in MYST_LEFT for m in pattern.finditer(without_math)]
    left += re.findall(r'class="language-\{[^"]*"|\{[a-z]+(?::[a-z]+)?\}<code>', html)
    return left + [m.group(0) for m in MYST_LEFT[4].finditer(markdown)]


def _solution_lines(chapter: nbformat.NotebookNode) -> set[str]:
    """Distinctive lines of the chapter's solutions: written ({solution} blocks) and in code."""
    lines = set()
    for cell in chapter.cells:
        if cell.cell_type == "markdown":
            for block in SOLUTION_BLOCK.findall(cell.source):
                lines |= {ln.strip() for ln in block.split("\n")[1:-1] if len(ln.strip()) > 40}
        elif BEGIN in cell.source:
            inside = cell.source.split(BEGIN, 1)[1].split(END, 1)[0]
            lines |= {ln.strip() for ln in inside.split("\n") if len(ln.strip()) > 20}
    return lines


def test_every_chapter_has_a_reader_copy_and_nothing_else_is_there():
    assert sorted(p.name for p in COPIES.glob("*.ipynb")) == [p.name for p in CHAPTERS]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_myst_markup_survives_in_a_reader_copy(path):
    left = [
        fragment for cell in _copy(path).cells if cell.cell_type == "markdown" for fragment in _myst_left(cell.source)
    ]
    assert left == []


def test_the_myst_check_finds_the_markup_of_a_chapter():
    chapter = nbformat.read(CHAPTERS[4], as_version=4)
    left = [fragment for cell in chapter.cells if cell.cell_type == "markdown" for fragment in _myst_left(cell.source)]
    assert len(left) > 150 and any("{glue:text}" in f for f in left) and any("{exercise}" in f for f in left)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_text_survives_in_a_reader_copy(path):
    chapter = nbformat.read(path, as_version=4)
    solutions = _solution_lines(chapter)
    assert solutions, "the chapter should have solutions to look for"
    # lines that the chapter also has outside its solutions (an import, say) give nothing away
    outside = "\n".join(
        stub(c.source) if BEGIN in c.source else SOLUTION_BLOCK.sub("", c.source) for c in chapter.cells
    )
    solutions = {line for line in solutions if line not in outside}
    copy = "\n".join(cell.source for cell in _copy(path).cells)
    assert [line for line in solutions if line in copy] == []
    code = "\n".join(cell.source for cell in _copy(path).cells if cell.cell_type == "code")
    assert BEGIN not in code and "{solution}" not in copy


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_reader_copy_runs_the_chapters_own_code_with_the_exercises_as_stubs(path):
    nb = nbformat.read(path, as_version=4)
    needed = reader.answers_needed(nb, int(path.stem[:2]))
    chapter = [
        reader.guarded(c.source, *needed[i]) if i in needed else stub(c.source) if BEGIN in c.source else c.source
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and not c.source.startswith(reader.ANSWER_CHECK)
    ]
    copy = [c.source for c in _copy(path).cells if c.cell_type == "code"]
    assert copy == chapter
    setup = copy[0]
    assert setup.startswith("# Setup") and 'if "google.colab" in sys.modules:' in setup


def test_the_setup_cell_installs_the_course_on_colab(tmp_path):
    """The prologue's setup cell, in a fresh kernel where ``google.colab`` exists, installs the
    package (here from this clone instead of the network) and imports it."""
    from nbclient import NotebookClient

    setup = next(c.source for c in _copy(CHAPTERS[0]).cells if c.cell_type == "code")
    url = "git+https://github.com/poisoned-data/poisoned-data"
    assert url in setup
    target, clone = tmp_path / "site-packages", tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)  # pip builds in it
    local = setup.replace(
        f'"poisonlab @ {url}"', f'--no-deps --no-build-isolation --target {target} "poisonlab @ file://{clone}"'
    )
    cells = [
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')",
        local,
        f"import pathlib\nassert (pathlib.Path({str(target)!r}) / 'poisonlab' / '__init__.py').exists()",
        "assert pl.__name__ == 'poisonlab'",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for copy in CHAPTERS[1:]:
        assert url in next(c.source for c in _copy(copy).cells if c.cell_type == "code")


@pytest.mark.skipif(
    not os.environ.get("READER_COPIES_RUN"),
    reason="runs every chapter again (about 10 minutes): set READER_COPIES_RUN=1",
)
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_reader_copy_runs_top_to_bottom_as_on_colab(path, tmp_path):
    """The reader copy, as Colab runs it: a fresh kernel where ``google.colab`` exists, every cell in
    order, the exercises left as stubs. The setup cell's install is pointed at this clone and kept
    out of the way (``--target``), so the run uses the installed package."""
    from nbclient import NotebookClient

    nb = _copy(path)
    url = '"poisonlab @ git+https://github.com/poisoned-data/poisoned-data"'
    target = tmp_path / "site-packages"
    nb.cells[next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")].source = (
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        + next(c.source for c in nb.cells if c.cell_type == "code").replace(
            url, f'--no-deps --no-build-isolation --target {target} "poisonlab @ file://{ROOT}"'
        )
    )
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()


BOOK = reader.Book(
    equations={"ch9-loss": 7},
    numbered={"ch9-ex-a": "Exercise 9.1", "ch9-thm": "Theorem 2"},
    sections={"ch9-intro": ("chapters/09-x", "1. Intro")},
    pages={"book/notation": "Notation"},
    citations={"gu2017badnets": "Gu et al., 2017", "koh2017understanding": "Koh and Liang, 2017"},
)


def test_plain_markdown_turns_each_construct_into_commonmark():
    source = """\
(ch9-intro)=
## 1. Intro

The loss {glue:text}`acc:.1%` as in {cite}`gu2017badnets,koh2017understanding`, see eq. {eq}`ch9-loss`,
{ref}`ch9-ex-a`, {prf:ref}`ch9-thm`, the {doc}`notation <../book/notation>`, a {term}`spike <Spike>`.

$$
L = 1
$$ (ch9-loss)

```{exercise}
:label: ch9-ex-a

Do it with {glue:text}`n`.
```

```{solution} ch9-ex-a
:class: dropdown

The secret answer.
```

```{prf:theorem} Big
:label: ch9-thm

True.
```
"""
    out = reader.plain_markdown(source, {"acc": "0.875", "n": "12"}, BOOK, "chapters/09-x")
    assert "87.5%" in out and "(ch9-intro)=" not in out
    assert "([Gu et al., 2017; Koh and Liang, 2017](" in out
    assert "eq. (7)" in out and "\\tag{7}" in out and "(ch9-loss)" not in out
    assert "Exercise 9.1, Theorem 2, the [notation](" in out and "book/notation.html)" in out
    assert "a spike." in out
    assert "#### Exercise 9.1\n\nDo it with 12." in out
    assert "secret" not in out and "dropdown" not in out
    assert "> **Theorem 2 (Big).** True." in out


def test_plain_markdown_refuses_what_it_cannot_render():
    with pytest.raises(KeyError, match="never glued"):
        reader.plain_markdown("{glue:text}`missing`", {}, BOOK, "chapters/09-x")
    with pytest.raises(KeyError, match="bibliography"):
        reader.plain_markdown("{cite}`nobody2099`", {}, BOOK, "chapters/09-x")
    with pytest.raises(ValueError, match="role"):
        reader.plain_markdown("{abbr}`A (a)`", {}, BOOK, "chapters/09-x")
    with pytest.raises(ValueError, match="directive"):
        reader.plain_markdown("```{figure} x.png\nA figure.\n```", {}, BOOK, "chapters/09-x")


def test_the_book_is_numbered_as_the_site_numbers_it():
    bk = reader.book()
    # the site's numbers (built pages): equations run through the book, exercises per chapter
    assert bk.equations["ch4-mixture"] == 15 and bk.equations["ch4-score"] == 18
    assert bk.numbered["ch4-ex-mean-scores"] == "Exercise 4.2" and bk.numbered["ch5-ex-detector"] == "Exercise 5.1"
    assert bk.numbered["ch5-tv-theorem"] == "Theorem 1" and bk.numbered["ch5-price"] == "Corollary 2"
    assert bk.citations["gu2017badnets"] == "Gu et al., 2017"


def test_the_sync_check_accepts_another_machines_values_and_no_other_text(tmp_path):
    chapter = tmp_path / "09-x.ipynb"
    text = "# T\n\nIt took {glue:text}`run_seconds:.2f` s for {glue:text}`n` runs."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text), nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, chapter)

    def run(seconds, n):
        out = nbformat.v4.new_output("display_data", data={"text/plain": ""})
        executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell()])
        for key, value in (("run_seconds", seconds), ("n", n)):
            out = nbformat.v4.new_output("display_data", data={"text/plain": repr(value)})
            out.metadata = {"scrapbook": {"name": key, "mime_prefix": ""}}
            executed.cells[0].outputs.append(out)
        return executed

    stored = reader.text_of(reader.reader_copy(chapter, run(1.15, 3), BOOK))
    assert "It took 1.15 s for 3 runs." in stored
    assert reader.matches(stored, chapter, run(1.33, 3), BOOK)  # another machine's timing
    assert reader.matches(stored, chapter, run(1.15, 4), BOOK)  # another CPU's result
    for edited in (text.replace("It took", "It needed"), text.replace(" runs.", " runs.\n\nMore.")):
        nb.cells[0].source = edited
        nbformat.write(nb, chapter)
        assert not reader.matches(stored, chapter, run(1.15, 3), BOOK)  # the prose changed
    nb.cells[0].source = text
    nb.cells[1].source = "x = 2"
    nbformat.write(nb, chapter)
    assert not reader.matches(stored, chapter, run(1.15, 3), BOOK)  # the code changed


def test_a_cell_that_needs_an_answer_says_so_until_it_is_written(capsys):
    code = reader.guarded("x = 1\nresult = f(x)\nprint('ran', result)", "f", "Exercise 9.1")
    assert code.startswith("try:\n    x = 1\n") and "except NotImplementedError:" in code

    def stub_f(x):
        raise NotImplementedError()

    scope = {"f": stub_f}
    exec(code, scope)
    assert "uses your `f` from Exercise 9.1" in capsys.readouterr().out and scope["x"] == 1
    scope = {"f": lambda x: x + 1}
    exec(code, scope)
    assert capsys.readouterr().out == "ran 2\n"
    with pytest.raises(ValueError, match="magic"):
        reader.guarded("%time f(1)", "f", "Exercise 9.1")
    nb = nbformat.read(CHAPTERS[0], as_version=4)
    assert reader.answers_needed(nb, 0)  # the prologue compares answers with the library's


def test_launch_buttons_open_the_reader_copies():
    spec = importlib.util.spec_from_file_location("reader_links", ROOT / "book" / "_ext" / "reader_links.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    colab = "https://colab.research.google.com/github/o/r/blob/main/chapters/04-spectral-detection.ipynb"
    assert links.reader_url(colab).endswith("/blob/main/notebooks/04-spectral-detection.ipynb")
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/chapters/00-prologue.ipynb"
    assert links.reader_url(binder).endswith("urlpath=lab/tree/notebooks/00-prologue.ipynb")
    assert links.reader_url("https://x/book/notation.md") == "https://x/book/notation.md"
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [{"url": colab}]}]}
    links.rewrite_launch_buttons(None, "chapters/04-spectral-detection", "page.html", context, None)
    assert "notebooks/04-spectral-detection.ipynb" in context["header_buttons"][0]["buttons"][0]["url"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_plain_markdown_numbers_footnotes():
    text = "We follow it.[^beta] More.\n\n[^beta]: The paper rescales β\n    by a ratio.\n\nNext."
    out = reader.plain_markdown(text, {}, BOOK, "chapters/09-x")
    assert out == "We follow it.<sup>1</sup> More.\n\n<sup>1</sup> The paper rescales β by a ratio.\n\nNext."
    with pytest.raises(ValueError, match="never defined"):
        reader.plain_markdown("a[^x]", {}, BOOK, "chapters/09-x")
    with pytest.raises(ValueError, match="never referred"):
        reader.plain_markdown("a\n\n[^x]: b", {}, BOOK, "chapters/09-x")
