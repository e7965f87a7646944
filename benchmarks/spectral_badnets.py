"""Spectral signatures against chapter 2's BadNets: a first measurement for chapter 4.

For poisons making up ε of the target class, train the small CNN, score the training set with
spectral signatures in representation space, in input space and on head gradients, remove the top
1.5ε of every class, retrain, and print ASR, AUCs, poisons caught and clean accuracy.

    .venv/bin/python benchmarks/spectral_badnets.py            # ε = 5, 10, 20, 33% of class 0
"""

from __future__ import annotations

import argparse

import poisonlab as pl
from poisonlab import detect
from poisonlab.experiment import train_and_score
from poisonlab.train import embed
from poisonlab.triggers import Patch, backdoor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.10, 0.20, 0.33])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    d = pl.load("mnist5k")
    trigger, target = Patch(3), 0
    n_target = int((d.y_train == target).sum())
    for eps in args.eps:
        count = round(eps * n_target / (1 - eps))  # poisons are eps of the poisoned target class
        ps = backdoor(d.x_train, d.y_train, trigger, target, count=count)
        model = train_and_score(ps, d.x_test, d.y_test, trigger, target, epochs=args.epochs, lr=0.05)
        in_target = ps.y == target
        scores = {
            "representation": detect.spectral_scores(embed(model.model, ps.x), ps.y),
            "input": detect.spectral_scores(ps.x.flatten(1), ps.y),
            "gradient": detect.gradient_scores(model.model, ps.x, ps.y),
        }
        parts = []
        for name, s in scores.items():
            keep = detect.remove_top(s, ps.y, eps)
            auc = detect.detection_report(s[in_target], ps.is_poison[in_target]).auc
            parts.append(f"{name}: AUC {auc:.2f}, caught {int((~keep & ps.is_poison).sum())}/{count}")
        keep = detect.remove_top(scores["representation"], ps.y, eps)
        after = train_and_score((ps.x[keep], ps.y[keep]), d.x_test, d.y_test, trigger, target,
                                epochs=args.epochs, lr=0.05)
        print(f"ε = {eps:.0%} of the target class ({count} poisons, {count / len(ps.y):.1%} of the data): "
              f"CA {model.clean_accuracy:.1%}, ASR {model.attack_success_rate:.1%}")
        print("   " + "; ".join(parts))
        print(f"   after removing 1.5ε per class (representation scores) and retraining: "
              f"CA {after.clean_accuracy:.1%}, ASR {after.attack_success_rate:.1%}")


if __name__ == "__main__":
    main()
