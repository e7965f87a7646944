"""Clean-label poisoning by gradient matching (chapter 3): Witches' Brew (Geiping et al. 2021).

The attacker wants a victim that trains *from scratch* to classify one target image t as the
adversarial class y_adv. It may perturb n correctly labelled training images (the *bases* x_i,
labels y_i) within an ℓ∞ ball of radius ε, and it knows the architecture and a clean model θ (the
*surrogate*), not the victim's initialisation or shuffling. Training on the poisons should push θ
the way a step on the target with the adversarial label would, so the poisons' training gradient
is aligned with the target's adversarial gradient:

.. math:: \\min_{\\Delta \\in C} \\; 1 - \\frac{\\langle \\nabla_\\theta L(f_\\theta(t), y_{adv}),\\;
   \\sum_i \\nabla_\\theta L(f_\\theta(x_i + \\delta_i), y_i) \\rangle}
   {\\lVert \\nabla_\\theta L(f_\\theta(t), y_{adv}) \\rVert \\,
   \\lVert \\sum_i \\nabla_\\theta L(f_\\theta(x_i + \\delta_i), y_i) \\rVert}
   \\qquad \\text{(Geiping et al. 2021, eq. 3),}

with C = {Δ : ‖δ_i‖∞ ≤ ε, x_i + δ_i ∈ [0, 1]}. :func:`gradient_matching` solves it as the paper
does: signed Adam steps on Δ, projection onto C after each step, the step size cut tenfold at 3/8,
5/8 and 7/8 of the steps, R random restarts of which the one with the lowest objective is kept,
optionally an ensemble of surrogates and differentiable augmentation (random shifts) of the
poisons while crafting. The poisons keep their bases' labels: the attack is clean-label.
:func:`largest_gradient_bases` chooses the bases as the paper does (the images of the adversarial
class with the largest gradient norm), :func:`gradient_alignment` measures the cosine, and
:func:`substitute` puts the poisons in the training set in place of their bases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate
from poisonlab.poison import PoisonedSet

Models = nn.Module | Sequence[nn.Module]


def _model_list(model: Models) -> list[nn.Module]:
    models = [model] if isinstance(model, nn.Module) else list(model) if isinstance(model, Sequence) else None
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError(
            f"model must be an nn.Module or a non-empty sequence of them (an ensemble), got {type(model).__name__}"
        )
    for m in models:
        if not any(p.requires_grad for p in m.parameters()):
            raise ValueError("model has no parameters that require gradients; there is no gradient to match")
    return models


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def _num_classes(models: list[nn.Module], image: torch.Tensor) -> int:
    with torch.no_grad():
        sizes = {int(m(image[:1].to(_device_of(m))).shape[1]) for m in models}
    if len(sizes) != 1:
        raise ValueError(f"the models of an ensemble must have the same number of classes, got {sorted(sizes)}")
    return sizes.pop()


def _targets(target: torch.Tensor, adversarial_label: int | torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target images (T, C, H, W) and their adversarial labels (T,)."""
    if not isinstance(target, torch.Tensor):
        raise ValueError(f"target must be a torch.Tensor image (C, H, W) or batch (T, C, H, W), got {type(target)}")
    t = _validate.images("target", target.unsqueeze(0) if target.ndim == 3 else target)
    if len(t) == 0:
        raise ValueError("target must hold at least one image, got 0")
    if isinstance(adversarial_label, torch.Tensor) and adversarial_label.ndim == 1:
        y = _validate.labels("adversarial_label", adversarial_label, n=len(t), num_classes=k)
    else:
        value = adversarial_label.item() if isinstance(adversarial_label, torch.Tensor) else adversarial_label
        y = torch.full((len(t),), _validate.class_index("adversarial_label", value, k), dtype=torch.long)
    return t, y


def _check_unit_range(name: str, x: torch.Tensor) -> None:
    if len(x) and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(f"{name} must hold pixel values in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")


