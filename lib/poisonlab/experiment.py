"""One training routine for every backdoor experiment: train a fresh model on a (poisoned)
training set, then measure the two numbers an attack is judged by.

Every sweep of the course (poison rate, trigger size and opacity, learning rate, architecture)
calls :func:`train_and_score` with one setting changed, so the comparisons differ in that setting
and nothing else: same initialisation seed, same shuffling, same epochs.
"""

from __future__ import annotations

import copy
import math
import numbers
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch
from torch import nn

from poisonlab import _validate, detect, models
from poisonlab.metrics import accuracy, attack_success_rate
from poisonlab.poison import PoisonedSet
from poisonlab.train import History, embed, fit, logits, predict


@dataclass
class Score:
    """A trained model and how it fares.

    Attributes:
        model: the trained classifier (eval mode, on the device it trained on).
        clean_accuracy: CA on the clean test set, in [0, 1].
        attack_success_rate: ASR of the trigger on the test set (``nan`` without a trigger).
        history: per-epoch loss and accuracy; with ``per_epoch``, ``history.metrics`` also
            holds ``"clean_accuracy"`` and ``"attack_success_rate"`` after every epoch.
    """

    model: nn.Module
    clean_accuracy: float
    attack_success_rate: float
    history: History


def train_and_score(
    train: PoisonedSet | tuple[torch.Tensor, torch.Tensor],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    trigger: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target: int | None = 0,
    *,
    arch: str = "cnn",
    epochs: int = 4,
    lr: float = 0.05,
    batch_size: int = 128,
    schedule: str = "cosine",
    seed: int = 0,
    per_epoch: bool = False,
    progress: bool = False,
    watch: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    **model_kwargs,
) -> Score:
    """Train a fresh model of architecture ``arch`` on ``train`` and score it on clean and
    triggered test images.

    Args:
        train: a :class:`~poisonlab.poison.PoisonedSet`, or clean ``(x, y)``.
        x_test, y_test: clean test images (N, C, H, W) and labels (N,), checked before training
            as :func:`poisonlab.metrics.accuracy` checks them: finite floating-point images
            (another floating dtype is converted to the model's, integer or ``bool`` images are
            refused with a TypeError), labels in [0, K).
        trigger: the attacker's trigger; ``None`` scores clean accuracy only.
        target: the attacker's class in [0, K) (``None`` for all-to-all); ignored without a
            trigger.
        arch: ``"logreg"``, ``"mlp"`` or ``"cnn"`` (see :func:`poisonlab.models.make`); the
            old keyword ``model=`` is still accepted for it.
        epochs, lr, batch_size, schedule: SGD with momentum 0.9 and, by default, a cosine-annealed
            learning rate, as in :func:`poisonlab.train.fit`.
        seed: seeds both the initial weights and the shuffling.
        per_epoch: also record CA and ASR after every epoch (costs one test pass per epoch).
        progress: show a progress bar over epochs.
        watch: with ``per_epoch``, named training subsets ``{name: (x, y)}`` whose mean
            cross-entropy loss is recorded after every epoch as ``history.metrics["loss " + name]``
            (e.g. the poisons and the clean images, to see which are fitted first).
        **model_kwargs: passed to the model (e.g. ``channels`` for the CNN).

    Returns:
        A :class:`Score`.
    """
    if not isinstance(train, PoisonedSet) and not (isinstance(train, tuple | list) and len(train) == 2):
        raise ValueError(f"train must be a PoisonedSet or a pair (x, y), got {type(train).__name__}")
    x, y = (train.x, train.y) if isinstance(train, PoisonedSet) else train
    if not isinstance(train, PoisonedSet) and isinstance(x, torch.Tensor) and x.ndim >= 1:
        y = _validate.labels("train's labels y", y, n=x.shape[0])  # a pair (x, y) of unequal lengths
    y = _validate.labels("y", y)
    y_test = _validate.labels("y_test", y_test)
    _trigger(trigger, optional=True)
    if watch and not per_epoch:
        raise ValueError("watch records losses after every epoch; pass per_epoch=True with it")
    k = int(torch.cat([y, y_test]).max()) + 1
    present = len(torch.unique(torch.cat([y, y_test])))
    if k > 2 * present:  # a stray label (say 10**6) would otherwise build a model with k outputs
        raise ValueError(
            f"the labels of train and y_test name {present} classes but reach {k - 1}: labels must be class "
            f"indices 0, 1, …, K − 1"
        )
    arch = _validate.renamed("arch", arch, "model", model_kwargs.pop("model", None), "cnn")
    arch = _validate.choice("arch", arch, models.NAMES)
    net = models.make(arch, tuple(x.shape[1:]), k, seed=seed, **model_kwargs)
    x_test, y_test = _validate.model_inputs(
        net, x_test, name="x_test", y=y_test, y_name="y_test", classes={"target": target if trigger else None}
    )

    def score(net: nn.Module) -> dict[str, float]:
        out = {"clean_accuracy": accuracy(net, x_test, y_test)}
        if trigger is not None:
            out["attack_success_rate"] = attack_success_rate(net, x_test, y_test, trigger, target)
        return out

    def score_and_watch(net: nn.Module) -> dict[str, float]:
        out = score(net)
        for name, loss in mean_losses(net, watch or {}).items():
            out[f"loss {name}"] = loss
        return out

    history = fit(
        net,
        x,
        y,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        schedule=schedule,
        seed=seed,
        progress=progress,
        callback=(lambda _, m: score_and_watch(m)) if per_epoch else None,
    )
    final = score(net)
    return Score(net, final["clean_accuracy"], final.get("attack_success_rate", float("nan")), history)


