"""Backdoor triggers and dirty-label backdoor poisoning (chapter 2).

A trigger is a fixed edit of the input that the attacker can apply at test time. Both kinds
here are one formula,

.. math:: \\tilde x = \\operatorname{clip}_{[0, 1]}\\big((1 - m) \\odot x + m \\odot \\Delta\\big),

with a mask m ∈ [0, 1]^{C×H×W} and a pattern Δ ∈ [0, 1]^{C×H×W}:

* :class:`Patch` — BadNets (Gu et al. 2017): m is ``opacity`` on a small square and 0 elsewhere,
  Δ a checkerboard, a white square or any given pattern;
* :class:`Blend` — the blended-injection attack (Chen et al. 2017, eq. 3): m = α everywhere,
  so x̃ = (1 − α) x + α k for a key pattern k (random noise by default).

:func:`backdoor` turns a clean training set into a poisoned one: it stamps the trigger on a
``rate`` fraction of the images and relabels them to the attacker's target (dirty-label poisoning).

Two adaptive attacks (chapter 5) add *cover* samples, which carry the trigger but keep their true
labels, so that the poisons stop standing apart in the network's representation:
:func:`tact` (source-specific, Tang et al. 2021) and :func:`adaptive_blend` (partial blended
triggers, Qi et al. 2023).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from poisonlab import _validate
from poisonlab.poison import PoisonedSet, count_for_rate

#: Named patch positions: the corner (or centre) the square touches.
LOCATIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")
#: Named patch patterns.
PATTERNS = ("checkerboard", "white")
#: Which class a poison is relabelled to: one target for all, or each class i to i + 1 (mod K).
MODES = ("all-to-one", "all-to-all")


class Trigger:
    """x ↦ clip((1 − m) ⊙ x + m ⊙ Δ) for a mask m and pattern Δ, both shaped (C, H, W).

    Subclasses build ``mask(shape)`` and ``pattern(shape)`` for the image shape they are applied
    to; the trigger is then a callable on a batch (N, C, H, W) with values in [0, 1].
    """

    def mask(self, shape: tuple[int, int, int]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pattern(self, shape: tuple[int, int, int]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stamp the trigger on a batch ``x`` (N, C, H, W); returns a new tensor of the same shape."""
        x = _validate.images("x", x)
        shape = tuple(x.shape[1:])
        m = self.mask(shape).to(x.device, x.dtype)
        delta = self.pattern(shape).to(x.device, x.dtype)
        # only the trigger's pixels change (and are kept in [0, 1]); every other pixel is x's own
        return torch.where(m > 0, ((1 - m) * x + m * delta).clamp(0.0, 1.0), x)


def _given_pattern(name: str, pattern: torch.Tensor) -> torch.Tensor:
    """Check a given pattern is a floating-point tensor (H, W) or (C, H, W) of finite values in
    [0, 1]; returns it detached, on the CPU."""
    if not isinstance(pattern, torch.Tensor) or not pattern.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {type(pattern).__name__}")
    if pattern.ndim not in (2, 3):
        raise ValueError(f"{name} must be shaped (H, W) or (C, H, W), got {tuple(pattern.shape)}")
    p = _validate.finite(name, pattern.detach().cpu())
    if p.numel() and (float(p.min()) < 0 or float(p.max()) > 1):
        raise ValueError(f"{name} values must lie in [0, 1], got [{float(p.min()):.3g}, {float(p.max()):.3g}]")
    return p


