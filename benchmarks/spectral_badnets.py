"""Spectral signatures against BadNets, repeated over seeds: the measurements behind chapter 4.

For poisons making up ε of the target class, and for each seed (which draws the poisons and
seeds the network), train the small CNN, score the training set with spectral signatures in
representation space, in input space and on head gradients, remove the top 1.5ε of the target
class by representation score, retrain, and print ASR, AUCs, poisons caught and clean accuracy,
then the mean ± sd over the seeds.

    .venv/bin/python benchmarks/spectral_badnets.py                      # chapter 4: 7 → 1, ε = 5%, 10%
    .venv/bin/python benchmarks/spectral_badnets.py --seeds 5 --eps 0.05 0.1 0.2
"""

from __future__ import annotations

import argparse
import statistics

import poisonlab as pl
from poisonlab import detect
from poisonlab.experiment import train_and_score
from poisonlab.train import embed
from poisonlab.triggers import Patch, backdoor


def spread(values: list[float], spec: str) -> str:
    """'mean ± sd' of one measurement over the seeds."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{spec}} ± {sd:{spec}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source", type=int, default=7)
    parser.add_argument("--target", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    d = pl.load("mnist5k")
    trigger, target = Patch(3, pattern="white"), args.target
    n_target = int((d.y_train == target).sum())
    for eps in args.eps:
        count = max(1, round(eps * n_target / (1 - eps)))  # poisons are eps of the poisoned target class
        rows: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            ps = backdoor(d.x_train, d.y_train, trigger, target, count=count, source=args.source, seed=seed)
            model = train_and_score(ps, d.x_test, d.y_test, trigger, target, epochs=args.epochs, lr=0.05, seed=seed)
            t = ps.y == target
            scores = {
                "representation": detect.spectral_scores(embed(model.model, ps.x), ps.y),
                "input": detect.spectral_scores(ps.x.flatten(1), ps.y),
                "gradient": detect.gradient_scores(model.model, ps.x, ps.y),
            }
            row = {"CA": model.clean_accuracy, "ASR": model.attack_success_rate}
            for name, s in scores.items():
                keep = detect.remove_top(s, ps.y, eps, classes=[target])
                row[f"AUC {name}"] = detect.roc_auc(s[t], ps.is_poison[t])
                row[f"caught {name}"] = float((~keep & ps.is_poison).sum())
            keep = detect.remove_top(scores["representation"], ps.y, eps, classes=[target])
            after = train_and_score(
                (ps.x[keep], ps.y[keep]), d.x_test, d.y_test, trigger, target, epochs=args.epochs, lr=0.05, seed=seed
            )
            row["CA after"], row["ASR after"] = after.clean_accuracy, after.attack_success_rate
            print(f"ε = {eps:.0%}, seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
            for k, v in row.items():
                rows.setdefault(k, []).append(v)
        print(
            f"ε = {eps:.0%} of class {target} ({count} poisons, {count / len(d.y_train):.1%} of the data), "
            f"{args.seeds} seeds:"
        )
        for k, v in rows.items():
            print(f"   {k:24s} {spread(v, '.3f')}")


if __name__ == "__main__":
    main()
