"""Checkers for the exercises of chapter 6, defences that do not need to find the poisons."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import certify, cleanse
from poisonlab.check.core import Case, CheckResult, generator, run, whole_number


def _vote_table(g: torch.Generator, rows: int, k: int, classes: int) -> torch.Tensor:
    """``rows`` vote tables (rows, classes) of ``k`` votes each, most of them for one favourite
    class, as a partition ensemble's votes look."""
    favourite = torch.randint(classes, (rows,), generator=g)
    strength = torch.rand(rows, generator=g) * 0.9 + 0.1  # the share of the votes that go to the favourite
    counts = torch.zeros(rows, classes, dtype=torch.int64)
    for i in range(rows):
        p = torch.full((classes,), float(1 - strength[i]) / (classes - 1))
        p[favourite[i]] = float(strength[i])
        counts[i] = torch.bincount(torch.multinomial(p, k, replacement=True, generator=g), minlength=classes)
    return counts


def _ties(g: torch.Generator, classes: int) -> torch.Tensor:
    """Vote tables where the deterministic tie-break decides: two classes level or one vote apart,
    in both orders of their indices."""
    rows = []
    for lead in (0, 1, 2, 3):
        for first, second in ((0, 1), (1, 0)):
            a, b = sorted(torch.randperm(classes, generator=g)[:2].tolist())
            row = torch.zeros(classes, dtype=torch.int64)
            base = int(torch.randint(5, 30, (1,), generator=g))
            row[(a, b)[first]] = base + lead
            row[(a, b)[second]] = base
            rows.append(row)
    return torch.stack(rows)


