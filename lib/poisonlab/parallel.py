"""Independent training runs on several CPU cores at once.

A chapter that trains many small models (one per seed, per budget, per defence) spends its time in
runs that do not depend on each other. :func:`run_parallel` hands them to worker processes, one
CPU thread each, and returns their results in order. With one thread per run, a run's arithmetic
is the same whichever process executes it, so the results are identical to a serial loop at one
thread: parallelism changes how long a chapter takes, never what it reports.

The workers are *forked* from the calling process (Linux, including Colab and Binder), so they
inherit everything defined so far: data, models, functions written in a notebook cell, closures.
Only the results travel back (pickled), so they must be picklable: tensors, numbers, dicts, and
``poisonlab`` models are. Where forking is not available (Windows; macOS is treated the same way
because forking there is unsafe), or with ``workers=1``, the runs execute one after another in the
calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from poisonlab import _validate
from poisonlab.progress import progress_bar

__all__ = ["default_workers", "run_grid", "run_parallel", "warm_up"]

_TASK: tuple[Callable[..., Any], list[Any]] | None = None
_WARM = False


def default_workers() -> int:
    """How many worker processes :func:`run_parallel` uses by default: the CPU cores this process
    may run on, at most 4 (each worker holds a copy-on-write view of the caller's memory and its
    own model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def warm_up() -> None:
    """Pay, once per process, the set-up cost of the first training run (PyTorch and its
    convolution library prepare their kernels lazily: the first run of a process is two to three
    times slower than the next). Forked workers inherit the prepared state; without this, every
    worker of every :func:`run_parallel` call would pay it again (measured: 3.5 s instead of 1.0 s
    for a two-epoch run of the course's CNN). Trains a throwaway
    :class:`~poisonlab.models.SmallCNN` for two steps on random 28×28 images at one thread; the
    global random state and the thread count are left as they were."""
    global _WARM
    if _WARM:
        return
    from poisonlab.models import make
    from poisonlab.train import fit, predict

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(160, 1, 28, 28, generator=g), torch.arange(160) % 10
        model = make("cnn", (1, 28, 28), 10, seed=0)
        fit(model, x, y, epochs=1, lr=0.01, batch_size=128, progress=False, device="cpu")
        predict(model, x)
    finally:
        torch.set_num_threads(threads)
    _WARM = True


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _call(fn: Callable[..., Any], job: Any) -> Any:
    return fn(*job) if isinstance(job, tuple) else fn(job)


def _one_thread() -> None:
    """A worker's start: one CPU thread for torch and for the BLAS and OpenMP libraries that NumPy,
    SciPy and scikit-learn call (two workers each using every core would oversubscribe the CPU:
    measured, scikit-learn's FastICA ran 2.6 times slower in two workers at two threads each)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # kept for the worker's life


def _run_one(index: int) -> Any:
    assert _TASK is not None
    torch.set_num_threads(1)
    fn, jobs = _TASK
    return _call(fn, jobs[index])


def run_parallel(
    fn: Callable[..., Any],
    jobs: Iterable[Any],
    *,
    workers: int | None = None,
    desc: str | None = None,
    unit: str = "run",
    progress: bool = True,
) -> list[Any]:
    """``[fn(*job) for job in jobs]`` (``fn(job)`` where a job is not a tuple), computed by worker
    processes with one CPU thread each, in the order of ``jobs``.

    Args:
        fn: the work of one job; any callable, including a closure or a function defined in a
            notebook. It must not rely on changing the caller's state: a worker's changes stay in
            the worker.
        jobs: the arguments of each call (a tuple is unpacked).
        workers: processes to use, >= 1; default :func:`default_workers`. ``1`` runs serially in
            this process, at this process's thread count.
        desc, unit, progress: the progress bar over finished jobs.

    Returns:
        The results, ``len(jobs)`` of them, in order.

    Raises:
        ValueError: if ``workers`` < 1.
        Exception: the first exception a job raised, re-raised here.
    """
    global _TASK
    _function(fn)
    jobs = _items("jobs", jobs)
    progress = _validate.flag("progress", progress)
    workers = default_workers() if workers is None else _validate.positive_int("workers", workers)
    if workers == 1 or len(jobs) <= 1 or not _can_fork():
        return _collect((_call(fn, job) for job in jobs), len(jobs), desc, unit, progress)
    if _TASK is not None:
        raise RuntimeError("run_parallel cannot be nested: call it from the main process only")
    warm_up()
    _TASK = (fn, jobs)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a multi-threaded process (a Jupyter kernel runs a few
            # I/O threads) may deadlock; the workers only run torch code and never touch those.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=_one_thread) as pool:
                return _collect(pool.imap(_run_one, range(len(jobs))), len(jobs), desc, unit, progress)
    finally:
        _TASK = None


def run_grid(
    fn: Callable[[Any, Any], Any], settings: Iterable[Hashable], seeds: Iterable[Any], **kwargs: Any
) -> dict[Any, list[Any]]:
    """``{setting: [fn(setting, seed) for seed in seeds]}`` for every setting, all runs computed by
    one :func:`run_parallel` call (jobs in the order setting by setting, seed by seed): a sweep
    repeated over seeds, grouped by setting.

    Args:
        fn: the work of one run, called as ``fn(setting, seed)``.
        settings: the settings of the sweep, distinct and hashable (e.g. poison rates, or tuples).
        seeds: the seeds (or run indices) every setting is repeated with, at least one.
        **kwargs: passed to :func:`run_parallel` (``workers``, ``desc``, ``unit``, ``progress``).

    Returns:
        A dict from each setting, in order, to its results, one per seed, in order.
    """
    _function(fn)
    settings, seeds = _items("settings", settings), _items("seeds", seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got none")
    try:
        distinct = len(set(settings)) == len(settings)
    except TypeError:
        raise ValueError(f"settings must be hashable (they key the results), got {settings!r}") from None
    if not distinct:
        raise ValueError(f"settings must be distinct, got {settings!r}")
    done = run_parallel(fn, [(setting, seed) for setting in settings for seed in seeds], **kwargs)
    return {setting: done[i * len(seeds) : (i + 1) * len(seeds)] for i, setting in enumerate(settings)}


def _function(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be a function (defined at the top level of a module or notebook), got {fn!r}")


def _items(name: str, value: object) -> list[Any]:
    """``value`` as a list: any iterable but a string (whose characters are rarely meant as jobs)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list (any iterable but a string), got {value!r}")
    return list(value)


def _collect(results: Iterable[Any], total: int, desc: str | None, unit: str, progress: bool) -> list[Any]:
    """The results as a list, with a progress bar that advances as each one arrives."""
    bar = progress_bar(total, desc=desc or "runs", unit=unit) if _validate.flag("progress", progress) else None
    out = []
    try:
        for result in results:
            out.append(result)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out
