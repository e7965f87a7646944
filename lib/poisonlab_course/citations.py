"""Author–year labels of the bibliography, the same on the site's references page
(``book/_ext/author_year_bibliography.py``) and in the reader copies (:mod:`poisonlab_course.reader`).

A work is labelled "Biggio, 2012" (one author), "Gu and Garg, 2017" (two) or "Tran et al., 2018"
(three or more), and a letter is added where two works share a label ("Chen et al., 2017a"), in the
order of the references page: by author, year and title.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cache
from string import ascii_lowercase


@cache
def _text_backend():
    """pybtex's plain-text backend, looked up once: each lookup (``Text.render_as``) reads the entry
    points of every installed package, a tenth of a second or more for every name of a bibliography."""
    from pybtex.plugin import find_plugin

    return find_plugin("pybtex.backends", "text")()


def _surname(person) -> str:
    from pybtex.richtext import Text

    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render(_text_backend())


def author_year_label(entry) -> str:
    """ "Surname, year", "Surname and Surname, year" or "Surname et al., year" of a pybtex entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:
        who = entry.key
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def disambiguated(labels: Iterable[str]) -> Iterator[str]:
    """The labels in order, with "a", "b", … appended to each label that occurs more than once."""
    labels = list(labels)
    shared, seen = Counter(labels), Counter()
    for label in labels:
        if shared[label] > 1:
            yield label + ascii_lowercase[seen[label]]
            seen[label] += 1
        else:
            yield label


def labels_by_key(bibliography) -> dict[str, str]:
    """{citation key: label} for every entry of a pybtex ``BibliographyData``, lettered as the
    references page letters them (its entries sorted by author, year and title)."""
    from pybtex.plugin import find_plugin

    entries = find_plugin("pybtex.style.sorting", "author_year_title")().sort(list(bibliography.entries.values()))
    return {entry.key: label for entry, label in zip(entries, disambiguated(map(author_year_label, entries)))}
