"""Unlearnable examples (Huang et al. 2021) on ``mnist5k``: clean test accuracy of a victim trained
from scratch on noisy training images, for random class-wise ±ε noise and class-wise and
sample-wise error-minimising noise, at several budgets ε; then the defences at each ε.

Each victim is the course's small CNN trained from scratch (its own seed) with
:func:`poisonlab.train.fit` on the 4,000 perturbed training images, and tested on the 1,000 clean
test images. The defences retrain the victim on the class-wise error-minimising set: with PGD
adversarial training at budget min(ε, ``--adv-eps-max``) (:func:`poisonlab.unlearnable.adversarial_fit`,
3 PGD steps) and with 1-bit squeezing of the training and the test images
(:func:`poisonlab.unlearnable.squeeze`). Printed:
one row per ε, the crafting time of each noise, the training times, and the total. One run per
cell (one seed) unless ``--seeds`` names more, when the mean and the spread (min–max) are shown.

    nice -n 19 .venv/bin/python benchmarks/unlearnable.py
    nice -n 19 .venv/bin/python benchmarks/unlearnable.py --eps 0.1 --seeds 0 1 2
    nice -n 19 .venv/bin/python benchmarks/unlearnable.py --noises "EM class-wise" --adv-eps-max 0.1

Sample-wise crafting at a longer schedule than chapter 7's (4 rounds of 2 steps), nearer Huang et
al.'s (10 training mini-batches and 10 or 20 noise steps per image per round, until the crafting
model reaches 99% training accuracy):

    nice -n 19 .venv/bin/python benchmarks/unlearnable.py --noises "EM sample-wise" --eps 0.3 \\
        --no-defence --sw-rounds 20 --sw-steps 10
"""

from __future__ import annotations

import argparse
import time

import poisonlab as pl
import torch
from poisonlab import unlearnable as ul
from poisonlab.metrics import accuracy
from poisonlab.parallel import warm_up

NOISES = ("random class-wise", "EM class-wise", "EM sample-wise")


def victim(x: torch.Tensor, y: torch.Tensor, d: pl.Dataset, args, seed: int, *, test=None) -> float:
    net = pl.make("cnn", d.input_shape, d.num_classes, seed=seed)
    pl.fit(net, x, y, epochs=args.epochs, lr=0.05, batch_size=128, schedule="cosine", seed=seed)
    return accuracy(net, d.x_test if test is None else test, d.y_test)


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:6.1%}"
    return f"{mean:6.1%} ({min(values):.0%}–{max(values):.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8, help="victim training epochs")
    parser.add_argument("--noises", nargs="+", default=list(NOISES), choices=NOISES)
    parser.add_argument("--no-defence", action="store_true")
    parser.add_argument("--sw-rounds", type=int, default=20, help="sample-wise crafting: the most rounds")
    parser.add_argument("--sw-steps", type=int, default=5, help="sample-wise crafting: noise steps per image per round")
    parser.add_argument(
        "--sw-step-size", type=float, default=None, help="sample-wise step, in units of ε (default 1/4)"
    )
    parser.add_argument("--adv-steps", type=int, default=3)
    parser.add_argument(
        "--adv-eps-max", type=float, default=1.0, help="PGD budget of adversarial training: min(ε, this)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = pl.load("mnist5k", seed=0)
    warm_up()
    x, y = d.x_train, d.y_train
    start = time.perf_counter()
    clean = [victim(x, y, d, args, s) for s in args.seeds]
    t_victim = (time.perf_counter() - start) / len(args.seeds)
    print(
        f"mnist5k: {len(y)} training, {len(d.y_test)} test images; small CNN, {args.epochs} epochs, seeds {args.seeds}"
    )
    print(f"clean victim: {cell(clean)} test accuracy; one victim trains in {t_victim:.1f} s")
    cols = list(args.noises) + ([] if args.no_defence else ["EM-cw + adv. training", "EM-cw + 1-bit squeeze"])
    print("    ε  " + "  ".join(f"{c:>22}" for c in cols) + "   craft (s) per noise")
    for eps in args.eps:
        row, craft = [], []
        for noise in args.noises:
            accs, secs = [], []
            for s in args.seeds:
                t = time.perf_counter()
                if noise == "random class-wise":
                    delta = ul.random_noise(x, y, eps, classwise=True, seed=s)
                elif noise == "EM class-wise":
                    delta = ul.error_minimizing_noise(x, y, eps, classwise=True, seed=s).delta
                else:
                    step = None if args.sw_step_size is None else args.sw_step_size * eps
                    crafted = ul.error_minimizing_noise(
                        x,
                        y,
                        eps,
                        classwise=False,
                        rounds=args.sw_rounds,
                        noise_steps=args.sw_steps,
                        step_size=step,
                        seed=s,
                    )
                    delta = crafted.delta
                    print(
                        f"  ε = {eps:g}, seed {s}: sample-wise crafting ran {crafted.rounds} rounds, final training "
                        f"accuracy {crafted.train_accuracy[-1]:.1%}, {crafted.seconds:.0f} s",
                        flush=True,
                    )
                secs.append(time.perf_counter() - t)
                if noise == "EM class-wise":
                    em = delta
                p = ul.poisoned(x, y, delta)
                accs.append(victim(p.x, p.y, d, args, s))
            row.append(cell(accs))
            craft.append(f"{sum(secs) / len(secs):.1f}")
        if not args.no_defence:
            p = ul.poisoned(x, y, em)  # the last seed's class-wise EM noise
            adv, sq, t_adv = [], [], []
            for s in args.seeds:
                net = pl.make("cnn", d.input_shape, d.num_classes, seed=s)
                t = time.perf_counter()
                ul.adversarial_fit(
                    net,
                    p.x,
                    p.y,
                    eps=min(eps, args.adv_eps_max),
                    steps=args.adv_steps,
                    epochs=args.epochs,
                    lr=0.05,
                    seed=s,
                )
                t_adv.append(time.perf_counter() - t)
                adv.append(accuracy(net, d.x_test, d.y_test))
                sq.append(victim(ul.squeeze(p.x), p.y, d, args, s, test=ul.squeeze(d.x_test)))
            row += [cell(adv), cell(sq)]
            craft.append(f"adv {sum(t_adv) / len(t_adv):.1f}")
        print(f"{eps:5.2f}  " + "  ".join(f"{c:>22}" for c in row) + "   " + " / ".join(craft), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
