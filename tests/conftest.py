"""Shared fixtures: small datasets, loaded once per test session."""

import poisonlab as pl
import pytest
import torch


@pytest.fixture(scope="session")
def mnist5k() -> pl.Dataset:
    return pl.load("mnist5k")


@pytest.fixture(scope="session")
def digits() -> pl.Dataset:
    return pl.load("digits")


@pytest.fixture(scope="session")
def nbgrader_course(tmp_path_factory):
    """Every chapter made into an nbgrader assignment (``make assignments``), 2 points per exercise."""
    pytest.importorskip("nbgrader")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "course"))
    import assignments

    out = tmp_path_factory.mktemp("course")
    assignments.generate(sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb")), out)
    return out


@pytest.fixture
def tiny_images() -> tuple[torch.Tensor, torch.Tensor]:
    """12 random 1×8×8 images in [0, 1] and labels in {0, 1, 2}."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(12, 1, 8, 8, generator=g), torch.arange(12) % 3
