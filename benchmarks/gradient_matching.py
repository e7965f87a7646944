"""Gradient matching (Witches' Brew, Geiping et al. 2021) against a small CNN trained from scratch.

On mnist5k (4,000 training images), a clean surrogate CNN is trained; for each of a few target
test images of class A (classified correctly by the surrogate), 40 images of class B (1% of the
training set) are perturbed within an ℓ∞ ball of radius ε so that their training gradient on the
surrogate aligns with the gradient that would make the surrogate read the target as B
(`poisonlab.matching.gradient_matching`). Victims then train from scratch, with fresh seeds, on the
training set with the poisons in place of their bases (labels unchanged), with the course's recipe
(SGD, momentum 0.9, lr 0.05, batch 128, cosine schedule).

Each row is one recipe (the paper's ingredients added one at a time, then other budgets); the
columns are:

- cos: the cosine of eq. (3) on the surrogate, bases → poisons (mean over the targets);
- flipped: targets read as B by the poisoned victims, over (targets × victim seeds);
- same init: the same, for one victim per target with the surrogate's own seed (initialisation and
  shuffling): the attacker's best case;
- p(B|t) victim: the victims' median probability of B on the target (clean victims in brackets);
- p(B|t) tuned: the same after fine-tuning the surrogate itself for one epoch (lr 0.01) on the
  poisoned set (on the clean set in brackets): the one-step effect the poisons are crafted for;
- judge: the share of poisons an independent clean MLP reads as their base label B;
- L2, L∞: the mean distance of a poison to its base;
- CA: the clean test accuracy of the poisoned victims (clean victims in brackets);
- craft: seconds to craft the poisons of one target.

    .venv/bin/python benchmarks/gradient_matching.py                       # all recipes, 4 targets, 2 seeds
    .venv/bin/python benchmarks/gradient_matching.py --recipes prototype --targets 2 --seeds 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import poisonlab as pl
import torch
from poisonlab import matching
from poisonlab.experiment import train_and_score
from poisonlab.train import logits, predict

# name: (ε, bases, steps, restarts, augment, surrogates); surrogates: "one", "seeds" (the surrogate and
# two clean models with other seeds) or "epochs" (the surrogate's own checkpoints after epochs 1, 2 and
# the last)
RECIPES = {
    "prototype": (0.2, "random", 150, 1, False, "one"),
    "largest-gradient bases": (0.2, "gradient", 150, 1, False, "one"),
    "+ 2 restarts, 250 steps": (0.2, "gradient", 250, 2, False, "one"),
    "+ shifts (±2 px)": (0.2, "gradient", 250, 2, True, "one"),
    "+ ensemble of 3 seeds": (0.2, "gradient", 250, 1, True, "seeds"),
    "+ ensemble over epochs": (0.2, "gradient", 250, 1, True, "epochs"),
    "ε = 0.1": (0.1, "gradient", 250, 2, True, "one"),
    "ε = 0.3": (0.3, "gradient", 250, 2, True, "one"),
}


def train(x: torch.Tensor, y: torch.Tensor, d: pl.Dataset, args: argparse.Namespace, seed: int, **kw) -> pl.Score:
    return train_and_score((x, y), d.x_test, d.y_test, epochs=args.epochs, lr=0.05, batch_size=128, seed=seed, **kw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), metavar="RECIPE")
    parser.add_argument("--targets", type=int, default=4, help="target test images of class A")
    parser.add_argument("--seeds", type=int, default=2, help="victims trained from scratch per target")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the surrogate and of every victim")
    parser.add_argument("--poisons", type=int, default=40, help="poisons per target (40 = 1%% of mnist5k)")
    parser.add_argument("--source", type=int, default=3, help="class A of the targets")
    parser.add_argument("--adversarial", type=int, default=8, help="class B, the poisons' class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = pl.load("mnist5k", seed=args.seed)
    a, b = args.source, args.adversarial
    surrogate_seed = 1000 + args.seed
    victim_seeds = [args.seed + s for s in range(args.seeds)]

    checkpoints: list[torch.nn.Module] = []  # the surrogate after each epoch; the last one is the surrogate
    surrogate = pl.make("cnn", d.input_shape, 10, seed=surrogate_seed)
    pl.fit(
        surrogate,
        d.x_train,
        d.y_train,
        epochs=args.epochs,
        lr=0.05,
        batch_size=128,
        schedule="cosine",
        seed=surrogate_seed,
        progress=False,
        callback=lambda _, m: checkpoints.append(copy.deepcopy(m).eval()),
    )
    surrogate.eval()
    others = [train(d.x_train, d.y_train, d, args, surrogate_seed + s).model.eval() for s in (1, 2)]
    epochs = [checkpoints[0], checkpoints[min(1, len(checkpoints) - 1)], checkpoints[-1]]
    judge = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, arch="mlp", epochs=12, lr=0.05, seed=7)
    judge = judge.model.eval()
    clean = [train(d.x_train, d.y_train, d, args, s) for s in victim_seeds]
    ca_clean = sum(v.clean_accuracy for v in clean) / len(clean)
    print(
        f"mnist5k, {a} → {b}, {args.poisons} poisons ({args.poisons / len(d.y_train):.1%}), {args.targets} targets × "
        f"{args.seeds} victim seeds, {args.epochs} epochs; CA: surrogate "
        f"{float((predict(surrogate, d.x_test) == d.y_test).float().mean()):.1%}, clean victims {ca_clean:.1%}, "
        f"judge (MLP, 12 epochs) {float((predict(judge, d.x_test) == d.y_test).float().mean()):.1%}",
        flush=True,
    )

    g = torch.Generator().manual_seed(args.seed)
    pool = torch.nonzero((d.y_test == a) & (predict(surrogate, d.x_test) == a)).flatten()
    targets = pool[torch.randperm(len(pool), generator=g)[: args.targets]]
    candidates = torch.nonzero(d.y_train == b).flatten()
    random_bases = candidates[torch.randperm(len(candidates), generator=g)[: args.poisons]]
    gradient_bases = candidates[
        matching.largest_gradient_bases(surrogate, d.x_train[candidates], d.y_train[candidates], args.poisons)
    ]

    def p_adv(model: torch.nn.Module, image: torch.Tensor) -> float:
        return float(logits(model, image.unsqueeze(0)).softmax(1)[0, b])

    def finetuned(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
        """The surrogate after one more epoch on (x, y) at a small constant learning rate."""
        model = copy.deepcopy(surrogate)
        pl.fit(model, x, y, epochs=1, lr=0.01, batch_size=128, seed=5, progress=False)
        return model

    clean_p = [p_adv(v.model, d.x_test[t]) for t in targets for v in clean]
    clean_tuned = finetuned(d.x_train, d.y_train)
    clean_tuned_p = [p_adv(clean_tuned, d.x_test[t]) for t in targets]
    clean_flips = sum(int(predict(v.model, d.x_test[t].unsqueeze(0))[0]) == b for t in targets for v in clean)
    print(
        f"clean victims: {clean_flips} of {len(clean_p)} read a target as {b}; median p({b}|t) "
        f"{statistics.median(clean_p):.4f}; surrogate fine-tuned one epoch on clean data: "
        f"{statistics.median(clean_tuned_p):.4f}"
    )
    print(
        f"judge reads as {b}: random bases {float((predict(judge, d.x_train[random_bases]) == b).float().mean()):.0%}, "
        f"largest-gradient bases {float((predict(judge, d.x_train[gradient_bases]) == b).float().mean()):.0%}"
    )

    header = (
        f"{'recipe':24s} {'ε':>4s} {'bases':>8s} {'steps×R':>7s} {'cos':>9s} {'flipped':>7s} {'same init':>9s} "
        f"{'p(B|t) victim':>15s} {'p(B|t) tuned':>15s} {'judge':>5s} {'L2':>4s} {'L∞':>4s} {'CA':>13s} {'craft':>6s}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for name in args.recipes:
        eps, choose, steps, restarts, augment, surrogates = RECIPES[name]
        models = {"one": [surrogate], "seeds": [surrogate, *others], "epochs": epochs}[surrogates]
        index = gradient_bases if choose == "gradient" else random_bases
        bases, labels = d.x_train[index], d.y_train[index]
        flips, same, total = 0, 0, 0
        rows: dict[str, list[float]] = {}
        for j, t in enumerate(targets.tolist()):
            target = d.x_test[t]
            start = time.perf_counter()
            poisons = matching.gradient_matching(
                models, target, b, bases, labels, eps=eps, steps=steps, restarts=restarts, augment=augment, seed=j
            )
            rows.setdefault("craft", []).append(time.perf_counter() - start)
            rows.setdefault("cos0", []).append(matching.gradient_alignment(surrogate, target, b, bases, labels))
            rows.setdefault("cos1", []).append(matching.gradient_alignment(surrogate, target, b, poisons, labels))
            moved = (poisons - bases).flatten(1)
            rows.setdefault("l2", []).append(float(moved.norm(dim=1).mean()))
            rows.setdefault("linf", []).append(float(moved.abs().max(1).values.mean()))
            rows.setdefault("judge", []).append(float((predict(judge, poisons) == labels).float().mean()))
            poisoned = matching.substitute(d.x_train, d.y_train, index, poisons, target=b)
            rows.setdefault("tuned", []).append(p_adv(finetuned(poisoned.x, poisoned.y), target))
            for s in victim_seeds:
                victim = train(poisoned.x, poisoned.y, d, args, s)
                flips += int(predict(victim.model, target.unsqueeze(0))[0]) == b
                total += 1
                rows.setdefault("p", []).append(p_adv(victim.model, target))
                rows.setdefault("ca", []).append(victim.clean_accuracy)
            best_case = train(poisoned.x, poisoned.y, d, args, surrogate_seed).model
            same += int(predict(best_case, target.unsqueeze(0))[0]) == b
        m = {k: statistics.mean(v) for k, v in rows.items()}
        median_p, median_tuned = statistics.median(rows["p"]), statistics.median(rows["tuned"])
        print(
            f"{name:24s} {eps:4.2f} {choose:>8s} {f'{steps}×{restarts}':>7s} {m['cos0']:4.2f}→{m['cos1']:4.2f} "
            f"{f'{flips}/{total}':>7s} {f'{same}/{len(targets)}':>9s} "
            f"{median_p:.4f} ({statistics.median(clean_p):.4f}) "
            f"{median_tuned:.4f} ({statistics.median(clean_tuned_p):.4f}) "
            f"{m['judge']:5.0%} {m['l2']:4.1f} {m['linf']:4.2f} {m['ca']:6.1%} ({ca_clean:.1%}) {m['craft']:5.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
