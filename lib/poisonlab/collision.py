"""Clean-label poisoning by feature collision (chapter 3): Poison Frogs (Shafahi et al. 2018),
Convex Polytope (Zhu et al. 2019) and Bullseye Polytope (Aghakhani et al. 2021).

A poison p starts as a correctly labelled *base* image b of the attacker's chosen class and is
moved, in pixel space, until its representation φ(p) sits on top of the representation φ(t) of a
*target* test image of another class, while p stays close to b:

.. math:: p = \\arg\\min_x \\; \\lVert \\varphi(x) - \\varphi(t) \\rVert^2 + \\frac{\\beta}{2} \\lVert x - b \\rVert^2
   \\qquad \\text{(Shafahi et al. 2018, eq. 1, with the } \\beta/2 \\text{ that their Algorithm 1 solves).}

A linear head retrained on frozen features then has to classify φ(p) = φ(t) with the base's
label, and so misclassifies the target. :func:`feature_collision` solves the problem by
forward–backward splitting (their Algorithm 1), for many (target, base) pairs at once, optionally
within an ℓ∞ budget ε around each base. :func:`bullseye_polytope` gives one target k poisons
whose *mean* representation sits on the target's, so that the target lies at the centre of the
poisons' polytope in feature space; :func:`convex_polytope` (Zhu et al. 2019), which it
refines, lets the target lie anywhere inside, with convex coefficients it fits alongside.
:func:`fine_tune_heads` is the transfer-learning victim, also batched: one linear head per
target, each trained on the same clean features plus its own poisons.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate


def watermark(base: torch.Tensor, target: torch.Tensor, opacity: float) -> torch.Tensor:
    """Blend a faint copy of the target into the base, b ← γ t + (1 − γ) b (Shafahi et al. 2018,
    sec. 4.2), which helps collisions survive end-to-end training.

    Args:
        base: base images (P, C, H, W) or one image (C, H, W), in [0, 1], finite.
        target: target images of the same shape, one per base (a batch of one for P bases is
            refused), or one (C, H, W) image for every base; finite.
        opacity: γ in [0, 1]; 0 returns the bases unchanged.
    """
    gamma = _validate.fraction("opacity", opacity, closed=True)
    base_b, target_b = _pairs(base, target)
    return gamma * target_b + (1.0 - gamma) * base_b


def bases_per_target(pool: torch.Tensor, n_targets: int, count: int, *, seed: int = 0) -> torch.Tensor:
    """Choose ``count`` different bases for each of ``n_targets`` targets, as Shafahi et al. (2018,
    sec. 4.2) give one target several poisons made from different base images.

    Target j draws its bases without replacement from ``pool`` with a generator seeded ``seed + j``,
    so its draw does not depend on how many targets there are (two targets may share a base).

    Args:
        pool: the candidate bases, a 1-D integer tensor (B,) of indices >= 0 into a dataset,
            B ≥ ``count`` (float or ``bool`` pools and negative indices are refused).
        n_targets: T, the number of targets, ≥ 1.
        count: m, the bases per target, in [1, B].
        seed: the first target's seed.

    Returns:
        (T, m): row j holds target j's bases, entries of ``pool``.
    """
    if not isinstance(pool, torch.Tensor) or pool.ndim != 1:
        raise ValueError(
            f"pool must be a 1-D tensor of candidate bases, got {getattr(pool, 'shape', type(pool).__name__)}"
        )
    if pool.is_floating_point() or pool.dtype == torch.bool:
        raise ValueError(f"pool must hold integer indices, got dtype {pool.dtype}")
    if pool.numel() and int(pool.min()) < 0:
        raise ValueError(f"pool must hold indices >= 0, got a minimum of {int(pool.min())}")
    n_targets = _validate.positive_int("n_targets", n_targets)
    count = _validate.positive_int("count", count)
    if count > len(pool):
        raise ValueError(f"count must be at most the pool's size {len(pool)}, got {count}")
    seed = _validate.seed(seed)
    draws = [torch.randperm(len(pool), generator=_validate.generator(seed + j))[:count] for j in range(n_targets)]
    return torch.stack([pool[d] for d in draws])


def centred_bases(
    target_features: torch.Tensor, pool_features: torch.Tensor, k: int, *, candidates: int
) -> torch.Tensor:
    """Choose k bases per target whose *mean* representation lies near the target's: the start that
    Bullseye Polytope's objective (the distance from the poisons' mean to the target) likes best.

    For each target, the ``candidates`` pool images nearest it in features are the candidates; the
    k bases are then picked greedily, each time adding the candidate that brings the mean of those
    picked so far nearest the target. The first pick is therefore the nearest candidate, and with
    ``candidates == k`` the choice is the k nearest, chapter 3's usual rule; more candidates let
    bases on different sides of the target balance each other. (Greedy: not
    always the best subset, which would need all C-choose-k subsets.)

    Args:
        target_features: φ of the P targets, (P, F), finite floating point, P ≥ 1.
        pool_features: φ of the B candidate bases, (B, F), same dtype, B ≥ ``candidates``.
        k: bases per target, in [1, ``candidates``].
        candidates: C, how many of the nearest pool images each target chooses among, in [k, B].

    Returns:
        (P, k) integer indices into the pool's rows, k different ones per target, in the order picked.
    """
    for name, x in (("target_features", target_features), ("pool_features", pool_features)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor shaped (N, F), got {getattr(x, 'shape', x)}")
        _validate.finite(name, x)
    if target_features.dtype != pool_features.dtype:
        raise ValueError(
            f"target_features and pool_features must share a dtype, got {target_features.dtype} and "
            f"{pool_features.dtype}"
        )
    if target_features.shape[1] != pool_features.shape[1] or target_features.shape[0] == 0:
        raise ValueError(
            "target_features (P, F) with P >= 1 and pool_features (B, F) must share F, got "
            f"{tuple(target_features.shape)} and {tuple(pool_features.shape)}"
        )
    k = _validate.positive_int("k", k)
    candidates = _validate.positive_int("candidates", candidates)
    if not k <= candidates <= len(pool_features):
        raise ValueError(f"need k <= candidates <= pool size {len(pool_features)}, got k={k}, candidates={candidates}")
    near = torch.cdist(target_features, pool_features).topk(candidates, dim=1, largest=False).indices  # (P, C)
    options = pool_features[near]  # (P, C, F)
    picked = torch.zeros(near.shape, dtype=torch.bool, device=near.device)
    total = torch.zeros_like(target_features)
    order = []
    for size in range(1, k + 1):
        centre = (total[:, None] + options) / size  # the mean if each candidate were added
        gap = (centre - target_features[:, None]).norm(dim=2).masked_fill(picked, math.inf)
        best = gap.argmin(1)
        rows = torch.arange(len(best), device=best.device)
        picked[rows, best] = True
        total += options[rows, best]
        order.append(best)
    return near.gather(1, torch.stack(order, 1))


def perturbation_norms(poisons: torch.Tensor, bases: torch.Tensor) -> tuple[float, float]:
    """How far the poisons moved from their bases: the mean L2 and the mean L∞ norm of p − b over
    the P poisons (the budgets Shafahi et al. 2018 bound the perturbation by).

    Args:
        poisons: poisons (P, C, H, W), P >= 1; bases: their base images, the same shape; both
            finite floating point.

    Returns:
        ``(mean L2, mean L∞)``, each >= 0.
    """
    if not isinstance(poisons, torch.Tensor):
        raise ValueError(f"poisons must be a tensor (P, ...), got {type(poisons).__name__}")
    _validate.shaped_like("bases", bases, poisons.shape, "poisons")
    if poisons.ndim < 2 or poisons.shape[0] == 0:
        raise ValueError(f"poisons must be a batch (P, ...) with P >= 1, got shape {tuple(poisons.shape)}")
    poisons, bases = _validate.inputs("poisons", poisons), _validate.inputs("bases", bases)
    moved = (poisons - bases).flatten(1)
    return float(moved.norm(dim=1).mean()), float(moved.abs().max(1).values.mean())


def _pairs(
    base: torch.Tensor, target: torch.Tensor, *, names: tuple[str, str] = ("base", "target"), one_target: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bases and targets as two (P, C, H, W) batches. With ``one_target``, a single target given
    as one image (C, H, W) is broadcast to every base; a batch of targets (T, C, H, W) must have
    one row per base (T = P), a batch of one included."""
    bn, tn = names
    if not isinstance(base, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(f"{bn} and {tn} must be tensors")
    single = one_target and target.ndim == 3
    b = base.unsqueeze(0) if base.ndim == 3 else base
    t = target.unsqueeze(0) if single else target
    b = _validate.images(bn, b)
    t = _validate.images(tn, t)
    if b.shape[1:] != t.shape[1:]:
        raise ValueError(
            f"{tn} and {bn} images must have the same shape, got {tuple(t.shape[1:])} and {tuple(b.shape[1:])}"
        )
    if t.shape[0] != b.shape[0] and not single:
        also = " or a single (C, H, W) image" if one_target else ""
        raise ValueError(f"{tn} must have one image for each image of {bn}{also}; got {t.shape[0]} for {b.shape[0]}")
    return b, t.expand_as(b)


def _budget(eps: float | None) -> float | None:
    """``eps`` checked as an ℓ∞ budget: ``None`` (no budget) or a number in (0, 1]."""
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < float(eps) <= 1.0:
        raise ValueError(f"eps must be None or a number in (0, 1], got {eps!r}")
    return float(eps)


def _project(p: torch.Tensor, b: torch.Tensor, eps: float | None) -> torch.Tensor:
    """The Euclidean projection of ``p`` on {x : ‖x − b‖∞ ≤ ε} ∩ [0, 1]ⁿ (a box, so a clamp)."""
    if eps is not None:
        p = torch.clamp(p, min=b - eps, max=b + eps)
    return p.clamp(0.0, 1.0)


def _feature_module(feature_fn: Callable) -> nn.Module | None:
    """The module behind ``feature_fn`` (itself, or the owner of a bound method such as
    ``model.features``), if any."""
    module = feature_fn if isinstance(feature_fn, nn.Module) else getattr(feature_fn, "__self__", None)
    return module if isinstance(module, nn.Module) else None


def _in_feature_dtype(feature_fn: Callable, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``images`` converted to the floating dtype of the module behind ``feature_fn`` (float64
    images for a float32 extractor, say), as :func:`poisonlab._validate.model_inputs` does."""
    module = _feature_module(feature_fn)
    dtype = _validate.model_dtype(module) if module is not None else None
    return tuple(x.to(dtype) if dtype is not None and x.dtype != dtype else x for x in images)


def _check_eval_mode(feature_fn: Callable) -> None:
    if not callable(feature_fn):
        raise ValueError(f"feature_fn must be callable (images ↦ representations), got {type(feature_fn).__name__}")
    module = _feature_module(feature_fn)
    if isinstance(module, nn.Module) and module.training:
        raise ValueError(
            "the feature extractor is in training mode; call model.eval() first, so that "
            "dropout and batch statistics do not change φ between steps"
        )


def feature_collision(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    base: torch.Tensor,
    *,
    beta: float = 0.1,
    lr: float = 0.01,
    steps: int = 500,
    opacity: float = 0.0,
    eps: float | None = None,
    seed: int = 0,
    history: dict[str, list[float]] | None = None,
    optimizer: str = "gradient",
) -> torch.Tensor:
    """Craft clean-label poisons by feature collision (Shafahi et al. 2018, Algorithm 1).

    Every step is a gradient (forward) step on the feature term, then the proximal (backward)
    step of the distance term, which has a closed form:

    .. math::
        \\hat p = p - \\eta \\nabla_p \\lVert \\varphi(p) - \\varphi(t) \\rVert^2, \\qquad
        p = \\frac{\\hat p + \\eta \\beta b}{1 + \\eta \\beta},

    followed by clipping to [0, 1] and, with a budget ``eps``, by the projection on the ℓ∞ ball
    ‖p − b‖∞ ≤ ε around the (watermarked) base (the budget of the benchmark of Schwarzschild et
    al. 2021). All P (target, base) pairs move together as one batch, so crafting 50 poisons costs
    about as much as crafting one.

    Args:
        feature_fn: φ, mapping images (P, C, H, W) to representations (P, F), e.g.
            ``model.features`` of a model in eval mode. It must treat samples independently. When it belongs
            to a module (``model.features``), images of another floating dtype are converted to
            the module's, and the poisons come back in that dtype.
        target: target images (P, C, H, W), one per base, or one image (C, H, W) shared by every
            base; finite.
        base: base images (P, C, H, W) or one image (C, H, W), in [0, 1], finite.
        beta: β ≥ 0 and finite, the weight of the pixel distance to the base; larger keeps the poison closer
            to its base (and collides less). Shafahi et al. scale it by (dim φ / dim x)².
        lr: η > 0, the step size of the forward step.
        steps: iterations, ≥ 1.
        opacity: watermark the base with the target at this opacity γ first (:func:`watermark`);
            the proximal step then pulls towards the watermarked base.
        eps: ``None`` (no budget) or ε in (0, 1]: after every step each poison is projected on
            [b − ε, b + ε] ∩ [0, 1], b its (watermarked) base, so ‖p − b‖∞ ≤ ε always holds.
        seed: the algorithm is deterministic (it starts from the base); ``seed`` is accepted for a
            uniform interface and recorded nowhere.
        history: if given, filled with ``"feature_distance"`` and ``"input_distance"``: the mean
            over the batch of ‖φ(p) − φ(t)‖ and ‖p − b‖ at the start and after each step
            (``steps + 1`` values).
        optimizer: the forward step. ``"gradient"`` (default): the plain gradient step above, as
            in Shafahi et al.'s Algorithm 1. ``"adam"``: an Adam step of size ``lr`` on the
            feature term instead (each pixel moves by about ``lr`` per step), followed by the same
            proximal step and projection; this is the optimiser of :func:`bullseye_polytope`, so
            the two attacks can be compared with the optimiser held fixed.

    Returns:
        Poisons shaped like ``base``, values in [0, 1], detached.
    """
    _check_eval_mode(feature_fn)
    beta = _validate.positive_float("beta", beta, allow_zero=True)
    _validate.seed(seed)
    lr = _validate.positive_float("lr", lr)
    steps = _validate.positive_int("steps", steps)
    eps = _budget(eps)
    _validate.choice("optimizer", optimizer, ("gradient", "adam"))
    single = isinstance(base, torch.Tensor) and base.ndim == 3
    b, t = _in_feature_dtype(feature_fn, *_pairs(base, target))
    b = watermark(b, t, opacity) if opacity else b
    b = b.detach()
    with torch.no_grad():
        target_features = feature_fn(t)
    p = b.clone()
    adam = torch.optim.Adam([p.requires_grad_(True)], lr=lr) if optimizer == "adam" else None
    if history is not None:  # the starting point, step 0
        with torch.no_grad():
            start = float((feature_fn(p) - target_features).norm(dim=1).mean())
            history.setdefault("feature_distance", []).append(start)
            history.setdefault("input_distance", []).append(0.0)
    for _ in range(steps):
        p.requires_grad_(True)
        distance = (feature_fn(p) - target_features).pow(2).sum()
        (grad,) = torch.autograd.grad(distance, p)
        with torch.no_grad():
            if adam is None:
                p = _project((p - lr * grad + lr * beta * b) / (1.0 + lr * beta), b, eps)
            else:  # Adam keeps its moments for this tensor: step it, then prox and project, in place
                p.grad = grad
                adam.step()
                p.copy_(_project((p + lr * beta * b) / (1.0 + lr * beta), b, eps))
        if history is not None:
            with torch.no_grad():
                history.setdefault("feature_distance", []).append(
                    float((feature_fn(p) - target_features).norm(dim=1).mean())
                )
                history.setdefault("input_distance", []).append(float((p - b).flatten(1).norm(dim=1).mean()))
    p = p.detach()
    return p[0] if single else p


def _polytope_inputs(
    feature_fn: Callable, targets: torch.Tensor, bases: torch.Tensor, eps: float, steps: int, lr: float, seed: int
) -> tuple[float, int, float]:
    """Check the arguments shared by the polytope attacks; return ε, steps and lr."""
    _check_eval_mode(feature_fn)
    targets = _validate.images("targets", targets)
    if not isinstance(bases, torch.Tensor) or bases.ndim != 5 or not bases.is_floating_point():
        raise ValueError(
            "bases must be a floating-point tensor shaped (P, k, C, H, W), k bases for each of the P targets, "
            f"got {getattr(bases, 'shape', type(bases).__name__)}"
        )
    if bases.shape[0] != targets.shape[0] or bases.shape[2:] != targets.shape[1:]:
        raise ValueError(
            f"bases must be shaped (P, k, *target image) = ({targets.shape[0]}, k, "
            f"{', '.join(map(str, targets.shape[1:]))}) for targets shaped {tuple(targets.shape)}, "
            f"got {tuple(bases.shape)}"
        )
    if targets.shape[0] == 0 or bases.shape[1] == 0:
        raise ValueError(f"need at least one target and one base per target, got bases shaped {tuple(bases.shape)}")
    _validate.finite("bases", bases)
    if eps is None:
        raise ValueError("eps must be a number in (0, 1], got None (a polytope attack always has a budget)")
    _validate.seed(seed)
    return _budget(eps), _validate.positive_int("steps", steps), _validate.positive_float("lr", lr)


def bullseye_polytope(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    bases: torch.Tensor,
    *,
    eps: float = 0.1,
    steps: int = 200,
    lr: float = 0.01,
    seed: int = 0,
    history: dict[str, list[float]] | None = None,
    keep_classifier: tuple[torch.Tensor, torch.Tensor] | nn.Module | None = None,
    keep_label: int | None = None,
    keep_weight: float = 0.0,
) -> torch.Tensor:
    """Craft k clean-label poisons per target whose *mean* representation sits on the target's:
    Bullseye Polytope (Aghakhani et al. 2021: their loss for one network, under an ℓ∞ budget).

    Target t_i (i = 1…P) gets the poisons p_i1 … p_ik, made from the bases b_i1 … b_ik of the
    attacker's class, by solving

    .. math::
        \\min_{p_{i1}, \\dots, p_{ik}} \\;
        \\frac{\\lVert \\frac{1}{k}\\sum_{j=1}^{k} \\varphi(p_{ij}) - \\varphi(t_i) \\rVert^2}
             {\\lVert \\varphi(t_i) \\rVert^2}
        \\quad \\text{s.t.} \\quad \\lVert p_{ij} - b_{ij} \\rVert_\\infty \\le \\varepsilon,
        \\; p_{ij} \\in [0, 1]^n .

    Feature collision asks every poison to reach the target; here only their centre must, so the
    target ends up inside the poisons' convex hull (the polytope) at its centre (the bullseye),
    where a linear head fitted to the poisons labels it as they are labelled. As in the paper,
    the perturbation is optimised with Adam and projected back on the ℓ∞ ball and on [0, 1] after
    every step; all P·k poisons go through ``feature_fn`` as one batch. The P problems are
    independent (the loss is their sum and Adam works element by element), so crafting them
    together gives, up to rounding, what crafting them one at a time gives.

    With ``keep_weight`` λ > 0 the attacker also keeps each poison recognisable as its base
    class c (``keep_label``) to a classifier g of its own (``keep_classifier``), its stand-in for a
    human inspector: either a linear head (W, b) on the same features, g(x) = W φ(x) + b (the
    ten-class head of the attacker's own network, say), or a network of its own that classifies
    images. Target i's loss above gains
    :math:`\\frac{\\lambda}{k} \\sum_j \\mathrm{CE}(g(p_{ij}), c)`, the mean cross-entropy of g
    on the poisons with respect to c. (This term is not in the paper; it trades some of the
    collision for poisons that g still reads as c. A linear head on φ cannot read every poison as
    c once their centre sits exactly on a target it reads otherwise: its logits are linear in φ.)

    Args:
        feature_fn: φ, mapping images (N, C, H, W) to representations (N, F), e.g.
            ``model.features`` of a model in eval mode. It must treat samples independently. When it belongs
            to a module (``model.features``), images of another floating dtype are converted to
            the module's, and the poisons come back in that dtype.
        targets: the target images (P, C, H, W), P ≥ 1.
        bases: k base images per target (P, k, C, H, W), k ≥ 1, in [0, 1].
        eps: ε in (0, 1], the ℓ∞ budget: every poison stays within ε of its base, pixel by pixel.
        steps: Adam iterations, ≥ 1.
        lr: Adam's step size > 0; each pixel moves by about ``lr`` per step.
        seed: the algorithm is deterministic (it starts from the bases); ``seed`` is accepted for
            a uniform interface and recorded nowhere.
        history: if given, ``history["loss"]`` is filled with the normalised loss above, averaged
            over the P targets, at the start and after each step (``steps + 1`` values); with
            λ > 0 it is the whole loss, the class term included, and ``history["keep"]`` gets the
            mean cross-entropy of the keeping head alone at the same moments.
        keep_classifier: g, the attacker's own classifier: a pair (W, b), W (K, F) and b (K,) finite
            floating point, F the width of φ, or an ``nn.Module`` in eval mode mapping images
            (N, C, H, W) to logits (N, K); required when ``keep_weight`` > 0 (checked, then
            unused, when it is 0). It gets no gradient.
        keep_label: c, the base class in g's labels, in [0, K); required with g.
        keep_weight: λ ≥ 0, finite (0: the paper's loss alone).

    Returns:
        Poisons (P, k, C, H, W), values in [0, 1], each within ε of its base in ℓ∞, detached.
        The inputs are not modified.
    """
    eps, steps, lr = _polytope_inputs(feature_fn, targets, bases, eps, steps, lr, seed)
    keep_weight = _validate.positive_float("keep_weight", keep_weight, allow_zero=True)
    targets, bases = _in_feature_dtype(feature_fn, targets, bases)
    n_targets, k = bases.shape[:2]
    b = bases.detach().flatten(0, 1)
    with torch.no_grad():
        target_features = feature_fn(targets.detach())
        scale = target_features.pow(2).sum(1).clamp_min(1e-12)
    if keep_weight > 0 or keep_classifier is not None:  # a head given with λ = 0 is still checked
        checked = _keeping_head(keep_classifier, keep_label, target_features, targets)
    head = checked if keep_weight > 0 else None

    def keep_losses(p: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        g, label = head
        scores = g(p) if isinstance(g, nn.Module) else features @ g[0].T + g[1]
        wanted = torch.full((scores.shape[0],), label, dtype=torch.long)
        return F.cross_entropy(scores, wanted, reduction="none").view(n_targets, k).mean(1)

    def losses(p: torch.Tensor) -> torch.Tensor:
        features = feature_fn(p)
        centre = features.view(n_targets, k, -1).mean(1)
        loss = (centre - target_features).pow(2).sum(1) / scale
        return loss if head is None else loss + keep_weight * keep_losses(p, features)

    # Adam on p is Adam on the perturbation δ = p − b: the gradients and the updates are the same.
    p = b.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)

    def record() -> None:
        if history is not None:
            with torch.no_grad():
                history.setdefault("loss", []).append(float(losses(p).mean()))
                if head is not None:
                    history.setdefault("keep", []).append(float(keep_losses(p, feature_fn(p)).mean()))

    record()
    for _ in range(steps):
        # the gradient with respect to the poisons only: the extractor's weights get none
        (p.grad,) = torch.autograd.grad(losses(p).sum(), p)
        opt.step()
        with torch.no_grad():
            p.copy_(_project(p, b, eps))
        record()
    return p.detach().view_as(bases).clone()


def _keeping_head(
    g: object, label: object, features: torch.Tensor, images: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor] | nn.Module, int]:
    """``keep_classifier`` and ``keep_label`` of :func:`bullseye_polytope` checked against the
    features (N, F) and the images (N, C, H, W) of the targets: a linear head (W (K, F), b (K,)) in
    the features' dtype, detached, or a module in eval mode; and c in [0, K)."""
    if g is None:
        raise ValueError("keep_weight > 0 needs keep_classifier, the attacker's own (W, b) head or network")
    if isinstance(g, nn.Module):
        if g.training:
            raise ValueError("keep_classifier is in training mode; call .eval() first")
        k = _validate.model_outputs(g, images)
    else:
        if not isinstance(g, (tuple, list)) or len(g) != 2:
            raise ValueError(f"keep_classifier must be a pair (W, b) of tensors or a module, got {type(g).__name__}")
        w, bias = g
        if not isinstance(w, torch.Tensor) or not isinstance(bias, torch.Tensor):
            raise ValueError("keep_classifier must be a pair (W, b) of tensors or a module")
        for name, value in (("keep_classifier's W", w), ("keep_classifier's b", bias)):
            if not value.is_floating_point():
                raise TypeError(f"{name} must be floating point, got {value.dtype}")
            _validate.finite(name, value)
        f = features.shape[1]
        if w.ndim != 2 or w.shape[1] != f or w.shape[0] < 2 or bias.shape != (w.shape[0],):
            raise ValueError(
                f"keep_classifier must be W shaped (K, {f}) with K >= 2 and b shaped (K,), "
                f"got {tuple(w.shape)} and {tuple(bias.shape)}"
            )
        g, k = (w.detach().to(features.dtype), bias.detach().to(features.dtype)), w.shape[0]
    if label is None:
        raise ValueError("keep_classifier needs keep_label, the base class in its labels")
    return g, _validate.class_index("keep_label", label, k)


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of each row of ``v`` (P, k) on the probability simplex
    {c : c ≥ 0, Σ c = 1} (Duchi et al. 2008, by sorting), batched over the rows. ``v`` must be
    finite floating point."""
    if not isinstance(v, torch.Tensor) or v.ndim != 2 or v.shape[1] == 0 or not v.is_floating_point():
        raise ValueError(f"v must be a floating-point tensor shaped (P, k) with k >= 1, got {getattr(v, 'shape', v)!r}")
    _validate.finite("v", v)
    u = v.sort(dim=1, descending=True).values
    rank = torch.arange(1, v.shape[1] + 1, dtype=v.dtype, device=v.device)
    gap = u - (u.cumsum(1) - 1.0) / rank
    rho = (gap > 0).to(v.dtype).mul(rank).argmax(1, keepdim=True)  # the last index with a positive gap
    theta = (u.cumsum(1).gather(1, rho) - 1.0) / (rho + 1).to(v.dtype)
    return (v - theta).clamp(min=0.0)


def convex_polytope(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    bases: torch.Tensor,
    *,
    eps: float = 0.1,
    steps: int = 200,
    lr: float = 0.01,
    coefficient_steps: int = 10,
    seed: int = 0,
    history: dict[str, list[float]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Craft k clean-label poisons per target whose features enclose the target's: Convex
    Polytope (Zhu et al. 2019: their loss for one network, minimised by their alternating updates).

    .. math::
        \\min_{c_i \\in \\Delta_k,\\; p_{i1}, \\dots, p_{ik}} \\;
        \\frac{1}{2}\\frac{\\lVert \\varphi(t_i) - \\sum_{j=1}^{k} c_{ij} \\varphi(p_{ij}) \\rVert^2}
             {\\lVert \\varphi(t_i) \\rVert^2}
        \\quad \\text{s.t.} \\quad \\lVert p_{ij} - b_{ij} \\rVert_\\infty \\le \\varepsilon .

    Every iteration alternates: ``coefficient_steps`` projected-gradient steps on the convex
    coefficients c_i (step 1/L, L the largest eigenvalue of the poisons' Gram matrix, then the
    projection on the simplex Δ_k, :func:`project_simplex`), one Adam step on the poisons, and the
    projection on the ℓ∞ ball and [0, 1]. Fixing c_ij = 1/k gives :func:`bullseye_polytope`'s
    objective (up to the factor 1/2), whose target sits at the centre of the polytope rather than
    anywhere inside it (Aghakhani et al. 2021).

    Args:
        feature_fn, targets, bases, eps, steps, lr, seed: as in :func:`bullseye_polytope`.
        coefficient_steps: projected-gradient steps on the coefficients per iteration, ≥ 1.
        history: if given, ``history["loss"]`` gets the mean normalised loss (without the 1/2) at the
            start and after each step.

    Returns:
        ``(poisons, coefficients)``: poisons (P, k, C, H, W) in [0, 1], each within ε of its base
        in ℓ∞; coefficients (P, k), each row on the simplex. Both detached.
    """
    eps, steps, lr = _polytope_inputs(feature_fn, targets, bases, eps, steps, lr, seed)
    targets, bases = _in_feature_dtype(feature_fn, targets, bases)
    coefficient_steps = _validate.positive_int("coefficient_steps", coefficient_steps)
    n_targets, k = bases.shape[:2]
    b = bases.detach().flatten(0, 1)
    with torch.no_grad():
        target_features = feature_fn(targets.detach())
        scale = target_features.pow(2).sum(1).clamp_min(1e-12)
    c = torch.full((n_targets, k), 1.0 / k, dtype=b.dtype, device=b.device)

    def fit_coefficients(features: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gram = features @ features.transpose(1, 2)  # (P, k, k)
        step = 1.0 / torch.linalg.eigvalsh(gram)[:, -1:].clamp_min(1e-12)
        for _ in range(coefficient_steps):
            residual = torch.einsum("pk,pkf->pf", c, features) - target_features
            c = project_simplex(c - step * torch.einsum("pkf,pf->pk", features, residual))
        return c

    def losses(features: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("pk,pkf->pf", c, features) - target_features).pow(2).sum(1) / scale

    p = b.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    if history is not None:
        with torch.no_grad():
            history.setdefault("loss", []).append(float(losses(feature_fn(p).view(n_targets, k, -1), c).mean()))
    for _ in range(steps):
        features = feature_fn(p).view(n_targets, k, -1)
        c = fit_coefficients(features.detach(), c)
        (p.grad,) = torch.autograd.grad(0.5 * losses(features, c).sum(), p)
        opt.step()
        with torch.no_grad():
            p.copy_(_project(p, b, eps))
        if history is not None:
            with torch.no_grad():
                history.setdefault("loss", []).append(float(losses(feature_fn(p).view(n_targets, k, -1), c).mean()))
    return p.detach().view_as(bases).clone(), c


def fine_tune_heads(
    features: torch.Tensor,
    labels: torch.Tensor,
    extra_features: torch.Tensor,
    extra_labels: torch.Tensor,
    num_classes: int,
    *,
    steps: int = 300,
    lr: float = 0.5,
    weight_decay: float = 1e-4,
    history: dict[str, list[float]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train P linear heads (softmax regression on frozen features) at once: head j sees the
    N clean examples plus its own m extra examples (its poisons).

    Full-batch gradient descent with momentum on the mean cross-entropy plus
    ``weight_decay``/2 · ‖W‖²; every head starts from zero, so the result is deterministic.
    With ``weight_decay`` > 0 the objective is strongly convex in W, so each head has one
    minimiser and enough steps reach it; with 0 and separable data it has none (‖W‖ grows
    without end), and the head depends on when training stops.

    Args:
        features: clean representations (N, F), finite floating point.
        labels: their labels (N,) in [0, K).
        extra_features: per-head extra representations (P, m, F) (m may be 0), finite floating
            point (converted to the dtype of ``features``, in which the heads are trained).
        extra_labels: their integer labels (P, m) in [0, K).
        num_classes: K.
        steps, lr, weight_decay: the optimisation (steps >= 1, lr > 0, weight_decay >= 0, finite).
        history: if given, filled with ``"loss"``, the objective averaged over the P heads at
            every step (``steps`` values, before each update), and, after the last step,
            ``"final_loss"``, ``"train_accuracy"`` (each head's accuracy on its own N + m
            examples, averaged over the heads) and ``"gradient_norm"`` (the largest over the heads
            of the norm of the objective's gradient: near 0 at a minimiser), one value each.

    Returns:
        Weights (P, K, F) and biases (P, K).
    """
    k = _validate.positive_int("num_classes", num_classes)
    features = _validate.inputs("features", features)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {tuple(features.shape)}")
    labels = _validate.labels("labels", labels, n=features.shape[0], num_classes=k)
    extra_features = _validate.inputs("extra_features", extra_features).to(features.dtype)
    if extra_features.ndim != 3 or extra_features.shape[2] != features.shape[1]:
        raise ValueError(
            f"extra_features must be shaped (P, m, {features.shape[1]}), got {tuple(extra_features.shape)}"
        )
    if not isinstance(extra_labels, torch.Tensor):
        raise ValueError(f"extra_labels must be a (P, m) tensor of integer labels, got {type(extra_labels).__name__}")
    if extra_labels.shape != extra_features.shape[:2]:
        raise ValueError(
            f"extra_labels must be shaped {tuple(extra_features.shape[:2])}, got {tuple(extra_labels.shape)}"
        )
    _validate.labels("extra_labels", extra_labels.reshape(-1), num_classes=k)
    steps = _validate.positive_int("steps", steps)
    lr = _validate.positive_float("lr", lr)
    weight_decay = _validate.positive_float("weight_decay", weight_decay, allow_zero=True)
    p, m, f = extra_features.shape
    clean, extra = features.detach(), extra_features.detach()
    y_clean = labels.repeat_interleave(p)  # row n·P + j of the clean logits below is image n under head j
    y_extra = extra_labels.long().reshape(-1)
    w = torch.zeros(p, k, f, dtype=features.dtype, requires_grad=True)
    bias = torch.zeros(p, k, dtype=features.dtype, requires_grad=True)
    opt = torch.optim.SGD([w, bias], lr=lr, momentum=0.9)

    def objective() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sum over heads of each head's objective, and the logits of the clean and extra examples."""
        # the N clean examples are shared by every head: one (N, F) × (F, P·K) product, not P small ones
        clean_logits = (clean @ w.reshape(p * k, f).T).view(-1, p, k) + bias
        extra_logits = torch.einsum("pmf,pkf->pmk", extra, w) + bias.unsqueeze(1)
        loss = F.cross_entropy(clean_logits.reshape(-1, k), y_clean, reduction="sum")
        if m:
            loss = loss + F.cross_entropy(extra_logits.reshape(-1, k), y_extra, reduction="sum")
        return loss / (clean.shape[0] + m) + 0.5 * weight_decay * w.pow(2).sum(), clean_logits, extra_logits

    for _ in range(steps):
        loss, _, _ = objective()
        if history is not None:
            history.setdefault("loss", []).append(float(loss.detach()) / p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if history is not None:
        loss, clean_logits, extra_logits = objective()
        correct = (clean_logits.argmax(2) == labels[:, None]).sum(0)
        correct = correct + (extra_logits.argmax(2) == extra_labels.long()).sum(1)
        grad_w, grad_b = torch.autograd.grad(loss, (w, bias))  # head j's gradient is row j: heads are separate
        gradient_norm = (grad_w.pow(2).sum((1, 2)) + grad_b.pow(2).sum(1)).sqrt()
        history["final_loss"] = [float(loss.detach()) / p]
        history["train_accuracy"] = [float(correct.float().mean()) / (clean.shape[0] + m)]
        history["gradient_norm"] = [float(gradient_norm.max())]
    return w.detach(), bias.detach()


def head_predict(
    weights: torch.Tensor, biases: torch.Tensor, features: torch.Tensor, *, paired: bool = False
) -> torch.Tensor:
    """Predictions of P heads (weights (P, K, F), biases (P, K)).

    With ``paired``, ``features`` is (P, F) and head j classifies row j → (P,) (e.g. each head's
    own target); otherwise ``features`` is (N, F) and every head classifies all of it → (P, N).
    Weights, biases and features must be finite floating-point tensors of these shapes, with the
    same P and F throughout; biases and features are read in the weights' dtype.
    """
    weights = _validate.inputs("weights", weights)
    if weights.ndim != 3:
        raise ValueError(f"weights must have shape (P, K, F), got {tuple(weights.shape)}")
    p, k, f = weights.shape
    _validate.shaped_like("biases", biases, (p, k), "weights' (P, K)")
    biases = _validate.inputs("biases", biases).to(weights.dtype)
    features = _validate.inputs("features", features).to(weights.dtype)  # read in the weights' dtype
    if features.ndim != 2 or features.shape[1] != f:
        raise ValueError(f"features must have shape (N, {f}) to match the weights, got {tuple(features.shape)}")
    with torch.no_grad():
        if paired:
            if features.shape[0] != weights.shape[0]:
                raise ValueError(
                    f"paired prediction needs one row per head ({weights.shape[0]}), got {features.shape[0]}"
                )
            return (torch.einsum("pf,pkf->pk", features, weights) + biases).argmax(1)
        return (torch.einsum("nf,pkf->pnk", features, weights) + biases.unsqueeze(1)).argmax(2)


@dataclass
class TransferResult:
    """The outcome of :func:`one_shot_transfer`, one entry per (target, poison) pair.

    A poison counts as a *clean-label success* only when the target flips to the base class
    **and** an independently trained clean model (the ``judge``) still reads the poison as the
    base class: a poison that has drifted to look like its target is no longer clean-label.

    Attributes:
        poisons: the crafted poisons (P, C, H, W).
        flipped: (P,) the head retrained with this poison classifies its target as the base class,
            and the clean head did not (a target the clean head already misreads is no flip).
        judge_reads_base: (P,) the judge classifies the poison as the base class.
        success: (P,) ``flipped & judge_reads_base``.
        l2, linf: (P,) pixel distances ‖p − b‖₂ and ‖p − b‖∞ from each poison to its base.
        feature_distance: (P,) ‖φ(p) − φ(t)‖ after crafting.
        clean_head_accuracy: test accuracy of the head trained on the clean fine-tuning set.
        poisoned_head_accuracy: (P,) test accuracy of each head retrained with its poison.
        seconds: time spent crafting all P poisons (batched).
    """

    poisons: torch.Tensor
    flipped: torch.Tensor
    judge_reads_base: torch.Tensor
    success: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    feature_distance: torch.Tensor
    clean_head_accuracy: float
    poisoned_head_accuracy: torch.Tensor
    seconds: float

    def rate(self, which: str = "success") -> tuple[float, float, float]:
        """The fraction of pairs for which ``which`` ("success", "flipped" or
        "judge_reads_base") holds, with its 95% Wilson interval: (rate, low, high)."""
        _validate.choice("which", which, ("success", "flipped", "judge_reads_base"))
        values = getattr(self, which)
        return (float(values.float().mean()), *wilson_interval(int(values.sum()), len(values)))


def success_under_budget(
    flipped: torch.Tensor, judged: torch.Tensor, l2: torch.Tensor, base: int, tau: float = math.inf
) -> tuple[float, float]:
    """How often a clean-label attack wins *and* passes inspection, over P (target, poison) pairs.

    A pair counts as a success when the attack flipped its target, an independent clean judge still
    reads the poison as its base class (so it is still clean-label), and the poison lies within the
    pixel budget τ of its base (Shafahi et al. 2018 bound the perturbation; chapter 3 reports the
    distance beside every rate).

    Args:
        flipped: (P,) bool, whether each pair's target was read as the base class after training.
        judged: (P,) int, the judge's label for each poison.
        l2: (P,) float >= 0 and finite, each poison's L2 distance to its base image.
        base: the base class, an integer >= 0.
        tau: the pixel budget τ > 0 (default ∞: no budget).

    Returns:
        (success rate in [0, 1], mean L2 of the successful poisons, ``nan`` when there is none).
    """
    if not isinstance(flipped, torch.Tensor) or flipped.dtype != torch.bool or flipped.ndim != 1:
        raise ValueError(f"flipped must be a (P,) bool tensor, got {getattr(flipped, 'dtype', type(flipped))}")
    judged = _validate.labels("judged", judged, n=len(flipped))
    if not isinstance(l2, torch.Tensor) or l2.shape != flipped.shape or not l2.is_floating_point():
        raise ValueError(f"l2 must be a (P,) float tensor like flipped, got {getattr(l2, 'shape', type(l2))}")
    _validate.finite("l2", l2)
    if l2.numel() and float(l2.min()) < 0:
        raise ValueError(f"l2 must be >= 0 (a distance), got a minimum of {float(l2.min())}")
    if len(flipped) == 0:
        raise ValueError("need at least one pair")
    base = _validate.non_negative_class("base", base)
    tau = _validate.positive_float("tau", tau, allow_inf=True)
    won = flipped & (judged == base) & (l2 <= tau)
    return float(won.double().mean()), float(l2[won].double().mean()) if bool(won.any()) else math.nan


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1…P of the entries of a (P,) tensor, ties given the mean of the ranks they span."""
    below = (v[:, None] > v[None, :]).sum(1).double()
    equal = (v[:, None] == v[None, :]).sum(1).double()
    return below + (equal + 1.0) / 2.0


def rank_agreement(scores: torch.Tensor, outcomes: torch.Tensor) -> dict[str, float]:
    """How well a per-target score orders the targets by how easily an attack won them.

    Every pair of targets whose outcomes differ is one comparison: the score *agrees* when it is
    higher for the target with the higher outcome, *disagrees* when it is lower, and *ties* when
    the two scores are equal (a tie says nothing either way). Spearman's ρ is the Pearson
    correlation of the two rankings, tied values given their mean rank; the concordance index
    (Harrell's C) is (agreements + ties / 2) / comparisons, which for a binary outcome (won or lost)
    is the area under the ROC curve of the score.

    Args:
        scores: (P,) finite floating point, P ≥ 2: higher means predicted easier.
        outcomes: (P,) numbers (bool, integer or floating point, finite), higher means won more
            easily, e.g. whether each target was won, or at how many budgets it was.

    Returns:
        ``{"spearman", "c_index", "agree", "disagree", "tied", "comparisons"}``: ρ in [−1, 1]
        (``nan`` when the scores or the outcomes are all equal), C in [0, 1] (``nan`` with no
        comparison), and the counts (as floats) of the comparisons that agree, disagree and tie.
    """
    for name, value in (("scores", scores), ("outcomes", outcomes)):
        if not isinstance(value, torch.Tensor) or value.ndim != 1:
            raise ValueError(f"{name} must be a 1-D tensor (P,), got {getattr(value, 'shape', type(value).__name__)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got dtype {scores.dtype}")
    if len(scores) < 2 or outcomes.shape != scores.shape:
        raise ValueError(f"scores and outcomes must have the same length P >= 2, got {len(scores)} and {len(outcomes)}")
    _validate.finite("scores", scores)
    _validate.finite("outcomes", outcomes)
    s, o = scores.detach().double(), outcomes.detach().double()
    higher = o[:, None] > o[None, :]  # (i, j): target i was won more easily than target j
    agree = float((higher & (s[:, None] > s[None, :])).sum())
    disagree = float((higher & (s[:, None] < s[None, :])).sum())
    comparisons = float(higher.sum())
    tied = comparisons - agree - disagree
    rs, ro = _average_ranks(s), _average_ranks(o)
    rs, ro = rs - rs.mean(), ro - ro.mean()
    norm = float(rs.norm() * ro.norm())
    spearman = float((rs * ro).sum()) / norm if norm > 0 else math.nan
    c_index = (agree + tied / 2) / comparisons if comparisons else math.nan
    return {
        "spearman": spearman,
        "c_index": c_index,
        "agree": agree,
        "disagree": disagree,
        "tied": tied,
        "comparisons": comparisons,
    }


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% for z = 1.96), in [0, 1].

    Args:
        successes: k, an integer in [0, trials].
        trials: n, an integer >= 1.
        z: the normal quantile of the confidence level, a finite number > 0 (1.96 for 95%).
    """
    z = _validate.positive_float("z", z)
    trials = _validate.positive_int("trials", trials)
    successes = _validate.positive_int("successes", successes, allow_zero=True)
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes} of {trials}")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def one_shot_transfer(
    extractor: nn.Module,
    judge: nn.Module,
    x_finetune: torch.Tensor,
    y_finetune: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    targets: torch.Tensor,
    bases: torch.Tensor,
    base_label: int,
    *,
    judge_label: int | None = None,
    beta: float = 1.0,
    lr: float = 0.005,
    steps: int = 1000,
    opacity: float = 0.0,
    head_steps: int = 300,
    head_lr: float = 0.5,
    weight_decay: float = 0.0,
    history: dict[str, list[float]] | None = None,
) -> TransferResult:
    """The Poison Frogs transfer-learning experiment (Shafahi et al. 2018, sec. 4.1), one poison
    per target, all targets at once: craft each poison against the frozen ``extractor``, retrain a
    linear head on the clean fine-tuning features plus that one poison (labelled ``base_label``,
    its true class), and ask whether the target flips, while an independent clean ``judge``
    still reads the poison as its base class.

    Args:
        extractor: the frozen feature extractor (a Classifier in eval mode; ``.features`` is φ).
        judge: an independently trained clean classifier, in eval mode.
        x_finetune, y_finetune: the clean fine-tuning set, labels in [0, K), K = max(y_finetune) + 1.
        x_test, y_test: a clean test set for the heads' accuracy, labels in [0, K).
        targets: the target images (P, C, H, W), of a class other than ``base_label``.
        bases: one base image per target (P, C, H, W) (the same shape as ``targets``), of class
            ``base_label``.
        base_label: the base class in the fine-tuning task's labels, in [0, K).
        judge_label: the base class in the judge's labels (default ``base_label``), in
            [0, the judge's number of outputs).
        beta, lr, steps, opacity: as in :func:`feature_collision`.
        head_steps, head_lr, weight_decay: as in :func:`fine_tune_heads`.
        history: filled with the crafting curves, as in :func:`feature_collision`.

    Images (``x_finetune``, ``x_test``, ``targets``, ``bases``) must be finite floating point:
    another floating dtype is converted to the extractor's, integer or ``bool`` images are refused
    with a TypeError.
    """
    for name, model in (("extractor", extractor), ("judge", judge)):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
        if model.training:
            raise ValueError(f"the {name} is in training mode; call .eval() first")
    y_finetune = _validate.labels("y_finetune", y_finetune)
    if len(y_finetune) == 0:
        raise ValueError("y_finetune must hold at least one label, got 0")
    k = int(y_finetune.max()) + 1
    x_finetune, y_finetune = _validate.model_inputs(
        extractor, x_finetune, name="x_finetune", y=y_finetune, y_name="y_finetune"
    )
    x_test, _ = _validate.model_inputs(extractor, x_test, name="x_test")
    y_test = _validate.labels("y_test", y_test, n=x_test.shape[0], num_classes=k)
    base_label = _validate.class_index("base_label", base_label, k)
    bases, targets = _pairs(bases, targets, names=("bases", "targets"), one_target=False)
    bases, _ = _validate.model_inputs(
        judge, bases, name="bases", classes={"judge_label": base_label if judge_label is None else judge_label}
    )
    targets, _ = _validate.model_inputs(extractor, targets, name="targets")
    start = time.perf_counter()
    poisons = feature_collision(
        extractor.features, targets, bases, beta=beta, lr=lr, steps=steps, opacity=opacity, history=history
    )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        f_train = extractor.features(x_finetune)
        f_test = extractor.features(x_test)
        f_poison = extractor.features(poisons)
        f_target = extractor.features(targets)
        judged = judge(poisons).argmax(1)
    p = len(poisons)
    w0, b0 = fine_tune_heads(
        f_train,
        y_finetune,
        f_train.new_zeros(1, 0, f_train.shape[1]),
        y_finetune.new_zeros(1, 0),
        k,
        steps=head_steps,
        lr=head_lr,
        weight_decay=weight_decay,
    )
    w, b = fine_tune_heads(
        f_train,
        y_finetune,
        f_poison.unsqueeze(1),
        torch.full((p, 1), base_label, dtype=torch.long),
        k,
        steps=head_steps,
        lr=head_lr,
        weight_decay=weight_decay,
    )
    already = head_predict(w0, b0, f_target)[0] == base_label  # the clean head's own mistakes
    flipped = (head_predict(w, b, f_target, paired=True) == base_label) & ~already
    judge_ok = judged.cpu() == (base_label if judge_label is None else judge_label)
    diff = (poisons - bases).flatten(1)
    return TransferResult(
        poisons=poisons,
        flipped=flipped.cpu(),
        judge_reads_base=judge_ok,
        success=flipped.cpu() & judge_ok,
        l2=diff.norm(dim=1).cpu(),
        linf=diff.abs().max(1).values.cpu(),
        feature_distance=(f_poison - f_target).norm(dim=1).cpu(),
        clean_head_accuracy=float((head_predict(w0, b0, f_test)[0] == y_test).float().mean()),
        poisoned_head_accuracy=(head_predict(w, b, f_test) == y_test.unsqueeze(0)).float().mean(1).cpu(),
        seconds=seconds,
    )
