import shutil
import subprocess

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
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


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 2, generator=g)
    return x, (x[:, 0] > 0.5).long()


def test_linear_boundaries_draw_one_panel_each_with_a_shared_legend():
    x, y = _toy()
    theta = torch.tensor([1.0, 0.2, -0.6])
    panels = [
        {"theta": theta, "title": "a"},
        {"theta": theta, "poison_x": torch.rand(2, 2), "poison_y": torch.tensor([0, 1]), "title": "b"},
    ]
    fig = plots.linear_boundaries(x, y, panels, clean_theta=torch.tensor([1.0, 0.0, -0.5]), ncols=2)
    assert [a.get_title() for a in fig.axes[:2]] == ["a", "b"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "poison, label 0" in labels and "poison, label 1" in labels and "clean boundary" in labels
    with pytest.raises(ValueError, match="panels"):
        plots.linear_boundaries(x, y, [])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"y": "drop"}, r"^y must have shape \(N,\)"),
        ({"y": "neg"}, "^y must be >= 0"),
        ({"y": "huge"}, "^y must be < 2"),
        ({"y": "float"}, "^y must hold integer class labels"),
        ({"x": "int"}, "^x must be a floating-point tensor"),
        ({"x": "nan"}, "^x must hold finite numbers"),
        ({"x": "3d"}, r"^x must hold 2-D points"),
    ],
)
def test_linear_boundaries_refuse_bad_points_and_labels_by_name(change, match):
    x, y = _toy()
    bad = {
        "drop": y[0],
        "neg": y - 1,
        "huge": y + 100,
        "float": y.float(),
        "int": x.round().long(),
        "nan": x / 0,
        "3d": x.unsqueeze(0),
    }
    args = {"x": x, "y": y} | {k: bad[v] for k, v in change.items()}
    with pytest.raises(ValueError, match=match):
        plots.linear_boundaries(args["x"], args["y"], [{"theta": torch.tensor([1.0, 0.2, -0.6]), "title": "a"}])


@pytest.mark.parametrize(
    ("path", "match"),
    [
        (torch.rand(5, 2), r"^poison_path must be a tensor \(frames, P, 2\)"),
        (torch.rand(1, 5, 2, 2), r"^poison_path must be a tensor \(frames, P, 2\)"),
        (torch.ones(5, 2, 2, dtype=torch.long), "^poison_path must be a floating-point tensor"),
        (torch.full((5, 2, 2), float("nan")), "^poison_path must hold finite numbers"),
        (torch.rand(0, 2, 2), "^poison_path must hold at least one frame"),
    ],
)
def test_animation_alt_refuses_a_path_that_is_not_frames_of_2d_points(path, match):
    assert "5 frames" in plots.animation_alt("t", torch.rand(5, 2, 2))
    with pytest.raises(ValueError, match=match):
        plots.animation_alt("t", path)


@pytest.mark.parametrize(
    ("theta", "box", "match"),
    [
        (torch.tensor([1, 1, -1]), (0, 1, 0, 1), "^theta must be a floating-point tensor"),
        (torch.tensor([1.0, float("nan"), -1.0]), (0, 1, 0, 1), "^theta must hold finite numbers"),
        (torch.tensor([1.0, 1.0]), (0, 1, 0, 1), r"^theta must be \(w₁, w₂, b\)"),
        ([1.0, 1.0, -1.0], (0, 1, 0, 1), "^theta must be a torch.Tensor"),
        (torch.tensor([1.0, 1.0, -1.0]), (float("nan"), 1, 0, 1), "^box must be a finite number"),
        (torch.tensor([1.0, 1.0, -1.0]), (1, 0, 0, 1), "^box must have x0 <= x1"),
        (torch.tensor([1.0, 1.0, -1.0]), (0, 1, 0), "^box must be four numbers"),
    ],
)
def test_boundary_segment_refuses_bad_lines_and_boxes(theta, box, match):
    with pytest.raises(ValueError, match=match):
        plots.boundary_segment(theta, box)


def test_attack_landscape_lines_and_bars():
    x, y = _toy()
    grid = torch.linspace(0, 1, 5)
    fig = plots.attack_landscape(
        grid, torch.rand(5, 5), x, y, path=torch.rand(4, 2), path_label=1, clean_theta=torch.tensor([1.0, 0.0, -0.5])
    )
    assert fig.axes[0].get_xlabel() == "feature 1"
    fig = plots.lines([0, 1, 2], {"a": [0.1, 0.2, 0.3]}, xlabel="ε", ylabel="error (%)")
    assert fig.axes[0].lines[0].get_ydata()[-1] == pytest.approx(30.0)
    with pytest.raises(ValueError, match="3 x positions"):
        plots.lines([0, 1, 2], {"a": [0.1]}, xlabel="ε", ylabel="e")
    fig = plots.paired_bars(["s1", "s2"], [0.01, 0.02], [0.1, 0.2])
    assert len(fig.axes[0].patches) == 4
    with pytest.raises(ValueError, match="same"):
        plots.paired_bars(["s1"], [0.1, 0.2], [0.1])


def test_boundary_animation_is_a_javascript_player():
    x, y = _toy()
    thetas = [torch.tensor([1.0, 0.1 * i, -0.5]) for i in range(3)]
    html = plots.boundary_animation(x, y, thetas, torch.rand(3, 2, 2), torch.tensor([0, 1]))
    assert "<script" in html.data and "anim" in html.data
    with pytest.raises(ValueError, match="one theta per frame"):
        plots.boundary_animation(x, y, thetas[:2], torch.rand(3, 2, 2), torch.tensor([0, 1]))


def test_epsilon_explorer_builds_a_slider():
    from poisonlab.widgets import epsilon_explorer

    x, y = _toy()
    theta = torch.tensor([1.0, 0.0, -0.5])
    poisons = {0.01: (torch.rand(1, 2), torch.tensor([1])), 0.05: (torch.rand(2, 2), torch.tensor([0, 1]))}
    box = epsilon_explorer(x, y, {0.01: theta, 0.05: theta}, poisons, errors={0.01: 0.1, 0.05: 0.2})
    slider = box.children[0]
    assert [v for _, v in slider.options] == [0.01, 0.05]
    with pytest.raises(ValueError, match="same"):
        epsilon_explorer(x, y, {0.01: theta}, {0.05: (torch.rand(1, 2), torch.tensor([1]))})


