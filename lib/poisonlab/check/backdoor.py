"""Checkers for the exercises of chapter 2, patch and blended backdoors."""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import models
from poisonlab.check.core import Case, CheckResult, current_variant, generator, run, varied
from poisonlab.triggers import salient_pixels


def _images(seed: int, n: int = 5, shape: tuple[int, int, int] = (1, 6, 6)) -> torch.Tensor:
    return torch.rand(n, *shape, generator=generator(seed))


def check_salient_pixels(fn: Callable[[torch.nn.Module, torch.Tensor, int, int], torch.Tensor]) -> CheckResult:
    """Check ``fn(model, x (N, C, H, W), target, k) -> mask (C, H, W)``: 1 on the k pixels where the
    mean input gradient of the target logit is largest, 0 elsewhere."""
    cases = []
    for seed, name, target, k in ((0, "logreg", 2, 5), (1, "cnn", 0, 10), (2, "mlp", 1, 1)):
        model = models.make(name, (1, 8, 8), 3, seed=varied(seed)).eval()
        x = _images(seed + 10, 16, (1, 8, 8))
        cases.append(
            Case(
                f"{name} on 16 random 8×8 images, target {target}, k = {k}",
                (model, x, target, k),
                salient_pixels(model, x, target, k),
                hint="make x require gradients, back-propagate the sum of the target logits, "
                "average x.grad over the batch, and set the k largest entries to 1.",
            )
        )
    return run("salient pixels of the target class", fn, cases)


def _min_alpha(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, key: torch.Tensor, target: int) -> float | None:
    """The reference for :func:`check_min_alpha`: the logits of (1 − α) x + α Δ are
    (1 − α) z(x) + α z(Δ), so each rival class j gives one linear inequality in α."""
    zx, zk = w @ x + b, w @ key + b
    lo, hi = 0.0, 1.0
    for j in range(len(b)):
        if j == target:
            continue
        a, c = float(zx[target] - zx[j]), float(zk[target] - zk[j])  # the margin over j at α = 0 and α = 1
        slope = c - a
        if slope > 0:
            lo = max(lo, -a / slope)
        elif slope < 0:
            hi = min(hi, a / -slope)
        elif a < 0:
            return None
    return lo if lo <= hi else None


def check_min_alpha(fn: Callable[..., float | None]) -> CheckResult:
    """Check ``fn(w (K, D), b (K,), x (D,), key (D,), target) -> α`` : the smallest blend ratio α
    in [0, 1] at which the linear classifier z = w v + b gives the blended input
    v = (1 − α) x + α key a target logit at least as large as every other logit, or ``None``
    when no α in [0, 1] does (the DERIVE exercise of chapter 2)."""
    g = generator(21)
    wanted = {
        "needs a blend": lambda a: a is not None and 0.0 < a < 1.0,
        "already the target (α = 0)": lambda a: a == 0.0,
        "no α in [0, 1] works": lambda a: a is None,
    }
    found: dict[str, tuple] = {}
    k, dim = 4 + current_variant() % 3, 12
    for _ in range(2000):  # draw random linear models until every kind of case has turned up
        w, b = torch.randn(k, dim, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)
        x, key = torch.rand(dim, generator=g, dtype=torch.float64), torch.rand(dim, generator=g, dtype=torch.float64)
        target = int(torch.randint(k, (1,), generator=g))
        answer = _min_alpha(w, b, x, key, target)
        for name, fits in wanted.items():
            if name not in found and fits(answer):
                found[name] = ((w, b, x, key, target), answer)
        if len(found) == len(wanted):
            break
    hint = (
        "write the logits of the blended input in terms of the logits of x and of the key; each "
        "rival class then gives one condition on α, and α must satisfy all of them at once."
    )
    cases = [
        Case(f"{k} classes, {dim} pixels: {name}", args, answer, hint=hint) for name, (args, answer) in found.items()
    ]
    return run("the smallest blend ratio that flips a linear model", fn, cases, rtol=1e-6, atol=1e-6)


def _design_report(
    fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    target: int,
    seed: int,
    budget: int,
    rate: float,
    asr_goal: float,
) -> dict:
    from poisonlab.experiment import train_and_score
    from poisonlab.triggers import Pixels, backdoor

    key = fn(x.clone(), y.clone(), target)
    shape = tuple(x.shape[1:])
    if not isinstance(key, torch.Tensor) or tuple(key.shape) != shape or not key.is_floating_point():
        raise TypeError(
            f"return a floating-point tensor shaped {shape}, got "
            f"{tuple(key.shape) if isinstance(key, torch.Tensor) else type(key).__name__}"
        )
    key = key.detach().cpu()
    in_range = bool(((key >= 0) & (key <= 1)).all())
    used = int((key > 0).sum())
    report = {"values in [0, 1]": in_range, f"at most {budget} pixels switched on": 0 < used <= budget}
    if not all(report.values()):
        return report | {f"ASR ≥ {asr_goal:.0%}": False}
    trigger = Pixels(key)
    poisoned = backdoor(x, y, trigger, target, rate=rate, seed=seed)
    score = train_and_score(poisoned, x_test, y_test, trigger, target, arch="logreg", epochs=8, lr=0.1, seed=seed)
    return report | {f"ASR ≥ {asr_goal:.0%}": score.attack_success_rate >= asr_goal}


def check_design_key(
    fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    *,
    budget: int = 9,
    rate: float = 0.02,
    asr_goal: float = 0.8,
) -> CheckResult:
    """Check a designed sparse trigger: ``fn(x_train (N, 1, 28, 28), y_train (N,), target) -> key
    (1, 28, 28)`` with values in [0, 1] and at most ``budget`` positive pixels. The checker plants
    it (:class:`poisonlab.triggers.Pixels`) in ``rate`` of mnist5k's training images, trains a
    logistic regression (8 epochs, SGD, lr 0.1) and asks for an ASR of at least ``asr_goal`` on the
    triggered test digits. Each case trains one model (well under a second on a CPU)."""
    from poisonlab.data import load

    d = load("mnist5k", seed=varied(0) % 2**31)
    t = current_variant() % 10
    hint = (
        "a linear model can only use a pixel that the poisons have and the clean images lack: "
        "look at where the training images (the ones that are not of the target class) carry ink."
    )
    expected = {"values in [0, 1]": True, f"at most {budget} pixels switched on": True, f"ASR ≥ {asr_goal:.0%}": True}

    def summary(x, y, target, seed):
        return _design_report(fn, x, y, d.x_test, d.y_test, target, seed, budget, rate, asr_goal)

    cases = [
        Case(
            f"target {target}, {rate:.0%} poisons, a logistic regression",
            (d.x_train, d.y_train, target),
            expected,
            kwargs={"seed": varied(31 + i) % 2**31},
            hint=hint,
        )
        for i, target in enumerate((t, (t + 5) % 10))
    ]
    return run(f"a trigger of at most {budget} pixels", summary, cases)
