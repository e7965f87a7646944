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

from poisonlab_course.citations import author_year_label, disambiguated
from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

__all__ = ["author_year_label", "AuthorYearLabelStyle", "AuthorYearStyle"]


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        yield from disambiguated(author_year_label(e) for e in sorted_entries)


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "author_year"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle, force=True)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle, force=True)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
