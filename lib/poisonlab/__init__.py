"""poisonlab — the shared code of *Poisoned Data*, a course on data poisoning and backdoors.

The package follows one pipeline, and its modules follow it too::

    data ──► attack ──► train ──► defend ──► evaluate

``data`` loads datasets as tensors, ``models`` builds the learners, ``train`` fits them,
``poison`` holds the one type every attack returns (:class:`~poisonlab.poison.PoisonedSet`),
``metrics`` measures clean accuracy and attack success, ``plots`` draws every figure of the
book, and ``check`` grades the exercises.

Every function that draws random numbers takes an explicit ``seed``; nothing changes global
state (the global torch RNG is restored after model initialisation).
"""

from poisonlab import check, data, metrics, models, plots, poison, report, train
from poisonlab.data import Dataset, load, toy2d
from poisonlab.models import make
from poisonlab.poison import PoisonedSet
from poisonlab.train import History, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "History",
    "PoisonedSet",
    "check",
    "data",
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
]
