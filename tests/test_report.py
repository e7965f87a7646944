import pytest
from poisonlab.report import glue


def test_glue_returns_the_value():
    assert glue("accuracy", 0.93) == 0.93


def test_glue_rejects_names_the_prose_cannot_use():
    with pytest.raises(ValueError, match="identifier"):
        glue("clean accuracy", 0.9)