def test_heatmap_annotates_every_cell_and_rejects_bad_grids():
    fig = plots.heatmap(
        torch.tensor([[0.0, 0.5], [0.99, 1.0], [0.2, 0.3]]),
        row_labels=["1", "2", "3"],
        col_labels=["a", "b"],
        xlabel="opacity",
        ylabel="size",
        title="t",
    )
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0", "50", "99", "100", "20", "30"])
    assert ax.get_xlabel() == "opacity" and [t.get_text() for t in ax.get_yticklabels()] == ["1", "2", "3"]
    with pytest.raises(ValueError, match=r"^row_labels must hold 1 labels \(one per row of values\), got 2"):
        plots.heatmap([[0.1, 0.2]], row_labels=["1", "2"], col_labels=["a", "b"], xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.heatmap([[1.5]], row_labels=["1"], col_labels=["a"], xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="grid"):
        plots.heatmap([0.1, 0.2], row_labels=["1"], col_labels=["a", "b"], xlabel="x", ylabel="y")


def test_trigger_explorer_reports_the_asr_of_each_variation():
    from poisonlab.triggers import Patch
    from poisonlab.widgets import trigger_explorer, trigger_figure
    from torch import nn

    class CornerModel(nn.Module):
        """Predicts class 0 when the bottom-right pixel is bright, else class 1."""

        def forward(self, x):
            bright = (x[:, 0, -1, -1] > 0.5).float()
            return torch.stack([bright, 1 - bright], 1)

    x, y = torch.zeros(6, 1, 8, 8), torch.tensor([1, 1, 1, 0, 1, 1])
    box = trigger_explorer(CornerModel(), x, y, target=0, show=4)
    size, opacity, location = box.children[0].children
    assert (size.value, opacity.value, location.value) == (3, 1.0, "bottom-right")
    location.value = "top-left"  # redraws without error
    sample, names = torch.tensor([0, 1]), ["0", "1"]
    fig = trigger_figure(CornerModel(), x, y, 0, Patch(3), sample=sample, classes=names)
    assert "ASR 100.0%" in fig.get_suptitle()
    fig = trigger_figure(CornerModel(), x, y, 0, Patch(3, "top-left"), sample=sample, classes=names)
    assert "ASR 0.0%" in fig.get_suptitle()  # the model only looks at the bottom-right pixel
    with pytest.raises(ValueError, match="target"):
        trigger_explorer(CornerModel(), x, y, target=5)


def test_collision_map_draws_one_arrow_per_pair():
    clean, labels = torch.randn(30, 2), torch.arange(30) % 2
    b, p, t = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    fig = plots.collision_map(clean, labels, ["3", "8"], b, p, t, title="t")
    ax = fig.axes[0]
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == 4
    with pytest.raises(ValueError, match="one row per pair"):
        plots.collision_map(clean, labels, ["3", "8"], b, p[:3], t)


def test_score_histograms_and_roc_curves():
    g = torch.Generator().manual_seed(0)
    truth = torch.arange(100) < 10
    scores = truth.float() * 3 + torch.rand(100, generator=g)
    fig = plots.score_histograms(
        [
            {"scores": scores, "is_poison": truth, "title": "a", "threshold": 2.0},
            {"scores": scores.flip(0), "is_poison": truth},
        ],
        title="t",
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["clean", "poison", "removal cut"]
    with pytest.raises(ValueError, match="clean point"):
        plots.score_histograms([{"scores": scores, "is_poison": torch.ones(100, dtype=torch.bool)}])
    with pytest.raises(ValueError, match="NaN"):
        plots.score_histograms([{"scores": torch.full((100,), float("nan")), "is_poison": truth}])
    fig = plots.roc_curves({"good": (scores, truth), "random": (torch.rand(100, generator=g), truth)})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("chance") and labels[1] == "good (AUC 1.00)"
    with pytest.raises(ValueError, match="at least one detector"):
        plots.roc_curves({})


def test_measured_and_theory_draws_points_curves_and_thresholds():
    fig = plots.measured_and_theory(
        [
            {
                "xlabel": "θ",
                "logx": True,
                "points": {"measured": ([0.5, 1, 2], [0.0, 0.1, 0.5])},
                "curves": {"theory": ([0.5, 1, 2], [0.0, 0.0, 0.5])},
                "vlines": {"threshold": 1.0},
                "errors": {"measured": [0.01, 0.02, 0.03]},
            },
            {"xlabel": "θ", "ylabel": "recall", "points": {"r": ([1, 2], [0.2, 0.9])}},
        ],
        ylabel="overlap",
        title="t",
    )
    left, right = fig.axes
    assert left.get_xscale() == "log" and [t.get_text() for t in left.get_xticklabels()] == ["0.5", "1", "2"]
    assert right.get_ylabel() == "recall" and left.get_ylabel() == "overlap"
    assert {t.get_text() for t in left.get_legend().get_texts()} == {"measured", "theory", "threshold"}
    with pytest.raises(ValueError, match="points or curves"):
        plots.measured_and_theory([{"xlabel": "x"}], ylabel="y")
    with pytest.raises(ValueError, match="x and"):
        plots.measured_and_theory([{"xlabel": "x", "points": {"a": ([1, 2], [1])}}], ylabel="y")


def test_phase_diagram_annotates_cells_and_draws_the_curve():
    values = torch.tensor([[0.5, 0.9, 1.0], [0.5, 0.6, 0.95]])
    fig = plots.phase_diagram(
        values, [1, 2, 3], [0.01, 0.1], xlabel="shift", ylabel="ε", curve=([1.5, 2.5], [0.1, 0.01]), title="AUC"
    )
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.texts) == 6 and len(fig.legends) == 1
    with pytest.raises(ValueError, match="shape"):
        plots.phase_diagram(values.T, [1, 2, 3], [0.01, 0.1], xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="increasing"):
        plots.phase_diagram(values, [3, 2, 1], [0.01, 0.1], xlabel="x", ylabel="y")


def test_projections_draw_clean_cover_and_poison_groups():
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(20, 2, generator=g)
    poison = torch.arange(20) < 4
    cover = (torch.arange(20) >= 4) & (torch.arange(20) < 7)
    fig = plots.projections(
        [{"coords": coords, "is_poison": poison, "cover": cover, "title": "a"}, {"coords": coords, "is_poison": poison}]
    )
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["clean", "cover", "poison"]
    with pytest.raises(ValueError, match="coords"):
        plots.projections([{"coords": coords[:, :1], "is_poison": poison}])
    with pytest.raises(ValueError, match="at least one"):
        plots.projections([])


def test_lines_draw_a_band_of_spread_and_reject_a_band_of_the_wrong_length():
    fig = plots.lines(
        [1, 2, 3],
        {"a": [0.5, 0.6, 0.7]},
        xlabel="x",
        ylabel="%",
        bands={"a": ([0.4, 0.5, 0.6], [0.6, 0.7, float("nan")])},
    )
    assert len(fig.axes[0].collections) == 1  # the shaded band
    with pytest.raises(ValueError, match="band"):
        plots.lines([1, 2, 3], {"a": [0.5, 0.6, 0.7]}, xlabel="x", ylabel="%", bands={"a": ([0.4], [0.6])})


def test_paired_bars_draw_ranges_and_reject_ranges_of_the_wrong_length():
    fig = plots.paired_bars(
        ["a", "b"], [0.5, 0.6], [0.7, 0.8], ranges=([(0.4, 0.6), (0.5, 0.7)], [(0.6, 0.9), (0.8, 0.8)])
    )
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="ranges"):
        plots.paired_bars(["a", "b"], [0.5, 0.6], [0.7, 0.8], ranges=([(0.4, 0.6)], [(0.6, 0.9)]))


def test_line_panels_can_use_a_log_y_axis():
    fig = plots.line_panels(
        [{"x": [1, 2], "series": {"loss": [1.0, 0.01]}, "xlabel": "epoch", "logy": True}], ylabel="loss", percent=False
    )
    assert fig.axes[0].get_yscale() == "log"


