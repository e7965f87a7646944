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
    hint = ("the gap Σᵢ fᵢ (qᵢ − pᵢ) is linear in f: each fᵢ in [0, 1] should be as large as possible "
            "where qᵢ > pᵢ and as small as possible where qᵢ < pᵢ.")

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


def check_threshold_shift(fn: Callable[[int, int, float, float], float]) -> CheckResult:
    """Check ``fn(n, d, eps, sigma) -> float``: the shift ‖Δ‖ at which the spike strength
    θ = ε(1 − ε)‖Δ‖²/σ² reaches the BBP threshold √(d/n)."""
    hint = "set ε(1 − ε)‖Δ‖²/σ² equal to √(d/n) and solve for ‖Δ‖."
    cases = [Case(f"n = {n}, d = {d}, ε = {eps}, σ = {sigma}", (n, d, eps, sigma),
                  spiked.shift_for(spiked.bbp_threshold(d / n), eps, sigma), hint=hint)
             for n, d, eps, sigma in ((2000, 500, 0.1, 1.0), (5000, 5000, 0.02, 1.0), (400, 64, 0.05, 2.5))]
    return run("the threshold shift", fn, cases, rtol=1e-6)


def check_place_poisons(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(n_poison, d, direction (d,), eps, seed) -> (n_poison, d)``: poisons that move the
    mean of clean N(0, I_d) data by at least 0.8 · ε t_ε along ``direction`` (t_ε = √(2 log 1/ε))
    while the spectral filter (:func:`poisonlab.robust.filter_mask`) keeps at least 90% of them."""
    hint = ("draw the poisons like clean points, then set their coordinate along `direction` to the clean "
            "tail's own quantile √(2 log(1/ε)): far enough to move the mean, no farther than the tail.")

    def outcome(n_poison: int, d: int, eps: float, seed: int) -> dict:
        g = generator(seed)
        u = torch.randn(d, generator=g, dtype=torch.float64)
        u /= u.norm()
        n_clean = round(n_poison * (1 - eps) / eps)
        clean = torch.randn(n_clean, d, generator=g, dtype=torch.float64)
        poisons = fn(n_poison, d, u.clone(), eps, seed)
        if not isinstance(poisons, torch.Tensor) or tuple(poisons.shape) != (n_poison, d):
            raise TypeError(f"return a tensor of shape ({n_poison}, {d})")
        x = torch.cat([clean, poisons.double()])
        keep = robust.filter_mask(x, eps)
        kept = keep[n_clean:]
        # the move the poisons cause, measured from the clean sample's own mean (not its noise)
        shift = float(x[keep].mean(0) @ u) - float(clean.mean(0) @ u)
        wanted = 0.8 * eps * robust.tail_distance(eps)
        return {"poisons kept by the filter ≥ 90%": float(kept.double().mean()) >= 0.9,
                "mean moved along the direction ≥ 0.8 ε t_ε": shift >= wanted,
                "finite": bool(torch.isfinite(poisons).all())}

    ok = {"poisons kept by the filter ≥ 90%": True, "mean moved along the direction ≥ 0.8 ε t_ε": True, "finite": True}
    cases = [Case(f"{n} poisons in d = {d}, ε = {eps}", (n, d, eps, seed), ok, hint=hint)
             for n, d, eps, seed in ((500, 20, 0.1, 0), (200, 50, 0.05, 1))]
    return run("poisons the filter keeps", outcome, cases)
