"""Reader copies of the chapters: ``make notebooks`` (``python -m poisonlab_course.reader``).

The chapters are written for the site, in MyST Markdown: numbers pasted from the run
(``{glue:text}``), citations, equation and exercise references, exercise, solution and theorem
blocks. Colab, and Jupyter without the jupyterlab-myst extension, show all of that as raw markup,
and the written solutions in plain view. This module writes, for every chapter, a *reader copy* in
``notebooks/`` that reads the same anywhere, in plain CommonMark with ``$…$`` mathematics:

- every glued number as the reference run printed it (the executed chapter in the site's notebook
  cache, ``_build/.jupyter_cache``), with a note at the top saying so;
- citations as "(Gu et al., 2017)", linked to the site's bibliography; equation references as the
  site's numbers, "(13)", and each labelled equation tagged with its number; references to exercises
  and theorems as "Exercise 4.2" and "Theorem 1", and to other pages as links to the site;
- exercises as headed sections, theorems and notes as quoted blocks, proofs in place, and the written
  solutions removed; every exercise's code cell as the student's stub (:func:`assignments.stub`),
  and the hidden cells that check the reference answer left out;
- the setup cell in view, with its Colab install line;
- a code cell that later calls an exercise's function inside ``try``, so that until the reader has
  written it the cell says so instead of stopping *Run all*.

The code cells are otherwise the chapter's own, so the chapter's tests cover them. The copies are
committed, so that the site's Colab and Binder buttons can open them by address;
``tests/test_chapters_execute.py`` regenerates each one from the chapter's cached run and fails when
the committed copy's text or code differs (:func:`matches`); its glued values may differ, because the
same seed gives other numbers on a CPU with other vector instructions.

Usage: ``python -m poisonlab_course.reader [--out DIR] [--check] [chapters ...]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from poisonlab_course.assignments import BEGIN, SOLUTION_BLOCK, exercises, stub
from poisonlab_course.citations import labels_by_key

ROOT = Path(__file__).resolve().parents[2]  # the repository: the package is installed editable from it
OUT = ROOT / "notebooks"
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SITE = CONFIG.get("html", {}).get("baseurl", "").rstrip("/") + "/"
CACHE = ROOT / CONFIG["execute"]["cache"]

NOTE = """\
*The reader's copy of a chapter of* Poisoned Data, *for Colab and plain Jupyter. The [course
site]({site}) shows the same chapter already run, with its figures and the worked solutions of its
exercises. The numbers in the text are those of that reference run; your run prints its own under
each cell, and on another machine or version of PyTorch their last digits may differ.*"""

ROLE = re.compile(r"\{(?P<role>[a-z]+(?::[a-z]+)?)\}`(?P<body>[^`]*)`")
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[a-z:\-]+)\}(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.S | re.M
)
LABELLED_EQUATION = re.compile(r"\$\$(?P<math>.*?)\$\$[ \t]*\((?P<label>[^)\s]+)\)", re.S)
TARGET = re.compile(r"^\((?P<label>[^)\s]+)\)=[ \t]*\n", re.M)
OPTION = re.compile(r"^:(?P<key>[a-z\-]+):[ \t]*(?P<value>.*)$", re.M)
HEADING = re.compile(r"^#+[ \t]+(?P<title>.+)$", re.M)


@dataclass
class Book:
    """What the reader copies need to know of the whole book: numbers, titles and the bibliography."""

    equations: dict[str, int] = field(default_factory=dict)  # label -> the site's number
    numbered: dict[str, str] = field(default_factory=dict)  # label -> "Exercise 4.2", "Theorem 1"
    sections: dict[str, str] = field(default_factory=dict)  # label -> (page, section title)
    pages: dict[str, str] = field(default_factory=dict)  # docname -> title
    citations: dict[str, str] = field(default_factory=dict)  # bibtex key -> "Gu et al., 2017"


def _toc_docs() -> list[str]:
    """The site's pages in reading order, as docnames ("chapters/00-prologue")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    docs = [toc["root"]]
    for part in toc.get("parts", []):
        docs += [entry["file"] for entry in part.get("chapters", [])]
    return docs


def _markdown_of(doc: str) -> str:
    path = ROOT / f"{doc}.ipynb"
    if path.exists():
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return (ROOT / f"{doc}.md").read_text()


