"""Checkers for the exercises of chapter 2, patch and blended backdoors."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import models
from poisonlab.check.core import Case, CheckResult, current_variant, generator, run, varied
from poisonlab.triggers import salient_pixels


def _images(seed: int, n: int = 5, shape: tuple[int, int, int] = (1, 6, 6)) -> torch.Tensor:
    return torch.rand(n, *shape, generator=generator(seed))


def check_blend(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check ``fn(x (N, C, H, W), key (C, H, W), alpha) -> (1 − α) x + α key`` (Chen et al. 2017,
    eq. 3), which must reject α outside [0, 1]."""
    x, key = _images(0), _images(1, 1)[0]
    rgb, rgb_key = _images(2, 3, (3, 4, 4)), _images(3, 1, (3, 4, 4))[0]
    hint = "x̃ = (1 − α) x + α k, computed for the whole batch at once (k broadcasts over N)."
    return run("blended trigger", fn, [
        Case("5 grey 6×6 images, α = 0.2", (x, key, 0.2), 0.8 * x + 0.2 * key, hint=hint),
        Case("3 colour images, α = 0.05", (rgb, rgb_key, 0.05), 0.95 * rgb + 0.05 * rgb_key, hint=hint),
        Case("α = 0 leaves the images untouched", (x, key, 0.0), x, hint=hint),
        Case("α = 1 replaces every image by the key", (x, key, 1.0), key.expand_as(x), hint=hint),
        Case("α = 1.5 is not a blend ratio", (x, key, 1.5), raises=ValueError, match="1.5",
             hint="raise ValueError when α is outside [0, 1], and say what α was."),
    ])


def _selection_summary(fn: Callable, y: torch.Tensor, target: int, count: int, seed: int) -> dict:
    idx = fn(y, target, count, seed)
    if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"return a tensor of integer indices, got {type(idx).__name__}")
    idx = idx.flatten().long()
    inside = bool(((idx >= 0) & (idx < len(y))).all())
    return {"how many": len(idx), "all different": len(set(idx.tolist())) == len(idx),
            "valid indices": inside, "none of the target class": inside and bool((y[idx] != target).all()),
            "same seed, same choice": torch.equal(fn(y, target, count, seed).flatten().long(), idx)}


def check_choose_poisons(fn: Callable[[torch.Tensor, int, int, int], torch.Tensor]) -> CheckResult:
    """Check ``fn(y (N,), target, count, seed) -> indices (count,)``: distinct training images,
    none of the target class, reproducible for a fixed seed."""
    y = torch.arange(40) % 4
    hint = ("draw `count` positions among torch.nonzero(y != target) with torch.randperm and a "
            "torch.Generator seeded by `seed`.")

    def summary(y: torch.Tensor, target: int, count: int, seed: int) -> dict:
        return _selection_summary(fn, y, target, count, seed)

    def expected(count: int) -> dict:
        return {"how many": count, "all different": True, "valid indices": True, "none of the target class": True,
                "same seed, same choice": True}

    t = current_variant() % 4  # the target class of the first case
    cases = [Case(f"40 labels, 4 classes, 5 poisons for target {t}", (y, t, 5, 0), expected(5), hint=hint),
             Case("every eligible image poisoned", (y, (t + 3) % 4, 30, 1), expected(30), hint=hint),
             Case("no poisons at all", (y, (t + 1) % 4, 0, 2), expected(0), hint=hint)]
    result = run("choosing the images to poison", summary, cases)
    if result.ok:  # a fixed choice that ignores the seed is not random
        different = not torch.equal(fn(y, t, 5, 0).flatten(), fn(y, t, 5, 1).flatten())
        result.lines.append(("✓" if different else "✗") + " a different seed picks different images"
                            + ("" if different else f"\n   hint: {hint}"))
        result.passed += different
        result.total += 1
    return result


def check_salient_pixels(fn: Callable[[torch.nn.Module, torch.Tensor, int, int], torch.Tensor]) -> CheckResult:
    """Check ``fn(model, x (N, C, H, W), target, k) -> mask (C, H, W)``: 1 on the k pixels where the
    mean input gradient of the target logit is largest, 0 elsewhere."""
    cases = []
    for seed, name, target, k in ((0, "logreg", 2, 5), (1, "cnn", 0, 10), (2, "mlp", 1, 1)):
        model = models.make(name, (1, 8, 8), 3, seed=varied(seed)).eval()
        x = _images(seed + 10, 16, (1, 8, 8))
        cases.append(Case(f"{name} on 16 random 8×8 images, target {target}, k = {k}", (model, x, target, k),
                          salient_pixels(model, x, target, k),
                          hint="make x require gradients, back-propagate the sum of the target logits, "
                               "average x.grad over the batch, and set the k largest entries to 1."))
    return run("salient pixels of the target class", fn, cases)
