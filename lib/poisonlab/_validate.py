"""Input checks shared by the public functions.

Each check raises :class:`ValueError` with a message that names the argument, what was given
and what is allowed, e.g. ``"eps must be in [0, 1), got 1.3"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def _real(name: str, value: Any, allowed: str) -> float:
    """``value`` as a float if it is a real number (Python's, NumPy's, or a 0-d torch tensor);
    ``bool`` and strings are refused rather than read as 1, 0 or their digits."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{' ' + allowed if allowed else ''}, got {value!r}")
    return float(value)


def real(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a real number (NaN and infinity included, e.g. a
    recorded loss); ``bool`` and strings are refused."""
    return _real(name, value, "")


def finite_number(name: str, value: Any) -> float:
    """Return ``value`` as a float after checking it is a finite real number (negative allowed;
    ``bool``, strings, NaN and infinity refused)."""
    v = _real(name, value, "(finite)")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def fraction(name: str, value: Any, *, closed: bool = False) -> float:
    """Return ``value`` as a float after checking it lies in [0, 1) (or [0, 1] if ``closed``)."""
    v = _real(name, value, f"in [0, 1{']' if closed else ')'}")
    ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value!r}")
    return v


def seed(value: Any, name: str = "seed") -> int:
    """Return a random seed as a Python int: an integer (NumPy's and torch's integer scalars
    included, ``bool`` excluded) in [0, 2**63). ``None`` is refused: every result of the package
    is reproducible, so a seed is always given (or left at its default)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [0, 2**63), got {value!r}")
    v = int(value)
    if not 0 <= v < 2**63:
        raise ValueError(f"{name} must be an integer in [0, 2**63), got {value!r}")
    return v


def text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """Check ``value`` is a string (or ``None`` when ``optional``), e.g. an axis label or a name;
    a number is refused rather than written as its digits."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string{' or None' if optional else ''}, got {value!r}")
    return value


def texts(name: str, value: Any) -> list[str]:
    """Check ``value`` is a sequence (list, tuple) of strings or numbers, e.g. tick labels, and
    return them as strings; a single string is refused rather than split into its characters."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, dict):
        raise TypeError(f"{name} must be a list of labels (strings), got {value!r}")
    out = list(value)
    for i, v in enumerate(out):
        if isinstance(v, bool) or not isinstance(v, (str, numbers.Real)):
            raise TypeError(f"{name}[{i}] must be a string, got {v!r}")
    return [str(v) for v in out]


def _float_array(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 NumPy array: a tensor or array of a floating dtype, or (nested)
    lists of real numbers; integer and ``bool`` tensors and arrays, and ``bool`` or non-numeric
    entries, are refused with a TypeError."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        floating = value.is_floating_point() if isinstance(value, torch.Tensor) else value.dtype.kind == "f"
        if not floating:
            raise TypeError(
                f"{name} must hold floating-point {what}, got dtype {value.dtype} "
                f"(convert counts to shares, or call .float() on them)"
            )
        return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, dict):
        raise TypeError(f"{name} must be a sequence of {what}, got {value!r}")
    value = list(value)  # a generator is read once

    def walk(v: Any) -> None:
        if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0:
            real = v.dtype != torch.bool if isinstance(v, torch.Tensor) else v.dtype.kind in "fiu"
            if not real:
                raise TypeError(f"{name} must hold real numbers, got an entry {v!r}")
        elif isinstance(v, (list, tuple, torch.Tensor, np.ndarray)):
            for e in v:
                walk(e)
        elif isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must hold real numbers, got an entry {v!r}")

    walk(list(value))
    try:
        return np.asarray([e.detach().cpu().numpy() if isinstance(e, torch.Tensor) else e for e in value], dtype=float)
    except ValueError:
        raise ValueError(f"{name} must be a regular array of {what} (rows of equal length)") from None


def real_values(name: str, value: Any, *, allow_nan: bool = False) -> np.ndarray:
    """Check ``value`` is a flat sequence of real numbers (a list, a tuple, a 1-D floating-point
    tensor or array; ``bool`` refused) and return it as a float64 array. NaN and infinity are
    refused unless ``allow_nan`` (a measurement that is missing draws a gap). Any other iterable
    of numbers (a generator, say) is read once, as a list."""
    if not isinstance(value, (list, tuple, str, bytes, dict, torch.Tensor, np.ndarray)) and isinstance(value, Iterable):
        value = list(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        v = np.asarray(value, dtype=float)  # plain numbers, integers included (epochs, counts)
    elif isinstance(value, (torch.Tensor, np.ndarray)) and not isinstance(value, bool):
        kind = value.dtype == torch.bool if isinstance(value, torch.Tensor) else value.dtype.kind == "b"
        if kind:
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        v = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
    else:
        v = _float_array(name, value, "numbers")
    if v.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {v.shape}")
    if not allow_nan and not np.isfinite(v).all():
        raise ValueError(f"{name} must hold finite numbers, got {v.tolist()!r}")
    return v


def real_grid(name: str, value: Any) -> np.ndarray:
    """Check ``value`` is a 2-D grid of finite real numbers, (rows, cols): a floating-point tensor
    or array, or a list of rows of numbers. Integer and ``bool`` tensors and arrays are refused
    with a TypeError rather than drawn as they are (a grid of counts, or a mask, drawn on a scale
    of shares means nothing): convert them first. Returns a float64 array."""
    v = _float_array(name, value, "values")
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty (rows, cols) grid, got shape {v.shape}")
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v)).sum())
        raise ValueError(f"{name} must hold finite numbers, got {bad} NaN or infinite value{'s' * (bad != 1)}")
    return v


