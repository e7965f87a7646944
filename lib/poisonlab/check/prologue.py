"""Checkers for the exercises of chapter 0, the prologue."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, current_variant, generator, run


def _asr_cases() -> list[Case]:
    g = generator(7)
    t = (4 + current_variant()) % 10  # the target class of the random case
    y = torch.randint(0, 10, (500,), generator=g)
    pred = torch.where(torch.rand(500, generator=g) < 0.7, torch.tensor(t), y)
    keep = y != t
    return [
        Case("four test inputs, one already of the target class",
             (torch.tensor([3, 3, 1, 3]), torch.tensor([0, 1, 2, 3]), 3), 2 / 3,
             hint="an input whose true class is already the target says nothing about the trigger: "
                  "leave it out of both the count and the total."),
        Case("no input of the target class", (torch.tensor([5, 5, 5]), torch.tensor([0, 1, 2]), 5), 1.0),
        Case("the trigger never works", (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), 9), 0.0,
             hint="count the inputs *predicted* as the target."),
        Case(f"500 random inputs, target {t}", (pred, y, t), float((pred[keep] == t).float().mean()),
             hint="return a fraction in [0, 1], not a count, and leave out the inputs whose true "
                  "class is already the target."),
    ]


def check_attack_success_rate(fn: Callable[[torch.Tensor, torch.Tensor, int], float]) -> CheckResult:
    """Check ``fn(predictions, true_labels, target) -> float``: the attack success rate (the
    ASR equation of the notation page) from predicted labels on triggered inputs."""
    return run("attack success rate", fn, _asr_cases())


def _budget_cases() -> list[Case]:
    hint_range = "a budget ε is a fraction in [0, 1): raise ValueError for anything else."
    v = current_variant()
    n1, pct1 = 4000 + 100 * (v % 7), (3, 2, 4, 5, 1, 6, 8)[v % 7]  # n and ε (in %) of the first case
    n2 = 1000 * (1 + v % 5)
    return [
        Case(f"n = {n1}, ε = {pct1}%", (n1, pct1 / 100), n1 * pct1 // 100),
        Case(f"n = {n2}, ε = 0.5%", (n2, 0.005), n2 * 5 // 1000),
        Case("a fraction that does not divide evenly: n = 999, ε = 1%", (999, 0.01), 9,
             hint="the attacker can only afford whole points: round down."),
        Case("ε = 0", (500, 0.0), 0),
        Case("floating point: n = 100, ε = 0.29", (100, 0.29), 29,
             hint="in floating point 0.29 * 100 is 28.999999999999996; round before you floor."),
        Case("ε = 1.3 is not a fraction", (500, 1.3), raises=ValueError, hint=hint_range, match=r"1\.3"),
        Case("ε = -0.1 is not a fraction", (500, -0.1), raises=ValueError, hint=hint_range, match=r"-0\.1"),
    ]


def check_poison_budget(fn: Callable[[int, float], int]) -> CheckResult:
    """Check ``fn(n, eps) -> int``: the number of points an attacker with budget ε controls in
    a training set of n clean points, ⌊ε n⌋, with a ``ValueError`` that names the value for ε
    outside [0, 1)."""
    return run("poison budget", fn, _budget_cases())