def _frames():
    from poisonlab.widgets import frames_html

    def draw(a, b):
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"{a}{b}")
        return fig

    return frames_html(
        draw, [("size", [1, 2, 3], ["1", "2", "3"]), ("opacity", [0.5, 1.0], ["½", "1"])], alt="s={size} o={opacity}"
    )


def test_frames_html_holds_one_image_per_combination_and_a_slider_per_control():
    page = _frames()
    assert page.count("<img") == 6 and page.count('type="range"') == 2
    assert page.count("display:block") == 1 and 'data-frame="0-0"' in page and 'data-frame="2-1"' in page
    assert 'alt="s=3 o=1"' in page and "http" not in page  # self-contained
    assert _frames() == page  # the same figures give the same page
    from poisonlab.widgets import frames_html

    with pytest.raises(ValueError, match="labels"):
        frames_html(lambda a: None, [("size", [1, 2], ["1"])], alt="")
    with pytest.raises(ValueError, match="at least one"):
        frames_html(lambda a: None, [], alt="")


def test_explorers_carry_their_kernel_free_frames():
    from poisonlab.widgets import epsilon_explorer

    x, y = _toy()
    theta = torch.tensor([1.0, 0.0, -0.5])
    poisons = {0.01: (torch.rand(1, 2), torch.tensor([1])), 0.05: (torch.rand(2, 2), torch.tensor([0, 1]))}
    box = epsilon_explorer(x, y, {0.01: theta, 0.05: theta}, poisons)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live panel, where widgets run
    assert bundle["text/html"].count("<img") == 2 and "budget ε = 5%" in bundle["text/html"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_moving_a_frames_slider_shows_the_matching_image_in_a_browser(tmp_path):
    # a page with the frames and a script that moves the first slider to 2, as a reader would
    move = (
        "<script>var s=document.querySelector('input[type=range]');s.value=2;"
        "s.dispatchEvent(new Event('input'));var shown=[].filter.call(document.querySelectorAll('img'),"
        "function(i){return i.style.display==='block'}).map(function(i){return i.getAttribute('data-frame')});"
        "document.body.setAttribute('data-shown',shown.join(','));"
        "document.body.setAttribute('data-label',document.querySelector('output').textContent);</script>"
    )
    page = tmp_path / "frames.html"
    page.write_text(f"<!doctype html><html><body>{_frames()}{move}</body></html>", encoding="utf-8")
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-shown="2-0"' in dom and 'data-label="3"' in dom


def test_a_figure_is_shown_with_its_title_as_alt_text():
    fig = plots.lines([1, 2], {"a": [0.1, 0.2]}, xlabel="budget ε", ylabel="error", title='Error "grows" <fast>')
    assert plots.alt_text(fig) == 'Error "grows" <fast>'
    page = plots.figure_html(fig)
    assert page.startswith('<img src="data:image/png;base64,') and 'alt="Error &quot;grows&quot; &lt;fast&gt;"' in page
    panels = plots.line_panels([{"x": [1], "series": {"a": [0.5]}, "xlabel": "x", "title": "left"}] * 2, ylabel="y")
    assert plots.alt_text(panels) == "left; left"
    bare = plots.lines([1, 2], {"a": [0.1, 0.2]}, xlabel="budget ε", ylabel="error")
    assert plots.alt_text(bare) == "A plot of error against budget ε"
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        plots._register_figure_html()
        data, _ = shell.display_formatter.format(fig)
        assert 'alt="Error &quot;grows&quot;' in data["text/html"]
    finally:
        InteractiveShell.clear_instance()


def test_curves_differ_by_line_style_as_well_as_colour():
    scores, truth = torch.rand(20), torch.arange(20) < 5
    fig = plots.roc_curves({"a": (scores, truth), "b": (-scores, truth)})
    styles = [line.get_linestyle() for line in fig.axes[0].lines[1:]]  # after the chance diagonal
    assert len(set(styles)) == 2
    panel = {"xlabel": "x", "points": {"measured": ([1, 2], [0.1, 0.2])}, "curves": {"theory": ([1, 2], [0.1, 0.2])}}
    paired = plots.measured_and_theory([panel], ylabel="y").axes[0]
    apart = plots.measured_and_theory([{**panel, "paired": False}], ylabel="y").axes[0]
    colour = [line.get_color() for line in paired.lines if line.get_label() == "theory"]
    other = [line.get_color() for line in apart.lines if line.get_label() == "theory"]
    assert colour != other  # unpaired theory does not borrow the measurement's colour


def test_legend_points_is_the_smallest_legend_text_and_reaches_the_page():
    fig = plots.roc_curves({"a": (torch.rand(10), torch.arange(10) < 3)})
    assert plots.legend_points(fig) == 8
    assert 'data-legend-pt="8" data-dpi="110"' in plots.figure_html(fig)
    assert (
        plots.legend_points(plots.heatmap([[0.5]], row_labels=["1"], col_labels=["a"], xlabel="x", ylabel="y")) is None
    )


def test_a_long_title_is_wrapped_so_the_image_stays_as_wide_as_the_figure():
    import base64
    import io

    from PIL import Image

    title = "The filter removes far poisons and keeps those at t_ε (n = 20,000, d = 100, 3 samples per point)"
    fig = plots.lines([0.02, 0.1], {"a": [0.1, 0.2], "b": [0.2, 0.1]}, xlabel="ε", ylabel="error", title=title)
    page = plots.figure_html(fig)
    width = Image.open(io.BytesIO(base64.b64decode(page.split("base64,")[1].split('"')[0]))).size[0]
    assert width <= plots.MAX_WIDTH * fig.dpi + 12  # the crop keeps a 0.05 in margin
    assert "\n" in fig.axes[0].get_title() and plots.alt_text(fig) == title  # wrapped, read as one sentence


def _png_size(png: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def test_an_explorer_frame_is_saved_whole_with_its_title_in_words():
    import base64

    from poisonlab.triggers import Patch
    from poisonlab.widgets import _png, describe_trigger, trigger_figure

    assert describe_trigger(Patch(3, opacity=0.6)) == "3×3 checkerboard patch, opacity 0.6"
    assert describe_trigger(Patch(2, "top-left", pattern="white")) == "2×2 white patch at the top-left, opacity 1"
    x, y = torch.rand(10, 1, 8, 8), torch.arange(10) % 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    fig = trigger_figure(model, x, y, 0, Patch(3, opacity=0.6), sample=torch.arange(8), classes=["0", "1"])
    assert (
        fig.get_suptitle().startswith("3×3 checkerboard patch, opacity 0.6: ASR ")
        and "Patch(" not in fig.get_suptitle()
    )
    width, height = _png_size(base64.b64decode(_png(fig)))
    assert width >= 0.95 * plots.MAX_WIDTH * fig.dpi  # the frame fills the text column, at the figure's dpi
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert title.x0 >= 0 and title.x1 <= fig.bbox.width and title.y1 <= fig.bbox.height  # inside the saved image


def test_image_grid_captions_never_run_into_each_other():
    cases = [
        (torch.rand(16, 1, 8, 8), [f"a {i % 9 + 1}, labelled 0" for i in range(16)], 1.25),
        (torch.rand(24, 1, 8, 8), ["typical 1"] * 8 + ["own outlier"] * 8 + ["poison"] * 8, 1.1),
        (torch.rand(4, 1, 8, 8), ["base (judge: 8)", "poison (judge: 8)", "|poison − base|, rescaled", "target"], 1.9),
    ]
    for images, titles, size in cases:
        fig = plots.image_grid(images, titles=titles, size=size, title="t")
        plots.png_bytes(fig)
        renderer = fig.canvas.get_renderer()
        boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
        for a, b in zip(boxes, boxes[1:]):
            if abs(a.y0 - b.y0) < 1 and abs(a.y1 - b.y1) < 1:  # neighbours in a row
                assert a.x1 < b.x0, (a, b)
        assert all(box.x0 >= 0 and box.x1 <= fig.bbox.width for box in boxes)
        assert min((ax.title.get_fontsize() for ax in fig.axes if ax.get_title()), default=8) >= 8
    short = plots.image_grid(torch.rand(8, 1, 8, 8), titles=["→ 0"] * 8)
    assert short.axes[0].get_title() == "→ 0" and short.axes[0].title.get_fontsize() == 10  # short ones unchanged


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legends_sit_outside_every_panels_data_area():
    panel = {"x": [1, 2, 3], "series": {"clean": [0.1, 0.5, 0.9], "poisoned": [0.9, 0.5, 0.1]}, "xlabel": "epoch"}
    scores, truth = torch.rand(50), torch.arange(50) < 5
    hist = {"scores": scores, "is_poison": truth, "threshold": 0.5, "title": "ε = 1%"}
    theory = {"xlabel": "x", "curves": {"theory": ([1, 2], [0.1, 0.2])}, "points": {"measured": ([1, 2], [0.1, 0.2])}}
    recall = {"xlabel": "x", "points": {"recall": ([1, 2], [0.3, 0.4])}, "vlines": {"threshold": 1.5}}
    history = History(loss=[1.0, 0.5], train_accuracy=[0.5, 0.9], metrics={"test_accuracy": [0.6, 0.8]})
    figures = [
        plots.lines([1, 2, 3], panel["series"], xlabel="x", ylabel="y"),
        plots.line_panels([panel, panel], ylabel="rate (%)"),
        plots.score_histograms([hist, hist, hist]),
        plots.measured_and_theory([theory, recall], ylabel="y"),  # different entries: one legend per panel
        plots.projections([{"coords": torch.randn(20, 2), "is_poison": truth[:20]}] * 2),
        plots.training_curves(history),
        plots.embedding(torch.randn(20, 2), torch.arange(20) % 2, ["a", "b"], highlight=truth[:20]),
    ]
    for fig in figures:
        plots.png_bytes(fig)
        renderer = fig.canvas.get_renderer()
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends and plots.legend_points(fig) >= 8  # 8 pt at 110 dpi reads at 9 pt in the column
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width + 1 and box.y0 >= 0  # not clipped
            for ax in fig.axes:
                if ax.get_visible() and (ax.lines or ax.patches or ax.collections):
                    assert not _overlaps(box, ax.get_window_extent(renderer)), (fig, legend)
    assert len(figures[3].legends) == 0 and sum(ax.get_legend() is not None for ax in figures[3].axes) == 2


def test_a_steep_boundary_spans_the_whole_axes():
    box = (-0.04, 1.04, -0.04, 1.04)
    steep = plots.boundary_segment(torch.tensor([10.0, 0.3, -5.0]), box)
    assert steep[:, 1].min() == pytest.approx(-0.04) and steep[:, 1].max() == pytest.approx(1.04)
    flat = plots.boundary_segment(torch.tensor([0.3, 10.0, -5.0]), box)
    assert flat[:, 0].min() == pytest.approx(-0.04) and flat[:, 0].max() == pytest.approx(1.04)
    diagonal = plots.boundary_segment(torch.tensor([1.0, 1.0, -1.0]), (0, 1, 0, 1))
    assert sorted(map(tuple, diagonal.round(6))) == [(0.0, 1.0), (1.0, 0.0)]
    assert plots.boundary_segment(torch.tensor([1.0, 1.0, -5.0]), (0, 1, 0, 1)).shape == (0, 2)  # misses the box
    x, y = _toy()
    fig = plots.linear_boundaries(x, y, [{"theta": torch.tensor([10.0, 0.3, -5.0]), "title": "t"}])
    line = [ln for ln in fig.axes[0].lines if ln.get_label() == "poisoned boundary"][0]
    y0, y1 = fig.axes[0].get_ylim()
    assert min(line.get_ydata()) == pytest.approx(y0) and max(line.get_ydata()) == pytest.approx(y1)


def test_toy_points_at_the_edge_of_the_unit_square_clear_the_spines():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 0, 1])
    panel = {"theta": torch.tensor([1.0, 0.0, -0.5]), "poison_x": x[:2], "poison_y": y[:2], "title": "t"}
    fig = plots.linear_boundaries(x, y, [panel])
    plots.png_bytes(fig)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-0.08, 1.08)) and ax.get_ylim() == pytest.approx((-0.08, 1.08))
    frame = ax.get_window_extent(renderer)
    for points in ax.collections:  # every marker, the large poison crosses included, lies inside the spines
        box = points.get_window_extent(renderer)
        assert frame.x0 < box.x0 and box.x1 < frame.x1 and frame.y0 < box.y0 and box.y1 < frame.y1


