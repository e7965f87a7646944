"""Every figure style the book uses, in one place.

Functions return a :class:`matplotlib.figure.Figure` built without ``pyplot``, so a notebook
shows each figure exactly once and no figure is left open. All of them share one style:
:data:`STYLE` (legible sizes, light grid, no top/right spines) and the colour-blind-safe
Okabe–Ito palette :data:`PALETTE` (Okabe & Ito 2008).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure

from poisonlab import _validate
from poisonlab.train import History

#: Okabe–Ito colours: black, orange, sky blue, bluish green, yellow, blue, vermilion, purple.
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: The colours for "correct" and "wrong" in prediction grids.
CORRECT, WRONG = "#009E73", "#D55E00"

STYLE: dict = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "axes.prop_cycle": mpl.cycler(color=[PALETTE[i] for i in (5, 1, 3, 6, 7, 2, 4, 0)]),
    "figure.constrained_layout.use": True,
}


#: Line styles that tell curves apart without their colour (in grey print, or for colour-blind readers).
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))


_REPR = re.compile(r"\b([A-Za-z_]\w*)\(([^()]*=[^()]*)\)")  # Patch(size=3, location='bottom-right')


def _plain(text: str) -> str:
    """``text`` with code turned into words: a repr ``Patch(size=3, pattern='white')`` reads
    "patch (size 3, pattern white)", a Python bool "yes" or "no"."""

    def words(match: re.Match) -> str:
        args = ", ".join(" ".join(a.replace("=", " ", 1).replace("'", "").split()) for a in match[2].split(","))
        return f"{match[1].lower()} ({args})"

    text = _REPR.sub(words, " ".join(text.split()))
    return re.sub(r"\bFalse\b", "no", re.sub(r"\bTrue\b", "yes", text))


def _is_sentence(text: str) -> bool:
    """Whether a title reads as a statement a reader can take as the figure's description: words
    (at least two), no code (a repr, a Python bool), not a fragment cut at a comma or a colon."""
    text = " ".join(text.split())
    words = re.findall(r"[^\W\d_]{2,}", text)
    return (
        len(words) >= 2
        and not _REPR.search(text)
        and not re.search(r"\b(True|False|None)\b", text)
        and not text.endswith((",", ":", ";", "(", "-", "–"))
    )


def _what_is_shown(fig: Figure) -> str:
    """What ``fig`` draws, in words: an image grid's size and its captions, else its panels' titles,
    else what its first panel plots against what."""
    shown = [ax for ax in fig.axes if ax.get_visible() and (ax.images or ax.lines or ax.collections or ax.patches)]
    grid = [ax for ax in shown if ax.images and not ax.get_xlabel()]
    titles = [" ".join(ax.get_title().split()) for ax in shown if ax.get_title().strip()]
    if grid and len(grid) == len(shown) and len(grid) > 1:
        said = [" ".join(t.split()) for ax in grid for t in (ax.get_ylabel(), ax.get_title()) if t.strip()]
        captions = list(dict.fromkeys(said))  # row labels and captions, in reading order
        said = f"{len(grid)} images"
        if captions:
            listed = "; ".join(captions[:8]) + ("; …" if len(captions) > 8 else "")
            said += f" captioned {listed}"
        return said
    if titles:
        return "; ".join(titles)
    for ax in fig.axes:
        if ax.get_xlabel() or ax.get_ylabel():
            return f"A plot of {ax.get_ylabel() or 'values'} against {ax.get_xlabel() or 'position'}"
    return "A figure"


def _check_figure(fig: object) -> None:
    """Check ``fig`` is a matplotlib Figure (TypeError naming it otherwise)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {fig!r}")


def alt_text(fig: Figure) -> str:
    """A figure's alternative text for readers who cannot see it: its title (the sentence that says
    what to see); where the title is no sentence (code, a fragment, a list of numbers), what the
    figure shows followed by the title in words; without a title, its panels' titles, else what
    its first panel plots against what."""
    _check_figure(fig)
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    suptitle = " ".join(suptitle.split())
    if suptitle and _is_sentence(suptitle):
        return suptitle
    shown = _what_is_shown(fig)
    if suptitle:
        title = _plain(suptitle).rstrip(",:;(-– ")
        shown = shown[0].upper() + shown[1:]
        return f"{shown} ({title})"
    return shown


def figure_html(fig: Figure) -> str:
    """``fig`` as an HTML image with :func:`alt_text` as its alternative text: the form in which a
    notebook shows the course's figures (registered for every matplotlib figure when ``poisonlab``
    is imported in IPython), so that the site's images carry their title as alt text."""
    _check_figure(fig)
    import base64
    import html

    png = base64.b64encode(png_bytes(fig)).decode("ascii")
    legend = legend_points(fig)
    # the legend's size and the resolution, so that a test can tell how large the legend reads on a page
    sizes = f' data-legend-pt="{legend:g}" data-dpi="{fig.dpi:g}"' if legend else ""
    return f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt_text(fig))}"{sizes} style="max-width:100%">'


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes, the way the book shows every figure: titles wrapped to its width
    (:func:`fit_to_width`), cropped to what it draws with a small margin, at the figure's dpi, on
    white. Changes ``fig``'s titles in place."""
    _check_figure(fig)
    import io

    fit_to_width(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    return buffer.getvalue()


def fit_to_width(fig: Figure) -> Figure:
    """Keep ``fig``'s titles within its width, so that a tight crop does not make the image wider
    than the figure (and the page shrink it): a title too long for its width is wrapped onto more
    lines. (Legends below the panels are given few enough columns when they are made.) Changes
    ``fig`` in place and returns it."""
    import textwrap

    if not hasattr(fig.canvas, "get_renderer"):  # a figure built without pyplot: measure with Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    titles = [(fig._suptitle, fig.bbox.width)] if fig._suptitle is not None else []
    for ax in fig.axes:  # a centred title may reach as far as the nearer edge of the figure allows
        centre = (ax.bbox.x0 + ax.bbox.x1) / 2
        if ax.get_visible():
            titles.append((ax.title, 2 * min(centre - fig.bbox.x0, fig.bbox.x1 - centre)))
    for text, room in titles:
        words = " ".join(text.get_text().split())
        chars = len(words)
        while words and text.get_window_extent(renderer).width > room and chars > 12:
            chars = int(chars * 0.85)
            text.set_text(textwrap.fill(words, chars))
    return fig


def legend_points(fig: Figure) -> float | None:
    """The size in points of the smallest legend text of ``fig`` (None when it has no legend). On a
    page that shows the figure at a share k of its width, it reads as ``size · k · dpi / 96`` points."""
    _check_figure(fig)
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    sizes = [t.get_fontsize() for legend in legends for t in legend.get_texts() if t.get_text().strip()]
    return min(sizes) if sizes else None


def _register_figure_html() -> None:
    """In IPython, show every figure through :func:`figure_html` (besides matplotlib's own PNG)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(Figure, figure_html)


#: The widest figure, in inches, that the site's text column (676 px; figures are drawn at 110 dpi,
#: and cropped with a small margin) shows at full size: a wider one is shrunk, and its legend with it.
MAX_WIDTH = 5.9


def _figure(**kwargs) -> Figure:
    """A figure in the book's style, no wider than :data:`MAX_WIDTH` (a wider size is scaled down,
    keeping its proportions, so that its text reads at the size it was set in)."""
    w, h = kwargs.get("figsize") or mpl.rcParams["figure.figsize"]
    if w > MAX_WIDTH:
        kwargs["figsize"] = (MAX_WIDTH, h * MAX_WIDTH / w)
    with mpl.rc_context(STYLE):
        return Figure(**kwargs)


def _panel_grid(n: int, panel: tuple[float, float], extra_height: float = 0.0) -> tuple[int, int, tuple[float, float]]:
    """(rows, columns, figure size) for ``n`` side-by-side panels of about ``panel`` inches each:
    as many columns as fit in :data:`MAX_WIDTH` at no less than 2.9 inches a panel, the rest in rows;
    a panel keeps its height when it has to be narrower, so that its legend has room."""
    cols = max(1, min(n, int(MAX_WIDTH // 2.9)))
    rows = math.ceil(n / cols)
    width = min(MAX_WIDTH, panel[0] * cols)
    return rows, cols, (width, rows * panel[1] + extra_height)  # narrower panels keep their height


def _panel_axes(fig: Figure, n: int, rows: int, cols: int, **kwargs) -> list:
    """The first ``n`` axes of a rows × cols grid, the spare ones hidden."""
    axes = list(fig.subplots(rows, cols, squeeze=False, **kwargs).flatten())
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def image_grid(
    images: torch.Tensor,
    *,
    titles: Sequence[str] | None = None,
    title_colors: Sequence[str] | None = None,
    title: str | None = None,
    ncols: int = 8,
    size: float = 1.25,
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """Show a batch of images in a grid.

    Args:
        images: shape (N, C, H, W), values in [0, 1]; C = 1 is drawn in grey, C = 3 in colour.
        titles: one short caption per image. In a grid of several rows, a row whose images all
            carry the same caption (in the same colour) is labelled once, at its left, instead.
        title_colors: one colour per caption (e.g. :data:`CORRECT` / :data:`WRONG`).
        title: the figure's title; state the finding.
        ncols: images per row.
        size: inches per image, a finite number > 0 (``bool`` refused).
        row_labels: one label per row, written once at the row's left (e.g. "typical", "poison").
    """
    images = _validate.images("images", images).detach().cpu()
    size = _validate.positive_float("size", size)
    n = images.shape[0]
    if n == 0:
        raise ValueError("images must hold at least one image, got 0")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    for name, seq in (("titles", titles), ("title_colors", title_colors)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} must have one entry per image ({n}), got {len(seq)}")
    ncols = min(_validate.positive_int("ncols", ncols), n)
    nrows = math.ceil(n / ncols)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"row_labels must have one entry per row ({nrows}), got {len(row_labels)}")
    labels: list = [None] * nrows if row_labels is None else [(str(label), "black") for label in row_labels]
    if titles is not None and row_labels is None and nrows > 1:  # rows of one caption: label each row once
        colors = title_colors if title_colors is not None else ["black"] * n
        for r in range(nrows):
            row = range(r * ncols, min(n, (r + 1) * ncols))
            if len({(str(titles[i]), mpl.colors.to_hex(colors[i])) for i in row}) == 1:
                labels[r] = (str(titles[row[0]]), colors[row[0]])
        if any(labels):
            titles = ["" if labels[i // ncols] else t for i, t in enumerate(titles)]
    labelled = any(labels)
    size = min(size, MAX_WIDTH / ncols)  # a grid wider than the column: smaller images, same text
    if labelled and ncols * size + 0.3 > MAX_WIDTH:  # room for the row labels at the left
        size = (MAX_WIDTH - 0.3) / ncols
    if titles is not None and not any(str(t).strip() for t in titles):
        titles = None
    captions, fontsize = _fit_captions(titles, room=72 * size - 4) if titles is not None else ([], 10)
    lines = max((c.count("\n") + 1 for c in captions), default=0)
    extra = 0.1 + lines * fontsize * 1.25 / 72 if titles is not None else 0.0
    with mpl.rc_context(STYLE):
        width = ncols * size + (0.3 if labelled else 0)
        fig = _figure(figsize=(width, nrows * (size + extra) + (0.4 if title else 0)))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.set_axis_off()
                continue
            # A thin frame, so that white pixels at the border (a corner trigger) stay visible.
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("0.6")
                spine.set_linewidth(0.8)
            img = images[i].clamp(0, 1)
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            if titles is not None and captions[i]:
                color = title_colors[i] if title_colors is not None else "black"
                ax.set_title(captions[i], fontsize=fontsize, color=color, linespacing=1.0)
            if i % ncols == 0 and labels[i // ncols]:
                text, color = labels[i // ncols]
                ax.set_ylabel(_wrap_label(text, 10, room=72 * size - 4), fontsize=10, color=color, linespacing=1.0)
        if title:
            fig.suptitle(title)
    return fig


def _text_width(text: str, fontsize: float) -> float:
    """The width in points of the widest line of ``text`` in the book's font at ``fontsize``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=fontsize)
    return max(
        (TextToPath().get_text_width_height_descent(line, prop, ismath=False)[0] for line in text.split("\n")),
        default=0.0,
    )