def generator(value: Any, name: str = "seed") -> torch.Generator:
    """A fresh CPU random generator seeded with ``value`` (checked by :func:`seed`); the global
    random state is left alone."""
    return torch.Generator().manual_seed(seed(value, name))


def _integer_item(value: Any) -> Any:
    """A 0-d integer torch tensor as its Python int; anything else unchanged (bool tensors too)."""
    if (
        isinstance(value, torch.Tensor)
        and value.ndim == 0
        and not value.is_floating_point()
        and value.dtype != torch.bool
    ):
        return value.item()
    return value


def positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int after checking it is a positive (or non-negative) integer:
    Python's, NumPy's or a 0-d integer torch tensor, or a float with an integer value (``2.0``);
    ``bool`` and strings are refused rather than read as 1, 0 or their digits."""
    value = _integer_item(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        and not (isinstance(value, float) and value.is_integer())
    ):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    low = 0 if allow_zero else 1
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return v


def sizes(name: str, value: Any, *, length: int | None = None, what: str = "") -> tuple[int, ...]:
    """Check ``value`` is a tuple or list of positive integers (each checked by
    :func:`positive_int`), e.g. an input shape (C, H, W) or the widths of hidden layers, and return
    it as a tuple of ints; a single number or a string is refused rather than read as one size or
    as its characters. ``length``, if given, is the number of entries required; ``what`` describes
    them for the message, e.g. ``"(C, H, W)"``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of positive integers{' ' + what if what else ''}, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries{' ' + what if what else ''}, got {tuple(value)!r}")
    if not value:
        raise ValueError(f"{name} must hold at least one size, got {value!r}")
    return tuple(positive_int(name, v) for v in value)


def interval(name: str, value: Any) -> tuple[float, float]:
    """Check ``value`` is a pair (lo, hi) of finite real numbers with lo < hi, e.g. the box in
    which every feature of a poison must lie, and return it as two floats."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a pair (lo, hi) of numbers, got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi) of numbers, got {len(value)} entries: {value!r}")
    lo, hi = (_real(name, v, "(lo, hi)") for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise ValueError(f"{name} must be (lo, hi) with finite lo < hi, got {value!r}")
    return lo, hi


def positive_float(name: str, value: Any, *, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking it is positive (or non-negative) and finite (or,
    with ``allow_inf``, possibly infinite: a budget of ∞ means no budget)."""
    v = _real(name, value, ">= 0" if allow_zero else "> 0")
    if not (v >= 0.0 if allow_zero else v > 0.0) or v != v or (v == float("inf") and not allow_inf):
        kind = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{name} must be {kind} {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def flag(name: str, value: Any) -> bool:
    """Return ``value`` as a bool after checking it is one (Python's or NumPy's); text such as
    ``"yes"`` and numbers are refused rather than read by their truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of ``allowed`` and return it."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def images(name: str, x: Any) -> torch.Tensor:
    """Check ``x`` is a float tensor of images shaped (N, C, H, W) holding no NaN or infinity."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return finite(name, x)


def inputs(name: str, x: Any) -> torch.Tensor:
    """Check ``x`` is a floating-point tensor with a leading batch dimension (N, ...) holding no
    NaN or infinity."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor with a batch dimension first, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with at least 2 dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return finite(name, x)


def vector(name: str, x: Any) -> torch.Tensor:
    """Check ``x`` is a flat (1-D, at least one entry) floating-point tensor holding no NaN or
    infinity, e.g. a parameter vector θ."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (d,), got {type(x).__name__}")
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a flat vector of shape (d,) with d >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return finite(name, x)


