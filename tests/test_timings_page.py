"""The pages that hold measured results too slow for a chapter (the timings, chapter 1's longer
runs) are the scripts' output, not typed by hand."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "timings.md"


def test_timings_page_was_written_by_the_benchmark():
    assert "Written by `benchmarks/run.py --markdown book/timings.md`" in PAGE.read_text()


def test_timings_page_lists_every_chapter():
    text = PAGE.read_text()
    missing = [p.stem for p in sorted((ROOT / "chapters").glob("*.ipynb")) if f"<../chapters/{p.stem}>" not in text]
    assert not missing, f"run `benchmarks/run.py --markdown book/timings.md`: {missing} are missing"


def test_no_page_types_a_run_time_by_hand():
    """Run times are quoted from the timings page, not typed into the prose."""
    pages = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
    phrases = ("about a minute", "about two minutes", "10 s to 2 min", "in a minute")
    found = [(p.name, ph) for p in pages for ph in phrases if ph in p.read_text().lower()]
    assert not found, found


def test_chapter1_runs_page_was_written_by_its_script():
    text = (ROOT / "book" / "chapter1-runs.md").read_text()
    assert "Written by `benchmarks/boundary_seeds.py --page book/chapter1-runs.md`" in text
    for section in ("More splits", "saturates", "variants", "Restarts"):
        assert section in text, f"run `benchmarks/boundary_seeds.py --page book/chapter1-runs.md`: no {section!r}"


def test_chapter1_quotes_no_benchmark_number():
    """Chapter 1 points to the page for its longer runs instead of copying their numbers."""
    import json
    import re

    nb = json.loads((ROOT / "chapters" / "01-boundary-shifting.ipynb").read_text())
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for paragraph in prose.split("\n\n"):
        if "boundary_seeds" in paragraph or "chapter1-runs" in paragraph:
            text = re.sub(r"\{glue:text\}`[^`]*`", "", paragraph)
            typed = re.findall(r"\d+\.\d+ ?%|\b\d\.\d{3}\b", text)  # measured rates and losses, not settings
            assert not typed, f"typed numbers {typed} next to a pointer to the longer runs: {paragraph[:120]}"