class SignatureRun(TypedDict):
    """One backdoored training run of chapter 4 and what the spectral signatures see in it
    (returned by :func:`signature_run`; a plain dict, so it travels back from a worker process).

    Attributes:
        seed: the seed of the run.
        set: the poisoned training set (a :class:`~poisonlab.poison.PoisonedSet`).
        model: the trained network (eval mode).
        ca: clean accuracy on the test set, in [0, 1].
        asr: attack success rate on the source class's test images, in [0, 1].
        reps: representations (N, F) of the training set under ``model``.
        per_epoch: the training history's per-epoch metrics; with ``per_epoch=True`` also
            ``"representation"`` and ``"gradient"``, the two signatures' AUCs in the target class
            after every epoch.
        input: spectral scores (N,) of the flattened pixels.
        representation: spectral scores (N,) of ``reps``.
    """

    seed: int
    set: PoisonedSet
    model: nn.Module
    ca: float
    asr: float
    reps: torch.Tensor
    per_epoch: dict[str, list[float]]
    input: torch.Tensor
    representation: torch.Tensor


def _trigger(trigger: object, *, optional: bool = False) -> None:
    """Check ``trigger`` is a function of a batch of images (``None`` passes when ``optional``)."""
    if trigger is None and optional:
        return
    if not callable(trigger):
        raise TypeError(f"trigger must be a function of a batch of images (e.g. a Patch), got {trigger!r}")