def scores(name: str, x: Any) -> torch.Tensor:
    """Check ``x`` is a flat (1-D) floating-point tensor of scores holding no NaN or infinity, e.g.
    a detector's suspicion scores (N,). Integer, ``uint8`` and ``bool`` tensors are refused with a
    TypeError rather than ranked as they are (pixels or flags passed by mistake would give an AUC
    that means nothing); counts that are meant as scores are converted first, ``x.float()``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,), got {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor (N,), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be floating-point scores, got dtype {x.dtype} (convert counts with {name}.float())"
        )
    return finite(name, x)


def labels(name: str, y: Any, n: int | None = None, num_classes: int | None = None) -> torch.Tensor:
    """Check ``y`` is an integer label vector of shape (n,), with values in [0, num_classes), and
    return it as ``int64`` (labels of any integer dtype, ``uint8`` or ``int32`` say, are converted;
    an ``int64`` tensor is returned as it is)."""
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries to match the inputs, got {y.shape[0]}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must be >= 0, got a minimum of {int(y.min())}")
    if num_classes is not None and y.numel() and int(y.max()) >= num_classes:
        raise ValueError(f"{name} must be < {num_classes} (the number of classes), got a maximum of {int(y.max())}")
    return y.long()


def finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check a floating-point tensor holds no NaN or infinity (one NaN input poisons a whole
    training run without an error)."""
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must hold finite numbers, got {bad} NaN or infinite value{'s' * (bad != 1)}")
    return x