def _two_lines(text: str) -> str:
    """``text`` broken at the space that best balances its two lines (unchanged without a space)."""
    words = text.split(" ")
    if len(words) < 2:
        return text
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    first, second = min(splits, key=lambda p: max(len(p[0]), len(p[1])))
    return f"{first}\n{second}"


def _fit_captions(titles: Sequence[str], *, room: float) -> tuple[list[str], float]:
    """Captions that each fit ``room`` points, so that neighbours never run into each other, and
    their font size: one line at 10 or 9 pt, else two lines at 10 or 9 pt, else one or two lines
    at 8 or 7 pt (all captions of a grid in one size; only those too wide are wrapped)."""
    titles = [" ".join(str(t).split()) for t in titles]
    for wrap, fontsize in ((False, 10), (False, 9), (True, 10), (True, 9), (False, 8), (True, 8), (True, 7)):
        captions = [_two_lines(t) if wrap and _text_width(t, fontsize) > room else t for t in titles]
        if all(_text_width(c, fontsize) <= room for c in captions):
            return captions, fontsize
    return captions, 7


def predictions(
    images: torch.Tensor,
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    classes: Sequence[str],
    *,
    title: str | None = None,
    ncols: int = 8,
) -> Figure:
    """An image grid captioned with each prediction, green when right and vermilion when wrong."""
    n = _validate.images("images", images).shape[0]
    classes = _validate.texts("classes", classes)
    _validate.labels("y_true", y_true, n=n, num_classes=len(classes))
    _validate.labels("y_pred", y_pred, n=n, num_classes=len(classes))
    captions, colors = [], []
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        captions.append(f"{classes[p]}" if t == p else f"{classes[p]} (true {classes[t]})")
        colors.append(CORRECT if t == p else WRONG)
    return image_grid(images, titles=captions, title_colors=colors, title=title, ncols=ncols)


def training_curves(history: History, *, title: str | None = None, extra: Mapping[str, str] | None = None) -> Figure:
    """Loss (left) and accuracy (right) per epoch.

    Args:
        history: what :func:`poisonlab.train.fit` returned.
        title: the figure's title.
        extra: which ``history.metrics`` to draw on the accuracy panel, as
            ``{metric key: legend label}``; by default every metric.
    """
    if not isinstance(history, History) or history.epochs == 0:
        raise ValueError("history must be a non-empty poisonlab.train.History")
    extra = dict(extra) if extra is not None else {k: k.replace("_", " ") for k in history.metrics}
    for key in extra:
        if key not in history.metrics:
            raise ValueError(f"history has no metric {key!r}; it has {sorted(history.metrics)}")
    epochs = np.arange(1, history.epochs + 1)
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(8, 3.2))
        ax_loss, ax_acc = fig.subplots(1, 2)
        ax_loss.plot(epochs, history.loss, marker="o")
        ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Loss")
        ax_acc.plot(epochs, np.array(history.train_accuracy) * 100, marker="o", label="train")
        for key, label in extra.items():
            ax_acc.plot(epochs, np.array(history.metrics[key]) * 100, marker="s", label=label)
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
        _legend_under(ax_acc, fontsize=9)  # below its x-label, never over a curve
        for ax in (ax_loss, ax_acc):
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        if title:
            fig.suptitle(title)
    return fig


def project_2d(features: torch.Tensor, *, method: str = "pca", seed: int = 0) -> torch.Tensor:
    """Project representations (N, F) to 2-D for a picture: ``"pca"`` (top two principal
    components of the centred features) or ``"tsne"`` (scikit-learn's t-SNE, PCA-initialised).
    ``features`` must be finite floating point; ``seed`` (used by t-SNE) an integer.

    Returns:
        Coordinates, shape (N, 2).
    """
    _validate.choice("method", method, ("pca", "tsne"))
    _validate.seed(seed)
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] < 3:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a tensor of shape (N, F) with N >= 3, got {got}")
    features = _validate.inputs("features", features)
    z = features.detach().cpu().double()
    if method == "pca":
        z = z - z.mean(0)
        _, _, vt = torch.linalg.svd(z, full_matrices=False)
        return (z @ vt[:2].T).float()
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (z.shape[0] - 1) / 3)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=_validate.seed(seed))
    out = tsne.fit_transform(z.numpy())
    return torch.tensor(out, dtype=torch.float32)


def embedding(
    coords: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    *,
    title: str | None = None,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
    highlight: torch.Tensor | None = None,
) -> Figure:
    """Scatter 2-D coordinates coloured by class, with each class's name at its centre.

    Args:
        coords: shape (N, 2), finite floating point, e.g. from :func:`project_2d`.
        labels: shape (N,), integers in [0, K).
        classes: the K class names.
        highlight: optional bool mask (N,) of points to ring in black (e.g. poisons).
    """
    if not isinstance(coords, torch.Tensor) or coords.ndim != 2 or coords.shape[1] != 2:
        got = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise ValueError(f"coords must have shape (N, 2), got {got}")
    coords = _validate.inputs("coords", coords)
    classes = _validate.texts("classes", classes)
    _validate.labels("labels", labels, n=coords.shape[0], num_classes=len(classes))
    c = coords.detach().cpu().numpy()
    lab = labels.cpu().numpy()
    k = len(classes)
    colors = mpl.colormaps["tab10" if k <= 10 else "tab20"].colors
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(6, 5))
        ax = fig.subplots()
        for j in range(k):
            pts = c[lab == j]
            if len(pts) == 0:
                continue
            ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.6, color=colors[j % len(colors)])
            cx, cy = np.median(pts, axis=0)
            ax.text(
                cx,
                cy,
                classes[j],
                fontsize=12,
                weight="bold",
                ha="center",
                va="center",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=colors[j % len(colors)], alpha=0.85),
            )
        if highlight is not None:
            h = highlight.cpu().numpy().astype(bool)
            ax.scatter(
                c[h, 0], c[h, 1], s=40, facecolors="none", edgecolors="black", linewidths=1.2, label="highlighted"
            )
        ax.set(xlabel=xlabel, ylabel=ylabel)
        if title:
            ax.set_title(title)
        if highlight is not None:  # class names are written on the clusters; no legend needed
            fig.legend(loc="outside lower center", fontsize=8)  # below the axes, never over a point
    return fig


