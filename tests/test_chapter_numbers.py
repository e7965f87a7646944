"""The site numbers each chapter's exercises "Exercise <chapter>.<n>" (book/_ext/chapter_numbers.py)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

_PATH = Path(__file__).resolve().parents[1] / "book" / "_ext" / "chapter_numbers.py"
_spec = importlib.util.spec_from_file_location("chapter_numbers", _PATH)
chapter_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chapter_numbers)


@pytest.mark.parametrize(
    "docname, chapter",
    [
        ("chapters/00-prologue", 0),
        ("chapters/02-patch-backdoors", 2),
        ("chapters/12-x", 12),
        ("book/preface", None),
        ("book/chapters", None),
    ],
)
def test_chapter_number_comes_from_the_file_name(docname, chapter):
    assert chapter_numbers.chapter_of(docname) == chapter


def _env(fignumbers):
    return SimpleNamespace(toc_fignumbers=fignumbers)


def test_exercises_restart_at_one_in_each_chapter_in_sphinx_order():
    env = _env(
        {
            "chapters/00-prologue": {"exercise": {"b": (2,), "a": (1,)}},
            "chapters/02-patch-backdoors": {"exercise": {"z": (5,), "x": (3,), "y": (4,)}, "figure": {"f": (7,)}},
            "book/preface": {"exercise": {"p": (9,)}},
        }
    )
    chapter_numbers.prefix_chapter_numbers(None, env)
    assert env.toc_fignumbers["chapters/00-prologue"]["exercise"] == {"a": (0, 1), "b": (0, 2)}
    assert env.toc_fignumbers["chapters/02-patch-backdoors"]["exercise"] == {"x": (2, 1), "y": (2, 2), "z": (2, 3)}
    assert env.toc_fignumbers["chapters/02-patch-backdoors"]["figure"] == {"f": (7,)}  # untouched
    assert env.toc_fignumbers["book/preface"]["exercise"] == {"p": (9,)}  # not a chapter


def test_numbers_already_prefixed_are_not_prefixed_again():
    env = _env({"chapters/01-boundary-shifting": {"exercise": {"a": (1, 1), "b": (1, 2)}}})
    chapter_numbers.prefix_chapter_numbers(None, env)
    assert env.toc_fignumbers["chapters/01-boundary-shifting"]["exercise"] == {"a": (1, 1), "b": (1, 2)}