def book() -> Book:
    """Number the book as the site does: labelled equations through the whole book in reading order,
    exercises per chapter ("Exercise 4.2"), theorems and corollaries through the book."""
    from pybtex.database import parse_file

    out = Book()
    counts: dict[str, int] = {}
    for doc in _toc_docs():
        text = _markdown_of(doc)
        title = HEADING.search(text)
        out.pages[doc] = title.group("title").strip() if title else doc
        chapter = re.match(r"chapters/(\d+)-", doc)
        exercise = 0
        events = [(m.start(), "eq", m) for m in LABELLED_EQUATION.finditer(text)]
        events += [(m.start(), "dir", m) for m in DIRECTIVE.finditer(text)]
        for _, kind, m in sorted(events, key=lambda e: e[0]):
            if kind == "eq":
                counts["equation"] = counts.get("equation", 0) + 1
                out.equations[m.group("label")] = counts["equation"]
                continue
            name, options = m.group("name"), dict(OPTION.findall(m.group("body")))
            label = options.get("label")
            if name == "exercise" and chapter:
                exercise += 1
                number = f"Exercise {int(chapter.group(1))}.{exercise}"
            elif name.startswith("prf:") and name != "prf:proof":
                kind_name = name.split(":")[1]
                counts[kind_name] = counts.get(kind_name, 0) + 1
                number = f"{kind_name.capitalize()} {counts[kind_name]}"
            else:
                continue
            if label:
                out.numbered[label] = number
        for m in TARGET.finditer(text):
            heading = HEADING.search(text, m.end())
            out.sections[m.group("label")] = (doc, heading.group("title").strip() if heading else m.group("label"))
    out.citations = labels_by_key(parse_file(str(ROOT / CONFIG["bibtex_bibfiles"][0])))
    return out


def glued(executed: nbformat.NotebookNode) -> dict[str, str]:
    """{key: text/plain} of every value the executed chapter glued."""
    values = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook", {})
            if "name" in record:
                data = output.get("data", {})
                values[record["name"]] = data.get(record.get("mime_prefix", "") + "text/plain", "")
    return values


MASK = "\u27e6run-dependent\u27e7"


def paste(text: str, fmt: str) -> str:
    """A glued value as ``{glue:text}`key:fmt``` shows it (myst-nb's ``format_plain_text``)."""
    from myst_nb.core.variables import format_plain_text

    if text == MASK:
        return MASK
    return format_plain_text(text, fmt or "s")


def _site_link(doc: str, anchor: str = "") -> str:
    return f"{SITE}{doc}.html" + (f"#{anchor}" if anchor else "")