def collision_map(
    clean: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    bases: torch.Tensor,
    poisons: torch.Tensor,
    targets: torch.Tensor,
    *,
    title: str | None = None,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
) -> Figure:
    """Where feature-collision poisons land: clean points (by class, half-transparent), and for each pair an
    arrow from its base to its poison and a dotted line from the poison to its target (a star).

    Args:
        clean: 2-D coordinates of clean points (N, 2); labels (N,) in [0, K); classes: K names.
        bases, poisons, targets: 2-D coordinates (P, 2) of each pair's base, poison and target.
    """
    for name, t in (("clean", clean), ("bases", bases), ("poisons", poisons), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != 2:
            raise ValueError(f"{name} must be 2-D coordinates shaped (n, 2)")
    if not (len(bases) == len(poisons) == len(targets)):
        raise ValueError("bases, poisons and targets must have one row per pair")
    _validate.labels("labels", labels, n=clean.shape[0], num_classes=len(classes))
    c, lab = clean.detach().cpu().numpy(), labels.cpu().numpy()
    b, p, t = (v.detach().cpu().numpy() for v in (bases, poisons, targets))
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(6.4, 5.2))
        ax = fig.subplots()
        for j, name in enumerate(classes):
            pts = c[lab == j]
            ax.scatter(  # dense enough to tell the clouds apart, light enough to keep the arrows on top legible
                pts[:, 0],
                pts[:, 1],
                s=9,
                alpha=0.6,
                color=PALETTE[(5, 1, 3, 6, 7, 2)[j % 6]],
                linewidths=0,
                label=f"clean {name}",
            )
        for i in range(len(b)):
            ax.annotate("", xy=p[i], xytext=b[i], arrowprops=dict(arrowstyle="->", color="0.35", lw=0.7))
            ax.plot([p[i, 0], t[i, 0]], [p[i, 1], t[i, 1]], ls=":", lw=0.8, color=WRONG)  # poison ⋯ its target
        ax.scatter(b[:, 0], b[:, 1], s=22, marker="s", facecolors="none", edgecolors="black", label="base")
        ax.scatter(p[:, 0], p[:, 1], s=26, marker="x", color=WRONG, label="poison")
        ax.scatter(t[:, 0], t[:, 1], s=60, marker="*", color="black", label="target")
        ax.set(xlabel=xlabel, ylabel=ylabel)
        legend = fig.legend(loc="outside lower center", ncols=3, fontsize=8)  # 3 columns fit MAX_WIDTH
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            if text.get_text().startswith("clean "):  # the clouds' dots, as large and opaque as the other keys
                handle.set_sizes([30])
                handle.set_alpha(1.0)
        if title:
            ax.set_title(title)
    return fig


def boundary_segment(theta: torch.Tensor, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of the line w·x + b = 0 (``theta`` = (w₁, w₂, b)) inside ``box`` = (x0, x1, y0, y1),
    as its two end points, shape (2, 2); shape (0, 2) when the line misses the box. The line is
    parametrised by the coordinate along which it runs further (x for a flat line, y for a steep
    one), so that a near-vertical boundary spans the box as fully as a flat one.

    ``theta`` must be a finite floating-point tensor of shape (3,); ``box`` four finite numbers
    with x0 <= x1 and y0 <= y1."""
    theta = _validate.vector("theta", theta)
    if theta.shape != (3,):
        raise ValueError(f"theta must be (w₁, w₂, b), a tensor of shape (3,), got shape {tuple(theta.shape)}")
    w0, w1, b = (float(v) for v in theta)
    if not isinstance(box, Sequence) or len(box) != 4:
        raise ValueError(f"box must be four numbers (x0, x1, y0, y1), got {box!r}")
    x0, x1, y0, y1 = (_validate.finite_number("box", v) for v in box)
    if x0 > x1 or y0 > y1:
        raise ValueError(f"box must have x0 <= x1 and y0 <= y1, got {box!r}")
    if max(abs(w0), abs(w1)) < 1e-12:
        return np.empty((0, 2))
    if abs(w1) >= abs(w0):  # flat: y as a function of x, clipped to the box's rows
        t = np.array([x0, x1])
        lo, hi = sorted((-(w1 * y0 + b) / w0, -(w1 * y1 + b) / w0)) if abs(w0) > 1e-12 else (-np.inf, np.inf)
        t = np.clip(t, max(x0, lo), min(x1, hi))
        if t[0] >= t[1]:
            return np.empty((0, 2))
        return np.stack([t, -(w0 * t + b) / w1], axis=1)
    t = np.array([y0, y1])  # steep: x as a function of y, clipped to the box's columns
    lo, hi = sorted((-(w0 * x0 + b) / w1, -(w0 * x1 + b) / w1)) if abs(w1) > 1e-12 else (-np.inf, np.inf)
    t = np.clip(t, max(y0, lo), min(y1, hi))
    if t[0] >= t[1]:
        return np.empty((0, 2))
    return np.stack([-(w1 * t + b) / w0, t], axis=1)


def _boundary_line(ax, theta: torch.Tensor, **style) -> None:
    """Draw w·x + b = 0 across the axes' visible box (the whole of it, however steep the line)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    segment = boundary_segment(theta, (min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)))
    ax.plot(segment[:, 0], segment[:, 1], scalex=False, scaley=False, **style)  # empty: still in the legend


#: How far the 2-D toy panels reach past the unit square on each side, so that a point at 0 or 1
#: (a poison pushed to the edge of the feature box) clears the spines.
TOY_MARGIN = 0.08


def _scatter_2d(
    ax,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    poison_x: torch.Tensor | None = None,
    poison_y: torch.Tensor | None = None,
    poison_labels: Sequence[int] = (),
) -> None:
    """The two classes of a 2-D toy set (and optionally its poisons, large crosses in their label's
    colour) on the unit square, with :data:`TOY_MARGIN` to spare on each side. A label in
    ``poison_labels`` gets its legend entry even where no poison carries it (an empty group)."""
    x, y = x.cpu().numpy(), y.cpu().numpy()
    for k, (color, marker) in enumerate(((PALETTE[5], "o"), (PALETTE[1], "s"))):
        ax.scatter(
            x[y == k, 0],
            x[y == k, 1],
            s=14,
            color=color,
            marker=marker,
            alpha=0.75,
            edgecolors="white",
            linewidths=0.3,
            label=f"class {k}",
        )
    if poison_x is None or not len(poison_x):
        poison_x, poison_y = torch.empty(0, 2), torch.empty(0, dtype=torch.long)
    if len(poison_x) or poison_labels:
        px, py = poison_x.detach().cpu().numpy().reshape(-1, 2), poison_y.cpu().numpy()
        for k, color in enumerate((PALETTE[5], PALETTE[1])):
            if (py == k).any() or k in poison_labels:
                ax.scatter(
                    px[py == k, 0],
                    px[py == k, 1],
                    s=90,
                    marker="X",
                    color=color,
                    edgecolors="black",
                    linewidths=1.0,
                    label=f"poison, label {k}",
                    zorder=5,
                    clip_on=False,
                )
    box = (-TOY_MARGIN, 1 + TOY_MARGIN)
    ax.set(xlim=box, ylim=box, xlabel="feature 1", ylabel="feature 2", aspect="equal")


def linear_boundaries(
    x: torch.Tensor,
    y: torch.Tensor,
    panels: Sequence[BoundaryPanel | Mapping],
    *,
    clean_theta: torch.Tensor | None = None,
    title: str | None = None,
    ncols: int = 4,
    poison_labels: Sequence[int] | None = None,
) -> Figure:
    """Panels of 2-D data with a linear decision boundary each, and one legend below them whose
    entries come in a fixed order (classes, poisons by label, clean and poisoned boundary).

    Args:
        x, y: the clean points (N, 2), finite floating point, and integer labels (N,) in {0, 1}.
        panels: one :class:`BoundaryPanel` per panel (or a dict of its fields): ``theta``
            (w₁, w₂, b), ``title`` and optionally ``poison_x`` (P, 2) and ``poison_y`` (P,).
        clean_theta: the clean model's boundary, drawn dashed in every panel for comparison.
        poison_labels: the poison labels the legend lists even where no panel shows them, so that
            figures drawn one after another (the frames of a slider) share one legend; by default
            only those that some panel shows.
    """
    x = _validate.inputs("x", x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must hold 2-D points, shape (N, 2), got shape {tuple(x.shape)}")
    y = _validate.labels("y", y, n=x.shape[0], num_classes=2)
    panels = _check_panels(panels, BoundaryPanel)
    if not panels:
        raise ValueError("panels must hold at least one panel")
    # at most as many columns as fit the text column at a readable size
    ncols = min(_validate.positive_int("ncols", ncols), len(panels), int(MAX_WIDTH // 2.9))
    nrows = math.ceil(len(panels) / ncols)
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(3.3 * ncols, 3.4 * nrows + (0.4 if title else 0)))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        listed = tuple(int(k) for k in poison_labels) if poison_labels is not None else ()
        for ax, panel in zip(axes.flat, panels):
            _scatter_2d(ax, x, y, poison_x=panel.poison_x, poison_y=panel.poison_y, poison_labels=listed)
            if clean_theta is not None:
                _boundary_line(ax, clean_theta, color="0.45", linestyle="--", linewidth=1.5, label="clean boundary")
            _boundary_line(ax, panel.theta, color=WRONG, linewidth=2.2, label="poisoned boundary")
            ax.set_title(panel.title)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_axis_off()
        legend: dict = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        order = ["class 0", "class 1", "poison, label 0", "poison, label 1", "clean boundary", "poisoned boundary"]
        labels = sorted(legend, key=lambda label: order.index(label) if label in order else len(order))
        fig.legend(
            [legend[label] for label in labels],
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 3),
            fontsize=9,
        )
        if title:
            fig.suptitle(title)
    return fig


def attack_landscape(
    grid: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    path: torch.Tensor | None = None,
    path_label: int | None = None,
    clean_theta: torch.Tensor | None = None,
    value_label: str = "validation loss",
    title: str | None = None,
) -> Figure:
    """A heat map of the attacker's objective over the position of one poison point, with the
    training data, the clean boundary and the attack point's gradient-ascent path.

    The objective, measured on the ``grid`` × ``grid`` points, is interpolated between them (Gouraud
    shading), so that the surface reads as the smooth function it samples rather than as blocks.
    Around the grid, where the objective was not measured, the axes are dark grey."""
    g = grid.cpu().numpy()
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(6.2, 5.0))
        ax = fig.subplots()
        mesh = ax.pcolormesh(g, g, values.cpu().numpy(), cmap="viridis", shading="gouraud")
        fig.colorbar(mesh, ax=ax, label=value_label, pad=0.02)  # close to the surface it reads
        _scatter_2d(ax, x, y)
        ax.set_facecolor("0.3")  # outside the measured grid: a dark rim, on which a white path still reads
        if clean_theta is not None:
            _boundary_line(ax, clean_theta, color="white", linestyle="--", linewidth=1.5, label="clean boundary")
        if path is not None:
            p = path.detach().cpu().numpy()
            ax.plot(
                p[:, 0], p[:, 1], color="white", linewidth=2.0, marker=".", markersize=4, label="attack point's path"
            )
            ax.scatter(p[0, 0], p[0, 1], s=60, color="white", edgecolors="black", zorder=6, label="start")
            ax.scatter(
                p[-1, 0],
                p[-1, 1],
                s=140,
                marker="X",
                color=WRONG,
                edgecolors="white",
                zorder=6,
                label=f"end (label {path_label})" if path_label is not None else "end",
                clip_on=False,
            )
        ax.grid(False)
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(0.0, -0.15),
            ncols=3,
            fontsize=8,
            frameon=True,
            facecolor="0.2",  # dark, so that white text and the white path both read on it
            labelcolor="white",
        )
        if title:
            ax.set_title(title)
    return fig


def lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    percent: bool = True,
    logx: bool = False,
    size: tuple[float, float] = (6.0, 3.8),
    bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    markers: Mapping[str, str | Mapping[str, object]] | None = None,
    legend: bool | None = None,
) -> Figure:
    """Several curves over one x-axis (e.g. test error against the budget ε for each attack).

    Values in [0, 1] are drawn as percentages when ``percent`` is set. ``bands`` optionally maps a
    series' label to (low, high) values per x, drawn as a shaded band (e.g. min–max over seeds).

    ``markers`` optionally maps a series' label to its marker: a marker symbol (``"o"``) or the
    marker's matplotlib properties (``{"marker": "o", "markersize": 9, "markerfacecolor": "none"}``).
    Without it, when two series share a point (the same value at the same x), every series is
    drawn with hollow markers, each smaller than the one before, so that a point where curves meet
    shows all of them. ``legend`` names the series below the axes; by default only when there are
    two or more (a single curve is named by the axis label and the title).

    ``x`` must be finite real numbers (integers included); the series' values are real numbers,
    NaN drawing a gap (a measurement that is missing).
    """
    _validate.real_values("x", x)
    if not isinstance(series, Mapping):
        raise TypeError(f"series must be a dict {{label: values}}, got {type(series).__name__}")
    _validate.text("xlabel", xlabel), _validate.text("ylabel", ylabel)
    fig = line_panels(
        [{"x": x, "series": series, "xlabel": xlabel, "title": title, "logx": logx, "bands": bands or {}}],
        ylabel=ylabel,
        percent=percent,
        size=size,
    )
    ax = fig.axes[0]
    drawn = {line.get_label(): line for line in ax.lines if line.get_label() in series}
    styles = dict(markers) if markers is not None else _nested_markers(series, drawn)
    for label, style in styles.items():
        if label not in series:
            raise ValueError(f"markers names {label!r}, which is not a series")
        drawn[label].set(**({"marker": style} if isinstance(style, str) else dict(style)))
    shown = legend if legend is not None else len(series) > 1
    for old in [*fig.legends, ax.get_legend()]:  # drawn before the markers changed: draw it again, or not
        if old is not None:
            old.remove()
    if shown:
        with mpl.rc_context(STYLE):
            _legends_below(fig, [ax], fontsize=9)
    return fig


def _nested_markers(series: Mapping[str, Sequence[float]], drawn: Mapping[str, object]) -> dict:
    """Hollow markers of decreasing size for every series when two of them share a point (an equal,
    finite value at the same x), so that markers drawn on top of each other all stay visible;
    otherwise none (the curves keep their filled markers)."""
    values = [np.asarray(v, dtype=float) for v in series.values()]
    shared = any(
        np.any(np.isfinite(a) & np.isclose(a, b, rtol=1e-9, atol=1e-12))
        for i, a in enumerate(values)
        for b in values[i + 1 :]
    )
    marked = [label for label in series if drawn[label].get_marker() not in (None, "None", "", " ")]
    if not shared or len(marked) < 2:
        return {}
    sizes = np.linspace(10.0, 4.5, len(marked))
    return {
        label: {"markersize": float(size), "markerfacecolor": "none", "markeredgewidth": 1.5}
        for label, size in zip(marked, sizes)
    }


@dataclass(frozen=True)
class BoundaryPanel:
    """One panel of :func:`linear_boundaries`.

    Attributes:
        theta: the panel's linear boundary (w₁, w₂, b).
        title: the panel's title.
        poison_x, poison_y: poisons to mark, (P, 2) and their labels (P,); both or neither.
    """

    theta: Any
    title: str = ""
    poison_x: Any = None
    poison_y: Any = None


@dataclass(frozen=True)
class LinePanel:
    """One panel of :func:`line_panels`.

    Attributes:
        x: the x positions (T,).
        series: {label: T values}, one line each.
        xlabel: the panel's x-label.
        title: the panel's title.
        bands: {label: (T low values, T high values)}, the spread around that series.
        hline: (value, label), a horizontal reference line in the series' units.
        logx, logy: logarithmic axes.
    """

    x: Any
    series: Mapping[str, Any]
    xlabel: str
    title: str | None = None
    bands: Mapping[str, Any] = field(default_factory=dict)
    hline: tuple[float, str] | None = None
    logx: bool = False
    logy: bool = False


@dataclass(frozen=True)
class ScorePanel:
    """One panel of :func:`score_histograms`.

    Attributes:
        scores: suspicion scores (N,), finite.
        is_poison: (N,) bool, with at least one clean point.
        title: the panel's title.
        threshold: a score to mark with a dashed line (e.g. a removal cut).
    """

    scores: Any
    is_poison: Any
    title: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class TheoryPanel:
    """One panel of :func:`measured_and_theory`.

    Attributes:
        xlabel: the panel's x-label.
        title: the panel's title.
        ylabel: overrides the figure's shared y-label.
        points: {label: (x, y)} measured values, drawn as markers.
        curves: {label: (x, y)} theory, drawn as lines.
        errors: {label: half-widths} of the points, drawn as error bars.
        labels: {label: one text per point}, written above each point.
        logx, logy: logarithmic axes (``logx`` puts ticks at the measured x values, or ``xticks``).
        paired: whether the i-th curve takes the colour of the i-th points.
        vlines: {label: x} vertical dashed lines.
        xticks: tick positions for a logarithmic x axis.
    """

    xlabel: str
    title: str | None = None
    ylabel: str | None = None
    points: Mapping[str, Any] = field(default_factory=dict)
    curves: Mapping[str, Any] = field(default_factory=dict)
    errors: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Sequence] = field(default_factory=dict)
    logx: bool = False
    logy: bool = False
    paired: bool = True
    vlines: Mapping[str, float] = field(default_factory=dict)
    xticks: Sequence[float] | None = None


@dataclass(frozen=True)
class ProjectionPanel:
    """One panel of :func:`projections`.

    Attributes:
        coords: the points' 2-D coordinates (N, 2).
        is_poison: (N,) bool.
        title: the panel's title.
        cover: (N,) bool, points to draw as a third group (e.g. cover samples).
    """

    coords: Any
    is_poison: Any
    title: str | None = None
    cover: Any = None


_P = TypeVar("_P", BoundaryPanel, LinePanel, ScorePanel, TheoryPanel, ProjectionPanel)


def _check_panels(panels: Sequence[_P | Mapping], kind: type[_P]) -> list[_P]:
    """The panels as ``kind`` instances: each given as one, or as a dict whose keys are ``kind``'s
    fields (the required ones present, no other key: a misspelt key would otherwise be ignored
    without a word)."""
    fields = dataclasses.fields(kind)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    optional = [f.name for f in fields if f.name not in required]
    if isinstance(panels, Mapping) or not isinstance(panels, Sequence) or isinstance(panels, str):
        raise ValueError(
            f"panels must be a list of {kind.__name__}s (or dicts), one per panel, got {type(panels).__name__}"
        )
    typed = []
    for i, panel in enumerate(panels):
        if isinstance(panel, kind):
            typed.append(panel)
            continue
        if not isinstance(panel, Mapping):
            raise ValueError(f"panels[{i}] must be a {kind.__name__} or a dict, got {type(panel).__name__}")
        missing = [k for k in required if k not in panel]
        unknown = sorted(set(panel) - set(required) - set(optional), key=str)
        if missing or unknown:
            found = f"lacks {missing}" if missing else f"has unknown keys {unknown}"
            raise ValueError(f"panels[{i}] {found}; a panel needs {required} and may have {optional}")
        typed.append(kind(**{k: v for k, v in panel.items() if v is not None or k in required}))
    return typed


