"""Robust mean estimation when an ε-fraction of the data is poisoned (chapter 5, "Robust statistics").

n points in d dimensions: a share 1 − ε drawn from N(μ, I_d), a share ε placed by an adversary.
Three estimators of μ, and how far each can be pushed:

- the **sample mean** moves by ε · (distance of the poisons): unbounded;
- the **coordinate-wise median** moves by Φ⁻¹(1/(2(1 − ε))) ≈ 1.25 ε in every coordinate
  (:func:`median_shift`), hence Θ(ε√d) in L2 norm;
- the **spectral filter** of Diakonikolas, Kamath, Kane, Li, Moitra & Stewart (2016, "Robust estimators
  in high dimensions without the computational intractability"; 2017, "Being robust (in high dimensions)
  can be practical") reaches O(ε√log(1/ε)), whatever d.

Two threat models (Diakonikolas & Kane 2023, "Algorithmic High-Dimensional Robust Statistics"):

- **additive (Huber) contamination**: the adversary *adds* a share ε of points of its choice to an i.i.d.
  clean sample; every clean point stays. This is the model :func:`contaminated_gaussian` draws. For
  N(μ, I_d) the optimal error is Θ(ε), and polynomial-time estimators reach O(ε) (Diakonikolas, Kamath,
  Kane, Li, Moitra & Stewart 2018, "Robustly learning a Gaussian: getting optimal error, efficiently",
  SODA; in almost linear time, Diakonikolas, Kane, Pensia & Pittas 2023, "Near-optimal algorithms for
  Gaussians with Huber contamination", NeurIPS).
- **strong contamination**: the adversary may also *remove* or replace a share ε of the clean points. The
  optimal error is still Θ(ε), but no statistical-query algorithm with polynomially many queries of
  inverse-polynomial tolerance gets below Ω(ε√log(1/ε)) (Diakonikolas, Kane & Stewart 2017, "Statistical query
  lower bounds for robust estimation of high-dimensional Gaussians and Gaussian mixtures", FOCS), and the
  filter reaches that order.

Why ε√log(1/ε) is where *this* filter stops: to move the mean by ε·s along a unit direction u, the
poisons must sit at distance about s along u, and they raise the second moment along u by about ε s².
The filter tolerates a variance excess of order ε log(1/ε) (:func:`spectral_threshold`), because a
strong adversary who deletes an ε-share of a Gaussian's tail changes its variance that much, and the
filter must accept every sample such an edit could leave. Poisons at

.. math:: t_\\varepsilon = \\sqrt{2 \\log(1/\\varepsilon)},

the point where the Gaussian tail bound exp(−t²/2) equals ε (of the same order √(2 log 1/ε) as the
ε-quantile, though the actual tail mass P(Z > t_ε) is smaller: 0.036 at ε = 0.2, 0.0026 at ε = 0.02),
contribute ε t_ε² = 2ε log(1/ε) to the raw second moment along u; net of the mean they move, the
variance along u grows by ε(t_ε² − 1) − ε² t_ε², inside that tolerance, and the mean moves by ε t_ε. Under additive
contamination the same
excess stands out against the clean sample's own fluctuation (nothing was removed to hide it), which is
what the O(ε) estimators above exploit; a second-moment filter with the strong-model tolerance keeps
the poisons anyway.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch

from poisonlab import _validate
from poisonlab.poison import count_for_rate

EIGENVALUE_SLACK = 3.0
"""C in the filter's stopping rule λ ≤ (1 + √(d/n))² + C ε log(1/ε) (DKK+17's reference code uses C = 3)."""

TAIL_FACTOR = 2.5
"""The factor by which the empirical tail must exceed the Gaussian one before the filter cuts (DKK+17's 2.5)."""

TAU = 0.1
"""The failure probability τ in the filter's tail bound (DKK+17)."""

PLACEMENTS = ("tail", "far")
RULES = ("tail", "random")


@dataclass
class Contaminated:
    """One ε-contaminated Gaussian sample: ``x`` (n, d) float64, ``is_poison`` (n,) bool, ``true_mean``
    (d,) the clean mean (zeros), ``direction`` (d,) the unit vector u along which the poisons sit, their
    ``distance`` along u, and the parameters that produced it."""

    x: torch.Tensor
    is_poison: torch.Tensor
    true_mean: torch.Tensor
    direction: torch.Tensor
    eps: float
    distance: float
    placement: str


def _eps(eps: float) -> float:
    """Check ``eps`` is a number (``bool`` and text refused) in [0, 0.5): beyond one half no
    estimator can tell clean points from poisons."""
    v = _validate.fraction("eps", eps)
    if not 0.0 <= v < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps!r}")
    return v


