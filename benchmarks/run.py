"""Benchmark: wall time and peak memory of every chapter, and the cost of one training epoch.

Run it with ``make bench`` or ``.venv/bin/python benchmarks/run.py [notebook ...]``; with
``--markdown book/timings.md`` it also writes the measured table as the site's timings page, which
is where every run-time figure the course quotes comes from.
Each notebook executes from a fresh kernel in its own process; the peak memory reported is the
kernel's maximum resident set size. The five slowest cells of each notebook are listed under
it (``--cells N`` for more).
Budgets (ARCHITECTURE.md): ≤ 90 s and ≤ 2 GB per chapter
on 2 CPU cores (the prologue: ≤ 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS, BUDGET_MIB = 90, 2048


def chapter_title(path: Path) -> str:
    """The first heading of a notebook (its title), without the leading '#'."""
    import nbformat

    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    return first.lstrip("#").strip()


def timings_page(results: list[dict], machine: str, epoch_seconds: float, train_size: int) -> str:
    """The timings page: one row per chapter (wall time and peak memory of a fresh-kernel run)."""
    rows = "\n".join(
        f"| {{doc}}`{r['title']} <../chapters/{Path(r['notebook']).stem}>` | {r['seconds']:.0f} "
        f"| {r['peak_mib']:,.0f} |"
        for r in results
    )
    total = sum(r["seconds"] for r in results)
    return f"""# How long each chapter takes

<!-- Written by `benchmarks/run.py --markdown book/timings.md`; do not edit by hand. -->

