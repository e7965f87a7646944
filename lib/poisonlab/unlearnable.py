"""Availability poisoning: noise that makes a training set unlearnable, and two defences that undo it.

An availability attack does not aim at one input or one trigger: it perturbs *every* training image
within an ℓ∞ budget ε so that a model trained on them learns nothing that helps on clean test
images. Huang et al. (2021, "Unlearnable Examples: Making Personal Data Unexploitable", ICLR) craft
*error-minimising* noise by the min-min problem of their eq. (2)

.. math:: \\min_\\theta \\frac{1}{n} \\sum_{i=1}^n \\min_{\\|\\delta_i\\|_\\infty \\le \\varepsilon}
          \\ell\\big(f_\\theta(x_i + \\delta_i), y_i\\big),

solved by alternating a few steps of training θ with signed-gradient steps that *lower* the loss in
δ (projected gradient descent, the opposite sign of an adversarial example), until the training
error on the perturbed images is small. The noise is then a shortcut: a fresh victim fits it
first and has no loss left with which to learn the digits. Sample-wise noise has one δ_i per image;
class-wise noise one δ_c per class, shared by every image of class c (δ_i = δ_{y_i}).

The baselines are random noise of the same budget: ±ε per pixel with random signs, one pattern per
class (class-wise) or per image (sample-wise).

The defences: adversarial training with a small PGD (Madry et al. 2018, eq. (2.1)), which costs
``steps + 1`` forward-backward passes per batch, and bit-depth reduction (Xu et al. 2018, "Feature
Squeezing"), which rounds every pixel to ``2**bits`` levels and so erases any perturbation smaller
than half a level on pixels far from a rounding threshold: near-free, and effective on digits,
whose pixels are mostly 0 or 1.

Shapes: images (N, C, H, W) float in [0, 1], labels (N,) int64; noise has the images' shape and
lies in [−ε, ε]; a poisoned image is clamp(x + δ, 0, 1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate, models
from poisonlab.poison import PoisonedSet
from poisonlab.train import History

__all__ = ["Crafted", "adversarial_fit", "error_minimizing_noise", "pgd_example", "poisoned", "random_noise", "squeeze"]


@dataclass(frozen=True)
class Crafted:
    """Error-minimising noise and how it was found.

    Attributes:
        delta: the noise, shape (N, C, H, W), in [−ε, ε] (class-wise noise is already expanded to
            one copy per image: ``delta[i] = delta_of_class[y[i]]``).
        classwise: one pattern per class (``True``) or one per image.
        eps: the ℓ∞ budget.
        rounds: alternations of training and noise steps that were run.
        train_accuracy: the crafting model's accuracy on the perturbed training images after each
            round (the stopping criterion); its last entry is the final one.
        seconds: wall-clock crafting time.
    """

    delta: torch.Tensor
    classwise: bool
    eps: float
    rounds: int
    train_accuracy: list[float]
    seconds: float


def _eps(eps: float) -> float:
    e = _validate.positive_float("eps", eps)
    if e > 1.0:
        raise ValueError(f"eps must be in (0, 1] (pixels lie in [0, 1]), got {eps!r}")
    return e


def _data(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = _validate.finite("x", _validate.images("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got 0")
    return x, y


def random_noise(
    x: torch.Tensor, y: torch.Tensor, eps: float, *, classwise: bool = True, seed: int = 0
) -> torch.Tensor:
    """Random ±ε noise of the same budget as the crafted noise: the baseline of Huang et al. 2021.

    Args:
        x: training images, (N, C, H, W) in [0, 1] (only their shape is used).
        y: labels, (N,), integers in [0, K).
        eps: the ℓ∞ budget, in (0, 1].
        classwise: one random sign pattern per class, shared by its images (a shortcut a model
            can learn), or an independent pattern per image (mere noise).
        seed: seeds the signs.

    Returns:
        δ of shape (N, C, H, W), every entry ±ε.
    """
    x, y = _data(x, y)
    eps = _eps(eps)
    g = _validate.generator(seed)
    rows = int(y.max()) + 1 if classwise else x.shape[0]
    signs = torch.randint(0, 2, (rows, *x.shape[1:]), generator=g).to(x.dtype) * 2 - 1
    return eps * (signs[y] if classwise else signs)


def poisoned(x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, *, name: str = "unlearnable") -> PoisonedSet:
    """The unlearnable training set: every image replaced by clamp(x + δ, 0, 1), labels kept.

    Args:
        x: clean training images, (N, C, H, W) in [0, 1].
        y: their labels, (N,).
        delta: noise of the same shape as ``x`` (from :func:`random_noise` or
            :func:`error_minimizing_noise`).
        name: recorded in ``info["attack"]``.

    Returns:
        A :class:`~poisonlab.poison.PoisonedSet` whose ``is_poison`` is ``True`` everywhere (an
        availability attack perturbs the whole set) and whose ``target`` is ``None``.
    """
    x, y = _data(x, y)
    _validate.finite("delta", _validate.shaped_like("delta", delta, x.shape, "x"))
    xp = (x + delta.to(x.dtype)).clamp(0.0, 1.0)
    info = {"attack": name, "linf": float((xp - x).abs().max())}
    return PoisonedSet(xp, y.clone(), torch.ones(x.shape[0], dtype=torch.bool), None, info)


def _descend(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps: float, alpha: float, steps: int
) -> torch.Tensor:
    """``steps`` signed-gradient steps that *lower* the loss of ``model`` on x + d, each projected on
    |d| <= eps and on x + d in [0, 1], from the projection of ``d``; x, d: (B, C, H, W), y: (B,)."""
    d = torch.minimum(torch.maximum(d.clamp(-eps, eps), -x), 1 - x)  # clamp(x + d, 0, 1) − x, without rounding
    for _ in range(steps):
        d.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x + d), y), d)
        d = torch.minimum(torch.maximum((d.detach() - alpha * grad.sign()).clamp(-eps, eps), -x), 1 - x)
    return d.detach()


def error_minimizing_noise(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    classwise: bool = True,
    arch: str = "cnn",
    rounds: int = 20,
    train_steps: int = 10,
    noise_passes: int = 1,
    noise_steps: int | None = None,
    craft_share: float | None = None,
    step_size: float | None = None,
    stop_accuracy: float = 0.99,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
) -> Crafted:
    """Error-minimising noise by the min-min alternation of Huang et al. 2021 (eq. (2), Algorithm 1).

    Each round trains the crafting model (architecture ``arch``, SGD with momentum 0.9) for
    ``train_steps`` mini-batches on the perturbed images clamp(x + δ, 0, 1), then lowers the training
    loss in δ by signed gradient *descent*, every step projected on the ℓ∞ ball and on the image range:

    .. math:: \\delta_i \\leftarrow \\Pi_{\\|\\delta_i\\|_\\infty \\le \\varepsilon,\\; x_i + \\delta_i \\in [0,1]}
              \\big(\\delta_i - \\alpha\\, \\mathrm{sign}\\, \\nabla_{\\delta_i}
              \\ell(f_\\theta(x_i + \\delta_i), y_i)\\big).

    Sample-wise noise takes ``noise_steps`` such steps on each image of each mini-batch, one pass over
    the data per round. Class-wise noise follows Huang et al.'s code (``perturbation.py``,
    ``universal_perturbation``): for each mini-batch, every image starts from its class's pattern,
    δ_i = clamp(x_i + δ_{y_i}, 0, 1) − x_i, takes ``noise_steps`` projected steps of its own, and each
    class pattern present in the batch becomes the mean of its images' δ_i (which lies in the ε-ball);
    ``noise_passes`` passes over the data per round. A pixel that the image range clamps therefore
    pulls its class's pattern towards a value it can take. Crafting stops once the model's accuracy
    on the perturbed training images, clamp(x + δ, 0, 1), reaches ``stop_accuracy`` (Huang et al.:
    99%), or after ``rounds`` rounds.

    Huang et al.'s setting on CIFAR-10 (ε = 8/255, α = ε/10): class-wise 1 step per image per batch;
    sample-wise 20 steps per image and 10 training mini-batches per round, until 99% training
    accuracy. The defaults here are cheaper (5 sample-wise steps of ε/4).

    Args:
        x: clean training images, (N, C, H, W) in [0, 1].
        y: labels, (N,), integers in [0, K).
        eps: the ℓ∞ budget, in (0, 1].
        classwise: one pattern per class (``True``) or one per image.
        arch: the crafting model, see :func:`poisonlab.models.make`.
        rounds: the most alternations, >= 1.
        train_steps: mini-batches of model training per round, >= 1.
        noise_passes: class-wise only: passes over the data of noise steps per round, >= 1.
        noise_steps: signed steps per image per mini-batch, >= 1; default 1 for class-wise noise
            (Huang et al.'s) and 5 for sample-wise noise.
        craft_share: class-wise only: the share of the training images, in (0, 1], drawn once at
            random, on which the class patterns are updated and the stopping accuracy is measured
            (the model still trains on every image); default 0.2, Huang et al.'s ``train_subset``.
            Sample-wise noise is crafted on every image.
        step_size: α; default ε/4 for sample-wise noise and ε/10 for class-wise noise.
        stop_accuracy: the training accuracy at which crafting stops, in [0, 1].
        lr, batch_size: the crafting model's SGD.
        seed: seeds the crafting model's weights and the batch order.

    Returns:
        A :class:`Crafted` holding δ (N, C, H, W), with every ``abs(δ) <= ε`` and ``x + δ`` in [0, 1], and the
        crafting record.
    """
    x, y = _data(x, y)
    eps = _eps(eps)
    rounds = _validate.positive_int("rounds", rounds)
    train_steps = _validate.positive_int("train_steps", train_steps)
    noise_passes = _validate.positive_int("noise_passes", noise_passes)
    noise_steps = _validate.positive_int("noise_steps", (1 if classwise else 5) if noise_steps is None else noise_steps)
    alpha = (
        eps / (10.0 if classwise else 4.0) if step_size is None else _validate.positive_float("step_size", step_size)
    )
    stop_accuracy = _validate.fraction("stop_accuracy", stop_accuracy, closed=True)
    if craft_share is not None and not classwise and craft_share != 1:
        raise ValueError(f"craft_share applies to class-wise noise only, got {craft_share!r} with classwise=False")
    share = (
        (0.2 if classwise else 1.0)
        if craft_share is None
        else _validate.fraction("craft_share", craft_share, closed=True)
    )
    if share <= 0:
        raise ValueError(f"craft_share must be in (0, 1], got {craft_share!r}")
    lr = _validate.positive_float("lr", lr)
    batch_size = _validate.positive_int("batch_size", batch_size)
    k = int(y.max()) + 1
    k = max(k, 2)
    model = models.make(arch, tuple(x.shape[1:]), k, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = _validate.generator(seed)
    n = x.shape[0]
    delta = torch.zeros((k if classwise else n, *x.shape[1:]), dtype=x.dtype)

    def perturbed(idx: torch.Tensor) -> torch.Tensor:  # the images as released: clamp(x + δ, 0, 1)
        return (x[idx] + (delta[y[idx]] if classwise else delta[idx])).clamp(0.0, 1.0)

    start = time.perf_counter()
    record: list[float] = []
    crafting = torch.arange(n) if share >= 1 else torch.randperm(n, generator=g)[: max(1, round(share * n))].sort()[0]
    order, pos = torch.randperm(n, generator=g), 0
    for _ in range(rounds):
        model.train()
        for _ in range(train_steps):
            if pos >= n:
                order, pos = torch.randperm(n, generator=g), 0
            idx = order[pos : pos + batch_size]
            pos += batch_size
            loss = F.cross_entropy(model(perturbed(idx)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        if classwise:
            for _ in range(noise_passes):
                for idx in crafting[torch.randperm(len(crafting), generator=g)].split(batch_size):
                    d = _descend(model, x[idx], y[idx], delta[y[idx]], eps, alpha, noise_steps)
                    counts = torch.bincount(y[idx], minlength=k).to(x.dtype)
                    sums = torch.zeros_like(delta).index_add_(0, y[idx], d)
                    present = counts > 0  # each class of the batch: the mean of its images' noise
                    delta[present] = sums[present] / counts[present].view(-1, *([1] * (x.dim() - 1)))
        else:
            for idx in torch.arange(n).split(batch_size):
                delta[idx] = _descend(model, x[idx], y[idx], delta[idx], eps, alpha, noise_steps)
        with torch.no_grad():
            pred = torch.cat([model(perturbed(i)).argmax(1) for i in crafting.split(1024)])
        record.append(float((pred == y[crafting]).float().mean()))
        if record[-1] >= stop_accuracy:
            break
    full = delta[y] if classwise else delta
    # the image range: a pixel cannot leave [0, 1], so the noise actually applied is clamped too
    full = ((x + full).clamp(0.0, 1.0) - x).detach()
    return Crafted(full, classwise, eps, len(record), record, time.perf_counter() - start)


def squeeze(x: torch.Tensor, bits: int = 1) -> torch.Tensor:
    """Bit-depth reduction (Xu et al. 2018, "Feature Squeezing", §3.1): every pixel rounded to the
    nearest of ``2**bits`` evenly spaced levels in [0, 1], round(x · (2^b − 1)) / (2^b − 1).

    A defence against unlearnable noise when applied to the training *and* the test images: a
    perturbation of less than half a level, 1 / (2 (2^b − 1)), is erased wherever the clean pixel
    lies at a level (digits' pixels are mostly 0 or 1). Costs one pass over the data.

    Args:
        x: images, (N, C, H, W) in [0, 1].
        bits: bits per pixel, >= 1 (1 is black and white).

    Returns:
        The squeezed images, same shape and dtype, values in {0, 1/(2^b − 1), …, 1}.
    """
    x = _validate.finite("x", _validate.images("x", x))
    bits = _validate.positive_int("bits", bits)
    levels = 2**bits - 1
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


def pgd_example(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 3, step_size: float | None = None
) -> torch.Tensor:
    """Error-*maximising* ℓ∞ perturbation by projected gradient ascent (Madry et al. 2018, eq. (2.1)'s
    inner maximisation), started at zero: ``steps`` steps of α · sign ∇_δ ℓ, projected on the ε-ball
    and on [0, 1].

    Args:
        model: the classifier, in whatever mode it is (its mode is left alone).
        x: images (N, C, H, W) in [0, 1]; y: labels (N,).
        eps: the budget, in (0, 1].
        steps: ascent steps, >= 1.
        step_size: α, default 2.5 ε / steps (Madry et al.'s rule of thumb).

    Returns:
        The perturbed images x + δ, (N, C, H, W) in [0, 1], detached.
    """
    eps = _eps(eps)
    steps = _validate.positive_int("steps", steps)
    alpha = 2.5 * eps / steps if step_size is None else _validate.positive_float("step_size", step_size)
    xa = x.detach().clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0.0, 1.0)
    return xa.detach()


def adversarial_fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 3,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    schedule: str = "cosine",
    seed: int = 0,
) -> History:
    """Adversarial training (Madry et al. 2018, eq. (2.1)), the defence Huang et al. 2021 (§5) find
    undoes error-minimising noise: each mini-batch is replaced by its :func:`pgd_example` (which
    *raises* the loss the noise lowered) before the SGD step. Costs about ``steps + 1`` times the
    forward-backward passes of plain training, on the CPU.

    Args:
        model: the classifier, trained in place.
        x: training images, (N, C, H, W) in [0, 1]; y: labels (N,).
        eps: the PGD budget, in (0, 1] (the noise's budget, or a little more).
        steps: PGD steps per batch, >= 1.
        epochs, lr, batch_size, schedule, seed: SGD with momentum 0.9 as in :func:`poisonlab.train.fit`.

    Returns:
        A :class:`~poisonlab.train.History` with the loss and accuracy on the adversarial batches.
    """
    from poisonlab.train import learning_rate

    x, y = _data(x, y)
    eps = _eps(eps)
    steps = _validate.positive_int("steps", steps)
    epochs = _validate.positive_int("epochs", epochs)
    lr = _validate.positive_float("lr", lr)
    batch_size = _validate.positive_int("batch_size", batch_size)
    _validate.choice("schedule", schedule, ("constant", "cosine"))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = _validate.generator(seed)
    n = x.shape[0]
    history, step, total = History(), 0, epochs * math.ceil(n / batch_size)
    start = time.perf_counter()
    for _ in range(epochs):
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(n, generator=g).split(batch_size):
            model.eval()
            xa = pgd_example(model, x[idx], y[idx], eps, steps=steps)
            model.train()
            logits = model(xa)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for group in opt.param_groups:
                group["lr"] = learning_rate(schedule, lr, step, total)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == y[idx]).sum())
        history.loss.append(loss_sum / n)
        history.train_accuracy.append(correct / n)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
