"""poisonlab — the shared code of *Poisoned Data*, a course on data poisoning and backdoors.

The package follows one pipeline, and its modules follow it too::

    data ──► attack ──► train ──► defend ──► evaluate

The module map (ARCHITECTURE.md, at the repository's root, gives each module's job):

- data: ``data`` loads datasets as tensors;
- learners: ``models`` builds them, ``train`` fits them, ``linear`` trains convex linear learners to
  optimality and ``bilevel`` differentiates through training;
- attacks: ``poison`` holds the one type every attack returns (:class:`~poisonlab.poison.PoisonedSet`);
  ``boundary`` shifts a decision boundary (chapter 1), ``triggers`` builds backdoor triggers and
  poisons with them (chapters 2 and 5), ``collision`` crafts clean-label feature collisions (chapter 3),
  ``matching`` crafts clean-label poisons by gradient matching against training from scratch, and
  ``signed`` plants a backdoor no query can find (chapter 5);
- experiments: ``experiment`` trains and scores one model per setting of a sweep, and ``parallel``
  runs independent runs on several cores with the results of a serial loop;
- defences: ``detect`` scores training points as suspects (chapters 4–5), ``spiked`` models a
  poisoned class as a spiked covariance, ``robust`` estimates a mean under contamination, ``spectre``
  whitens a class with a robust covariance before scoring it (SPECTRE), ``certify`` trains
  partition ensembles whose predictions are certified against a number of poisons, ``cleanse``
  reverse-engineers a model's triggers and unlearns them;
- evaluation and presentation: ``metrics`` measures clean accuracy and attack success, ``plots``
  draws every figure of the book, ``widgets`` holds the notebooks' explorers, ``progress`` their
  progress bars and ``report`` hands numbers to the prose;
- ``check`` grades the exercises (``check.core``, the harness, and one module per chapter:
  ``check.prologue``, ``check.boundary``, ``check.backdoor``, ``check.collision``, ``check.spectral``,
  ``check.limits``);
- ``_validate`` holds the input checks the public functions share.

Every function that draws random numbers takes an explicit ``seed``; nothing changes global
state (the global torch RNG is restored after model initialisation).
"""

from poisonlab import check, data, experiment, metrics, models, plots, poison, report, train, triggers
from poisonlab.data import Dataset, load, toy2d
from poisonlab.experiment import Score, train_and_score
from poisonlab.models import make
from poisonlab.poison import PoisonedSet
from poisonlab.train import History, fit, predict
from poisonlab.triggers import Blend, Patch, backdoor

__version__ = "0.1.0"

__all__ = [
    "Blend",
    "Dataset",
    "History",
    "Patch",
    "PoisonedSet",
    "Score",
    "backdoor",
    "check",
    "data",
    "experiment",
    "fit",
    "load",
    "make",
    "metrics",
    "models",
    "plots",
    "poison",
    "report",
    "predict",
    "toy2d",
    "train",
    "train_and_score",
    "triggers",
]
