"""Checkers for the exercises of chapter 3, clean-label feature collisions."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

from poisonlab.check.core import Case, CheckResult, current_variant, generator, run, varied
from poisonlab.collision import success_under_budget


def _batch(seed: int, n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 5, 5, generator=generator(seed))


def _soft_threshold_step(x_hat: torch.Tensor, base: torch.Tensor, lr: float, beta: float) -> torch.Tensor:
    d = x_hat - base
    return base + d.sign() * (d.abs() - lr * beta).clamp(min=0.0)


def check_proximal_l1(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> CheckResult:
    """Check ``fn(x_hat, base, step, beta) -> x``: the proximal step of the penalty β‖x − x_b‖₁ with step
    η = ``step``, argminₓ β‖x − x_b‖₁ + ‖x − x̂‖² / (2η), elementwise soft-thresholding of x̂ − x_b around
    x_b (the ℓ1 counterpart of eq. ch3-prox, after Shafahi et al. 2018, Alg. 1), for tensors of any shape;
    ``ValueError`` naming the value for η ≤ 0 or β < 0."""
    x_hat, base = _batch(0), _batch(1)
    hint = (
        "the objective is a sum of one-pixel problems; in one dimension, |u| has a kink at 0, so ask "
        "when the best u sits exactly at the kink, and which way the quadratic pulls it otherwise."
    )
    bad = "raise ValueError, naming the value, when η ≤ 0 or β < 0."
    cases = [
        Case(f"η = {lr}, β = {beta}", (x_hat, base, lr, beta), _soft_threshold_step(x_hat, base, lr, beta), hint=hint)
        for lr, beta in ((0.5, 0.2), (0.05, 5.0), (1.0, 0.05))
    ]
    cases += [
        Case("β = 0 leaves the gradient step as it is", (x_hat, base, 0.1, 0.0), x_hat, hint=hint),
        Case(
            "ηβ larger than every pixel's move: the poison is its base",
            (x_hat, base, 2.0, 1.0),
            base.clone(),
            hint=hint,
        ),
        Case("β = −1 is not a penalty", (x_hat, base, 0.1, -1.0), raises=ValueError, match="-1", hint=bad),
        # the value itself, not the "0" of a message's "step > 0" or "beta >= 0"
        Case(
            "η = 0 is not a step",
            (x_hat, base, 0.0, 1.0),
            raises=ValueError,
            match=r"0\.0|(?:(?<![<>≤≥])=|got|:|is)\s*0\b",
            hint=bad,
        ),
        Case("η = −0.1 is not a step", (x_hat, base, -0.1, 1.0), raises=ValueError, match=r"[-−]0?\.1", hint=bad),
    ]
    return run("ℓ1 proximal step", fn, cases)


#: A predicted base class passes when its distance to the target is at most (1 + ``SLACK``) times
#: that of the ``NEAREST``-th nearest class, out of nine: ranks 2 to 5 are often near-ties.
NEAREST, SLACK = 3, 0.10

#: The extractor seeds (before :func:`~poisonlab.check.core.varied`) the check averages over.
DISTANCE_SEEDS = (0, 1)


@lru_cache(maxsize=4)
def class_mean_distances(seed: int = 0, epochs: int = 4) -> torch.Tensor:
    """(10, 10) Euclidean distances between the class means of ``mnist5k``'s training images in the
    256-dimensional representation of the chapter's feature extractor (a two-layer MLP, 256 units per
    layer, trained on all ten digits with ``seed`` for ``epochs`` epochs; the chapter trains 12).
    Entry (a, b) is ‖μ_a − μ_b‖, the distance between the mean representations of the a's and the b's:
    how far a typical b must travel to reach a typical a (not the mean distance between the points of
    the two classes, which also counts each class's spread)."""
    from poisonlab import data
    from poisonlab.experiment import train_and_score
    from poisonlab.train import embed

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    ds = data.load("mnist5k", seed=seed)
    extractor = train_and_score(
        (ds.x_train, ds.y_train), ds.x_test, ds.y_test, arch="mlp", hidden=(256, 256), epochs=epochs, lr=0.05, seed=seed
    ).model.eval()
    z = embed(extractor, ds.x_train)
    means = torch.stack([z[ds.y_train == k].mean(0) for k in range(ds.num_classes)])
    return torch.cdist(means, means)


def nearest_classes(distances: torch.Tensor, target: int, k: int = NEAREST) -> list[int]:
    """The ``k`` classes other than ``target`` whose means are nearest to its mean, nearest first."""
    order = distances[target].argsort().tolist()
    return [c for c in order if c != target][:k]


def accepted_classes(distances: torch.Tensor, target: int, k: int = NEAREST, slack: float = SLACK) -> list[int]:
    """The classes other than ``target`` whose distance to it is at most (1 + ``slack``) times that of
    the ``k``-th nearest, nearest first: the ``k`` nearest and any near-tie with them."""
    if not 1 <= k <= distances.shape[0] - 1 or slack < 0:
        raise ValueError(f"need 1 <= k <= {distances.shape[0] - 1} and slack >= 0, got k={k}, slack={slack}")
    order = [c for c in distances[target].argsort().tolist() if c != target]
    limit = (1 + slack) * float(distances[target, order[k - 1]])
    return [c for c in order if float(distances[target, c]) <= limit]


def check_predict_base_class(fn: Callable[[int], int]) -> CheckResult:
    """Check ``fn(target_digit) -> base_digit``: a prediction of the digit whose images are nearest, in the
    feature extractor's representation, to those of ``target_digit`` (the base class from which feature
    collision has the shortest way to go). A prediction passes when it is among the
    :func:`accepted_classes` (the ``NEAREST`` nearest and their near-ties) of the class-mean distances of
    :func:`class_mean_distances`, averaged over two extractors (seeds ``DISTANCE_SEEDS`` of this variant)."""
    targets = torch.randperm(10, generator=generator(11))[:3].tolist()
    hint = (
        "a base must travel, in features, from where its class lies to where the target's class lies: "
        "which digits does a network trained on strokes confuse with this one? (Not always the pairs a "
        "person would name.)"
    )
    label = f"among the {NEAREST} nearest classes or within {SLACK:.0%} of the {NEAREST}rd"

    def prediction(target: int) -> dict:
        base = fn(target)
        if isinstance(base, torch.Tensor) and base.numel() == 1:
            base = base.item()
        if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base <= 9:
            raise ValueError(f"return a digit from 0 to 9, got {base!r}")
        if base == target:
            raise ValueError(f"the base must be of another class than the target {target}, got {base}")
        distances = torch.stack([class_mean_distances(varied(s)) for s in DISTANCE_SEEDS]).mean(0)
        return {label: base in accepted_classes(distances, target)}

    return run(
        "predicted base class", prediction, [Case(f"target digit {t}", (t,), {label: True}, hint=hint) for t in targets]
    )


def _success_under_budget(
    flipped: torch.Tensor, judged: torch.Tensor, l2: torch.Tensor, base: int, tau: float
) -> torch.Tensor:
    rate, mean_l2 = success_under_budget(flipped, judged, l2, base, tau)
    # -1 stands for "no win to measure"
    return torch.tensor([rate, -1.0 if math.isnan(mean_l2) else mean_l2], dtype=torch.float64)


def check_clean_label_success(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, float], tuple[float, float]],
) -> CheckResult:
    """Check ``fn(flipped (P,) bool, judge_pred (P,) int, l2 (P,) float, base_label, tau) ->
    (rate, mean_l2)``: the share of the P pairs that an inspector would accept and the attack won (the
    target flipped, the judge reads the poison as ``base_label`` and its L2 distance to its base is at
    most the pixel budget τ), and the mean L2 of those successful poisons (``nan`` when there is none)."""
    idea = (
        "which pairs would an inspector who looks at the poison accept, and how many of those did the "
        "attack win? Average the distance over the wins only."
    )
    g, v = generator(5), current_variant()
    base, tau = (8 + v) % 10, 2.0 + 0.25 * (v % 5)
    many_flipped = torch.rand(40, generator=g) < 0.6
    many_judged = torch.where(
        torch.rand(40, generator=g) < 0.7, torch.tensor(base), torch.randint(0, 10, (40,), generator=g)
    )
    many_l2 = 0.5 + 4.0 * torch.rand(40, generator=g)
    few = (
        torch.tensor([True, True, False, True, True, True]),
        torch.tensor([8, 3, 8, 8, 8, 8]),
        torch.tensor([1.0, 1.0, 1.0, 3.0, 2.0, 0.5]),
    )

    def measured(*args) -> torch.Tensor:
        out = fn(*args)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(f"return a pair (success rate, mean L2 of the successful poisons), got {out!r}")
        rate, mean_l2 = (float(value) for value in out)
        return torch.tensor([rate, -1.0 if math.isnan(mean_l2) else mean_l2], dtype=torch.float64)

    cases = [
        Case(
            f"40 random pairs, base class {base}, τ = {tau:g}",
            (many_flipped, many_judged, many_l2, base, tau),
            _success_under_budget(many_flipped, many_judged, many_l2, base, tau),
            hint=idea,
        ),
        Case(
            "6 pairs, base class 8, τ = 2 (one poison exactly at τ)",
            (*few, 8, 2.0),
            _success_under_budget(*few, 8, 2.0),
            hint=idea,
        ),
        Case(
            "no pixel budget (τ = ∞)",
            (many_flipped, many_judged, many_l2, base, math.inf),
            _success_under_budget(many_flipped, many_judged, many_l2, base, math.inf),
            hint=idea,
        ),
        Case(
            "every target flipped, but every poison is too far from its base",
            (torch.ones(4, dtype=torch.bool), torch.full((4,), 8), torch.full((4,), 5.0), 8, 2.0),
            _success_under_budget(torch.ones(4, dtype=torch.bool), torch.full((4,), 8), torch.full((4,), 5.0), 8, 2.0),
            hint="with no win there is no successful poison to measure: its mean distance is nan.",
        ),
    ]
    return run("clean-label success under a pixel budget", measured, cases)