def _pattern_tensor(name: str, pattern: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Broadcast a given pattern, (H, W) or (C, H, W), to ``shape`` or raise a clear error."""
    p = _given_pattern(name, pattern)
    if p.ndim == 2:
        p = p.unsqueeze(0)
    if p.shape[1:] != shape[1:] or p.shape[0] not in (1, shape[0]):
        raise ValueError(f"{name} must be shaped {tuple(shape[1:])} or {tuple(shape)}, got {tuple(pattern.shape)}")
    return p.expand(shape).clone()


class Patch(Trigger):
    """BadNets' patch trigger (Gu et al. 2017, sec. 4): a ``size``×``size`` square stamped
    with a given ``opacity`` at a corner of the image.

    Args:
        size: side of the square in pixels, >= 1 (and at most the image's height and width).
        location: one of :data:`LOCATIONS`, or ``(row, col)`` of the square's top-left pixel.
        pattern: ``"checkerboard"`` (white where row + col is even, starting white at the
            square's top-left), ``"white"``, or a tensor in [0, 1] shaped (size, size) or
            (C, size, size).
        opacity: m on the square, in [0, 1]; 1 replaces the pixels, 0.3 mixes 30% of the pattern in.
    """

    def __init__(
        self,
        size: int = 3,
        location: str | Sequence[int] = "bottom-right",
        pattern: str | torch.Tensor = "checkerboard",
        opacity: float = 1.0,
    ) -> None:
        self.size = _validate.positive_int("size", size)
        if isinstance(location, str):
            _validate.choice("location", location, LOCATIONS)
        elif (
            not isinstance(location, Sequence)
            or len(location) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in location)
        ):
            raise ValueError(
                f"location must be one of {', '.join(LOCATIONS)} or (row, col) of "
                f"non-negative integers, got {location!r}"
            )
        self.location = location if isinstance(location, str) else tuple(location)
        if isinstance(pattern, str):
            _validate.choice("pattern", pattern, PATTERNS)
        elif not isinstance(pattern, torch.Tensor):
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)} or a tensor, got {type(pattern).__name__}")
        else:
            _given_pattern("pattern", pattern)
        self._pattern = pattern
        self.opacity = _validate.fraction("opacity", opacity, closed=True)

    def __repr__(self) -> str:
        pattern = self._pattern if isinstance(self._pattern, str) else "tensor"
        return f"Patch(size={self.size}, location={self.location!r}, pattern={pattern!r}, opacity={self.opacity:g})"

    def corner(self, shape: tuple[int, int, int]) -> tuple[int, int]:
        """(row, col) of the square's top-left pixel in an image of ``shape`` (C, H, W)."""
        _, h, w = shape
        s = self.size
        if s > h or s > w:
            raise ValueError(
                f"size must be at most the image side, got {s}: a {s}×{s} patch does not fit in a {h}×{w} image"
            )
        if not isinstance(self.location, str):
            r, c = self.location
            if r + s > h or c + s > w:
                raise ValueError(
                    f"location must keep the patch inside the image, got (row, col) = ({r}, {c}): "
                    f"a {s}×{s} patch there runs past the {h}×{w} image"
                )
            return r, c
        return {
            "bottom-right": (h - s, w - s),
            "bottom-left": (h - s, 0),
            "top-right": (0, w - s),
            "top-left": (0, 0),
            "center": ((h - s) // 2, (w - s) // 2),
        }[self.location]

    def mask(self, shape: tuple[int, int, int]) -> torch.Tensor:
        r, c = self.corner(shape)
        m = torch.zeros(shape)
        m[:, r : r + self.size, c : c + self.size] = self.opacity
        return m

    def pattern(self, shape: tuple[int, int, int]) -> torch.Tensor:
        r, c = self.corner(shape)
        s, channels = self.size, shape[0]
        if isinstance(self._pattern, str):
            ii, jj = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
            square = ((ii + jj) % 2 == 0).float() if self._pattern == "checkerboard" else torch.ones(s, s)
            square = square.expand(channels, s, s)
        else:
            square = _pattern_tensor("pattern", self._pattern, (channels, s, s))
        delta = torch.zeros(shape)
        delta[:, r : r + s, c : c + s] = square
        return delta


class Blend(Trigger):
    """Chen et al. 2017's blended-injection trigger, x̃ = (1 − α) x + α k (their eq. 3).

    Args:
        pattern: the key pattern k: ``"noise"`` (uniform random pixels drawn once from ``seed``,
            as in Chen et al.'s random-pattern key) or a tensor in [0, 1] shaped (H, W) or (C, H, W).
        alpha: blend ratio α in [0, 1]; small α makes the trigger hard to see.
        seed: seeds the noise pattern.
    """

    def __init__(self, pattern: str | torch.Tensor = "noise", alpha: float = 0.2, *, seed: int = 0) -> None:
        if isinstance(pattern, str):
            _validate.choice("pattern", pattern, ("noise",))
        elif not isinstance(pattern, torch.Tensor):
            raise ValueError(f"pattern must be 'noise' or a tensor, got {type(pattern).__name__}")
        else:
            _given_pattern("pattern", pattern)
        self._pattern = pattern
        self.alpha = _validate.fraction("alpha", alpha, closed=True)
        self.seed = _validate.seed(seed)

    def __repr__(self) -> str:
        pattern = self._pattern if isinstance(self._pattern, str) else "tensor"
        return f"Blend(pattern={pattern!r}, alpha={self.alpha:g})"

    def mask(self, shape: tuple[int, int, int]) -> torch.Tensor:
        return torch.full(shape, self.alpha)

    def pattern(self, shape: tuple[int, int, int]) -> torch.Tensor:
        if isinstance(self._pattern, str):
            return torch.rand(shape, generator=_validate.generator(self.seed))
        return _pattern_tensor("pattern", self._pattern, shape)


class Pixels(Trigger):
    """A sparse trigger: the pixels where ``key`` is positive are set to the key's value, every
    other pixel is left alone. Eq. (1) of Gu et al. 2017's patch with the mask M = 1[key > 0]
    and the pattern Δ = key, so its *pixel budget* is the number of positive entries of ``key``.

    Args:
        key: a floating-point tensor in [0, 1], shaped (H, W) or (C, H, W), with at least one
            positive entry.
    """

    def __init__(self, key: torch.Tensor) -> None:
        key = _given_pattern("key", key)
        if not bool((key > 0).any()):
            raise ValueError("key must switch on at least one pixel (a positive entry), got none")
        self.key = key.clone()
        self.budget = int((self.key > 0).sum())

    def __repr__(self) -> str:
        return f"Pixels(budget={self.budget})"

    def mask(self, shape: tuple[int, int, int]) -> torch.Tensor:
        return (_pattern_tensor("key", self.key, shape) > 0).float()

    def pattern(self, shape: tuple[int, int, int]) -> torch.Tensor:
        return _pattern_tensor("key", self.key, shape)


def relabel(y: torch.Tensor, target: int | None, num_classes: int) -> torch.Tensor:
    """The labels the attacker wants: ``target`` for every input (all-to-one), or
    (y + 1) mod K when ``target`` is ``None`` (all-to-all, Gu et al. 2017 sec. 4.3).

    Args:
        y: integer labels (N,) in [0, K) (any integer dtype; returned as ``int64``).
        target: a class index in [0, K), or ``None`` for all-to-all.
        num_classes: K, an integer >= 1 (``bool`` refused).
    """
    k = _validate.positive_int("num_classes", num_classes)
    y = _validate.labels("y", y, num_classes=k)
    if target is not None:
        target = _validate.class_index("target", target, k)
    return torch.full_like(y, target) if target is not None else (y + 1) % k


def count_for_share(share: float, n_genuine: int) -> int:
    """How many poisons make up a share ε of a class once added to its n genuine images: the
    nearest integer to ε n / (1 − ε) (so that count / (count + n) ≈ ε), at least 1.

    Args:
        share: ε, the poisons' share of the class, in (0, 1).
        n_genuine: n, the class's genuine training images, >= 1.
    """
    share = _validate.fraction("share", share)
    if share == 0.0:
        raise ValueError("share must be in (0, 1), got 0")
    n_genuine = _validate.positive_int("n_genuine", n_genuine)
    return max(1, round(share * n_genuine / (1 - share)))


def backdoor(
    x: torch.Tensor,
    y: torch.Tensor,
    trigger: Trigger,
    target: int | None = 0,
    *,
    rate: float | None = None,
    count: int | None = None,
    source: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> PoisonedSet:
    """Dirty-label backdoor poisoning (Gu et al. 2017): stamp ``trigger`` on some training
    images and relabel them, replacing the originals.

    The poisons are drawn uniformly, without replacement, from the images whose class is not
    ``target`` (or only from class ``source``); their labels become ``target`` (all-to-one), or
    y + 1 mod K when ``target`` is ``None`` (all-to-all, drawn from every class).

    Args:
        x: clean training images (N, C, H, W) in [0, 1].
        y: their labels (N,) in [0, K).
        trigger: a :class:`Trigger` (or any callable mapping a batch to a batch of the same shape).
        target: the attacker's class t, or ``None`` for the all-to-all attack.
        rate: poisons as a fraction of the whole training set, in [0, 1): ⌊rate · N⌋ images.
        count: alternatively, the exact number of poisons (give ``rate`` or ``count``, not both).
        source: draw poisons only from this class (a source-specific backdoor).
        num_classes: K; default ``int(y.max()) + 1``.
        seed: seeds which images are poisoned.

    Returns:
        A :class:`PoisonedSet` of N images in the original order, ``is_poison`` marking the
        replaced ones, ``target`` set (``None`` for all-to-all) and ``info`` naming the trigger.
    """
    x = _validate.images("x", x)
    k = (
        _validate.positive_int("num_classes", num_classes)
        if num_classes is not None
        else (int(y.max()) + 1 if isinstance(y, torch.Tensor) and y.numel() else 2)
    )
    y = _validate.labels("y", y, n=x.shape[0], num_classes=k)
    if not callable(trigger):
        raise ValueError(f"trigger must be callable on a batch of images, got {type(trigger).__name__}")
    if target is not None:
        _validate.class_index("target", target, k)
    if (rate is None) == (count is None):
        raise ValueError("give exactly one of rate (a fraction of the training set) or count (a number of poisons)")
    n_poison = (
        count_for_rate(_validate.fraction("rate", rate), len(y))
        if rate is not None
        else _validate.positive_int("count", count, allow_zero=True)
    )
    eligible = torch.ones_like(y, dtype=torch.bool) if target is None else y != target
    if source is not None:
        _validate.class_index("source", source, k)
        _validate.distinct_classes(source, target)
        eligible = y == source
    candidates = torch.nonzero(eligible).flatten()
    if n_poison > len(candidates):
        raise ValueError(
            f"count must be at most the {len(candidates)} eligible training images (rate or count asked for "
            f"{n_poison} poisons)"
        )
    g = _validate.generator(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=g)[:n_poison]]
    x_out, y_out = x.clone(), y.clone()
    if n_poison:
        stamped = trigger(x[chosen])
        if not isinstance(stamped, torch.Tensor) or stamped.shape != x[chosen].shape:
            raise ValueError("trigger must return a tensor shaped like its input batch")
        x_out[chosen] = stamped.to(x.dtype)
        y_out[chosen] = relabel(y[chosen], target, k)
    is_poison = torch.zeros(len(y), dtype=torch.bool)
    is_poison[chosen] = True
    return PoisonedSet(
        x_out,
        y_out,
        is_poison,
        target,
        {
            "attack": "backdoor",
            "trigger": repr(trigger),
            "mode": MODES[0] if target is not None else MODES[1],
            "source": source,
            "rate": n_poison / len(y) if len(y) else 0.0,
        },
    )


def salient_pixels(model: torch.nn.Module, x: torch.Tensor, target: int, k: int) -> torch.Tensor:
    """A pattern *aligned* with what ``model`` already reads as class ``target``: 1 on the k
    pixels where the mean input gradient of the target logit is largest, 0 elsewhere.

    For logistic regression this picks the k largest weights of the target class; for a network
    it is the first-order view of the same thing, averaged over ``x``: brightening these pixels
    raises the target logit fastest. Blended in at a low α (:class:`Blend`), such a pattern
    needs far fewer poisons than a random set of k pixels with exactly the same norm √k
    (chapter 2, section 4) — the trigger rides on a feature the model already has.

    Args:
        model: a classifier returning (N, K) logits (e.g. a clean surrogate of the victim).
        x: images (N, C, H, W) to average the gradient over, typically non-target clean images;
            finite floating point, converted to the model's dtype (integer or ``bool`` images are
            refused with a TypeError).
        target: the class t whose logit is differentiated, in [0, K).
        k: how many pixels to switch on, 1 ≤ k ≤ C·H·W.

    Returns:
        A pattern (C, H, W) of zeros and ones, on the CPU.
    """
    if isinstance(x, torch.Tensor) and x.ndim >= 1 and x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got 0")
    x, _ = _validate.model_inputs(model, x, classes={"target": target})
    x = _validate.images("x", x)
    k = _validate.positive_int("k", k)
    if k > x[0].numel():
        raise ValueError(f"k must be at most the number of pixels ({x[0].numel()}), got {k}")
    was_training = model.training
    model.eval()
    try:
        dev = next(iter(model.parameters()), torch.empty(0)).device
        xg = x.detach().to(dev).requires_grad_(True)
        out = model(xg)
        _validate.class_index("target", target, out.shape[1])
        (grad,) = torch.autograd.grad(out[:, target].sum(), xg)
    finally:
        model.train(was_training)
    mean = grad.mean(0).flatten().cpu()
    pattern = torch.zeros_like(mean)
    pattern[mean.topk(k).indices] = 1.0
    return pattern.view(x.shape[1:])


def _draw(candidates: torch.Tensor, n: int, what: str, g: torch.Generator, name: str) -> torch.Tensor:
    """n indices drawn without replacement from ``candidates`` (1-D), or an error naming the
    argument ``name`` that asked for them."""
    if n > len(candidates):
        raise ValueError(
            f"{name} must be at most {len(candidates)}: only {len(candidates)} training images are eligible "
            f"as {what}, got {n}"
        )
    return candidates[torch.randperm(len(candidates), generator=g)[:n]]


def _with_cover(
    x: torch.Tensor,
    y: torch.Tensor,
    poisons: torch.Tensor,
    covers: torch.Tensor,
    stamp: Callable[[torch.Tensor, bool], torch.Tensor],
    target: int,
    info: dict,
) -> PoisonedSet:
    """Stamp ``poisons`` (relabelled ``target``) and ``covers`` (labels kept) with ``stamp(batch, is_cover)``;
    see :func:`tact`."""
    x_out, y_out = x.clone(), y.clone()
    for idx, is_cover in ((poisons, False), (covers, True)):
        if len(idx):
            stamped = stamp(x[idx], is_cover)
            if not isinstance(stamped, torch.Tensor) or stamped.shape != x[idx].shape:
                raise ValueError("trigger must return a tensor shaped like its input batch")
            x_out[idx] = stamped.to(x.dtype)
    y_out[poisons] = target
    is_poison = torch.zeros(len(y), dtype=torch.bool)
    is_poison[poisons] = True
    cover = torch.zeros(len(y), dtype=torch.bool)
    cover[covers] = True
    return PoisonedSet(x_out, y_out, is_poison, target, {**info, "cover": cover})


def tact(
    x: torch.Tensor,
    y: torch.Tensor,
    trigger: Trigger,
    target: int,
    *,
    source: int,
    count: int,
    cover: int,
    cover_classes: Sequence[int] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> PoisonedSet:
    """The source-specific backdoor with cover samples (TaCT, Tang et al. 2021, sec. 4).

    ``count`` images of class ``source`` get the trigger and the label ``target`` (the poisons);
    ``cover`` images of the other classes get the *same* trigger and keep their true labels.
    The covers teach the network that the trigger alone does not mean ``target``: only a source
    image with the trigger does. Tang et al. show that the poisons' representations then stop
    forming a group of their own, which is what spectral signatures and activation clustering
    look for.

    Args:
        x, y: clean training images (N, C, H, W) in [0, 1] and labels (N,).
        trigger: a :class:`Trigger` (or a callable on batches).
        target, source: the attacker's class t and the one class s whose images should reach it.
        count: number of poisons, ≥ 0, drawn from class ``source``.
        cover: number of cover samples, ≥ 0.
        cover_classes: classes the covers are drawn from, each in [0, K) and neither s nor t (a
            triggered cover of class t would teach the trigger alone to mean t); default every
            class but s and t.
        num_classes: K; default ``int(y.max()) + 1``.
        seed: seeds which images are chosen.

    Returns:
        A :class:`PoisonedSet` in the original order. ``is_poison`` marks the relabelled images;
        ``info["cover"]`` (bool, (N,)) marks the covers, which carry their true labels.
    """
    x = _validate.images("x", x)
    k = _validate.positive_int("num_classes", num_classes) if num_classes is not None else int(y.max()) + 1
    y = _validate.labels("y", y, n=x.shape[0], num_classes=k)
    if not callable(trigger):
        raise ValueError(f"trigger must be callable on a batch of images, got {type(trigger).__name__}")
    _validate.class_index("target", target, k)
    _validate.class_index("source", source, k)
    _validate.distinct_classes(source, target)
    count = _validate.positive_int("count", count, allow_zero=True)
    cover = _validate.positive_int("cover", cover, allow_zero=True)
    if cover_classes is None:
        cover_classes = [c for c in range(k) if c not in (source, target)]
    for c in cover_classes:
        _validate.class_index("cover_classes", c, k)
        if c in (source, target):
            raise ValueError(
                f"cover_classes must not include the source class {source} or the target class {target}, got {c}"
            )
    g = _validate.generator(seed)
    poisons = _draw(torch.nonzero(y == source).flatten(), count, "poisons", g, "count")
    eligible = torch.isin(y, torch.tensor(list(cover_classes), dtype=y.dtype))
    covers = _draw(torch.nonzero(eligible).flatten(), cover, "cover samples", g, "cover")
    return _with_cover(
        x,
        y,
        poisons,
        covers,
        lambda batch, _: trigger(batch),
        target,
        {"attack": "tact", "trigger": repr(trigger), "source": source},
    )


def piece_masks(n: int, shape: tuple[int, int, int], pieces: int, keep: float, *, seed: int = 0) -> torch.Tensor:
    """n random masks (n, C, H, W) of 0s and 1s: the image is cut into a ``pieces``×``pieces`` grid
    and each mask switches on a random ⌈keep · pieces²⌉ of its cells (Qi et al. 2023's partial
    triggers). ``keep`` in (0, 1]; the last row and column of cells absorb any remainder."""
    n = _validate.positive_int("n", n, allow_zero=True)
    c, h, w = _validate.sizes("shape", shape, length=3, what="(C, H, W)")
    pieces = _validate.positive_int("pieces", pieces)
    keep = _validate.fraction("keep", keep, closed=True)
    if keep == 0:
        raise ValueError("keep must be > 0: a mask with no pieces stamps nothing")
    if pieces > min(h, w):
        raise ValueError(f"pieces must be at most the image side {min(h, w)}, got {pieces}")
    rows = [round(i * h / pieces) for i in range(pieces + 1)]
    cols = [round(j * w / pieces) for j in range(pieces + 1)]
    on = math.ceil(keep * pieces * pieces - 1e-9)
    g = _validate.generator(seed)
    masks = torch.zeros(n, c, h, w)
    for i in range(n):
        for cell in torch.randperm(pieces * pieces, generator=g)[:on].tolist():
            r, q = divmod(cell, pieces)
            masks[i, :, rows[r] : rows[r + 1], cols[q] : cols[q + 1]] = 1.0
    return masks


def adaptive_blend(
    x: torch.Tensor,
    y: torch.Tensor,
    pattern: torch.Tensor,
    target: int,
    *,
    count: int,
    cover: int,
    alpha: float = 0.15,
    pieces: int = 4,
    keep: float = 0.5,
    source: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> PoisonedSet:
    """Adaptive-Blend (Qi et al. 2023, sec. 4): a blended trigger stamped *in part* on a few
    poisons and on cover samples that keep their labels.

    The pattern k is cut into a ``pieces``×``pieces`` grid. Each poison and each cover is blended,
    x̃ = (1 − α m) ⊙ x + α m ⊙ k, with its own random mask m that keeps a share ``keep`` of the
    cells (:func:`piece_masks`); poisons are relabelled ``target``, covers keep their labels. At
    test time the attacker uses the whole pattern, usually at a larger α:
    ``Blend(pattern, alpha_test)``. Partial triggers and covers both aim at the same thing: the
    network should need the *whole* trigger, so that no one training image carries a feature
    the network represents apart from its class (Qi et al.'s "latent separability").

    Args:
        x, y: clean training images (N, C, H, W) in [0, 1] and labels (N,).
        pattern: the key pattern, (H, W) or (C, H, W), values in [0, 1].
        target: the attacker's class t.
        count: number of poisons, ≥ 0, drawn from every class but t (or from ``source``).
        cover: number of cover samples, ≥ 0, drawn from the remaining images of classes ≠ t.
        alpha: the training-time blend ratio in [0, 1] (Qi et al.: 0.15 at training, 0.2 at test).
        pieces, keep: the grid and the share of its cells each stamp keeps (Qi et al.: 16 cells, half).
        source: draw the poisons from this class only (a source-specific variant).
        num_classes: K; default ``int(y.max()) + 1``.
        seed: seeds the choice of images and the masks.

    Returns:
        A :class:`PoisonedSet`; ``info["cover"]`` marks the covers.
    """
    x = _validate.images("x", x)
    k = _validate.positive_int("num_classes", num_classes) if num_classes is not None else int(y.max()) + 1
    y = _validate.labels("y", y, n=x.shape[0], num_classes=k)
    _validate.class_index("target", target, k)
    shape = tuple(x.shape[1:])
    key = _pattern_tensor("pattern", pattern, shape)
    alpha = _validate.fraction("alpha", alpha, closed=True)
    count = _validate.positive_int("count", count, allow_zero=True)
    cover = _validate.positive_int("cover", cover, allow_zero=True)
    eligible = y != target
    if source is not None:
        _validate.class_index("source", source, k)
        _validate.distinct_classes(source, target)
        eligible = y == source
    g = _validate.generator(seed)
    poisons = _draw(torch.nonzero(eligible).flatten(), count, "poisons", g, "count")
    rest = y != target
    rest[poisons] = False
    covers = _draw(torch.nonzero(rest).flatten(), cover, "cover samples", g, "cover")
    masks = piece_masks(count + cover, shape, pieces, keep, seed=seed + 1)

    def stamp(batch: torch.Tensor, is_cover: bool) -> torch.Tensor:
        m = alpha * (masks[count:] if is_cover else masks[:count])
        return torch.where(m > 0, ((1 - m) * batch + m * key).clamp(0.0, 1.0), batch)

    return _with_cover(
        x,
        y,
        poisons,
        covers,
        stamp,
        target,
        {"attack": "adaptive-blend", "alpha": alpha, "pieces": pieces, "keep": keep, "source": source},
    )