def signature_run(
    poisoned: PoisonedSet,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    trigger: Callable[[torch.Tensor], torch.Tensor],
    source: int,
    *,
    arch: str = "cnn",
    model: str | None = None,
    epochs: int = 12,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    per_epoch: bool = False,
) -> SignatureRun:
    """Train a fresh model of architecture ``arch`` on a backdoored set and measure what Tran et al. 2018 (Algorithm 1)
    would see: clean accuracy, attack success from ``source`` to the set's target, and the
    spectral scores of the pixels and of the trained network's representations.

    Training is :func:`poisonlab.train.fit` with SGD, momentum 0.9 and a cosine-annealed learning
    rate, as in :func:`train_and_score`. With ``per_epoch``, the representation and gradient
    signatures of the target class are scored after every epoch
    (:func:`poisonlab.detect.signature_aucs`).

    Args:
        poisoned: a :class:`~poisonlab.poison.PoisonedSet` with images (N, C, H, W) and a target
            class (all-to-one), e.g. from :func:`poisonlab.triggers.backdoor`.
        x_test, y_test: clean test images (M, C, H, W), finite floating point (checked and
            converted as in :func:`poisonlab.metrics.accuracy`), and labels (M,) in [0, K), K the
            number of classes of the training set (``poisoned.y``).
        trigger: the attacker's trigger.
        source: the class in [0, K) whose test images the attack aims at (its ASR is reported).
        arch: ``"logreg"``, ``"mlp"`` or ``"cnn"`` (:func:`poisonlab.models.make`).
        model: the old name of ``arch``, still accepted.
        epochs, lr, batch_size: the training run.
        seed: seeds the initial weights and the shuffling.
        per_epoch: also score the signatures after every epoch (a few seconds per epoch).

    Returns:
        A :class:`SignatureRun`.
    """
    if not isinstance(poisoned, PoisonedSet) or poisoned.target is None:
        raise ValueError("poisoned must be a PoisonedSet with a target class (an all-to-one attack)")
    k = int(poisoned.y.max()) + 1
    source = _validate.class_index("source", source, k)
    _trigger(trigger)
    arch = _validate.choice("arch", _validate.renamed("arch", arch, "model", model, "cnn"), models.NAMES)
    net = models.make(arch, tuple(poisoned.x.shape[1:]), k, seed=seed)
    x_test, y_test = _validate.model_inputs(net, x_test, name="x_test", y=y_test, y_name="y_test")
    from_source = y_test == source
    if not bool(from_source.any()):
        raise ValueError(f"source {source} has no test images to measure the attack on")
    target = poisoned.target
    t = poisoned.y == target

    def watch(_: int, net: nn.Module) -> dict[str, float]:
        return detect.signature_aucs(net, poisoned.x[t], poisoned.y[t], poisoned.is_poison[t])

    history = fit(
        net,
        poisoned.x,
        poisoned.y,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        schedule="cosine",
        seed=seed,
        callback=watch if per_epoch else None,
        progress=False,
    )
    net.eval()
    reps = embed(net, poisoned.x)
    return {
        "seed": seed,
        "set": poisoned,
        "model": net,
        "ca": accuracy(net, x_test, y_test),
        "asr": attack_success_rate(net, x_test[from_source], y_test[from_source], trigger, target),
        "reps": reps,
        "per_epoch": history.metrics,
        "input": detect.spectral_scores(poisoned.x.flatten(1), poisoned.y),
        "representation": detect.spectral_scores(reps, poisoned.y),
    }


def _extractor(extractor: object) -> None:
    if not isinstance(extractor, nn.Module):
        raise TypeError(f"extractor must be a torch.nn.Module (a trained feature extractor), got {extractor!r}")