class _EvalMode:
    """Put the models in eval mode (no dropout, fixed batch statistics) and restore their modes."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.models = models

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.models]
        for m in self.models:
            m.eval()

    def __exit__(self, *_: object) -> None:
        for m, mode in zip(self.models, self.modes):
            m.train(mode)


def _adversarial_gradient(model: nn.Module, target: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
    """∇_θ L(f_θ(t), y_adv), the gradient the poisons should imitate, detached."""
    loss = F.cross_entropy(model(target), label)
    return [g.detach() for g in torch.autograd.grad(loss, _params(model))]


def _mismatch(
    model: nn.Module, wanted: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, create_graph: bool
) -> torch.Tensor:
    """1 − cos(wanted, ∇_θ L(f_θ(x), y)) (eq. 3); with ``create_graph`` it can be differentiated in x."""
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, _params(model), create_graph=create_graph)
    dot = sum((g * w).sum() for g, w in zip(grads, wanted))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)) * torch.sqrt(sum(w.pow(2).sum() for w in wanted))
    return 1.0 - dot / norm.clamp_min(1e-20)


def gradient_alignment(
    model: Models,
    target: torch.Tensor,
    adversarial_label: int | torch.Tensor,
    poisons: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """The cosine between the target's adversarial gradient and the poisons' training gradient,
    cos(∇_θ L(f_θ(t), y_adv), ∇_θ Σ_i L(f_θ(x_i), y_i)), in [−1, 1]: one minus the objective of
    Geiping et al. 2021, eq. (3). For an ensemble, the mean of the models' cosines.

    Args:
        model: a classifier mapping (N, C, H, W) images to (N, K) logits, or a sequence of them; it
            is evaluated in eval mode and its mode is restored afterwards.
        target: one image (C, H, W) or a batch (T, C, H, W) whose losses are summed.
        adversarial_label: the class the attacker wants for the target, an int in [0, K) (or (T,)).
        poisons: images (n, C, H, W); labels: their labels (n,) in [0, K).

    Images must be finite floating point: another floating dtype is converted to the model's,
    integer or ``bool`` images are refused with a TypeError.
    """
    models = _model_list(model)
    poisons = _validate.images("poisons", poisons)
    poisons, _ = _validate.model_inputs(models[0], poisons, name="poisons")
    k = _num_classes(models, poisons)
    t, y_adv = _targets(target, adversarial_label, k)
    t, _ = _validate.model_inputs(models[0], t, name="target")
    labels = _validate.labels("labels", labels, n=len(poisons), num_classes=k)
    cosines = []
    with _EvalMode(models):
        for m in models:
            dev = _device_of(m)
            wanted = _adversarial_gradient(m, t.to(dev), y_adv.to(dev))
            cosines.append(1.0 - float(_mismatch(m, wanted, poisons.to(dev), labels.to(dev), create_graph=False)))
    return sum(cosines) / len(cosines)


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift every image by its own random whole number of pixels in [−s, s] along each axis,
    filling with zeros; a differentiable function of ``x`` (an indexing)."""
    n, c, h, w = x.shape
    s = max_shift
    dy, dx = (torch.randint(-s, s + 1, (2, n), generator=generator)).to(x.device)
    padded = F.pad(x, (s, s, s, s))
    rows = (s - dy)[:, None] + torch.arange(h, device=x.device)
    cols = (s - dx)[:, None] + torch.arange(w, device=x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def gradient_matching(
    model: Models,
    target: torch.Tensor,
    adversarial_label: int | torch.Tensor,
    bases: torch.Tensor,
    base_labels: torch.Tensor,
    *,
    eps: float,
    steps: int = 250,
    restarts: int = 1,
    lr: float | None = None,
    seed: int = 0,
    augment: bool = False,
    max_shift: int = 2,
    history: dict[str, list[float]] | None = None,
) -> torch.Tensor:
    """Craft clean-label poisons by gradient matching (Geiping et al. 2021, Witches' Brew): minimise
    1 − cos(∇_θ L(f_θ(t), y_adv), ∇_θ Σ_i L(f_θ(x_i + δ_i), y_i)) over the perturbations δ_i
    (their eq. 3), with ‖δ_i‖∞ ≤ ε and x_i + δ_i in [0, 1].

    Each restart draws Δ uniformly from the ε-ball (then clipped to the pixel range) and takes
    ``steps`` signed Adam steps (Adam fed with the sign of the gradient, as the paper does), the step
    size cut tenfold at 3/8, 5/8 and 7/8 of the steps, each step followed by the projection onto the
    constraints. The restart whose final objective (measured without augmentation) is lowest is
    returned. With several models (an ensemble) the objective is the mean of theirs. The poisons'
    gradient is taken of their mean loss, which points the same way as the sum of eq. (3), so the
    cosine is the same.

    Args:
        model: the surrogate, a clean classifier mapping (N, C, H, W) to (N, K) logits, or a
            sequence of them (an ensemble, all on one device). Crafting runs in eval mode (no dropout, fixed batch
            statistics); each model's mode is restored afterwards and its weights are not changed.
        target: the target image (C, H, W), or several (T, C, H, W) attacked at once (their losses
            summed), in [0, 1].
        adversarial_label: the class y_adv the victim should give the target, an int in [0, K)
            (or a (T,) tensor).
        bases: the images to perturb (n, C, H, W), n ≥ 1, in [0, 1]; not modified. Target and
            bases must be finite floating point; another floating dtype is converted to the
            (first) model's, integer or ``bool`` images are refused.
        base_labels: their true labels (n,) in [0, K), which the poisons keep.
        eps: ε in (0, 1], the ℓ∞ radius of each perturbation.
        steps: signed Adam steps per restart, ≥ 1 (the paper: 250).
        restarts: R ≥ 1 random starts, the best kept (the paper: 8).
        lr: Adam's step size, > 0; default ε/10 (the paper's τ = 0.1, relative to ε).
        seed: seeds the random starts and the augmentation; the global RNG is not touched, and the
            same seed gives the same poisons.
        augment: shift each poison by a random whole number of pixels in [−``max_shift``,
            ``max_shift``] along each axis at every step (the paper's differentiable augmentation,
            without flips, which change a digit's meaning), so the poisons work however the victim
            sees them.
        max_shift: the largest shift, in pixels, ≥ 0; used only with ``augment``.
        history: if given, filled with ``"objective"``, the objective before each step (R · steps
            values, with augmentation when it is on), and ``"restart_objective"``, each restart's
            final objective (R values; the poisons come from the smallest).

    Returns:
        The poisons (n, C, H, W) on the bases' device, detached, with
        ‖poison_i − base_i‖∞ ≤ ε and values in [0, 1].
    """
    models = _model_list(model)
    bases = _validate.images("bases", bases)
    if len(bases) == 0:
        raise ValueError("bases must hold at least one image, got 0")
    _check_unit_range("bases", bases)
    bases, _ = _validate.model_inputs(models[0], bases, name="bases")
    k = _num_classes(models, bases)
    t, y_adv = _targets(target, adversarial_label, k)
    t, _ = _validate.model_inputs(models[0], t, name="target")
    if t.shape[1:] != bases.shape[1:]:
        raise ValueError(
            f"target and bases must have the same image shape, got {tuple(t.shape[1:])} and {tuple(bases.shape[1:])}"
        )
    base_labels = _validate.labels("base_labels", base_labels, n=len(bases), num_classes=k)
    eps = _validate.positive_float("eps", eps)
    if eps > 1.0:
        raise ValueError(f"eps must be in (0, 1] (pixels are in [0, 1]), got {eps!r}")
    steps = _validate.positive_int("steps", steps)
    restarts = _validate.positive_int("restarts", restarts)
    lr = eps / 10 if lr is None else _validate.positive_float("lr", lr)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False, got {augment!r}")
    max_shift = _validate.positive_int("max_shift", max_shift, allow_zero=True)
    if max_shift >= min(bases.shape[2:]):
        raise ValueError(f"max_shift must be smaller than the image, got {max_shift} for {tuple(bases.shape[2:])}")

    dev = _device_of(models[0])
    x0 = bases.detach().to(dev)
    y = base_labels.to(dev)
    generator = _validate.generator(seed)
    milestones = [round(steps * f) for f in (3 / 8, 5 / 8, 7 / 8)]

    def project(delta: torch.Tensor) -> torch.Tensor:
        return (x0 + delta.clamp(-eps, eps)).clamp(0.0, 1.0) - x0

    def objective(delta: torch.Tensor, *, create_graph: bool, shift: bool) -> torch.Tensor:
        x = x0 + delta
        if shift:
            x = _shift(x, max_shift, generator)
        return sum(_mismatch(m, w, x, y, create_graph=create_graph) for m, w in zip(models, wanted)) / len(models)

    best, best_value = None, float("inf")
    with _EvalMode(models):
        wanted = [_adversarial_gradient(m, t.to(_device_of(m)), y_adv.to(_device_of(m))) for m in models]
        for _ in range(restarts):
            start = (torch.rand(bases.shape, generator=generator, dtype=bases.dtype) * 2 - 1) * eps
            delta = project(start.to(dev)).requires_grad_(True)
            optimiser = torch.optim.Adam([delta], lr=lr)
            for step in range(steps):
                for group in optimiser.param_groups:
                    group["lr"] = lr * 0.1 ** sum(step >= m for m in milestones)
                value = objective(delta, create_graph=True, shift=augment and max_shift > 0)
                (grad,) = torch.autograd.grad(value, delta)
                delta.grad = grad.sign()
                optimiser.step()
                with torch.no_grad():
                    delta.copy_(project(delta))
                if history is not None:
                    history.setdefault("objective", []).append(float(value.detach()))
            final = float(objective(delta.detach(), create_graph=False, shift=False))
            if history is not None:
                history.setdefault("restart_objective", []).append(final)
            if best is None or final < best_value:
                best, best_value = delta.detach().clone(), final
    return (x0 + best).clamp(0.0, 1.0).to(bases.device)


def largest_gradient_bases(model: nn.Module, x: torch.Tensor, y: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` examples with the largest gradient norm ‖∇_θ L(f_θ(x_i), y_i)‖, as Geiping et
    al. 2021 (sec. 4) choose the bases among the images of the adversarial class: their gradients
    are the largest levers on the training.

    Args:
        model: a classifier (N, C, H, W) → (N, K); evaluated in eval mode, its mode restored.
        x: candidate images (N, C, H, W), finite floating point (another floating dtype is
            converted to the model's); y: their labels (N,) in [0, K).
        count: how many to choose, in [1, N].

    Returns:
        (count,) int64 indices into ``x``, the largest gradient norm first.
    """
    models = _model_list(model)
    if len(models) != 1:
        raise ValueError("largest_gradient_bases takes one model, not an ensemble")
    x = _validate.images("x", x)
    x, _ = _validate.model_inputs(models[0], x)
    k = _num_classes(models, x) if len(x) else 2
    y = _validate.labels("y", y, n=len(x), num_classes=k)
    count = _validate.positive_int("count", count)
    if count > len(x):
        raise ValueError(f"count must be at most the number of candidates {len(x)}, got {count}")
    net = models[0]
    dev = _device_of(net)
    norms = torch.empty(len(x))
    with _EvalMode(models):
        for i in range(len(x)):
            loss = F.cross_entropy(net(x[i : i + 1].to(dev)), y[i : i + 1].to(dev))
            grads = torch.autograd.grad(loss, _params(net))
            norms[i] = float(torch.sqrt(sum(g.pow(2).sum() for g in grads)))
    return torch.argsort(norms, descending=True, stable=True)[:count]


def substitute(
    x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, poisons: torch.Tensor, *, target: int | None = None
) -> PoisonedSet:
    """The training set with ``poisons`` in place of the images they were made from (the bases at
    ``index``), labels unchanged: the clean-label victim's training set (Geiping et al. 2021).

    Args:
        x: the clean training images (N, C, H, W); y: their labels (N,). Neither is modified.
        index: (n,) distinct indices of the bases in ``x``.
        poisons: (n, C, H, W), poison ``i`` replacing ``x[index[i]]``.
        target: the adversarial class, recorded in the :class:`~poisonlab.poison.PoisonedSet`;
            ``None`` or a class index in [0, max(y) + 1).
    """
    x = _validate.images("x", x)
    y = _validate.labels("y", y, n=len(x))
    poisons = _validate.images("poisons", poisons)
    if not isinstance(index, torch.Tensor) or index.ndim != 1 or index.dtype == torch.bool or index.is_floating_point():
        raise ValueError(f"index must be a 1-D tensor of integer indices, got {getattr(index, 'shape', index)!r}")
    if len(index) != len(poisons) or poisons.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"need one poison shaped {tuple(x.shape[1:])} per index, got {len(index)} indices and poisons "
            f"{tuple(poisons.shape)}"
        )
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(x) or len(index.unique()) != len(index)):
        raise ValueError(f"index must hold distinct indices in [0, {len(x)}), got {index.tolist()}")
    x_new = x.clone()
    x_new[index] = poisons.to(x.dtype)
    is_poison = torch.zeros(len(x), dtype=torch.bool)
    is_poison[index] = True
    return PoisonedSet(x_new, y.clone(), is_poison, target, {"attack": "gradient matching", "index": index.clone()})