def _label_panel(ax, panel: LinePanel | ScorePanel | TheoryPanel, *, xlabel: str, ylabel: str) -> None:
    """Axis labels and the panel's optional ``title``: the end of every panel (its legend is drawn
    below the panels, by :func:`_legends_below`, once all panels are drawn)."""
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if panel.title:
        ax.set_title(panel.title)


def _entries(ax) -> dict:
    """``{label: handle}`` of the artists of ``ax`` that carry a label, in drawing order."""
    entries: dict = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        entries.setdefault(label, handle)
    return entries


def _renderer(fig: Figure):
    if not hasattr(fig.canvas, "get_renderer"):  # a figure built without pyplot: measure with Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _legends_below(fig: Figure, axes: Sequence, *, fontsize: float, xlabel: str | None = None) -> None:
    """Legends outside the data: one legend below all panels when every panel shows the same
    entries (or there is one panel), else each panel's own legend below its x-label. Each gets as
    many columns as fit its width.

    ``xlabel`` is an x-label the panels share, written once below all of them: as the heading of
    the shared legend (the figure's bottom margin holds one block, so a separate label there would
    sit on the legend), else as the figure's x-label."""
    entries = [_entries(ax) for ax in axes]
    shared_entries = len({tuple(e) for e in entries if e}) == 1
    if xlabel and not shared_entries:
        fig.supxlabel(xlabel, fontsize=mpl.rcParams["axes.labelsize"])
    if not any(entries):
        return
    renderer = _renderer(fig)
    if shared_entries:
        shared: dict = {}
        for e in entries:
            for label, handle in e.items():
                shared.setdefault(label, handle)
        heading = {"title": xlabel, "title_fontsize": mpl.rcParams["axes.labelsize"]} if xlabel else {}
        for ncols in range(min(len(shared), 4), 0, -1):
            legend = fig.legend(
                list(shared.values()),
                list(shared),
                loc="outside lower center",
                ncols=ncols,
                fontsize=fontsize,
                **heading,
            )
            if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
                return
            legend.remove()
        return
    for ax, e in zip(axes, entries):
        if e:
            _legend_under(ax, e, fontsize=fontsize, room=fig.bbox.width / max(1, _columns(axes)))


def _columns(axes: Sequence) -> int:
    """How many panels ``axes`` holds side by side."""
    spec = axes[0].get_subplotspec() if axes and axes[0].get_subplotspec() is not None else None
    return spec.get_gridspec().ncols if spec is not None else 1


def _legend_under(ax, entries: dict | None = None, *, fontsize: float, room: float | None = None) -> None:
    """``ax``'s legend just below its tick labels and x-label, outside the data (the layout makes room
    for it), with as many columns as fit ``room`` pixels (by default the axes' width)."""
    from matplotlib import transforms

    fig = ax.get_figure()
    entries = entries if entries is not None else _entries(ax)
    if not entries:
        return
    renderer = _renderer(fig)
    below = ax.bbox.y0 - ax.get_tightbbox(renderer).y0  # tick labels and x-label, in pixels
    anchor = transforms.offset_copy(ax.transAxes, fig=fig, y=-(below * 72 / fig.dpi + 2), units="points")
    room = room or ax.bbox.width
    for ncols in range(min(len(entries), 4), 0, -1):
        legend = ax.legend(
            list(entries.values()),
            list(entries),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=anchor,
            ncols=ncols,
            fontsize=fontsize,
        )
        if ncols == 1 or legend.get_window_extent(renderer).width <= room:
            return


def line_panels(
    panels: Sequence[LinePanel | Mapping],
    *,
    ylabel: str,
    title: str | None = None,
    percent: bool = True,
    size: tuple[float, float] | None = None,
) -> Figure:
    """Side-by-side line plots sharing a y-label: each panel a :class:`LinePanel` (or a dict of its
    fields) with ``x``, ``series``
    ({label: values}), ``xlabel`` and optionally:

    - ``title``, ``logx``, ``logy``;
    - ``bands``: {label: (low values, high values)}, the spread around that series (e.g. min–max
      over seeds), drawn as a light fill with thin edges in the series' colour, so that where two
      bands overlap each one's extent stays readable; NaN values leave gaps;
    - ``hline``: (value, label), a horizontal reference line in the series' units (e.g.
      ``(0.5, "chance")`` for an AUC), drawn dotted and listed in the legend.

    Integer x values (epochs) get integer ticks only. Each panel's ``x`` must be finite real
    numbers; a series' values are real numbers, NaN drawing a gap."""
    panels = _check_panels(panels, LinePanel)
    if not panels:
        raise ValueError("panels must hold at least one panel")
    _validate.text("ylabel", ylabel), _validate.text("title", title, optional=True)
    percent = _validate.flag("percent", percent)
    for i, panel in enumerate(panels):
        _validate.real_values(f"panels[{i}].x", panel.x)
        _validate.text(f"panels[{i}].xlabel", panel.xlabel)
        if not isinstance(panel.series, Mapping):
            raise TypeError(f"panels[{i}].series must be a dict {{label: values}}, got {type(panel.series).__name__}")
        for label, ys in panel.series.items():
            _validate.real_values(f"panels[{i}].series[{label!r}]", ys, allow_nan=True)
    scale = 100.0 if percent else 1.0
    marks = "osD^v<>p"
    with mpl.rc_context(STYLE):
        rows, cols, grid = _panel_grid(len(panels), (4.6, 3.8))
        fig = _figure(figsize=size or grid)
        axes = _panel_axes(fig, len(panels), rows, cols)
        for ax, panel in zip(axes, panels):
            if not panel.series:
                raise ValueError("every panel needs at least one series")
            for i, (label, ys) in enumerate(panel.series.items()):
                if len(ys) != len(panel.x):
                    raise ValueError(f"series {label!r} has {len(ys)} values for {len(panel.x)} x positions")
                marker = marks[i % len(marks)] if len(ys) <= 40 else None  # long curves: a line only
                ax.plot(panel.x, np.asarray(ys, dtype=float) * scale, marker=marker, label=label)
                band = panel.bands.get(label)  # optional (low, high) per x: the spread over runs
                if band is not None:
                    lo, hi = (np.asarray(v, dtype=float) * scale for v in band)
                    if lo.shape != (len(ys),) or hi.shape != (len(ys),):
                        raise ValueError(f"the band of {label!r} needs a low and a high value per x position")
                    colour = ax.lines[-1].get_color()
                    ax.fill_between(panel.x, lo, hi, alpha=0.12, color=colour, linewidth=0)
                    for edge in (lo, hi):  # the band's extent, readable where it overlaps another band
                        ax.plot(panel.x, edge, color=colour, linewidth=0.7, alpha=0.9, label="_band edge")
            if panel.hline is not None:
                value, label = panel.hline
                ax.axhline(float(value) * scale, color="0.3", linestyle=":", linewidth=1.3, label=label, zorder=1.5)
            if panel.logy:
                ax.set_yscale("log")
            if panel.logx:  # ticks at the measured positions, written as plain numbers
                ax.set_xscale("log")
                ax.set_xticks(list(panel.x), [f"{v:g}" for v in panel.x])
                ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
            elif all(float(v).is_integer() for v in panel.x):  # epochs, counts: no tick at 2.5
                ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
            _label_panel(ax, panel, xlabel=panel.xlabel, ylabel=ylabel)
        _legends_below(fig, axes, fontsize=9)
        if title:
            fig.suptitle(title)
    return fig


def _wrap_label(label: str, fontsize: float, room: float) -> str:
    """``label`` on as few lines as keep it within ``room`` points: broken before a parenthesis
    first ("feature collision, fails the judge" / "(β = 0.1, γ = 0.3)"), then between words."""
    import textwrap

    label = str(label)
    if "\n" in label or _text_width(label, fontsize) <= room:
        return label
    head, sep, tail = label.partition(" (")
    if sep and _text_width(head, fontsize) <= room and _text_width("(" + tail, fontsize) <= room:
        return f"{head}\n({tail}"
    for chars in range(len(label) - 1, 7, -1):
        wrapped = textwrap.fill(label, chars, break_long_words=False)
        if _text_width(wrapped, fontsize) <= room:
            return wrapped
    return textwrap.fill(label, 8, break_long_words=False)


