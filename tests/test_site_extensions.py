"""The site's offline assets (book/_ext/offline.py) and author–year bibliography labels
(book/_ext/author_year_bibliography.py)."""

import importlib.util
from pathlib import Path

import pytest
from pybtex.database import Entry, Person

_EXT = Path(__file__).resolve().parents[1] / "book" / "_ext"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, _EXT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


offline = _load("offline")
bibliography = _load("author_year_bibliography")


def _entry(key, authors, year):
    return Entry("article", fields={"title": key, "year": year}, persons={"author": [Person(a) for a in authors]})


@pytest.mark.parametrize(
    "authors, label",
    [
        (["Biggio, Battista"], "Biggio, 2012"),
        (["Gu, Tianyu", "Garg, Siddharth"], "Gu and Garg, 2012"),
        (["Tran, Brandon", "Li, Jerry", "Madry, Aleksander"], "Tran et al., 2012"),
        (["{Dolan-Gavitt}, Brendan"], "Dolan-Gavitt, 2012"),
    ],
)
def test_a_work_is_labelled_author_year_as_the_text_cites_it(authors, label):
    assert bibliography.author_year_label(_entry("k", authors, "2012")) == label


def test_works_that_share_a_label_get_a_letter():
    entries = [_entry(k, ["Chen, X", "Liu, C", "Li, B"], "2017") for k in "ab"] + [_entry("c", ["Gu, T"], "2017")]
    labels = list(bibliography.AuthorYearLabelStyle().format_labels(entries))
    assert labels == ["Chen et al., 2017a", "Chen et al., 2017b", "Gu, 2017"]


def test_a_bibliography_is_labelled_with_one_lookup_of_the_text_backend(monkeypatch):
    """Each pybtex plugin lookup reads the entry points of every installed package: the labels look
    up the plain-text backend once, not once for every author's name."""
    import pybtex.plugin
    from poisonlab_course import citations

    lookups, find_plugin = [], pybtex.plugin.find_plugin

    def counted(group, name=None, filename=None):
        lookups.append((group, name))
        return find_plugin(group, name, filename)

    monkeypatch.setattr(pybtex.plugin, "find_plugin", counted)
    citations._text_backend.cache_clear()
    entries = [_entry(k, ["Chen, X", "Liu, C", "Li, B"], "2017") for k in "abcd"]
    assert [citations.author_year_label(e) for e in entries] == ["Chen et al., 2017"] * 4
    assert lookups.count(("pybtex.backends", "text")) == 1


def test_the_author_year_style_is_registered_with_pybtex():
    from pybtex.plugin import find_plugin

    assert find_plugin("pybtex.style.formatting", "author_year") is bibliography.AuthorYearStyle


def test_mathjax_is_copied_with_what_it_loads(tmp_path):
    try:
        source = offline.mathjax_source()
    except RuntimeError as err:
        pytest.skip(str(err))
    offline.copy_mathjax(source, tmp_path)
    mathjax = tmp_path / "mathjax"
    assert (mathjax / offline.MATHJAX_COMPONENT).stat().st_size > 100_000
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))  # the formulas' fonts
    assert (mathjax / "input" / "tex" / "extensions").is_dir()  # loaded on demand (\require, autoload)
    assert not (mathjax / "tex-svg.js").exists()  # nothing the pages do not load
