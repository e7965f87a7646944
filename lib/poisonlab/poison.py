"""The one type every attack returns and every defence reads, and the one rule that turns a rate into a count."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from poisonlab import _validate

ROUNDINGS = ("floor", "nearest", "ceil")


def count_for_rate(rate: float, n: int, *, rounding: str = "floor") -> int:
    """How many of ``n`` points a share ``rate`` makes: the one rate-to-count rule of the package.

    ``rate · n`` is first rounded to 9 decimals, so that floating point cannot lose or add a point
    (0.29 · 100 is 28.999999999999996 in floating point, and gives 29), then

    * ``"floor"`` (default): ⌊rate · n⌋, what an attacker's budget buys in whole points;
    * ``"nearest"``: the nearest integer (ties to even), the share of a sample that is contaminated;
    * ``"ceil"``: ⌈rate · n⌉, what a defender must remove to be sure of covering the share.

    Args:
        rate: the share, in [0, 1].
        n: the number of points, >= 0.
        rounding: one of :data:`ROUNDINGS`.

    Returns:
        An integer in [0, n].
    """
    rate = _validate.fraction("rate", rate, closed=True)
    n = _validate.positive_int("n", n, allow_zero=True)
    _validate.choice("rounding", rounding, ROUNDINGS)
    exact = round(rate * n, 9)
    count = {"floor": math.floor, "nearest": round, "ceil": math.ceil}[rounding](exact)
    return min(n, int(count))


@dataclass(frozen=True)
class PoisonedSet:
    """A training set in which some points are poisons, and we know which.

    The attacker controls an ε-fraction of the training data: either it *adds* ⌊ε n⌋ crafted
    points to n clean ones (Biggio et al. 2012; Steinhardt et al. 2017), or it *replaces* ⌊ε n⌋
    of them (Gu et al. 2017). ``is_poison`` is the ground truth the learner never sees and the
    defences of chapters 4–5 are scored against.

    Attributes:
        x: all training inputs, clean and poisoned, shape (N, ...), finite floating point
            (NaN or infinity is refused: one such input spoils a whole training run).
        y: their (possibly wrong) labels, shape (N,), ``int64``.
        is_poison: ``True`` where the point was made or altered by the attacker, shape (N,).
        target: the class the attacker wants test inputs sent to, in [0, K) with K = max(y) + 1
            (``None`` for an untargeted attack that only raises the error).
        info: free-form description of the attack (name, ε, trigger, …). Adaptive attacks also
            list their *cover* samples, which carry the trigger but keep their true labels, as a
            bool mask ``info["cover"]`` of shape (N,); ``is_poison`` marks the relabelled points.
    """

    x: torch.Tensor
    y: torch.Tensor
    is_poison: torch.Tensor
    target: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = _validate.finite("x", _validate.inputs("x", self.x))
        y = _validate.labels("y", self.y, n=x.shape[0])
        m = self.is_poison
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != (x.shape[0],):
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(f"is_poison must be a bool tensor of shape ({x.shape[0]},), got {got}")
        if self.target is not None:
            _validate.non_negative_class("target", self.target)
            if y.numel():
                _validate.class_index("target", self.target, int(y.max()) + 1)

    @classmethod
    def append(
        cls,
        x_clean: torch.Tensor,
        y_clean: torch.Tensor,
        x_poison: torch.Tensor,
        y_poison: torch.Tensor,
        *,
        target: int | None = None,
        **info: Any,
    ) -> PoisonedSet:
        """Clean points followed by added poisons (the additive threat model)."""
        _validate.inputs("x_clean", x_clean)
        _validate.inputs("x_poison", x_poison)
        if x_clean.shape[1:] != x_poison.shape[1:]:
            raise ValueError(
                f"x_poison must have inputs shaped like x_clean, {tuple(x_clean.shape[1:])}, "
                f"got {tuple(x_poison.shape[1:])}"
            )
        _validate.labels("y_clean", y_clean, n=x_clean.shape[0])
        _validate.labels("y_poison", y_poison, n=x_poison.shape[0])
        is_poison = torch.cat(
            [torch.zeros(len(y_clean), dtype=torch.bool), torch.ones(len(y_poison), dtype=torch.bool)]
        )
        return cls(
            torch.cat([x_clean, x_poison.to(x_clean.dtype)]),
            torch.cat([y_clean, y_poison]),
            is_poison,
            target,
            dict(info),
        )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_poison(self) -> int:
        """Number of poisoned points."""
        return int(self.is_poison.sum())

    @property
    def n_clean(self) -> int:
        """Number of clean points."""
        return len(self) - self.n_poison

    @property
    def poison_fraction(self) -> float:
        """Poisons as a fraction of the whole training set, n_poison / N."""
        return self.n_poison / len(self) if len(self) else 0.0

    def clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean points ``(x, y)``, i.e. what a perfect defence would keep."""
        keep = ~self.is_poison
        return self.x[keep], self.y[keep]

    def poisons(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The poisoned points ``(x, y)``."""
        return self.x[self.is_poison], self.y[self.is_poison]

    def without(self, remove: torch.Tensor) -> PoisonedSet:
        """The set after a defence removes the points where ``remove`` is ``True``."""
        if not isinstance(remove, torch.Tensor) or remove.dtype != torch.bool or remove.shape != self.is_poison.shape:
            raise ValueError(f"remove must be a bool tensor of shape {tuple(self.is_poison.shape)}")
        keep = ~remove
        info = {
            k: v[keep] if isinstance(v, torch.Tensor) and v.shape == remove.shape else v for k, v in self.info.items()
        }  # per-point masks such as info["cover"] follow the points
        return PoisonedSet(self.x[keep], self.y[keep], self.is_poison[keep], self.target, info)

    def __repr__(self) -> str:
        return (
            f"PoisonedSet({len(self)} points, {self.n_poison} poisons "
            f"({self.poison_fraction:.1%}), target={self.target})"
        )
