"""Neural Cleanse (Wang et al. 2019) on ``mnist5k``: is the backdoored class flagged, how often is
a clean model flagged, and does unlearning end the backdoor?

For each seed, three small CNNs are trained for 12 epochs (the course's chapter 2 recipe): on a
BadNets set (a 3×3 checkerboard in the bottom-right corner, 5% of the training set relabelled 0),
on a blended-trigger set (noise at α = 0.2, same budget) and on the clean set.
:func:`poisonlab.cleanse.reverse_triggers` then searches every class's smallest trigger on 500
clean test images, and :func:`poisonlab.cleanse.anomaly_index` ranks the mask norms. For the
backdoored models, the flagged class's reversed trigger is unlearned as chapter 6 does
(:func:`poisonlab.cleanse.unlearn` on the defender's 400 clean training images, the first 400,
plus stamped copies of 30% of them, 10 epochs at lr 0.003; ``--unlearn-on train`` gives the
earlier recipe: the whole training set, 20% of it stamped in place, 2 epochs at lr 0.01), and the
attack success rate and clean accuracy are measured before and after; the last line gives the
largest and the mean loss of clean accuracy over the backdoored runs. Printed per model: the
smallest mask's class and ℓ1 norm, the largest anomaly index and its class, the reversal time
(wall clock, one CPU thread; no timing is asserted), and for backdoored models ASR and CA before
→ after unlearning.

    .venv/bin/python benchmarks/neural_cleanse.py
    .venv/bin/python benchmarks/neural_cleanse.py --seeds 0 1 --steps 100
    .venv/bin/python benchmarks/neural_cleanse.py --unlearn-on train
"""

from __future__ import annotations

import argparse
import time

import poisonlab as pl
import torch
from poisonlab import cleanse
from poisonlab.experiment import train_and_score
from poisonlab.metrics import accuracy, attack_success_rate
from poisonlab.parallel import warm_up
from poisonlab.triggers import Blend, Patch, backdoor

TARGET = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lam", type=float, default=0.003)
    parser.add_argument("--images", type=int, default=500, help="clean test images the search uses")
    parser.add_argument(
        "--unlearn-on",
        choices=["defender", "train"],
        default="defender",
        help="unlearn on the defender's clean images (chapter 6) or on the whole training set",
    )
    parser.add_argument("--defender", type=int, default=400, help="the defender's clean training images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = pl.load("mnist5k", seed=0)
    warm_up()
    others = d.y_test != TARGET
    x_src, y_src = d.x_test[others], d.y_test[others]
    if args.unlearn_on == "defender":  # chapter 6: the defender's clean copies, stamped copies added
        x_un, y_un = d.x_train[: args.defender], d.y_train[: args.defender]
        recipe = dict(share=0.3, epochs=10, lr=0.003, keep_clean=True)
    else:  # the whole training set, 20% of it stamped in place
        x_un, y_un, recipe = d.x_train, d.y_train, dict(share=0.2, epochs=2, lr=0.01)
    drops = []
    print(
        f"mnist5k, small CNN, 12 epochs; search: {args.steps} steps, λ = {args.lam}, {args.images} images; "
        f"unlearning on {len(y_un)} images: {recipe}"
    )
    print(
        "seed  model     smallest mask (class, ℓ1)  max anomaly index (class)  flagged  search (s)"
        "  ASR / CA before → after unlearning"
    )
    for seed in args.seeds:
        for kind in ("badnets", "blend", "clean"):
            trigger = Patch(3) if kind == "badnets" else Blend("noise", alpha=0.2, seed=seed)
            data = (
                (d.x_train, d.y_train)
                if kind == "clean"
                else backdoor(d.x_train, d.y_train, trigger, TARGET, rate=0.05, seed=seed)
            )
            run = train_and_score(data, d.x_test, d.y_test, epochs=12, lr=0.05, seed=seed)
            start = time.perf_counter()
            found = cleanse.reverse_triggers(
                run.model, d.x_test[: args.images], steps=args.steps, lam=args.lam, seed=seed, progress=False
            )
            seconds = time.perf_counter() - start
            index = cleanse.anomaly_index(found.norms)
            small, top = int(found.norms.argmin()), int(index.argmax())
            line = (
                f"{seed:4d}  {kind:8s}  {small:>14d}, {float(found.norms[small]):6.1f}  "
                f"{float(index[top]):17.2f} ({top})  {'yes' if float(index[top]) > 2 else 'no':>7}  {seconds:10.1f}"
            )
            if kind != "clean":
                before = attack_success_rate(run.model, x_src, y_src, trigger, TARGET)
                fixed = cleanse.unlearn(
                    run.model, x_un, y_un, found.masks[top], found.patterns[top], **recipe, seed=seed
                )
                after = attack_success_rate(fixed, x_src, y_src, trigger, TARGET)
                ca = accuracy(fixed, d.x_test, d.y_test)
                drops.append(run.clean_accuracy - ca)
                line += f"  {before:.1%} / {run.clean_accuracy:.1%} → {after:.1%} / {ca:.1%}"
            print(line, flush=True)
    if drops:
        print(f"clean accuracy lost by unlearning: at most {max(drops):.1%}, mean {sum(drops) / len(drops):.2%}")


if __name__ == "__main__":
    main()
