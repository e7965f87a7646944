"""Chapter 1's longer runs: more splits, the saturation at ε = 10%, and the unrolled attack on the
network with more initialisations, restarts and variants.

These runs take several minutes, too long for the chapter itself, so they live here; with
``--page book/chapter1-runs.md`` the script writes their results as a page of the site, which is
where the chapter's statements about them point. Every study prints its table as it goes.

    .venv/bin/python benchmarks/boundary_seeds.py                  # every study (a few minutes)
    .venv/bin/python benchmarks/boundary_seeds.py --page book/chapter1-runs.md
    .venv/bin/python benchmarks/boundary_seeds.py --only splits    # or saturation, variants, restarts

**splits**: the MNIST 1-vs-7 attack at ε = 3% (the learner gets 400 of the pair's 800 training
images, the attacker the other 400 as fresh validation data; logistic regression, λ = 10⁻³; 60 Adam
steps of 0.15) over five random splits: the clean model, random label flips (mean of 3 draws) and
the gradient attack, concentrated at one point per label and with every poison free to move.

**saturation**: why the crafted attack gains little between ε = 3% and 10%: on split 0 at ε = 10%,
the chapter's attack (two points, 60 steps), four points per label, every poison free, and 200
ascent steps; the test error and the attacker's validation loss at the start and the end.

**variants**: section 6's unrolled attack on the 16-unit MLP (2-D blobs, ε = 5% unless stated)
with 100 instead of 30 ascent steps, concentrated poisons, ε = 10%, and training step sizes η of
0.1, 0.3 and 1.

**restarts**: each of 6 initialisations (η = 1, ε = 5%, 30 ascent steps) attacked from 5 starting
points; the gain of the first start, and of the start an attacker would keep: the one that ends at
the highest validation loss (its own data; no test data is used to choose).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import poisonlab as pl
import torch
from poisonlab import boundary
from poisonlab.linear import LinearLearner
from poisonlab.parallel import run_parallel

STUDIES = ("splits", "saturation", "variants", "restarts")
SUCCESS = 0.05  # a gain in test error of at least 5 points counts as a successful attack


def _pair_split(seed: int):
    pair = pl.load("mnist5k").pair(1, 7)
    order = torch.randperm(len(pair.y_train), generator=torch.Generator().manual_seed(seed))
    x_tr, y_tr = pair.x_train[order[:400]], pair.y_train[order[:400]]
    x_att = torch.cat([pair.x_train[order[400:]], x_tr])
    y_att = torch.cat([pair.y_train[order[400:]], y_tr])
    return pair, x_tr, y_tr, x_att, y_att


def _logreg_error(pair, x: torch.Tensor, y: torch.Tensor) -> float:
    learner = LinearLearner("logistic", 1e-3)
    return learner.error(learner.fit(x, y), pair.x_test, pair.y_test)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def splits(seeds: tuple[int, ...] = (0, 1, 2, 3, 4), eps: float = 0.03) -> str:
    def one(seed: int) -> list[float]:
        pair, x_tr, y_tr, x_att, y_att = _pair_split(seed)
        flips = statistics.mean(
            _logreg_error(pair, p.x, p.y) for p in (boundary.label_flip(x_tr, y_tr, eps, seed=s) for s in range(3))
        )
        crafted = []
        for distinct in (1, None):  # concentrated at one point per label, then every poison free
            ps = boundary.gradient_poison(
                x_tr, y_tr, x_att, y_att, eps, lam=1e-3, steps=60, lr=0.15, seed=seed, distinct=distinct
            )
            crafted.append(_logreg_error(pair, ps.x, ps.y))
        return [_logreg_error(pair, x_tr, y_tr), flips, *crafted]

    rows = run_parallel(one, list(seeds), desc="splits", progress=False)
    means = [statistics.mean(col) for col in zip(*rows)]
    body = [[str(s)] + [f"{v:.1%}" for v in row] for s, row in zip(seeds, rows)]
    body.append(["mean"] + [f"{v:.1%}" for v in means])
    worst = min(r[2] - r[0] for r in rows)
    return (
        f"## More splits (section 4)\n\nMNIST 1 vs 7, ε = {eps:.0%}, test error on the pair's test images, "
        f"one row per random split of the learner's and the attacker's images.\n\n"
        + _table(["split", "clean", "random flips (3 draws)", "crafted, concentrated", "crafted, free"], body)
        + f"\n\nThe concentrated attack adds at least {100 * worst:.1f} points of test error on every split "
        f"and {100 * (means[2] - means[0]):.1f} on average; random flips add {100 * (means[1] - means[0]):+.1f} "
        f"on average.\n"
    )


def saturation() -> str:
    pair, x_tr, y_tr, x_att, y_att = _pair_split(0)
    variants = [("two points, 60 steps (the chapter)", 1, 60), ("four points per label", 4, 60)]
    variants += [("every poison free", None, 60), ("two points, 200 steps", 1, 200)]

    def one(distinct, steps):
        ps = boundary.gradient_poison(
            x_tr, y_tr, x_att, y_att, 0.10, arch="logreg", lam=1e-3, steps=steps, lr=0.15, seed=0, distinct=distinct
        )
        return _logreg_error(pair, ps.x, ps.y), ps.info["val_loss"][0], ps.info["val_loss"][-1]

    results = run_parallel(one, [(d, s) for _, d, s in variants], desc="saturation", progress=False)
    body = [[name, f"{e:.1%}", f"{v0:.3f} → {v1:.3f}"] for (name, _, _), (e, v0, v1) in zip(variants, results)]
    errors = [e for e, _, _ in results]
    return (
        "## Why the crafted attack saturates (section 4)\n\nSplit 0, ε = 10%: the attack with more freedom "
        "and a longer search.\n\n"
        + _table(["attack", "test error", "attacker's validation loss, start → end"], body)
        + f"\n\nThe test error stays between {min(errors):.1%} and {max(errors):.1%} (one test image is "
        f"{1 / len(pair.y_test):.1%}), while the validation loss ends between {min(r[2] for r in results):.3f} "
        f"and {max(r[2] for r in results):.3f}.\n"
    )


def _toy():
    toy = pl.toy2d("blobs", n_train=100, n_test=1000, noise=0.7, seed=0)
    return toy, toy.x_test[:500], toy.y_test[:500], toy.x_test[500:], toy.y_test[500:]


def _mlp_attack(rate: float, eps: float, steps: int, distinct, start: int, init: int):
    """(validation loss start, end, clean test error, poisoned test error) of one unrolled attack."""
    toy, x_val, y_val, x_te, y_te = _toy()

    def error(x, y):
        net, theta = boundary.train_mlp(x, y, train_steps=100, train_lr=rate, seed=init)
        return net.error(theta, x_te, y_te)

    ps = boundary.gradient_poison(
        toy.x_train,
        toy.y_train,
        x_val,
        y_val,
        eps,
        arch="mlp",
        steps=steps,
        lr=0.05,
        train_steps=100,
        train_lr=rate,
        seed=start,
        init_seed=init,
        distinct=distinct,
    )
    vl = ps.info["val_loss"]
    return vl[0], vl[-1], error(toy.x_train, toy.y_train), error(ps.x, ps.y)


def variants() -> str:
    attempts = [  # (description, η, ε, ascent steps, distinct, starts)
        ("30 ascent steps, η = 0.1", 0.1, 0.05, 30, None, [0, 1]),
        ("100 ascent steps, η = 0.1", 0.1, 0.05, 100, None, [0, 1]),
        ("100 steps, concentrated, η = 0.1", 0.1, 0.05, 100, 1, [0, 1]),
        ("ε = 10%, concentrated, η = 0.1", 0.1, 0.10, 100, 1, [0, 1]),
        ("η = 0.3", 0.3, 0.05, 30, None, [0, 1, 2]),
    ]
    jobs = [(rate, eps, steps, distinct, s, s) for _, rate, eps, steps, distinct, starts in attempts for s in starts]
    names = [name for name, *_, starts in attempts for _ in starts]
    results = run_parallel(_mlp_attack, jobs, desc="variants", progress=False)
    body = [
        [name, str(job[4]), f"{v0:.3f} → {v1:.3f}", f"{c:.1%}", f"{p:.1%}", f"{100 * (p - c):+.1f}"]
        for name, job, (v0, v1, c, p) in zip(names, jobs, results)
    ]
    gains = [p - c for _, _, c, p in results]
    return (
        "## The unrolled attack on the network: variants (section 6)\n\n2-D blobs, ε = 5% unless stated; "
        "the initialisation is the start's seed.\n\n"
        + _table(["attempt", "seed", "validation loss", "clean", "poisoned", "gain (points)"], body)
        + f"\n\n{sum(g >= SUCCESS for g in gains)} of {len(gains)} runs gain {100 * SUCCESS:.0f} points of test "
        f"error or more; the gains range from {100 * min(gains):+.1f} to {100 * max(gains):+.1f} points.\n"
    )


def restarts(inits: int = 6, starts: int = 5) -> str:
    jobs = [(1.0, 0.05, 30, None, start, init) for init in range(inits) for start in range(starts)]
    results = run_parallel(_mlp_attack, jobs, desc="restarts", progress=False)
    body, first, best, wins, lost = [], [], [], [], []
    for init in range(inits):
        runs = results[init * starts : (init + 1) * starts]
        clean = runs[0][2]
        chosen = max(runs, key=lambda r: r[1])
        first.append(runs[0][3] - clean)
        best.append(chosen[3] - clean)
        for start, (_, v1, c, p) in enumerate(runs):
            (wins if p - c >= SUCCESS else lost).append((init, start, p, v1))
        body.append(
            [str(init), f"{clean:.1%}", f"{runs[0][3]:.1%}", f"{chosen[3]:.1%} (loss {chosen[1]:.3f})"]
            + [" ".join(f"{p:.1%}/{v1:.2f}" for _, v1, _, p in runs)]
        )
    text = (
        "## Restarts of the unrolled attack (section 6)\n\nη = 1, ε = 5%, 30 ascent steps: each initialisation "
        f"of the network attacked from {starts} starting points. An attacker who keeps, for each "
        "initialisation, the start that ends at the highest validation loss uses only its own data.\n\n"
        + _table(
            [
                "initialisation",
                "clean",
                "start 0",
                f"best of {starts} by validation loss",
                "every start: test error / validation loss",
            ],
            body,
        )
    )
    for name, gains in (("With one start", first), (f"Best of {starts} by validation loss", best)):
        text += (
            f"\n\n{name}, the median gain is {100 * statistics.median(gains):+.1f} points and "
            f"{sum(g >= SUCCESS for g in gains)} of {inits} initialisations gain {100 * SUCCESS:.0f} points or more "
            f"(gains {', '.join(f'{100 * g:+.1f}' for g in gains)})."
        )
    text += f"\n\nOf all {inits * starts} runs, {len(wins)} succeed"
    if wins:
        text += (
            " ("
            + "; ".join(f"initialisation {i}, start {s}: {p:.1%} test error, loss {v:.3f}" for i, s, p, v in wins)
            + f"); the failed runs end at validation losses from {min(v for *_, v in lost):.3f} to "
            f"{max(v for *_, v in lost):.3f}"
        )
    return text + ".\n"


def page(sections: list[str], seconds: float) -> str:
    import os

    return (
        "# Chapter 1: the longer runs\n\n"
        "<!-- Written by `benchmarks/boundary_seeds.py --page book/chapter1-runs.md`; do not edit by hand. -->\n\n"
        "These experiments extend {doc}`chapter 1 <../chapters/01-boundary-shifting>` with more runs than fit "
        "in its time budget. They are the output of `benchmarks/boundary_seeds.py --page book/chapter1-runs.md` "
        f"({os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} "
        "minutes); run it to reproduce them.\n\n" + "\n".join(sections)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=STUDIES, nargs="+", help="run only these studies (default: all)")
    parser.add_argument("--page", type=Path, help="also write the results as this page of the site")
    args = parser.parse_args()
    if args.page and args.only:
        parser.error("--page needs every study; leave out --only")
    torch.set_num_threads(1)
    start = time.perf_counter()
    sections = []
    for name in args.only or STUDIES:
        section = globals()[name]()
        print(section, flush=True)
        sections.append(section)
    if args.page:
        args.page.write_text(page(sections, time.perf_counter() - start))
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
