"""Fast, deterministic training on in-memory tensors.

Small datasets fit in memory, so :func:`fit` slices mini-batches from tensors directly rather
than going through a ``DataLoader``: on a 2-core CPU this is several times faster, and the only
randomness, the shuffling order, comes from a ``torch.Generator`` seeded by ``seed``. With the
same model initialisation and seed, two CPU runs give bit-for-bit the same weights.

Training minimises the mean cross-entropy (plus an L2 penalty ``weight_decay/2 · ||θ||²``)

.. math:: \\min_\\theta \\frac{1}{n}\\sum_{i=1}^n \\ell(f_\\theta(x_i), y_i)

by mini-batch SGD with momentum (default) or Adam, on CUDA or MPS when one is present.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab import _validate
from poisonlab.progress import progress_bar

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")


@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    Attributes:
        loss: mean training loss of each epoch.
        train_accuracy: fraction of training examples classified correctly during each epoch.
        metrics: extra per-epoch values returned by the ``callback`` of :func:`fit`,
            e.g. ``{"test_accuracy": [...], "attack_success_rate": [...]}``.
        seconds: wall-clock training time.

    Construction checks the fields: ``loss`` is a list of real numbers >= 0 (``bool`` and text
    refused; a NaN or infinite loss is kept, it is what a diverging run records, but a negative
    loss is refused: the cross-entropy is never negative), ``train_accuracy`` a list of fractions
    in [0, 1], ``metrics`` a dict of lists of real numbers, ``seconds`` a finite number >= 0.
    """

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "train_accuracy"):
            _per_epoch(name, getattr(self, name))
        for e, v in enumerate(self.loss):
            if float(v) < 0:
                raise ValueError(
                    f"loss must hold values >= 0 (or NaN for a diverged epoch), got {v!r} at epoch {e + 1}"
                )
        for e, v in enumerate(self.train_accuracy):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"train_accuracy must hold fractions in [0, 1], got {v!r} at epoch {e + 1}")
        if not isinstance(self.metrics, dict):
            raise ValueError(f"metrics must be a dict of per-epoch lists, got {type(self.metrics).__name__}")
        for key, values in self.metrics.items():
            _per_epoch(f"metrics[{key!r}]", values)
        self.seconds = _validate.positive_float("seconds", self.seconds, allow_zero=True)

    @property
    def epochs(self) -> int:
        """Number of epochs run."""
        return len(self.loss)


def _per_epoch(name: str, values: object) -> None:
    """Check ``values`` is a list of real numbers, one per epoch (NaN allowed: a diverging run)."""
    if not isinstance(values, list):
        raise ValueError(f"{name} must be a list of per-epoch numbers, got {type(values).__name__}")
    for v in values:
        _validate.real(name, v)


