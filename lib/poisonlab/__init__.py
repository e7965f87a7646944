"""poisonlab — the shared code of *Poisoned Data*, a course on data poisoning and backdoors.

The package follows one pipeline, and its modules follow it too::

    data ──► attack ──► train ──► defend ──► evaluate

``data`` loads datasets as tensors, ``models`` builds the learners, ``train`` fits them,
``poison`` holds the one type every attack returns (:class:`~poisonlab.poison.PoisonedSet`),
``triggers`` builds backdoor triggers and poisons with them, ``experiment`` trains and scores
one model per setting of a sweep, ``metrics`` measures clean accuracy and attack success,
``plots`` draws every figure of the book, and ``check`` grades the exercises.

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
