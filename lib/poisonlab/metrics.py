"""Clean accuracy and attack success rate — the two numbers every attack is judged by.

An attack succeeds when the poisoned model keeps its clean accuracy (so nobody notices)
while sending triggered or targeted inputs to the attacker's class. :func:`mcnemar_exact`
compares two attacks scored on the same targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from poisonlab import _validate
from poisonlab.train import logits, predict


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Clean accuracy (CA): the fraction of ``x`` that ``model`` labels as ``y``, in [0, 1].

    Args:
        model: a classifier returning (N, K) logits.
        x: inputs, shape (N, ...), N >= 1, finite floating point; another floating dtype than
            the model's is converted to the model's, integer or ``bool`` inputs are refused
            with a TypeError (scale ``uint8`` pixels to [0, 1] first), NaN/inf with a ValueError.
        y: true labels, shape (N,), integers in [0, K), K the number of the model's outputs
            (a label the model cannot output is refused, not counted as a miss).
    """
    x, y = _validate.model_inputs(model, x, y=y)
    return float((predict(model, x, batch_size=batch_size) == y.cpu()).float().mean())


def share_labelled(model: nn.Module, x: torch.Tensor, label: int, *, batch_size: int = 1024) -> float:
    """The share of ``x`` that ``model`` labels ``label``, in [0, 1]: e.g. how many clean-label
    poisons an independent judge still reads as their base class (Shafahi et al. 2018 require
    poisons that a human labels correctly; chapter 3 stands a clean network in for the human).

    Args:
        model: a classifier returning (N, K) logits.
        x: inputs, shape (N, ...), N >= 1, checked and converted as in :func:`accuracy`.
        label: a class index in [0, K), K the number of the model's outputs.
    """
    _validate.non_negative_class("label", label)
    x, _ = _validate.model_inputs(model, x, classes={"label": label})
    label = int(label)
    return float((predict(model, x, batch_size=batch_size) == label).double().mean())