def check_certified_radius(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check ``fn(counts (M, C) int64) -> radius (M,) int64``: the number of inserted or removed
    training points each plurality vote provably survives, with ties going to the smallest class
    index (Levine & Feizi 2021, Theorem 1; :func:`poisonlab.certify.certify`). The vote tables
    differ between variants."""
    hint = (
        "one poison changes one part, so one vote: by how much can one vote narrow the gap between "
        "the winner and a rival? And when the two end level, which of them wins?"
    )

    def radius(counts: torch.Tensor) -> torch.Tensor:
        got = fn(counts.clone())
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (len(counts),):
            raise TypeError(f"return a tensor of {len(counts)} radii, one per row of counts")
        if got.is_floating_point() and not bool((got == got.round()).all()):
            raise ValueError("a radius counts training points: return whole numbers")
        return got.to(torch.int64)

    g = generator(31)
    cases = []
    for k, classes, what in (
        (25, 10, "25 parts, 10 classes"),
        (50, 10, "50 parts, 10 classes"),
        (7, 3, "7 parts, 3 classes"),
    ):
        counts = _vote_table(g, 40, k, classes)
        cases.append(Case(what, (counts,), certify.certify(counts)[1], hint=hint))
    ties = _ties(g, 10)
    cases.append(Case("votes level or one apart: the tie-break decides", (ties,), certify.certify(ties)[1], hint=hint))
    unanimous = torch.zeros(2, 4, dtype=torch.int64)
    unanimous[0, 0], unanimous[1, 3] = 100, 100
    cases.append(Case("unanimous votes", (unanimous,), certify.certify(unanimous)[1], hint=hint))
    return run("the certified radius", radius, cases)


def replicated_radius(counts: torch.Tensor, d: int) -> torch.Tensor:
    """The certified radius (M,) of a partition ensemble in which every training point sits in
    ``d`` of the parts: one inserted or removed point changes up to d votes, each narrowing the
    winner's gap to a rival by at most 2, so the radius is ⌊gap / (2d)⌋ with Levine & Feizi's
    tie-aware gap (Theorem 1 for d = 1; :func:`poisonlab.certify.certify`)."""
    prediction, radius = certify.certify(counts)
    counts = counts.to(torch.int64)
    classes = torch.arange(counts.shape[1])
    rival = counts + (classes[None, :] < prediction[:, None]).long()
    rival[torch.arange(len(counts)), prediction] = torch.iinfo(torch.int64).min
    gap = counts.gather(1, prediction[:, None]).squeeze(1) - rival.max(1).values
    return torch.div(gap, 2 * d, rounding_mode="floor").clamp(min=0)


def check_replicated_radius(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check ``fn(counts (M, K) int64, d) -> radius (M,) int64``: the certified radius of a plurality
    vote when each training point is copied into ``d`` parts (:func:`replicated_radius`), with ties
    going to the smallest class index. Vote tables and d differ between variants."""
    hint = (
        "one poison now sits in d parts, so it can move d votes; by how much can one vote narrow "
        "the gap between the winner and a rival? And when the two end level, which of them wins?"
    )

    def radius(counts: torch.Tensor, d: int) -> torch.Tensor:
        got = fn(counts.clone(), d)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (len(counts),):
            raise TypeError(f"return a tensor of {len(counts)} radii, one per row of counts")
        if got.is_floating_point() and not bool((got == got.round()).all()):
            raise ValueError("a radius counts training points: return whole numbers")
        return got.to(torch.int64)

    g = generator(37)
    cases = []
    for k, classes, d, what in (
        (25, 10, 1, "25 parts, 10 classes, one copy (plain DPA)"),
        (50, 10, 3, "50 parts, 10 classes, 3 copies"),
        (60, 3, 2, "60 parts, 3 classes, 2 copies"),
    ):
        counts = _vote_table(g, 40, k, classes)
        cases.append(Case(what, (counts, d), replicated_radius(counts, d), hint=hint))
    ties = _ties(g, 10)
    cases.append(Case("votes level or a few apart, 2 copies", (ties, 2), replicated_radius(ties, 2), hint=hint))
    unanimous = torch.zeros(2, 4, dtype=torch.int64)
    unanimous[0, 0], unanimous[1, 3] = 100, 100
    cases.append(Case("unanimous votes, 4 copies", (unanimous, 4), replicated_radius(unanimous, 4), hint=hint))
    return run("the certified radius with copies", radius, cases)


def cheapest_flip(counts: torch.Tensor, target: int) -> int:
    """The fewest votes an attacker must move (each from a class of its choice to ``target``) to
    make ``target`` the plurality winner of ``counts`` (C,), ties going to the smallest index: the
    smallest m with Σ_{c ≠ t} max(0, n_c + 1[c < t] − n_t − m) ≤ m. Each poison changes one part,
    so this is the cost in poisons of flipping one input to ``target`` in the vote model."""
    counts = counts.to(torch.int64)
    classes = torch.arange(len(counts))
    need = counts + (classes < target).long()
    need[target] = 0
    m = 0
    while int((need - counts[target] - m).clamp(min=0).sum()) > m:
        m += 1
    return m


def check_cheapest_flip(fn: Callable[[torch.Tensor, int], int]) -> CheckResult:
    """Check ``fn(counts (C,) int64, target) -> int``: the fewest poisons that make ``target`` win
    the vote, when each poison moves one base classifier's vote wherever the attacker likes
    (:func:`cheapest_flip`). The vote tables differ between variants."""
    hint = (
        "each poison takes one vote from some class and gives it to the target: from which class "
        "does a vote help most, and does the target win a tie with that class?"
    )

    def cost(counts: torch.Tensor, target: int) -> int:
        return whole_number(fn(counts.clone(), target), "poisons")

    g = generator(37)
    cases = []
    for k, classes in ((50, 10), (25, 10), (100, 10), (9, 3)):
        counts = _vote_table(g, 1, k, classes)[0]
        order = counts.argsort(descending=True, stable=True)
        for target, what in ((int(order[1]), "the runner-up"), (int(order[-1]), "the weakest class")):
            cases.append(Case(f"{k} votes, target: {what}", (counts, target), cheapest_flip(counts, target), hint=hint))
    crowded = torch.tensor([9, 8, 8, 8, 0, 0, 0, 0, 0, 0])
    cases.append(Case("three rivals close behind the winner", (crowded, 3), cheapest_flip(crowded, 3), hint=hint))
    level = torch.tensor([0, 0, 6, 0, 6, 0])
    for target in (2, 4):
        cases.append(
            Case(f"two classes level, target {target}", (level, target), cheapest_flip(level, target), hint=hint)
        )
    return run("the cheapest flip", cost, cases)


def smallest_unflagged_norm(others: torch.Tensor, threshold: float = 2.0) -> float:
    """The smallest ℓ1 norm m ≥ 0 a target class's reversed mask may have while its anomaly index
    (:func:`poisonlab.cleanse.anomaly_index`, computed on all K norms, its own included) stays at
    most ``threshold``, given the other K − 1 classes' norms ``others``. Found by bisection; the
    index of the target falls as its norm grows."""
    others = others.double()

    def index(m: float) -> float:
        return float(cleanse.anomaly_index(torch.cat([others, torch.tensor([m], dtype=torch.float64)]))[-1])

    lo, hi = 0.0, float(others.median())
    if index(lo) <= threshold:
        return 0.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if index(mid) <= threshold else (mid, hi)
    return hi


def check_smallest_unflagged_norm(fn: Callable[[torch.Tensor], float]) -> CheckResult:
    """Check ``fn(others (K − 1,)) -> float``: the smallest reversed-mask norm that the target
    class may have while Neural Cleanse's anomaly index (Wang et al. 2019; median and MAD over all
    K classes, the target's own norm included) stays at most 2 (:func:`smallest_unflagged_norm`).
    The norms differ between variants."""
    hint = (
        "write the target's index as a function of its own norm m, with the median and the MAD taken "
        "over all K norms, m among them; 1.4826 · MAD is the robust standard deviation"
    )

    def norm(others: torch.Tensor) -> float:
        got = fn(others.clone())
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise TypeError("return one number, the smallest ℓ1 norm that is not flagged")
        return float(got)

    g = generator(41)
    cases = []
    for k, centre, what in (
        (10, 60.0, "nine clean classes"),
        (10, 25.0, "nine classes with small masks"),
        (43, 40.0, "42 classes"),
    ):
        others = centre * (1 + 0.35 * torch.randn(k - 1, generator=g, dtype=torch.float64)).clamp(min=0.2)
        cases.append(Case(what, (others,), smallest_unflagged_norm(others), hint=hint))
    spread = torch.tensor([10.0, 11.0, 12.0, 30.0, 31.0, 32.0, 33.0, 80.0, 90.0], dtype=torch.float64)
    cases.append(Case("a few classes already small", (spread,), smallest_unflagged_norm(spread), hint=hint))
    return run("the smallest unflagged trigger", norm, cases, rtol=1e-4, atol=1e-4)
