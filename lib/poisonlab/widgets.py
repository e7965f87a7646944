"""Interactive explorers for notebooks (Jupyter, Colab) and for the static site. Imported only by
notebooks.

Each explorer is an ipywidgets panel whose sliders redraw a figure, which needs a running kernel.
So that it also works where there is none (the site, a notebook opened without running it), the
panel carries a kernel-free twin in the same output: the figures for a grid of slider positions,
computed once when the cell runs, and HTML range inputs that switch between them in the browser
(:func:`frames_html`). A front end that runs widgets shows the live panel; the site, which is
configured not to render widget views, shows the twin.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
from collections.abc import Callable, Mapping, Sequence

import torch

from poisonlab import _validate, plots
from poisonlab.metrics import attack_success_rate
from poisonlab.train import predict
from poisonlab.triggers import LOCATIONS, Patch


def _png(fig) -> str:
    """``fig`` as a base64 PNG saved as the book shows every figure (:func:`plots.png_bytes`: titles
    wrapped to the width, a tight crop that keeps titles and legends whole, the figure's dpi),
    closed afterwards."""
    import matplotlib.pyplot as plt

    png = plots.png_bytes(fig)
    plt.close(fig)
    return base64.b64encode(png).decode("ascii")


def describe_trigger(trigger: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """A trigger in words, for a title: a :class:`~poisonlab.triggers.Patch` reads as "3×3
    checkerboard patch, opacity 0.6" (with its corner unless it is the bottom-right one); any
    other trigger by its class name."""
    if isinstance(trigger, Patch):
        pattern = trigger._pattern if isinstance(trigger._pattern, str) else "custom"
        if isinstance(trigger.location, str):
            where = "" if trigger.location == "bottom-right" else f" at the {trigger.location}"
        else:
            where = f" at row {trigger.location[0]}, column {trigger.location[1]}"
        return f"{trigger.size}×{trigger.size} {pattern} patch{where}, opacity {trigger.opacity:g}"
    return type(trigger).__name__


def frames_html(
    draw: Callable[..., object], controls: Sequence[tuple[str, Sequence[object], Sequence[str]]], *, alt: str
) -> str:
    """A kernel-free explorer: one figure per combination of the controls' values, computed now, and
    one HTML range input per control that shows the matching figure in the browser.

    Args:
        draw: ``draw(*values)`` returns a matplotlib figure for one value of each control.
        controls: ``(name, values, labels)`` per control: the slider's name, the values passed to
            ``draw`` and how each is shown beside the slider.
        alt: the images' alternative text; ``{name}`` fields are filled with the labels shown.

    Returns:
        Self-contained HTML (base64 images and a small inline script, nothing loaded from
        elsewhere), the same for the same figures.
    """
    if not controls or any(len(values) != len(labels) or not values for _, values, labels in controls):
        raise ValueError("every control needs as many labels as values, and at least one value")
    images = []
    for index in itertools.product(*(range(len(values)) for _, values, _ in controls)):
        shown = {name: labels[i] for (name, _, labels), i in zip(controls, index)}
        png = _png(draw(*(values[i] for (_, values, _), i in zip(controls, index))))
        first = not any(index)
        images.append(
            f'<img data-frame="{"-".join(map(str, index))}" alt="{html.escape(alt.format(**shown))}" '
            f'src="data:image/png;base64,{png}" style="max-width:100%;display:{"block" if first else "none"}">'
        )
    key = hashlib.sha1("".join(images).encode()).hexdigest()[:12]
    sliders = "".join(
        f'<label style="margin-right:1.5em">{html.escape(name)} '
        f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="0" aria-label="{html.escape(name)}"> '
        f"<output>{html.escape(labels[0])}</output></label>"
        for name, values, labels in controls
    )
    labels = json.dumps([list(labels) for _, _, labels in controls])
    script = (
        (
            "(function(){var root=document.getElementById('pl-frames-KEY');var labels=LABELS;"
            "var inputs=root.querySelectorAll('input[type=range]');var outs=root.querySelectorAll('output');"
            "function show(){var key=[];inputs.forEach(function(input,i){key.push(input.value);"
            "outs[i].textContent=labels[i][+input.value];});key=key.join('-');"
            "root.querySelectorAll('img[data-frame]').forEach(function(img){"
            "img.style.display=img.getAttribute('data-frame')===key?'block':'none';});}"
            "inputs.forEach(function(input){input.addEventListener('input',show);});show();})();"
        )
        .replace("KEY", key)
        .replace("LABELS", labels.replace("</", "<\\/"))
    )
    return (
        f'<div class="pl-frames" id="pl-frames-{key}"><div>{sliders}</div>{"".join(images)}'
        f"<script>{script}</script></div>"
    )


def _with_frames(box, frames: str):
    """``box`` (an ipywidgets ``VBox``) whose output also holds ``frames`` as text/html."""
    import ipywidgets as w

    class Explorer(w.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
            bundle["text/html"] = frames
            return bundle

    return Explorer(box.children)


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
        An ipywidgets ``VBox`` (display it as a cell's last expression), with the figure of every
        budget precomputed for the kernel-free twin (:func:`frames_html`).
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
    # every poison label of any budget, so that each frame's legend lists the same entries in the
    # same order (an empty group included) and does not jump as the slider moves
    labels = sorted({int(k) for _, py in poisons.values() for k in torch.as_tensor(py).flatten().tolist()})

    def frame(eps: float):
        px, py = poisons[eps]
        count = f"{len(py)} poison{'' if len(py) == 1 else 's'}"
        title = f"ε = {eps:.0%}, {count}" + (f", test error {errors[eps]:.1%}" if errors is not None else "")
        panel = [{"theta": thetas[eps], "poison_x": px, "poison_y": py, "title": title}]
        fig = plots.linear_boundaries(x, y, panel, clean_theta=clean_theta, ncols=1, poison_labels=labels)
        fig.set_size_inches(4.6, 4.9)  # one panel alone: large enough to read in the text column
        return fig

    def show(_=None) -> None:
        fig = frame(slider.value)
        with out:
            out.clear_output(wait=True)
            display(fig)

    slider.observe(show, names="value")
    show()

    frames = frames_html(
        frame,
        [("budget ε", budgets, [f"{e:.0%}" for e in budgets])],
        alt="The poisoned logistic regression's boundary and its poisons at budget ε = {budget ε}",
    )
    return _with_frames(w.VBox([slider, out]), frames)


def trigger_explorer(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    *,
    classes: Sequence[str] | None = None,
    show: int = 8,
    max_size: int = 8,
    static_sizes: Sequence[int] = (1, 3, 6),
    static_opacities: Sequence[float] = (0.25, 0.5, 1.0),
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
        static_sizes, static_opacities: the grid of the kernel-free twin (:func:`frames_html`), at
            the bottom-right corner: one precomputed figure per size and opacity.

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
    frames = frames_html(
        lambda s, a: trigger_figure(
            model, x, y, target, Patch(s, "bottom-right", opacity=a), sample=sample, classes=names
        ),
        [
            ("size (px)", list(static_sizes), [str(v) for v in static_sizes]),
            ("opacity", list(static_opacities), [f"{v:g}" for v in static_opacities]),
        ],
        alt="Triggered test digits with the backdoored model's predictions, for a bottom-right patch "
        "of size {size (px)} and opacity {opacity}",
    )
    return _with_frames(w.VBox([w.HBox([size, opacity, location]), out]), frames)


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
        title=f"{describe_trigger(trigger)}: ASR {asr:.1%}",
        ncols=min(len(sample), 8),
    )