def logit_margin(scores: torch.Tensor, label: int) -> torch.Tensor:
    """How firmly a classifier reads each input as ``label``: its logit for ``label`` minus its
    largest other logit, shape (N,). Positive where ``label`` wins, by that many nats of log-odds
    against the strongest rival; negative where another class wins; 0 on a tie. Chapter 3's
    attacker keeps only the bases that its own network reads as their class with a margin, so that
    its poisons, once perturbed, still look like that class to someone else.

    Args:
        scores: logits (N, K), K >= 2, finite floating point (e.g. ``train.logits(model, x)``).
        label: the class index in [0, K).
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(
            "scores must be a floating-point tensor of logits shaped (N, K), "
            f"got {getattr(scores, 'shape', type(scores).__name__)}"
        )
    if scores.shape[1] < 2:
        raise ValueError(f"scores need K >= 2 classes to compare, got shape {tuple(scores.shape)}")
    _validate.finite("scores", scores)
    label = _validate.class_index("label", label, scores.shape[1])
    others = scores.clone()
    others[:, label] = -math.inf
    return scores[:, label] - others.max(1).values


def attack_success_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    apply_trigger: Callable[[torch.Tensor], torch.Tensor],
    target: int | None,
    *,
    batch_size: int = 1024,
) -> float:
    """Attack success rate (ASR) of a backdoor, in [0, 1].

    Implements the usual definition (Gu et al. 2017; Chen et al. 2017): among test inputs
    whose true class is *not* the target, the fraction that the model assigns to ``target``
    once the trigger is applied,

    .. math:: \\mathrm{ASR} = \\frac{|\\{i : y_i \\ne t,\\ \\hat y(T(x_i)) = t\\}|}{|\\{i : y_i \\ne t\\}|},

    where ŷ is the model's predicted class.

    Inputs already of the target class are left out: counting them would credit the attack
    with the model's ordinary accuracy. With ``target=None`` (the all-to-all attack, Gu et al.
    2017 sec. 4.3) every input counts and succeeds when it is sent to (y + 1) mod K.

    Args:
        model: a classifier returning (N, K) logits.
        x: clean test inputs, shape (N, ...), N >= 1, checked and converted as in
            :func:`accuracy`.
        y: their true labels, shape (N,), integers in [0, K).
        apply_trigger: maps a batch of inputs to triggered inputs of the same shape.
        target: the attacker's class t in [0, K), or ``None`` for the all-to-all attack.
    """
    if not callable(apply_trigger):
        raise ValueError(f"apply_trigger must be callable, got {type(apply_trigger).__name__}")
    if target is not None:
        target = _validate.non_negative_class("target", target)
    x, y = _validate.model_inputs(model, x, y=y, classes={"target": target})
    keep = y != target if target is not None else torch.ones_like(y, dtype=torch.bool)
    if not bool(keep.any()):
        raise ValueError(f"every input is already of the target class {target}; the ASR is undefined")
    x_src = x[keep]
    x_trig = apply_trigger(x_src)
    if not isinstance(x_trig, torch.Tensor) or x_trig.shape != x_src.shape:
        got = tuple(x_trig.shape) if isinstance(x_trig, torch.Tensor) else type(x_trig).__name__
        raise ValueError(f"apply_trigger must return a tensor shaped like its input {tuple(x_src.shape)}, got {got}")
    out = logits(model, x_trig, batch_size=batch_size)
    wanted = target if target is not None else (y[keep].cpu() + 1) % out.shape[1]
    return float((out.argmax(1) == wanted).float().mean())


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Row-normalised confusion matrix C (K, K): C[i, j] is the fraction of inputs of true class
    i predicted as j; each row with any input sums to 1, a row without inputs is all zeros.

    Applied to triggered inputs, row i shows where the backdoor sends class i.

    Args:
        y_true: true labels (N,) in [0, K).
        y_pred: predicted labels (N,) in [0, K).
        num_classes: K.
    """
    k = _validate.positive_int("num_classes", num_classes)
    y_true = _validate.labels("y_true", y_true, num_classes=k).cpu()
    y_pred = _validate.labels("y_pred", y_pred, n=len(y_true), num_classes=k).cpu()
    counts = torch.zeros(k, k)
    counts.index_put_((y_true, y_pred), torch.ones(len(y_true)), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp(min=1)


def mcnemar_exact(first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
    """McNemar's exact test: do two attacks succeed equally often on the *same* targets?

    Scored on the same P targets, two attacks give paired outcomes. Targets both win or both lose
    say nothing about which is stronger; only the *discordant* ones do: b targets only the first
    wins, c only the second. Under the null hypothesis that the two succeed equally often, each
    discordant target is a fair coin, b ~ Binomial(b + c, 1/2), and the two-sided p-value is
    min(1, 2 · P[X ≤ min(b, c)]) (McNemar 1947, in its exact binomial form; what
    ``scipy.stats.binomtest(b, b + c, 0.5)`` gives).

    Args:
        first, second: (P,) bool tensors, whether each attack won each target, P ≥ 1.

    Returns:
        ``{"first_only": b, "second_only": c, "both": ..., "neither": ..., "p_value": p}``, the
        counts as floats; p = 1 when no target is discordant.
    """
    for name, value in (("first", first), ("second", second)):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or value.ndim != 1:
            raise TypeError(f"{name} must be a 1-D bool tensor, got {getattr(value, 'dtype', type(value).__name__)}")
    if first.shape != second.shape or first.numel() == 0:
        raise ValueError(
            f"first and second must hold the same P >= 1 targets, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n  # P[X ≤ min(b, c)], X ~ Bin(n, 1/2)
    return {
        "first_only": float(b),
        "second_only": float(c),
        "both": float((first & second).sum()),
        "neither": float((~first & ~second).sum()),
        "p_value": min(1.0, 2.0 * tail),
    }
