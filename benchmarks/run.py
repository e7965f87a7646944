"""Benchmark: wall time and peak memory of every chapter, and the cost of one training epoch.

Run it with ``make bench`` or ``.venv/bin/python benchmarks/run.py [notebook ...]``.
Each notebook executes from a fresh kernel in its own process; the peak memory reported is the
kernel's maximum resident set size. Budgets (shared/DESIGN.md): ≤ 90 s and ≤ 2 GB per chapter
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


def execute_one(path: Path) -> dict:
    """Execute one notebook from a fresh kernel; runs inside a child process."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped at shutdown
    return {"notebook": path.name, "seconds": seconds, "peak_mib": kb / 1024}


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
    return {"fit_epoch_seconds_median": sorted(runs)[1], "fit_epoch_seconds_all": runs,
            "train_size": len(ds.y_train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapters/*.ipynb")
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
    for nb in notebooks:
        proc = subprocess.run([sys.executable, __file__, "--child", str(Path(nb).resolve())],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            failed = True
            print(f"{Path(nb).name:<32} FAILED\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['notebook']:<32} {r['seconds']:>9.1f} {r['peak_mib']:>11.0f}")
    fit = time_fit()
    print(f"fit: one epoch of the small CNN on mnist5k ({fit['train_size']} images): "
          f"{fit['fit_epoch_seconds_median']:.2f} s (median of 3: "
          + ", ".join(f"{s:.2f}" for s in fit["fit_epoch_seconds_all"]) + ")")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
