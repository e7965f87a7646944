"""Checkers for the exercises of chapter 5, the limits of detection."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import robust, spiked
from poisonlab.check.core import Case, CheckResult, generator, run


def _distribution(seed: int, k: int) -> torch.Tensor:
    g = generator(seed)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.05
    return w / w.sum()


def check_best_detector(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check ``fn(p (k,), q (k,)) -> f (k,)``: the flag probabilities in [0, 1] of a detector on a
    finite space that maximises Pr_Q[flag] − Pr_P[flag] = Σᵢ fᵢ (qᵢ − pᵢ); the maximum is TV(P, Q)."""
    hint = (
        "the gap is linear in each fᵢ separately, and each fᵢ may be chosen on its own within [0, 1]: "
        "what does that say about where the best value of each lies?"
    )

    def gap(p: torch.Tensor, q: torch.Tensor) -> float:
        f = fn(p, q)
        if not isinstance(f, torch.Tensor) or f.shape != p.shape:
            raise TypeError(f"return a tensor of flag probabilities shaped {tuple(p.shape)}")
        if bool((f < 0).any()) or bool((f > 1).any()):
            raise ValueError("flag probabilities must lie in [0, 1]")
        return float((f.double() * (q - p)).sum())

    cases = []
    for seed, k, what in ((0, 2, "two outcomes"), (1, 6, "six outcomes"), (2, 50, "fifty outcomes")):
        p, q = _distribution(seed, k), _distribution(seed + 100, k)
        cases.append(Case(f"{what}: the gap of your detector", (p, q), 0.5 * float((p - q).abs().sum()), hint=hint))
    same = _distribution(7, 5)
    cases.append(Case("P = Q: no detector beats chance", (same, same.clone()), 0.0, hint=hint))
    return run("the best detector", gap, cases, rtol=1e-9, atol=1e-9)


#: The shifts at which the overlap exercise asks for a prediction, in units of the threshold shift.
PREDICTION_FACTORS = (0.7, 2.0)

#: How far a prediction may lie from the measured squared overlap (mean of two samples).
PREDICTION_TOLERANCE = 0.07


def measured_overlaps(n: int, d: int, eps: float, *, seeds: tuple[int, ...] = (0, 1)) -> torch.Tensor:
    """The squared overlap ⟨v̂, Δ/‖Δ‖⟩² of the top eigenvector with the spike, measured (mean over
    ``seeds``) at the shifts ``PREDICTION_FACTORS`` × the threshold shift, for n points in d
    dimensions with a poison share ``eps`` and σ = 1: a float64 tensor of shape (2,). The threshold
    shift is the ‖Δ‖ at which θ = ε(1 − ε)‖Δ‖² reaches √(d/n) (eq. ch5-theta)."""
    base = spiked.shift_for(spiked.bbp_threshold(d / n), eps)
    values = []
    for factor in PREDICTION_FACTORS:
        runs = [
            spiked.top_overlap(c.x, c.direction)
            for c in (spiked.sample(n, d, eps, factor * base, seed=s) for s in seeds)
        ]
        values.append(sum(runs) / len(runs))
    return torch.tensor(values, dtype=torch.float64)


def check_predict_overlaps(fn: Callable[[int, int, float], tuple[float, float]]) -> CheckResult:
    """Check ``fn(n, d, eps) -> (below, above)``: predictions, in [0, 1], of the squared overlap of
    the top eigenvector with the spike at 0.7× and at 2× the threshold shift. Each is compared with
    the overlap measured on samples of that size (:func:`measured_overlaps`), within
    ``PREDICTION_TOLERANCE``; the cases (n, d, ε) differ between variants."""
    hint = (
        "express both shifts as a spike strength θ in units of the threshold √γ: how does θ "
        "grow when the shift doubles? Then ask which side of the transition each one is on."
    )

    def prediction(n: int, d: int, eps: float) -> torch.Tensor:
        got = fn(n, d, eps)
        try:
            values = [float(v) for v in got]
        except TypeError:
            raise TypeError("return two numbers: (overlap at 0.7×, overlap at 2×)") from None
        if len(values) != 2:
            raise TypeError(f"return two numbers: (overlap at 0.7×, overlap at 2×), got {len(values)}")
        if not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError("a squared overlap lies in [0, 1]")
        return torch.tensor(values, dtype=torch.float64)

    g = generator(11)
    cases = []
    for n, gammas in ((1000, (0.1, 0.2, 0.3)), (1500, (0.15, 0.25, 0.4))):
        gamma = gammas[int(torch.randint(len(gammas), (1,), generator=g))]
        eps = (0.03, 0.05, 0.1)[int(torch.randint(3, (1,), generator=g))]
        d = round(gamma * n)
        cases.append(Case(f"n = {n}, d = {d}, ε = {eps}", (n, d, eps), measured_overlaps(n, d, eps), hint=hint))
    return run("the predicted overlaps", prediction, cases, rtol=0.0, atol=PREDICTION_TOLERANCE)


