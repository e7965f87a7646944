"""Exercise checkers.

:mod:`poisonlab.check.core` is the harness: it runs a learner's function on a list of
:class:`~poisonlab.check.core.Case` objects and reports, case by case, what passed and what did
not, with a hint — never the reference answer. Each chapter has a module of checkers built on it
(``poisonlab.check.prologue``, …), used in the chapter's exercise cells as::

    from poisonlab.check import prologue as exercises
    exercises.check_attack_success_rate(my_attack_success_rate)
"""

from poisonlab.check import backdoor, beyond, boundary, collision, defences, limits, prologue, spectral
from poisonlab.check.core import Case, CheckResult, current_variant, run, use_variant, variant

__all__ = [
    "Case",
    "CheckResult",
    "backdoor",
    "beyond",
    "boundary",
    "collision",
    "current_variant",
    "defences",
    "limits",
    "prologue",
    "run",
    "spectral",
    "use_variant",
    "variant",
]
