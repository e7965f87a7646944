"""SPECTRE against the spectral signature on BadNets, over poison shares and seeds.

For poisons making up ε of the target class (chapter 4's attack: a 3 × 3 white patch on images of
class 7 relabelled 1, on mnist5k) and for each seed (which draws the poisons and seeds the network),
train the default small CNN, embed the training set, and score the target class three ways:

- the centred spectral score ((Rᵢ − R̄)·v)² (Tran et al. 2018; ``detect.spectral_scores``);
- the uncentred score (Rᵢ·u)², u the top right singular vector of R itself;
- SPECTRE (Hayase et al. 2021; ``spectre.spectre_scores``): top-k principal directions, the
  filter's robust covariance, whitening, QUE with α = 4. The defender's upper bound on ε is a
  multiple of the true share (``--slack``): 1 (knows ε exactly) and 1.5 (chapter 6's setting).

Printed per run: the share of the poisons among the top ⌈1.5 ε n⌉ scores of the class
(``detect.removal_recall``, the budget of Tran et al.), with the run's clean accuracy and attack
success rate (on the test images of the source class, and on all non-target ones); then, per
share and score, the mean ± sd and the min–max over the seeds, and the time each score took (one
CPU thread, wall clock). Seed s draws the poisons and seeds the network, so seed 0 is the run
chapter 6 shows.

    .venv/bin/python benchmarks/spectre.py                 # ε = 5%, 10%, 20%, 1/3; seeds 0, 1, 2 (~5 min)
    .venv/bin/python benchmarks/spectre.py --eps 0.333333 --seeds 5 --dims 8 16 32
"""

from __future__ import annotations

import argparse
import statistics
import time

import poisonlab as pl
import torch
from poisonlab import detect, spectre
from poisonlab.experiment import train_and_score
from poisonlab.metrics import attack_success_rate
from poisonlab.train import embed
from poisonlab.triggers import Patch, backdoor


def uncentred_scores(reps: torch.Tensor) -> torch.Tensor:
    """(Rᵢ·u)² for one class's representations R (n, F), u the top right singular vector of R
    itself (no centring: u points at the class's mean unless the poisons pull harder)."""
    r = reps.double()
    return (r @ detect.top_direction(r)).pow(2)


def spread(values: list[float]) -> str:
    """'mean ± sd [min–max]' of one measurement over the seeds."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} [{min(values):.3f}–{max(values):.3f}]"


def timed(fn, *args, **kwargs) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.10, 0.20, 1 / 3])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source", type=int, default=7)
    parser.add_argument("--target", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--dims", type=int, nargs="+", default=[16], help="SPECTRE's k (one row each)")
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument(
        "--slack", type=float, nargs="+", default=[1.0, 1.5], help="SPECTRE's bound on ε, in multiples of ε"
    )
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    torch.set_num_threads(1)
    d = pl.load("mnist5k")
    trigger, target = Patch(3, pattern="white"), args.target
    n_target = int((d.y_train == target).sum())
    sources = d.y_test == args.source  # the attack is source-specific: its ASR counts on these
    table: dict[tuple[float, str], list[float]] = {}
    times: dict[str, list[float]] = {}
    for eps in args.eps:
        count = max(1, round(eps * n_target / (1 - eps)))  # poisons are eps of the poisoned target class
        for seed in range(args.seeds):
            ps = backdoor(d.x_train, d.y_train, trigger, target, count=count, source=args.source, seed=seed)
            model, t_train = timed(
                train_and_score, ps, d.x_test, d.y_test, trigger, target, epochs=args.epochs, lr=0.05, seed=seed
            )
            t = ps.y == target
            asr = attack_success_rate(model.model, d.x_test[sources], d.y_test[sources], trigger, target)
            reps, truth = embed(model.model, ps.x)[t], ps.is_poison[t]
            one_class = torch.zeros(len(reps), dtype=torch.long)
            scores = {
                "centred": timed(detect.spectral_scores, reps, one_class),
                "uncentred": timed(uncentred_scores, reps),
            }
            for k in args.dims:
                for slack in args.slack:
                    bound = min(slack * eps, 0.99)
                    scores[f"SPECTRE k={k}, {slack:g}ε"] = timed(
                        spectre.spectre_scores, reps, one_class, bound, dims=k, alpha=args.alpha
                    )
            row = {}
            for name, (s, secs) in scores.items():
                row[name] = detect.removal_recall(s, truth, eps)
                table.setdefault((eps, name), []).append(row[name])
                times.setdefault(name, []).append(secs)
            times.setdefault("training", []).append(t_train)
            print(
                f"ε = {eps:.1%}, seed {seed}: {count} poisons in {int(t.sum())}, CA {model.clean_accuracy:.3f}, "
                f"ASR {asr:.3f} on the {args.source}s ({model.attack_success_rate:.3f} on all); poisons removed "
                + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
                flush=True,
            )
    names = list(dict.fromkeys(name for _, name in table))
    print(
        f"\nShare of the poisons removed within 1.5 ε of the target class "
        f"(mean ± sd [min–max] over seeds 0–{args.seeds - 1})\n"
    )
    print("| ε | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for eps in args.eps:
        print(f"| {eps:.1%} | " + " | ".join(spread(table[(eps, name)]) for name in names) + " |")
    print("\nSeconds per run (one thread; mean, max):")
    for name, secs in times.items():
        print(f"   {name:20s} {statistics.mean(secs):8.3f} {max(secs):8.3f}")


if __name__ == "__main__":
    main()
