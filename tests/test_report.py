import pytest
from poisonlab.report import glue


def test_glue_returns_the_value():
    assert glue("accuracy", 0.93) == 0.93


def test_glue_rejects_names_the_prose_cannot_use():
    with pytest.raises(ValueError, match="identifier"):
        glue("clean accuracy", 0.9)


def test_table_formats_cells_and_renders_html_and_text():
    from poisonlab.report import table

    t = table(["ε", "ASR"], [[0.05, 0.87], [0.1, 0.99], [0.2, "–"]], formats={0: ".0%", 1: ".1%"}, caption="c <1>")
    html = t._repr_html_()
    assert ">ε</th>" in html and ">87.0%</td>" in html and "c &lt;1&gt;" in html and "padding" in html
    text = repr(t).splitlines()
    assert text[0] == "c <1>" and text[2].startswith("--") and text[3].split() == ["5%", "87.0%"]
    assert text[-1].split() == ["20%", "–"]
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        table(["a", "b"], [[1]])
