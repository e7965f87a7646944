"""Checkers for the exercises of chapter 3, clean-label feature collisions."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, generator, run


def _batch(seed: int, n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 5, 5, generator=generator(seed))


def check_proximal_step(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> CheckResult:
    """Check ``fn(x_hat, base, lr, beta) -> (x̂ + ηβ x_b) / (1 + ηβ)`` (Shafahi et al. 2018, Alg. 1)."""
    p_hat, base = _batch(0), _batch(1)
    hint = "minimise (β/2)‖x − x_b‖² + ‖x − x̂‖² / (2η): set the gradient to zero and solve for x."
    cases = [Case(f"η = {lr}, β = {beta}", (p_hat, base, lr, beta), (p_hat + lr * beta * base) / (1 + lr * beta),
                  hint=hint) for lr, beta in ((0.01, 0.25), (0.1, 5.0), (1.0, 1.0))]
    cases.append(Case("β = 0 leaves the gradient step as it is", (p_hat, base, 0.1, 0.0), p_hat, hint=hint))
    return run("proximal step", fn, cases)


def check_watermark(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check ``fn(base, target, opacity) -> γ t + (1 − γ) b``, rejecting γ outside [0, 1]."""
    base, target = _batch(2), _batch(3)
    hint = "b ← γ t + (1 − γ) b, for the whole batch at once."
    return run("watermark", fn, [
        Case("γ = 0.3", (base, target, 0.3), 0.3 * target + 0.7 * base, hint=hint),
        Case("γ = 0 keeps the base", (base, target, 0.0), base, hint=hint),
        Case("γ = 1 is the target", (base, target, 1.0), target, hint=hint),
        Case("γ = −0.2 is not an opacity", (base, target, -0.2), raises=ValueError, match="-0.2",
             hint="raise ValueError when γ is outside [0, 1], and say what γ was."),
    ])


def check_clean_label_success(fn: Callable[[torch.Tensor, torch.Tensor, int], float]) -> CheckResult:
    """Check ``fn(flipped (P,) bool, judge_pred (P,) int, base_label) -> float``: the share of
    pairs whose target flipped *and* whose poison the judge still reads as the base class."""
    flipped = torch.tensor([True, True, False, True, False, True])
    judged = torch.tensor([8, 3, 8, 8, 3, 8])
    hint = "a pair counts only when both hold: flipped[i] and judge_pred[i] == base_label; divide by P."
    return run("clean-label success rate", fn, [
        Case("6 pairs, base class 8", (flipped, judged, 8), 0.5, hint=hint),
        Case("every target flipped, but every poison looks like a 3", (torch.ones(4, dtype=torch.bool),
             torch.full((4,), 3), 8), 0.0, hint=hint),
        Case("nothing flipped", (torch.zeros(3, dtype=torch.bool), torch.full((3,), 8), 8), 0.0, hint=hint),
    ])
