"""Poisoning federated learning: simulated clients, federated averaging, robust aggregators and
two attacks from malicious clients.

N clients each hold a non-i.i.d. share of the training set (label skew drawn from a Dirichlet
distribution, Hsu et al. 2019). Each round of federated averaging (McMahan et al. 2017,
Algorithm 1) sends the global parameters θ_r (flattened into a vector
of P numbers by :func:`flatten`: ``torch.nn.utils.parameters_to_vector`` cannot read the small CNN,
whose convolution weights are stored channels-last) to every client, each client
trains a few local epochs of SGD, reaching θ_r^(i), and returns its update Δ_i = θ_r^(i) − θ_r, and
the server moves

.. math:: \\theta_{r+1} = \\theta_r + \\eta \\cdot \\mathrm{AGG}(\\Delta_1, \\dots, \\Delta_N),

with server learning rate η. The aggregators AGG: ``"mean"`` (federated averaging);
``"median"``, the coordinate-wise median, and ``"trimmed_mean"``, the coordinate-wise mean after
dropping the ⌊βN⌋ largest and smallest values (Yin et al. 2018, Definitions 1–2); ``"krum"``, the
one update whose summed squared distance to its N − f − 2 nearest other updates is smallest
(Blanchard et al. 2017, §4).

The attacks, from m of the N clients:

- **model replacement** (Bagdasaryan et al. 2020, eq. (3)): each attacker a trains θ_r on its own
  data plus copies stamped with a trigger and relabelled to the target class, reaching X_a, then
  submits Δ_a = (N/(η m))(X_a − θ_r), the scale shared among the m colluding attackers (the paper's
  γ = N/η divided by the number of adversaries, as the authors' code does). Under the mean,
  θ_{r+1} ≈ X̄ + (η/N) Σ_{benign} Δ_i ≈ X̄, X̄ = (1/m) Σ_a X_a: the global model is replaced by the
  attackers' average backdoored model. In :func:`run` the attackers submit in every round from
  ``attack_from`` on (not Bagdasaryan et al.'s single-shot schedule), and train ``epochs=2`` (the
  default of :func:`model_replacement`) on their data plus as many triggered copies.
- **norm-bounded replacement** (the attacker Sun et al. 2019, §3, assume against their server-side
  norm clipping; the "constrain-and-scale" idea of Bagdasaryan et al. 2020, §4.3, reduced to its
  norm constraint): the same update, clipped by the attacker itself to a norm bound M
  (:func:`clip_to_norm`); no server clips in :func:`run`, where M is the median norm of the round's
  benign updates (the attacker sees them), so the malicious update is as large as a typical benign
  one and no rule that looks at sizes flags it.
- **a little is enough** (Baruch et al. 2019, Algorithm 1): the attackers estimate the benign
  updates' coordinate-wise mean μ_j and standard deviation σ_j and all submit μ_j − z σ_j, with
  z = z_max = Φ⁻¹((N − s)/N), s = ⌊N/2 + 1⌋ − m (eq. of §3.2): a shift small enough to stay
  inside the spread of the benign updates, so that median, trimmed mean and Krum still pick it.

Shapes: updates are stacked as (N, P) float32; inputs (n, C, H, W) in [0, 1], labels (n,).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate, models
from poisonlab.metrics import accuracy, attack_success_rate

__all__ = [
    "AGGREGATORS",
    "ATTACKS",
    "FedResult",
    "aggregate",
    "alie_z",
    "BACKDOOR_ATTACKS",
    "clip_to_norm",
    "dirichlet_split",
    "flatten",
    "krum_select",
    "load_flat",
    "little_is_enough",
    "local_update",
    "model_replacement",
    "run",
]

AGGREGATORS = ("mean", "median", "trimmed_mean", "krum")
ATTACKS = ("none", "model_replacement", "norm_bounded", "little_is_enough")
#: The attacks that plant a backdoor (their ASR is measured); "a little is enough" is untargeted.
BACKDOOR_ATTACKS = ("model_replacement", "norm_bounded")


def dirichlet_split(
    y: torch.Tensor, num_clients: int, *, alpha: float = 0.5, min_size: int = 10, seed: int = 0
) -> list[torch.Tensor]:
    """Non-i.i.d. client shares by label skew with Hsu et al.'s Dirichlet prior (2019, §3), drawn
    per class as in common federated benchmarks (Hsu et al. draw each client's class mix instead):
    for every class, its examples are split among the clients in proportions drawn from
    Dirichlet(α, …, α). Small α gives each
    client few classes; large α tends to an i.i.d. split. Draws again (at most 100 times) until
    every client holds at least ``min_size`` examples.

    Args:
        y: labels, (n,), integers in [0, K).
        num_clients: N, >= 1.
        alpha: the Dirichlet concentration, > 0.
        min_size: the fewest examples a client may get, >= 0 (at most n / N).
        seed: seeds the proportions and the order within each class.

    Returns:
        N disjoint index tensors (int64) that together cover 0, …, n − 1.
    """
    y = _validate.labels("y", y)
    num_clients = _validate.positive_int("num_clients", num_clients)
    alpha = _validate.positive_float("alpha", alpha)
    min_size = _validate.positive_int("min_size", min_size, allow_zero=True)
    if min_size * num_clients > y.shape[0]:
        raise ValueError(f"min_size must be at most n / num_clients = {y.shape[0] // num_clients}, got {min_size}")
    g = _validate.generator(seed)
    k = int(y.max()) + 1 if y.numel() else 0
    concentration = torch.full((num_clients,), alpha, dtype=torch.float64)
    for _ in range(100):
        parts: list[list[torch.Tensor]] = [[] for _ in range(num_clients)]
        for c in range(k):
            members = torch.nonzero(y == c).flatten()
            members = members[torch.randperm(len(members), generator=g)]
            # torch's Dirichlet sampler takes no generator: draw it from Gamma variates of our own
            gamma = _gamma(concentration, g)
            share = gamma / gamma.sum()
            cuts = (torch.cumsum(share, 0)[:-1] * len(members)).round().long().tolist()
            for i, piece in enumerate(torch.tensor_split(members, cuts)):
                parts[i].append(piece)
        out = [torch.sort(torch.cat(p))[0] if p else torch.zeros(0, dtype=torch.long) for p in parts]
        if min(len(o) for o in out) >= min_size:
            return out
    raise ValueError(f"no split with {min_size} examples per client in 100 draws; raise alpha or lower min_size")


def _gamma(concentration: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gamma(α, 1) variates from ``g`` by Marsaglia and Tsang's method (with the α < 1 boost)."""
    out = torch.empty_like(concentration)
    for i, a in enumerate(concentration.tolist()):
        boost = a < 1.0
        d = (a + 1.0 if boost else a) - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        while True:
            z = float(torch.randn(1, generator=g, dtype=torch.float64))
            v = (1.0 + c * z) ** 3
            u = float(torch.rand(1, generator=g, dtype=torch.float64))
            if v > 0 and math.log(max(u, 1e-300)) < 0.5 * z * z + d - d * v + d * math.log(v):
                break
        value = d * v
        if boost:
            value *= float(torch.rand(1, generator=g, dtype=torch.float64)) ** (1.0 / a)
        out[i] = value
    return out


def local_update(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 32,
    momentum: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """One client's update Δ = θ_local − θ_r: ``epochs`` epochs of SGD on a copy of ``model``
    (FedAvg's ClientUpdate, McMahan et al. 2017, Algorithm 1, with plain SGD at ``momentum=0``;
    the momentum buffer starts at zero in every round).

    Args:
        model: the global model θ_r (left unchanged).
        x: the client's inputs (n, ...); y: its labels (n,).
        epochs, lr, batch_size: the local SGD.
        momentum: SGD momentum in [0, 1).
        seed: seeds the batch order.

    Returns:
        Δ, shape (P,), float32, P the number of parameters of ``model``.
    """
    x = _validate.finite("x", _validate.inputs("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    epochs = _validate.positive_int("epochs", epochs)
    lr = _validate.positive_float("lr", lr)
    batch_size = _validate.positive_int("batch_size", batch_size)
    momentum = _validate.fraction("momentum", momentum)
    start = flatten(model)
    local = _copy(model)
    opt = torch.optim.SGD(local.parameters(), lr=lr, momentum=momentum)
    g = _validate.generator(seed)
    local.train()
    for _ in range(epochs):
        for idx in torch.randperm(x.shape[0], generator=g).split(batch_size):
            loss = F.cross_entropy(local(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return flatten(local) - start


def flatten(model: nn.Module) -> torch.Tensor:
    """The parameters of ``model`` as one detached vector, shape (P,), in ``model.parameters()``
    order (as ``torch.nn.utils.parameters_to_vector``, which fails on channels-last weights)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def load_flat(model: nn.Module, vector: torch.Tensor) -> None:
    """Write a vector of shape (P,) made by :func:`flatten` back into ``model``'s parameters, in place
    (each parameter keeps its memory layout)."""
    sizes = [p.numel() for p in model.parameters()]
    if not isinstance(vector, torch.Tensor) or vector.shape != (sum(sizes),):
        got = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise ValueError(f"vector must have shape ({sum(sizes)},), the model's parameter count, got {got}")
    with torch.no_grad():
        for p, chunk in zip(model.parameters(), vector.split(sizes)):
            p.copy_(chunk.view(p.shape))


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _updates(updates: torch.Tensor) -> torch.Tensor:
    if not isinstance(updates, torch.Tensor) or updates.ndim != 2 or not updates.is_floating_point():
        got = tuple(updates.shape) if isinstance(updates, torch.Tensor) else type(updates).__name__
        raise ValueError(f"updates must be a floating-point tensor of shape (N, P), got {got}")
    if updates.shape[0] == 0:
        raise ValueError("updates must hold at least one client's update, got 0")
    return _validate.finite("updates", updates)


def aggregate(updates: torch.Tensor, rule: str = "mean", *, trim: float = 0.1, f: int = 1) -> torch.Tensor:
    """Combine N client updates into one.

    Args:
        updates: (N, P), one flattened update per row.
        rule: ``"mean"`` (FedAvg, McMahan et al. 2017); ``"median"``, coordinate-wise (the lower
            median for even N, as ``torch.median``; Yin et al. 2018, Def. 1); ``"trimmed_mean"``,
            coordinate-wise after dropping the ⌊trim · N⌋ largest and smallest values (Yin et al.
            2018, Def. 2); ``"krum"``, the update i minimising Σ_{j ∈ nearest N−f−2} ‖Δ_i − Δ_j‖²
            (Blanchard et al. 2017, §4; needs N > 2f + 2).
        trim: β in [0, 0.5), for ``"trimmed_mean"``.
        f: the number of Byzantine clients Krum is built for, >= 0.

    Returns:
        The aggregate, shape (P,).
    """
    updates = _updates(updates)
    _validate.choice("rule", rule, AGGREGATORS)
    n = updates.shape[0]
    if rule == "mean":
        return updates.mean(0)
    if rule == "median":
        return updates.median(0).values
    if rule == "trimmed_mean":
        trim = _validate.fraction("trim", trim)
        if trim >= 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim}")
        b = int(math.floor(round(trim * n, 9)))
        return updates.sort(0).values[b : n - b].mean(0)
    return updates[krum_select(updates, f)]


def krum_select(updates: torch.Tensor, f: int) -> int:
    """The row Krum keeps (Blanchard et al. 2017, §4): the update i with the smallest score
    Σ_{j ∈ the N − f − 2 nearest other updates} ‖Δ_i − Δ_j‖².

    Args:
        updates: (N, P), one flattened update per row, N > 2f + 2.
        f: the number of Byzantine clients Krum is configured to tolerate, >= 0.

    Returns:
        The index i in [0, N) of the kept update (ties: the lowest index).
    """
    updates = _updates(updates)
    n = updates.shape[0]
    f = _validate.positive_int("f", f, allow_zero=True)
    if n <= 2 * f + 2:
        raise ValueError(f"krum needs more than 2f + 2 = {2 * f + 2} updates, got {n}")
    d2 = torch.cdist(updates.double(), updates.double()).pow(2)
    d2.fill_diagonal_(float("inf"))
    scores = d2.sort(1).values[:, : n - f - 2].sum(1)
    return int(scores.argmin())


def clip_to_norm(update: torch.Tensor, bound: float) -> torch.Tensor:
    """Scale ``update`` down to Euclidean norm at most ``bound``: u · min(1, M / ‖u‖), the projection
    onto the ball of radius M. A server that clips every update applies it (Sun et al. 2019, §3);
    an attacker that knows the bound applies it itself, so that clipping leaves its update as it is.

    Args:
        update: one flattened update, shape (P,), finite.
        bound: M > 0.

    Returns:
        The scaled update, shape (P,); ``update`` itself, unchanged, when its norm is already <= M.
    """
    update = _validate.vector("update", update)
    bound = _validate.positive_float("bound", bound)
    norm = float(update.double().norm())
    return update if norm <= bound else update * (bound / norm)


def alie_z(num_clients: int, num_malicious: int) -> float:
    """z_max of Baruch et al. 2019 (§3.2): with s = ⌊N/2 + 1⌋ − m supporters needed,
    z_max = Φ⁻¹((N − s)/N), Φ the standard normal CDF. Raises when m ≥ ⌊N/2 + 1⌋ (then no
    supporters are needed and any shift goes)."""
    n = _validate.positive_int("num_clients", num_clients)
    m = _validate.positive_int("num_malicious", num_malicious)
    s = n // 2 + 1 - m
    if s <= 0:
        raise ValueError(f"num_malicious must be below N/2 + 1 = {n // 2 + 1} for z_max to be defined, got {m}")
    return NormalDist().inv_cdf((n - s) / n)


def little_is_enough(benign: torch.Tensor, z: float) -> torch.Tensor:
    """The malicious update of "a little is enough" (Baruch et al. 2019, Algorithm 1): μ − z σ,
    coordinate-wise, from the benign updates' mean μ and standard deviation σ (unbiased).

    Args:
        benign: (M, P) benign updates the attackers observe (or estimate), M >= 2.
        z: the shift in standard deviations, >= 0 (:func:`alie_z` gives z_max).

    Returns:
        One update, shape (P,), which every malicious client submits.
    """
    benign = _updates(benign)
    if benign.shape[0] < 2:
        raise ValueError(f"benign must hold at least 2 updates to estimate a spread, got {benign.shape[0]}")
    z = _validate.positive_float("z", z, allow_zero=True)
    return benign.mean(0) - z * benign.std(0)


def model_replacement(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    trigger: Callable[[torch.Tensor], torch.Tensor],
    target: int,
    *,
    num_clients: int,
    server_lr: float = 1.0,
    num_malicious: int = 1,
    poison_share: float = 0.5,
    epochs: int = 2,
    lr: float = 0.05,
    batch_size: int = 32,
    momentum: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """The model-replacement update of Bagdasaryan et al. 2020 (§4, eq. (3)): train the global model
    θ_r on the attacker's data with a ``poison_share`` of it stamped with ``trigger`` and labelled
    ``target``, reaching X, and return the update scaled by γ = N/(η m), γ (X − θ_r): the paper's
    N/η shared among m colluding attackers, so that their m updates together replace the mean.

    Args:
        model: the global model θ_r (left unchanged).
        x: the attacker's clean inputs (n, C, H, W) in [0, 1]; y: their labels (n,).
        trigger: maps a batch of images to triggered images (e.g. :class:`poisonlab.triggers.Patch`).
        target: the backdoor's class.
        num_clients: N, the clients the server averages over.
        server_lr: η, the server's learning rate, > 0.
        num_malicious: m, the colluding attackers that each submit such an update, in [1, N].
        poison_share: the share of the attacker's training batch that carries the trigger, in [0, 1).
        epochs, lr, batch_size, momentum, seed: the attacker's local SGD (:func:`local_update`).

    Returns:
        The scaled update, shape (P,).
    """
    x = _validate.finite("x", _validate.images("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    if not callable(trigger):
        raise TypeError(f"trigger must be callable on a batch of images, got {type(trigger).__name__}")
    target = _validate.class_index("target", target, 10**9)
    num_clients = _validate.positive_int("num_clients", num_clients)
    server_lr = _validate.positive_float("server_lr", server_lr)
    num_malicious = _validate.positive_int("num_malicious", num_malicious)
    if num_malicious > num_clients:
        raise ValueError(f"num_malicious must be at most num_clients = {num_clients}, got {num_malicious}")
    poison_share = _validate.fraction("poison_share", poison_share)
    g = _validate.generator(seed)
    count = round(poison_share / (1.0 - poison_share) * x.shape[0])
    pick = torch.randint(0, x.shape[0], (count,), generator=g)
    xs = torch.cat([x, trigger(x[pick])])
    ys = torch.cat([y, torch.full((count,), target, dtype=torch.long)])
    delta = local_update(model, xs, ys, epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum, seed=seed)
    return (num_clients / (server_lr * num_malicious)) * delta


@dataclass
class FedResult:
    """The outcome of :func:`run`.

    Attributes:
        model: the final global model.
        clean_accuracy: test accuracy of the global model after each round.
        attack_success_rate: ASR of the backdoor after each round (empty without a backdoor).
        client_sizes: examples held by each client.
        malicious: the indices of the malicious clients.
        krum_selected: under Krum, the client whose update was kept in each round (empty otherwise).
    """

    model: nn.Module
    clean_accuracy: list[float] = field(default_factory=list)
    attack_success_rate: list[float] = field(default_factory=list)
    client_sizes: list[int] = field(default_factory=list)
    malicious: list[int] = field(default_factory=list)
    krum_selected: list[int] = field(default_factory=list)


def run(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    num_clients: int = 10,
    rounds: int = 10,
    aggregator: str = "mean",
    attack: str = "none",
    num_malicious: int = 1,
    attack_from: int = 0,
    trigger: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target: int = 0,
    alpha: float = 0.5,
    local_epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 32,
    momentum: float = 0.0,
    server_lr: float = 1.0,
    trim: float = 0.2,
    krum_f: int | None = None,
    arch: str = "cnn",
    model_kwargs: dict | None = None,
    seed: int = 0,
    splits: Sequence[torch.Tensor] | None = None,
    initial: nn.Module | None = None,
    first_round: int = 0,
) -> FedResult:
    """Simulate federated averaging with an aggregator and, optionally, malicious clients.

    Clients 0, …, ``num_malicious`` − 1 are malicious when ``attack`` is not ``"none"``; from round
    ``attack_from`` on (0-based) they submit the attack's update instead of their own. Model
    replacement's attackers each submit the backdoored update scaled by N/(η m)
    (:func:`model_replacement`); norm-bounded attackers submit the same update clipped to the median
    norm of the round's benign updates (:func:`clip_to_norm`); "a little is enough" attackers all
    submit μ − z_max σ of the benign updates of the round (:func:`little_is_enough`, :func:`alie_z`).
    The last two assume the attackers see the round's benign updates (or estimate them well).

    Args:
        x, y: the training set, split among the clients (:func:`dirichlet_split`).
        x_test, y_test: clean test set, for the accuracy (and the ASR) after each round.
        num_clients: N, >= 1. rounds: rounds of FedAvg, >= 1.
        aggregator: one of :data:`AGGREGATORS`.
        attack: one of :data:`ATTACKS`.
        num_malicious: m, in [1, N) when attacking.
        attack_from: the first attacked round.
        trigger, target: the backdoor of model replacement (the ASR is measured for it).
        alpha: the Dirichlet concentration of the split.
        local_epochs, lr, batch_size, momentum: each client's SGD; server_lr: η.
        trim: β of the trimmed mean.
        krum_f: f, the Byzantine clients Krum is configured to tolerate, the same in every run
            whatever the number of attackers; default ⌊(N − 3)/2⌋, the most its rule N > 2f + 2 allows.
        arch: the model (:func:`poisonlab.models.make`); seed: seeds weights, split and batches.
        model_kwargs: passed to :func:`poisonlab.models.make`, e.g. ``{"hidden": (100,)}`` for a
            smaller MLP.
        splits: client index sets to use instead of a Dirichlet split.
        initial: a global model to continue from (copied, left unchanged), e.g. the ``model`` of an
            earlier result; default a fresh ``arch`` model seeded by ``seed``.
        first_round: the 0-based index of the first round run, >= 0. Rounds ``first_round``, …,
            ``first_round + rounds − 1`` are run, with the batch seeds and the attack schedule of
            those rounds, so that a run of r₁ rounds continued from its model by a run with
            ``first_round = r₁`` gives the same model as one run of both lengths: runs that share
            their first rounds (the attack-free ones) can share that computation.

    Returns:
        A :class:`FedResult`, with one accuracy (and ASR) per round run.
    """
    x = _validate.finite("x", _validate.images("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    num_clients = _validate.positive_int("num_clients", num_clients)
    rounds = _validate.positive_int("rounds", rounds)
    _validate.choice("aggregator", aggregator, AGGREGATORS)
    _validate.choice("attack", attack, ATTACKS)
    attack_from = _validate.positive_int("attack_from", attack_from, allow_zero=True)
    first_round = _validate.positive_int("first_round", first_round, allow_zero=True)
    if initial is not None and not isinstance(initial, nn.Module):
        raise TypeError(f"initial must be a torch.nn.Module (a global model), got {type(initial).__name__}")
    m = 0
    if attack != "none":
        m = _validate.positive_int("num_malicious", num_malicious)
        if m >= num_clients:
            raise ValueError(f"num_malicious must be below num_clients = {num_clients}, got {m}")
        if attack in BACKDOOR_ATTACKS and trigger is None:
            raise ValueError(f"attack {attack!r} needs a trigger")
    if krum_f is None:
        f = max((num_clients - 3) // 2, 0)  # Krum needs N > 2f + 2
    else:
        f = _validate.positive_int("krum_f", krum_f, allow_zero=True)
    if aggregator == "krum" and num_clients <= 2 * f + 2:
        raise ValueError(f"krum_f must satisfy num_clients > 2 krum_f + 2, got krum_f = {f} for {num_clients} clients")
    k = int(torch.cat([y, y_test]).max()) + 1
    if splits is None:
        splits = dirichlet_split(y, num_clients, alpha=alpha, seed=seed)
    elif len(splits) != num_clients:
        raise ValueError(f"splits must hold num_clients = {num_clients} index sets, got {len(splits)}")
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict of keyword arguments, got {type(model_kwargs).__name__}")
    if initial is None:
        model = models.make(arch, tuple(x.shape[1:]), k, seed=seed, **(model_kwargs or {}))
    else:
        model = _copy(initial)
    model.eval()
    result = FedResult(model, client_sizes=[len(s) for s in splits], malicious=list(range(m)))
    for r in range(first_round, first_round + rounds):
        attacking = m > 0 and r >= attack_from
        benign = [
            local_update(
                model,
                x[s],
                y[s],
                epochs=local_epochs,
                lr=lr,
                batch_size=batch_size,
                momentum=momentum,
                seed=seed * 1000 + r * 100 + i,
            )
            for i, s in enumerate(splits)
            if not (attacking and i < m)
        ]
        updates = torch.stack(benign)
        if attacking:
            if attack in BACKDOOR_ATTACKS:
                bad = [
                    model_replacement(
                        model,
                        x[splits[i]],
                        y[splits[i]],
                        trigger,
                        target,
                        num_clients=num_clients,
                        server_lr=server_lr,
                        num_malicious=m,
                        lr=lr,
                        batch_size=batch_size,
                        momentum=momentum,
                        seed=seed * 1000 + r * 100 + i,
                    )
                    for i in range(m)
                ]
                if attack == "norm_bounded":
                    bound = float(updates.double().norm(dim=1).median())
                    bad = [clip_to_norm(b, bound) for b in bad]
            else:
                bad = [little_is_enough(updates, alie_z(num_clients, m))] * m
            updates = torch.cat([torch.stack(bad), updates])
        if aggregator == "krum":
            kept = krum_select(updates, f)
            result.krum_selected.append(kept)
            step = updates[kept]
        else:
            step = aggregate(updates, aggregator, trim=trim)
        load_flat(model, flatten(model) + server_lr * step)
        result.clean_accuracy.append(accuracy(model, x_test, y_test))
        if trigger is not None:
            result.attack_success_rate.append(attack_success_rate(model, x_test, y_test, trigger, target))
    return result
