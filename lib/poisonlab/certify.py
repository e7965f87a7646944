"""Certified defences: predictions that provably survive a given number of poisons.

**Deep Partition Aggregation** (DPA; Levine & Feizi 2021, "Deep Partition Aggregation: Provable
Defenses against General Poisoning Attacks", ICLR). The training set is split into ``k`` disjoint
parts by a hash of each input alone, one base classifier is trained on each part, and a test input
gets the class most base classifiers vote for (ties go to the smallest class index). Inserting or
removing one training point changes one part, so it changes at most one vote: one vote leaves the
winner and at most one vote joins a rival, and the gap between them shrinks by at most 2. Hence
their Theorem 1: with n_c the votes for class c and ĉ the prediction, the prediction cannot change
under any ρ insertions or removals of training points as long as::

    ρ ≤ ρ̄(x) = ⌊(n_ĉ − max_{c ≠ ĉ} (n_c + 1[c < ĉ])) / 2⌋,

the **certified radius** of x. The threat model is the general one (insertions *and* removals, any
inputs, any labels, coordinated or not); modifying a training point counts as one removal plus one
insertion. The certificate holds for whatever each base learner does with its part, because it
only counts votes; what it costs is accuracy, since each base classifier sees only 1/k of the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from poisonlab import _validate, models
from poisonlab.parallel import default_workers, run_parallel
from poisonlab.train import fit, predict

__all__ = [
    "PartitionEnsemble",
    "canonical_order",
    "certified_accuracy",
    "certify",
    "partition",
    "train_partitions",
    "votes",
]


def partition(x: torch.Tensor, k: int) -> torch.Tensor:
    """The part of each training input: SHA-256 of its values (as float32 bytes), modulo ``k``.

    A part depends on the input alone, never on its index, its label or the other inputs, so adding
    or removing a point moves no other point (Levine & Feizi 2021 hash the sum of pixel values; a
    cryptographic hash spreads near-duplicates too).

    Args:
        x: training inputs (N, ...), finite.
        k: the number of parts, >= 1.

    Returns:
        Part indices (N,), int64 in [0, k).
    """
    x = _validate.finite("x", _validate.inputs("x", x))
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one training input, got 0")
    k = _validate.positive_int("k", k)
    return torch.tensor([h % k for h in _hashes(x)], dtype=torch.int64)


def _hashes(x: torch.Tensor) -> list[int]:
    """The first 8 bytes of each input's SHA-256 (of its values as float32 bytes), as Python ints."""
    flat = x.detach().to(torch.float32).cpu().contiguous().reshape(x.shape[0], -1).numpy()
    return [int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "big") for row in flat]


