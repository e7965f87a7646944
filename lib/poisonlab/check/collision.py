"""Checkers for the exercises of chapter 3, clean-label feature collisions."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from poisonlab.check.core import Case, CheckResult, current_variant, generator, run, varied


def _batch(seed: int, n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 5, 5, generator=generator(seed))


def _soft_threshold_step(x_hat: torch.Tensor, base: torch.Tensor, lr: float, beta: float) -> torch.Tensor:
    d = x_hat - base
    return base + d.sign() * (d.abs() - lr * beta).clamp(min=0.0)


def check_proximal_l1(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> CheckResult:
    """Check ``fn(x_hat, base, lr, beta) -> x``: the proximal step of the penalty β‖x − x_b‖₁ with step
    η = ``lr``, argminₓ β‖x − x_b‖₁ + ‖x − x̂‖² / (2η), elementwise soft-thresholding of x̂ − x_b around
    x_b (the ℓ1 counterpart of eq. ch3-prox, after Shafahi et al. 2018, Alg. 1), for tensors of any shape;
    ``ValueError`` naming the value for η ≤ 0 or β < 0."""
    x_hat, base = _batch(0), _batch(1)
    hint = ("the objective is a sum of one-pixel problems; in one dimension, |u| has a kink at 0, so ask "
            "when the best u sits exactly at the kink, and which way the quadratic pulls it otherwise.")
    bad = "raise ValueError, naming the value, when η ≤ 0 or β < 0."
    cases = [Case(f"η = {lr}, β = {beta}", (x_hat, base, lr, beta), _soft_threshold_step(x_hat, base, lr, beta),
                  hint=hint) for lr, beta in ((0.5, 0.2), (0.05, 5.0), (1.0, 0.05))]
    cases += [
        Case("β = 0 leaves the gradient step as it is", (x_hat, base, 0.1, 0.0), x_hat, hint=hint),
        Case("ηβ larger than every pixel's move: the poison is its base", (x_hat, base, 2.0, 1.0), base.clone(),
             hint=hint),
        Case("β = −1 is not a penalty", (x_hat, base, 0.1, -1.0), raises=ValueError, match="-1", hint=bad),
        Case("η = 0 is not a step", (x_hat, base, 0.0, 1.0), raises=ValueError, match="0", hint=bad),
    ]
    return run("ℓ1 proximal step", fn, cases)


#: Each predicted base class must be among this many classes nearest to the target, out of nine.
NEAREST = 3


@lru_cache(maxsize=4)
def class_mean_distances(seed: int = 0, epochs: int = 4) -> torch.Tensor:
    """(10, 10) Euclidean distances between the class means of ``mnist5k``'s training images in the
    256-dimensional representation of the chapter's feature extractor (a two-layer MLP, 256 units per
    layer, trained on all ten digits with ``seed`` for ``epochs`` epochs; the chapter trains 12).
    Entry (a, b) is how far, on average, the representation of a b must travel to reach that of an a."""
    from poisonlab import data
    from poisonlab.experiment import train_and_score
    from poisonlab.train import embed

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    ds = data.load("mnist5k", seed=seed)
    extractor = train_and_score((ds.x_train, ds.y_train), ds.x_test, ds.y_test, model="mlp", hidden=(256, 256),
                                epochs=epochs, lr=0.05, seed=seed).model.eval()
    z = embed(extractor, ds.x_train)
    means = torch.stack([z[ds.y_train == k].mean(0) for k in range(ds.num_classes)])
    return torch.cdist(means, means)


def nearest_classes(distances: torch.Tensor, target: int, k: int = NEAREST) -> list[int]:
    """The ``k`` classes other than ``target`` whose means are nearest to its mean, nearest first."""
    order = distances[target].argsort().tolist()
    return [c for c in order if c != target][:k]


def check_predict_base_class(fn: Callable[[int], int]) -> CheckResult:
    """Check ``fn(target_digit) -> base_digit``: a prediction of the digit whose images are nearest, in the
    feature extractor's representation, to those of ``target_digit`` (the base class from which feature
    collision has the shortest way to go). A prediction passes when it is among the ``NEAREST`` classes
    nearest to the target, measured by :func:`class_mean_distances` on this variant's split and seed."""
    targets = torch.randperm(10, generator=generator(11))[:3].tolist()
    hint = ("a base must travel, in features, from where its class lies to where the target's class lies: "
            "which digits does a network trained on strokes confuse with this one? (Not always the pairs a "
            "person would name.)")

    def prediction(target: int) -> dict:
        base = fn(target)
        if isinstance(base, torch.Tensor) and base.numel() == 1:
            base = base.item()
        if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base <= 9:
            raise ValueError(f"return a digit from 0 to 9, got {base!r}")
        if base == target:
            raise ValueError(f"the base must be of another class than the target {target}, got {base}")
        near = nearest_classes(class_mean_distances(varied(0)), target)
        return {f"among the {NEAREST} nearest classes": base in near}

    return run("predicted base class", prediction, [
        Case(f"target digit {t}", (t,), {f"among the {NEAREST} nearest classes": True}, hint=hint) for t in targets
    ])


def check_clean_label_success(fn: Callable[[torch.Tensor, torch.Tensor, int], float]) -> CheckResult:
    """Check ``fn(flipped (P,) bool, judge_pred (P,) int, base_label) -> float``: the share of
    pairs whose target flipped *and* whose poison the judge still reads as the base class."""
    flipped = torch.tensor([True, True, False, True, False, True])
    judged = torch.tensor([8, 3, 8, 8, 3, 8])
    hint = "a pair counts only when both hold: flipped[i] and judge_pred[i] == base_label; divide by P."
    g, base = generator(5), (8 + current_variant()) % 10
    many_flipped = torch.rand(40, generator=g) < 0.6
    many_judged = torch.where(torch.rand(40, generator=g) < 0.7, torch.tensor(base),
                              torch.randint(0, 10, (40,), generator=g))
    return run("clean-label success rate", fn, [
        Case(f"40 random pairs, base class {base}", (many_flipped, many_judged, base),
             float((many_flipped & (many_judged == base)).float().mean()), hint=hint),
        Case("6 pairs, base class 8", (flipped, judged, 8), 0.5, hint=hint),
        Case("every target flipped, but every poison looks like a 3", (torch.ones(4, dtype=torch.bool),
             torch.full((4,), 3), 8), 0.0, hint=hint),
        Case("nothing flipped", (torch.zeros(3, dtype=torch.bool), torch.full((3,), 8), 8), 0.0, hint=hint),
    ])