def test_a_heatmap_with_long_row_labels_keeps_a_legible_matrix():
    names = [
        "BadNets patch",
        "blend, α = 0.2",
        "feature collision, fails the judge (β = 0.1, γ = 0.3)",
        "feature collision, target not flipped (β = 100, γ = 0.1)",
        "feature collision, fails the judge (β = 1, γ = 0.3)",
        "feature collision, flips (β = 0.3, γ = 0.3)",
    ]
    fig = plots.heatmap(
        torch.rand(6, 3),
        row_labels=names,
        col_labels=["representation", "gradient", "activation\nclustering"],
        xlabel="detector",
        ylabel="poisons",
        percent=False,
        size=(8.5, 3.2),
    )
    width, _ = _png_size(plots.png_bytes(fig))
    assert width <= plots.MAX_WIDTH * fig.dpi + 12
    matrix = fig.axes[0].get_window_extent(fig.canvas.get_renderer())
    assert matrix.width / fig.dpi >= 2.0 and matrix.height / fig.dpi / 6 >= 0.3  # inches
    assert any("\n" in t.get_text() for t in fig.axes[0].get_yticklabels())  # the long names wrapped
    assert fig.axes[0].get_xticklabels()[0].get_rotation() == 30  # "representation" is wider than its column


def test_a_heatmap_can_centre_a_diverging_colour_map():
    kwargs = dict(row_labels=["a", "b"], col_labels=["x", "y"], xlabel="x", ylabel="y", percent=False)
    default = plots.heatmap([[0.2, 0.5], [0.8, 1.0]], **kwargs)
    assert default.axes[0].images[0].get_cmap().name == "viridis"
    centred = plots.heatmap([[0.2, 0.5], [0.8, 1.0]], center=0.5, **kwargs)
    image = centred.axes[0].images[0]
    assert image.get_cmap().name == "RdBu_r" and float(image.norm(0.5)) == pytest.approx(0.5)
    assert float(image.norm(0.0)) == 0.0 and float(image.norm(1.0)) == 1.0
    with pytest.raises(ValueError, match="center"):
        plots.heatmap([[0.2]], row_labels=["a"], col_labels=["x"], xlabel="x", ylabel="y", center=1.5)


