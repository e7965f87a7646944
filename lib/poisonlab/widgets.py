"""Interactive explorers for live notebooks (Jupyter, Colab). Imported only by notebooks.

A static page cannot run them; each chapter shows the same content as a static figure next to
the explorer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from poisonlab import _validate, plots
from poisonlab.metrics import attack_success_rate
from poisonlab.train import predict
from poisonlab.triggers import LOCATIONS, Patch


def epsilon_explorer(
    x: torch.Tensor,
    y: torch.Tensor,
    thetas: Mapping[float, torch.Tensor],
    poisons: Mapping[float, tuple[torch.Tensor, torch.Tensor]],
    *,
    clean_theta: torch.Tensor | None = None,
    errors: Mapping[float, float] | None = None,
):
    """A slider over the budget ε that redraws the 2-D data, the poisons and the boundary.

    Args:
        x, y: clean 2-D points (N, 2) and labels in {0, 1}.
        thetas: for each ε, the poisoned model's (w₁, w₂, b).
        poisons: for each ε, the poisons ``(x_p (P, 2), y_p (P,))``.
        clean_theta: drawn dashed for comparison.
        errors: for each ε, the poisoned model's test error, shown in the panel title.

    Returns:
        An ipywidgets ``VBox`` (display it as a cell's last expression).
    """
    import ipywidgets as w
    from IPython.display import display

    if set(thetas) != set(poisons) or not thetas:
        raise ValueError("thetas and poisons must be given for the same, non-empty set of budgets")
    budgets = sorted(thetas)
    slider = w.SelectionSlider(
        options=[(f"{e:.0%}", e) for e in budgets], value=budgets[0], description="budget ε", continuous_update=False
    )
    out = w.Output()

    def show(_=None) -> None:
        eps = slider.value
        px, py = poisons[eps]
        title = f"ε = {eps:.0%}, {len(py)} poisons"
        if errors is not None:
            title += f", test error {errors[eps]:.1%}"
        fig = plots.linear_boundaries(
            x,
            y,
            [{"theta": thetas[eps], "poison_x": px, "poison_y": py, "title": title}],
            clean_theta=clean_theta,
            ncols=1,
        )
        with out:
            out.clear_output(wait=True)
            display(fig)

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, out])


def trigger_explorer(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    *,
    classes: Sequence[str] | None = None,
    show: int = 8,
    max_size: int = 8,
):
    """Sliders over a patch trigger's size, opacity and location that redraw triggered test
    images with the backdoored ``model``'s predictions and the trigger's attack success rate.

    It asks the question a defender cares about: which *variations* of the trigger the model
    learned still open the backdoor.

    Args:
        model: a (backdoored) classifier.
        x, y: clean test images (N, C, H, W) and labels (N,).
        target: the attacker's class t; the ASR counts inputs whose true class is not t.
        classes: class names for the captions (default: the label numbers).
        show: how many images to draw (the first ``show`` whose class is not t).
        max_size: the size slider's upper end, in pixels.

    Returns:
        An ipywidgets ``VBox`` (display it as a cell's last expression).
    """
    import ipywidgets as w
    from IPython.display import display

    x = _validate.images("x", x)
    y = _validate.labels("y", y, n=x.shape[0])
    k = len(classes) if classes is not None else int(y.max()) + 1
    _validate.class_index("target", target, k)
    show = _validate.positive_int("show", show)
    names = list(classes) if classes is not None else [str(c) for c in range(k)]
    sample = torch.nonzero(y != target).flatten()[:show]
    size = w.IntSlider(value=3, min=1, max=max_size, description="size (px)", continuous_update=False)
    opacity = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity", continuous_update=False)
    location = w.Dropdown(options=LOCATIONS, value="bottom-right", description="location")
    out = w.Output()

    def redraw(_=None) -> None:
        fig = trigger_figure(
            model, x, y, target, Patch(size.value, location.value, opacity=opacity.value), sample=sample, classes=names
        )
        with out:
            out.clear_output(wait=True)
            display(fig)

    for control in (size, opacity, location):
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([size, opacity, location]), out])


def trigger_figure(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    trigger: Callable[[torch.Tensor], torch.Tensor],
    *,
    sample: torch.Tensor,
    classes: Sequence[str],
):
    """One frame of :func:`trigger_explorer`: the images ``x[sample]`` with ``trigger`` stamped on,
    captioned with the model's prediction (vermilion where it is the target), titled with the
    trigger's ASR on all of ``x``."""
    stamped = trigger(x[sample])
    pred = predict(model, stamped)
    asr = attack_success_rate(model, x, y, trigger, target)
    return plots.image_grid(
        stamped,
        titles=[f"→ {classes[int(p)]}" for p in pred],
        title_colors=[plots.WRONG if int(p) == target else plots.CORRECT for p in pred],
        title=f"{trigger!r}: ASR {asr:.1%}",
        ncols=min(len(sample), 8),
    )