def heatmap(
    values: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    colorbar_label: str = "attack success rate (%)",
    percent: bool = True,
    annotate: bool = True,
    size: tuple[float, float] | None = None,
    center: float | None = None,
    cmap: str | None = None,
) -> Figure:
    """A grid of numbers in [0, 1] as colours, each cell annotated with its value
    (e.g. ASR over trigger size × opacity, or where triggered inputs of each class land).

    Long row labels are wrapped onto more lines (taking at most about a third of the width), and
    column labels wider than their column are slanted, so that the matrix keeps its width; a
    ``size`` wider than :data:`MAX_WIDTH` is narrowed to it, keeping its height.

    Args:
        values: shape (R, C), values in [0, 1]; row r is drawn at the top for r = 0.
        row_labels, col_labels: R and C tick labels.
        xlabel, ylabel, title: axis labels and a title that states the finding.
        colorbar_label: what the colour means.
        percent: draw and annotate values as percentages.
        annotate: write each value in its cell.
        size: the figure's (width, height) in inches.
        center: a value in (0, 1) that is neutral (0.5 for an AUC: chance): drawn white on a
            diverging colour map (``RdBu_r`` unless ``cmap`` is given), so that values below it
            read as different from values above it. By default the sequential ``viridis``.
        cmap: the colour map's name.
    """
    from matplotlib.colors import TwoSlopeNorm

    v = _validate.real_grid("values", values)
    row_labels, col_labels = _validate.texts("row_labels", row_labels), _validate.texts("col_labels", col_labels)
    for name, labels, n, what in (
        ("row_labels", row_labels, v.shape[0], "row"),
        ("col_labels", col_labels, v.shape[1], "column"),
    ):
        if len(labels) != n:
            raise ValueError(f"{name} must hold {n} labels (one per {what} of values), got {len(labels)}")
    if v.min() < 0 or v.max() > 1:
        raise ValueError(f"values must lie in [0, 1], got values from {v.min():g} to {v.max():g}")
    _validate.text("xlabel", xlabel), _validate.text("ylabel", ylabel), _validate.text("title", title, optional=True)
    _validate.text("colorbar_label", colorbar_label)
    percent, annotate = _validate.flag("percent", percent), _validate.flag("annotate", annotate)
    if center is not None and not 0 < center < 1:
        raise ValueError(f"center must lie in (0, 1), got {center}")
    scale = 100.0 if percent else 1.0
    width, height = size or (1.0 + 0.75 * v.shape[1] + 1.3, 0.9 + 0.5 * v.shape[0])
    width = min(width, MAX_WIDTH)  # narrower, not shrunk: the text keeps its size, the labels wrap
    rows = [_wrap_label(label, 10, room=72 * width / 3) for label in row_labels]
    lines = sum(label.count("\n") + 1 for label in rows)
    height = max(height, 0.9 + 0.2 * lines + 0.15 * v.shape[0] + (0.3 if title else 0))
    if center is None:
        norm, colour_map = None, cmap or "viridis"
    else:
        norm, colour_map = TwoSlopeNorm(vcenter=center * scale, vmin=0, vmax=scale), cmap or "RdBu_r"
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(width, height))
        ax = fig.subplots()
        image = ax.imshow(
            v * scale, cmap=colour_map, norm=norm, vmin=None if norm else 0, vmax=None if norm else scale, aspect="auto"
        )
        ax.set_xticks(range(v.shape[1]), col_labels)
        ax.set_yticks(range(v.shape[0]), rows)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(False)
        if annotate:
            for (r, c), value in np.ndenumerate(v):
                dark = abs(value - center) > 0.3 if center is not None else value <= 0.6
                ax.text(
                    c,
                    r,
                    f"{value * scale:.0f}" if percent else f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        fig.colorbar(image, ax=ax, label=colorbar_label)
        if title:
            ax.set_title(title)
        fig.draw_without_rendering()  # the laid-out column width: slant column labels that overflow it
        column = 72 * ax.bbox.width / fig.dpi / v.shape[1]
        if max(_text_width(str(label), 10) for label in col_labels) > column - 4:
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
    return fig


#: Colours for bars that split two metrics (clean accuracy, attack success rate) rather than a clean
#: and a poisoned model, so that a reader does not carry the blue/vermilion key of the one to the other.
METRIC_COLORS = (PALETTE[3], PALETTE[7])  # bluish green, reddish purple


def paired_bars(
    labels: Sequence[str],
    before: Sequence[float],
    after: Sequence[float],
    *,
    names: tuple[str, str] = ("clean", "poisoned"),
    ylabel: str = "test error (%)",
    title: str | None = None,
    percent: bool = True,
    ranges: tuple[Sequence[tuple[float, float]], Sequence[tuple[float, float]]] | None = None,
    colors: tuple[str, str] | None = None,
    hatch: str | None = None,
) -> Figure:
    """Two bars per group (e.g. a model's test error before and after an attack).

    ``ranges`` optionally gives, for the ``before`` and the ``after`` bars, one (low, high) pair per
    group (e.g. min–max over seeds when the bars are means), drawn as error bars. ``colors`` are
    the two series' colours (by default blue and vermilion, for clean and poisoned; for two metrics
    such as CA and ASR use e.g. :data:`METRIC_COLORS`); ``hatch`` (e.g. ``"//"``) hatches the
    ``after`` bars, so that colour is not the only cue. Counts (``percent`` off and every value a
    whole number) get whole-number ticks and labels.

    ``before`` and ``after`` are finite real numbers, in [0, 1] when ``percent`` is set (rates
    drawn as percentages); ``labels`` one string per group."""
    labels = _validate.texts("labels", labels)
    percent = _validate.flag("percent", percent)
    _validate.text("ylabel", ylabel), _validate.text("title", title, optional=True)
    for name, values in (("before", before), ("after", after)):
        v = _validate.real_values(name, values)
        if percent and v.size and (v.min() < 0 or v.max() > 1):
            raise ValueError(
                f"{name} must lie in [0, 1] (rates, drawn as percentages; percent=False for other values), "
                f"got {v.tolist()!r}"
            )
    if not (len(labels) == len(before) == len(after)) or not labels:
        raise ValueError(
            f"labels, before and after must have the same, non-zero length, "
            f"got {len(labels)}, {len(before)} and {len(after)}"
        )
    if ranges is not None and (len(ranges) != 2 or any(len(r) != len(labels) for r in ranges)):
        raise ValueError("ranges must hold one (low, high) pair per group for the before and the after bars")
    if colors is not None and len(colors) != 2:
        raise ValueError(f"colors must hold two colours, one per series, got {len(colors)}")
    scale = 100.0 if percent else 1.0
    numbers = [float(v) for v in (*before, *after, *(v for r in ranges or () for pair in r for v in pair))]
    counts = not percent and all(math.isfinite(v) and v == int(v) for v in numbers)
    pos = np.arange(len(labels))
    first, second = colors or (PALETTE[5], WRONG)
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(max(4.0, 1.3 * len(labels) + 2), 3.6))
        ax = fig.subplots()
        for k, (offset, values, name, color) in enumerate(
            ((-0.2, before, names[0], first), (0.2, after, names[1], second))
        ):
            heights = np.asarray(values, dtype=float) * scale
            yerr = None
            if ranges is not None:
                lo, hi = (np.asarray([r[i] for r in ranges[k]], dtype=float) * scale for i in (0, 1))
                yerr = np.vstack([np.clip(heights - lo, 0, None), np.clip(hi - heights, 0, None)])
            style = {"hatch": hatch, "edgecolor": "white", "linewidth": 0} if k == 1 and hatch else {}
            bars = ax.bar(pos + offset, heights, width=0.38, label=name, color=color, yerr=yerr, capsize=3, **style)
            ax.bar_label(bars, fmt="%d" if counts else "%.1f", fontsize=8, padding=2)
        ax.set_xticks(pos, labels)
        ax.set(ylabel=ylabel)
        if counts:
            ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax.margins(y=0.15)
        fig.legend(loc="outside lower center", ncols=2)  # below the axes, never over a bar
        if title:
            ax.set_title(title)
    return fig


def _toy_legend(poison_labels: Sequence[int] = (0, 1)) -> dict:
    """``{label: handle}`` for the entries of a 2-D toy panel (:func:`_scatter_2d` with a clean and a
    poisoned boundary), drawn as stand-ins rather than taken from the axes: the same entries, in
    the same order, whatever one panel or frame happens to show."""
    from matplotlib.lines import Line2D

    entries: dict = {}
    for k, (color, marker) in enumerate(((PALETTE[5], "o"), (PALETTE[1], "s"))):
        entries[f"class {k}"] = Line2D(
            [], [], linestyle="none", marker=marker, markersize=5, color=color, alpha=0.75, markeredgecolor="white"
        )
    entries["clean boundary"] = Line2D([], [], color="0.45", linestyle="--", linewidth=1.5)
    entries["poisoned boundary"] = Line2D([], [], color=WRONG, linewidth=2.2)
    for k in sorted({int(v) for v in poison_labels}):
        entries[f"poison, label {k}"] = Line2D(
            [],
            [],
            linestyle="none",
            marker="X",
            markersize=9,
            color=(PALETTE[5], PALETTE[1])[k],
            markeredgecolor="black",
            markeredgewidth=1.0,
        )
    return entries


def _frame_label(frame: int, frames: int, steps_per_frame: int | None, errors: Sequence[float] | None) -> str:
    """What frame ``frame`` of ``frames`` shows: the ascent step it was taken at (when each frame
    is ``steps_per_frame`` steps after the one before), else its number; and its test error."""
    if steps_per_frame is not None:
        said = f"ascent step {frame * steps_per_frame} of {(frames - 1) * steps_per_frame}"
    else:
        said = f"frame {frame + 1} of {frames}"
    return said + (f"\ntest error {errors[frame]:.1%}" if errors is not None else "")


def _animation_figure(
    x: torch.Tensor,
    y: torch.Tensor,
    thetas: Sequence[torch.Tensor],
    poison_path: torch.Tensor,
    poison_y: torch.Tensor,
    *,
    clean_theta: torch.Tensor | None = None,
    title: str = "",
    steps_per_frame: int | None = None,
    errors: Sequence[float] | None = None,
):
    """The figure of :func:`boundary_animation` and the function that draws its frame k on it."""
    if len(thetas) != poison_path.shape[0]:
        raise ValueError(f"need one theta per frame: {len(thetas)} thetas, {poison_path.shape[0]} frames")
    if steps_per_frame is not None:
        steps_per_frame = _validate.positive_int("steps_per_frame", steps_per_frame)
    if errors is not None and len(errors) != len(thetas):
        raise ValueError(f"need one test error per frame: {len(errors)} errors, {len(thetas)} frames")
    fig = _figure(figsize=(4.6, 4.6))
    ax = fig.subplots()

    def draw(frame: int):
        ax.clear()
        _scatter_2d(ax, x, y, poison_x=poison_path[frame], poison_y=poison_y)
        if clean_theta is not None:
            _boundary_line(ax, clean_theta, color="0.45", linestyle="--", linewidth=1.5, label="clean boundary")
        _boundary_line(ax, thetas[frame], color=WRONG, linewidth=2.2, label="poisoned boundary")
        ax.set_title(f"{title}{_frame_label(frame, len(thetas), steps_per_frame, errors)}")
        return []

    # one legend for every frame, below the axes, from fixed stand-ins: it never changes as the frames play
    entries = _toy_legend(poison_y.tolist())
    if clean_theta is None:
        del entries["clean boundary"]
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=3, fontsize=8)
    return fig, draw