def test_alt_text_describes_a_figure_whose_title_is_no_sentence():
    captions = ["base (judge: 8)", "poison (judge: 8)", "difference", "target"]
    fig = plots.image_grid(torch.rand(4, 1, 8, 8), titles=captions, title="L2 = 4.94; target flipped: True")
    alt = plots.alt_text(fig)
    assert alt.startswith("4 images captioned base (judge: 8); poison (judge: 8)") and "flipped: yes" in alt
    fig = plots.image_grid(torch.rand(2, 1, 8, 8), title="Patch(size=3, location='bottom-right', opacity=1): ASR 98%")
    alt = plots.alt_text(fig)
    assert "Patch(" not in alt and "patch (size 3, location bottom-right, opacity 1): ASR 98%" in alt
    assert alt.startswith("2 images")
    sentence = plots.image_grid(torch.rand(2, 1, 8, 8), title="Triggered digits are read as 0")
    assert plots.alt_text(sentence) == "Triggered digits are read as 0"
    x, y = _toy()
    thetas = [torch.tensor([1.0, 0.1 * i, -0.5]) for i in range(3)]
    html = plots.boundary_animation(
        x, y, thetas, torch.rand(3, 10, 2), torch.zeros(10).long(), title="ε = 10%, ascent "
    )
    assert (
        'alt="The decision boundary turning as 10 poison points move over 3 frames of the attack (ε = 10%, ascent)"'
        in html.data
    )


def _histogram_panels(k: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    truth = torch.arange(200) < 10
    return [
        {"scores": torch.rand(200, generator=g) + truth, "is_poison": truth, "threshold": 1.2, "title": f"ε = {i}%"}
        for i in range(1, k + 1)
    ]


def test_score_histograms_share_one_x_label_and_fit_the_column():
    xlabel = "spectral score τ (share of the class maximum)"  # wider than a panel
    for ncols in (None, 3):
        fig = plots.score_histograms(_histogram_panels(), xlabel=xlabel, title="t", ncols=ncols)
        width, _ = _png_size(plots.png_bytes(fig))
        assert width <= plots.MAX_WIDTH * fig.dpi + 12  # the crop keeps a 0.05 in margin
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert len(shown) == 3 and all(ax.get_xlabel() == "" for ax in shown)
        written = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() == xlabel and t.get_visible()]
        assert len(written) == 1  # once, for the whole figure
        renderer = fig.canvas.get_renderer()
        label = written[0].get_window_extent(renderer)
        for ax in shown:  # below every panel, clear of their tick labels and of the legend's entries
            assert label.y1 <= ax.get_tightbbox(renderer).y0 + 1
        for legend in fig.legends:
            for entry in legend.get_texts():
                assert not _overlaps(label, entry.get_window_extent(renderer))
    row = plots.score_histograms(_histogram_panels(), ncols=3)
    assert len(row.axes) == 3 and len({round(ax.get_position().y0, 3) for ax in row.axes}) == 1  # one row, no spare
    assert [ax.get_ylabel() for ax in row.axes] == ["density", "", ""]
    single = plots.score_histograms(_histogram_panels(1), xlabel="τ")
    assert single.axes[0].get_xlabel() == "τ"  # one panel keeps its own x-label
    with pytest.raises(ValueError, match="ncols"):
        plots.score_histograms(_histogram_panels(), ncols=0)


def test_roc_curves_draw_yes_no_flags_as_a_single_point():
    g = torch.Generator().manual_seed(0)
    truth = torch.arange(100) < 20
    flags = (truth & (torch.arange(100) % 2 == 0)) | (torch.arange(100) >= 80)  # 10 of 20 poisons, 20 of 80 clean
    fig = plots.roc_curves({"scores": (torch.rand(100, generator=g), truth), "flags": (flags.double(), truth)})
    ax = fig.axes[0]
    point = [line for line in ax.lines if line.get_label().startswith("flags")][0]
    assert list(point.get_xdata()) == [25.0] and list(point.get_ydata()) == [50.0]  # the operating point only
    assert point.get_linestyle() == "None" and point.get_marker() == "o"  # no line through the corners
    curve = [line for line in ax.lines if line.get_label().startswith("scores")][0]
    assert len(curve.get_xdata()) > 3 and curve.get_linestyle() != "None"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("chance") and labels[2] == "flags (AUC 0.62)"


def test_line_panels_draw_band_edges_integer_epochs_and_a_reference_line():
    epochs = list(range(1, 13))
    up, down = [0.5 + 0.04 * e for e in epochs], [0.98 - 0.04 * e for e in epochs]
    panel = {
        "x": epochs,
        "series": {"a": up, "b": down},
        "bands": {"a": ([v - 0.1 for v in up], [v + 0.1 for v in up]), "b": ([v - 0.1 for v in down], down)},
        "xlabel": "epoch",
        "hline": (0.5, "chance"),
    }
    fig = plots.line_panels([panel, panel], ylabel="AUC", percent=False)
    ax = fig.axes[0]
    for label, (lo, hi) in panel["bands"].items():
        line = [ln for ln in ax.lines if ln.get_label() == label][0]
        edges = [ln for ln in ax.lines if ln.get_color() == line.get_color() and ln is not line]
        assert sorted(tuple(ln.get_ydata()) for ln in edges) == sorted([tuple(lo), tuple(hi)])  # both edges drawn
        assert all(ln.get_linewidth() < line.get_linewidth() for ln in edges)  # thin, under the mean's line
    assert all(fill.get_alpha() <= 0.15 for fill in ax.collections)  # a light fill
    chance = [ln for ln in ax.lines if ln.get_label() == "chance"][0]
    assert set(chance.get_ydata()) == {0.5} and chance.get_linestyle() == ":"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "chance"]  # once, for both panels
    fig.draw_without_rendering()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks)  # no tick at epoch 2.5
    percent = plots.line_panels([{**panel, "hline": (0.5, "chance")}], ylabel="AUC (%)")
    assert {50.0} == set([ln for ln in percent.axes[0].lines if ln.get_label() == "chance"][0].get_ydata())


