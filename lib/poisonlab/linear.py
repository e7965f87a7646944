"""Convex linear learners, trained to optimality: the inner problem of bilevel poisoning.

A gradient-based poisoning attack differentiates *through* training (chapter 1), which needs the
learner's optimum θ̂ exactly, not approximately. For binary linear models this is cheap: the
objective

.. math:: J(\\theta) = \\frac{1}{N}\\sum_{i=1}^N \\ell\\big(s_i (w^\\top x_i + b)\\big)
   + \\frac{\\lambda}{2}\\lVert\\theta\\rVert^2,
   \\qquad \\theta = (w, b),\\ s_i = 2y_i - 1 \\in \\{-1, +1\\},

is smooth and strongly convex, and Newton's method reaches machine precision in a few
iterations (a Cholesky factorisation of the Hessian for up to 2,047 features, conjugate gradients
with closed-form Hessian-vector products beyond).

Two margin losses ℓ(m):

* ``"logistic"``: ℓ(m) = log(1 + e^{-m}), logistic regression;
* ``"hinge"``: ℓ(m) = softplus(β(1 − m))/β, a smoothed hinge max(0, 1 − m) — a linear SVM.
  As β → ∞ it becomes the hinge of Biggio et al. (2012); a finite β (default 10) keeps the
  second derivative that the implicit function theorem needs.

All computations are in float64: finite-difference checks of attack gradients need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from poisonlab import _validate

LOSSES = ("logistic", "hinge")
DENSE_LIMIT = 2048  # largest d + 1 for which Newton steps factorise the dense Hessian


@dataclass(frozen=True)
class LinearLearner:
    """A binary linear classifier trained by regularised empirical risk minimisation.

    Attributes:
        loss: ``"logistic"`` or ``"hinge"`` (smoothed with sharpness ``beta``).
        lam: L2 regularisation strength λ > 0 (on w and b).
        beta: sharpness of the smoothed hinge, > 0; ignored for the logistic loss.
    """

    loss: str = "logistic"
    lam: float = 1e-2
    beta: float = 10.0

    def __post_init__(self) -> None:
        _validate.choice("loss", self.loss, LOSSES)
        # keep the checked values (plain floats), not what was passed (a tensor, a string of digits)
        object.__setattr__(self, "lam", _validate.positive_float("lam", self.lam))
        object.__setattr__(self, "beta", _validate.positive_float("beta", self.beta))

    # -- the loss and its first two derivatives, as functions of the margin m -----------------
    def margin_loss(self, m: torch.Tensor) -> torch.Tensor:
        """ℓ(m), elementwise."""
        if self.loss == "logistic":
            return F.softplus(-m)
        return F.softplus(self.beta * (1 - m)) / self.beta

    def _d1(self, m: torch.Tensor) -> torch.Tensor:
        if self.loss == "logistic":
            return -torch.sigmoid(-m)
        return -torch.sigmoid(self.beta * (1 - m))

    def _d2(self, m: torch.Tensor) -> torch.Tensor:
        if self.loss == "logistic":
            return torch.sigmoid(m) * torch.sigmoid(-m)
        z = self.beta * (1 - m)
        return self.beta * torch.sigmoid(z) * torch.sigmoid(-z)

    # -- the training objective ----------------------------------------------------------------
    def mean_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unregularised average loss (1/N) Σ ℓ(m_i) on flattened inputs x (N, d) with labels
        y (N,) in {0, 1}; differentiable. It is the attacker's L_val in chapter 1."""
        return self.margin_loss(_margins(theta, x, y)[1]).mean()

    def objective(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """J(θ) = mean loss + λ/2 ||θ||² on flattened inputs x (N, d), labels y (N,); differentiable."""
        return self.mean_loss(theta, x, y) + 0.5 * self.lam * theta.pow(2).sum()

    def gradient(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇J(θ), shape (d + 1,)."""
        s, m = _margins(theta, x, y)
        c = self._d1(m) * s / x.shape[0]
        return torch.cat([x.T @ c, c.sum().reshape(1)]) + self.lam * theta

    def hvp(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The Hessian of J at θ as a function v ↦ H v (closed form, two mat-vecs)."""
        s, m = _margins(theta, x, y)
        d2 = self._d2(m) / x.shape[0]

        def apply(v: torch.Tensor) -> torch.Tensor:
            u = d2 * (x @ v[:-1] + v[-1])
            return torch.cat([x.T @ u, u.sum().reshape(1)]) + self.lam * v

        return apply

    def hessian(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The dense Hessian ∇²J(θ), shape (d + 1, d + 1) — affordable for d up to a few thousand."""
        s, m = _margins(theta, x, y)
        xt = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        h = xt.T @ (self._d2(m).unsqueeze(1) * xt) / x.shape[0]
        return h + self.lam * torch.eye(h.shape[0], dtype=x.dtype)

    def solver(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """v ↦ ∇²J(θ)⁻¹ v for a vector v (d + 1,).

        The Hessian is λI + BᵀB with B = diag(√(ℓ''(mᵢ)/N)) [X 1], of rank at most N. With fewer
        points than parameters (N < d + 1, chapter 1's 412 images of 784 pixels), the
        Sherman–Morrison–Woodbury identity H⁻¹v = (v − Bᵀ(λI_N + BBᵀ)⁻¹Bv)/λ factorises an N × N
        matrix instead of the (d + 1) × (d + 1) Hessian: the same solution up to rounding, about
        twice as fast there. Otherwise a Cholesky factorisation of the Hessian for d + 1 ≤ 2048, and
        conjugate gradients beyond."""
        n = x.shape[0]
        if n < x.shape[1] + 1 and n <= DENSE_LIMIT:
            _, m = _margins(theta, x, y)
            b = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1) * (self._d2(m) / n).sqrt().unsqueeze(1)
            small = torch.linalg.cholesky(b @ b.T + self.lam * torch.eye(n, dtype=x.dtype))
            return lambda v: (v - b.T @ torch.cholesky_solve((b @ v).unsqueeze(1), small).squeeze(1)) / self.lam
        if x.shape[1] + 1 <= DENSE_LIMIT:
            factor = torch.linalg.cholesky(self.hessian(theta, x, y))
            return lambda v: torch.cholesky_solve(v.unsqueeze(1), factor).squeeze(1)
        apply = self.hvp(theta, x, y)
        return lambda v: conjugate_gradient(apply, v, tol=1e-12, max_iter=500)

    # -- training ------------------------------------------------------------------------------
    def fit(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        theta0: torch.Tensor | None = None,
        tol: float = 1e-10,
        max_iter: int = 100,
    ) -> torch.Tensor:
        """θ̂ = argmin J, by Newton's method with a backtracking line search.

        Args:
            x: inputs (N, ...) — flattened to (N, d) and cast to float64.
            y: labels (N,) in {0, 1}.
            theta0: warm start (d + 1,), finite floating point; default zeros.
            tol: stop when ||∇J|| < tol, a finite number >= 0.
            max_iter: the most Newton steps, an integer >= 1 (``bool`` refused).

        Returns:
            θ̂ = (w, b) as one float64 vector of shape (d + 1,).
        """
        x, y = as_design(x, y)
        tol = _validate.positive_float("tol", tol, allow_zero=True)
        max_iter = _validate.positive_int("max_iter", max_iter)
        if theta0 is not None:
            _validate.shaped_like("theta0", theta0, (x.shape[1] + 1,), "(d + 1,) for inputs of d features")
            theta0 = _validate.vector("theta0", theta0)
        theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64) if theta0 is None else theta0.clone().double()
        f = self.objective(theta, x, y)
        solve, previous = None, float("inf")
        for _ in range(max_iter):
            g = self.gradient(theta, x, y)
            norm = float(g.norm())
            if norm < tol:
                break
            if solve is None or norm > 0.25 * previous:
                # Factorise the Hessian afresh only when the last one stops paying off: near a
                # warm start, one factorisation serves several steps (a chord-Newton method).
                solve = self.solver(theta, x, y)
            previous = norm
            step = solve(-g)
            t, slope = 1.0, float(g @ step)
            while True:
                candidate = theta + t * step
                f_new = self.objective(candidate, x, y)
                if float(f_new) <= float(f) + 1e-4 * t * slope or t < 1e-8:
                    break
                t *= 0.5
            theta, f = candidate, f_new
        return theta

    def decision(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scores w·x + b, shape (N,); class 1 where positive."""
        return x.flatten(1).double() @ theta[:-1] + theta[-1]

    def error(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        """Fraction of (x, y) misclassified, in [0, 1]."""
        return float(((self.decision(theta, x) > 0).long() != y).double().mean())


def _margins(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signs s = 2y − 1 and margins m = s (w·x + b), both (N,)."""
    s = 2.0 * y.to(x.dtype) - 1.0
    return s, s * (x @ theta[:-1] + theta[-1])


def as_design(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten inputs to (N, d) float64 and check binary labels."""
    x = _validate.inputs("x", x).flatten(1).double()
    y = _validate.labels("y", y, n=x.shape[0], num_classes=2)
    return x, y


def conjugate_gradient(
    apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, tol: float = 1e-10, max_iter: int = 500
) -> torch.Tensor:
    """Solve A z = b for symmetric positive-definite A given only z ↦ A z (Hestenes & Stiefel 1952).

    Stops when the residual falls below ``tol · ||b||`` or after ``max_iter`` iterations.
    ``b`` must be a finite floating-point vector (d,); ``apply_a`` must return a vector of the same
    shape; ``tol`` is a finite number >= 0 and ``max_iter`` an integer >= 1 (``bool`` refused).
    """
    if not callable(apply_a):
        raise ValueError(f"apply_a must be callable (z ↦ A z), got {type(apply_a).__name__}")
    b = _validate.vector("b", b)
    tol = _validate.positive_float("tol", tol, allow_zero=True)
    max_iter = _validate.positive_int("max_iter", max_iter)
    z = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    stop = (tol * b.norm()) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        try:
            ap = apply_a(p)
        except RuntimeError as e:
            raise ValueError(
                f"apply_a cannot take a vector shaped like b {tuple(b.shape)} ({str(e).splitlines()[0]}); "
                f"b must have as many entries as A has columns"
            ) from None
        if not isinstance(ap, torch.Tensor) or ap.shape != b.shape:
            got = tuple(ap.shape) if isinstance(ap, torch.Tensor) else type(ap).__name__
            raise ValueError(f"apply_a must return a vector shaped like b {tuple(b.shape)}, got {got}")
        alpha = rr / (p @ ap)
        z = z + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return z