def _points(name: str, x: torch.Tensor, *, min_rows: int = 1) -> torch.Tensor:
    """Check ``x`` is a finite floating-point matrix (n, d) with n ≥ ``min_rows``; return it as float64."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (n, d), got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} row(s) and 1 column, got shape {tuple(x.shape)}")
    return _validate.finite(name, x).detach().double()


def tail_distance(eps: float) -> float:
    """t_ε = √(2 log(1/ε)), the point where the Gaussian tail bound exp(−t²/2) equals ε; ``eps`` in (0, 0.5).

    It is of the same order √(2 log 1/ε) as the ε-quantile of N(0, 1), but larger: the actual tail mass
    P(Z > t_ε) is below ε (about 0.0026, 0.0072, 0.016, 0.036 at ε = 0.02, 0.05, 0.1, 0.2)."""
    eps = _eps(eps)
    if eps == 0:
        raise ValueError("eps must be > 0: without poisons there is no tail to place them in")
    return math.sqrt(2 * math.log(1 / eps))


def strong_contamination_floor(eps: float) -> float:
    """ε √log(1/ε) for ``eps`` in [0, 0.5) (0 at ε = 0): the order, *up to a constant factor*, of the
    smallest error an efficient estimator of the mean of N(μ, I_d) can guarantee under **strong**
    contamination (an adversary who may add *and remove* an ε-share of points). The spectral filter
    reaches it (DKK+16), and no statistical-query algorithm with polynomially many queries does better
    (Diakonikolas, Kane & Stewart 2017, FOCS). It is not an information-theoretic limit (Θ(ε) is, in
    both models), and under **additive** (Huber) contamination, the model of
    :func:`contaminated_gaussian`, polynomial-time estimators reach O(ε) (Diakonikolas et al. 2018,
    SODA; Diakonikolas, Kane, Pensia & Pittas 2023, NeurIPS). The tail attack of
    :func:`contaminated_gaussian` moves the mean by ε t_ε = √2 · ``strong_contamination_floor(eps)``."""
    eps = _eps(eps)
    return 0.0 if eps == 0 else eps * math.sqrt(math.log(1 / eps))


def information_floor(eps: float) -> float:
    """Former name of :func:`strong_contamination_floor`, kept so old code runs. The name was wrong
    twice: the floor is computational, not information-theoretic, and it holds for strong, not
    additive, contamination. Same argument and value."""
    return strong_contamination_floor(eps)


def contaminated_gaussian(
    n: int, d: int, eps: float, *, placement: str = "tail", distance: float | None = None, seed: int = 0
) -> Contaminated:
    """Draw n points in d dimensions: round(ε n) poisons (at random positions), the rest from N(0, I_d).

    This is **additive** contamination: the clean points are an i.i.d. sample, none of them chosen or
    removed by the adversary, who only places the poisons.

    All poisons sit along one unit direction u, uniformly random (seeded):

    - ``"tail"``: each poison is a clean draw z with its component along u replaced, z − ⟨z, u⟩u + s u, so
      its projection on u is exactly s and everything orthogonal to u (its norm, its projections on any
      direction ⟂ u) looks clean. By default s = t_ε = √(2 log(1/ε)) (:func:`tail_distance`), where the
      Gaussian tail bound exp(−t²/2) equals ε: the mean moves by about ε t_ε along u, the variance along u grows by only
      ε(t_ε² − 1) − ε² t_ε² < 2ε log(1/ε), and the spectral filter keeps every poison. (A point mass along
      u is visible to a one-dimensional density test; a second-moment filter cannot see it.)
    - ``"far"``: the naive attack, a cluster z + s u with s = 10 √d by default: obvious outliers that move
      the sample mean by ε s and that any filter removes.

    Args:
        n: number of points, ≥ 1.
        d: dimension, ≥ 1.
        eps: the poison share, in [0, 0.5).
        placement: ``"tail"`` or ``"far"``.
        distance: s, the poisons' position along u (≥ 0); ``None`` for the defaults above.
        seed: seeds the direction, the points and which of them are poisons.
    """
    n = _validate.positive_int("n", n)
    d = _validate.positive_int("d", d)
    eps = _eps(eps)
    placement = _validate.choice("placement", placement, PLACEMENTS)
    if distance is None:
        if placement == "far":
            distance = 10 * math.sqrt(d)
        else:
            distance = tail_distance(eps) if eps > 0 else 0.0
    elif not (isinstance(distance, (int, float)) and math.isfinite(distance) and distance >= 0):
        raise ValueError(f"distance must be a finite number >= 0, got {distance!r}")
    g = _validate.generator(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    is_poison = torch.zeros(n, dtype=torch.bool)
    is_poison[torch.randperm(n, generator=g)[: count_for_rate(eps, n, rounding="nearest")]] = True
    z = x[is_poison]
    if placement == "tail":
        z = z - (z @ u)[:, None] * u
    x[is_poison] = z + distance * u
    return Contaminated(x, is_poison, torch.zeros(d, dtype=torch.float64), u, eps, float(distance), placement)


def sample_mean(x: torch.Tensor) -> torch.Tensor:
    """The sample mean (d,) of the points ``x`` (n, d); breakdown point 0: one poison moves it arbitrarily far."""
    return _points("x", x).mean(0)


def coordinate_median(x: torch.Tensor) -> torch.Tensor:
    """The coordinate-wise median (d,) of ``x`` (n, d) (the mean of the two middle values when n is even).

    Robust in each coordinate (an ε-share of poisons moves it by at most Φ⁻¹(1/(2(1 − ε))) ≈ 1.25 ε for
    N(0, 1) data), but the d coordinates add up: the L2 error is Θ(ε√d)."""
    x = _points("x", x)
    n = x.shape[0]
    columns = x.T.contiguous()  # a selection along rows of contiguous memory; no full sort
    low = columns.kthvalue((n - 1) // 2 + 1, dim=1).values
    high = low if n % 2 else columns.kthvalue(n // 2 + 1, dim=1).values
    return 0.5 * (low + high)


def median_shift(eps: float) -> float:
    """Φ⁻¹(1/(2(1 − ε))): how far an ε-share of poisons, all placed above the clean points, moves the
    median of one N(0, 1) coordinate (population value, ``eps`` in [0, 0.5)).

    The median m of the mixture leaves half of the mass above it; with every poison above m, the
    clean share must hold the other half below it: (1 − ε) Φ(m) = 1/2. For small ε,
    m ≈ √(π/2) ε ≈ 1.25 ε. The coordinate-wise median of d such coordinates is off by
    √d · ``median_shift(eps)`` in L2 norm when the poisons sit above (or below) in every coordinate."""
    eps = _eps(eps)
    return statistics.NormalDist().inv_cdf(1 / (2 * (1 - eps)))


def spectral_threshold(eps: float, n: int, d: int) -> float:
    """The filter's stopping level for the top eigenvalue λ of the covariance of n kept points in d dimensions:

    .. math:: \\lambda \\le (1 + \\sqrt{d/n})^2 + C\\,\\varepsilon \\log(1/\\varepsilon), \\qquad C = 3.

    The second term is DKK+17's ``1 + 3 ε log(1/ε)`` less its 1; the first replaces that 1 by the
    Marchenko–Pastur edge, the top eigenvalue that n clean N(0, I_d) points already reach by chance (the
    papers take n large enough for it to be negligible; at course sizes d/n is not)."""
    eps = _eps(eps)
    n = _validate.positive_int("n", n)
    d = _validate.positive_int("d", d)
    excess = 0.0 if eps == 0 else EIGENVALUE_SLACK * eps * math.log(1 / eps)
    return (1 + math.sqrt(d / n)) ** 2 + excess


def _tail_cut(dev: torch.Tensor, eps: float, d: int) -> torch.Tensor:
    """Which points to remove, given their deviations abs(⟨x − m, v⟩), shape (m,), along the top direction: the tail
    test of DKK+17, with the constants of their reference code."""
    m = dev.numel()
    order = dev.argsort()
    a = dev[order]
    gaussian_tail = 0.5 * torch.special.erfc((a - 2 * eps) / math.sqrt(2))  # P(Z > T), T = |dev| − δ, δ = 2ε
    slack = 0.0 if eps == 0 else eps / (d * max(math.log(d * eps / TAU), 1.0))
    above = (m - 1 - torch.arange(m, dtype=torch.float64)) / m  # share of points beyond each sorted position
    excess = torch.nonzero(above > TAIL_FACTOR * (gaussian_tail + slack)).flatten()
    drop = torch.zeros(m, dtype=torch.bool)
    if len(excess) == 0 or int(excess[0]) in (0, m - 1):
        return drop
    drop[order[int(excess[0]) + 1 :]] = True
    return drop


def filter_mask(
    x: torch.Tensor, eps: float, *, rule: str = "tail", max_rounds: int = 50, seed: int = 0
) -> torch.Tensor:
    """The points (n,) bool that the iterative spectral filter keeps: the filter of Diakonikolas et al. (2016,
    2017) for an unknown mean and known covariance, data whose clean part is N(μ, I_d), with the constants
    of the 2017 paper's reference code.

    Each round, on the kept points: compute their mean and covariance Σ, and the top eigenpair (λ, v) of Σ.
    If λ ≤ :func:`spectral_threshold` (ε, n_kept, d), stop: no direction has more variance than clean
    data plus an ε-share of edited tail would give. Otherwise project on v, measure each point's deviation
    abs(⟨x, v⟩ − median) from the median projection, and remove points by ``rule``:

    - ``"tail"`` (deterministic, DKK+17): sort the deviations and cut above the first T whose empirical
      tail P̂(abs(dev) > T + δ) exceeds 2.5 (P(Z > T) + ε / (d log(dε/τ))), with δ = 2ε and τ = 0.1 as in the
      paper's reference code (log(dε/τ) is floored at 1 so that small d·ε stays meaningful);
    - ``"random"`` (randomized filtering, Diakonikolas & Kane 2019, "Recent advances in algorithmic
      high-dimensional robust statistics"): remove each point independently with probability
      dev² / max dev², drawn from a generator seeded by ``seed``.

    The filter stops when the eigenvalue test passes, when a round removes nothing, when fewer than two
    points remain, or after ``max_rounds`` rounds. Cost per round O(n d² + d³), on the CPU; the mask
    is returned on ``x``'s device.

    Args:
        x: the points (n, d), n ≥ 2, finite.
        eps: the poison share the filter is told to expect, in [0, 0.5).
        rule: ``"tail"`` or ``"random"``.
        max_rounds: the most rounds, ≥ 1.
        seed: seeds the ``"random"`` rule; the ``"tail"`` rule draws nothing.
    """
    x = _points("x", x, min_rows=2)
    device, x = x.device, x.cpu()
    eps = _eps(eps)
    rule = _validate.choice("rule", rule, RULES)
    max_rounds = _validate.positive_int("max_rounds", max_rounds)
    n, d = x.shape
    g = _validate.generator(seed)
    keep = torch.ones(n, dtype=torch.bool)
    for _ in range(max_rounds):
        idx = torch.nonzero(keep).flatten()
        if len(idx) < 2:
            break
        kept = x[idx]
        centred = kept - kept.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / len(idx))
        if float(eigenvalues[-1]) <= spectral_threshold(eps, len(idx), d):
            break
        projection = kept @ eigenvectors[:, -1]
        dev = (projection - projection.median()).abs()
        if rule == "tail":
            drop = _tail_cut(dev, eps, d)
        else:
            score = dev**2
            drop = torch.rand(len(idx), generator=g, dtype=torch.float64) * score.max() < score
        if not bool(drop.any()):
            break
        keep[idx[drop]] = False
    return keep.to(device)


def filtered_mean(
    x: torch.Tensor, eps: float, *, rule: str = "tail", max_rounds: int = 50, seed: int = 0
) -> torch.Tensor:
    """The mean (d,) of the points :func:`filter_mask` keeps: the spectral filter's estimate of μ, with
    error O(ε√log(1/ε)) for N(μ, I_d) data under strong contamination, and so under additive
    contamination too, where efficient estimators can reach O(ε) (see the module's docstring)
    (DKK+16; DKK+17). Arguments as for
    :func:`filter_mask`; deterministic given ``seed``."""
    x = _points("x", x, min_rows=2)
    return x[filter_mask(x, eps, rule=rule, max_rounds=max_rounds, seed=seed)].mean(0)


def mean_error(estimate: torch.Tensor, true_mean: torch.Tensor) -> float:
    """‖estimate − true_mean‖₂ for two finite floating-point vectors (d,)."""
    for name, v in (("estimate", estimate), ("true_mean", true_mean)):
        if not isinstance(v, torch.Tensor) or v.ndim != 1:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be a 1-D tensor (d,), got {got}")
        _validate.vector(name, v)
    if estimate.shape != true_mean.shape:
        raise ValueError(
            f"estimate and true_mean must have the same shape, got {tuple(estimate.shape)} and {tuple(true_mean.shape)}"
        )
    return float((estimate.double() - true_mean.double()).norm())


def top_eigenvalue(x: torch.Tensor) -> float:
    """λ, the largest eigenvalue of the sample covariance of the points ``x`` (n, d), n ≥ 2, centred
    at their mean and normalised by n. For n clean N(0, I_d) points it sits near the
    Marchenko–Pastur edge (1 + √(d/n))² (Marchenko & Pastur 1967), the level that
    :func:`spectral_threshold` starts from; a direction with more variance than that stands out."""
    x = _points("x", x, min_rows=2)
    centred = x - x.mean(0)
    return float(torch.linalg.eigvalsh(centred.T @ centred / len(x))[-1])


@dataclass(frozen=True)
class PoisonSpike:
    """What the poisons of one :class:`Contaminated` sample add to its second moments (see
    :func:`poison_spike`): the top eigenvalue λ of the covariance and the variance along the
    poisons' direction u, each of the clean points alone and of all the points."""

    top_clean: float
    top_all: float
    along_u_clean: float
    along_u_all: float


def poison_spike(sample: Contaminated) -> PoisonSpike:
    """The spike that the poisons of ``sample`` make: :func:`top_eigenvalue` of the clean points and
    of all the points, and the variance (n − 1 in the denominator) of their projections on the unit
    direction u along which the poisons sit.

    For poisons at t_ε along u (``placement="tail"``), the variance along u grows from about 1 to
    about 1 + ε(t_ε² − 1) − ε² t_ε² (the mixture's variance), below the excess C ε log(1/ε) that
    :func:`spectral_threshold` tolerates, which is why the filter keeps them (see the module's
    docstring). Under additive contamination the rise of λ over the clean sample's own value is
    evidence nonetheless: nothing was removed to make room for the poisons.

    Args:
        sample: a :class:`Contaminated` sample (:func:`contaminated_gaussian`), with at least 2 clean points.
    """
    if not isinstance(sample, Contaminated):
        raise ValueError(f"sample must be a Contaminated sample (contaminated_gaussian), got {type(sample).__name__}")
    if int((~sample.is_poison).sum()) < 2:
        raise ValueError(f"sample needs at least 2 clean points, got {int((~sample.is_poison).sum())}")
    clean = sample.x[~sample.is_poison]
    return PoisonSpike(
        top_clean=top_eigenvalue(clean),
        top_all=top_eigenvalue(sample.x),
        along_u_clean=float((clean @ sample.direction).var()),
        along_u_all=float((sample.x @ sample.direction).var()),
    )