def test_image_grid_labels_a_row_of_one_caption_once_at_its_left():
    images = torch.rand(18, 1, 8, 8)
    fig = plots.image_grid(images, titles=["typical"] * 6 + ["own 7-like"] * 6 + ["poison"] * 6, ncols=6, size=1.1)
    assert [ax.get_ylabel() for ax in fig.axes[::6]] == ["typical", "own 7-like", "poison"]
    assert all(ax.get_title() == "" for ax in fig.axes)  # not under every image
    assert all(ax.get_ylabel() == "" for i, ax in enumerate(fig.axes) if i % 6)
    assert plots.alt_text(fig) == "18 images captioned typical; own 7-like; poison"
    width, _ = _png_size(plots.png_bytes(fig))
    assert width <= plots.MAX_WIDTH * fig.dpi + 12
    mixed = plots.image_grid(images, titles=["7"] * 6 + [f"→ {i}" for i in range(6)] + ["diff."] * 6, ncols=6)
    assert [ax.get_ylabel() for ax in mixed.axes[::6]] == ["7", "", "diff."]  # a row of different captions keeps them
    assert [ax.get_title() for ax in mixed.axes[6:12]] == [f"→ {i}" for i in range(6)]
    given = plots.image_grid(images, row_labels=["typical", "own 7-like", "poison"], ncols=6)
    assert [ax.get_ylabel() for ax in given.axes[::6]] == ["typical", "own 7-like", "poison"]
    one_row = plots.image_grid(images[:6], titles=["→ 0"] * 6, ncols=6)
    assert one_row.axes[0].get_title() == "→ 0" and one_row.axes[0].get_ylabel() == ""  # a single row: per image
    with pytest.raises(ValueError, match="one entry per row"):
        plots.image_grid(images, row_labels=["a", "b"], ncols=6)


def test_epsilon_explorer_frames_share_one_legend(monkeypatch):
    from poisonlab import widgets

    drawn = []
    monkeypatch.setattr(widgets, "_png", lambda fig: drawn.append(fig) or "")
    x, y = _toy()
    theta = torch.tensor([1.0, 0.0, -0.5])
    poisons = {  # the first budget has no poison labelled 0, the last no poison labelled 1
        0.01: (torch.rand(1, 2), torch.tensor([1])),
        0.05: (torch.rand(3, 2), torch.tensor([1, 0, 1])),
        0.1: (torch.rand(2, 2), torch.tensor([0, 0])),
    }
    widgets.epsilon_explorer(x, y, dict.fromkeys(poisons, theta), poisons, clean_theta=theta)
    assert len(drawn) == 3
    legends = [[t.get_text() for t in fig.legends[0].get_texts()] for fig in drawn]
    assert legends[0] == legends[1] == legends[2]
    assert legends[0] == [
        "class 0",
        "class 1",
        "poison, label 0",
        "poison, label 1",
        "clean boundary",
        "poisoned boundary",
    ]
    titles = [fig.axes[0].get_title() for fig in drawn]
    assert titles[0].startswith("ε = 1%, 1 poison") and "1 poisons" not in titles[0]
    assert titles[1].startswith("ε = 5%, 3 poisons")
    plain = plots.linear_boundaries(
        x, y, [{"theta": theta, "poison_x": torch.rand(1, 2), "poison_y": torch.tensor([1])}]
    )
    assert "poison, label 0" not in [t.get_text() for t in plain.legends[0].get_texts()]  # by default: only shown ones