def _distance_matrix(seed: int) -> torch.Tensor:
    """A (10, 10) symmetric matrix of distinct positive distances with a zero diagonal, like the
    class-mean distances of :func:`class_mean_distances`."""
    upper = (1.0 + 9.0 * torch.rand(10, 10, generator=generator(seed))).triu(1)
    return upper + upper.T


def check_rank_pairs(fn: Callable[[torch.Tensor, list[tuple[int, int]]], list[tuple[int, int]]]) -> CheckResult:
    """Check ``fn(distances (10, 10), pairs) -> pairs``: the (target, base) digit pairs ordered from the one
    predicted easiest for a clean-label attack to the one predicted hardest, by the distance between
    the two classes' mean representations (``distances[target, base]``), nearest first: the
    shorter the way a base has to go, the more of it a poison covers within the budget (the idea
    behind choosing bases near the target, Aghakhani et al. 2021). The pairs come back as given, as
    tuples; the distances are not modified."""
    hint = (
        "a poison starts at its base's class and must reach its target's class: which pair has the "
        "shortest way to go, and which entry of the matrix measures it?"
    )
    g = generator(17)
    distances = [_distance_matrix(varied(seed)) for seed in (3, 4)]
    all_pairs = [(t, b) for t in range(10) for b in range(10) if t != b]
    cases = []
    for i, (count, dist) in enumerate(((4, distances[0]), (7, distances[1]), (3, distances[1]))):
        picked = [all_pairs[j] for j in torch.randperm(len(all_pairs), generator=g)[:count].tolist()]
        expected = [list(p) for p in sorted(picked, key=lambda p: float(dist[p[0], p[1]]))]
        cases.append(Case(f"{count} pairs, distance matrix {1 + min(i, 1)}", (dist, picked), expected, hint=hint))

    def ranked(dist: torch.Tensor, pairs: list[tuple[int, int]]) -> list[list[int]]:
        out = fn(dist, [tuple(p) for p in pairs])
        if not isinstance(out, (list, tuple)) or len(out) != len(pairs):
            raise ValueError(f"return the {len(pairs)} pairs in a new order, got {out!r}")
        out = [[int(v) for v in p] for p in out]
        if sorted(map(tuple, out)) != sorted(pairs):
            raise ValueError(f"return the same pairs as given, reordered, got {out!r}")
        return out

    return run("pairs ranked by predicted ease", ranked, cases)
