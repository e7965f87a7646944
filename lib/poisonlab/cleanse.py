"""Model inspection: Neural Cleanse (Wang et al. 2019, "Neural Cleanse: Identifying and Mitigating
Backdoor Attacks in Neural Networks", IEEE S&P).

A backdoor is a shortcut: a small change of any input that sends it to the target class. Neural
Cleanse looks for that shortcut in the trained model, without the training data. For each class c
it finds the smallest mask ``m_c ∈ [0, 1]^{H×W}`` and a pattern ``p_c ∈ [0, 1]^{C×H×W}`` such that stamping::

    x' = (1 − m_c) ⊙ x + m_c ⊙ p_c

sends clean inputs x to c (their eq. 2–3)::

    min_{m_c, p_c}  E_x [ CE(f(x'), c) ] + λ ‖m_c‖₁ .

A class the model reaches through a trigger needs a far smaller mask than the others; the outlier
test on the masks' ℓ1 norms is the **anomaly index**, the distance below the median in units of the
median absolute deviation (times 1.4826, which makes it a consistent estimate of a Gaussian's
standard deviation). Wang et al. flag a class whose index exceeds 2. The mitigation they propose
("unlearning") fine-tunes the model on clean inputs, a share of them stamped with the reversed
trigger and kept at their true labels.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate
from poisonlab.progress import progress_bar
from poisonlab.train import fit

__all__ = ["MAD_SCALE", "ReversedTriggers", "anomaly_index", "reverse_triggers", "stamp", "unlearn"]

#: Consistency constant: 1.4826 · MAD estimates a Gaussian's standard deviation.
MAD_SCALE = 1.4826


@dataclass
class ReversedTriggers:
    """The smallest trigger found for each class (:func:`reverse_triggers`).

    Attributes:
        classes: (K,) the classes inspected.
        masks: (K, 1, H, W) in [0, 1].
        patterns: (K, C, H, W) in [0, 1].
        norms: (K,) the masks' ℓ1 norms (pixels' worth of mask).
        success: (K,) the share of the inspection images each trigger sends to its class.
        trace: (S, K) the masks' ℓ1 norms after each of the S steps taken (S <= ``steps``; fewer
            when the search stopped early), to see whether the search converged.
    """

    classes: torch.Tensor
    masks: torch.Tensor
    patterns: torch.Tensor
    norms: torch.Tensor
    success: torch.Tensor
    trace: torch.Tensor


def _stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    return (1 - mask) * x + mask * pattern


def _trigger(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a mask (1, H, W) and a pattern (C, H, W), both floating point in [0, 1], against
    images x (N, C, H, W)."""
    c, h, w = x.shape[1:]
    for name, value, shape in (("mask", mask, (1, h, w)), ("pattern", pattern, (c, h, w))):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise ValueError(
                f"{name} must be a tensor of shape {shape} for images {tuple(x.shape[1:])}, "
                f"got {getattr(value, 'shape', value)!r}"
            )
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        _validate.finite(name, value)
        if value.numel() and (float(value.min()) < 0 or float(value.max()) > 1):
            raise ValueError(
                f"{name} must lie in [0, 1], got values in [{float(value.min()):g}, {float(value.max()):g}]"
            )
    return mask.to(x), pattern.to(x)


def stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """(1 − m) ⊙ x + m ⊙ p: images x (N, C, H, W) in [0, 1] with a mask m (1, H, W) and a pattern
    p (C, H, W), both in [0, 1] (one of :func:`reverse_triggers`' triggers), broadcast over them.
    The result stays in [0, 1]."""
    x = _validate.finite("x", _validate.images("x", x))
    mask, pattern = _trigger(x, mask, pattern)
    return _stamp(x, mask, pattern)


