"""Checkers for the exercises of chapter 4, spectral signatures."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import detect
from poisonlab.check.core import Case, CheckResult, generator, run


def _class(seed: int, n: int = 60, f: int = 6, offset: float = 0.0, spike: float = 0.0) -> torch.Tensor:
    g = generator(seed)
    reps = torch.randn(n, f, generator=g, dtype=torch.float64) + offset
    reps[: n // 10, 0] += spike  # a tenth of the class shifted along one axis
    return reps


def check_spectral_score(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check ``fn(reps (n, F)) -> (n,)``: τᵢ = ((Rᵢ − R̄)·v)² for one class, v the top right
    singular vector of the centred matrix (Tran, Li & Madry 2018, Algorithm 1)."""
    hint = ("centre the rows first (subtract the mean of the class), take the SVD, project on the first "
            "right singular vector, square.")

    def reference(reps: torch.Tensor) -> torch.Tensor:
        return detect.spectral_scores(reps, torch.zeros(len(reps), dtype=torch.long))

    cases = [Case(name, (reps,), reference(reps), hint=hint) for name, reps in (
        ("a class with a planted spike", _class(0, spike=6.0)),
        ("no spike, Gaussian noise", _class(1)),
        ("representations far from the origin (centring matters)", _class(2, offset=25.0, spike=4.0)),
    )]
    return run("spectral score", fn, cases, rtol=1e-4, atol=1e-6)


def check_mixture_covariance(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(eps, mean_clean, mean_poison, cov_clean, cov_poison) -> (F, F)``:
    (1 − ε)Σ_D + εΣ_W + ε(1 − ε)ΔΔᵀ with Δ = μ_D − μ_W."""
    g = generator(3)
    f = 4
    a, b = torch.randn(f, f, generator=g, dtype=torch.float64), torch.randn(f, f, generator=g, dtype=torch.float64)
    cov_d, cov_w = a @ a.T, 0.1 * b @ b.T
    mu_d, mu_w = torch.zeros(f, dtype=torch.float64), torch.tensor([3.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    hint = "the mixture's covariance is the weighted within-group covariances plus the covariance of the group means."
    cases = [Case(f"ε = {eps}", (eps, mu_d, mu_w, cov_d, cov_w),
                  detect.mixture_covariance(eps, mu_d, mu_w, cov_d, cov_w), hint=hint) for eps in (0.1, 0.3)]
    cases.append(Case("ε = 0: only clean points", (0.0, mu_d, mu_w, cov_d, cov_w), cov_d, hint=hint))
    # the identity holds exactly for empirical (1/n) covariances of any sample
    x = torch.randn(50, f, generator=g, dtype=torch.float64)
    x[:10] += mu_w
    clean, poison = x[10:], x[:10]

    def cov(r: torch.Tensor) -> torch.Tensor:
        c = r - r.mean(0)
        return c.T @ c / len(r)

    cases.append(Case("matches the covariance of an actual sample (10 of 50 points poisoned)",
                      (0.2, clean.mean(0), poison.mean(0), cov(clean), cov(poison)), cov(x), hint=hint))
    return run("mixture covariance", fn, cases)


def check_separation(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> CheckResult:
    """Check ``fn(reps (n, F), is_poison (n,)) -> float``: ε(1 − ε)‖Δ‖² / max(‖Σ_D‖, ‖Σ_W‖),
    the spike's strength over the groups' largest spread (:func:`poisonlab.detect.separation`)."""
    hint = ("ε is the poisons' share, Δ the difference of the two group means, and each ‖Σ‖ the "
            "largest eigenvalue of a group's covariance (divide by the group's size).")
    cases = []
    for name, seed, spike in (("a loud spike", 4, 8.0), ("a faint spike", 5, 1.0), ("no spike", 6, 0.0)):
        reps = _class(seed, spike=spike)
        is_poison = torch.arange(len(reps)) < len(reps) // 10
        cases.append(Case(name, (reps, is_poison), detect.separation(reps, is_poison), hint=hint))
    return run("separation", fn, cases, rtol=1e-4)
