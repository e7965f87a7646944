"""The spiked-covariance model of a poisoned class, and its high-dimensional asymptotics
(groundwork for chapter 5, the limits of detection).

A class of n representations in d dimensions: clean points x ~ N(0, σ² I), and a share ε of
poisons x ~ N(Δ, σ² I). The population covariance is σ² I + ε(1 − ε) ΔΔᵀ (chapter 4, eq.
ch4-mixture), a rank-one spike of strength

.. math:: \\theta = \\frac{\\varepsilon(1-\\varepsilon)\\lVert\\Delta\\rVert^2}{\\sigma^2}

in units of the noise. With γ = d / n fixed as n, d → ∞, the top eigenvector v̂ of the sample
covariance carries information about Δ only above the Baik–Ben Arous–Péché threshold θ = √γ
(Baik, Ben Arous & Péché 2005; Paul 2007):

.. math:: \\langle \\hat v, \\Delta/\\lVert\\Delta\\rVert \\rangle^2 \\to
          \\frac{1 - \\gamma/\\theta^2}{1 + \\gamma/\\theta} \\ \\text{for}\\ \\theta > \\sqrt\\gamma,
          \\qquad 0 \\ \\text{otherwise.}

Below the threshold a spectral detector is blind however many poisons share the spike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.sparse.linalg import eigsh

from poisonlab import _validate
from poisonlab.poison import count_for_rate


@dataclass
class SpikedClass:
    """One sample of the model: ``x`` (n, d) float64, ``is_poison`` (n,) bool, ``direction``
    (d,) the unit vector Δ/‖Δ‖, and the parameters that produced it."""

    x: torch.Tensor
    is_poison: torch.Tensor
    direction: torch.Tensor
    eps: float
    shift: float
    sigma: float

    @property
    def theta(self) -> float:
        """The spike's strength θ = ε(1 − ε)‖Δ‖²/σ²."""
        return spike_strength(self.eps, self.shift, self.sigma)


def spike_strength(eps: float, shift: float, sigma: float = 1.0) -> float:
    """θ = ε(1 − ε)‖Δ‖²/σ² for a poison share ``eps`` in [0, 1), a shift ‖Δ‖ = ``shift`` ≥ 0 and a
    noise level ``sigma`` > 0, both finite numbers (``bool`` refused)."""
    eps = _validate.fraction("eps", eps)
    shift = _validate.positive_float("shift", shift, allow_zero=True)
    sigma = _validate.positive_float("sigma", sigma)
    return eps * (1 - eps) * shift**2 / sigma**2


def shift_for(theta: float, eps: float, sigma: float = 1.0) -> float:
    """The shift ‖Δ‖ that gives spike strength ``theta`` ≥ 0 (a finite number, ``bool`` refused) at
    poison share ``eps`` in (0, 1)."""
    eps = _validate.fraction("eps", eps)
    if eps == 0:
        raise ValueError("eps must be > 0: without poisons there is no spike to tune")
    theta = _validate.positive_float("theta", theta, allow_zero=True)
    sigma = _validate.positive_float("sigma", sigma)
    return sigma * math.sqrt(theta / (eps * (1 - eps)))


def sample(n: int, d: int, eps: float, shift: float, *, sigma: float = 1.0, seed: int = 0) -> SpikedClass:
    """Draw n points in d dimensions: ⌊ε n⌉ poisons from N(Δ, σ² I), the rest from N(0, σ² I),
    with Δ = shift · u for a uniformly random unit vector u (seeded)."""
    n = _validate.positive_int("n", n)
    d = _validate.positive_int("d", d)
    spike_strength(eps, shift, sigma)  # validates eps, shift, sigma
    eps, shift, sigma = float(eps), float(shift), float(sigma)
    g = _validate.generator(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    x = sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
    k = count_for_rate(eps, n, rounding="nearest")
    is_poison = torch.zeros(n, dtype=torch.bool)
    is_poison[torch.randperm(n, generator=g)[:k]] = True
    x[is_poison] += shift * u
    return SpikedClass(x, is_poison, u, float(eps), float(shift), float(sigma))


def bbp_threshold(gamma: float) -> float:
    """The critical spike strength √γ for aspect ratio γ = d / n > 0."""
    gamma = _validate.positive_float("gamma", gamma)
    return math.sqrt(gamma)


def bbp_overlap(theta: float, gamma: float) -> float:
    """The limit of ⟨v̂, Δ/‖Δ‖⟩² (Paul 2007, Theorem 4): (1 − γ/θ²)/(1 + γ/θ) above the
    threshold θ > √γ, and 0 at or below it. ``theta`` ≥ 0, ``gamma`` > 0."""
    theta = _validate.positive_float("theta", theta, allow_zero=True)
    gamma = _validate.positive_float("gamma", gamma)
    if theta <= bbp_threshold(gamma):
        return 0.0
    return (1 - gamma / theta**2) / (1 + gamma / theta)


def top_eigenvector(x: torch.Tensor) -> torch.Tensor:
    """v̂ (d,), float64 and of unit norm: the top eigenvector of the centred sample covariance of ``x``
    (n, d), n ≥ 2, up to its sign.

    Only the top eigenpair is computed, by Lanczos iteration to machine precision (ARPACK's
    ``eigsh``, from SciPy, which scikit-learn requires) on the smaller Gram matrix, d × d or n × n,
    from a fixed starting vector: the vector :func:`poisonlab.detect.top_direction` finds with a full
    eigendecomposition, several times faster at d = 1000. The spectral score of chapter 4 is the
    squared projection on it, ((xᵢ − x̄) · v̂)². ``x`` must be finite floating point (integer or
    ``bool`` points are refused)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a 2-D tensor (n, d) with n >= 2, got {got}")
    x = _validate.inputs("x", x)
    x = x.detach().double().cpu()
    c = x - x.mean(0)
    if float(c.abs().max()) <= 1e-12 * max(1.0, float(x.abs().max())):
        raise ValueError("the points of x are all equal; no direction to find")
    wide = c.shape[0] < c.shape[1]
    gram = c @ c.T if wide else c.T @ c
    if gram.shape[0] < 3:  # ARPACK needs a matrix larger than the one eigenpair it returns
        top = torch.linalg.eigh(gram)[1][:, -1]
    else:
        start = torch.randn(gram.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        vector = eigsh(gram.numpy(), k=1, which="LA", tol=0, v0=start.numpy())[1][:, 0]
        top = torch.from_numpy(vector.copy())
    if wide:  # a left singular vector u gives the right one as Cᵀu / ‖Cᵀu‖
        top = c.T @ top
    return top / top.norm()


def top_overlap(x: torch.Tensor, direction: torch.Tensor) -> float:
    """⟨v̂, u⟩², v̂ the top eigenvector of the centred sample covariance of ``x`` (n, d)
    (:func:`top_eigenvector`) and u the unit vector ``direction`` (d,); in [0, 1]. Both must be
    finite floating point, ``direction`` non-zero."""
    x = _validate.inputs("x", x)
    direction = _validate.vector("direction", direction)
    if x.ndim != 2 or direction.shape != (x.shape[1],):
        raise ValueError(f"x must be (n, d) and direction (d,), got {tuple(x.shape)} and {tuple(direction.shape)}")
    if float(direction.abs().max()) == 0.0:
        raise ValueError("direction must be a non-zero vector")
    top = top_eigenvector(x)
    u = direction.double() / direction.double().norm()
    return float((top @ u) ** 2)