def reverse_triggers(
    model: nn.Module,
    x: torch.Tensor,
    *,
    classes: list[int] | None = None,
    steps: int = 150,
    lr: float = 0.1,
    lam: float = 0.003,
    batch_size: int = 64,
    tol: float = 0.0,
    window: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> ReversedTriggers:
    """Neural Cleanse's trigger reverse-engineering (Wang et al. 2019, eq. 3), every class at once.

    Masks and patterns are parametrised through a sigmoid (so they stay in [0, 1]) and optimised
    with Adam for ``steps`` steps, each on a mini-batch of ``batch_size`` of the images ``x``
    stamped with all the classes' triggers in one forward pass. λ is fixed (the paper adapts it
    during the search; a fixed λ is enough to rank the classes). The model is not changed.

    Args:
        model: a classifier (N, C, H, W) → (N, K) logits, in eval mode during the search.
        x: clean inputs (N, C, H, W) in [0, 1], e.g. a few hundred test images (read in the
            model's floating-point dtype).
        classes: the classes to inspect; default every class the model outputs.
        steps: optimisation steps, >= 1.
        lr: Adam's step size, > 0.
        lam: the weight λ of the mask's ℓ1 norm, >= 0.
        batch_size: images per step, >= 1.
        tol: early stopping, >= 0 (0: run every step): stop once no class's mask norm moved by more
            than ``tol`` of itself over the last ``window`` steps (the search has settled).
        window: the steps over which that change is measured, >= 1.
        seed: seeds the initial masks and patterns and the mini-batches.
        progress: a progress bar over the steps.

    Returns:
        :class:`ReversedTriggers`, with each trigger's success measured on all of ``x``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = _validate.finite("x", _validate.images("x", x))
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got 0")
    dtype = _validate.model_dtype(model)
    if dtype is not None:
        x = x.to(dtype)  # float64 images are read in the model's dtype, as everywhere in poisonlab
    if classes is not None and (isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__")):
        raise TypeError(f"classes must be a list of class indices (or None for all), got {classes!r}")
    steps = _validate.positive_int("steps", steps)
    lr = _validate.positive_float("lr", lr)
    lam = _validate.positive_float("lam", lam, allow_zero=True)
    batch_size = _validate.positive_int("batch_size", batch_size)
    tol = _validate.positive_float("tol", tol, allow_zero=True)
    window = _validate.positive_int("window", window)
    g = _validate.generator(seed)
    was_training = model.training
    model.eval()
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    x = x.to(device)
    with torch.no_grad():
        k = int(model(x[:1]).shape[1])
    wanted = list(range(k)) if classes is None else [_validate.class_index("classes", c, k) for c in classes]
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"classes must be distinct classes of the model, got {classes!r}")
    n_cls, (c, h, w) = len(wanted), x.shape[1:]
    target = torch.tensor(wanted, device=device)
    mask_logit = torch.randn(n_cls, 1, 1, h, w, generator=g).to(device).requires_grad_()
    pattern_logit = torch.randn(n_cls, 1, c, h, w, generator=g).to(device).requires_grad_()
    opt = torch.optim.Adam([mask_logit, pattern_logit], lr=lr, betas=(0.5, 0.9))
    frozen = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    trace: list[torch.Tensor] = []
    bar = progress_bar(steps, desc="reversing triggers", unit="step") if _validate.flag("progress", progress) else None
    try:
        for _ in range(steps):
            batch = x[torch.randint(len(x), (min(batch_size, len(x)),), generator=g).to(device)]
            mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
            stamped = _stamp(batch[None], mask, pattern).reshape(-1, c, h, w)  # (K·B, C, H, W)
            labels = target.repeat_interleave(len(batch))
            loss = F.cross_entropy(model(stamped), labels, reduction="sum") / len(batch)
            loss = loss + lam * mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                trace.append(torch.sigmoid(mask_logit).flatten(1).sum(1).cpu())
            if bar is not None:
                bar.update(1)
            if tol > 0 and len(trace) > window:
                now, before = trace[-1], trace[-1 - window]
                if float(((now - before).abs() / now.clamp(min=1e-12)).max()) <= tol:
                    break
    finally:
        if bar is not None:
            bar.close()
        for p, f in zip(params, frozen):
            p.requires_grad_(f)
        model.train(was_training)
    with torch.no_grad():
        masks, patterns = torch.sigmoid(mask_logit)[:, 0], torch.sigmoid(pattern_logit)[:, 0]
        success = torch.stack(
            [(model(_stamp(x, masks[i], patterns[i])).argmax(1) == wanted[i]).double().mean() for i in range(n_cls)]
        )
    return ReversedTriggers(
        torch.tensor(wanted),
        masks.cpu(),
        patterns.cpu(),
        masks.flatten(1).sum(1).cpu(),
        success.cpu().float(),
        torch.stack(trace).float(),
    )


def anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    """How far each mask norm lies *below* the median, in robust standard deviations (Wang et al.
    2019, Section 4.2): (median − ‖m_c‖₁) / (1.4826 · MAD). Positive for classes with smaller masks
    than typical; Wang et al. flag a class above 2.

    Args:
        norms: (K,) the masks' ℓ1 norms, floating point, K >= 3, finite, not all equal
            (integer and bool tensors are refused with a TypeError).

    Returns:
        (K,) float64.
    """
    norms = _validate.scores("norms", norms).double()
    if len(norms) < 3:
        raise ValueError(f"norms must hold at least 3 classes' mask norms (K >= 3), got K = {len(norms)}")
    median = norms.quantile(0.5)  # the mean of the two middle values when K is even, as NumPy's
    mad = (norms - median).abs().quantile(0.5)
    if float(mad) == 0:
        raise ValueError("norms have a median absolute deviation of 0: the index is undefined")
    return (median - norms) / (MAD_SCALE * mad)


def unlearn(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    pattern: torch.Tensor,
    *,
    share: float = 0.2,
    epochs: int = 2,
    lr: float = 0.01,
    keep_clean: bool = False,
    seed: int = 0,
) -> nn.Module:
    """Neural Cleanse's mitigation by unlearning (Wang et al. 2019, Section 6.3): a copy of ``model``
    fine-tuned on clean data in which a ``share`` of the images carry the reversed trigger and keep
    their true labels, so the model learns that the trigger means nothing.

    With few clean images (a defender's few hundred), replacing a share of them by stamped copies
    leaves fewer clean ones, and the stamped images, which the model sent to the flagged class,
    at first pull inputs away from that class (on ``mnist5k`` most of the accuracy lost is the
    flagged class's). ``keep_clean=True`` trains on all N clean images *plus* stamped copies of
    ``round(share · N)`` of them; on 400 of ``mnist5k``'s images it lost less clean accuracy than
    replacing them, at a similar attack success rate (``benchmarks/neural_cleanse.py``).

    Args:
        model: the inspected classifier (not changed).
        x, y: clean training images (N, C, H, W) and their labels (N,).
        mask, pattern: the reversed trigger of the flagged class ((1, H, W) and (C, H, W)).
        share: the share of images stamped, in (0, 1].
        epochs, lr: the fine-tuning (SGD with momentum, batch 64, constant ``lr``).
        keep_clean: add the stamped copies to the clean images (True) instead of replacing them
            (False, Wang et al.'s recipe).
        seed: which images are stamped, and the shuffling.

    Returns:
        The fine-tuned copy, in eval mode.
    """
    x = _validate.finite("x", _validate.images("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    share = _validate.fraction("share", share, closed=True)
    if share == 0:
        raise ValueError("share must be in (0, 1], got 0")
    mask, pattern = _trigger(x, mask, pattern)
    keep_clean = _validate.flag("keep_clean", keep_clean)
    g = _validate.generator(seed)
    chosen = torch.randperm(len(x), generator=g)[: max(1, round(share * len(x)))]
    if keep_clean:
        x, y = torch.cat([x, _stamp(x[chosen], mask, pattern)]), torch.cat([y, y[chosen]])
    else:
        x = x.clone()
        x[chosen] = _stamp(x[chosen], mask, pattern)
    clean = copy.deepcopy(model)
    fit(clean, x, y, epochs=epochs, lr=lr, batch_size=64, seed=seed, progress=False)
    return clean.eval()
