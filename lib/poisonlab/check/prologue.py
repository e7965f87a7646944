"""Checkers for the exercises of chapter 0, the prologue."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import torch

from poisonlab.check.core import Case, CheckResult, current_variant, generator, run, varied


def _asr_cases() -> list[Case]:
    g = generator(7)
    t = (4 + current_variant()) % 10  # the target class of the random case
    y = torch.randint(0, 10, (500,), generator=g)
    pred = torch.where(torch.rand(500, generator=g) < 0.7, torch.tensor(t), y)
    keep = y != t
    idea = "what does the trigger have to do with an input that is already of the target class?"
    return [
        Case(
            "four test inputs, one already of the target class",
            (torch.tensor([3, 3, 1, 3]), torch.tensor([0, 1, 2, 3]), 3),
            2 / 3,
            hint=idea,
        ),
        Case("no input of the target class", (torch.tensor([5, 5, 5]), torch.tensor([0, 1, 2]), 5), 1.0),
        Case(
            "the trigger never works",
            (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), 9),
            0.0,
            hint="count the inputs *predicted* as the target.",
        ),
        Case(
            f"500 random inputs, target {t}",
            (pred, y, t),
            float((pred[keep] == t).float().mean()),
            hint="return a fraction in [0, 1], not a count; " + idea,
        ),
        Case(
            "every input is already of the target class: the ASR is undefined",
            (torch.tensor([t, t]), torch.tensor([t, t]), t),
            raises=ValueError,
            hint="with no input left to trigger there is no rate to report: raise ValueError.",
        ),
    ]


def check_attack_success_rate(fn: Callable[[torch.Tensor, torch.Tensor, int], float]) -> CheckResult:
    """Check ``fn(predictions, true_labels, target) -> float``: the attack success rate (the
    ASR equation of the notation page) from predicted labels on triggered inputs, with a
    ``ValueError`` when every input is already of the target class (the rate is undefined)."""
    return run("attack success rate", fn, _asr_cases())


def _additive_count(n: int, eps: float) -> int:
    """The largest whole n_p with n_p ≤ ε (n + n_p), in exact arithmetic on the decimal ε was typed as."""
    e = Fraction(repr(eps))
    return math.floor(e * n / (1 - e))


def _exact_is_whole(n: int, eps: float) -> bool:
    """Whether ε n / (1 − ε) is a whole number in exact arithmetic (floating point may miss it)."""
    e = Fraction(repr(eps))
    return (e * n / (1 - e)).denominator == 1


def _additive_cases() -> list[Case]:
    hint = (
        "write the share of poisons in the set the learner trains on, which counts the poisons too, "
        "and look for the largest whole number that keeps it at or below ε."
    )
    exact = (
        " If your reasoning gives exactly this bound: the share can be met exactly here, but floating "
        "point may land a hair below the whole number, so round before you take the whole part."
    )
    hint_range = "a budget ε is a fraction in [0, 1): raise ValueError, naming the value, for anything else."
    v = current_variant()
    n1, pct1 = 4000 + 100 * (v % 7), (3, 2, 4, 5, 1, 6, 8)[v % 7]  # n and ε (in %) of the first case
    n2, pct2 = 1000 * (1 + v % 5), (10, 20, 25, 40, 50)[v % 5]

    def count(description: str, n: int, eps: float) -> Case:
        return Case(
            description,
            (n, eps),
            _additive_count(n, eps),
            hint=hint + (exact if eps > 0 and _exact_is_whole(n, eps) else ""),
        )

    return [
        count(f"n = {n1}, ε = {pct1}%", n1, pct1 / 100),
        count(f"n = {n2}, ε = {pct2}%", n2, pct2 / 100),
        count("n = 999, ε = 1%: the attacker can only add whole points", 999, 0.01),
        count("n = 172, ε = 20%: the share can be met exactly", 172, 0.2),
        count("ε = 0", 500, 0.0),
        Case("ε = 1.3 is not a fraction", (500, 1.3), raises=ValueError, hint=hint_range, match=r"1\.3"),
        Case("ε = −0.1 is not a fraction", (500, -0.1), raises=ValueError, hint=hint_range, match=r"[-−]0?\.1"),
        # the value 1 itself, not the "1" of a message's "[0, 1)" or "below 1"
        Case(
            "ε = 1 would allow any number of poisons",
            (500, 1.0),
            raises=ValueError,
            hint=hint_range,
            match=r"1\.0|100 ?%|(?:(?<![<>≤≥])=|got|:|is)\s*1\b",
        ),
    ]


def check_additive_poisons(fn: Callable[[int, float], int]) -> CheckResult:
    """Check ``fn(n, eps) -> int``: the largest number n_p of poisons an attacker may add to n clean
    points when the budget ε bounds the poisons' share n_p / (n + n_p) of the training set the learner
    ends up with (the convention of the notation page's additive model bounds n_p by ε n instead), with a
    ``ValueError`` that names ε outside [0, 1)."""
    return run("poisons added under a share of the final set", fn, _additive_cases())


def pixel_centroid_accuracy(seed: int = 0) -> float:
    """Accuracy in [0, 1] of the nearest-class-mean classifier on raw pixels: each test image of
    ``mnist5k`` (split with ``seed``) goes to the class whose mean training image is nearest in
    Euclidean distance (784 dimensions). The prologue measures the same classifier in the CNN's
    representation."""
    from poisonlab import data

    ds = data.load("mnist5k", seed=seed)
    x, x_test = ds.x_train.flatten(1), ds.x_test.flatten(1)
    means = torch.stack([x[ds.y_train == k].mean(0) for k in range(ds.num_classes)])
    return float((torch.cdist(x_test, means).argmin(1) == ds.y_test).float().mean())


#: How far (in accuracy, absolute) a prediction may be from the measured value and still pass.
PREDICTION_TOLERANCE = 0.10


def check_predict_pixel_centroid(fn: Callable[[], float]) -> CheckResult:
    """Check ``fn() -> float``: a prediction, in [0, 1], of the nearest-class-mean accuracy on raw
    pixels (:func:`pixel_centroid_accuracy`), measured on this variant's split of ``mnist5k``; it passes
    within ``PREDICTION_TOLERANCE``."""
    measured = pixel_centroid_accuracy(varied(0))

    def prediction() -> float:
        value = fn()
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"return an accuracy as a fraction in [0, 1], got {value!r}")
        return float(value)

    return run(
        "predicted pixel-space accuracy",
        prediction,
        [
            Case(
                f"your prediction, within {100 * PREDICTION_TOLERANCE:.0f} percentage points of the measured accuracy",
                (),
                measured,
                hint="how far apart are two handwritten images of the same digit, pixel by pixel, compared with "
                "two images of different digits? Think of a 7 and a 1, or a 4 and a 9, written by different "
                "hands.",
            )
        ],
        rtol=0.0,
        atol=PREDICTION_TOLERANCE,
    )