def boundary_animation(
    x: torch.Tensor,
    y: torch.Tensor,
    thetas: Sequence[torch.Tensor],
    poison_path: torch.Tensor,
    poison_y: torch.Tensor,
    *,
    clean_theta: torch.Tensor | None = None,
    title: str = "",
    interval_ms: int = 250,
    steps_per_frame: int | None = None,
    errors: Sequence[float] | None = None,
):
    """An animation of the boundary and the poisons as the attack iterates.

    Returns an :class:`IPython.display.HTML` holding matplotlib's JavaScript player, which plays
    in Jupyter and on the static site alike. ``poison_path`` is (frames, P, 2), ``thetas`` one
    parameter vector per frame. Each frame's title is ``title`` followed by what the frame shows:
    "ascent step k of n" when frames are ``steps_per_frame`` ascent steps apart (frame 0 the
    start), else "frame k of n"; and, given ``errors`` (one per frame), the test error of the
    boundary it draws. The legend below the axes (the two classes, the clean and the poisoned
    boundary, the poisons) is the same in every frame.
    """
    from IPython.display import HTML
    from matplotlib import animation

    with mpl.rc_context({**STYLE, "animation.embed_limit": 40.0, "figure.dpi": 80}):
        fig, draw = _animation_figure(
            x,
            y,
            thetas,
            poison_path,
            poison_y,
            clean_theta=clean_theta,
            title=title,
            steps_per_frame=steps_per_frame,
            errors=errors,
        )
        draw(0)
        anim = animation.FuncAnimation(fig, draw, frames=len(thetas), interval=interval_ms, blit=False)
        html = anim.to_jshtml(default_mode="once")
    import html as html_text

    alt = animation_alt(title, poison_path, steps_per_frame=steps_per_frame)
    return HTML(html.replace("<img id=", f'<img alt="{html_text.escape(alt)}" id=', 1))


def animation_alt(title: str, poison_path: torch.Tensor, *, steps_per_frame: int | None = None) -> str:
    """The alternative text of :func:`boundary_animation`: what it shows, then its ``title``
    (a prefix such as "ε = 10%, ascent ") as a note. Given ``steps_per_frame``, it counts the
    ascent steps the frames span and says how far apart they are.

    ``poison_path`` is the poisons' path, a finite floating-point tensor (frames, P, 2) with at
    least one frame."""
    _validate.text("title", title)
    if not isinstance(poison_path, torch.Tensor) or poison_path.ndim != 3 or poison_path.shape[2] != 2:
        got = tuple(poison_path.shape) if isinstance(poison_path, torch.Tensor) else type(poison_path).__name__
        raise ValueError(f"poison_path must be a tensor (frames, P, 2), got {got}")
    if not poison_path.is_floating_point():
        raise ValueError(f"poison_path must be a floating-point tensor, got dtype {poison_path.dtype}")
    if poison_path.shape[0] == 0:
        raise ValueError("poison_path must hold at least one frame, got 0")
    _validate.finite("poison_path", poison_path)
    frames, count = poison_path.shape[0], poison_path.shape[1]
    moved = f"{count} poison point{'s' if count != 1 else ''} move{'' if count != 1 else 's'}"
    if steps_per_frame is None:
        said = f"The decision boundary turning as {moved} over {frames} frames of the attack"
    else:
        steps = (frames - 1) * steps_per_frame
        every = "every ascent step" if steps_per_frame == 1 else f"one every {steps_per_frame} ascent steps"
        said = f"The decision boundary turning as {moved} over {steps} ascent steps ({frames} frames, {every})"
    note = _plain(title).strip(" ,:;–-")
    return f"{said} ({note})" if note else said


def score_histograms(
    panels: Sequence[ScorePanel | Mapping],
    *,
    xlabel: str = "spectral score τ (share of the class maximum)",
    title: str | None = None,
    bins: int = 30,
    ncols: int | None = None,
) -> Figure:
    """Side-by-side histograms of suspicion scores, clean points against poisons, one panel each.

    Each panel is a :class:`ScorePanel` (or a dict of its fields) with ``scores`` (N,) finite,
    ``is_poison`` (N,) bool with at least one
    clean point, optionally ``title`` and ``threshold`` (a score; a dashed line marks it, e.g. the
    cut of :func:`poisonlab.detect.remove_top`). Scores are divided by their maximum so panels on
    different scales compare; each group is normalised to unit area, so a handful of poisons is
    as visible as thousands of clean points. ``bins`` is an integer >= 1 (``bool`` refused).

    Several panels share one x-label, written once below them, and the y-label stands at the left
    of each row. ``ncols`` sets the panels per row (e.g. 3 for three budgets side by side); by
    default as many as fit :data:`MAX_WIDTH` at a readable size. The figure is never wider than
    :data:`MAX_WIDTH`.
    """
    panels = _check_panels(panels, ScorePanel)
    bins = _validate.positive_int("bins", bins)
    if not panels:
        raise ValueError("panels must hold at least one panel")
    with mpl.rc_context(STYLE):
        if ncols is None:
            rows, cols, grid = _panel_grid(len(panels), (3.6, 3.3))
        else:  # narrower panels in one row are also a little lower, so that they keep their shape
            cols = min(_validate.positive_int("ncols", ncols), len(panels))
            rows = math.ceil(len(panels) / cols)
            grid = (min(MAX_WIDTH, 3.6 * cols), rows * (3.3 if cols <= 2 else 2.7))
        fig = _figure(figsize=grid)
        axes = _panel_axes(fig, len(panels), rows, cols)
        shared_x = len(panels) > 1  # one x-label for the figure: side by side, each panel's would collide
        for ax, panel in zip(axes, panels):
            s = torch.as_tensor(panel.scores, dtype=torch.float64).detach().cpu()
            p = torch.as_tensor(panel.is_poison).bool().cpu()
            if s.ndim != 1 or p.shape != s.shape:
                raise ValueError("every panel needs 1-D scores and an is_poison mask of the same shape")
            _validate.finite("scores", s)
            if not bool((~p).any()):
                raise ValueError("every panel needs at least one clean point")
            top = float(s.abs().max()) or 1.0
            edges = np.linspace(0.0, 1.0, bins + 1) if float(s.min()) >= 0 else bins
            ax.hist(np.asarray(s[~p] / top), bins=edges, density=True, alpha=0.6, color=PALETTE[5], label="clean")
            if bool(p.any()):
                ax.hist(np.asarray(s[p] / top), bins=edges, density=True, alpha=0.6, color=WRONG, label="poison")
            if panel.threshold is not None:
                ax.axvline(
                    float(panel.threshold) / top, color="black", linestyle="--", linewidth=1, label="removal cut"
                )
            first_column = ax.get_subplotspec().colspan.start == 0
            _label_panel(
                ax, panel, xlabel="" if shared_x else xlabel, ylabel="density" if first_column or not shared_x else ""
            )
        _legends_below(fig, axes, fontsize=8, xlabel=xlabel if shared_x else None)
        if title:
            fig.suptitle(title)
    return fig


def roc_curves(curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]], *, title: str | None = None) -> Figure:
    """ROC curves of several detectors: ``{name: (scores (N,), is_poison (N,))}``, each with its
    AUC in the legend and the chance diagonal for reference. A detector that gives yes/no flags
    (at most two distinct scores) has a single operating point: it is drawn as a marker alone."""
    from poisonlab.detect import roc_auc, roc_curve  # plots sit on top of the pipeline

    if not isinstance(curves, Mapping):
        raise TypeError(f"curves must be a dict {{name: (scores, is_poison)}}, got {type(curves).__name__}")
    if not curves:
        raise ValueError("curves must hold at least one detector")
    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(4.8, 4.6 + 0.2 * len(curves)))
        ax = fig.subplots()
        ax.plot([0, 100], [0, 100], color="grey", linestyle=":", linewidth=1, label="chance (AUC 0.50)")
        for i, (name, (scores, is_poison)) in enumerate(curves.items()):
            fpr, tpr = roc_curve(scores, is_poison)
            label = f"{name} (AUC {roc_auc(scores, is_poison):.2f})"
            if len(fpr) <= 3:  # yes/no flags: one operating point, drawn alone (a line to the corners
                point = 1 if len(fpr) == 3 else -1  # would only run along the chance diagonal)
                ax.plot(
                    [100 * float(fpr[point])],
                    [100 * float(tpr[point])],
                    linestyle="none",
                    marker="o",
                    markersize=8,
                    markeredgecolor="black",
                    markeredgewidth=0.8,
                    label=label,
                    clip_on=False,
                    zorder=4,
                )
                continue
            ax.plot(100 * fpr.numpy(), 100 * tpr.numpy(), linestyle=LINESTYLES[i % len(LINESTYLES)], label=label)
        ax.set(xlabel="clean points flagged (%)", ylabel="poisons flagged (%)", xlim=(0, 100), ylim=(0, 101))
        ax.set_aspect("equal")
        fig.legend(fontsize=8, loc="outside lower center", ncols=1)  # below the axes, never over a curve
        if title:
            ax.set_title(title)
    return fig


