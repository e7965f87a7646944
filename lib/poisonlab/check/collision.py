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
def trained_extractor(seed: int = 0, epochs: int = 4) -> tuple:
    """``(dataset, extractor)``: ``mnist5k`` split with ``seed``, and a feature extractor like the
    chapter's (a two-layer MLP, 256 units per layer, trained on all ten digits with ``seed`` for
    ``epochs`` epochs; the chapter trains 12), in eval mode. Cached: the checkers of chapter 3 share it."""
    from poisonlab import data
    from poisonlab.experiment import train_and_score

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    ds = data.load("mnist5k", seed=seed)
    extractor = train_and_score(
        (ds.x_train, ds.y_train), ds.x_test, ds.y_test, arch="mlp", hidden=(256, 256), epochs=epochs, lr=0.05, seed=seed
    ).model.eval()
    return ds, extractor


@lru_cache(maxsize=4)
def class_mean_distances(seed: int = 0, epochs: int = 4) -> torch.Tensor:
    """(10, 10) Euclidean distances between the class means of ``mnist5k``'s training images in the
    256-dimensional representation of :func:`trained_extractor` (``seed``, ``epochs``).
    Entry (a, b) is ‖μ_a − μ_b‖, the distance between the mean representations of the a's and the b's:
    how far a typical b must travel to reach a typical a (not the mean distance between the points of
    the two classes, which also counts each class's spread)."""
    from poisonlab.train import embed

    ds, extractor = trained_extractor(seed, epochs)
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


#: The check's own white-box experiment (the chapter's section 3 at a smaller scale): target digit,
#: base digit, fine-tuning images, targets, poisons per target, ℓ∞ budget, Bullseye's Adam steps and
#: step size, the heads' full-batch steps.
EASE_TARGET, EASE_BASE, EASE_FINETUNE, EASE_TARGETS, EASE_K = 3, 8, 500, 100, 5
EASE_EPS, EASE_STEPS, EASE_LR, EASE_HEAD_STEPS = 0.15, 200, 0.01, 300

#: The epochs of the check's extractor (:func:`trained_extractor`; the chapter's trains 12).
EASE_EPOCHS = 4

#: A predictor passes when its concordance index with the measured wins reaches this value.
EASE_PASS = 0.7


@lru_cache(maxsize=4)
def ease_evidence(seed: int = 0) -> dict[str, torch.Tensor]:
    """The measurements the success-predictor exercise is scored on: Bullseye Polytope against
    ``EASE_TARGETS`` 3s, crafted and scored as in the chapter's white-box transfer setting, with the
    extractor of :func:`trained_extractor` (``seed``, ``EASE_EPOCHS`` epochs) and without a judge (a win is a flip).

    The fine-tuning set is ``EASE_FINETUNE`` 3s and 8s drawn with ``seed``; the targets are the test
    3s, then training 3s outside the fine-tuning set, that the clean head reads as 3s; each gets the
    ``EASE_K`` 8s outside the fine-tuning set nearest it in φ as bases; ``collision.bullseye_polytope``
    crafts at ε = ``EASE_EPS`` and ``collision.fine_tune_heads`` trains one head per target.

    Returns:
        ``{"z_target" (P, F), "z_bases" (P, K, F), "w" (F,), "c" (0-d), "won" (P,) bool}``: the
        targets' and their bases' representations, the clean head's logit difference (8 minus 3)
        w·z + c, positive where it reads an 8, and whether each target flipped.
    """
    from poisonlab import collision
    from poisonlab.train import embed

    ds, extractor = trained_extractor(seed, EASE_EPOCHS)
    task = ds.pair(EASE_TARGET, EASE_BASE)
    order = torch.randperm(len(task.y_train), generator=torch.Generator().manual_seed(seed))
    ft, outside = order[:EASE_FINETUNE], torch.ones(len(task.y_train), dtype=torch.bool)
    outside[ft] = False
    pool = torch.nonzero(outside & (task.y_train == 1)).flatten()
    x_ft, y_ft = task.x_train[ft], task.y_train[ft]
    candidates = torch.cat([task.x_test[task.y_test == 0], task.x_train[outside & (task.y_train == 0)]])
    z_ft, z_candidates = embed(extractor, x_ft), embed(extractor, candidates)
    none = z_ft.new_zeros(1, 0, z_ft.shape[1])
    w0, b0 = collision.fine_tune_heads(
        z_ft, y_ft, none, y_ft.new_zeros(1, 0), 2, steps=EASE_HEAD_STEPS, weight_decay=0.0
    )
    read_as_target = torch.nonzero(collision.head_predict(w0, b0, z_candidates)[0] == 0).flatten()
    chosen = read_as_target[:EASE_TARGETS]
    targets, z_target = candidates[chosen], z_candidates[chosen]
    nearest = torch.cdist(z_target, embed(extractor, task.x_train[pool])).topk(EASE_K, dim=1, largest=False).indices
    bases = task.x_train[pool[nearest]]
    poisons = collision.bullseye_polytope(
        extractor.features, targets, bases, eps=EASE_EPS, steps=EASE_STEPS, lr=EASE_LR
    )
    p = len(targets)
    z_poisons = embed(extractor, poisons.flatten(0, 1)).view(p, EASE_K, -1)
    w, b = collision.fine_tune_heads(
        z_ft, y_ft, z_poisons, torch.ones(p, EASE_K, dtype=torch.long), 2, steps=EASE_HEAD_STEPS, weight_decay=0.0
    )
    won = collision.head_predict(w, b, z_target, paired=True) == 1
    return {
        "z_target": z_target,
        "z_bases": embed(extractor, bases.flatten(0, 1)).view(p, EASE_K, -1),
        "w": w0[0, 1] - w0[0, 0],
        "c": b0[0, 1] - b0[0, 0],
        "won": won,
    }