def _luminance(colour) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in matplotlib.colors.to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_phase_diagram_legend_reads_and_every_column_has_a_tick():
    xs = [1, 2, 3, 4, 6, 8, 10]
    values = torch.full((2, len(xs)), 0.7)
    fig = plots.phase_diagram(values, xs, [0.01, 0.1], xlabel="shift", ylabel="ε", curve=([2, 6], [0.1, 0.01]))
    legend = fig.legends[0]
    box = _luminance(legend.get_frame().get_facecolor())
    for text in legend.get_texts():
        light, dark = sorted((_luminance(text.get_color()), box), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 7  # WCAG AAA contrast for the 8 pt text
    assert legend.get_frame().get_alpha() in (None, 1)
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == xs and [t.get_text() for t in ax.get_xticklabels()] == [str(v) for v in xs]


def test_measured_and_theory_labels_each_point_above_it():
    s, auc = [0.05, 0.1, 0.5, 1.0], [0.52, 0.6, 0.9, 0.99]
    labels = ["ε = 2%", "ε = 3%", "ε = 5%", "ε = 10%"]
    panel = {
        "xlabel": "s",
        "logx": True,
        "points": {"AUC": (s, auc), "cos²": (s, [0.0, 0.1, 0.5, 0.9])},
        "labels": {"AUC": labels},
    }
    fig = plots.measured_and_theory([panel], ylabel="y", title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == labels  # the AUC points only
    assert [tuple(t.xy) for t in ax.texts] == list(zip(s, auc))
    plots.png_bytes(fig)
    renderer = fig.canvas.get_renderer()
    for text, x, y in zip(ax.texts, s, auc):  # above its point, centred on it
        box = text.get_window_extent(renderer)
        px, py = ax.transData.transform((x, y))
        assert box.y0 > py and abs((box.x0 + box.x1) / 2 - px) < 1
    with pytest.raises(ValueError, match="labels"):
        plots.measured_and_theory([{**panel, "labels": {"AUC": labels[:2]}}], ylabel="y")
    with pytest.raises(ValueError, match="not one of the points"):
        plots.measured_and_theory([{**panel, "labels": {"recall": labels}}], ylabel="y")


def test_attack_landscape_is_a_smooth_surface_with_its_colourbar_close_and_a_legible_legend():
    from matplotlib.colors import to_rgb

    x, y = _toy()
    grid = torch.linspace(0, 1, 5)
    fig = plots.attack_landscape(grid, torch.rand(5, 5), x, y, path=torch.rand(4, 2), path_label=1)
    plots.png_bytes(fig)
    renderer = fig.canvas.get_renderer()
    ax, colourbar = fig.axes
    assert ax.collections[0]._shading == "gouraud"  # interpolated between the grid points, not blocks
    gap = colourbar.get_window_extent(renderer).x0 - ax.get_window_extent(renderer).x1
    assert 0 < gap < 0.025 * fig.bbox.width
    legend = ax.get_legend()
    face = np.mean(to_rgb(legend.get_frame().get_facecolor()))
    assert face <= 0.25 and all(np.mean(to_rgb(t.get_color())) == 1 for t in legend.get_texts())  # white on dark
    assert legend.get_window_extent(renderer).y1 < ax.get_window_extent(renderer).y0  # below the axes


def test_animation_frames_share_one_legend_below_the_axes_and_say_what_they_count():
    x, y = _toy()
    thetas = [torch.tensor([1.0, 0.1 * i, -0.5]) for i in range(3)]
    path, labels = torch.rand(3, 2, 2), torch.tensor([0, 1])
    with matplotlib.rc_context(plots.STYLE):
        fig, draw = plots._animation_figure(
            x, y, thetas, path, labels, clean_theta=thetas[0], steps_per_frame=5, errors=[0.02, 0.05, 0.064]
        )
        (legend,) = fig.legends
        expected = ["class 0", "class 1", "clean boundary", "poisoned boundary", "poison, label 0", "poison, label 1"]
        assert [t.get_text() for t in legend.get_texts()] == expected
        titles = []
        for k in range(3):
            draw(k)
            plots.png_bytes(fig)
            renderer = fig.canvas.get_renderer()
            assert fig.legends == [legend] and [t.get_text() for t in legend.get_texts()] == expected  # never changes
            assert legend.get_window_extent(renderer).y1 < fig.axes[0].get_window_extent(renderer).y0  # below
            titles.append(fig.axes[0].get_title())
    assert titles[0] == "ascent step 0 of 10\ntest error 2.0%" and titles[2] == "ascent step 10 of 10\ntest error 6.4%"
    with matplotlib.rc_context(plots.STYLE):
        fig, draw = plots._animation_figure(x, y, thetas, path, torch.tensor([1, 1]), title="ε = 10%: ")
        draw(1)
    assert fig.axes[0].get_title() == "ε = 10%: frame 2 of 3"  # without the step count, the frame's number
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "poison, label 1"
    html = plots.boundary_animation(x, y, thetas, path, labels, steps_per_frame=5, title="ε = 10%: ")
    assert "over 10 ascent steps (3 frames, one every 5 ascent steps) (ε = 10%)" in html.data
    with pytest.raises(ValueError, match="one test error per frame"):
        plots.boundary_animation(x, y, thetas, path, labels, errors=[0.1])


def test_paired_bars_can_hatch_the_second_series_choose_colours_and_count_in_whole_numbers():
    from matplotlib.colors import to_hex

    fig = plots.paired_bars(["a", "b"], [0.1, 0.2], [0.3, 0.4], hatch="//")
    bars = fig.axes[0].patches
    assert [bar.get_hatch() for bar in bars] == [None, None, "//", "//"]  # the second series only
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["clean", "poisoned"]
    default = [to_hex(bar.get_facecolor()) for bar in bars]
    assert default == [plots.PALETTE[5].lower()] * 2 + [plots.WRONG.lower()] * 2  # unchanged by default
    fig = plots.paired_bars(["a", "b"], [0.9, 0.9], [0.1, 0.9], names=("CA", "ASR"), colors=plots.METRIC_COLORS)
    chosen = [to_hex(bar.get_facecolor()) for bar in fig.axes[0].patches]
    assert chosen == [plots.METRIC_COLORS[0].lower()] * 2 + [plots.METRIC_COLORS[1].lower()] * 2
    assert not set(chosen) & set(default)  # a metric split does not reuse the clean/poisoned colours
    with pytest.raises(ValueError, match="two colours"):
        plots.paired_bars(["a"], [0.1], [0.2], colors=("red",))
    fig = plots.paired_bars(["a", "b"], [3, 1], [7, 2], percent=False, ylabel="poisons removed")
    plots.png_bytes(fig)
    ticks = [t for t in fig.axes[0].get_yticks() if fig.axes[0].get_ylim()[0] <= t <= fig.axes[0].get_ylim()[1]]
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks)
    assert [t.get_text() for t in fig.axes[0].texts] == ["3", "1", "7", "2"]  # counts, not "3.0"
    fig = plots.paired_bars(["a"], [0.5], [1.5], percent=False)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.5", "1.5"]  # not counts: one decimal


def test_lines_name_a_single_curve_by_its_axes_and_keep_markers_where_curves_meet_visible():
    single = plots.lines([1, 2, 3], {"a": [0.1, 0.2, 0.3]}, xlabel="x", ylabel="y (%)")
    assert plots.legend_points(single) is None  # one curve: no legend
    assert plots.legend_points(plots.lines([1, 2], {"a": [0.1, 0.2]}, xlabel="x", ylabel="y", legend=True)) == 9
    meeting = plots.lines([1, 2, 3], {"a": [0.7, 0.3, 0.0], "b": [0.1, 0.2, 0.0]}, xlabel="x", ylabel="y")
    a, b = meeting.axes[0].lines
    assert a.get_markerfacecolor() == b.get_markerfacecolor() == "none"  # hollow: the lower one shows through
    assert a.get_markersize() > b.get_markersize() + 3  # the later one drawn inside the earlier
    legend = meeting.legends[0]  # the legend shows the markers as drawn
    assert [h.get_markerfacecolor() for h in legend.legend_handles] == ["none", "none"]
    apart = plots.lines([1, 2], {"a": [0.7, 0.3], "b": [0.1, 0.2]}, xlabel="x", ylabel="y")
    assert all(line.get_markerfacecolor() != "none" for line in apart.axes[0].lines)  # unchanged when apart
    chosen = plots.lines(
        [1, 2], {"a": [0.1, 0.2], "b": [0.1, 0.3]}, xlabel="x", ylabel="y", markers={"a": "^", "b": {"markersize": 3}}
    )
    a, b = chosen.axes[0].lines
    assert a.get_marker() == "^" and b.get_markersize() == 3 and a.get_markerfacecolor() != "none"
    with pytest.raises(ValueError, match="not a series"):
        plots.lines([1], {"a": [0.1]}, xlabel="x", ylabel="y", markers={"c": "o"})


def test_collision_map_draws_clean_clouds_that_read_and_legend_keys_as_large_as_the_others():
    clean, labels = torch.randn(30, 2), torch.arange(30) % 2
    b, p, t = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    fig = plots.collision_map(clean, labels, ["3", "8"], b, p, t)
    clouds = [c for c in fig.axes[0].collections if c.get_label().startswith("clean ")]
    assert len(clouds) == 2 and all(c.get_alpha() >= 0.5 for c in clouds)
    legend = fig.legends[0]
    keys = {text.get_text(): handle for text, handle in zip(legend.get_texts(), legend.legend_handles)}
    for name in ("clean 3", "clean 8"):
        assert keys[name].get_sizes()[0] >= keys["base"].get_sizes()[0] and keys[name].get_alpha() == 1.0


@pytest.mark.parametrize(
    "draw, match",
    [
        (
            lambda: plots.line_panels([{"x": [1, 2], "series": {"a": [0.1, 0.2]}, "xlable": "epoch"}], ylabel="y"),
            "xlabel",
        ),
        (
            lambda: plots.line_panels(
                [{"x": [1, 2], "series": {"a": [0.1, 0.2]}, "xlabel": "epoch", "band": {}}], ylabel="y"
            ),
            "unknown keys \\['band'\\]",
        ),
        (
            lambda: plots.score_histograms(
                [{"scores": torch.rand(5), "is_poison": torch.ones(5).bool(), "treshold": 1}]
            ),
            "treshold",
        ),
        (lambda: plots.measured_and_theory([{"xlabel": "x", "point": {}}], ylabel="y"), "point"),
        (lambda: plots.line_panels({"x": [1]}, ylabel="y"), "list of LinePanels"),
        (lambda: plots.line_panels([("x", [1])], ylabel="y"), r"panels\[0\] must be a LinePanel or a dict"),
    ],
)
def test_a_panel_with_a_misspelt_missing_or_unknown_key_is_refused(draw, match):
    with pytest.raises(ValueError, match=match):
        draw()


def test_typed_panels_draw_the_same_figure_as_their_dicts():
    series = {"x": [1, 2, 3], "series": {"a": [0.1, 0.2, 0.4]}, "xlabel": "epoch", "title": "t"}
    typed, loose = plots.line_panels([plots.LinePanel(**series)], ylabel="y"), plots.line_panels([series], ylabel="y")
    for a, b in zip(typed.axes, loose.axes):
        assert a.get_title() == b.get_title() and a.get_xlabel() == b.get_xlabel() == "epoch"
        assert [list(line.get_ydata()) for line in a.lines] == [list(line.get_ydata()) for line in b.lines]
    truth = torch.arange(20) < 3
    fig = plots.score_histograms([plots.ScorePanel(torch.rand(20), truth, title="s", threshold=0.5)])
    assert fig.axes[0].get_title() == "s"
    fig = plots.projections([plots.ProjectionPanel(torch.rand(20, 2), truth)])
    assert len(fig.axes[0].collections) == 2  # clean and poison, no cover group
    fig = plots.measured_and_theory([plots.TheoryPanel("x", points={"m": ([1, 2], [0.1, 0.2])})], ylabel="y")
    assert fig.axes[0].get_xlabel() == "x"


def test_a_panel_of_the_wrong_type_is_refused_by_name():
    with pytest.raises(ValueError, match=r"panels\[0\] must be a ScorePanel or a dict, got LinePanel"):
        plots.score_histograms([plots.LinePanel([1], {"a": [1]}, "x")])
    with pytest.raises(TypeError):
        plots.LinePanel([1], {"a": [1]}, "x", band={})  # a misspelt field of the type itself


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: plots.image_grid(torch.rand(2, 1, 4, 4), size=True), "^size must be a number"),
        (lambda: plots.image_grid(torch.rand(2, 1, 4, 4), size=float("nan")), "^size must be a finite number"),
        (lambda: plots.project_2d(torch.rand(5, 3), seed=1.5), "^seed must be an integer"),
        (lambda: plots.project_2d(torch.ones(5, 3, dtype=torch.long)), "^features must be a floating-point"),
        (lambda: plots.project_2d(torch.full((5, 3), float("nan"))), "^features must hold finite"),
        (
            lambda: plots.score_histograms(
                [plots.ScorePanel(torch.rand(6), torch.tensor([1, 0] * 3).bool())], bins=True
            ),
            "^bins must be an integer",
        ),
    ],
)
def test_figure_settings_refuse_bool_and_non_finite_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_embedding_and_phase_diagram_refuse_non_finite_values():
    with pytest.raises(ValueError, match="^coords must hold finite numbers"):
        plots.embedding(torch.full((4, 2), float("nan")), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="^coords must be a floating-point tensor"):
        plots.embedding(torch.ones(4, 2, dtype=torch.long), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    values = torch.rand(2, 3)
    values[0, 0] = float("inf")
    with pytest.raises(ValueError, match="^values must hold finite numbers"):
        plots.phase_diagram(values, [1.0, 2.0, 3.0], [1.0, 2.0], xlabel="x", ylabel="y")


# -- grids and sequences of numbers: integer and bool tensors refused, NaN refused, labels as text -


@pytest.mark.parametrize(
    "values",
    [
        torch.tensor([[0, 1, 1], [1, 0, 0]]),
        torch.tensor([[0, 1, 1], [1, 0, 0]], dtype=torch.uint8),
        torch.rand(2, 3) > 0.5,
        np.array([[0, 1, 1], [1, 0, 0]]),
    ],
)
def test_heatmap_and_phase_diagram_refuse_integer_and_bool_grids(values):
    with pytest.raises(TypeError, match="^values must hold floating-point values, got dtype"):
        plots.heatmap(values, row_labels=["a", "b"], col_labels=["x", "y", "z"], xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="^values must hold floating-point values, got dtype"):
        plots.phase_diagram(values, [1.0, 2.0, 3.0], [1.0, 2.0], xlabel="x", ylabel="y")
    converted = values.float() if isinstance(values, torch.Tensor) else values.astype(float)
    plots.heatmap(converted, row_labels=["a", "b"], col_labels=["x", "y", "z"], xlabel="x", ylabel="y")
    plots.phase_diagram(converted, [1.0, 2.0, 3.0], [1.0, 2.0], xlabel="x", ylabel="y")


def test_heatmap_takes_lists_of_plain_numbers_but_not_of_bools():
    plots.heatmap([[0, 1], [1, 0]], row_labels=["a", "b"], col_labels=["x", "y"], xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="^values must hold real numbers, got an entry True"):
        plots.heatmap([[True, False]], row_labels=["a"], col_labels=["x", "y"], xlabel="x", ylabel="y")


def test_heatmap_refuses_a_string_of_labels_and_non_text_settings():
    grid = dict(values=torch.rand(2, 3), col_labels=["x", "y", "z"], xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="^row_labels must be a list of labels"):
        plots.heatmap(row_labels="ab", **grid)  # two characters, two rows: once drawn without a word
    for name, value in (("xlabel", 3), ("ylabel", 3), ("percent", "yes"), ("annotate", "yes")):
        with pytest.raises((TypeError, ValueError), match=f"^{name} must be"):
            plots.heatmap(**{"row_labels": ["a", "b"], **grid, name: value})


def test_lines_and_paired_bars_refuse_nan_and_out_of_range_values():
    with pytest.raises(ValueError, match=r"^x must hold finite numbers, got \[nan, 2.0, 3.0\]"):
        plots.lines([float("nan"), 2, 3], {"a": [0.1, 0.2, 0.3]}, xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="^series must be a dict"):
        plots.lines([1, 2, 3], [0.1, 0.2, 0.3], xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="^xlabel must be a string"):
        plots.lines([1, 2, 3], {"a": [0.1, 0.2, 0.3]}, xlabel=3, ylabel="y")
    plots.lines([1, 2, 3], {"a": [0.1, float("nan"), 0.3]}, xlabel="x", ylabel="y")  # a missing value: a gap
    for name in ("before", "after"):
        bars = {"labels": ["a", "b"], "before": [0.1, 0.2], "after": [0.2, 0.3]}
        with pytest.raises(ValueError, match=f"^{name} must hold finite numbers"):
            plots.paired_bars(**{**bars, name: [float("nan"), 0.2]})
        with pytest.raises(ValueError, match=rf"^{name} must lie in \[0, 1\]"):
            plots.paired_bars(**{**bars, name: [-1, 0.2]})
        plots.paired_bars(**{**bars, name: [-1, 0.2]}, percent=False)  # other values than rates
    with pytest.raises(TypeError, match="^labels must be a list of labels"):
        plots.paired_bars("ab", [0.1, 0.2], [0.2, 0.3])


def test_line_panels_refuse_a_number_as_ylabel():
    with pytest.raises(TypeError, match="^ylabel must be a string"):
        plots.line_panels([plots.LinePanel(x=[1, 2], series={"a": [0.1, 0.2]}, xlabel="x")], ylabel=3)


@pytest.mark.parametrize("fn", [plots.alt_text, plots.png_bytes, plots.figure_html, plots.legend_points])
def test_figure_readers_refuse_what_is_not_a_figure(fn):
    for bad in (None, "fig", 3):
        with pytest.raises(TypeError, match="^fig must be a matplotlib Figure"):
            fn(bad)


def test_class_names_curves_and_titles_are_checked_by_name():
    images, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    for bad in (None, 3):
        with pytest.raises(TypeError, match="^classes must be a list of labels"):
            plots.predictions(images, y, y, bad)
        with pytest.raises(TypeError, match="^classes must be a list of labels"):
            plots.embedding(torch.rand(2, 2), y, bad)
    with pytest.raises(TypeError, match=r"^curves must be a dict \{name: \(scores, is_poison\)\}"):
        plots.roc_curves([(torch.rand(4), torch.tensor([True, False, True, False]))])
    for bad in (None, 3):
        with pytest.raises(TypeError, match="^title must be a string"):
            plots.animation_alt(bad, torch.rand(3, 2, 2))
