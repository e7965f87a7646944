"""Chapter 1: poisoning that shifts a decision boundary.

Two attacks on binary classifiers, both returning a :class:`~poisonlab.poison.PoisonedSet`:

* :func:`label_flip` — the label-flip baselines: flip the labels of ⌊ε n⌋ training points, chosen
  at random, nearest the clean decision boundary, or where the clean model is most confident
  (replacement threat model).
* :func:`gradient_poison` — add ⌊ε n⌋ crafted points and move them by projected gradient ascent
  on the attacker's validation loss, differentiating through training (Biggio et al. 2012;
  Mei & Zhu 2015; Muñoz-González et al. 2017). The gradient comes from
  :func:`poisonlab.bilevel.implicit_gradient` for the convex learners (``"logreg"``, ``"svm"``)
  and from :func:`poisonlab.bilevel.unrolled_gradient` for a small MLP (``"mlp"``).

And the data-sanitisation defences of Steinhardt, Koh & Liang (2017, "Certified defenses for data
poisoning attacks", sec. 3), which an attacker can respect by projecting its poisons
(Koh, Steinhardt & Liang 2022): :class:`SphereDefence` and :class:`SlabDefence`.

Labels are binary, y ∈ {0, 1} (use :meth:`poisonlab.data.Dataset.pair`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from poisonlab import _validate
from poisonlab.bilevel import implicit_gradient, unrolled_gradient
from poisonlab.linear import LinearLearner, as_design
from poisonlab.poison import PoisonedSet, count_for_rate
from poisonlab.progress import progress_bar

MODELS = ("logreg", "svm", "mlp")
STRATEGIES = ("random", "nearest", "confident", "influence")


def n_poisons(n: int, eps: float) -> int:
    """⌊ε n⌋, the number of points a budget ε buys in a set of n (rounded first, so that
    0.29 · 100 gives 29 despite floating point)."""
    return count_for_rate(_validate.fraction("eps", eps), n)


def label_flip(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    strategy: str = "random",
    seed: int = 0,
    lam: float = 1e-2,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    rounds: int = 4,
) -> PoisonedSet:
    """Flip the labels of ⌊ε n⌋ training points (replacement model).

    Args:
        x: training inputs (n, ...).
        y: binary labels (n,) in {0, 1}.
        eps: budget in [0, 1).
        strategy: ``"random"`` flips a uniformly random subset; ``"nearest"`` flips the points
            closest to the decision boundary of a clean logistic regression (regularisation
            ``lam``), the points a learner is least sure of; ``"confident"`` flips the points that
            model classifies correctly with the largest margins s·(w·x + b), whose flipped labels
            cost the most training loss (a greedy heuristic baseline, not the optimised flips of
            Xiao, Xiao & Eckert 2012, "Adversarial label flips attack on support vector machines";
            for the logistic loss ℓ'(−m) + ℓ'(m) = −1, so every flip changes n∇J by s_i x̃_i
            whatever its margin; if fewer than ⌊ε n⌋ points are classified correctly, the rest
            are the least wrong ones); ``"influence"`` flips the points whose flip raises the
            attacker's validation loss (on ``x_val``, ``y_val``) most to first order, by the
            influence function of Koh & Liang (2017, eq. 2): flipping point i changes ∇J by
            δ_i = (ℓ'(−m_i) + ℓ'(m_i))·(−s_i x̃_i)/n, hence L_val by −∇L_valᵀ H⁻¹ δ_i; the flips
            are chosen greedily in ``rounds`` batches, retraining in between (a first-order
            relative of Xiao et al.'s ALFA).
        seed: seeds the random choice.
        lam: L2 strength λ > 0 of the logistic regression that the other strategies rank by.
        x_val, y_val: the attacker's validation set, needed by ``"influence"`` only.
        rounds: greedy batches for ``"influence"``, >= 1.

    Returns:
        A :class:`PoisonedSet` with the same inputs, the flipped labels, and ``is_poison``
        marking the flipped points.
    """
    x = _validate.inputs("x", x)
    y = _validate.labels("y", y, n=x.shape[0], num_classes=2)
    _validate.choice("strategy", strategy, STRATEGIES)
    k = n_poisons(len(y), eps)
    if strategy == "random":
        idx = torch.randperm(len(y), generator=_validate.generator(seed))[:k]
    elif strategy == "influence":
        if x_val is None or y_val is None:
            raise ValueError("strategy 'influence' needs the attacker's validation set x_val, y_val")
        idx = _influence_flips(x, y, x_val, y_val, k, lam, _validate.positive_int("rounds", rounds))
    else:
        learner = LinearLearner("logistic", lam)
        theta = learner.fit(x, y)
        score = learner.decision(theta, x)
        if strategy == "nearest":
            idx = score.abs().argsort()[:k]
        else:  # the signed margin s·(w·x + b), largest first
            idx = ((2.0 * y.double() - 1.0) * score).argsort(descending=True)[:k]
    y_new = y.clone()
    y_new[idx] = 1 - y_new[idx]
    is_poison = torch.zeros(len(y), dtype=torch.bool)
    is_poison[idx] = True
    return PoisonedSet(x.clone(), y_new, is_poison, None, {"attack": "label_flip", "strategy": strategy, "eps": eps})


def flip_influence(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *, lam: float = 1e-2
) -> float:
    """First-order rise of the attacker's validation loss when the labels of ``idx`` flip.

    Trains logistic regression (L2 strength ``lam``) on the clean ``x``, ``y`` and returns
    Σ_{i ∈ idx} −∇L_valᵀ H⁻¹ δ_i / n, with δ_i = (ℓ'(−m_i) + ℓ'(m_i))·(−s_i x̃_i) the change in n∇J
    when point i's label flips: the influence-function estimate of Koh & Liang (2017, eq. 2),
    summed over the flips (it ignores their interactions). Used to compare flip strategies.

    Args:
        x: training inputs (n, ...); y: binary labels (n,) in {0, 1}.
        idx: integer indices (k,) of the points whose labels flip, each in [0, n) (a list or a
            tensor; float or ``bool`` indices are refused).
        x_val, y_val: the attacker's validation set, (m, ...) and (m,).
        lam: L2 strength λ > 0.

    Returns:
        The estimated rise of the mean validation loss (a float; positive = the flips hurt).
    """
    xd, yd = as_design(_validate.inputs("x", x), _validate.labels("y", y, n=x.shape[0], num_classes=2))
    xv, yv = as_design(
        _validate.inputs("x_val", x_val), _validate.labels("y_val", y_val, n=x_val.shape[0], num_classes=2)
    )
    if xv.shape[1] != xd.shape[1]:
        raise ValueError(f"x_val must have x's {xd.shape[1]} features, got {xv.shape[1]}")
    if idx is None or isinstance(idx, (str, bytes)):
        raise TypeError(f"idx must be integer indices (a list or a tensor), got {idx!r}")
    idx = torch.as_tensor(idx)
    if idx.is_floating_point() or idx.dtype == torch.bool:
        raise ValueError(f"idx must hold integer indices, got dtype {idx.dtype}")
    idx = idx.long().flatten()
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(yd)):
        raise ValueError(f"idx must lie in [0, {len(yd)}), got values from {int(idx.min())} to {int(idx.max())}")
    learner = LinearLearner("logistic", _validate.positive_float("lam", lam))
    theta = learner.fit(xd, yd)
    th = theta.clone().requires_grad_(True)
    g_val = torch.autograd.grad(learner.mean_loss(th, xv, yv), th)[0]
    v = learner.solver(theta, xd, yd)(g_val)
    s, m = _signs_margins(theta, xd[idx], yd[idx])
    coef = -(learner._d1(-m) + learner._d1(m)) * s
    ones = torch.ones(len(idx), 1, dtype=torch.float64)
    return float(-((torch.cat([xd[idx], ones], 1) @ v) * coef).sum() / len(yd))


def _influence_flips(
    x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, k: int, lam: float, rounds: int
) -> torch.Tensor:
    """Indices of k label flips chosen greedily by their first-order effect on the validation loss."""
    xd, yd = as_design(x, y)
    xv, yv = as_design(x_val, y_val)
    if xv.shape[1] != xd.shape[1]:
        raise ValueError(f"x_val must have x's {xd.shape[1]} features, got {xv.shape[1]}")
    learner = LinearLearner("logistic", lam)
    y_now, chosen, theta = yd.clone(), torch.zeros(len(yd), dtype=torch.bool), None
    ones = torch.ones(len(yd), 1, dtype=torch.float64)
    for r in range(rounds):
        take = k * (r + 1) // rounds - int(chosen.sum())
        if take <= 0:
            continue
        theta = learner.fit(xd, y_now, theta0=theta)
        th = theta.clone().requires_grad_(True)
        g_val = torch.autograd.grad(learner.mean_loss(th, xv, yv), th)[0]
        v = learner.solver(theta, xd, y_now)(g_val)
        s, m = _signs_margins(theta, xd, y_now)
        # δ_i: the change in n·∇J when point i's label flips (its margin changes sign)
        coef = -(learner._d1(-m) + learner._d1(m)) * s
        gain = -(torch.cat([xd, ones], 1) @ v) * coef  # n · first-order rise of L_val
        gain[chosen] = -float("inf")
        pick = gain.argsort(descending=True)[:take]
        chosen[pick] = True
        y_now[pick] = 1 - y_now[pick]
    return torch.nonzero(chosen).flatten()


def _signs_margins(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = 2.0 * y.double() - 1.0
    return s, s * (x @ theta[:-1] + theta[-1])


@dataclass(frozen=True)
class SmallMLP:
    """A one-hidden-layer tanh network written as a function of one flat parameter vector, so
    that training can be unrolled and differentiated: f(x) = w₂ᵀ tanh(W₁ x + b₁) + b₂ (binary
    logit). ``d`` (input features) and ``hidden`` (hidden units) are integers >= 1."""

    d: int
    hidden: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "d", _validate.positive_int("d", self.d))
        object.__setattr__(self, "hidden", _validate.positive_int("hidden", self.hidden))

    @property
    def size(self) -> int:
        return self.hidden * self.d + 2 * self.hidden + 1

    def init(self, seed: int) -> torch.Tensor:
        g = _validate.generator(seed)
        w1 = torch.randn(self.hidden, self.d, generator=g, dtype=torch.float64) / math.sqrt(self.d)
        w2 = torch.randn(self.hidden, generator=g, dtype=torch.float64) / math.sqrt(self.hidden)
        return torch.cat(
            [w1.flatten(), torch.zeros(self.hidden, dtype=torch.float64), w2, torch.zeros(1, dtype=torch.float64)]
        )

    def logit(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h, d = self.hidden, self.d
        w1 = theta[: h * d].reshape(h, d)
        b1 = theta[h * d : h * d + h]
        w2 = theta[h * d + h : h * d + 2 * h]
        return torch.tanh(x @ w1.T + b1) @ w2 + theta[-1]

    def error(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        """Fraction of (x, y) misclassified (class 1 where the logit is positive), in [0, 1]."""
        x = x.flatten(1).double()
        return float(((self.logit(theta, x) > 0).long() != y).double().mean())

    def loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
        """J(θ) = mean binary cross-entropy of the logits + λ/2 ‖θ‖²; x (N, d), y (N,) in {0, 1}."""
        return F.binary_cross_entropy_with_logits(self.logit(theta, x), y.to(x.dtype)) + 0.5 * lam * theta.pow(2).sum()

    def loss_gradient(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
        """∇_θ J(θ) of :meth:`loss`, by the chain rule written out (backpropagation by hand), in
        differentiable operations so that an unrolled attack can differentiate it once more
        with respect to x. Same layout as θ: (W₁, b₁, w₂, b₂)."""
        h, d = self.hidden, self.d
        w1 = theta[: h * d].reshape(h, d)
        b1 = theta[h * d : h * d + h]
        w2 = theta[h * d + h : h * d + 2 * h]
        a = torch.tanh(x @ w1.T + b1)  # (N, h)
        r = (torch.sigmoid(a @ w2 + theta[-1]) - y.to(x.dtype)) / len(y)  # dJ/dlogit, (N,)
        da = r[:, None] * w2[None, :] * (1 - a * a)  # dJ/d(pre-activation), (N, h)
        return torch.cat([(da.T @ x).flatten(), da.sum(0), a.T @ r, r.sum().reshape(1)]) + lam * theta


def gradient_poison(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    eps: float,
    *,
    arch: str = "logreg",
    model: str | None = None,
    steps: int = 50,
    lr: float = 0.05,
    box: tuple[float, float] = (0.0, 1.0),
    lam: float = 1e-2,
    train_steps: int = 100,
    train_lr: float = 0.5,
    seed: int = 0,
    project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    distinct: int | None = None,
    record: bool = False,
    progress: bool = False,
    init_seed: int | None = None,
) -> PoisonedSet:
    """Gradient-based poisoning: add ⌊ε n⌋ points that maximise the attacker's validation loss.

    Solves the bilevel problem

    .. math:: \\max_{X_p \\in [lo, hi]^{n_p \\times d}} L_{\\text{val}}(\\hat\\theta(X_p)),\\quad
       \\hat\\theta(X_p) = \\arg\\min_\\theta J(\\theta; D_c \\cup \\{(x_{p,j}, y_{p,j})\\})

    by projected gradient ascent (Adam steps on X_p, then clipping to the box). The poisons start
    as copies of random training points with flipped labels (Biggio et al. 2012); their labels
    stay fixed while their features move.

    With ``distinct = m`` the poisons are *concentrated*, as in Koh, Steinhardt & Liang (2022,
    "Stronger data poisoning attacks break data sanitization defenses"): half of them carry each
    label, and those of one label sit at m distinct points, each a group of copies that moves as
    one (its gradient is the sum of its copies'). The search is then over m · d numbers per label
    instead of n_p · d.

    Args:
        x_train, y_train: the clean training set D_c, inputs (n, ...) in the box, labels in {0, 1}.
        x_val, y_val: the attacker's validation set (its estimate of the test distribution).
        eps: budget in [0, 1); ⌊ε n⌋ poisons are added (at least 1 when eps > 0 and n ε ≥ 1).
        arch: ``"logreg"`` (logistic loss) or ``"svm"`` (smoothed hinge), both with L2
            strength ``lam`` and differentiated implicitly; or ``"mlp"``, a 16-unit tanh network
            trained by ``train_steps`` full-batch gradient steps of size ``train_lr`` from a
            fixed initialisation and differentiated by unrolling those steps.
        model: the old name of ``arch``, still accepted.
        steps: ascent steps, >= 1.
        lr: Adam step size on the poison features, > 0.
        box: feasible range (lo, hi) of every feature.
        seed: seeds the choice of starting points (and the MLP's initialisation, unless
            ``init_seed`` is given).
        project: an extra constraint, applied after the box after every step:
            ``project(X_p, y_p) -> X_p`` with X_p flattened to (G, d) float64 and y_p (G,) its
            labels, one row per distinct point (G = n_p unless ``distinct`` is set), e.g. a
            projection onto the sphere a defence allows (Steinhardt et al. 2017).
        distinct: concentrate the poisons at this many distinct points per label (>= 1); None
            (the default) lets every poison move on its own.
        record: keep the poisons after every step in ``info["trajectory"]`` (steps + 1, n_p, d).
        progress: show a progress bar.
        init_seed: the seed of the MLP's initialisation θ_0, which the white-box attacker knows
            (``train_mlp(..., seed=init_seed)`` trains the victim); None uses ``seed``. Setting it
            lets restarts vary the starting points (``seed``) against one fixed victim.

    ``lam`` (>= 0; > 0 for the linear learners), ``train_steps`` (an integer >= 1) and
    ``train_lr`` (> 0) are checked at the door whatever the architecture: ``bool``, NaN and
    infinity are refused.

    Returns:
        ``PoisonedSet.append(x_train, y_train, X_p, y_p)``; ``info`` holds ``"val_loss"``, the
        attacker's objective after each step, and, with ``record``, the trajectory.
    """
    x_train = _validate.inputs("x_train", x_train)
    y_train = _validate.labels("y_train", y_train, n=x_train.shape[0], num_classes=2)
    x_val = _validate.inputs("x_val", x_val)
    y_val = _validate.labels("y_val", y_val, n=x_val.shape[0], num_classes=2)
    lam = _validate.positive_float("lam", lam, allow_zero=True)
    train_steps = _validate.positive_int("train_steps", train_steps)
    train_lr = _validate.positive_float("train_lr", train_lr)
    if x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"x_val inputs must be shaped like x_train's, {tuple(x_train.shape[1:])}, got {tuple(x_val.shape[1:])}"
        )
    model = _validate.choice("arch", _validate.renamed("arch", arch, "model", model, "logreg"), MODELS)
    steps = _validate.positive_int("steps", steps)
    lr = _validate.positive_float("lr", lr)
    lo, hi = _validate.interval("box", box)
    if float(x_train.min()) < lo - 1e-9 or float(x_train.max()) > hi + 1e-9:
        raise ValueError(f"x_train must lie inside the box [{lo}, {hi}]")
    if distinct is not None:
        distinct = _validate.positive_int("distinct", distinct)
    k = n_poisons(len(y_train), eps)
    shape = x_train.shape[1:]
    xc, yc = as_design(x_train, y_train)
    xv, yv = as_design(x_val, y_val)
    if k == 0:
        return PoisonedSet.append(
            x_train,
            y_train,
            x_train[:0],
            y_train[:0],
            attack="gradient",
            arch=model,
            eps=eps,
            val_loss=[],
            distinct=distinct,
        )
    g = _validate.generator(seed)
    if distinct is None:
        start = torch.randperm(len(yc), generator=g)[:k]
        group = torch.arange(k)
    else:
        start, group = _concentrated_starts(yc, k, distinct, g)
    xp = xc[start].clone()  # one row per distinct point
    labels = 1 - yc[start]  # and its label
    yp = labels[group]
    y_all = torch.cat([yc, yp])

    step_fn = (
        _linear_step(model, lam, xc, y_all, xv, yv)
        if model != "mlp"
        else _mlp_step(lam, xc, y_all, xv, yv, train_steps, train_lr, seed if init_seed is None else init_seed)
    )
    ascent = _Adam(xp.shape, lr)
    val_losses, trajectory = [], [xp[group].detach().clone()] if record else []
    bar = progress_bar(steps, desc="poisoning", unit="step") if _validate.flag("progress", progress) else None
    for _ in range(steps):
        value, grad = step_fn(xp[group])
        val_losses.append(value)
        grad = torch.zeros_like(xp).index_add_(0, group, grad)  # a group moves with its copies' sum
        xp = (xp + ascent.step(grad)).clamp(lo, hi)  # ascent, then projection onto the box
        if project is not None:
            xp = project(xp, labels).to(torch.float64)
            if xp.shape != (len(start), xc.shape[1]):
                raise ValueError(
                    f"project must return poisons shaped ({len(start)}, {xc.shape[1]}), got {tuple(xp.shape)}"
                )
        if record:
            trajectory.append(xp[group].clone())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    xp = xp[group]
    value, _ = step_fn(xp)
    val_losses.append(value)
    info = {"attack": "gradient", "arch": model, "eps": eps, "lam": lam, "val_loss": val_losses, "distinct": distinct}
    if record:
        info["trajectory"] = torch.stack(trajectory).reshape(len(trajectory), k, *shape).float()
    x_poison = xp.reshape(k, *shape).to(x_train.dtype)
    return PoisonedSet.append(x_train, y_train, x_poison, yp, **info)


def _concentrated_starts(
    yc: torch.Tensor, k: int, distinct: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting points for ``k`` concentrated poisons: ⌈k/2⌉ labelled 0 and ⌊k/2⌋ labelled 1,
    each label's poisons spread over at most ``distinct`` groups of copies, every group starting
    at a random training point of the other class. Returns (start indices (G,), group of each
    poison (k,))."""
    starts, groups, offset = [], [], 0
    for label, count in ((0, (k + 1) // 2), (1, k // 2)):
        m = min(distinct, count)
        if m == 0:
            continue
        pool = torch.nonzero(yc != label).flatten()
        if len(pool) == 0:
            raise ValueError(
                f"concentrated poisons labelled {label} start at training points of "
                f"class {1 - label}, and there are none"
            )
        chosen = pool[torch.randperm(len(pool), generator=g)[:m]]
        # a pool smaller than m gives fewer groups; copies are dealt out round-robin
        groups.append(offset + torch.arange(count) % len(chosen))
        starts.append(chosen)
        offset += len(chosen)
    return torch.cat(starts), torch.cat(groups)


class _Adam:
    """Adam's update (Kingma & Ba 2015) for a gradient *ascent* on one tensor: per-coordinate
    step sizes suit pixels whose gradients differ by orders of magnitude."""

    def __init__(
        self, shape: torch.Size, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = torch.zeros(shape, dtype=torch.float64)
        self.v = torch.zeros(shape, dtype=torch.float64)

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return self.lr * m_hat / (v_hat.sqrt() + self.eps)


def _linear_step(
    model: str, lam: float, xc: torch.Tensor, y_all: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
) -> Callable[[torch.Tensor], tuple[float, torch.Tensor]]:
    learner = LinearLearner("logistic" if model == "logreg" else "hinge", lam)
    state = {"theta": None}

    def val_loss(theta: torch.Tensor) -> torch.Tensor:
        return learner.mean_loss(theta, xv, yv)

    def step(xp: torch.Tensor) -> tuple[float, torch.Tensor]:
        x_all = torch.cat([xc, xp])
        theta = learner.fit(x_all, y_all, theta0=state["theta"], tol=1e-6)
        state["theta"] = theta
        grad = implicit_gradient(
            theta,
            xp,
            lambda t, p: learner.objective(t, torch.cat([xc, p]), y_all),
            val_loss,
            solve=learner.solver(theta, x_all, y_all),
        )
        return float(val_loss(theta)), grad

    return step


def _mlp_step(
    lam: float,
    xc: torch.Tensor,
    y_all: torch.Tensor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    train_steps: int,
    train_lr: float,
    seed: int,
) -> Callable[[torch.Tensor], tuple[float, torch.Tensor]]:
    net = SmallMLP(xc.shape[1])
    theta0 = net.init(seed)

    def val_loss(theta: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(net.logit(theta, xv), yv.double())

    def step(xp: torch.Tensor) -> tuple[float, torch.Tensor]:
        grad, theta = unrolled_gradient(
            theta0,
            xp,
            lambda t, p: net.loss(t, torch.cat([xc, p]), y_all, lam),
            val_loss,
            steps=train_steps,
            lr=train_lr,
            train_gradient=lambda t, p: net.loss_gradient(t, torch.cat([xc, p]), y_all, lam),
        )
        return float(val_loss(theta)), grad

    return step


def train_mlp(
    x: torch.Tensor, y: torch.Tensor, *, lam: float = 1e-2, train_steps: int = 100, train_lr: float = 0.5, seed: int = 0
) -> tuple[SmallMLP, torch.Tensor]:
    """Train the :class:`SmallMLP` the ``"mlp"`` attack differentiates through, the same way
    (full-batch gradient descent from the seeded initialisation). Returns ``(net, θ_T)``.

    ``x`` (N, ...) finite floating point, ``y`` (N,) in {0, 1}; ``lam`` >= 0 and ``train_lr`` > 0
    finite numbers, ``train_steps`` an integer >= 1 (``bool`` refused)."""
    lam = _validate.positive_float("lam", lam, allow_zero=True)
    train_lr = _validate.positive_float("train_lr", train_lr)
    xd, yd = as_design(x, y)
    net = SmallMLP(xd.shape[1])
    theta = net.init(seed)
    for _ in range(_validate.positive_int("train_steps", train_steps)):
        th = theta.clone().requires_grad_(True)
        grad = torch.autograd.grad(net.loss(th, xd, yd, lam), th)[0]
        theta = theta - train_lr * grad
    return net, theta


def attack_surface(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    label: int,
    *,
    arch: str = "svm",
    model: str | None = None,
    lam: float = 1e-2,
    resolution: int = 30,
    box: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The attacker's landscape for one poison point in 2-D (Biggio et al. 2012, Fig. 1).

    For every position x_p on a ``resolution × resolution`` grid over the box, train the learner
    on D_c ∪ {(x_p, label)} and record its validation loss and error.

    Args:
        x_train, y_train: the clean training set, inputs (N, 2) in the box, labels in {0, 1}.
        x_val, y_val: the attacker's validation set.
        label: the poison's label, 0 or 1.
        arch: ``"logreg"`` or ``"svm"``, with L2 strength ``lam`` (> 0; the package's one
            default, 1e-2); ``model`` is the old name of ``arch``, still accepted.
        resolution: grid points along each axis, >= 1.
        box: the square's range (lo, hi) along each axis.

    Returns:
        ``(grid, val_loss, val_error)``: grid coordinates (resolution,) along each axis, and two
        (resolution, resolution) maps indexed ``[row = second coordinate, column = first]``.
    """
    x_train = _validate.inputs("x_train", x_train)
    if x_train.ndim != 2 or x_train.shape[1] != 2:
        raise ValueError(f"x_train must hold 2-D inputs shaped (N, 2) (attack_surface), got {tuple(x_train.shape)}")
    _validate.labels("y_train", y_train, n=x_train.shape[0], num_classes=2)
    x_val = _validate.inputs("x_val", x_val)
    if x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"x_val must be shaped (M, 2) like x_train, got {tuple(x_val.shape)}")
    _validate.labels("y_val", y_val, n=x_val.shape[0], num_classes=2)
    lo, hi = _validate.interval("box", box)
    model = _validate.choice("arch", _validate.renamed("arch", arch, "model", model, "svm"), ("logreg", "svm"))
    _validate.class_index("label", label, 2)
    resolution = _validate.positive_int("resolution", resolution)
    learner = LinearLearner("logistic" if model == "logreg" else "hinge", lam)
    xc, yc = as_design(x_train, y_train)
    xv, yv = as_design(x_val, y_val)
    grid = torch.linspace(lo, hi, resolution, dtype=torch.float64)
    loss = torch.zeros(resolution, resolution, dtype=torch.float64)
    error = torch.zeros_like(loss)
    theta = None
    y_all = torch.cat([yc, torch.tensor([label])])
    for i, b in enumerate(grid):
        for j, a in enumerate(grid):
            x_all = torch.cat([xc, torch.stack([a, b]).reshape(1, 2)])
            theta = learner.fit(x_all, y_all, theta0=theta, tol=1e-8)
            loss[i, j] = learner.mean_loss(theta, xv, yv)
            error[i, j] = learner.error(theta, xv, yv)
    return grid.float(), loss.float(), error.float()


# -- data sanitisation: the sphere and slab defences -----------------------------------------------


def _centroids(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Class centroids (2, d) of flattened inputs; both classes must be present."""
    xd, yd = as_design(x, y)
    for k in (0, 1):
        if not bool((yd == k).any()):
            raise ValueError(f"a centroid defence needs points of both classes; class {k} has none")
    return torch.stack([xd[yd == k].mean(0) for k in (0, 1)])


def _quantile(name: str, q: float) -> float:
    q = _validate.fraction(name, q, closed=True)
    if q == 0.0:
        raise ValueError(f"{name} must be in (0, 1], got {q}")
    return q


@dataclass(frozen=True)
class SphereDefence:
    """The sphere defence of Steinhardt, Koh & Liang (2017, sec. 3): remove every training point
    (x, y) farther than r_y from the centroid c_y of its *labelled* class,
    ``keep ⇔ ||x − c_y|| ≤ r_y``.

    Threat model: the *oracle* defender of that paper, whose centroids and radii come from clean
    data (:meth:`fit` on the clean training set), facing an attacker who adds points and knows
    the defence. An attacker who respects it keeps each poison in the ball of its label
    (:meth:`project`, usable as ``gradient_poison(..., project=defence.project)``).

    Attributes:
        centres: class centroids (2, d), float64, row k for label k.
        radii: radii (2,) > 0, float64.
    """

    centres: torch.Tensor
    radii: torch.Tensor

    def __post_init__(self) -> None:
        _check_centres(self.centres, self.radii, "radii")

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, *, quantile: float = 0.95) -> SphereDefence:
        """Centroids of (x, y) and, per class, the radius within which a fraction ``quantile`` in
        (0, 1] of that class's points lie (so ``fit`` on clean data removes about 1 − quantile of
        them)."""
        quantile = _quantile("quantile", quantile)
        xd, yd = as_design(x, y)
        c = _centroids(xd, yd)
        r = torch.stack([(xd[yd == k] - c[k]).norm(dim=1).quantile(quantile) for k in (0, 1)])
        return cls(c, r)

    def distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """||x_i − c_{y_i}||, shape (n,)."""
        xd, yd = as_design(x, y)
        _check_dim(xd, self.centres)
        return (xd - self.centres[yd]).norm(dim=1)

    def keep(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Which points survive, a bool mask (n,)."""
        _, yd = as_design(x, y)
        return self.distances(x, y) <= self.radii[yd] * (1 + 1e-9)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each row of x (G, d) moved along the ray to c_y onto the ball of its label, a hair
        inside (radius · (1 − 10⁻⁶)); rows inside stay. Returns float64 (G, d). The projection of
        a point in a box [lo, hi]^d stays in the box, since c_y lies in it."""
        xd, yd = as_design(x, y)
        _check_dim(xd, self.centres)
        offset = xd - self.centres[yd]
        norm = offset.norm(dim=1, keepdim=True)
        r = self.radii[yd].unsqueeze(1) * (1 - 1e-6)
        return torch.where(norm > r, self.centres[yd] + offset * (r / norm.clamp_min(1e-300)), xd)


@dataclass(frozen=True)
class SlabDefence:
    """The slab defence of Steinhardt, Koh & Liang (2017, sec. 3): remove every point whose
    projection on the line between the class centroids lies far from its labelled class's,
    ``keep ⇔ |(x − c_y)·u| ≤ s_y`` with u = (c_1 − c_0)/||c_1 − c_0||.

    Same threat model as :class:`SphereDefence` (an oracle defender with clean centroids).

    Attributes:
        centres: class centroids (2, d), float64.
        widths: half-widths s (2,) > 0, float64.
    """

    centres: torch.Tensor
    widths: torch.Tensor

    def __post_init__(self) -> None:
        _check_centres(self.centres, self.widths, "widths")
        if float((self.centres[1] - self.centres[0]).norm()) == 0.0:
            raise ValueError("the slab defence needs two distinct centroids")

    @property
    def direction(self) -> torch.Tensor:
        """u, the unit vector from c_0 to c_1, shape (d,)."""
        u = self.centres[1] - self.centres[0]
        return u / u.norm()

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, *, quantile: float = 0.95) -> SlabDefence:
        """Centroids of (x, y) and, per class, the half-width that holds a fraction ``quantile``
        in (0, 1] of that class's points."""
        quantile = _quantile("quantile", quantile)
        xd, yd = as_design(x, y)
        c = _centroids(xd, yd)
        u = (c[1] - c[0]) / (c[1] - c[0]).norm()
        s = torch.stack([((xd[yd == k] - c[k]) @ u).abs().quantile(quantile) for k in (0, 1)])
        return cls(c, s)

    def distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The absolute projections ``|(x_i − c_{y_i})·u|``, shape (n,)."""
        xd, yd = as_design(x, y)
        _check_dim(xd, self.centres)
        return ((xd - self.centres[yd]) @ self.direction).abs()

    def keep(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Which points survive, a bool mask (n,)."""
        _, yd = as_design(x, y)
        return self.distances(x, y) <= self.widths[yd] * (1 + 1e-9)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each row of x (G, d) moved along u into the slab of its label (a hair inside).
        Returns float64 (G, d)."""
        xd, yd = as_design(x, y)
        _check_dim(xd, self.centres)
        u = self.direction
        t = (xd - self.centres[yd]) @ u
        s = self.widths[yd] * (1 - 1e-6)
        return xd + (t.clamp(-s, s) - t).unsqueeze(1) * u


def _check_defences(defences: tuple) -> None:
    """Check the ``*defences`` given: at least one, each a fitted :class:`SphereDefence` or
    :class:`SlabDefence` (TypeError naming the entry otherwise)."""
    if not defences:
        raise ValueError(
            "defences must hold at least one defence (fitted by SphereDefence.fit or SlabDefence.fit), got none"
        )
    for i, d in enumerate(defences):
        if not isinstance(d, (SphereDefence, SlabDefence)):
            raise TypeError(f"defences[{i}] must be a SphereDefence or a SlabDefence, got {d!r}")


def sanitise(
    x: torch.Tensor, y: torch.Tensor, *defences: SphereDefence | SlabDefence
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply data-sanitisation defences: returns ``(x_kept, y_kept, keep)`` with ``keep`` the
    bool mask (n,) of points that every defence keeps."""
    _check_defences(defences)
    x = _validate.inputs("x", x)
    y = _validate.labels("y", y, n=x.shape[0])
    keep = torch.ones(len(y), dtype=torch.bool)
    for d in defences:
        keep &= d.keep(x, y)
    return x[keep], y[keep], keep


def feasible_projection(
    *defences: SphereDefence | SlabDefence, box: tuple[float, float] = (0.0, 1.0), iterations: int = 50
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``project`` for :func:`gradient_poison` that keeps poisons inside the box and every
    defence, by alternating projections onto these convex sets (von Neumann; a point of the
    intersection, not necessarily the nearest). The last projection is onto the defences, so the
    result survives them; with several defences, check it with :func:`sanitise`."""
    _check_defences(defences)
    iterations = _validate.positive_int("iterations", iterations)
    lo, hi = _validate.interval("box", box)

    def project(xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
        z = xp.double()
        for _ in range(iterations if len(defences) > 1 else 1):
            z = z.clamp(lo, hi)
            for d in defences:
                z = d.project(z, yp)
        return z

    return project


def _check_centres(centres: torch.Tensor, sizes: torch.Tensor, name: str) -> None:
    if not isinstance(centres, torch.Tensor) or centres.ndim != 2 or centres.shape[0] != 2:
        raise ValueError(f"centres must be a tensor (2, d), got {getattr(centres, 'shape', type(centres))}")
    if not isinstance(sizes, torch.Tensor) or tuple(sizes.shape) != (2,):
        raise ValueError(f"{name} must be a tensor (2,), got {getattr(sizes, 'shape', type(sizes))}")
    if not bool((sizes > 0).all()):
        raise ValueError(f"{name} must be > 0, got {sizes.tolist()}")


def _check_dim(x: torch.Tensor, centres: torch.Tensor) -> None:
    if x.shape[1] != centres.shape[1]:
        raise ValueError(f"inputs have {x.shape[1]} features but the defence's centroids {centres.shape[1]}")


# -- experiments of chapter 1: one attack, one retrained learner, one number -------------------


class AttackRun(NamedTuple):
    """One gradient attack on a linear learner and what it did.

    Attributes:
        poisoned: the poisoned training set (:func:`gradient_poison`'s result).
        theta: the learner's parameters θ̂ (d + 1,), retrained on ``poisoned``.
        error: the test error of θ̂, in [0, 1].
    """

    poisoned: PoisonedSet
    theta: torch.Tensor
    error: float


_ATTACK_MODEL = {"logistic": "logreg", "hinge": "svm"}


def attack_and_fit(
    learner: LinearLearner,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    eps: float,
    **attack: Any,
) -> AttackRun:
    """Craft ⌊ε n⌋ poisons against ``learner``, retrain it on the poisoned set and measure its
    test error: one point of a budget or regularisation sweep.

    The poisons come from :func:`gradient_poison` with the learner's own loss (``"logreg"`` for the
    logistic loss, ``"svm"`` for the smoothed hinge) and L2 strength, so the attacker differentiates
    (eq. (ch1-implicit), Koh & Liang 2017) through exactly the training it attacks.

    Args:
        learner: the victim, a :class:`~poisonlab.linear.LinearLearner` (a hinge learner must keep
            the default sharpness β = 10, which the attack assumes).
        x_train, y_train: the clean training set (n, d) in the box, labels (n,) in {0, 1}.
        x_val, y_val: the attacker's validation set.
        x_test, y_test: the test set the error is measured on, never seen by the attacker.
        eps: budget in [0, 1).
        **attack: passed to :func:`gradient_poison` (``steps``, ``lr``, ``seed``, ``record``,
            ``distinct``, ``project``, …), except ``arch`` and ``lam``, which the learner sets.

    Returns:
        An :class:`AttackRun`; deterministic for a given ``seed``.
    """
    if not isinstance(learner, LinearLearner):
        raise ValueError(f"learner must be a LinearLearner, got {type(learner).__name__}")
    if learner.loss == "hinge" and learner.beta != LinearLearner.beta:
        raise ValueError(f"learner.beta must be {LinearLearner.beta} for the svm attack, got {learner.beta}")
    clash = sorted({"arch", "model", "lam"} & set(attack))
    if clash:
        raise ValueError(f"the learner sets the attack's arch and lam; do not pass {', '.join(clash)}")
    x_test = _validate.inputs("x_test", x_test)
    y_test = _validate.labels("y_test", y_test, n=x_test.shape[0], num_classes=2)
    poisoned = gradient_poison(
        x_train, y_train, x_val, y_val, eps, arch=_ATTACK_MODEL[learner.loss], lam=learner.lam, **attack
    )
    theta = learner.fit(poisoned.x, poisoned.y)
    return AttackRun(poisoned, theta, learner.error(theta, x_test, y_test))


def flip_sets(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    strategy: str,
    *,
    draws: int = 1,
    lam: float = 1e-2,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> list[PoisonedSet]:
    """The training sets one label-flip strategy produces at budget ε: ``draws`` independent
    draws (seeds 0, …, draws − 1) for ``"random"``, whose result depends on the draw, and one set
    for the deterministic strategies (``"nearest"``, ``"confident"``, ``"influence"``).

    Args:
        x, y: the clean training set (n, ...) and its labels (n,) in {0, 1}.
        eps: budget in [0, 1); each set has ⌊ε n⌋ flipped labels.
        strategy: one of :data:`STRATEGIES` (see :func:`label_flip`).
        draws: number of random draws, >= 1; ignored by the deterministic strategies.
        lam, x_val, y_val: as in :func:`label_flip` (``x_val``, ``y_val`` for ``"influence"``).

    Returns:
        A list of :class:`PoisonedSet`, ``draws`` long for ``"random"`` and 1 long otherwise.
    """
    _validate.choice("strategy", strategy, STRATEGIES)
    draws = _validate.positive_int("draws", draws)
    seeds = range(draws) if strategy == "random" else range(1)
    return [label_flip(x, y, eps, strategy=strategy, seed=s, lam=lam, x_val=x_val, y_val=y_val) for s in seeds]


class MLPAttack(NamedTuple):
    """The unrolled attack on the small network, and what it did.

    Attributes:
        clean_error: test error of the network trained on the clean set, in [0, 1].
        poisoned_error: test error of the same network (same initialisation) trained on the
            poisoned set, in [0, 1].
        val_loss: the attacker's validation loss before the first and after the last ascent step.
    """

    clean_error: float
    poisoned_error: float
    val_loss: tuple[float, float]


def mlp_attack(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    eps: float,
    *,
    steps: int = 30,
    lr: float = 0.05,
    lam: float = 1e-2,
    train_steps: int = 100,
    train_lr: float = 0.5,
    seed: int = 0,
) -> MLPAttack:
    """Attack the :class:`SmallMLP` by differentiating through its unrolled training
    (eq. (ch1-unrolled), Muñoz-González et al. 2017), then train the network on the clean and on
    the poisoned set from the same initialisation and measure both test errors.

    Args:
        x_train, y_train: the clean training set (n, d) in [0, 1], labels (n,) in {0, 1}.
        x_val, y_val: the attacker's validation set.
        x_test, y_test: the test set, never seen by the attacker.
        eps: budget in [0, 1).
        steps, lr: the attack's ascent steps (>= 1) and Adam step size (> 0).
        lam, train_steps, train_lr: the network's weight decay and its full-batch gradient descent,
            known to the attacker and used by the victim.
        seed: the network's initialisation and the attack's starting points.

    Returns:
        An :class:`MLPAttack`; deterministic for a given ``seed``.
    """
    x_test = _validate.inputs("x_test", x_test)
    y_test = _validate.labels("y_test", y_test, n=x_test.shape[0], num_classes=2)
    n = len(_validate.labels("y_train", y_train))
    if n_poisons(n, eps) == 0:
        raise ValueError(f"eps must buy at least one poison among the {n} training points, got eps = {eps}")
    poisoned = gradient_poison(
        x_train,
        y_train,
        x_val,
        y_val,
        eps,
        arch="mlp",
        steps=steps,
        lr=lr,
        lam=lam,
        train_steps=train_steps,
        train_lr=train_lr,
        seed=seed,
    )

    def error(x: torch.Tensor, y: torch.Tensor) -> float:
        net, theta = train_mlp(x, y, lam=lam, train_steps=train_steps, train_lr=train_lr, seed=seed)
        return net.error(theta, x_test, y_test)

    losses = poisoned.info["val_loss"]
    return MLPAttack(error(x_train, y_train), error(poisoned.x, poisoned.y), (losses[0], losses[-1]))


class PoisonGroups(NamedTuple):
    """The distinct points of a concentrated attack, one row per group of identical copies.

    Attributes:
        start: where each point started, (G, ...).
        end: where gradient ascent took it, (G, ...).
        counts: the number of copies of each point.
        labels: the label each point carries, (G,).
    """

    start: torch.Tensor
    end: torch.Tensor
    counts: list[int]
    labels: torch.Tensor


def poison_groups(poisoned: PoisonedSet, *, tol: float = 0.0) -> PoisonGroups:
    """Group the poisons of a :func:`gradient_poison` run recorded with ``record=True`` into the
    distinct points they sit at (Koh, Steinhardt & Liang 2022's concentrated poisons, ``distinct``):
    poisons with the same label that end at the same position are copies of one point.

    Args:
        poisoned: a gradient attack's result with ``info["trajectory"]`` (steps + 1, n_p, ...).
        tol: poisons with the same label whose end positions differ by at most ``tol`` in every
            coordinate join the group of the first such poison (0: exact copies only). A plot uses
            it to count the markers that cover each other.

    Returns:
        A :class:`PoisonGroups`, ordered by label and then by each point's first copy.
    """
    trajectory = poisoned.info.get("trajectory") if isinstance(poisoned, PoisonedSet) else None
    if trajectory is None:
        raise ValueError("poisoned must be a gradient_poison result recorded with record=True")
    tol = _validate.positive_float("tol", tol, allow_zero=True)
    _, labels = poisoned.poisons()
    end = trajectory[-1].flatten(1)
    firsts: list[int] = []
    counts: list[int] = []
    for i in range(len(labels)):
        for g, first in enumerate(firsts):
            if labels[first] == labels[i] and float((end[first] - end[i]).abs().max()) <= tol:
                counts[g] += 1
                break
        else:
            firsts.append(i)
            counts.append(1)
    order = sorted(range(len(firsts)), key=lambda g: (int(labels[firsts[g]]), firsts[g]))
    idx = [firsts[g] for g in order]
    return PoisonGroups(trajectory[0, idx], trajectory[-1, idx], [counts[g] for g in order], labels[idx])


def grey_share(x: torch.Tensor, *, lo: float = 0.2, hi: float = 0.8) -> float:
    """The share of pixel values strictly between ``lo`` and ``hi``: neither near black nor near
    white. Handwritten digits are almost all ink or background, so crafted images stand out by it.

    Args:
        x: images (N, C, H, W) or inputs (N, d) in [0, 1], N >= 1, finite (other shapes are
            refused).
        lo, hi: the grey band, numbers with 0 <= lo < hi <= 1 (``bool`` refused).

    Returns:
        A float in [0, 1].
    """
    x = _validate.inputs("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be images (N, C, H, W) or inputs (N, d), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("x must hold at least one value, got an empty tensor")
    lo = _validate.fraction("lo", lo, closed=True)
    hi = _validate.fraction("hi", hi, closed=True)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"lo and hi must satisfy 0 <= lo < hi <= 1, got lo={lo!r}, hi={hi!r}")
    return float(((x > lo) & (x < hi)).float().mean())


def sanitise_poisoned(
    poisoned: PoisonedSet, *defences: SphereDefence | SlabDefence
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`sanitise` a poisoned training set and count how many of its poisons got through.

    Args:
        poisoned: the training set, clean points and poisons, with ``is_poison``.
        *defences: one or more fitted defences; a point is kept if every one keeps it.

    Returns:
        ``(x_kept, y_kept, share)``: the kept inputs and labels, and the share of the poisons kept,
        in [0, 1] (NaN for a set without poisons).
    """
    if not isinstance(poisoned, PoisonedSet):
        raise ValueError(f"poisoned must be a PoisonedSet, got {type(poisoned).__name__}")
    x_kept, y_kept, keep = sanitise(poisoned.x, poisoned.y, *defences)
    n = poisoned.n_poison
    share = int(keep[poisoned.is_poison].sum()) / n if n else math.nan
    return x_kept, y_kept, share
