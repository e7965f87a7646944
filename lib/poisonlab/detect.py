"""Finding poisons in a training set (chapters 4–5): spectral signatures in representations and
in per-sample gradients, activation clustering, and how to score a detector.

Every detector here returns one *suspicion score* per training point (higher = more suspicious);
:func:`remove_top` turns scores into a keep-mask, and :func:`detection_report` compares scores or
flags with the ground truth ``PoisonedSet.is_poison``.

Activation clustering (Chen et al. 2018) is :func:`activation_clusters` (2-means after PCA or, as
in the paper, ICA) and its decisions, :func:`activation_verdicts` (relative size, silhouette) and
:func:`reclassification_ratio` (exclusionary reclassification).

The spectral signature (Tran, Li & Madry 2018): within one class, let R be the representations
(n, F), R̄ their mean and v the top right singular vector of R − R̄. Then

.. math:: \\tau_i = \\big((R_i - \\bar R) \\cdot v\\big)^2 ,

and poisons that share a trigger concentrate on the top of τ. The representations are *centred*
first, as in the paper (without centring, v points at the class mean instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate, models
from poisonlab.poison import count_for_rate
from poisonlab.train import embed, fit


def _finite_matrix(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (N, F), got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return _validate.finite(name, x).detach()


def _classes(labels: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Index tensors of every class present in ``labels``, each with at least 2 members."""
    labels = _validate.labels("labels", labels, n=n).cpu()
    groups = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < 2:
            raise ValueError(
                f"labels must give every class at least 2 samples (a spectral score needs them), "
                f"got class {c} with {len(idx)}"
            )
        groups.append(idx)
    return groups


def top_direction(centred: torch.Tensor) -> torch.Tensor:
    """The top right singular vector (F,) of a centred matrix (n, F), from the smaller of the two
    Gram matrices (F × F, or n × n when n < F; no per-sample F × F matrices are formed); raises
    when the matrix is constant. ``centred`` must be a finite floating-point matrix (n, F) with
    n >= 1."""
    centred = _finite_matrix("centred", centred)
    if centred.shape[0] == 0 or centred.shape[1] == 0:
        raise ValueError(f"centred must have at least one row and one column, got shape {tuple(centred.shape)}")
    c = centred.double()
    wide = c.shape[0] < c.shape[1]
    gram = c @ c.T if wide else c.T @ c
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    if float(eigenvalues[-1]) <= 1e-12 * max(1.0, float(gram.diagonal().abs().max())):
        raise ValueError("the representations of a class are constant; no direction to score along")
    top = eigenvectors[:, -1]
    if wide:  # a left singular vector u gives the right one as Cᵀu / ‖Cᵀu‖
        top = c.T @ top
        top = top / top.norm()
    return top.to(centred.dtype)


