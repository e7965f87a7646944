"""Checkers for the exercises of chapter 1, boundary shifting."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, generator, run
from poisonlab.linear import LinearLearner


def _data(seed: int, n: int = 30, d: int = 4):
    g = generator(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g) > 0.5).long()
    theta = torch.randn(d + 1, generator=g, dtype=torch.float64)
    return x, y, theta


def check_smooth_hinge_gradient(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(theta, x, y, lam, beta) -> ∇J(θ)`` for the smoothed-hinge objective
    J(θ) = mean softplus(β(1 − s(w·x + b)))/β + λ/2 ||θ||², s = 2y − 1."""
    cases = []
    for seed, lam, beta in ((0, 0.1, 10.0), (1, 0.01, 2.0), (2, 0.0, 50.0)):
        x, y, theta = _data(seed)
        learner = LinearLearner("hinge", max(lam, 1e-12), beta)
        expected = learner.gradient(theta, x, y) - (max(lam, 1e-12) - lam) * theta
        cases.append(Case(f"30 points in 4-D, λ = {lam}, β = {beta}", (theta, x, y, lam, beta), expected,
                          hint="d/dm softplus(β(1 − m))/β = −σ(β(1 − m)); chain rule through m = s(w·x + b), "
                               "and the last entry of θ is the bias b (its feature is 1)."))
    return run("smoothed hinge gradient", fn, cases, rtol=1e-6, atol=1e-9)


def check_implicit_step(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(hessian (p, p), grad_val (p,), mixed (p, k)) -> dL_val/dx_p (k,)`` =
    −mixedᵀ H⁻¹ grad_val (the implicit-function step)."""
    cases = []
    for seed, p, k in ((0, 3, 2), (1, 6, 4), (2, 10, 10)):
        g = generator(seed)
        a = torch.randn(p, p, generator=g, dtype=torch.float64)
        h = a @ a.T + p * torch.eye(p, dtype=torch.float64)
        gv = torch.randn(p, generator=g, dtype=torch.float64)
        mixed = torch.randn(p, k, generator=g, dtype=torch.float64)
        cases.append(Case(f"{p} parameters, {k} poison features", (h, gv, mixed),
                          -mixed.T @ torch.linalg.solve(h, gv),
                          hint="solve H v = ∇L_val (torch.linalg.solve), then return −mixedᵀ v; "
                               "mind the sign."))
    return run("implicit gradient step", fn, cases, rtol=1e-6, atol=1e-9)


def check_project_sphere(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(x (k, d), centre (d,), radius) -> x`` projected onto the ball ||x − c|| ≤ r."""
    g = generator(3)
    x = torch.rand(8, 5, generator=g, dtype=torch.float64) * 3
    c = torch.rand(5, generator=g, dtype=torch.float64)
    r = 1.5
    d = x - c
    norm = d.norm(dim=1, keepdim=True)
    expected = torch.where(norm > r, c + d * (r / norm), x)
    inside = c + 0.1 * (x - c) / (x - c).norm(dim=1, keepdim=True)
    return run("projection onto the sphere", fn, [
        Case("8 points, most outside the ball", (x, c, r), expected,
             hint="move each point outside the ball along the ray from the centre to the boundary."),
        Case("points already inside stay where they are", (inside, c, r), inside,
             hint="only points with ||x − c|| > r move."),
    ], rtol=1e-6, atol=1e-9)