def _resolve_doc(target: str, page: str) -> str:
    """The docname a ``{doc}`` target on ``page`` names ("../book/notation" from a chapter)."""
    base = Path(page).parent
    parts = []
    for piece in (base / target).as_posix().split("/"):
        if piece == "..":
            parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _titled(body: str) -> tuple[str | None, str]:
    """("title", "target") for "title <target>", (None, "target") otherwise."""
    m = re.fullmatch(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>", body.strip(), re.S)
    return (m.group("title"), m.group("target")) if m else (None, body.strip())


def _role(m: re.Match, values: dict[str, str], bk: Book, page: str) -> str:
    role, body = m.group("role"), m.group("body")
    if role == "glue:text" or role == "glue":
        key, _, fmt = body.partition(":")
        if key not in values:
            raise KeyError(f"{page}: the text quotes {key!r}, which the run never glued")
        return paste(values[key], fmt)
    if role in ("cite", "cite:p", "cite:t"):
        keys = [k.strip() for k in body.split(",")]
        missing = [k for k in keys if k not in bk.citations]
        if missing:
            raise KeyError(f"{page}: no bibliography entry for {missing}")
        refs = "; ".join(bk.citations[k] for k in keys)
        if role == "cite:t":
            return f"[{refs}]({_site_link('book/references')})"
        return f"([{refs}]({_site_link('book/references')}))"
    if role == "eq":
        return f"({bk.equations[body.strip()]})"
    if role in ("ref", "prf:ref", "numref"):
        title, label = _titled(body)
        if label in bk.numbered:
            return title or bk.numbered[label]
        doc, section = bk.sections[label]
        return f"[{title or section}]({_site_link(doc, label)})"
    if role == "doc":
        title, target = _titled(body)
        doc = _resolve_doc(target, page)
        return f"[{title or bk.pages.get(doc, doc)}]({_site_link(doc)})"
    if role == "term":
        title, term = _titled(body)
        return title or term
    if role == "math":
        return f"${body}$"
    raise ValueError(f"{page}: no plain-Markdown form for the role {{{role}}}")


def _quoted(text: str) -> str:
    return "\n".join(("> " + line).rstrip() for line in text.strip("\n").split("\n"))


def _directive(m: re.Match, bk: Book) -> str:
    name, arg, body = m.group("name"), m.group("arg").strip(), m.group("body")
    options = dict(OPTION.findall(body))
    body = OPTION.sub("", body).strip("\n")
    if name == "solution":
        return ""
    if name == "exercise":
        number = bk.numbered.get(options.get("label", ""), "Exercise")
        return f"#### {number}{': ' + arg if arg else ''}\n\n{body.strip()}"
    if name.startswith("prf:") and name != "prf:proof":
        number = bk.numbered.get(options.get("label", ""), name.split(":")[1].capitalize())
        return _quoted(f"**{number}{' (' + arg + ')' if arg else ''}.** {body.strip()}")
    if name == "prf:proof":
        return f"*Proof.* {body.strip()} $\\blacksquare$"
    if name in ("admonition", "note", "tip", "important", "warning", "caution", "seealso", "hint"):
        title = arg or name.capitalize()
        return _quoted(f"**{title}**\n\n{body.strip()}")
    raise ValueError(f"no plain-Markdown form for the directive {{{name}}}")


def plain_markdown(source: str, values: dict[str, str], bk: Book, page: str) -> str:
    """One markdown cell of a chapter in plain CommonMark (see the module's docstring)."""
    text = SOLUTION_BLOCK.sub("", source)
    text = TARGET.sub("", text)
    text = LABELLED_EQUATION.sub(
        lambda m: f"$${m.group('math').rstrip()} \\tag{{{bk.equations[m.group('label')]}}}\n$$", text
    )
    # directives may hold roles, and (a solution) other directives: innermost first
    for _ in range(3):
        text = DIRECTIVE.sub(lambda m: _directive(m, bk), text)
    text = ROLE.sub(lambda m: _role(m, values, bk, page), text)
    text = _footnotes(text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


FOOTNOTE_DEFINITION = re.compile(r"^\[\^(?P<name>[\w-]+)\]:[ \t]*(?P<body>.*(?:\n[ \t]+\S.*)*)", re.M)
FOOTNOTE_REFERENCE = re.compile(r"\[\^(?P<name>[\w-]+)\]")


def _footnotes(text: str) -> str:
    """MyST footnotes in plain CommonMark: each reference ``[^name]`` a superscript number (in the
    order of first reference in the cell), each definition ``[^name]: text`` (continued by indented
    lines) a paragraph that starts with the same number."""
    numbers: dict[str, int] = {}
    for m in FOOTNOTE_REFERENCE.finditer(FOOTNOTE_DEFINITION.sub("", text)):
        numbers.setdefault(m.group("name"), len(numbers) + 1)

    def definition(m: re.Match) -> str:
        if m.group("name") not in numbers:
            raise ValueError(f"footnote [^{m.group('name')}] is defined but never referred to")
        body = " ".join(line.strip() for line in m.group("body").split("\n") if line.strip())
        return f"<sup>{numbers[m.group('name')]}</sup> {body}"

    defined = {m.group("name") for m in FOOTNOTE_DEFINITION.finditer(text)}
    text = FOOTNOTE_DEFINITION.sub(definition, text)

    def reference(m: re.Match) -> str:
        if m.group("name") not in defined:
            raise ValueError(f"footnote [^{m.group('name')}] is referred to but never defined")
        return f"<sup>{numbers[m.group('name')]}</sup>"

    return FOOTNOTE_REFERENCE.sub(reference, text)


#: The first line of a hidden cell that checks an exercise's reference answer (not in the copies).
ANSWER_CHECK = "# Checks for the exercise's answer"

NEEDS_ANSWER = """\
try:
{body}
except NotImplementedError:
    print("This cell uses your `{function}` from {exercise}: write it above, then run this cell again.")"""


def guarded(source: str, function: str, exercise: str) -> str:
    """A code cell that calls the student's ``function`` before it is written: the same code inside
    ``try``, so that a stub's ``NotImplementedError`` prints what to do instead of stopping the run."""
    if '"""' in source or "'''" in source or re.search(r"^\s*[%!]", source, re.M):
        raise ValueError(f"cannot guard a cell with a multi-line string or a magic:\n{source}")
    body = "\n".join(("    " + line).rstrip() for line in source.split("\n"))
    return NEEDS_ANSWER.format(body=body, function=function, exercise=exercise)


def answers_needed(nb: nbformat.NotebookNode, chapter: int) -> dict[int, tuple[str, str]]:
    """{cell index: (function, "Exercise c.k")} for the code cells, after an exercise's check, that call
    the function the exercise asks for."""
    needed = {}
    for k, (_, check, _, _, function) in enumerate(exercises(nb), start=1):
        for i in range(check + 1, len(nb.cells)):
            cell = nb.cells[i]
            if cell.cell_type == "code" and i not in needed and re.search(rf"\b{function}\(", cell.source):
                needed[i] = (function, f"Exercise {chapter}.{k}")
    return needed


def reader_copy(
    path: Path, executed: nbformat.NotebookNode, bk: Book, *, mask_glued: bool = False
) -> nbformat.NotebookNode:
    """The reader copy of the chapter at ``path``, its glued values taken from ``executed``
    (with ``mask_glued``, every glued value as :data:`MASK`)."""
    source = nbformat.read(path, as_version=4)
    page = f"chapters/{path.stem}"
    values = glued(executed)
    if mask_glued:
        values = dict.fromkeys(values, MASK)
    needed = answers_needed(source, int(path.stem[:2]))
    cells = []
    for index, cell in enumerate(source.cells):
        if cell.cell_type == "markdown":
            text = plain_markdown(cell.source, values, bk, page)
            if text:
                cells.append(nbformat.v4.new_markdown_cell(text))
        elif cell.cell_type == "code":
            if cell.source.startswith(ANSWER_CHECK):
                continue  # it checks the reference answer, which the copy leaves to the reader
            code = stub(cell.source) if BEGIN in cell.source else cell.source
            if index in needed:
                code = guarded(code, *needed[index])
            new = nbformat.v4.new_code_cell(code)
            tags = [t for t in cell.metadata.get("tags", []) if t == "parameters"]
            if tags:
                new.metadata["tags"] = tags
            cells.append(new)
    title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), 0)
    cells.insert(title + 1, nbformat.v4.new_markdown_cell(NOTE.format(site=SITE)))
    for i, cell in enumerate(cells):  # ids that stay the same from one generation to the next
        cell["id"] = f"{path.stem[:2]}-{i:03d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    return nb


