"""Clean-label attacks under one ℓ∞ budget: feature collision ×5 against Bullseye Polytope, in
chapter 3's transfer-learning setting.

The setting: ``mnist5k``; a frozen MLP feature extractor (two hidden layers of 256, the
chapter's); a clean CNN judge; targets are test 3s, poisons are made from training 8s outside
the fine-tuning set that the judge reads as 8s, the k = 5 nearest each target in the attacker's
features. For every target, one linear head is trained on the clean fine-tuning features plus
that target's k poisons (labelled 8, their true class). A target is a *clean-label success* when
its head reads it as an 8 (and the clean head did not) and the judge reads at least half of its
poisons as 8s.

Attacks, at each ε: feature collision ×5 (:func:`poisonlab.collision.feature_collision` with the
budget ``eps``: each of the k poisons collides with the target on its own) and Bullseye Polytope
(:func:`poisonlab.collision.bullseye_polytope`: the k poisons' mean collides with the target).
Victims: white-box (the head is trained on the attacker's extractor) and black-box (on an
extractor the attacker did not train: another seed and another width). Printed per row: the
success rate with its 95% Wilson interval, the share of targets flipped, the share of poisons the
judge reads as 8, the share the attacker's own classifier (``--keeper``) reads as 8, the mean L2
and L∞ distance to the base, the heads' test accuracy (clean →
poisoned) and the crafting time of all the targets' poisons, wall clock and CPU time (the second
depends less on what else the machine is running). No timing is asserted.

``--own-confidence q …`` repeats every setting with the bases further restricted to the 8s that
the attacker's own extractor (its ten-class head) reads as 8s with probability at least q (0: no
restriction, the chapter's bases): a choice the attacker can make without the judge.
``--base-margin m …`` repeats every setting with the bases restricted to the 8s that the attacker's own
network (``--keeper cnn`` or ``logreg``) reads as 8s with a logit margin of at least m
(:func:`poisonlab.metrics.logit_margin`; ``none``: no restriction), chapter 3's confident bases.
``--centred C …`` repeats every setting with each target's k bases chosen among its C nearest so that
their mean lies near the target (:func:`poisonlab.collision.centred_bases`; 0: the k nearest).
``--keep-weight λ …`` repeats every Bullseye row with the class-keeping term of
:func:`poisonlab.collision.bullseye_polytope` (λ times the cross-entropy of an attacker's classifier
on each poison with respect to 8; 0: the paper's loss), the attacker's own stand-in for the judge:
with ``--keeper head`` the extractor's own ten-class head, with ``--keeper cnn`` a CNN the attacker
trains itself (seed + 1000, 4 epochs: chapter 3's surrogate), with ``--keeper logreg`` a logistic
regression on the pixels it trains itself (seed + 1000, 12 epochs); never the judge. ``--steps`` and
``--bp-lr`` change both attacks' iterations and Bullseye's step (a smaller ε with more steps, say).

    .venv/bin/python benchmarks/clean_label.py                                  # both settings
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.1 0.15
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.15 --no-blackbox --own-confidence 0 0.5 0.9
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.15 --no-blackbox --keep-weight 0 0.001 0.003
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.15 --keeper cnn --keep-weight 0 0.01
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.15 --no-blackbox \
        --keeper cnn --base-margin none 1 --seed 1
    .venv/bin/python benchmarks/clean_label.py --settings 500:100 --eps 0.15 --no-blackbox \
        --keeper cnn --base-margin 1 --centred 0 25
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time

import poisonlab as pl
import torch
from poisonlab import collision
from poisonlab.experiment import train_and_score
from poisonlab.metrics import logit_margin
from poisonlab.train import embed, logits, predict
from torch import nn

TARGET_DIGIT, BASE_DIGIT, BASE = 3, 8, 1  # in the pair's labels 3 → 0 and 8 → 1


def nearest_bases(f_targets: torch.Tensor, f_pool: torch.Tensor, k: int) -> torch.Tensor:
    """(P, k) indices into the pool: the k pool images nearest each target in features."""
    return torch.cdist(f_targets, f_pool).topk(k, dim=1, largest=False).indices


def evaluate(
    victim, judge, x_ft, y_ft, x_test, y_test, targets, poisons, bases, head_steps, own=None
) -> dict[str, float]:
    """One head per target on the victim's features of the clean fine-tuning set plus that target's
    poisons; the clean-label success and what goes with it."""
    p, k = poisons.shape[:2]
    f_ft, f_test = embed(victim, x_ft), embed(victim, x_test)
    f_poison = embed(victim, poisons.flatten(0, 1)).view(p, k, -1)
    f_target = embed(victim, targets)
    none = f_ft.new_zeros(1, 0, f_ft.shape[1])
    w0, b0 = collision.fine_tune_heads(f_ft, y_ft, none, y_ft.new_zeros(1, 0), 2, steps=head_steps, weight_decay=0.0)
    labels = torch.full((p, k), BASE, dtype=torch.long)
    w, b = collision.fine_tune_heads(f_ft, y_ft, f_poison, labels, 2, steps=head_steps, weight_decay=0.0)
    already = collision.head_predict(w0, b0, f_target)[0] == BASE
    flipped = (collision.head_predict(w, b, f_target, paired=True) == BASE) & ~already
    judged = (predict(judge, poisons.flatten(0, 1)) == BASE_DIGIT).view(p, k)
    success = flipped & (judged.sum(1) >= math.ceil(k / 2))
    l2, linf = collision.perturbation_norms(poisons.flatten(0, 1), bases.flatten(0, 1))
    low, high = collision.wilson_interval(int(success.sum()), p)
    return {
        "success": float(success.float().mean()),
        "low": low,
        "high": high,
        "flipped": float(flipped.float().mean()),
        "judge": float(judged.float().mean()),
        "l2": l2,
        "linf": linf,
        "acc_clean": float((collision.head_predict(w0, b0, f_test)[0] == y_test).float().mean()),
        "acc_poisoned": float((collision.head_predict(w, b, f_test) == y_test).float().mean()),
        "success_ids": success,
        # the attacker's own reading of its poisons (its classifier, not the judge): what it can tune λ by
        "own": float("nan") if own is None else float((own(poisons.flatten(0, 1)) == BASE_DIGIT).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["500:100", "100:50"], help="fine-tuning images:targets")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2])
    parser.add_argument("--k", type=int, default=5, help="poisons per target")
    parser.add_argument("--steps", type=int, default=200, help="crafting iterations of both attacks")
    parser.add_argument("--bp-lr", type=float, default=0.01, help="Bullseye Polytope's Adam step size")
    parser.add_argument("--fc-lr", type=float, default=0.05, help="feature collision's forward step size")
    parser.add_argument("--fc-beta", type=float, default=0.0, help="feature collision's β (the budget bounds it)")
    parser.add_argument("--head-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-blackbox", action="store_true", help="skip the black-box victim")
    parser.add_argument(
        "--own-confidence", type=float, nargs="+", default=[0.0], help="bases the extractor's head reads as 8 with p ≥"
    )
    parser.add_argument(
        "--base-margin",
        type=lambda value: -math.inf if value == "none" else float(value),
        nargs="+",
        default=[-math.inf],
        help="bases the attacker's own network reads as 8 with a logit margin ≥ m (none: all)",
    )
    parser.add_argument(
        "--centred", type=int, nargs="+", default=[0], help="bases chosen among the C nearest, mean near (0: nearest)"
    )
    parser.add_argument(
        "--keep-weight", type=float, nargs="+", default=[0.0], help="Bullseye's class-keeping weight λ (own head)"
    )
    parser.add_argument(
        "--keeper", choices=["head", "cnn", "logreg"], default="head", help="the attacker's classifier for λ"
    )
    args = parser.parse_args()
    if args.keeper == "head" and any(m > -math.inf for m in args.base_margin):
        parser.error("--base-margin needs the attacker's own network: add --keeper cnn or --keeper logreg")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average at start: {load} (1, 5, 15 min); torch threads {torch.get_num_threads()}")

    d = pl.load("mnist5k", seed=args.seed)
    start = time.perf_counter()
    common = {"epochs": 12, "lr": 0.05}
    extractor = train_and_score(
        (d.x_train, d.y_train), d.x_test, d.y_test, arch="mlp", hidden=(256, 256), seed=args.seed, **common
    ).model.eval()
    judge = train_and_score(
        (d.x_train, d.y_train), d.x_test, d.y_test, arch="cnn", seed=args.seed + 7, **common
    ).model.eval()
    victims = {"white-box": extractor}
    if not args.no_blackbox:  # the attacker never sees this one: another seed, another width
        victims["black-box"] = train_and_score(
            (d.x_train, d.y_train), d.x_test, d.y_test, arch="mlp", hidden=(512, 256), seed=args.seed + 1, **common
        ).model.eval()
    if args.keeper != "head":  # the attacker's own classifier (a CNN as chapter 3's surrogate): not the judge
        keeper = train_and_score(
            (d.x_train, d.y_train),
            d.x_test,
            d.y_test,
            arch=args.keeper,
            seed=args.seed + 1000,
            epochs=4 if args.keeper == "cnn" else 12,
            lr=0.05,
        ).model.eval()
    else:  # the attacker's own ten-class head on its extractor's features
        keeper = (extractor.head.weight, extractor.head.bias)
    if isinstance(keeper, nn.Module):

        def own_reading(x):
            return predict(keeper, x)

    else:

        def own_reading(x):
            return (embed(extractor, x) @ keeper[0].detach().T + keeper[1].detach()).argmax(1)

    print(f"models trained in {time.perf_counter() - start:.0f} s")
    shown = {"extractor": extractor, "judge": judge, **victims}
    if args.keeper != "head":
        shown[f"keeper {args.keeper}"] = keeper
    for name, model in shown.items():
        print(f"  {name:10s} test accuracy {float((predict(model, d.x_test) == d.y_test).float().mean()):.1%}")

    task = d.pair(TARGET_DIGIT, BASE_DIGIT)
    order = torch.randperm(len(task.y_train), generator=torch.Generator().manual_seed(args.seed))
    rows = []
    own_p8 = torch.softmax(logits(extractor, task.x_train), 1)[:, BASE_DIGIT]  # the attacker's own reading
    own_margin = logit_margin(logits(keeper, task.x_train), BASE_DIGIT) if isinstance(keeper, nn.Module) else None
    grid = itertools.product(args.settings, args.own_confidence, args.base_margin, args.centred)
    for spec, confidence, margin, centred in grid:
        n_ft, n_targets = (int(v) for v in spec.split(":"))
        pick = order[:n_ft]
        x_ft, y_ft = task.x_train[pick], task.y_train[pick]
        outside = torch.ones(len(task.y_train), dtype=torch.bool)
        outside[pick] = False
        approved = predict(judge, task.x_train) == BASE_DIGIT
        eligible = outside & (task.y_train == BASE) & approved & (own_p8 >= confidence)
        if margin > -math.inf:  # the attacker's own network reads the base as an 8 by at least this margin
            eligible &= own_margin >= margin
        pool = torch.nonzero(eligible).flatten()
        threes = torch.nonzero(task.y_test == 0).flatten()
        chosen = threes[torch.randperm(len(threes), generator=torch.Generator().manual_seed(args.seed + 1))]
        target_idx = chosen[:n_targets]
        rest = torch.ones(len(task.y_test), dtype=torch.bool)
        rest[target_idx] = False
        x_test, y_test = task.x_test[rest], task.y_test[rest]
        targets = task.x_test[target_idx]
        f_targets, f_pool = embed(extractor, targets), embed(extractor, task.x_train[pool])
        if centred:
            near = collision.centred_bases(f_targets, f_pool, args.k, candidates=centred)
        else:
            near = nearest_bases(f_targets, f_pool, args.k)
        bases = task.x_train[pool[near]]  # (P, k, C, H, W)
        print(
            f"\nfine-tuning set {n_ft} images, {n_targets} targets, k = {args.k} poisons per target "
            f"({args.k / n_ft:.0%} of the fine-tuning set); base pool {len(pool)} judge-approved 8s, "
            f"read as 8s by the extractor with p ≥ {confidence:g} and by the attacker's own network with a margin "
            f"≥ {margin:g}; bases {f'centred among the {centred} nearest' if centred else 'the nearest'}"
        )
        for eps in args.eps:
            crafted = {}
            t0, c0 = time.perf_counter(), time.process_time()
            fc = collision.feature_collision(
                extractor.features,
                targets.repeat_interleave(args.k, 0),
                bases.flatten(0, 1),
                beta=args.fc_beta,
                lr=args.fc_lr,
                steps=args.steps,
                eps=eps,
            ).view_as(bases)
            crafted["collision ×5"] = (fc, time.perf_counter() - t0, time.process_time() - c0)
            for lam in args.keep_weight:
                t0, c0 = time.perf_counter(), time.process_time()
                bp = collision.bullseye_polytope(
                    extractor.features,
                    targets,
                    bases,
                    eps=eps,
                    steps=args.steps,
                    lr=args.bp_lr,
                    seed=args.seed,
                    keep_classifier=keeper,
                    keep_label=BASE_DIGIT,
                    keep_weight=lam,
                )
                name = "Bullseye" if lam == 0 else f"Bullseye λ={lam:g} {args.keeper}"
                crafted[name] = (bp, time.perf_counter() - t0, time.process_time() - c0)
            for attack, (poisons, seconds, cpu) in crafted.items():
                for victim_name, victim in victims.items():
                    r = evaluate(
                        victim, judge, x_ft, y_ft, x_test, y_test, targets, poisons, bases, args.head_steps, own_reading
                    )
                    rows.append(
                        (f"{spec} p≥{confidence:g} m≥{margin:g} C={centred}", eps, attack, victim_name, r, seconds, cpu)
                    )
                    print(
                        f"  ε {eps:.2f}  {attack:21s} {victim_name:9s} success {r['success']:4.0%} "
                        f"[{r['low']:.0%}, {r['high']:.0%}]  flipped {r['flipped']:4.0%}  judge {r['judge']:4.0%}  "
                        f"own {r['own']:4.0%}  "
                        f"L2 {r['l2']:.2f}  L∞ {r['linf']:.3f}  "
                        f"head acc {r['acc_clean']:.1%} → {r['acc_poisoned']:.1%}  craft {seconds:.1f} s "
                        f"(CPU {cpu:.1f} s)",
                        flush=True,
                    )
    columns = [
        "fine-tuning:targets",
        "ε",
        "attack",
        "victim",
        "success [95% CI]",
        "flipped",
        "judge reads 8",
        "own reads 8",
    ]
    columns += ["L2", "L∞", "head accuracy", "craft s (CPU s)"]
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for spec, eps, attack, victim_name, r, seconds, cpu in rows:
        print(
            f"| {spec} | {eps:.2f} | {attack} | {victim_name} | {r['success']:.0%} [{r['low']:.0%}, {r['high']:.0%}] "
            f"| {r['flipped']:.0%} | {r['judge']:.0%} | {r['own']:.0%} | {r['l2']:.2f} | {r['linf']:.3f} "
            f"| {r['acc_clean']:.1%} → {r['acc_poisoned']:.1%} | {seconds:.1f} ({cpu:.1f}) |"
        )
    print(f"\nload average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
