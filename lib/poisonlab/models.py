"""The learners of the course: logistic regression, an MLP and a small CNN.

Every model splits into ``features`` (the penultimate representation, the space in which
spectral signatures and feature collisions live) and a linear ``head``::

    logits = model.head(model.features(x))

Inputs are batches shaped (N, C, H, W) (or (N, D) for 2-D toy data); logits are (N, K).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from poisonlab import _validate

NAMES = ("logreg", "mlp", "cnn")


class Classifier(nn.Module):
    """Base class: ``forward(x) = head(features(x))``."""

    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The penultimate representation, shape (N, F)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, K)."""
        return self.head(self.features(x))

    @property
    def feature_dim(self) -> int:
        """F, the width of the penultimate representation."""
        return self.head.in_features


def _num_classes(value: object) -> int:
    """K checked: an integer >= 2 (``bool`` and floats refused)."""
    k = _validate.integer("num_classes", value, ">= 2")
    if k < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {value!r}")
    return k


class LogisticRegression(Classifier):
    """Multinomial logistic regression: one linear layer on the flattened input.

    Its "representation" is the input itself, so ``features(x)`` has shape (N, C·H·W).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.input_shape = _validate.sizes("input_shape", input_shape)
        self.head = nn.Linear(math.prod(self.input_shape), _num_classes(num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class MLP(Classifier):
    """A fully connected network with ReLU hidden layers; ``features`` is the last hidden layer.

    ``hidden`` holds the widths of the hidden layers, a tuple of positive integers such as
    ``(256, 128)`` or ``(64,)`` (a bare integer is refused: it is not a list of layers).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        self.input_shape = _validate.sizes("input_shape", input_shape)
        num_classes = _num_classes(num_classes)
        hidden = list(_validate.sizes("hidden", hidden, what="(the widths of the hidden layers, e.g. (64,))"))
        widths = [math.prod(self.input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallCNN(Classifier):
    """Two 3×3 convolution blocks and one hidden dense layer.

    Every convolution pads by 1, so each pixel, the last rows and columns included, reaches the
    representation: a trigger in the bottom-right corner is *seen* (a CNN without padding
    silently ignores it, and a backdoor experiment then fails for the wrong reason).

    Shapes for a 1×28×28 input: conv → 28×28×c1 → pool → 14×14×c1 → conv → 14×14×c2 → pool →
    7×7×c2 → dense ``width``. The default widths (8 and 16 channels, 64 features) train one
    epoch of ``mnist5k`` in about half a second on two CPU cores and pass 90% test accuracy within
    three epochs.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, channels: tuple[int, int] = (8, 16), width: int = 64
    ) -> None:
        super().__init__()
        c, h, w = _validate.sizes("input_shape", input_shape, length=3, what="(C, H, W) (SmallCNN reads images)")
        if h < 4 or w < 4:
            raise ValueError(f"input_shape must give images of at least 4×4 pixels (SmallCNN), got {h}×{w}")
        self.input_shape = (c, h, w)
        num_classes = _num_classes(num_classes)
        c1, c2 = _validate.sizes("channels", channels, length=2, what="(c1, c2)")
        width = _validate.positive_int("width", width)
        # Each block is conv → max-pool → ReLU. ReLU is increasing, so it commutes with taking a
        # maximum: this is the same network as conv → ReLU → pool, with the same gradients (the same
        # weights after training, bit for bit), but the ReLU runs on a quarter of the values, which
        # makes an epoch about 10% faster.
        self.conv = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.ReLU(),
            nn.Flatten(),
        )
        flat = c2 * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        self.dense = nn.Sequential(nn.Linear(flat, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)
        # Channels-last ("NHWC") layout: on CPUs the convolutions and the pooling run about 1.5×
        # faster in it than in PyTorch's default layout, with the same values up to rounding.
        self.conv.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x.contiguous(memory_format=torch.channels_last)))


def make(name: str, input_shape: Sequence[int], num_classes: int, *, seed: int = 0, **kwargs) -> Classifier:
    """Build a freshly initialised model.

    Args:
        name: ``"logreg"``, ``"mlp"`` or ``"cnn"``.
        input_shape: shape of one input, e.g. ``dataset.input_shape`` = (1, 28, 28).
        num_classes: K, the number of outputs.
        seed: seeds the initial weights; the global torch RNG is left as it was.
        **kwargs: passed to the model class (``hidden`` for the MLP; ``channels``, ``width``
            for the CNN).

    Returns:
        A :class:`Classifier` in training mode, on the CPU.
    """
    _validate.choice("name", name, NAMES)
    input_shape = _validate.sizes("input_shape", input_shape)
    num_classes = _num_classes(num_classes)
    cls = {"logreg": LogisticRegression, "mlp": MLP, "cnn": SmallCNN}[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_validate.seed(seed))
        return cls(input_shape, num_classes, **kwargs)