def end_to_end_flips(
    extractor: nn.Module,
    x_finetune: torch.Tensor,
    y_finetune: torch.Tensor,
    target: torch.Tensor,
    poisons: torch.Tensor,
    base_label: int,
    *,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 32,
    seed: int = 0,
) -> bool:
    """The victim of chapter 3's end-to-end attack (Shafahi et al. 2018, sec. 4.2): copy the
    extractor, give it a fresh head for the fine-tuning task, train *all* layers on the clean
    fine-tuning set plus ``poisons`` (labelled ``base_label``), and report whether the single
    ``target`` (C, H, W) is then classified as ``base_label``.

    Args:
        extractor: a pretrained :class:`~poisonlab.models.Classifier` (left untouched).
        x_finetune, y_finetune: the clean fine-tuning set, images (N, C, H, W) with N >= 1 and
            labels (N,) in [0, K), K = max(y_finetune) + 1.
        target: one target image (C, H, W).
        poisons: the poisons for this target (m, C, H, W), m ≥ 0.
        base_label: their (true) class in the fine-tuning labels, in [0, K).
        epochs, lr, batch_size, seed: SGD with momentum 0.9 over all parameters.

    Images (``x_finetune``, ``target``, ``poisons``) must be finite and floating point: another
    floating dtype is converted to the extractor's, integer or ``bool`` images are refused with a
    TypeError (scale ``uint8`` pixels to [0, 1] first); ``target`` and ``poisons`` must have the
    shape of one fine-tuning image.
    """
    _extractor(extractor)
    y_finetune = _validate.labels("y_finetune", y_finetune)
    if len(y_finetune) == 0:
        raise ValueError("y_finetune must hold at least one label, got 0")
    k = int(y_finetune.max()) + 1
    base_label = _validate.class_index("base_label", base_label, k)
    x_finetune, _ = _validate.model_inputs(extractor, x_finetune, name="x_finetune")
    if x_finetune.ndim != 4:
        raise ValueError(f"x_finetune must be images (N, C, H, W), got shape {tuple(x_finetune.shape)}")
    y_finetune = _validate.labels("y_finetune", y_finetune, n=x_finetune.shape[0])
    image = tuple(x_finetune.shape[1:])
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != image:
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target must be one image {image} (C, H, W, as in x_finetune), got {got}")
    target, _ = _validate.model_inputs(extractor, target, name="target", single=True)
    if not isinstance(poisons, torch.Tensor) or poisons.ndim != 4 or tuple(poisons.shape[1:]) != image:
        got = tuple(poisons.shape) if isinstance(poisons, torch.Tensor) else type(poisons).__name__
        raise ValueError(f"poisons must be images (m, {', '.join(map(str, image))}) like x_finetune's, got {got}")
    poisons, _ = _validate.model_inputs(extractor, poisons, name="poisons")
    model = copy.deepcopy(extractor)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_validate.seed(seed))
        model.head = nn.Linear(model.head.in_features, k)
    x = torch.cat([x_finetune, poisons]) if len(poisons) else x_finetune
    y = torch.cat([y_finetune, torch.full((len(poisons),), base_label, dtype=torch.long)])
    fit(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=False)
    return bool(predict(model, target)[0] == base_label)


def end_to_end_flipped(
    extractor: nn.Module,
    x_finetune: torch.Tensor,
    y_finetune: torch.Tensor,
    targets: torch.Tensor,
    poisons: torch.Tensor | None,
    base_label: int,
    *,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 32,
    seed: int = 0,
) -> torch.Tensor:
    """:func:`end_to_end_flips` for T targets, each with its own poisons: one end-to-end victim per
    target (Shafahi et al. 2018, sec. 4.2), trained and asked in turn.

    Args:
        extractor: a pretrained :class:`~poisonlab.models.Classifier` (left untouched).
        x_finetune, y_finetune: the clean fine-tuning set, labels in [0, K).
        targets: the target images (T, C, H, W), T ≥ 1.
        poisons: the poisons (T, m, C, H, W), row t for target t (m ≥ 0); ``None`` for none, which
            asks whether the clean victim already reads each target as ``base_label``.
        base_label: the poisons' (true) class in the fine-tuning labels.
        epochs, lr, batch_size, seed: as in :func:`end_to_end_flips`, the same for every target.

    Images are checked and converted as in :func:`end_to_end_flips` (finite floating point,
    integer or ``bool`` refused with a TypeError).

    Returns:
        (T,) bool: whether each target is classified as ``base_label`` after training.
    """
    _extractor(extractor)
    if not isinstance(targets, torch.Tensor) or targets.ndim != 4 or len(targets) == 0:
        raise ValueError(f"targets must be images (T, C, H, W) with T >= 1, got {getattr(targets, 'shape', None)}")
    targets, _ = _validate.model_inputs(extractor, targets, name="targets")
    if poisons is None:
        poisons = targets.new_zeros(len(targets), 0, *targets.shape[1:])
    if not isinstance(poisons, torch.Tensor) or poisons.ndim != 5 or poisons.shape[0] != len(targets):
        raise ValueError(
            f"poisons must be (T, m, C, H, W) with T = {len(targets)} rows, one per target, "
            f"got {getattr(poisons, 'shape', None)}"
        )
    poisons = _validate.model_inputs(extractor, poisons.flatten(0, 1), name="poisons")[0].view(poisons.shape)
    flipped = [
        end_to_end_flips(
            extractor,
            x_finetune,
            y_finetune,
            target,
            own,
            base_label,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
        )
        for target, own in zip(targets, poisons)
    ]
    return torch.tensor(flipped, dtype=torch.bool)


