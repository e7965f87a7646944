"""The references page labels each work author–year, as the text cites it.

The text cites with sphinxcontrib-bibtex's ``author_year`` reference style ("Tran et al., 2018");
pybtex's stock styles would label the bibliography with alphabetic keys ([TLM18]) that the reader
cannot match with the citation. This registers the pybtex formatting style ``author_year``: the
``unsrt`` entries, labelled "Tran et al., 2018" (one author: "Biggio, 2012"; two: "Gu and Garg,
2017"; three or more: the first "et al."), a letter added where two works share a label
("Chen et al., 2017a"), sorted by author, year and title. ``_config.yml`` selects it with
``bibtex_default_style``.
"""

from __future__ import annotations

from collections import Counter
from string import ascii_lowercase

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


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


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year_label(e) for e in sorted_entries]
        shared = Counter(labels)
        seen: Counter = Counter()
        for label in labels:
            if shared[label] > 1:
                yield label + ascii_lowercase[seen[label]]
                seen[label] += 1
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "author_year"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle, force=True)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle, force=True)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
