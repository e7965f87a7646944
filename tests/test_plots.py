import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

from poisonlab import plots
from poisonlab.train import History

matplotlib.use("Agg")


def test_image_grid_lays_out_grey_and_colour_images():
    fig = plots.image_grid(torch.rand(10, 1, 8, 8), titles=[str(i) for i in range(10)], ncols=4, title="t")
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.images]) == 10
    assert fig.axes[0].get_title() == "0"
    fig = plots.image_grid(torch.rand(3, 3, 8, 8))
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_predictions_colour_right_and_wrong():
    fig = plots.predictions(torch.rand(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([1, 0]), ["a", "b", "c"])
    t0, t1 = fig.axes[0].title, fig.axes[1].title
    assert t0.get_text() == "b" and t1.get_text() == "a (true c)"
    assert matplotlib.colors.to_hex(t1.get_color()).lower() == plots.WRONG.lower()


def test_training_curves_and_embedding():
    h = History(loss=[1.0, 0.5], train_accuracy=[0.5, 0.9], metrics={"test_accuracy": [0.4, 0.8]})
    fig = plots.training_curves(h, title="x")
    assert [a.get_xlabel() for a in fig.axes] == ["epoch", "epoch"]
    z = torch.randn(30, 5)
    coords = plots.project_2d(z, method="pca")
    assert coords.shape == (30, 2)
    assert torch.allclose(coords.mean(0), torch.zeros(2), atol=1e-5)
    fig = plots.embedding(coords, torch.arange(30) % 3, ["a", "b", "c"], highlight=torch.arange(30) < 3)
    assert fig.axes[0].get_xlabel() == "component 1"


def test_tsne_projection_shape():
    assert plots.project_2d(torch.randn(40, 6), method="tsne", seed=0).shape == (40, 2)


def test_plots_reject_bad_input():
    with pytest.raises(ValueError, match="N, C, H, W"):
        plots.image_grid(torch.rand(8, 8))
    with pytest.raises(ValueError, match="one entry per image"):
        plots.image_grid(torch.rand(2, 1, 8, 8), titles=["a"])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plots.image_grid(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="non-empty"):
        plots.training_curves(History())
    with pytest.raises(ValueError, match="no metric"):
        plots.training_curves(History([1.0], [0.5]), extra={"asr": "ASR"})
    with pytest.raises(ValueError, match="'pca', 'tsne'"):
        plots.project_2d(torch.randn(10, 3), method="umap")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.embedding(torch.randn(10, 3), torch.zeros(10, dtype=torch.long), ["a"])
