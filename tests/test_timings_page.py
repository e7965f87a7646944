"""The timings page that the course's run-time figures point to is the benchmark's output and
lists every chapter."""

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
