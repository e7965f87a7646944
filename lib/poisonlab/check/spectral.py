"""Checkers for the exercises of chapter 4, spectral signatures."""

from __future__ import annotations

import math
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
    hint = (
        "the score measures how far each point deviates from the rest of its class along the "
        "direction in which the class deviates most; which reference point makes 'deviates' true?"
    )

    def reference(reps: torch.Tensor) -> torch.Tensor:
        return detect.spectral_scores(reps, torch.zeros(len(reps), dtype=torch.long))

    cases = [
        Case(name, (reps,), reference(reps), hint=hint)
        for name, reps in (
            ("a class with a planted spike", _class(0, spike=6.0)),
            ("no spike, Gaussian noise", _class(1)),
            ("representations far from the origin (centring matters)", _class(2, offset=25.0, spike=4.0)),
        )
    ]
    return run("spectral score", fn, cases, rtol=1e-4, atol=1e-6)


def _mixture(
    seed: int, n: int, f: int, eps: float, shift: float, hidden: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A class of n Gaussian representations (F dims) with a share ε of poisons shifted by
    ``shift`` along a random direction, and a genuine direction of spread ``hidden`` (std) at a
    random angle to it. Returns (reps (n, F), is_poison (n,), mean shift Δ = μ_D − μ_W (F,),
    genuine covariance (F, F))."""
    g = generator(seed)
    q, _ = torch.linalg.qr(torch.randn(f, f, generator=g, dtype=torch.float64))
    spread = torch.ones(f, dtype=torch.float64)
    spread[0] = hidden
    cov = q @ torch.diag(spread**2) @ q.T
    u = torch.randn(f, generator=g, dtype=torch.float64)
    u = 0.6 * q[:, 0] + 0.8 * u / u.norm()  # neither along the genuine spread nor across it
    u = u / u.norm()
    n_p = max(2, round(eps * n))
    x = torch.randn(n, f, generator=g, dtype=torch.float64) @ (q @ torch.diag(spread)).T
    is_poison = torch.arange(n) < n_p
    x[is_poison] -= shift * u
    return x, is_poison, shift * u, cov


def check_mean_scores(fn: Callable[[float, float, float], tuple[float, float]]) -> CheckResult:
    """Check ``fn(eps, delta_norm, cos_theta) -> (poison, clean)``: the score τ of eq.
    (ch4-score) of the poisons' mean and of the genuine images' mean, ((μ_W − μ)·v)² and
    ((μ_D − μ)·v)², for a class whose poisons make up ε, with ‖Δ‖ = ‖μ_D − μ_W‖ and cos θ the
    cosine between v and Δ. The answer is exact: μ = (1 − ε)μ_D + εμ_W."""
    hint = (
        "write the class mean as the weighted mean of the two group means, then ask how far each "
        "group's mean lies from it, first as a vector and then along v."
    )
    g = generator(21)
    cases = []
    for what in ("a few poisons", "a quarter of the class", "half the class"):
        eps = {
            "a few poisons": 0.02 + 0.08 * float(torch.rand(1, generator=g)),
            "a quarter of the class": 0.25,
            "half the class": 0.5,
        }[what]
        norm = 1.0 + 9.0 * float(torch.rand(1, generator=g))
        cos = 0.2 + 0.8 * float(torch.rand(1, generator=g))
        expected = torch.tensor([((1 - eps) * norm * cos) ** 2, (eps * norm * cos) ** 2], dtype=torch.float64)
        cases.append(
            Case(f"{what}: ε = {eps:.3f}, ‖Δ‖ = {norm:.2f}, cos θ = {cos:.2f}", (eps, norm, cos), expected, hint=hint)
        )
    # the same numbers measured on a sample, along the sample's own top direction
    x, is_poison, _, _ = _mixture(22, 400, 6, 0.1, 5.0, 2.0)
    eps = float(is_poison.double().mean())
    delta = x[~is_poison].mean(0) - x[is_poison].mean(0)
    v = detect.top_direction(x - x.mean(0))
    cos = float((v @ delta).abs() / delta.norm())
    measured = torch.stack(
        [((x[is_poison].mean(0) - x.mean(0)) @ v) ** 2, ((x[~is_poison].mean(0) - x.mean(0)) @ v) ** 2]
    )
    cases.append(
        Case(
            f"a sample of 400 points (ε = {eps:.2f}, ‖Δ‖ = {float(delta.norm()):.2f}, "
            f"cos θ = {cos:.2f}): the scores of its two group means",
            (eps, float(delta.norm()), cos),
            measured,
            hint=hint,
        )
    )

    def pair(eps: float, norm: float, cos: float) -> torch.Tensor:
        got = fn(eps, norm, cos)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise TypeError("return a pair (score of the poisons' mean, score of the genuine images' mean)")
        return torch.tensor([float(v) for v in got], dtype=torch.float64)

    return run("the scores of the two group means", pair, cases, rtol=1e-6, atol=1e-9)


def _switch_population(
    eps: float, sigma1_sq: float, delta_norm: float, f: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The class covariance of eq. (ch4-mixture) for Σ_D = I + σ₁² q qᵀ, Σ_W = I and a shift Δ of
    norm ``delta_norm`` orthogonal to q (q = e₀, Δ along e₁). Returns (Σ (F, F), q, u)."""
    q = torch.zeros(f, dtype=torch.float64)
    q[0] = 1.0
    u = torch.zeros(f, dtype=torch.float64)
    u[1] = 1.0
    cov_d = torch.eye(f, dtype=torch.float64) + sigma1_sq * torch.outer(q, q)
    cov = (
        (1 - eps) * cov_d
        + eps * torch.eye(f, dtype=torch.float64)
        + eps * (1 - eps) * delta_norm**2 * torch.outer(u, u)
    )
    return cov, q, u


def check_switch_share(fn: Callable[[float, float], float]) -> CheckResult:
    """Check ``fn(sigma1_sq, delta_norm) -> float``: the smallest poison share ε* at which the top
    eigenvector of the class covariance (eq. ch4-mixture) switches from the genuine images' extra
    direction q to the poisons' shift Δ, for genuine covariance Σ_D = I + σ₁² q qᵀ, poison
    covariance Σ_W = I and Δ orthogonal to q; ``math.inf`` when no share below 1 makes the switch.
    Beyond the value, one case asks the population itself: just below the returned share the top
    eigenvector must be q, just above it Δ."""
    hint = (
        "q and Δ are both eigenvectors of the class covariance here; write the variance of the whole "
        "class along each of them and ask when one overtakes the other."
    )
    g = generator(41)
    cases = []
    for what in ("a narrow genuine spread", "a wide genuine spread", "a small shift"):
        sigma1_sq = {"a narrow genuine spread": 0.5, "a wide genuine spread": 3.0, "a small shift": 1.0}[what] * (
            1.0 + 0.5 * float(torch.rand(1, generator=g))
        )
        target = {"a narrow genuine spread": 0.05, "a wide genuine spread": 0.12, "a small shift": 0.35}[what] * (
            1.0 + 0.4 * float(torch.rand(1, generator=g))
        )
        delta_norm = math.sqrt(sigma1_sq / target)
        cases.append(
            Case(
                f"{what}: σ₁² = {sigma1_sq:.3f}, ‖Δ‖ = {delta_norm:.3f}",
                (sigma1_sq, delta_norm),
                sigma1_sq / delta_norm**2,
                hint=hint,
            )
        )
    sigma1_sq = 2.0 + float(torch.rand(1, generator=g))
    cases.append(
        Case(
            f"a shift smaller than the genuine spread: σ₁² = {sigma1_sq:.3f}, ‖Δ‖ = 1.2",
            (sigma1_sq, 1.2),
            math.inf,
            hint=hint + " What if the shift never wins?",
        )
    )
    ok = run("the share at which the spike wins", fn, cases, rtol=1e-4)

    def flips(sigma1_sq: float, delta_norm: float) -> bool:
        share = float(fn(sigma1_sq, delta_norm))
        if not 0.0 < share < 1.0:
            return False
        below, q, _ = _switch_population(share * 0.98, sigma1_sq, delta_norm)
        above, _, u = _switch_population(min(share * 1.02, 0.999), sigma1_sq, delta_norm)
        v_below = torch.linalg.eigh(below).eigenvectors[:, -1]
        v_above = torch.linalg.eigh(above).eigenvectors[:, -1]
        return bool(abs(float(v_below @ q)) > 0.99 and abs(float(v_above @ u)) > 0.99)

    sigma1_sq = 1.0 + float(torch.rand(1, generator=g))
    delta_norm = 3.0 + 2.0 * float(torch.rand(1, generator=g))
    measured = run(
        "the population's top direction",
        flips,
        [
            Case(
                f"σ₁² = {sigma1_sq:.3f}, ‖Δ‖ = {delta_norm:.3f}: the top eigenvector is q just below your ε* "
                f"and Δ just above it",
                (sigma1_sq, delta_norm),
                True,
                hint=hint,
            )
        ],
    )
    return CheckResult(ok.exercise, ok.lines + measured.lines, ok.passed + measured.passed, ok.total + measured.total)
