"""Checkers for the exercises of chapter 1, boundary shifting."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, generator, run, varied
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
        cases.append(
            Case(
                f"30 points in 4-D, λ = {lam}, β = {beta}",
                (theta, x, y, lam, beta),
                expected,
                hint="differentiate the loss as a function of the margin first, then the margin as a "
                "function of θ (chain rule); the last entry of θ is the bias, whose feature is 1, "
                "and the regulariser contributes too.",
            )
        )
    return run("smoothed hinge gradient", fn, cases, rtol=1e-6, atol=1e-9)


def _ridge_influence(x: torch.Tensor, y: torch.Tensor, lam: float, xv: torch.Tensor, yv: torch.Tensor, j: int) -> float:
    """dL_val/dδ at δ = 0 for ridge regression with training point j up-weighted by δ
    (Koh & Liang 2017, eq. 2 with a linear-Gaussian model): −∇L_valᵀ H⁻¹ ∇ℓ_j(θ̂)."""
    n, d = x.shape
    h = x.T @ x / n + lam * torch.eye(d, dtype=x.dtype)
    theta = torch.linalg.solve(h, x.T @ y / n)
    g_j = x[j] * (x[j] @ theta - y[j])
    g_val = xv.T @ (xv @ theta - yv) / len(yv)
    return float(-g_val @ torch.linalg.solve(h, g_j))


def check_ridge_influence(fn: Callable[..., float]) -> CheckResult:
    """Check ``fn(x (n, d), y (n,), lam, x_val (m, d), y_val (m,), j) -> float``: the derivative
    dL_val/dδ at δ = 0 of ridge regression's validation loss L_val(θ) = (1/2m) Σ (x_vᵀθ − y_v)²
    when training point j is up-weighted, θ̂(δ) = argmin (1/2n) Σ_i (x_iᵀθ − y_i)²
    + (δ/2)(x_jᵀθ − y_j)² + (λ/2)||θ||² (the influence function of Koh & Liang 2017)."""
    hint = (
        "the optimum keeps ∇J = 0 for every δ: differentiate that identity with respect to δ to get "
        "dθ̂/dδ (as section 2 does with respect to a poison's features), then apply the chain rule "
        "to L_val. Check your answer against retraining with δ = ±10⁻⁶."
    )
    cases = []
    for seed, n, d, lam, m in ((0, 40, 3, 0.1, 25), (1, 60, 5, 0.01, 50), (2, 30, 8, 1.0, 20)):
        g = generator(seed)
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        w = torch.randn(d, generator=g, dtype=torch.float64)
        y = x @ w + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        xv = torch.randn(m, d, generator=g, dtype=torch.float64)
        yv = xv @ w + 0.5 * torch.randn(m, generator=g, dtype=torch.float64)
        y[0] += 4.0  # one outlier, whose up-weighting hurts
        j = int(torch.randint(n, (1,), generator=g))
        for jj in (0, j):
            cases.append(
                Case(
                    f"n = {n}, d = {d}, λ = {lam}, point {jj}" + (" (an outlier)" if jj == 0 else ""),
                    (x, y, lam, xv, yv, jj),
                    _ridge_influence(x, y, lam, xv, yv, jj),
                    hint=hint,
                )
            )
    return run("influence of one training point", fn, cases, rtol=1e-6, atol=1e-10)


def check_sphere_poisons(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """Check the design ``fn(x_train, y_train, x_val, y_val, defence, k) -> (x_p (k, 2), y_p (k,))``:
    on 2-D blobs, k = 20 poisons added to 100 training points must all survive the sphere defence
    (:class:`poisonlab.boundary.SphereDefence`, fitted on the clean data at its 90% quantile) and raise
    the test error of logistic regression (λ = 10⁻³) trained on what the defence keeps by at least
    2 percentage points over the sanitised clean model. The test set is one the function never sees."""
    from poisonlab.boundary import SphereDefence, sanitise
    from poisonlab.data import toy2d

    learner = LinearLearner("logistic", 1e-3)
    hint = (
        "a poison can only pull from inside the ball of its own label: which place in a ball pulls the "
        "boundary hardest, and what happens when many poisons pull from the same place? Your validation "
        "set can tell candidates apart."
    )
    goal = "test error ≥ sanitised clean error + 2 points"

    def outcome(seed: int, k: int) -> dict:
        toy = toy2d("blobs", n_train=100, n_test=1000, noise=0.7, seed=varied(seed))
        x, y = toy.x_train, toy.y_train
        defence = SphereDefence.fit(x, y, quantile=0.9)
        out = fn(x.clone(), y.clone(), toy.x_test[:500].clone(), toy.y_test[:500].clone(), defence, k)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("return a pair (x_p, y_p)")
        xp, yp = out
        if not isinstance(xp, torch.Tensor) or tuple(xp.shape) != (k, 2):
            raise TypeError(f"x_p must be a tensor of shape ({k}, 2)")
        if not isinstance(yp, torch.Tensor) or tuple(yp.shape) != (k,) or not bool(((yp == 0) | (yp == 1)).all()):
            raise TypeError(f"y_p must be a tensor of {k} labels in {{0, 1}}")
        xp, yp = xp.to(x.dtype), yp.long()
        in_box = bool(torch.isfinite(xp).all()) and float(xp.min()) >= 0.0 and float(xp.max()) <= 1.0
        xt, yt = toy.x_test[500:], toy.y_test[500:]
        xk, yk, _ = sanitise(x, y, defence)
        clean = learner.error(learner.fit(xk, yk), xt, yt)
        xk, yk, keep = sanitise(torch.cat([x, xp]), torch.cat([y, yp]), defence)
        poisoned = learner.error(learner.fit(xk, yk), xt, yt)
        return {
            "poisons in the box [0, 1]²": in_box,
            "every poison survives the sphere defence": bool(keep[len(y) :].all()),
            goal: poisoned >= clean + 0.02,
        }

    ok = {"poisons in the box [0, 1]²": True, "every poison survives the sphere defence": True, goal: True}
    cases = [
        Case(f"blobs (seed {varied(seed)}), {k} poisons", (seed, k), ok, hint=hint) for seed, k in ((5, 20), (6, 20))
    ]
    return run("poisons that survive the sphere defence", outcome, cases)