def integer(name: str, value: Any, allowed: str = "") -> int:
    """``value`` as a Python int if it is an integer (Python's, NumPy's, or a 0-d integer torch
    tensor); ``bool``, floats (even ``2.0``) and strings are refused rather than read as 1, 0, 2 or
    their digits. ``allowed`` is added to the message, e.g. ``"in [0, 10)"``."""
    value = _integer_item(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{' ' + allowed if allowed else ''}, got {value!r}")
    return int(value)


def class_index(name: str, value: Any, num_classes: int) -> int:
    """Check ``value`` is an integer class index in [0, num_classes) (NumPy's and 0-d torch
    integers accepted, ``bool`` refused) and return it as a Python int."""
    v = integer(name, value, f"class index in [0, {num_classes})")
    if not 0 <= v < num_classes:
        raise ValueError(f"{name} must be in [0, {num_classes}), got {v}")
    return v


def non_negative_class(name: str, value: Any) -> int:
    """Check ``value`` is an integer class index >= 0 when no class count is known (NumPy's and
    0-d torch integers accepted, ``bool`` refused) and return it as a Python int."""
    v = integer(name, value, "class index >= 0")
    if v < 0:
        raise ValueError(f"{name} must be a class index >= 0, got {v}")
    return v


def shaped_like(name: str, value: Any, shape: tuple[int, ...] | torch.Size, what: str = "") -> torch.Tensor:
    """Check ``value`` is a tensor of exactly ``shape`` (e.g. an ``is_poison`` mask matching the
    labels); ``what`` names what the shape comes from, for the message."""
    shape = tuple(shape)
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        like = f" (the same shape as {what})" if what else ""
        raise ValueError(f"{name} must be a tensor of shape {shape}{like}, got {got}")
    return value


def distinct_classes(source: int | None, target: int | None) -> None:
    """Check a source class differs from the target class (a source-specific attack whose source is
    its own target changes nothing); ``None`` for either passes."""
    if source is not None and target is not None and source == target:
        raise ValueError(f"source and target must differ, both are {source}")


def renamed(name: str, value: Any, old_name: str, old_value: Any, default: Any) -> Any:
    """The value of an argument that has a new ``name`` and an ``old_name`` still accepted for
    existing code (``arch`` was ``model``): ``old_value`` when it is given (not ``None``), else
    ``value``; both given and different is an error."""
    if old_value is None:
        return value
    if value != default and value != old_value:
        raise ValueError(f"{name} and its old name {old_name} disagree: {value!r} and {old_value!r}; give only {name}")
    return old_value


def unreadable_model(x: torch.Tensor, error: RuntimeError) -> ValueError:
    """The error for a model that fails on inputs shaped like ``x`` (torch's message kept)."""
    return ValueError(
        f"the model cannot read inputs of shape {tuple(x.shape[1:])} ({str(error).splitlines()[0]}); "
        f"build it for this data, e.g. pl.make(name, dataset.input_shape, dataset.num_classes)"
    )


def model_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The floating-point dtype of the model's first parameter (``None`` for a model without
    floating-point parameters)."""
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else None


def model_outputs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """The number of outputs (classes) K of ``model`` on inputs shaped like ``x``, found by running
    one example in eval mode without gradients; a model that cannot read such inputs, or does not
    return (N, K) logits, raises a ValueError saying so."""
    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    try:
        with torch.no_grad():
            out = model(x[:1].to(p.device) if p is not None else x[:1])
    except RuntimeError as e:
        raise unreadable_model(x, e) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must output (N, K) logits, got {got}")
    return out.shape[1]


_NO_LABELS = object()


def model_inputs(
    model: Any,
    x: Any,
    *,
    name: str = "x",
    y: Any = _NO_LABELS,
    y_name: str = "y",
    classes: dict[str, Any] | None = None,
    single: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The one door for inputs that a model reads: returns ``(x, y)`` ready for ``model``.

    - ``model`` must be a ``torch.nn.Module`` (TypeError otherwise);
    - ``x`` must be a tensor with a batch dimension, (N, ...) (with ``single``, one example
      without it is accepted and returned with a batch dimension of 1);
    - floating-point ``x`` of another dtype than the model's parameters (``float64`` for a
      ``float32`` model, say) is converted to the model's dtype; integer or ``bool`` ``x`` is
      refused with a TypeError (pixels stored as ``uint8`` must be scaled to [0, 1] first,
      ``x.float() / 255``, so the refusal is never a silent rescaling);
    - ``x`` holding NaN or infinity is refused (ValueError);
    - ``y`` (labels (N,), if given; ``None`` given is refused) is checked as :func:`labels`
      does, and against the model's number of outputs K: a label >= K is refused naming
      ``y_name``; it is returned as ``int64``;
    - ``classes`` maps argument names to class indices (``None`` entries are skipped), each
      checked to lie in [0, K).

    K is found by running the model on one example (:func:`model_outputs`), only when ``y`` or
    ``classes`` is given.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor with a batch dimension first, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must hold floating-point inputs (e.g. images in [0, 1]; scale uint8 pixels with "
            f"{name}.float() / 255), got dtype {x.dtype}"
        )
    if single and x.ndim >= 1:
        x = x.unsqueeze(0)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with at least 2 dimensions, got shape {tuple(x.shape)}")
    finite(name, x)
    dtype = model_dtype(model)
    if dtype is not None and x.dtype != dtype:
        x = x.to(dtype)
    given = y is not _NO_LABELS
    if given or classes:
        if given:
            y = labels(y_name, y, n=x.shape[0])
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example, got 0")
        k = model_outputs(model, x)
        if given:
            if y.numel() and int(y.max()) >= k:
                raise ValueError(
                    f"{y_name} must be < {k}, the number of classes the model outputs, got a maximum of {int(y.max())}"
                )
        for arg, value in (classes or {}).items():
            if value is not None:
                class_index(arg, value, k)
    return x, (y if given else None)
