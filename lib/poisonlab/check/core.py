"""The checker harness: run a learner's function on cases, report pass/fail with hints."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

PASS, FAIL = "✓", "✗"

#: Seeds of variant v are the published seeds plus v times this prime.
VARIANT_STRIDE = 7919
_variant = 0  # the harness's one setting: which variant of the exercises' cases the checkers draw


def use_variant(n: int) -> int:
    """Make every checker draw the cases of variant ``n`` from now on (0, the default, is the one
    the chapters publish); ``make assignments VARIANT=n`` puts this call in the student's notebook.
    Returns ``n``."""
    global _variant
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"variant must be a non-negative integer, got {n!r}")
    _variant = n
    return n


def current_variant() -> int:
    """The variant the checkers draw their cases from (see :func:`use_variant`)."""
    return _variant


@contextmanager
def variant(n: int) -> Iterator[int]:
    """Draw the cases of variant ``n`` inside a ``with`` block, then go back to the previous one."""
    previous = _variant
    use_variant(n)
    try:
        yield n
    finally:
        use_variant(previous)


def varied(seed: int) -> int:
    """The seed a checker uses for its published ``seed`` in the current variant."""
    return seed + VARIANT_STRIDE * _variant


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded by :func:`varied` (``seed``): the same cases for the same variant."""
    return torch.Generator().manual_seed(varied(seed))


@dataclass(frozen=True)
class Case:
    """One test of a learner's function.

    Attributes:
        description: what the case tries, shown in the report ("labels of the target class").
        args: positional arguments for the function.
        expected: the right answer (compared with a tolerance for numbers and tensors). Ignored
            when ``raises`` is set.
        kwargs: keyword arguments for the function.
        raises: the exception type the function must raise, if the case checks bad input.
        hint: shown when the case fails; points at the idea, not at the answer.
        match: with ``raises``, a regular expression the error message must contain (e.g. the
            value that was given), so that the error tells its reader what went wrong.
    """

    description: str
    args: tuple = ()
    expected: Any = None
    kwargs: dict = field(default_factory=dict)
    raises: type[BaseException] | None = None
    hint: str = ""
    match: str | None = None


@dataclass
class CheckResult:
    """The outcome of a check: one line per case, and a summary."""

    exercise: str
    lines: list[str]
    passed: int
    total: int

    @property
    def ok(self) -> bool:
        """True when every case passed."""
        return self.passed == self.total

    def __repr__(self) -> str:
        head = (
            f"{PASS} {self.exercise}: all {self.total} checks passed."
            if self.ok
            else f"{FAIL} {self.exercise}: {self.passed} of {self.total} checks passed."
        )
        return "\n".join([head, *self.lines])

    def assert_ok(self) -> None:
        """Raise :class:`AssertionError` with the report unless every case passed."""
        if not self.ok:
            raise AssertionError(repr(self))


def _copy(value: Any) -> Any:
    """Deep-enough copy of an argument so a learner's in-place edit cannot spoil later cases."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def compare(got: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """Return ``None`` when ``got`` matches ``expected``, else a description of the mismatch
    that says what is wrong without giving the expected value away."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if expected.dtype == torch.bool or not expected.is_floating_point():
            if not torch.equal(got.to(expected.dtype), expected):
                wrong = int((got.to(expected.dtype) != expected).sum())
                return f"{wrong} of {expected.numel()} entries are wrong"
            return None
        if not torch.allclose(got.double(), expected.double(), rtol=rtol, atol=atol):
            diff = float((got.double() - expected.double()).abs().max())
            return f"values differ from the right ones by up to {diff:.3g}"
        return None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return None if got == expected else f"got {got!r}, which is not right here"
    if isinstance(expected, (int, float)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"expected a number, got {type(got).__name__}"
        if isinstance(expected, int) and not isinstance(got, int) and not float(got).is_integer():
            return f"expected a whole number, got {got!r}"
        if not math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol):
            return f"got {got:.6g}, which is not right here"
        return None
    return None if got == expected else f"got {got!r}, which is not right here"


def whole_number(got: Any, what: str) -> int:
    """A student's answer that counts ``what`` (clients, poisons…) as an int: a Python int or
    float, or a one-element tensor, holding a whole number; ``bool`` and anything else raise a
    TypeError telling the student what to return."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)) or not float(got).is_integer():
        raise TypeError(f"return a whole number of {what}")
    return int(got)


def run(exercise: str, fn: Callable, cases: Sequence[Case], *, rtol: float = 1e-5, atol: float = 1e-6) -> CheckResult:
    """Run ``fn`` on every case and collect a friendly report.

    A ``NotImplementedError`` (the stub) is reported as "not written yet"; any other exception,
    ``SystemExit`` from a stray ``exit()`` or ``sys.exit()`` included, is reported by type and
    message, and the remaining cases still run (only ``KeyboardInterrupt`` stops the check).
    """
    if not callable(fn):
        return CheckResult(exercise, [f"{FAIL} expected a function, got {type(fn).__name__}"], 0, len(cases))
    lines, passed = [], 0
    for i, case in enumerate(cases, 1):
        label = f"case {i} ({case.description})"
        try:
            got = fn(*_copy(case.args), **_copy(case.kwargs))
        except NotImplementedError:
            lines.append(f"{FAIL} {label}: not written yet — replace `raise NotImplementedError` with your code.")
            continue
        except (Exception, SystemExit) as e:  # report any error of the learner's code (exit() too) and keep going
            if case.raises is not None and isinstance(e, case.raises):
                if case.match is not None and not re.search(case.match, str(e)):
                    lines.append(
                        f"{FAIL} {label}: raised {type(e).__name__}, but its message "
                        f"{str(e)!r} does not say what was given"
                    )
                    continue
                lines.append(f"{PASS} {label}")
                passed += 1
                continue
            msg = f"{FAIL} {label}: raised {type(e).__name__}: {e}"
            lines.append(msg + (f"\n   hint: {case.hint}" if case.hint else ""))
            continue
        if case.raises is not None:
            lines.append(
                f"{FAIL} {label}: should raise {case.raises.__name__}, but returned {got!r}"
                + (f"\n   hint: {case.hint}" if case.hint else "")
            )
            continue
        problem = compare(got, case.expected, rtol=rtol, atol=atol)
        if problem is None:
            lines.append(f"{PASS} {label}")
            passed += 1
        else:
            lines.append(f"{FAIL} {label}: {problem}" + (f"\n   hint: {case.hint}" if case.hint else ""))
    return CheckResult(exercise, lines, passed, len(cases))