def spectral_scores(reps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Spectral-signature scores τᵢ = ((Rᵢ − R̄_c)·v_c)², class by class (Tran et al. 2018,
    Algorithm 1).

    Args:
        reps: representations (N, F), e.g. ``train.embed(model, x)``; finite.
        labels: the training labels (N,) (the *given* labels, poisons included); every class
            present needs at least 2 samples.

    Returns:
        Scores (N,) ≥ 0, comparable within a class; ``float64`` on the CPU, as every score of
        this module (computed in the dtype of ``reps``).
    """
    reps = _finite_matrix("reps", reps)
    scores = torch.zeros(reps.shape[0], dtype=reps.dtype, device=reps.device)
    for idx in _classes(labels, reps.shape[0]):
        r = reps[idx.to(reps.device)]
        centred = r - r.mean(0)
        v = top_direction(centred)
        scores[idx.to(reps.device)] = (centred @ v).pow(2)
    return scores.cpu().double()


def mixture_covariance(
    eps: float, mean_clean: torch.Tensor, mean_poison: torch.Tensor, cov_clean: torch.Tensor, cov_poison: torch.Tensor
) -> torch.Tensor:
    """Covariance (F, F) of the mixture (1 − ε) D + ε W of clean points D and poisons W:

    .. math:: \\Sigma = (1-\\varepsilon)\\Sigma_D + \\varepsilon\\Sigma_W
              + \\varepsilon(1-\\varepsilon)\\,\\Delta\\Delta^\\top,\\qquad \\Delta = \\mu_D - \\mu_W

    (the decomposition behind Tran, Li & Madry 2018, Lemma 3.1). Means are (F,), covariances
    (F, F), all finite floating point; eps in [0, 1).
    """
    eps = _validate.fraction("eps", eps)
    mean_clean = _validate.vector("mean_clean", mean_clean)
    f = mean_clean.shape[-1]
    for name, t, shape in (
        ("mean_poison", mean_poison, (f,)),
        ("cov_clean", cov_clean, (f, f)),
        ("cov_poison", cov_poison, (f, f)),
    ):
        _validate.shaped_like(name, t, shape, "mean_clean's (F,)" if len(shape) == 1 else "(F, F) for mean_clean's F")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        _validate.finite(name, t)
    delta = mean_clean - mean_poison
    return (1 - eps) * cov_clean + eps * cov_poison + eps * (1 - eps) * torch.outer(delta, delta)


def spike_components(reps: torch.Tensor, is_poison: torch.Tensor) -> tuple[float, float, float]:
    """The three quantities of one class's spike (Tran et al. 2018, Lemma 3.1): the poisons'
    share ε, the squared distance ‖Δ‖² between the clean and poison means, and the largest spread
    σ² = max(‖Σ_D‖₂, ‖Σ_W‖₂) of either group (covariances normalised by the group's size).

    Args:
        reps: representations (n, F) of one class, finite.
        is_poison: (n,) bool with at least 2 poisons and 2 clean points.

    Returns:
        ``(eps, delta_sq, sigma_sq)``.
    """
    reps = _finite_matrix("reps", reps).double().cpu()
    p = _validate.shaped_like("is_poison", is_poison, (reps.shape[0],), "the rows of reps").bool().cpu()
    n_p, _ = _both_groups(p, 2)
    clean, poison = reps[~p], reps[p]
    delta = clean.mean(0) - poison.mean(0)

    def spread(r: torch.Tensor) -> float:
        c = r - r.mean(0)
        return float(torch.linalg.eigvalsh(c.T @ c / len(r))[-1])

    return n_p / len(p), float(delta @ delta), max(spread(clean), spread(poison))


def separation(reps: torch.Tensor, is_poison: torch.Tensor) -> float:
    """How loud the poisons' spectral signature is within one class: the spike's strength over
    the largest spread of either group,

    .. math:: s = \\frac{\\varepsilon(1-\\varepsilon)\\lVert\\Delta\\rVert^2}
              {\\max(\\lVert\\Sigma_D\\rVert_2, \\lVert\\Sigma_W\\rVert_2)} ,

    with the quantities of :func:`spike_components` (Tran et al. 2018, Lemma 3.1, guarantees
    separation when s is large enough). It needs the ground truth, so it is an analysis tool,
    not a detector.

    Args:
        reps: representations (n, F) of one class, finite.
        is_poison: (n,) bool with at least 2 poisons and 2 clean points.

    Returns:
        s ≥ 0 (``inf`` when both groups are constant and distinct).
    """
    eps, delta_sq, sigma_sq = spike_components(reps, is_poison)
    signal = eps * (1 - eps) * delta_sq
    return signal / sigma_sq if sigma_sq > 0 else (math.inf if signal > 0 else 0.0)


def alignment(reps: torch.Tensor, is_poison: torch.Tensor) -> float:
    """The absolute cosine of the angle θ between the top direction v of one class's centred
    representations and the direction Δ = μ_D − μ_W from the poisons' mean to the clean mean, in
    [0, 1]: 1 when the
    spectral score looks straight at the poisons, near 0 when it looks past them (the angle
    that Davis–Kahan bounds by 2/s, see :func:`separation`; its square is the overlap that
    chapter 5 plots against the spike's strength).

    Args:
        reps: representations (n, F) of one class, finite, not all equal.
        is_poison: (n,) bool with at least 1 poison and 1 clean point.
    """
    reps = _finite_matrix("reps", reps).double().cpu()
    p = _validate.shaped_like("is_poison", is_poison, (reps.shape[0],), "the rows of reps").bool().cpu()
    _both_groups(p)
    delta = reps[~p].mean(0) - reps[p].mean(0)
    if float(delta.norm()) == 0.0:
        raise ValueError("the poisons and the clean points have the same mean; Δ has no direction")
    v = top_direction(reps - reps.mean(0))
    return float((v @ delta).abs() / delta.norm())


def signature_stats(
    reps: torch.Tensor,
    labels: torch.Tensor,
    is_poison: torch.Tensor,
    target: int,
    *,
    scores: torch.Tensor | None = None,
) -> dict[str, float]:
    """How the spectral signature fares in the attacked class, from the ground truth: the AUC of
    the scores τ (Tran et al. 2018, Algorithm 1), the alignment ``|cos θ|`` between the top direction
    and Δ (:func:`alignment`) and the separation s (:func:`separation`, Lemma 3.1).

    Args:
        reps: representations (N, F) of the whole training set (or its pixels, flattened), finite.
        labels: the given labels (N,); class ``target`` needs at least 2 poisons and 2 clean points.
        is_poison: ground truth (N,), bool.
        target: the attacked class.
        scores: the scores (N,) of :func:`spectral_scores` when already computed; computed from
            ``reps`` otherwise.

    Returns:
        ``{"auc": AUC in [0, 1], "cos": the alignment in [0, 1], "s": s >= 0}``.
    """
    labels = _validate.labels("labels", labels, n=_finite_matrix("reps", reps).shape[0]).cpu()
    _validate.shaped_like("is_poison", is_poison, labels.shape, "labels")
    t = labels == _class_present("target", target, labels)
    truth = is_poison.bool().cpu()[t]
    scores = spectral_scores(reps, labels) if scores is None else scores
    _validate.shaped_like("scores", scores, labels.shape, "labels")
    return {"auc": roc_auc(scores[t], truth), "cos": alignment(reps[t], truth), "s": separation(reps[t], truth)}


def _class_present(name: str, value: object, labels: torch.Tensor) -> int:
    """``value`` as a class index after checking that it occurs in ``labels``."""
    value = _validate.non_negative_class(name, value)
    if not bool((labels == value).any()):
        raise ValueError(f"{name} {value} does not occur in the labels (present: {torch.unique(labels).tolist()})")
    return value


def signature_aucs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, is_poison: torch.Tensor) -> dict[str, float]:
    """The AUCs of the two spectral signatures of one class under ``model``: the representation
    score (Tran et al. 2018, Algorithm 1) and the gradient score (:func:`gradient_scores`). Cheap
    enough to call after every epoch (``fit(..., callback=lambda _, m: signature_aucs(m, ...))``) to
    watch a signature form or fade during training.

    Args:
        model: a :class:`~poisonlab.models.Classifier` (``features`` and ``head``).
        x: the class's training inputs (n, ...), finite floating point (another floating dtype
            is converted to the model's; integer or ``bool`` inputs are refused with a TypeError);
            y: their given labels (n,), one class, in [0, K).
        is_poison: ground truth (n,) with at least one poison and one clean point.

    Returns:
        ``{"representation": AUC, "gradient": AUC}``, each in [0, 1].
    """
    x, y = _validate.model_inputs(model, x, y=y)
    if len(torch.unique(y)) != 1:
        raise ValueError(f"x and y must hold one class, got classes {torch.unique(y).tolist()}")
    _validate.shaped_like("is_poison", is_poison, y.shape, "y")
    reps = embed(model, x)
    return {
        "representation": roc_auc(spectral_scores(reps, y), is_poison),
        "gradient": roc_auc(gradient_scores(model, x, y), is_poison),
    }


def head_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two factors of the per-sample gradients of the cross-entropy w.r.t. the head's
    weights V: ∇_V ℓᵢ = (softmax(zᵢ) − e_{yᵢ}) φ(xᵢ)ᵀ, an outer product.

    Returns ``(a, b)`` with a = softmax(z) − onehot(y) (N, K) and b = φ(x) (N, F); the
    gradient of sample i is ``outer(a[i], b[i])``, never formed here.

    ``x`` (N, ...) must be finite and floating point (another floating dtype is converted to the
    model's; integer or ``bool`` inputs are refused with a TypeError); ``y`` (N,) in [0, K), K the
    model's number of outputs; ``batch_size`` an integer >= 1.
    """
    if not hasattr(model, "features") or not hasattr(model, "head"):
        raise ValueError("model must have .features and .head (a poisonlab Classifier)")
    x, y = _validate.model_inputs(model, x, y=y)
    batch_size = _validate.positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    a_parts, b_parts = [], []
    try:
        dev = next(iter(model.parameters()), torch.empty(0)).device
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                xb = x[i : i + batch_size].to(dev)
                feats = model.features(xb)
                probs = F.softmax(model.head(feats), dim=1)
                a_parts.append(probs.cpu() - F.one_hot(y[i : i + batch_size].cpu(), probs.shape[1]).to(probs.dtype))
                b_parts.append(feats.cpu())
    finally:
        model.train(was_training)
    return torch.cat(a_parts), torch.cat(b_parts)


def _top_direction_outer(
    a: torch.Tensor, b: torch.Tensor, *, iters: int = 60, rank: int = 4, seed: int = 0
) -> torch.Tensor:
    """Top right singular vector of G − Ḡ, where row i of G is vec(aᵢ bᵢᵀ) (K·F), by subspace
    iteration with products that never form G: entry i of (G − Ḡ) vec(V) is aᵢᵀ V bᵢ − ⟨Ḡ, V⟩,
    and (G − Ḡ)ᵀ u = aᵀ diag(u) b − (Σᵢ uᵢ) Ḡ."""
    n, k = a.shape
    f = b.shape[1]
    a, b = a.double(), b.double()
    mean = (a.T @ b) / n  # Ḡ as a K × F matrix

    def times(v: torch.Tensor) -> torch.Tensor:  # (K·F, r) → (n, r): (G − Ḡ) v
        vs = v.T.reshape(-1, k, f)  # (r, K, F)
        return torch.einsum("nk,rkf,nf->nr", a, vs, b) - torch.einsum("kf,rkf->r", mean, vs)

    def times_t(u: torch.Tensor) -> torch.Tensor:  # (n, r) → (K·F, r): (G − Ḡ)ᵀ u
        out = torch.einsum("nk,nr,nf->rkf", a, u, b) - torch.einsum("r,kf->rkf", u.sum(0), mean)
        return out.reshape(u.shape[1], -1).T

    g = _validate.generator(seed)
    q, _ = torch.linalg.qr(torch.randn(k * f, min(rank, k * f), generator=g, dtype=torch.float64))
    for _ in range(iters):
        q, _ = torch.linalg.qr(times_t(times(q)))
    # Rayleigh–Ritz on the subspace
    small = q.T @ times_t(times(q))
    w, vecs = torch.linalg.eigh(small)
    if float(w[-1]) <= 1e-12:
        raise ValueError("the per-sample gradients of a class are constant; no direction to score along")
    return q @ vecs[:, -1]


def gradient_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024, seed: int = 0
) -> torch.Tensor:
    """Spectral scores of the per-sample gradients of the loss w.r.t. the head's weights, class
    by class: the same τ as :func:`spectral_scores`, with gᵢ = vec((softmax(zᵢ) − e_{yᵢ})
    φ(xᵢ)ᵀ) in place of the representation (the "gradient covariance" signature).

    The gradients are outer products; the top singular vector of the centred gradient matrix is
    found by subspace iteration with products that never form it, so memory stays O(N (K + F)).

    Args:
        model: a :class:`~poisonlab.models.Classifier` (``features`` and ``head``).
        x: training inputs (N, ...), checked and converted as in :func:`head_gradients`;
            y: their given labels (N,) in [0, K).
        batch_size: inputs per forward pass, >= 1.
        seed: seeds the starting subspace of the iteration.

    Returns:
        Scores (N,) ≥ 0, ``float64`` on the CPU.
    """
    if not hasattr(model, "features") or not hasattr(model, "head"):
        raise ValueError("model must have .features and .head (a poisonlab Classifier)")
    x, y = _validate.model_inputs(model, x, y=y)
    a, b = head_gradients(model, x, y, batch_size=batch_size)
    _validate.finite("the model's outputs and features", torch.cat([a.flatten(), b.flatten()]))
    scores = torch.zeros(x.shape[0], dtype=torch.float64)
    k, f = a.shape[1], b.shape[1]
    for idx in _classes(y, x.shape[0]):
        ac, bc = a[idx].double(), b[idx].double()
        v = _top_direction_outer(ac, bc, seed=seed).reshape(k, f)
        mean = (ac.T @ bc) / len(idx)
        proj = torch.einsum("nk,kf,nf->n", ac, v, bc) - (mean * v).sum()
        scores[idx] = proj.pow(2)
    return scores


def early_gradient_scores(
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    *,
    epochs: int = 1,
    lr: float = 0.05,
    seed: int = 0,
    arch: str = "cnn",
    model: str | None = None,
) -> torch.Tensor:
    """Gradient signatures read early: train a fresh model of architecture ``arch`` for a few
    ``epochs`` on the (poisoned) training set, then score the class ``target`` by
    :func:`gradient_scores`. Poisons that a
    network has not fitted yet still have large, aligned gradients; once they are fitted the
    signature fades (the "look early" idea of Li et al. 2021, "Anti-backdoor learning", applied
    to the gradient covariance signature).

    Args:
        x: training inputs (N, C, H, W); y: their given labels (N,) in [0, K).
        target: the class to score, present in ``y`` with at least 2 points.
        epochs: the short run's epochs, >= 1 (SGD with momentum, :func:`poisonlab.train.fit`'s
            defaults otherwise).
        lr: its learning rate, > 0.
        seed: seeds the initial weights and the shuffling.
        arch: ``"logreg"``, ``"mlp"`` or ``"cnn"`` (:func:`poisonlab.models.make`).
        model: the old name of ``arch``, still accepted.

    Returns:
        Scores (N,) ≥ 0, ``float64``: the gradient scores in class ``target``, 0 elsewhere.
    """
    x = _validate.images("x", x)
    y = _validate.labels("y", y, n=x.shape[0]).cpu()
    t = y == _class_present("target", target, y)
    epochs = _validate.positive_int("epochs", epochs)
    lr = _validate.positive_float("lr", lr)
    arch = _validate.renamed("arch", arch, "model", model, "cnn")
    arch = _validate.choice("arch", arch, models.NAMES)
    net = models.make(arch, tuple(x.shape[1:]), int(y.max()) + 1, seed=seed)
    x, y = _validate.model_inputs(net, x, y=y)
    fit(net, x, y, epochs=epochs, lr=lr, seed=seed, progress=False)
    scores = torch.zeros(len(y), dtype=torch.float64)
    scores[t] = gradient_scores(net, x[t], y[t])
    return scores


def _kmeans2(z: torch.Tensor, *, seed: int, restarts: int = 5, iters: int = 50) -> torch.Tensor:
    """2-means labels (n,) in {0, 1}: the best of ``restarts`` runs of Lloyd's algorithm."""
    g = _validate.generator(seed)
    best, best_cost = None, math.inf
    for _ in range(restarts):
        centres = z[torch.randperm(len(z), generator=g)[:2]].clone()
        assign = torch.zeros(len(z), dtype=torch.long)
        for _ in range(iters):
            assign = torch.cdist(z, centres).argmin(1)
            new = torch.stack([z[assign == j].mean(0) if bool((assign == j).any()) else centres[j] for j in (0, 1)])
            if torch.allclose(new, centres):
                break
            centres = new
        cost = float(torch.cdist(z, centres).min(1).values.pow(2).sum())
        if cost < best_cost:
            best, best_cost = assign, cost
    return best


@dataclass
class Clusters:
    """The outcome of :func:`activation_clusters`.

    Attributes:
        flags: (N,) True for the points in the smaller of their class's two clusters.
        scores: (N,) suspicion in [0, 1]: flagged points score 1 − (their cluster's share of the
            class), unflagged ones 0, so a small, tight cluster ranks first.
        relative_size: for each class, the smaller cluster's share of it.
        silhouette: for each class, the mean silhouette of the 2-clustering (high = well split).
    """

    flags: torch.Tensor
    scores: torch.Tensor
    relative_size: dict[int, float]
    silhouette: dict[int, float]


def _silhouette(z: torch.Tensor, assign: torch.Tensor) -> float:
    """The mean silhouette (b − a) / max(a, b) of a 2-clustering of the points z (n, d), with a a
    point's mean distance to the rest of its cluster and b to the other cluster; a point alone in
    its cluster, or every point of a one-cluster assignment, counts 0 (Rousseeuw 1987)."""
    n = len(z)
    d = torch.cdist(z, z)
    same = assign[:, None] == assign[None, :]
    n_same = same.sum(1)
    a = (d * same).sum(1) / (n_same - 1).clamp(min=1)
    b = (d * ~same).sum(1) / (n - n_same).clamp(min=1)
    s = (b - a) / torch.maximum(torch.maximum(a, b), torch.tensor(1e-12, dtype=d.dtype))
    s = torch.where((n_same <= 1) | (n_same == n), torch.zeros_like(s), s)
    return float(s.sum()) / n


REDUCTIONS = ("pca", "ica")


def _reduce(centred: torch.Tensor, dims: int, how: str, seed: int) -> torch.Tensor:
    """Project one class's centred representations (n, F) to (n, dims): on the top principal
    directions (``"pca"``), or on ``dims`` independent components found by FastICA (``"ica"``,
    scikit-learn, unit-variance whitening, as Chen et al. 2018 reduce before clustering)."""
    if how == "pca":
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        return centred @ vh[:dims].T
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # a class of a few hundred points may stop at max_iter
        warnings.simplefilter("ignore", ConvergenceWarning)
        z = FastICA(n_components=dims, whiten="unit-variance", random_state=seed, max_iter=400).fit_transform(
            centred.numpy()
        )
    return torch.from_numpy(z).double()


def activation_clusters(
    reps: torch.Tensor,
    labels: torch.Tensor,
    *,
    dims: int = 10,
    seed: int = 0,
    silhouette_sample: int = 1000,
    reduce: str = "pca",
) -> Clusters:
    """Activation clustering (Chen et al. 2018): per class, reduce the centred representations
    to ``dims`` dimensions, split them into 2 clusters with k-means, and flag the smaller cluster.

    Chen et al. reduce with ICA to 10 dimensions (``reduce="ica"``); PCA (the default here, and
    ART's) projects on the top ``dims`` principal directions. Whether a class is poisoned at all
    is a separate decision, made from the outcome by :func:`activation_verdicts` (relative size,
    silhouette) or :func:`reclassification_ratio` (exclusionary reclassification).

    Args:
        reps: representations (N, F), finite.
        labels: given labels (N,), at least 2 samples per class (more than ``dims`` for ICA).
        dims: dimensions kept (Chen et al. use 10), at most F.
        seed: seeds k-means, ICA and the silhouette's subsample.
        silhouette_sample: at most this many points per class enter the silhouette, an integer
            >= 2 (``bool`` refused).
        reduce: ``"pca"`` or ``"ica"``.
    """
    reps = _finite_matrix("reps", reps).double().cpu()
    dims = _validate.positive_int("dims", dims)
    silhouette_sample = _validate.positive_int("silhouette_sample", silhouette_sample)
    if silhouette_sample < 2:
        raise ValueError(f"silhouette_sample must be >= 2 (a silhouette compares points), got {silhouette_sample}")
    if dims > reps.shape[1]:
        raise ValueError(f"dims must be at most the representation width {reps.shape[1]}, got {dims}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    flags = torch.zeros(reps.shape[0], dtype=torch.bool)
    scores = torch.zeros(reps.shape[0])
    sizes, sil = {}, {}
    labels = _validate.labels("labels", labels, n=reps.shape[0]).cpu()
    g = _validate.generator(seed)
    for idx in _classes(labels, reps.shape[0]):
        c = int(labels[idx[0]])
        centred = reps[idx] - reps[idx].mean(0)
        if reduce == "ica" and len(idx) <= dims:
            raise ValueError(
                f"ICA to {dims} dimensions needs more than {dims} points per class; class {c} has {len(idx)}"
            )
        z = _reduce(centred, dims, reduce, seed)
        assign = _kmeans2(z, seed=seed)
        small = int(assign.float().mean() < 0.5)  # the label of the smaller cluster
        share = float((assign == small).float().mean())
        flags[idx] = assign == small
        scores[idx] = torch.where(assign == small, torch.tensor(1.0 - share), torch.tensor(0.0)).float()
        sizes[c] = share
        pick = torch.randperm(len(idx), generator=g)[:silhouette_sample]
        sil[c] = _silhouette(z[pick], assign[pick])
    return Clusters(flags, scores, sizes, sil)


@dataclass
class Verdict:
    """Activation clustering's decision for one class (Chen et al. 2018, Section 4.2).

    Attributes:
        relative_size: the smaller cluster's share of the class, in (0, 0.5].
        silhouette: the mean silhouette of the 2-clustering, in [−1, 1].
        by_size: the relative-size rule calls the class poisoned (smaller cluster ≤ ``size``).
        by_silhouette: the silhouette rule calls it poisoned (silhouette ≥ ``silhouette`` *and*
            the smaller cluster ≤ ``size``, as ART's ``analyze_by_silhouette_score`` decides).
    """

    relative_size: float
    silhouette: float
    by_size: bool
    by_silhouette: bool


def activation_verdicts(clusters: Clusters, *, size: float = 0.35, silhouette: float = 0.10) -> dict[int, Verdict]:
    """Decide, class by class, whether activation clustering found poisons.

    Chen et al. 2018 expect the poisons to be the smaller cluster and to be at most a share p of
    their class: the *relative-size* rule flags a class whose smaller cluster holds ≤ ``size`` of it
    (0.35 is the Adversarial Robustness Toolbox's default). The *silhouette* rule also asks that the
    two clusters be well separated (mean silhouette ≥ ``silhouette``, ART's default 0.10); a clean
    class splits into two large, overlapping halves and fails both.

    Args:
        clusters: the outcome of :func:`activation_clusters`.
        size: the largest share of its class a poison cluster may hold, in (0, 0.5].
        silhouette: the smallest mean silhouette of a real split, in [−1, 1].

    Returns:
        ``{class: Verdict}``.
    """
    if not isinstance(clusters, Clusters):
        raise ValueError(f"clusters must be a Clusters (from activation_clusters), got {type(clusters).__name__}")
    size = _validate.finite_number("size", size)
    if not 0.0 < size <= 0.5:
        raise ValueError(f"size must be in (0, 0.5] (the smaller of two clusters), got {size}")
    silhouette = _validate.finite_number("silhouette", silhouette)
    if not -1.0 <= silhouette <= 1.0:
        raise ValueError(f"silhouette must be in [-1, 1], got {silhouette}")
    out = {}
    for c, share in clusters.relative_size.items():
        small = share <= size
        sil = clusters.silhouette[c]
        out[c] = Verdict(share, sil, small, small and sil >= silhouette)
    return out


def activation_report(
    reps: torch.Tensor,
    labels: torch.Tensor,
    is_poison: torch.Tensor,
    target: int,
    *,
    dims: int = 10,
    reduce: str = "pca",
    seed: int = 0,
    size: float = 0.35,
    silhouette: float = 0.10,
) -> dict[str, float | int | bool | torch.Tensor]:
    """Activation clustering (Chen et al. 2018) run and judged on a training set with a known
    attacked class: :func:`activation_clusters`, then :func:`activation_verdicts` for the class
    ``target`` and for the others (false alarms), and the flags of ``target`` against the truth.

    Args:
        reps: representations (N, F), finite.
        labels: given labels (N,); ``target`` must be present.
        is_poison: ground truth (N,), bool.
        target: the attacked class.
        dims, reduce, seed: as in :func:`activation_clusters`.
        size, silhouette: the thresholds of :func:`activation_verdicts`.

    Returns:
        A dict with ``flags`` (N,) bool; for ``target``: ``relative_size``, ``silhouette``,
        ``by_size`` and ``by_silhouette`` (its :class:`Verdict`), and ``recall``, ``precision``
        and ``auc`` of its flags (:func:`detection_report`); and ``clean_by_size`` and
        ``clean_by_silhouette``, the other classes flagged by each rule (ints).
    """
    labels = _validate.labels("labels", labels, n=_finite_matrix("reps", reps).shape[0]).cpu()
    _validate.shaped_like("is_poison", is_poison, labels.shape, "labels")
    target = _class_present("target", target, labels)
    clusters = activation_clusters(reps, labels, dims=dims, reduce=reduce, seed=seed)
    verdicts = activation_verdicts(clusters, size=size, silhouette=silhouette)
    t = labels == target
    found = detection_report(clusters.flags[t], is_poison.bool().cpu()[t])
    mine = verdicts[target]
    return {
        "flags": clusters.flags,
        "relative_size": mine.relative_size,
        "silhouette": mine.silhouette,
        "by_size": mine.by_size,
        "by_silhouette": mine.by_silhouette,
        "recall": found.recall,
        "precision": found.precision,
        "auc": found.auc,
        "clean_by_size": sum(v.by_size for c, v in verdicts.items() if c != target),
        "clean_by_silhouette": sum(v.by_silhouette for c, v in verdicts.items() if c != target),
    }


def detectors_on_class(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    is_poison: torch.Tensor,
    target: int,
    *,
    dims: int = 10,
    reduce: str = "pca",
    seed: int = 0,
    size: float = 0.35,
    silhouette: float = 0.10,
) -> dict[str, float | bool]:
    """The three detectors of chapter 4 on the attacked class of one trained model, from the
    ground truth: the AUCs of the representation score (Tran et al. 2018), the gradient score
    (:func:`gradient_scores`) and the flags of activation clustering (Chen et al. 2018, on that
    class alone), the separation s (:func:`separation`), and activation clustering's verdict.

    Args:
        model: a :class:`~poisonlab.models.Classifier` trained on ``(x, y)``.
        x: the training inputs (N, ...), finite floating point (another floating dtype is
            converted to the model's; integer or ``bool`` inputs are refused with a TypeError);
            y: their given labels (N,) in [0, K).
        is_poison: ground truth (N,), bool, with at least 2 poisons and 2 clean points in ``target``.
        target: the attacked class, present in ``y``.
        dims, reduce, seed, size, silhouette: as in :func:`activation_report`.

    Returns:
        ``{"representation", "gradient", "clustering"}`` (AUCs in [0, 1], in that order), then
        ``"separation"`` (s >= 0), ``"relative_size"``, ``"silhouette"``, ``"by_size"`` and
        ``"by_silhouette"`` (the class's :class:`Verdict`).
    """
    x, y = _validate.model_inputs(model, x, y=y)
    y = y.cpu()
    _validate.shaped_like("is_poison", is_poison, y.shape, "y")
    t = y == _class_present("target", target, y)
    truth = is_poison.bool().cpu()[t]
    reps = embed(model, x)
    clusters = activation_report(
        reps[t], y[t], truth, target, dims=dims, reduce=reduce, seed=seed, size=size, silhouette=silhouette
    )
    return {
        "representation": roc_auc(spectral_scores(reps, y)[t], truth),
        "gradient": roc_auc(gradient_scores(model, x[t], y[t]), truth),
        "clustering": clusters["auc"],
        "separation": separation(reps[t], truth),
        "relative_size": clusters["relative_size"],
        "silhouette": clusters["silhouette"],
        "by_size": clusters["by_size"],
        "by_silhouette": clusters["by_silhouette"],
    }


def reclassification_ratio(predictions: torch.Tensor, label: int, *, num_classes: int | None = None) -> float:
    """Exclusionary reclassification (Chen et al. 2018, Section 4.2): train a model *without* a
    suspect cluster, classify the cluster with it, and compare l, the points read as their given
    ``label``, with p, the points read as the most frequent other class. A cluster of genuine
    images is read as its label (l / p large); poisons are read as their source class (l / p
    small). Chen et al. call the cluster poisoned when l / p falls below a threshold T.

    Args:
        predictions: (n,) integer labels >= 0 the retrained model gives the cluster's points,
            n ≥ 1.
        label: the cluster's given label, a class index >= 0 (it need not occur among the
            predictions: l = 0 is the verdict on a cluster of poisons).
        num_classes: K, when known: ``label`` and the predictions must then lie in [0, K) (a
            label beyond the classes would read as l = 0, the verdict "poisoned", without a word).

    Returns:
        l / p ≥ 0 (``inf`` when every point is read as ``label``).
    """
    if not isinstance(predictions, torch.Tensor) or predictions.ndim != 1 or predictions.numel() == 0:
        raise ValueError("predictions must be a non-empty 1-D tensor of class labels")
    if num_classes is not None:
        num_classes = _validate.positive_int("num_classes", num_classes)
        pred = _validate.labels("predictions", predictions, num_classes=num_classes).cpu()
        label = _validate.class_index("label", label, num_classes)
    else:
        pred = _validate.labels("predictions", predictions).cpu()
        label = _validate.non_negative_class("label", label)
    same = int((pred == label).sum())
    others = pred[pred != label]
    if len(others) == 0:
        return math.inf
    return same / int(torch.bincount(others).max())


def remove_top(
    scores: torch.Tensor, labels: torch.Tensor, eps: float, factor: float = 1.5, *, classes: Sequence[int] | None = None
) -> torch.Tensor:
    """Keep-mask (N,) that drops, in every class, the ⌈factor · eps · n_c⌉ highest-scoring points
    (Tran et al. 2018 remove 1.5 ε of each class, ε an upper bound on the poison fraction).

    Args:
        scores: suspicion scores (N,), finite.
        labels: given labels (N,).
        eps: the assumed poison fraction in [0, 1).
        factor: how many times ε to remove, > 0.
        classes: remove only from these classes (e.g. the one a defender suspects was
            attacked); all classes when ``None``. A class not present in ``labels`` is an error.
    """
    scores = _validate.scores("scores", scores)
    labels = _validate.labels("labels", labels, n=len(scores)).cpu()
    eps = _validate.fraction("eps", eps)
    factor = _validate.positive_float("factor", factor)
    keep = torch.ones(len(scores), dtype=torch.bool)
    scores = scores.detach().cpu()
    present = torch.unique(labels).tolist()
    if classes is not None:
        missing = sorted(set(int(c) for c in classes) - set(present))
        if missing:
            raise ValueError(f"classes {missing} do not occur in labels (present: {present})")
        present = sorted(set(int(c) for c in classes))
    for c in present:
        idx = torch.nonzero(labels == c).flatten()
        drop = count_for_rate(min(1.0, factor * eps), len(idx), rounding="ceil")
        if drop:
            keep[idx[scores[idx].topk(drop).indices]] = False
    return keep


def poisons_removed(
    scores: torch.Tensor,
    labels: torch.Tensor,
    is_poison: torch.Tensor,
    eps: float,
    factor: float = 1.5,
    *,
    classes: Sequence[int] | None = None,
) -> int:
    """How many poisons the removal of :func:`remove_top` takes out (same arguments; ``is_poison``
    (N,) is the ground truth): the poisons among the top ⌈factor · eps · n_c⌉ scores of each class
    (Tran et al. 2018, Algorithm 1). An integer in [0, number of poisons]."""
    keep = remove_top(scores, labels, eps, factor, classes=classes)
    _validate.shaped_like("is_poison", is_poison, keep.shape, "labels")
    return int((~keep & is_poison.bool().cpu()).sum())


def removal_threshold(
    scores: torch.Tensor, labels: torch.Tensor, eps: float, factor: float = 1.5, *, classes: Sequence[int] | None = None
) -> float:
    """The lowest score that the removal of :func:`remove_top` takes out (same arguments): the cut
    drawn on a histogram of the scores. Raises when the removal takes out nothing (eps = 0)."""
    removed = ~remove_top(scores, labels, eps, factor, classes=classes)
    if not bool(removed.any()):
        raise ValueError(f"nothing is removed at eps = {eps} and factor = {factor}; there is no threshold")
    return float(scores.detach().cpu()[removed].min())


@dataclass
class DetectionReport:
    """How well flags or scores find the poisons.

    Attributes:
        precision: poisons among the flagged points (``nan`` when nothing is flagged or for
            scores, where no threshold is given).
        recall: flagged poisons among all poisons (``nan`` for scores).
        auc: ROC AUC of the scores (or flags) against ``is_poison``: the chance that a random
            poison outranks a random clean point, ties counting half.
        flagged: how many points were flagged (``nan`` for scores).
    """

    precision: float
    recall: float
    auc: float
    flagged: float


def _both_groups(p: torch.Tensor, at_least: int = 1) -> tuple[int, int]:
    """The numbers of poisons and clean points the mask ``is_poison`` marks, after checking each
    is at least ``at_least`` (an AUC or a ROC curve needs both groups)."""
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos < at_least or n_neg < at_least:
        k, s = ("one", "") if at_least == 1 else (str(at_least), "s")
        raise ValueError(
            f"is_poison must mark at least {k} poison{s} and {k} clean point{s}, "
            f"got {n_pos} poisons and {n_neg} clean points"
        )
    return n_pos, n_neg


def roc_curve(scores: torch.Tensor, is_poison: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ROC curve of ``scores`` (N,) against ``is_poison`` (N,): false- and true-positive rates
    (each (T + 1,), ``float64``, from (0, 0) to (1, 1)) as the threshold falls through the T
    distinct scores; tied scores enter together, so the curve's area is :func:`roc_auc`."""
    s = _validate.scores("scores", scores).detach().double().cpu()
    p = _validate.shaped_like("is_poison", is_poison, scores.shape, "scores").bool().cpu()
    n_pos, n_neg = _both_groups(p)
    order = torch.argsort(s, descending=True)
    _, counts = torch.unique_consecutive(s[order], return_counts=True)
    ends = torch.cumsum(counts, 0) - 1  # last index of each tie group, highest scores first
    tp = torch.cumsum(p[order].double(), 0)[ends]
    fp = torch.cumsum((~p[order]).double(), 0)[ends]
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fp / n_neg]), torch.cat([zero, tp / n_pos])


def tpr_at_fpr(scores: torch.Tensor, is_poison: torch.Tensor, fpr: float) -> float:
    """The share of poisons a threshold on ``scores`` (N,) catches while flagging at most a share
    ``fpr`` of the clean points: the highest true-positive rate of :func:`roc_curve` at a
    false-positive rate ≤ ``fpr``. Reads one point of the ROC curve, e.g. to say where a curve
    rises above the diagonal before it falls below it.

    Args:
        scores: suspicion scores (N,), higher = more suspicious, finite.
        is_poison: ground truth (N,), at least one poison and one clean point.
        fpr: the largest false-positive rate allowed, in [0, 1].

    Returns:
        the true-positive rate, in [0, 1].
    """
    fpr = _validate.fraction("fpr", fpr, closed=True)
    false_pos, true_pos = roc_curve(scores, is_poison)
    return float(true_pos[false_pos <= fpr + 1e-12].max())


def roc_auc(scores: torch.Tensor, is_poison: torch.Tensor) -> float:
    """ROC AUC by the Mann–Whitney statistic (average ranks for ties), in [0, 1], of finite
    ``scores`` (N,) against ``is_poison`` (N,)."""
    s = _validate.scores("scores", scores).detach().double().cpu()
    p = _validate.shaped_like("is_poison", is_poison, scores.shape, "scores").bool().cpu()
    n_pos, n_neg = _both_groups(p)
    order = torch.argsort(s)
    _, counts = torch.unique_consecutive(s[order], return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # 1-based rank of the last member of each tie group
    average = ends - (counts.double() - 1) / 2  # the mean rank of each tie group
    ranks = torch.empty_like(s)
    ranks[order] = torch.repeat_interleave(average, counts)
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_chance_width(n_pos: int, n_neg: int, *, z: float = 1.96) -> float:
    """The half-width of the band ½ ± w in which the AUC of a useless score falls with probability
    about 95% (for z = 1.96), between ``n_pos`` poisons and ``n_neg`` clean points.

    A score that cannot tell the two groups apart ranks them like a random permutation. Its AUC is
    the Mann–Whitney statistic U/(n₊ n₋), whose mean is then ½ and whose variance, without ties, is
    (n₊ + n₋ + 1)/(12 n₊ n₋) (Mann & Whitney 1947); the statistic is close to normal for groups of
    a few dozen, so

    .. math:: w = z \\sqrt{\\frac{n_+ + n_- + 1}{12\\, n_+ n_-}} .

    An AUC outside ½ ± w says the score separates the groups (or ranks them in reverse).

    Args:
        n_pos: the number of poisons, ≥ 1.
        n_neg: the number of clean points, ≥ 1.
        z: the normal quantile of the band, > 0 (1.96 for 95%, 2.58 for 99%).

    Returns:
        w > 0.
    """
    n_pos = _validate.positive_int("n_pos", n_pos)
    n_neg = _validate.positive_int("n_neg", n_neg)
    z = _validate.positive_float("z", z)
    return z * math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


def removal_recall(scores: torch.Tensor, is_poison: torch.Tensor, eps: float, factor: float = 1.5) -> float:
    """The share of the poisons that the defence of Tran et al. 2018 (Algorithm 1) removes from
    one class: the poisons among the ⌈factor · eps · n⌉ highest of the n ``scores``
    (:func:`remove_top` on a single class, read by :func:`detection_report`).

    Args:
        scores: suspicion scores (n,) of the points of one class, higher = more suspicious, finite.
        is_poison: ground truth (n,), with at least one poison.
        eps: the poison share the defender assumes, in [0, 1).
        factor: how many times ε to remove, > 0.

    Returns:
        the recall, in [0, 1].
    """
    scores = _validate.scores("scores", scores)
    _validate.shaped_like("is_poison", is_poison, scores.shape, "scores")
    if not bool(is_poison.bool().any()):
        raise ValueError("is_poison marks no poison; the share of the poisons removed is undefined")
    keep = remove_top(scores, torch.zeros(len(scores), dtype=torch.long), eps, factor)
    return detection_report(~keep, is_poison).recall


@dataclass(frozen=True)
class SpikeVisibility:
    """How visible one class's poisons are to the spectral signature (see :func:`spike_visibility`).

    Attributes:
        separation: s of :func:`separation`, ≥ 0.
        auc: the ROC AUC of :func:`spectral_scores` against the poisons, in [0, 1].
        cos2: cos² θ, the squared :func:`alignment` of the top direction with Δ, in [0, 1].
    """

    separation: float
    auc: float
    cos2: float


def spike_visibility(reps: torch.Tensor, is_poison: torch.Tensor) -> SpikeVisibility:
    """Chapter 4's three measures of a poisoned class's spike, from its representations: the
    separation s (the spike against the largest spread of either group, Tran et al. 2018,
    Lemma 3.1), the AUC of the spectral score τᵢ (their Algorithm 1), and cos² θ between the top
    direction and Δ (the overlap that the BBP transition predicts; chapter 5, eq. ch5-theta).
    They need the ground truth: an analysis of a detector, not a detector.

    Args:
        reps: representations (n, F) of one class, finite, not all equal.
        is_poison: (n,) bool with at least 2 poisons and 2 clean points.
    """
    reps = _finite_matrix("reps", reps)
    _validate.shaped_like("is_poison", is_poison, (reps.shape[0],))
    one_class = torch.zeros(reps.shape[0], dtype=torch.long)
    return SpikeVisibility(
        separation=separation(reps, is_poison),
        auc=roc_auc(spectral_scores(reps, one_class), is_poison),
        cos2=alignment(reps, is_poison) ** 2,
    )


def detection_report(flags_or_scores: torch.Tensor, is_poison: torch.Tensor) -> DetectionReport:
    """Precision and recall of boolean flags, or the ROC AUC of real-valued scores (flags get an
    AUC too, as 0/1 scores), against the ground truth ``is_poison`` (N,)."""
    if not isinstance(flags_or_scores, torch.Tensor) or flags_or_scores.ndim != 1:
        got = (
            tuple(flags_or_scores.shape)
            if isinstance(flags_or_scores, torch.Tensor)
            else type(flags_or_scores).__name__
        )
        raise ValueError(f"flags_or_scores must be a 1-D tensor (N,), got {got}")
    if flags_or_scores.dtype != torch.bool and not flags_or_scores.is_floating_point():
        raise TypeError(
            "flags_or_scores must be bool flags or floating-point scores, got dtype "
            f"{flags_or_scores.dtype} (flags: flags_or_scores.bool(); scores: flags_or_scores.float())"
        )
    _validate.shaped_like("is_poison", is_poison, flags_or_scores.shape, "flags_or_scores")
    truth = is_poison.bool().cpu()
    if flags_or_scores.dtype == torch.bool:
        flags = flags_or_scores.cpu()
        n_flag = int(flags.sum())
        hits = int((flags & truth).sum())
        precision = hits / n_flag if n_flag else float("nan")
        recall = hits / int(truth.sum()) if int(truth.sum()) else float("nan")
        return DetectionReport(precision, recall, roc_auc(flags.double(), truth), float(n_flag))
    _validate.finite("flags_or_scores", flags_or_scores)
    nan = float("nan")
    return DetectionReport(nan, nan, roc_auc(flags_or_scores, truth), nan)