def mean_losses(
    model: nn.Module, groups: Mapping[str, tuple[torch.Tensor, torch.Tensor]], *, batch_size: int = 1024
) -> dict[str, float]:
    """The mean cross-entropy loss of ``model`` on each named group of examples.

    Args:
        model: a classifier returning (N, K) logits.
        groups: ``{name: (x, y)}`` with inputs (N, C, H, W) and integer labels (N,) in [0, K),
            N ≥ 1 for every group.

    Returns:
        ``{name: mean loss}``, each a float ≥ 0. Used to compare how fast poisons and clean images
        are fitted (the per-sample-loss view of Li et al. 2021, "Anti-backdoor learning").
    """
    if not isinstance(groups, Mapping):
        raise TypeError(f"groups must be a dict {{name: (x, y)}}, got {type(groups).__name__}")
    out = {}
    for name, group in groups.items():
        if not isinstance(group, (tuple, list)) or len(group) != 2:
            raise ValueError(f"groups[{name!r}] must be a pair (x, y), got {type(group).__name__}")
        x, y = group
        x, y = _validate.model_inputs(model, x, name=f"groups[{name!r}] x", y=y, y_name=f"groups[{name!r}] y")
        if len(x) == 0:
            raise ValueError(f"groups[{name!r}] must hold at least one example, got 0")
        z = logits(model, x, batch_size=batch_size)
        out[name] = float(torch.nn.functional.cross_entropy(z, y.to(z.device)))
    return out


@dataclass(frozen=True)
class Spread:
    """Mean and spread of one quantity measured over several runs (e.g. seeds).

    Attributes:
        mean: the mean, finite, in [lo, hi].
        sd: the sample standard deviation (n − 1 in the denominator; 0 for a single run), >= 0.
        lo, hi: the smallest and largest value, finite, lo <= hi.
        n: the number of runs, an integer >= 1.

    Construction checks these (a ValueError names the field): NaN, infinity, ``bool`` or text
    are refused, as are ``lo > hi``, a mean outside [lo, hi], a negative ``sd``, and an ``sd``
    that n values spanning [lo, hi] cannot have: at least (hi − lo)/√(2(n − 1)) (the two extremes
    alone) and at most (hi − lo)/2 · √(n/(n − 1)) (Popoviciu's bound); one run has lo = hi and sd 0.
    """

    mean: float
    sd: float
    lo: float
    hi: float
    n: int

    def __post_init__(self) -> None:
        for name in ("mean", "lo", "hi"):
            object.__setattr__(self, name, _validate.finite_number(name, getattr(self, name)))
        object.__setattr__(self, "sd", _validate.positive_float("sd", self.sd, allow_zero=True))
        object.__setattr__(self, "n", _validate.positive_int("n", self.n))
        if self.lo > self.hi:
            raise ValueError(f"lo must be <= hi, got lo={self.lo} and hi={self.hi}")
        tol = 1e-9 * max(1.0, abs(self.lo), abs(self.hi))
        if not self.lo - tol <= self.mean <= self.hi + tol:
            raise ValueError(f"mean must lie in [lo, hi] = [{self.lo}, {self.hi}], got {self.mean}")
        width = self.hi - self.lo
        if self.n == 1:
            if width > tol or self.sd > tol:
                raise ValueError(
                    f"lo, hi and sd must describe one run (n = 1): lo = hi and sd = 0, "
                    f"got lo={self.lo}, hi={self.hi}, sd={self.sd}"
                )
            return
        least, most = width / math.sqrt(2 * (self.n - 1)), width / 2 * math.sqrt(self.n / (self.n - 1))
        if not least - tol <= self.sd <= most + tol:
            raise ValueError(
                f"sd must lie in [{least:.4g}, {most:.4g}] for {self.n} runs spanning [lo, hi] = "
                f"[{self.lo}, {self.hi}], got {self.sd}"
            )

    def __format__(self, spec: str) -> str:
        spec = spec or ".3g"
        return f"{self.mean:{spec}} (range {self.lo:{spec}}–{self.hi:{spec}}, {self.n} runs)"


