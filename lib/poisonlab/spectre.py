"""SPECTRE: robust whitening, then quantum-entropy scoring (Hayase, Kong, Somani & Oh 2021,
"SPECTRE: Defending Against Backdoor Attacks Using Robust Statistics", ICML).

The spectral signature of chapter 4 scores a class along the top direction of its covariance.
Two things weaken it: genuine points that spread along some direction more than the poisons do
(the top direction is then theirs), and many poisons (they pull the mean and the covariance
towards themselves). SPECTRE removes both effects before scoring one class's representations:

1. **project** them on their top k principal directions (:func:`principal_coordinates`);
2. **estimate the clean covariance robustly** (:func:`robust_moments`) with the filter of
   Diakonikolas, Kamath, Kane, Li, Moitra & Stewart (2017, "Being Robust (in High Dimensions) Can
   Be Practical", ICML), the estimator of SPECTRE's Algorithm 2: whiten the points that remain,
   find the symmetric matrix V (‖V‖_F = 1) along which the quadratic form yᵀVy varies most
   (:func:`quadratic_direction`; a Gaussian gives exactly 2 in every such direction), and, while
   that variance is well above 2, remove the points whose yᵀVy lies unusually far from the median
   (:func:`filter_cut`). At most ``budget`` · ε · n points are removed in all, ε an upper bound on
   the poisons' share (SPECTRE's authors remove at most 2 ε n);
3. **whiten** with the mean and covariance of the points kept, x̃ = Σ̂^{-1/2}(x − μ̂)
   (:func:`whiten`), so the genuine spread becomes isotropic and whatever variance is left in
   excess belongs to the poisons;
4. **score** by quantum entropy (QUE; Dong, Hopkins & Li 2019; SPECTRE's eq. (3),
   :func:`que_scores`)::

       Q = exp(α (Σ̃ − I) / (‖Σ̃‖₂ − 1)) / tr(·),   τᵢ = x̃ᵢᵀ Q x̃ᵢ,

   with Σ̃ the covariance of the whitened points. α = 0 weighs every direction alike (τ is the
   squared norm over k); α → ∞ keeps only the top direction of Σ̃ (the spectral score after
   whitening); α = 4, the paper's default, lets several excess directions count.

The defender then removes the top 1.5 ε n of the class by τ (:func:`poisonlab.detect.remove_top`),
as in chapter 4. Threat model: the poisons are a share ε of their class and the defender knows an
upper bound on it.

Where the filter works and where it does not: it finds poisons that make the whitened class's
fourth moments heavier than a Gaussian's, that is, a small share of poisons, or poisons far from the
genuine points (a backdoor's, in a trained network's representations, at up to a third of the class
in this course's benchmark). A third of poisons only a few standard deviations from Gaussian genuine
points makes the fourth moments *lighter* than a Gaussian's along their offset; the filter then
stops at once, the whitening uses the whole class's covariance and the score is no better than
the plain spectral signature's, and can be worse (the theory behind the filter assumes a small
share ε).

Two choices differ from the authors' code (Julia, ``quantum_filters.jl``): the whitened points
are centred on the mean of the points the filter kept (the authors centre on the whole class's
mean, which many poisons pull towards themselves), and k is given rather than searched over a
grid by the largest QUE value (their ``rcov_auto_quantum_filter``). The filter's stopping level
allows for the sampling error of k(k+1)/2 directions (see :func:`covariance_filter`), and it has
no first pass that drops points of very large norm (theirs drops ‖y‖² ≥ 10 k log(10 n), which
rarely happens).
"""

from __future__ import annotations

import math

import torch

from poisonlab import _validate
from poisonlab.detect import _classes, _finite_matrix

__all__ = [
    "GAUSSIAN_QUADRATIC_VARIANCE",
    "covariance_filter",
    "filter_cut",
    "principal_coordinates",
    "quadratic_direction",
    "que_scores",
    "robust_moments",
    "spectre_scores",
    "whiten",
]