def default_device() -> torch.device:
    """CUDA if present, else Apple's MPS if present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def learning_rate(schedule: str, lr: float, step: int, total_steps: int) -> float:
    """The learning rate after ``step`` of ``total_steps`` optimiser steps: ``lr`` for
    ``"constant"``, lr · (1 + cos(π · step / total_steps)) / 2 for ``"cosine"`` (Loshchilov &
    Hutter 2017, SGDR without restarts), which falls from ``lr`` at step 0 to 0 at the end.

    Args:
        schedule: ``"constant"`` or ``"cosine"``.
        lr: the base learning rate, finite and > 0.
        step: optimiser steps taken, an integer in [0, total_steps] (``bool`` refused).
        total_steps: optimiser steps in the whole run, an integer >= 1.
    """
    _validate.choice("schedule", schedule, SCHEDULES)
    lr = _validate.positive_float("lr", lr)
    total_steps = _validate.positive_int("total_steps", total_steps)
    step = _validate.positive_int("step", step, allow_zero=True)
    if step > total_steps:
        raise ValueError(f"step must be <= total_steps ({total_steps}), got {step}")
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    schedule: str = "constant",
    progress: bool = False,
    callback: Callable[[int, nn.Module], dict[str, float] | None] | None = None,
    device: str | torch.device | None = None,
) -> History:
    """Train ``model`` in place on ``(x, y)`` by mini-batch gradient descent.

    Args:
        model: a classifier mapping (N, ...) inputs to (N, K) logits.
        x: training inputs, shape (N, ...), N >= 1, finite floating point; another floating
            dtype than the model's (``float64`` for a ``float32`` model) is converted to the
            model's, integer or ``bool`` inputs are refused with a TypeError (scale ``uint8``
            pixels to [0, 1] first), NaN or infinity with a ValueError.
        y: labels, shape (N,), integers in [0, K), K the number of the model's outputs.
        epochs: passes over the data, >= 1.
        lr: learning rate, > 0.
        batch_size: examples per step, >= 1 (the last batch of an epoch may be smaller).
        weight_decay: L2 penalty coefficient, >= 0.
        seed: seeds the shuffling order.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        momentum: SGD momentum in [0, 1).
        schedule: ``"constant"`` keeps ``lr``; ``"cosine"`` anneals it after every step to
            lr · (1 + cos(π t / T)) / 2 (Loshchilov & Hutter 2017, without restarts), so the last
            epochs average out SGD's noise and the final model depends less on the last batches.
        progress: show a progress bar over epochs (off by default, as in every function that
            does one piece of work; :func:`poisonlab.parallel.run_parallel` shows one by default).
        callback: called as ``callback(epoch, model)`` after every epoch (model in eval mode);
            a returned dict of floats is appended to ``History.metrics``.
        device: where to train; default CUDA, then MPS, then CPU. The model stays there.

    Returns:
        A :class:`History` of per-epoch loss and training accuracy.
    """
    if isinstance(x, torch.Tensor) and x.ndim >= 1 and x.shape[0] == 0:
        raise ValueError("x must hold at least one training example, got 0")
    x, y = _validate.model_inputs(model, x, y=y)
    epochs = _validate.positive_int("epochs", epochs)
    lr = _validate.positive_float("lr", lr)
    batch_size = _validate.positive_int("batch_size", batch_size)
    weight_decay = _validate.positive_float("weight_decay", weight_decay, allow_zero=True)
    momentum = _validate.fraction("momentum", momentum)
    _validate.choice("optimizer", optimizer, OPTIMIZERS)
    _validate.choice("schedule", schedule, SCHEDULES)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(epoch, model) or None, got {callback!r}")

    try:
        dev = torch.device(device) if device is not None else default_device()
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r} ({e})") from None
    model.to(dev)
    x, y = x.to(dev), y.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    g = _validate.generator(seed)
    history = History()
    n = x.shape[0]
    total_steps, step = epochs * math.ceil(n / batch_size), 0
    start = time.perf_counter()
    bar = progress_bar(epochs, desc="training", unit="epoch") if _validate.flag("progress", progress) else None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g).to(dev)
        total_loss, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for group in opt.param_groups:
                group["lr"] = learning_rate(schedule, lr, step, total_steps)
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == y[idx]).sum())
        history.loss.append(total_loss / n)
        history.train_accuracy.append(correct / n)
        if callback is not None:
            model.eval()
            with torch.no_grad():
                extra = callback(epoch, model) or {}
            if not isinstance(extra, Mapping):
                raise TypeError(f"callback must return a dict {{name: value}} or None, got {extra!r}")
            for key, value in extra.items():
                history.metrics.setdefault(key, []).append(float(value))
        if bar is not None:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _batched(
    model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int
) -> torch.Tensor:
    x, _ = _validate.model_inputs(model, x)
    batch_size = _validate.positive_int("batch_size", batch_size)
    dev = _device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [fn(x[i : i + batch_size].to(dev)).cpu() for i in range(0, x.shape[0], batch_size)]
    except RuntimeError as e:
        raise _validate.unreadable_model(x, e) from None
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("x must hold at least one example, got 0")
    return torch.cat(out)


def logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x``, shape (N, K), on the CPU, without gradients.

    ``x`` is (N, ...), N >= 1, finite and floating point: another floating dtype than the
    model's is converted to the model's, integer or ``bool`` inputs are refused with a TypeError
    and NaN or infinity with a ValueError (the checks of :func:`poisonlab._validate.model_inputs`).
    """
    return _batched(model, model, x, batch_size)


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels, shape (N,), ``int64``: the arg-max of the logits (``x`` is checked and
    converted as in :func:`logits`)."""
    return logits(model, x, batch_size=batch_size).argmax(1)


def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """The penultimate representation ``model.features(x)``, shape (N, F), on the CPU (``x`` is
    checked and converted as in :func:`logits`)."""
    if not hasattr(model, "features"):
        raise ValueError(f"model must have a .features(x) method, got {type(model).__name__}")
    return _batched(model, model.features, x, batch_size)