def spread(values: Sequence[float]) -> Spread:
    """Summarise repeated measurements: mean, sample sd, min and max.

    Args:
        values: one number per run, at least one; NaN and infinity are not allowed (an undefined
            run should be left out by the caller, who then knows it happened).

    Returns:
        A :class:`Spread`.
    """
    v = _validate.real_values("values", values, allow_nan=True).tolist()
    if not v:
        raise ValueError("values must hold at least one value (one per run), got none")
    if any(not math.isfinite(a) for a in v):
        raise ValueError(
            f"values must be finite, spread got NaN or infinity among {v}; leave undefined runs out explicitly"
        )
    m = sum(v) / len(v)
    sd = math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return Spread(m, sd, min(v), max(v), len(v))


def epoch_spread(
    histories: Sequence[History], key: str, *, mask_key: str | None = None, mask_below: float | None = None
) -> tuple[list[float], list[float], list[float]]:
    """Mean, min and max over runs of one per-epoch metric, epoch by epoch.

    With ``mask_key`` and ``mask_below``, a run's value at an epoch where its ``mask_key`` metric is
    below ``mask_below`` is left out (e.g. the ASR while the CA is under 50%, when a model that
    answers the target class to everything would score an ASR of 100%); an epoch left out by
    every run is NaN.

    Args:
        histories: the runs' :class:`~poisonlab.train.History` objects, recorded with the same
            number of epochs (``train_and_score(..., per_epoch=True)``).
        key: the metric, e.g. ``"attack_success_rate"``.

    Returns:
        Three lists (mean, min, max), one value per epoch.
    """
    if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
        raise TypeError(f"histories must be a list of History objects, one per run, got {histories!r}")
    if not histories:
        raise ValueError("histories must hold at least one run, got none")
    for i, h in enumerate(histories):
        if not isinstance(h, History):
            raise TypeError(f"histories[{i}] must be a History, got {type(h).__name__}")
    if (mask_key is None) != (mask_below is None):
        raise ValueError("pass mask_key and mask_below together, or neither")
    if not isinstance(key, str):
        raise ValueError(f"key must be the name of a per-epoch metric (a str), got {key!r}")
    for h in histories:
        for k in (key, mask_key):
            if k is not None and k not in h.metrics:
                raise ValueError(f"a run has no per-epoch {k!r}; it has {sorted(h.metrics)}")
    lengths = {len(h.metrics[key]) for h in histories}
    if len(lengths) != 1:
        raise ValueError(f"the runs have different numbers of epochs: {sorted(lengths)}")
    mean, lo, hi = [], [], []
    for e in range(lengths.pop()):
        values = [h.metrics[key][e] for h in histories if mask_key is None or h.metrics[mask_key][e] >= mask_below]
        mean.append(sum(values) / len(values) if values else math.nan)
        lo.append(min(values) if values else math.nan)
        hi.append(max(values) if values else math.nan)
    return mean, lo, hi