def agreement_line(agreement: dict[str, float]) -> str:
    """One sentence of a :func:`~poisonlab.collision.rank_agreement` result: ρ, C and the counts."""
    rho = agreement["spearman"]
    rho_text = "undefined (every score is the same)" if math.isnan(rho) else f"{rho:+.2f}"
    return (
        f"Spearman ρ = {rho_text}, concordance C = {agreement['c_index']:.2f}: of "
        f"{agreement['comparisons']:.0f} pairs of targets with different outcomes, your score puts the easier one "
        f"higher in {agreement['agree']:.0f}, lower in {agreement['disagree']:.0f}, and ties "
        f"{agreement['tied']:.0f}"
    )


def check_success_predictor(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> CheckResult:
    """Check ``fn(z_target (P, F), z_bases (P, K, F), w (F,), c (0-d)) -> scores (P,)``: a predictor
    of which targets a clean-label attack wins, higher for a target predicted easier, from each
    target's own representation φ(x⋆), those of its K bases and the clean head's logit difference
    w·z + c (positive where the head reads the base class). It passes when its concordance index
    (:func:`poisonlab.collision.rank_agreement`, the area under the ROC curve for won / lost) with the
    wins measured by :func:`ease_evidence` (this variant's seed) reaches ``EASE_PASS``. The report
    gives Spearman's ρ and the pairs of targets the score orders as measured, the other way, or ties."""
    from poisonlab.collision import rank_agreement

    evidence = ease_evidence(varied(0))
    label = f"concordance with the measured wins ≥ {EASE_PASS:g}"
    found: dict[str, float] = {}
    hint = (
        "Bullseye moves the poisons' centre in φ and the new head then has to read the target as they are "
        "read: what about a target, in φ or under the clean head, says how far it has to be moved?"
    )

    def scored(z_target: torch.Tensor, z_bases: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> dict:
        scores = fn(z_target, z_bases, w, c)
        p = len(z_target)
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (p,) or not scores.is_floating_point():
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise TypeError(f"return a floating-point tensor of {p} scores, one per target, got {shape}")
        if not bool(torch.isfinite(scores).all()):
            raise ValueError("every score must be a finite number")
        found.update(rank_agreement(scores.detach(), evidence["won"]))
        return {label: found["c_index"] >= EASE_PASS}

    args = (evidence["z_target"], evidence["z_bases"], evidence["w"], evidence["c"])
    won = int(evidence["won"].sum())
    what = f"{len(evidence['won'])} targets, {won} of them won at ε = {EASE_EPS:g}"
    case = Case(what, args, {label: True}, hint=hint)
    result = run("a predictor of which targets fall", scored, [case])
    if found:
        result.lines.append(f"   {agreement_line(found)}.")
    return result