Every chapter is budgeted to run top to bottom in at most {BUDGET_SECONDS} s and
{BUDGET_MIB // 1024} GB of memory on two CPU cores, the size of a free Colab or Binder machine. The
table below is the output of `make bench` on the machine that last measured them ({machine}): each
chapter executed from a fresh kernel, in its own process.

| Chapter | Wall time (s) | Peak memory (MiB) |
|---|---:|---:|
{rows}

All chapters together: {total:.0f} s. One training epoch of the course's small CNN on the {train_size:,}
`mnist5k` training images took {epoch_seconds:.2f} s there. The first training run in a process is
about twice as slow as the later ones, and a machine that runs other work at the same time is
slower still; run `make bench` to measure your own.
"""


def execute_one(path: Path) -> dict:
    """Execute one notebook from a fresh kernel; runs inside a child process."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped at shutdown
    return {"notebook": path.name, "seconds": seconds, "peak_mib": kb / 1024, "cells": cell_times(nb)}


def cell_times(nb) -> list[dict]:
    """Wall time of every executed code cell, from the timestamps nbclient records in each cell's
    ``metadata.execution``: ``[{"index": i, "seconds": s, "first_line": ...}, ...]``."""
    from datetime import datetime

    times = []
    for index, cell in enumerate(nb.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        begin, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if cell.cell_type != "code" or not (begin and end):
            continue
        seconds = (
            datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(begin.replace("Z", "+00:00"))
        ).total_seconds()
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        times.append({"index": index, "seconds": seconds, "first_line": first[:60]})
    return times


def slowest_cells(cells: list[dict], count: int = 5) -> str:
    """The ``count`` slowest cells as indented lines: cell number, seconds, first line of code."""
    top = sorted(cells, key=lambda c: c["seconds"], reverse=True)[:count]
    return "\n".join(f"    cell {c['index']:>3} {c['seconds']:>7.1f} s  {c['first_line']}" for c in top)


def time_fit() -> dict:
    """Time one epoch of the default small CNN on mnist5k (after one warm-up epoch)."""
    import poisonlab as pl

    ds = pl.load("mnist5k")
    model = pl.make("cnn", ds.input_shape, ds.num_classes, seed=0)
    pl.fit(model, ds.x_train, ds.y_train, epochs=1, lr=0.05, progress=False)  # warm-up
    runs = []
    for seed in range(3):
        model = pl.make("cnn", ds.input_shape, ds.num_classes, seed=seed)
        h = pl.fit(model, ds.x_train, ds.y_train, epochs=1, lr=0.05, progress=False, seed=seed)
        runs.append(h.seconds)
    return {"fit_epoch_seconds_median": sorted(runs)[1], "fit_epoch_seconds_all": runs, "train_size": len(ds.y_train)}


def time_gradient_attack() -> dict:
    """Time chapter 1's gradient attack on MNIST 1 vs 7 at ε = 3% (its default settings)."""
    import poisonlab as pl
    import torch
    from poisonlab import boundary

    pair = pl.load("mnist5k").pair(1, 7)
    order = torch.randperm(len(pair.y_train), generator=torch.Generator().manual_seed(0))
    x_tr, y_tr = pair.x_train[order[:400]], pair.y_train[order[:400]]
    x_att = torch.cat([pair.x_train[order[400:]], x_tr])
    y_att = torch.cat([pair.y_train[order[400:]], y_tr])
    start = time.perf_counter()
    ps = boundary.gradient_poison(
        x_tr, y_tr, x_att, y_att, 0.03, arch="logreg", lam=1e-3, steps=80, lr=0.15, distinct=1
    )
    return {"seconds": time.perf_counter() - start, "poisons": ps.n_poison}


def time_backdoor_run() -> dict:
    """Time one run of chapter 2's sweeps: BadNets at 5%, then train_and_score at its defaults."""
    import poisonlab as pl
    from poisonlab.triggers import Patch, backdoor

    ds = pl.load("mnist5k")
    trigger = Patch(3)
    ps = backdoor(ds.x_train, ds.y_train, trigger, 0, rate=0.05)
    pl.train_and_score(ps, ds.x_test, ds.y_test, trigger, 0, epochs=1)  # warm-up
    start = time.perf_counter()
    score = pl.train_and_score(ps, ds.x_test, ds.y_test, trigger, 0, epochs=12, lr=0.05)
    return {"seconds": time.perf_counter() - start, "asr": score.attack_success_rate}


def time_spectral_scores() -> dict:
    """Time detect.spectral_scores on 50,000 × 512 random representations in 10 classes."""
    import torch
    from poisonlab import detect

    g = torch.Generator().manual_seed(0)
    reps, labels = torch.randn(50_000, 512, generator=g), torch.randint(0, 10, (50_000,), generator=g)
    detect.spectral_scores(reps[:1000], labels[:1000])  # warm-up
    start = time.perf_counter()
    detect.spectral_scores(reps, labels)
    return {"seconds": time.perf_counter() - start}


def time_collision() -> dict:
    """Time crafting 50 feature-collision poisons (1000 steps) as one batch and one at a time
    (10 timed), against chapter 3's MLP extractor shape (untrained weights: the cost is the same)."""
    import poisonlab as pl
    from poisonlab import collision

    ds = pl.load("mnist5k")
    model = pl.make("mlp", ds.input_shape, ds.num_classes, seed=0, hidden=(256, 256)).eval()
    targets, bases = ds.x_test[:50], ds.x_test[50:100]
    start = time.perf_counter()
    collision.feature_collision(model.features, targets, bases, beta=1.0, lr=0.005, steps=1000)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(10):
        collision.feature_collision(model.features, targets[i], bases[i], beta=1.0, lr=0.005, steps=1000)
    return {"batched": batched, "single": (time.perf_counter() - start) / 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapters/*.ipynb")
    parser.add_argument("--markdown", type=Path, help="also write the timings page to this file")
    parser.add_argument(
        "--cells", type=int, default=5, help="how many of the slowest cells to list per notebook (default 5)"
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="time the notebooks only, not the training epoch and the library functions",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(execute_one(args.child)))
        return

    import torch

    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"{'notebook':<32} {'wall (s)':>9} {'peak (MiB)':>11}")
    failed = False
    results = []
    for nb in notebooks:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(Path(nb).resolve())], capture_output=True, text=True
        )
        if proc.returncode != 0:
            failed = True
            print(f"{Path(nb).name:<32} FAILED\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append({**r, "title": chapter_title(Path(nb))})
        print(f"{r['notebook']:<32} {r['seconds']:>9.1f} {r['peak_mib']:>11.0f}")
        if r["cells"]:
            print(slowest_cells(r["cells"], args.cells))
    if args.no_extras:
        sys.exit(1 if failed else 0)
    fit = time_fit()
    print(
        f"fit: one epoch of the small CNN on mnist5k ({fit['train_size']} images): "
        f"{fit['fit_epoch_seconds_median']:.2f} s (median of 3: "
        + ", ".join(f"{s:.2f}" for s in fit["fit_epoch_seconds_all"])
        + ")"
    )
    attack = time_gradient_attack()
    print(
        f"gradient_poison: MNIST 1 vs 7, ε = 3% ({attack['poisons']} poisons at 2 points, "
        f"80 steps): "
        f"{attack['seconds']:.1f} s"
    )
    run = time_backdoor_run()
    print(
        f"train_and_score: BadNets 5%, small CNN, 12 epochs (one run of chapter 2's sweeps): "
        f"{run['seconds']:.1f} s (ASR {run['asr']:.1%})"
    )
    craft = time_collision()
    print(
        f"feature_collision: 50 poisons, 1000 steps: {craft['batched']:.2f} s as one batch "
        f"({1000 * craft['batched'] / 50:.0f} ms per poison); "
        f"one at a time {1000 * craft['single']:.0f} ms per poison"
    )
    spectral = time_spectral_scores()
    print(f"spectral_scores: 50,000 × 512 representations, 10 classes: {spectral['seconds']:.2f} s")
    if args.markdown:
        if failed or len(results) < len(notebooks):
            print(f"not writing {args.markdown}: a notebook failed")
        else:
            machine = f"{os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
            args.markdown.write_text(timings_page(results, machine, fit["fit_epoch_seconds_median"], fit["train_size"]))
            print(f"wrote {args.markdown}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