def canonical_order(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """An order of the training points that depends on the *set* of points, never on the order
    they arrive in: by the input's hash, then (for equal inputs) by label.

    Deep Partition Aggregation's certificate needs each base classifier to be a deterministic
    function of its part as a set (Levine & Feizi 2021 store canonically ordered datasets for this);
    a learner that shuffles with a fixed seed would otherwise train differently on a reordered copy
    of the same part. :func:`train_partitions` sorts every part with this order before training.

    Args:
        x: inputs (N, ...), finite.
        y: labels (N,), integers >= 0.

    Returns:
        A permutation (N,), int64: ``x[order]`` is the canonical order. Points equal in input and
        label are interchangeable, so any order among them gives the same training set.
    """
    x = _validate.finite("x", _validate.inputs("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    keys = list(zip(_hashes(x), y.tolist(), range(x.shape[0])))
    return torch.tensor([i for _, _, i in sorted(keys)], dtype=torch.int64)


@dataclass
class PartitionEnsemble:
    """k base classifiers, one per part of the training set (:func:`train_partitions`).

    Attributes:
        models: k entries; ``None`` for a part that held no training point (it abstains).
        num_classes: the number of classes every base classifier outputs.
        part_sizes: (k,) int64, the training points of each part.
        input_shape: the shape of one input, e.g. (1, 28, 28).
    """

    models: list[nn.Module | None]
    num_classes: int
    part_sizes: torch.Tensor
    input_shape: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.models)


def train_partitions(
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    arch: str = "cnn",
    num_classes: int | None = None,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 16,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> PartitionEnsemble:
    """Deep Partition Aggregation's training: split ``(x, y)`` by :func:`partition` and train one
    fresh ``arch`` model per part (SGD, momentum 0.9, cosine-annealed ``lr``), side by side on the
    CPU cores (:func:`poisonlab.parallel.run_parallel`).

    Base classifier i is initialised and shuffled with seed ``seed + i``, and every part is put in
    :func:`canonical_order` before training, so each base classifier is a deterministic function
    of its part as a *set*: the ensemble does not depend on the order of ``(x, y)``, and retraining
    after some points were inserted or removed reproduces every untouched part's classifier exactly
    (the condition under which Levine & Feizi's Theorem 1 holds for the retrained ensemble).

    Args:
        x: training inputs (N, C, H, W) for ``"cnn"``, (N, ...) otherwise; finite.
        y: labels (N,), integers in [0, num_classes).
        k: the number of parts, >= 1 (Levine & Feizi use 50 to 3,000 on MNIST and CIFAR-10).
        arch: ``"logreg"``, ``"mlp"`` or ``"cnn"`` (:func:`poisonlab.models.make`).
        num_classes: the classes of the task; default ``max(y) + 1``. Give it when a part may
            miss the last classes.
        epochs, lr, batch_size: each base classifier's training run (a part is small: with
            k = 50 parts of ``mnist5k``'s 4,000 images, 80 images, 5 steps an epoch at 16 a batch).
        seed: the first base classifier's seed, >= 0.
        workers: processes for :func:`~poisonlab.parallel.run_parallel`.
        progress: a progress bar over the parts.

    Returns:
        A :class:`PartitionEnsemble`.
    """
    x = _validate.finite("x", _validate.inputs("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one training example, got 0")
    k = _validate.positive_int("k", k)
    seed = _validate.seed(seed)
    _validate.choice("arch", arch, models.NAMES)
    top = int(y.max()) + 1
    num_classes = top if num_classes is None else _validate.positive_int("num_classes", num_classes)
    if num_classes < max(2, top):
        raise ValueError(f"num_classes must be at least 2 and above every label ({top - 1}), got {num_classes}")
    order = canonical_order(x, y)  # the same order for the same set of points, however they arrive
    x, y = x[order], y[order]
    parts = partition(x, k)
    shape = tuple(x.shape[1:])

    def train_part(i: int) -> nn.Module | None:
        mine = parts == i
        if not bool(mine.any()):
            return None
        net = models.make(arch, shape, num_classes, seed=seed + i)
        fit(
            net,
            x[mine],
            y[mine],
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            schedule="cosine",
            seed=seed + i,
            progress=False,
            device="cpu",
        )
        return net.eval()

    trained = run_parallel(
        train_part, list(range(k)), workers=workers, desc="base classifiers", unit="part", progress=progress
    )
    return PartitionEnsemble(trained, num_classes, torch.bincount(parts, minlength=k), shape)


def votes(ensemble: PartitionEnsemble, x: torch.Tensor, *, workers: int | None = 1) -> torch.Tensor:
    """How many base classifiers vote for each class, per input (the n_c(x) of Levine & Feizi 2021).

    Args:
        ensemble: a :class:`PartitionEnsemble`.
        x: inputs (M, ...) in the base classifiers' input shape.
        workers: processes predicting side by side (:func:`~poisonlab.parallel.run_parallel`);
            1 (the default) predicts in this process, ``None`` uses every core. Each process
            predicts a contiguous block of the base classifiers (one job per process, not per
            classifier: measured with k = 100 small CNNs, one job each cost about a fifth of
            the time of predicting 1,000 images). Predict several input sets in one call
            (concatenated) for the same reason.

    Returns:
        Counts (M, num_classes), int64; each row sums to the number of non-abstaining classifiers.
    """
    if not isinstance(ensemble, PartitionEnsemble):
        raise TypeError(f"ensemble must be a PartitionEnsemble, got {type(ensemble).__name__}")
    x = _validate.finite("x", _validate.inputs("x", x))
    if tuple(x.shape[1:]) != tuple(ensemble.input_shape):
        raise ValueError(
            f"x must hold inputs of shape {tuple(ensemble.input_shape)} (a batch first), got shape {tuple(x.shape)}"
        )
    counts = torch.zeros(x.shape[0], ensemble.num_classes, dtype=torch.int64)
    voting = [net for net in ensemble.models if net is not None]
    if workers == 1 or not voting:
        predictions = [predict(net, x).cpu() for net in voting]
    else:
        n = min(len(voting), default_workers() if workers is None else _validate.positive_int("workers", workers))
        blocks = [voting[len(voting) * i // n : len(voting) * (i + 1) // n] for i in range(n)]
        done = run_parallel(lambda block: [predict(net, x).cpu() for net in block], blocks, workers=n, progress=False)
        predictions = [p for block in done for p in block]
    for p in predictions:
        counts += nn.functional.one_hot(p, ensemble.num_classes)
    return counts


def certify(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The plurality prediction and its certified radius (Levine & Feizi 2021, Theorem 1).

    Args:
        counts: votes (M, C), non-negative integers, C >= 2 (from :func:`votes`).

    Returns:
        ``(prediction, radius)``, both (M,) int64: the class with most votes (ties to the smallest
        index) and ``ρ̄ = ⌊(n_ĉ − max_{c≠ĉ}(n_c + 1[c < ĉ])) / 2⌋`` >= 0, the number of inserted or
        removed training points the prediction provably survives.
    """
    if not isinstance(counts, torch.Tensor) or counts.dim() != 2 or counts.shape[1] < 2:
        raise ValueError(
            f"counts must be a tensor (M, C) with C >= 2 classes, got {getattr(counts, 'shape', counts)!r}"
        )
    if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
        raise TypeError(f"counts must hold integers, got {counts.dtype}")
    if bool((counts < 0).any()):
        raise ValueError("counts must be non-negative")
    counts = counts.to(torch.int64)
    prediction = counts.argmax(1)  # the first maximum: ties go to the smallest class
    classes = torch.arange(counts.shape[1])
    rival = counts + (classes[None, :] < prediction[:, None]).long()
    rival[torch.arange(len(counts)), prediction] = torch.iinfo(torch.int64).min
    gap = counts.gather(1, prediction[:, None]).squeeze(1) - rival.max(1).values
    return prediction, torch.div(gap, 2, rounding_mode="floor").clamp(min=0)


def certified_accuracy(
    prediction: torch.Tensor,
    radius: torch.Tensor,
    y: torch.Tensor,
    budgets: list[int] | range,
    *,
    num_classes: int | None = None,
) -> list[float]:
    """The share of inputs predicted correctly *and* certified against each budget of poisons
    (the certified accuracy of Levine & Feizi 2021, their Figure 2's curves).

    Args:
        prediction, radius: from :func:`certify`, (M,) each.
        y: true labels (M,).
        budgets: poison counts r >= 0; at r = 0 this is the ensemble's plain accuracy.
        num_classes: the number of classes K, >= 2; when given, every label and prediction must
            lie in [0, K) (a label out of range would silently count as a miss).

    Returns:
        One share in [0, 1] per budget: mean over inputs of [prediction = y and radius >= r].
    """
    if num_classes is not None:
        num_classes = _validate.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    y = _validate.labels("y", y, num_classes=num_classes)
    prediction = _validate.labels("prediction", prediction, n=len(y), num_classes=num_classes)
    if not isinstance(radius, torch.Tensor) or radius.shape != y.shape:
        raise ValueError(f"radius must be a tensor of shape {tuple(y.shape)}, got {getattr(radius, 'shape', radius)!r}")
    if radius.is_floating_point() or radius.dtype == torch.bool or (radius.numel() and int(radius.min()) < 0):
        raise ValueError("radius must hold integers >= 0 (from certify)")
    if len(y) == 0:
        raise ValueError("certified_accuracy needs at least one input, got 0")
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise TypeError(f"budgets must be a list or range of poison counts r >= 0, got {budgets!r}")
    budgets = [_validate.positive_int("budgets", r, allow_zero=True) for r in budgets]
    right = prediction.cpu() == y.cpu()
    return [float((right & (radius.cpu() >= r)).double().mean()) for r in budgets]