def executed_chapter(path: Path, cache: Path = CACHE) -> nbformat.NotebookNode:
    """The chapter's executed copy from the site's notebook cache (filled by ``make test`` or
    ``make book``); LookupError when the cache holds no run of the chapter's current code."""
    from jupyter_cache import get_cache

    nb = nbformat.read(path, as_version=4)
    try:
        record = get_cache(str(cache)).match_cache_notebook(nb)
    except KeyError:
        raise LookupError(
            f"{cache} holds no run of {path.name} as it is now: run `make test` or `make book` first"
        ) from None
    return get_cache(str(cache)).get_cache_bundle(record.pk).nb


def text_of(nb: nbformat.NotebookNode) -> str:
    """A reader copy as it is stored: what the sync check compares."""
    return nbformat.writes(nb) + "\n"


def matches(stored: str, path: Path, executed: nbformat.NotebookNode, bk: Book) -> bool:
    """Whether ``stored`` is the reader copy of the chapter at ``path``: the same text, code and
    structure as the copy of the run ``executed``, with any glued value in place of each of the
    run's. The glued values are left out of the comparison because they are not the same on every
    machine: timings never are, and a seeded training run gives other numbers on a CPU whose vector
    instructions sum in another order (and a chapter's claims are checked by the run itself, not
    here). A value is one line of text at most."""
    masked = text_of(reader_copy(path, executed, bk, mask_glued=True))
    return re.fullmatch(re.escape(masked).replace(re.escape(MASK), r"[^\n]*?"), stored, re.DOTALL) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, default=CHAPTERS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with the stored copies; write nothing")
    parser.add_argument("--cache", type=Path, default=CACHE, help="the executed chapters (jupyter-cache)")
    args = parser.parse_args(argv)
    bk, stale = book(), []
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.chapters:
        executed = executed_chapter(path.resolve(), args.cache)
        target = args.out / path.name
        if args.check:
            if not target.exists() or not matches(target.read_text(), path, executed, bk):
                stale.append(target)
            continue
        text = text_of(reader_copy(path, executed, bk))
        target.write_text(text)
        print(f"wrote {target}")
    if stale:
        print("out of date (run `make notebooks`):", *map(str, stale), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