def measured_and_theory(panels: Sequence[TheoryPanel | Mapping], *, ylabel: str, title: str | None = None) -> Figure:
    """Measurements as markers over theory curves, one panel each (e.g. the top eigenvector's overlap
    with the spike against its strength, with the BBP curve).

    Each panel is a :class:`TheoryPanel` (or a dict of its fields) with ``xlabel``, optionally
    ``title``, ``logx`` (ticks at the measured x
    values, or at ``xticks``), ``logy``, ``ylabel`` (overrides the shared one), and:

    - ``points``: {label: (x, y)} measured values, drawn as markers (optionally ``errors``:
      {label: half-widths}, drawn as error bars, and ``labels``: {label: one text per point},
      written above each point, e.g. the budget it was measured at);
    - ``curves``: {label: (x, y)} theory, drawn as lines (each its own line style) in the same
      colour order as the points, so that the i-th curve is the theory of the i-th points; with
      ``paired`` false, the curves take colours of their own;
    - ``vlines``: {label: x} vertical dashed lines (e.g. a threshold).
    """
    panels = _check_panels(panels, TheoryPanel)
    if not panels:
        raise ValueError("panels must hold at least one panel")
    marks = "osD^v<>p"
    with mpl.rc_context(STYLE):
        rows, cols, grid = _panel_grid(len(panels), (4.8, 3.9))
        fig = _figure(figsize=grid)
        axes = _panel_axes(fig, len(panels), rows, cols)
        for ax, panel in zip(axes, panels):
            points, curves = panel.points, panel.curves
            if not points and not curves:
                raise ValueError("every panel needs points or curves")
            for label in panel.labels:
                if label not in points:
                    raise ValueError(f"labels given for {label!r}, which is not one of the points {list(points)}")
            colours = [PALETTE[i] for i in (5, 1, 3, 6, 7, 2)]
            offset = 0 if panel.paired else len(points)
            for i, (label, (xs, ys)) in enumerate(curves.items()):
                if len(xs) != len(ys):
                    raise ValueError(f"curve {label!r} has {len(xs)} x and {len(ys)} y values")
                ax.plot(
                    xs,
                    ys,
                    color=colours[(i + offset) % len(colours)],
                    linestyle=LINESTYLES[i % len(LINESTYLES)],
                    linewidth=1.6,
                    label=label,
                )
            for i, (label, (xs, ys)) in enumerate(points.items()):
                if len(xs) != len(ys):
                    raise ValueError(f"points {label!r} have {len(xs)} x and {len(ys)} y values")
                err = panel.errors.get(label)
                ax.errorbar(
                    xs,
                    ys,
                    yerr=err,
                    fmt=marks[i % len(marks)],
                    color=colours[i % len(colours)],
                    markersize=5,
                    markerfacecolor="white",
                    capsize=2,
                    linewidth=1,
                    label=label,
                )
                texts = panel.labels.get(label)
                if texts is not None:
                    if len(texts) != len(xs):
                        raise ValueError(f"points {label!r} have {len(xs)} values but {len(texts)} labels")
                    tops = np.asarray(ys, dtype=float) + (np.asarray(err, dtype=float) if err is not None else 0.0)
                    for x, top, text in zip(xs, tops, texts):  # above the point (and its error bar)
                        ax.annotate(
                            str(text),
                            (float(x), float(top)),
                            textcoords="offset points",
                            xytext=(0, 6),
                            ha="center",
                            va="bottom",
                            fontsize=8,
                            color="0.15",
                        )
            for label, x in panel.vlines.items():
                ax.axvline(float(x), color="grey", linestyle="--", linewidth=1, label=label)
            if panel.logx:  # ticks at the measured positions (or ``xticks``), as plain numbers
                ax.set_xscale("log")
                ticks = panel.xticks or sorted({float(v) for xs, _ in points.values() for v in xs})
                if ticks:
                    ax.set_xticks(list(ticks), [f"{v:g}" for v in ticks])
                ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
            if panel.logy:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            _label_panel(ax, panel, xlabel=panel.xlabel, ylabel=ylabel if panel.ylabel is None else panel.ylabel)
        _legends_below(fig, axes, fontsize=8)
        if title:
            fig.suptitle(title)
    return fig


def phase_diagram(
    values: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    x: Sequence[float],
    y: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    curve: tuple[Sequence[float], Sequence[float]] | None = None,
    curve_label: str = "threshold",
    title: str | None = None,
    colorbar_label: str = "AUC",
    vmin: float = 0.5,
    vmax: float = 1.0,
) -> Figure:
    """A measured quantity over a grid of two parameters, with a theory curve on top (e.g. the
    detector's AUC over poison share × shift, and the BBP threshold).

    Args:
        values: shape (len(y), len(x)), finite; row i is measured at y[i], column j at x[j].
        x, y: the grid's values, finite and increasing; cells are drawn centred on them (y on a log axis),
            each with its tick.
        curve: optional (xs, ys) in the same units, drawn as a white dashed line (its legend is
            white text on a dark box).
        vmin, vmax: the colour scale's range.
    """
    v = _validate.real_grid("values", values)
    xs, ys = _validate.real_values("x", x), _validate.real_values("y", y)
    _validate.text("xlabel", xlabel), _validate.text("ylabel", ylabel), _validate.text("title", title, optional=True)
    if v.shape != (len(ys), len(xs)) or len(xs) < 2 or len(ys) < 2:
        raise ValueError(
            f"values must have shape (len(y), len(x)) with at least 2 of each, got {v.shape} "
            f"for {len(ys)} y and {len(xs)} x values"
        )
    if not np.isfinite(v).all():
        raise ValueError("values must be finite numbers, got NaN or infinity")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x and y must be finite numbers")
    if not (np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0) and ys[0] > 0):
        raise ValueError("x and y must be increasing, and y positive (it is drawn on a log axis)")

    def edges(c: np.ndarray, log: bool) -> np.ndarray:
        c = np.log(c) if log else c
        mid = (c[1:] + c[:-1]) / 2
        e = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
        return np.exp(e) if log else e

    with mpl.rc_context(STYLE):
        fig = _figure(figsize=(6.0, 4.2))
        ax = fig.subplots()
        mesh = ax.pcolormesh(edges(xs, False), edges(ys, True), v, cmap="viridis", vmin=vmin, vmax=vmax)
        for (i, j), value in np.ndenumerate(v):
            ax.text(
                xs[j],
                ys[i],
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > vmin + 0.6 * (vmax - vmin) else "white",
            )
        ax.set_yscale("log")
        ax.set_yticks(list(ys), [f"{t:g}" for t in ys])
        ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        ax.grid(False)
        if curve is not None:
            ax.plot(curve[0], curve[1], color="white", linewidth=2, linestyle="--", label=curve_label)
            ax.set_xlim(edges(xs, False)[0], edges(xs, False)[-1])
            ax.set_ylim(edges(ys, True)[0], edges(ys, True)[-1])
            fig.legend(  # below the axes, never over a cell; dark, so that white text and the white line read
                loc="outside lower center", fontsize=8, frameon=True, facecolor="0.15", framealpha=1, labelcolor="white"
            )
        ax.set_xticks(list(xs), [f"{t:g}" for t in xs])  # a tick under every column
        ax.set(xlabel=xlabel, ylabel=ylabel)
        fig.colorbar(mesh, ax=ax, label=colorbar_label)
        if title:
            ax.set_title(title)
    return fig


def projections(
    panels: Sequence[ProjectionPanel | Mapping],
    *,
    xlabel: str = "principal component 1",
    ylabel: str = "principal component 2",
    title: str | None = None,
) -> Figure:
    """Side-by-side 2-D projections of one class's representations, clean points against poisons.

    Each panel is a :class:`ProjectionPanel` (or a dict of its fields) with ``coords`` (N, 2),
    ``is_poison`` (N,) bool and optionally ``title``
    and ``cover`` (N,) bool (points to draw as a third group, e.g. cover samples).
    """
    panels = _check_panels(panels, ProjectionPanel)
    if not panels:
        raise ValueError("panels must hold at least one panel")
    with mpl.rc_context(STYLE):
        rows, cols, grid = _panel_grid(len(panels), (4.2, 4.0))
        fig = _figure(figsize=grid)
        axes = _panel_axes(fig, len(panels), rows, cols)
        for ax, panel in zip(axes, panels):
            c = torch.as_tensor(panel.coords).detach().cpu().double()
            p = torch.as_tensor(panel.is_poison).bool().cpu()
            if c.ndim != 2 or c.shape[1] != 2 or p.shape != (c.shape[0],):
                raise ValueError("every panel needs coords (N, 2) and an is_poison mask (N,)")
            cover = panel.cover
            cover = torch.zeros_like(p) if cover is None else torch.as_tensor(cover).bool().cpu()
            clean = ~p & ~cover
            ax.scatter(c[clean, 0], c[clean, 1], s=9, alpha=0.45, color=PALETTE[5], label="clean")
            if bool(cover.any()):
                ax.scatter(c[cover, 0], c[cover, 1], s=14, marker="^", alpha=0.8, color=PALETTE[3], label="cover")
            ax.scatter(c[p, 0], c[p, 1], s=22, marker="x", color=WRONG, label="poison")
            _label_panel(ax, panel, xlabel=xlabel, ylabel=ylabel)
        _legends_below(fig, axes, fontsize=8)
        if title:
            fig.suptitle(title)
    return fig


_register_figure_html()
