"""Deep Partition Aggregation (Levine & Feizi 2021) on ``mnist5k``: accuracy, certified accuracy
and training time for several numbers of parts.

For each k, :func:`poisonlab.certify.train_partitions` trains k small CNNs (the course's default),
one per hash part of the 4,000 training images, on the CPU cores side by side; the 1,000 test
images are then predicted by plurality vote and certified (:func:`poisonlab.certify.certify`).
Printed per k: the part sizes, the base classifiers' mean test accuracy, the ensemble's accuracy,
the certified accuracy against 5, 10, 15 and 20 inserted or removed training points, the median
certified radius, and the training time (wall clock, after a warm-up run; no timing is asserted).

    .venv/bin/python benchmarks/dpa.py                    # k = 25, 50, 100
    .venv/bin/python benchmarks/dpa.py --k 50 --epochs 20
    .venv/bin/python benchmarks/dpa.py --epochs 10 20 20  # chapter 6's epochs for k = 25, 50, 100
"""

from __future__ import annotations

import argparse
import time

import poisonlab as pl
import torch
from poisonlab import certify
from poisonlab.metrics import accuracy
from poisonlab.parallel import warm_up

BUDGETS = [0, 5, 10, 15, 20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[25, 50, 100], help="numbers of parts")
    parser.add_argument("--epochs", type=int, nargs="+", default=[30], help="one for every k, or one per k")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if len(args.epochs) not in (1, len(args.k)):
        parser.error(f"--epochs takes one value or one per k ({len(args.k)}), got {len(args.epochs)}")
    epochs = dict(zip(args.k, args.epochs * len(args.k) if len(args.epochs) == 1 else args.epochs))
    torch.set_num_threads(1)
    d = pl.load("mnist5k", seed=args.seed)
    warm_up()
    print(
        f"mnist5k: {len(d.y_train)} training, {len(d.y_test)} test images; small CNN, epochs by k {epochs}, "
        f"batch {args.batch_size}, lr {args.lr}"
    )
    header = "     k  part sizes  base acc  ensemble  " + "  ".join(f"cert@{r:<2}" for r in BUDGETS[1:])
    print(header + "  median radius  train (s)")
    for k in args.k:
        start = time.perf_counter()
        ens = certify.train_partitions(
            d.x_train,
            d.y_train,
            k,
            epochs=epochs[k],
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=False,
        )
        seconds = time.perf_counter() - start
        prediction, radius = certify.certify(certify.votes(ens, d.x_test))
        base = [accuracy(m, d.x_test, d.y_test) for m in ens.models if m is not None]
        cert = certify.certified_accuracy(prediction, radius, d.y_test, BUDGETS)
        sizes = f"{int(ens.part_sizes.min())}–{int(ens.part_sizes.max())}"
        print(
            f"{k:6d}  {sizes:>10}  {sum(base) / len(base):8.1%}  {cert[0]:8.1%}  "
            + "  ".join(f"{c:7.1%}" for c in cert[1:])
            + f"  {float(radius.double().median()):13.0f}  {seconds:9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