GAUSSIAN_QUADRATIC_VARIANCE = 2.0
"""Var(yᵀVy) for y ~ N(0, I) and a symmetric V with ‖V‖_F = 1 (Isserlis' theorem): the level the
filter compares the whitened points' quadratic forms with."""


RCOND = 1e-6
"""The floor of the robust covariance's eigenvalues, relative to the largest, when SPECTRE whitens:
the clean points of a class may not vary at all along a direction in which only poisons do."""


def _points(name: str, z: object, *, at_least: int = 2) -> torch.Tensor:
    """``z`` as a finite float64 CPU matrix (n, k) with at least ``at_least`` rows."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (n, k), got {type(z).__name__}")
    z = _finite_matrix(name, z)
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.shape[0] < at_least or z.shape[1] < 1:
        raise ValueError(f"{name} must have at least {at_least} rows and 1 column, got shape {tuple(z.shape)}")
    return z.double().cpu()


def principal_coordinates(reps: torch.Tensor, dims: int) -> torch.Tensor:
    """The coordinates (n, k) of one class's representations on their top k principal directions,
    k = min(``dims``, F, n − 1): the centred points times the top right singular vectors
    (SPECTRE's Algorithm 1, step 1).

    Args:
        reps: representations (n, F) of one class, finite, n ≥ 2.
        dims: the number of directions wanted, ≥ 1.

    Returns:
        (n, k) float64, centred.
    """
    reps = _points("reps", reps)
    dims = _validate.positive_int("dims", dims)
    centred = reps - reps.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(dims, reps.shape[1], reps.shape[0] - 1)
    return centred @ vh[:k].T


def _inverse_sqrt(cov: torch.Tensor, rcond: float = 0.0) -> torch.Tensor:
    """Σ^{-1/2} (k, k) of a symmetric positive-semidefinite Σ, its eigenvalues floored at
    ``rcond`` times the largest; with ``rcond`` = 0, raises when Σ is (nearly) singular."""
    values, vectors = torch.linalg.eigh(cov)
    top = float(values[-1])
    if top <= 0:
        raise ValueError("cov must be positive definite to whiten with it, got no positive eigenvalue")
    if rcond > 0:
        values = values.clamp(min=rcond * top)
    elif float(values[0]) <= 1e-10 * top:
        raise ValueError(
            f"cov must be positive definite to whiten with it, got eigenvalues from {float(values[0]):.3g} to {top:.3g}"
            " (fewer points than dimensions, or points on a subspace: use fewer dims, or rcond > 0)"
        )
    return vectors @ torch.diag(values.rsqrt()) @ vectors.T


def whiten(z: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, *, rcond: float = 0.0) -> torch.Tensor:
    """x̃ᵢ = Σ^{-1/2}(zᵢ − μ) for every row of ``z`` (SPECTRE's Algorithm 1, step 3): under the
    clean distribution's mean μ and covariance Σ, the clean points have identity covariance.

    Args:
        z: points (n, k), finite.
        mean: μ (k,).
        cov: Σ (k, k), symmetric, positive definite (or semidefinite with ``rcond`` > 0).
        rcond: in [0, 1): eigenvalues of Σ below ``rcond`` times its largest are raised to that
            level (a direction in which the clean points do not vary at all then magnifies any
            point off it); 0 refuses a singular Σ.

    Returns:
        (n, k) float64.
    """
    z = _points("z", z, at_least=1)
    k = z.shape[1]
    mean = _validate.shaped_like("mean", mean, (k,), "a row of z").double().cpu()
    cov = _validate.shaped_like("cov", cov, (k, k), "the columns of z").double().cpu()
    _validate.finite("mean", mean)
    _validate.finite("cov", cov)
    rcond = _validate.fraction("rcond", rcond)
    if not torch.allclose(cov, cov.T, rtol=1e-8, atol=1e-12 * float(cov.abs().max().clamp(min=1e-300))):
        raise ValueError("cov must be symmetric")
    return (z - mean) @ _inverse_sqrt(cov, rcond)


def _moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (k,) and covariance (k, k), normalised by n, of the rows of z."""
    mean = z.mean(0)
    centred = z - mean
    return mean, centred.T @ centred / z.shape[0]


def _quadratic_features(white: torch.Tensor) -> torch.Tensor:
    """Rows (n, k(k+1)/2) whose inner product with the scaled upper triangle of a symmetric V is
    yᵀVy − tr V: the diagonal terms yⱼ² − 1 and the off-diagonal terms √2·yⱼyₗ (j < l)."""
    k = white.shape[1]
    i, j = torch.triu_indices(k, k)
    products = white[:, i] * white[:, j]
    return torch.where(i == j, products - 1.0, products * math.sqrt(2.0))


def quadratic_direction(white: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The symmetric matrix V (k, k), ‖V‖_F = 1, that maximises the empirical second moment
    λ = (1/n) Σᵢ (yᵢᵀVyᵢ − tr V)² of whitened points y, and that maximum λ: the top eigenpair of
    the empirical fourth-moment matrix, less vec(I)vec(I)ᵀ (Diakonikolas et al. 2017, the filter for
    the covariance, step "find the direction of largest variance of the degree-2 polynomial").

    A Gaussian N(0, I) gives λ = 2 (:data:`GAUSSIAN_QUADRATIC_VARIANCE`) in every direction; points
    far off along some direction raise λ above it.

    Args:
        white: whitened points (n, k), finite, n ≥ 2.

    Returns:
        ``(lam, V)``: λ ≥ 0 and V (k, k) float64.
    """
    white = _points("white", white)
    feats = _quadratic_features(white)
    n, m = feats.shape
    if m <= n:  # the m × m matrix
        values, vectors = torch.linalg.eigh(feats.T @ feats / n)
        lam, top = float(values[-1]), vectors[:, -1]
    else:  # through the n × n Gram matrix: a left singular vector u gives Fᵀu / ‖Fᵀu‖
        values, vectors = torch.linalg.eigh(feats @ feats.T / n)
        lam, top = float(values[-1]), feats.T @ vectors[:, -1]
        top = top / top.norm().clamp(min=1e-300)
    k = white.shape[1]
    i, j = torch.triu_indices(k, k)
    entries = torch.where(i == j, top, top / math.sqrt(2.0))
    v = torch.zeros(k, k, dtype=torch.float64)
    v[i, j] = entries
    v[j, i] = entries
    return max(lam, 0.0), v


def filter_cut(deviations: torch.Tensor, eps: float, *, shift: float = 3.0) -> float | None:
    """The filter's threshold on the deviations ``|pᵢ − median(p)|`` of the unit-variance quadratic
    forms pᵢ = (yᵢᵀVyᵢ − tr V)/√2: every point whose deviation exceeds the returned cut is
    removed, ``None`` when the largest deviation is at most ``shift`` (nothing to remove).

    The rule is the one SPECTRE's code applies (``cov_estimation_filter`` in ``dkk17.jl``, after
    Diakonikolas et al. 2017's tail test with the slack ``shift`` = 3 and the tail bound that is 1
    up to 10 log(1/ε)): let d* be the smallest deviation above ``shift`` + 10 log(1/ε), or the
    largest deviation when none is that far; the cut is d* − ``shift``. So a round removes the
    points within ``shift`` of the farthest one, or, when some lie very far, everything from
    ``shift`` below the nearest of those outwards.

    Args:
        deviations: (n,) ≥ 0, finite, n ≥ 1.
        eps: the poisons' share, in (0, 1).
        shift: the slack, ≥ 0.

    Returns:
        the cut (a float), or ``None``.
    """
    if not isinstance(deviations, torch.Tensor) or deviations.ndim != 1 or deviations.numel() == 0:
        raise ValueError(f"deviations must be a non-empty 1-D tensor, got {getattr(deviations, 'shape', deviations)!r}")
    _validate.finite("deviations", deviations)
    eps = _positive_share("eps", eps)
    shift = _validate.positive_float("shift", shift, allow_zero=True)
    deviations = deviations.detach().double().cpu()
    largest = float(deviations.max())
    if largest <= shift:
        return None
    far = deviations[deviations > shift + 10.0 * math.log(1.0 / eps)]
    nearest_far = float(far.min()) if far.numel() else largest
    return nearest_far - shift


def _positive_share(name: str, value: object) -> float:
    share = _validate.fraction(name, value)
    if share <= 0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return share


def covariance_filter(
    z: torch.Tensor, eps: float, *, budget: float = 2.0, shift: float = 3.0, level: float | None = None
) -> torch.Tensor:
    """Keep-mask (n,) of the filter for robust covariance estimation (Diakonikolas et al. 2017, as
    SPECTRE's Algorithm 2 uses it): repeatedly whiten the points kept by their own mean and
    covariance, find the direction V of :func:`quadratic_direction`, stop when its variance λ is
    at most ``level``, else remove the points whose quadratic form lies beyond :func:`filter_cut`
    from the median (and stop when none does), until ⌈``budget`` · eps · n⌉ points are gone.

    Args:
        z: one class's points (n, k), finite, e.g. :func:`principal_coordinates`; n > k + 1.
        eps: an upper bound on the poisons' share, in (0, 1).
        budget: the most points removed, as a multiple of eps · n, > 0 (2 in SPECTRE's code).
        shift: the tail test's slack, ≥ 0 (see :func:`filter_cut`).
        level: the λ at or below which the points count as Gaussian, > 0; by default
            2 (1 + √(k(k+1)/2 / m))² (1 + ε log(1/ε)), m the points kept: the Gaussian value 2 with
            room for the largest eigenvalue's sampling error among k(k+1)/2 directions
            (Marchenko–Pastur) and for an ε-share of outliers. (SPECTRE's code stops at
            1 + 10 ε log²(1/ε), which ignores the number of points.)

    Returns:
        (n,) bool, True for the points kept.
    """
    z = _points("z", z)
    n, k = z.shape
    if n <= k + 1:
        raise ValueError(f"z must have more rows than columns + 1 to estimate a covariance, got shape {tuple(z.shape)}")
    eps = _positive_share("eps", eps)
    budget = _validate.positive_float("budget", budget)
    shift = _validate.positive_float("shift", shift, allow_zero=True)
    if level is not None:
        level = _validate.positive_float("level", level)
    keep = torch.ones(n, dtype=torch.bool)
    left = min(math.ceil(budget * eps * n), n - k - 2)
    while left > 0:
        idx = torch.nonzero(keep).flatten()
        mean, cov = _moments(z[idx])
        try:
            white = (z[idx] - mean) @ _inverse_sqrt(cov)
        except ValueError:
            break  # the points kept lie on a subspace: nothing left to whiten with
        lam, v = quadratic_direction(white)
        m = len(idx)
        gaussian = level
        if gaussian is None:
            dims = k * (k + 1) / 2
            gaussian = GAUSSIAN_QUADRATIC_VARIANCE * (1 + math.sqrt(dims / m)) ** 2 * (1 + eps * math.log(1 / eps))
        if lam <= gaussian:
            break
        p = (torch.einsum("ni,ij,nj->n", white, v, white) - v.trace()) / math.sqrt(2.0)
        deviations = (p - p.median()).abs()
        cut = filter_cut(deviations, eps, shift=shift)
        if cut is None:
            break
        drop = torch.nonzero(deviations > cut).flatten()
        if len(drop) > left:
            drop = deviations.topk(left).indices
        keep[idx[drop]] = False
        left -= len(drop)
    return keep


def robust_moments(
    z: torch.Tensor, eps: float, *, budget: float = 2.0, shift: float = 3.0, level: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A robust mean (k,) and covariance (k, k) of the clean points among z: the sample mean and
    covariance (normalised by the count) of the points :func:`covariance_filter` keeps (SPECTRE's
    Algorithm 2). Same arguments as :func:`covariance_filter`.

    Returns:
        ``(mean, cov)``, float64.
    """
    z = _points("z", z)
    keep = covariance_filter(z, eps, budget=budget, shift=shift, level=level)
    return _moments(z[keep])


def que_scores(white: torch.Tensor, *, alpha: float = 4.0) -> torch.Tensor:
    """Quantum-entropy (QUE) scores of whitened points (Dong, Hopkins & Li 2019; SPECTRE's eq. (3)):

    .. math:: Q = \\frac{\\exp\\big(\\alpha (\\tilde\\Sigma - I) / (\\lVert\\tilde\\Sigma\\rVert_2 - 1)\\big)}
              {\\operatorname{tr} \\exp\\big(\\alpha (\\tilde\\Sigma - I) / (\\lVert\\tilde\\Sigma\\rVert_2 - 1)\\big)},
              \\qquad \\tau_i = \\tilde x_i^\\top Q \\tilde x_i ,

    with Σ̃ the covariance of the rows x̃ᵢ (normalised by n). α = 0 gives τᵢ = ‖x̃ᵢ‖²/k; α = ∞ gives
    (x̃ᵢ·v)², v the top eigenvector of Σ̃ (the spectral score; a tied top eigenvalue shares Q
    equally). When Σ̃ has no eigenvalue above 1 there is no excess direction and Q = I/k.

    Args:
        white: whitened points (n, k), finite, n ≥ 2 (see :func:`whiten`).
        alpha: α in [0, ∞].

    Returns:
        Scores (n,) ≥ 0, float64.
    """
    white = _points("white", white)
    alpha = _validate.positive_float("alpha", alpha, allow_zero=True, allow_inf=True)
    _, cov = _moments(white)
    values, vectors = torch.linalg.eigh(cov)
    top = float(values[-1])
    if top - 1 <= 1e-12 * max(1.0, top) or alpha == 0:
        weights = torch.ones_like(values)
    elif math.isinf(alpha):
        weights = (values >= top - 1e-12 * top).double()
    else:  # exp(α(λ − 1)/(λ_max − 1)), divided by its largest value e^α to stay finite
        weights = torch.exp(alpha * ((values - 1) / (top - 1) - 1))
    weights = weights / weights.sum()
    projected = white @ vectors
    return (projected.pow(2) * weights).sum(1).clamp(min=0)


def spectre_scores(
    reps: torch.Tensor, labels: torch.Tensor, eps: float, *, dims: int = 16, alpha: float = 4.0, budget: float = 2.0
) -> torch.Tensor:
    """SPECTRE's suspicion scores, class by class (Hayase et al. 2021, Algorithm 1): project each
    class on its top ``dims`` principal directions (:func:`principal_coordinates`), estimate the
    clean mean and covariance with the filter (:func:`robust_moments`), whiten with them
    (:func:`whiten`) and score by QUE (:func:`que_scores`).

    Args:
        reps: representations (N, F), finite, e.g. ``train.embed(model, x)``.
        labels: the given labels (N,); every class needs more than ``min(dims, F) + 2`` points.
        eps: an upper bound on the poisons' share of a class, in (0, 1).
        dims: principal directions kept, ≥ 1 (fewer when F or the class is smaller).
        alpha: QUE's α in [0, ∞].
        budget: the filter removes at most ``budget`` · eps of a class while estimating, > 0.

    Returns:
        Scores (N,) ≥ 0, comparable within a class; ``float64`` on the CPU, like
        :func:`poisonlab.detect.spectral_scores`. Remove the top 1.5 ε of a class with
        :func:`poisonlab.detect.remove_top`.
    """
    reps = _points("reps", reps)
    dims = _validate.positive_int("dims", dims)
    eps = _positive_share("eps", eps)
    alpha = _validate.positive_float("alpha", alpha, allow_zero=True, allow_inf=True)
    budget = _validate.positive_float("budget", budget)
    scores = torch.zeros(reps.shape[0], dtype=torch.float64)
    for idx in _classes(labels, reps.shape[0]):
        k = min(dims, reps.shape[1])
        if len(idx) <= k + 2:
            raise ValueError(
                f"a class of {len(idx)} points is too small for SPECTRE in {k} dimensions; give fewer dims"
            )
        z = principal_coordinates(reps[idx], dims)
        mean, cov = robust_moments(z, eps, budget=budget)
        scores[idx] = que_scores(whiten(z, mean, cov, rcond=RCOND), alpha=alpha)
    return scores