#: The move along the direction the placement exercise asks for, in units of ε t_ε.
PLACEMENT_GOAL = 1.25


def check_place_poisons(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(n_poison, d, direction (d,), eps, seed) -> (n_poison, d)``: poisons that, added
    to clean N(0, I_d) data as a share ``eps``, move the mean that the spectral filter
    (:func:`poisonlab.robust.filter_mask`) returns by at least ``PLACEMENT_GOAL`` · ε t_ε along
    ``direction`` (t_ε = √(2 log 1/ε), :func:`poisonlab.robust.tail_distance`), with at least 90% of
    them kept. Poisons at t_ε itself move it by about ε t_ε, not enough. A solution that stays a
    fixed share under the filter's whole stopping level (rather than under its excess over 1) goes
    negative, hence NaN, once n ≫ d and ε is small; the reference keeps its margin on the
    excess. The cases (d, ε, the clean points) differ between variants."""
    hint = (
        "the filter keeps everything as long as the top eigenvalue of the covariance stays under "
        "its stopping level (robust.spectral_threshold). How much variance along `direction` "
        "may the poisons add before they cross it, and how far out does that let them sit?"
    )

    def outcome(n_poison: int, d: int, eps: float, seed: int) -> dict:
        g = generator(seed)
        u = torch.randn(d, generator=g, dtype=torch.float64)
        u /= u.norm()
        n_clean = round(n_poison * (1 - eps) / eps)
        clean = torch.randn(n_clean, d, generator=g, dtype=torch.float64)
        poisons = fn(n_poison, d, u.clone(), eps, seed)
        if not isinstance(poisons, torch.Tensor) or tuple(poisons.shape) != (n_poison, d):
            raise TypeError(f"return a tensor of shape ({n_poison}, {d})")
        if not bool(torch.isfinite(poisons).all()):
            raise ValueError("the poisons must be finite")
        x = torch.cat([clean, poisons.double()])
        keep = robust.filter_mask(x, eps)
        kept = keep[n_clean:]
        # the move the poisons cause, measured from the clean sample's own mean (not its noise)
        shift = float(x[keep].mean(0) @ u) - float(clean.mean(0) @ u)
        wanted = PLACEMENT_GOAL * eps * robust.tail_distance(eps)
        return {
            "poisons kept by the filter ≥ 90%": float(kept.double().mean()) >= 0.9,
            f"mean moved along the direction ≥ {PLACEMENT_GOAL:g} ε t_ε": shift >= wanted,
        }

    ok = {"poisons kept by the filter ≥ 90%": True, f"mean moved along the direction ≥ {PLACEMENT_GOAL:g} ε t_ε": True}
    g = generator(23)
    cases = []
    for n, seed, dims, shares in ((500, 0, (20, 30), (0.08, 0.1, 0.15)), (200, 1, (40, 50), (0.05, 0.1, 0.2))):
        d = dims[int(torch.randint(len(dims), (1,), generator=g))]
        eps = shares[int(torch.randint(len(shares), (1,), generator=g))]
        cases.append(Case(f"{n} poisons in d = {d}, ε = {eps}", (n, d, eps, seed), ok, hint=hint))
    return run("poisons the filter keeps", outcome, cases)