def first_epoch(values: Sequence[Any], test: Callable[[Any], bool]) -> int | None:
    """The first epoch (1-based) whose value passes ``test``, or ``None`` if none does.

    Args:
        values: one value per epoch, e.g. ``history.metrics["clean_accuracy"]``; NaN is refused
            (it fails every test, so the epoch would be passed over without a word).
        test: a predicate on one value, e.g. ``lambda v: v >= 0.8``.

    Returns:
        An epoch in [1, len(values)], or ``None``.
    """
    if not callable(test):
        raise ValueError(f"test must be a function of one value, got {type(test).__name__}")
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(f"values must be a list with one value per epoch, got {values!r}")
    values = list(values)
    for e, v in enumerate(values):  # a NaN fails every comparison: the epoch would be skipped unseen
        for x in v if isinstance(v, (tuple, list)) else (v,):
            if isinstance(x, numbers.Real) and math.isnan(x):
                raise ValueError(f"values must not hold NaN (epoch {e + 1} is NaN); leave undefined epochs out")
    return next((e + 1 for e, v in enumerate(values) if test(v)), None)


def first_epoch_at(history: History, thresholds: Mapping[str, float]) -> int | None:
    """The first epoch (1-based) at which every named per-epoch metric of one run is at least its
    threshold, e.g. ``{"clean_accuracy": 0.5, "attack_success_rate": 0.9}``: 90% ASR while the CA
    is at least 50%, below which an ASR means nothing (a model that answers the target class to
    everything scores 100%).

    Args:
        history: a run recorded with ``train_and_score(..., per_epoch=True)``.
        thresholds: ``{metric: lowest value}``, at least one metric, each in ``history.metrics``.

    Returns:
        An epoch in [1, epochs], or ``None`` if the run never gets there.
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be a History (from train_and_score(..., per_epoch=True)), got {history!r}")
    if not thresholds:
        raise ValueError("thresholds must name at least one metric, got none")
    missing = sorted(k for k in thresholds if k not in history.metrics)
    if missing:
        raise ValueError(f"history has no per-epoch {missing}; it has {sorted(history.metrics)}")
    rows = zip(*(history.metrics[k] for k in thresholds))
    return first_epoch(list(rows), lambda row: all(v >= t for v, t in zip(row, thresholds.values())))


def mean_sd(values: Sequence[float], spec: str = ".2f") -> str:
    """``"mean ± sd"`` of one quantity measured over several runs (e.g. seeds), for a table cell:
    the mean and the sample standard deviation (n − 1 in the denominator), each formatted with
    ``spec`` (e.g. ``".1%"``).

    Args:
        values: one number per run, at least two (a single run has no spread).
        spec: a format spec for a float.
    """
    v = _validate.real_values("values", values).tolist()
    if len(v) < 2:
        raise ValueError(f"values must hold at least two values for a spread (mean_sd), got {len(v)}")
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"spec must be a format spec for a float such as '.2f', got {spec!r}")
    try:
        return f"{statistics.mean(v):{spec}} ± {statistics.stdev(v):{spec}}"
    except ValueError:
        raise ValueError(f"spec must be a format spec for a float, got {spec!r}") from None


def per_run(records: Sequence[Mapping[str, Any]], *keys: str) -> list[Any]:
    """One value per run from per-run results: ``[record[k1][k2]…]`` for each record, in order.
    E.g. ``per_run(stats, "rep", "auc")`` for records ``{"rep": {"auc": …}, …}``.

    Args:
        records: one (possibly nested) mapping per run.
        *keys: the path to the value, at least one key.
    """
    if not keys:
        raise ValueError("keys: per_run needs at least one key, got none")
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise TypeError(f"records must be a list with one mapping per run, got {records!r}")
    out = []
    for i, record in enumerate(records):
        value = record
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                raise ValueError(f"records[{i}] has no {'/'.join(keys)!r} (missing key {key!r})")
            value = value[key]
        out.append(value)
    return out
