"""Interactive explorers for live notebooks (Jupyter, Colab). Imported only by notebooks.

A static page cannot run them; each chapter shows the same content as a static figure next to
the explorer.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from poisonlab import plots


def epsilon_explorer(x: torch.Tensor, y: torch.Tensor, thetas: Mapping[float, torch.Tensor],
                     poisons: Mapping[float, tuple[torch.Tensor, torch.Tensor]], *,
                     clean_theta: torch.Tensor | None = None, errors: Mapping[float, float] | None = None):
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
    slider = w.SelectionSlider(options=[(f"{e:.0%}", e) for e in budgets], value=budgets[0],
                               description="budget ε", continuous_update=False)
    out = w.Output()

    def show(_=None) -> None:
        eps = slider.value
        px, py = poisons[eps]
        title = f"ε = {eps:.0%}, {len(py)} poisons"
        if errors is not None:
            title += f", test error {errors[eps]:.1%}"
        fig = plots.linear_boundaries(x, y, [{"theta": thetas[eps], "poison_x": px, "poison_y": py,
                                              "title": title}], clean_theta=clean_theta, ncols=1)
        with out:
            out.clear_output(wait=True)
            display(fig)

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, out])
