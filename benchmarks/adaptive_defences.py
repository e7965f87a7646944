"""Chapter 6's defences against chapter 5's adaptive backdoor: Neural Cleanse on the model, and
SPECTRE and the spectral scores on its representations.

The attack is chapter 5's "TaCT, aligned trigger" on ``mnist5k``, built with the package exactly as
chapter 5 builds it: a clean reference CNN (12 epochs, seed 100) gives the 40 pixels whose gradient
raises the class-1 logit most (``triggers.salient_pixels`` on 500 training images of other
classes); that key blended at α = 0.5 is the trigger; ``triggers.tact`` stamps it on 7s relabelled
1 (the poisons, 10% of the 1s) and on three times as many covers of other classes that keep their
labels (poisons drawn with seed 0). Each training seed trains chapter 4's small CNN on that set
(12 epochs, lr 0.05). With ``--chapter 6`` the attack is chapter 6's copy instead: the key comes
from the clean CNN of seed 0, and seed s also draws the poisons.

Per training run it prints the attack success rate on the test 7s and the clean accuracy, then

- Neural Cleanse as chapter 6 runs it (``cleanse.reverse_triggers`` on the defender's 400 clean
  training images, at most 60 Adam steps of 32 images, λ = 0.003, stopping once no mask norm moved
  by 1% over 10 steps; ``cleanse.anomaly_index``): the largest anomaly index and its class, whether
  it exceeds 2, and the anomaly index of the attacker's class 1 (negative: its mask is *larger*
  than the median);
- the share of the poisons among the top ⌈1.5 ε n⌉ of the 1s (``detect.removal_recall``) for the
  centred spectral score (``detect.spectral_scores``, chapter 5's "removed: spectral" column), the
  uncentred score (Rᵢ·u)² and SPECTRE (``spectre.spectre_scores``, k = 16, α = 4) with its bound on
  ε at ε and at 1.5 ε (chapter 6's setting);

then the mean, sd and min–max of each over the runs, and the seconds each step took (one thread).

    .venv/bin/python benchmarks/adaptive_defences.py                 # chapter 5's attack, seeds 0 1 2 (~3 min)
    .venv/bin/python benchmarks/adaptive_defences.py --chapter 6     # chapter 6's copy of it
    .venv/bin/python benchmarks/adaptive_defences.py --seeds 0 --steps 150
"""

from __future__ import annotations

import argparse
import statistics
import time

import poisonlab as pl
import torch
from poisonlab import cleanse, detect, spectre
from poisonlab.experiment import train_and_score
from poisonlab.metrics import accuracy, attack_success_rate
from poisonlab.train import embed
from poisonlab.triggers import Blend, salient_pixels, tact

SOURCE, TARGET = 7, 1  # chapter 5: the adaptive attack aims 7s at class 1
EPOCHS, LR = 12, 0.05  # chapter 4's CNN and training
EPS, COVER, SALIENT_K, ALIGNED_ALPHA = 0.10, 3, 40, 0.5  # chapter 5's settings
REFERENCE_SEED = 100  # chapter 5's clean reference CNN (SEED + 100)
DEFENDER = 400  # chapter 6: the defender's clean images
FLAG = 2.0  # Wang et al.'s threshold on the anomaly index


def uncentred_scores(reps: torch.Tensor) -> torch.Tensor:
    """(Rᵢ·u)² for one class's representations R (n, F), u the top right singular vector of R."""
    r = reps.double()
    return (r @ detect.top_direction(r)).pow(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--chapter", type=int, choices=(5, 6), default=5, help="whose copy of the attack")
    parser.add_argument("--steps", type=int, default=60, help="Neural Cleanse's largest number of Adam steps")
    parser.add_argument("--dims", type=int, default=16, help="SPECTRE's k")
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = pl.load("mnist5k", seed=0)

    def train(data, seed: int) -> torch.nn.Module:
        return train_and_score(data, d.x_test, d.y_test, epochs=EPOCHS, lr=LR, seed=seed).model

    n_target = int((d.y_train == TARGET).sum())
    count = max(1, round(EPS * n_target / (1 - EPS)))  # 10% of the poisoned class of 1s
    start = time.perf_counter()
    reference = train((d.x_train, d.y_train), REFERENCE_SEED if args.chapter == 5 else 0)
    key_images = d.x_train[d.y_train != TARGET][:500]
    aligned = Blend(salient_pixels(reference, key_images, TARGET, SALIENT_K), alpha=ALIGNED_ALPHA)
    print(f"reference CNN and key: {time.perf_counter() - start:.1f} s", flush=True)
    sevens = d.y_test == SOURCE
    defender_x = d.x_train[:DEFENDER]
    search = dict(steps=args.steps, batch_size=32, lam=0.003, tol=0.01, window=10, progress=False)
    rows: list[dict[str, float]] = []
    times: dict[str, list[float]] = {}

    def timed(name: str, fn, *a, **kw):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    for seed in args.seeds:
        poison_seed = 0 if args.chapter == 5 else seed
        ps = tact(
            d.x_train, d.y_train, aligned, TARGET, source=SOURCE, count=count, cover=COVER * count, seed=poison_seed
        )
        model = timed("training", train, ps, seed)
        row = {
            "ASR": attack_success_rate(model, d.x_test[sevens], d.y_test[sevens], aligned, TARGET),
            "CA": accuracy(model, d.x_test, d.y_test),
        }
        found = timed("Neural Cleanse", cleanse.reverse_triggers, model, defender_x, **search, seed=seed)
        index = cleanse.anomaly_index(found.norms)
        top = int(index.argmax())
        row |= {"NC max index": float(index[top]), "NC class": top, "NC flagged": float(index[top]) > FLAG}
        row |= {"NC index of 1": float(index[TARGET]), "NC steps": found.trace.shape[0]}
        ones = ps.y == TARGET
        reps, truth = embed(model, ps.x[ones]), ps.is_poison[ones]
        one_class = torch.zeros(len(reps), dtype=torch.long)
        scores = {
            "centred": timed("scores", detect.spectral_scores, reps, one_class),
            "uncentred": uncentred_scores(reps),
        }
        for slack in (1.0, 1.5):
            scores[f"SPECTRE {slack:g}ε"] = timed(
                "SPECTRE", spectre.spectre_scores, reps, one_class, slack * EPS, dims=args.dims
            )
        row |= {f"removed: {name}": detect.removal_recall(s, truth, EPS) for name, s in scores.items()}
        rows.append(row)
        print(
            f"seed {seed}: {int(truth.sum())} poisons in {len(truth)} 1s; "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
            flush=True,
        )
    print(f"\nChapter {args.chapter}'s adaptive attack (TaCT, aligned trigger), seeds {args.seeds}:\n")
    print("| measurement | mean ± sd | min–max | per run |")
    print("|---|---|---|---|")
    for key in rows[0]:
        if key in ("NC class", "NC flagged"):  # a class and a yes/no: per run only
            counts = f"{sum(bool(r[key]) for r in rows)} of {len(rows)}" if key == "NC flagged" else "–"
            print(f"| {key} | {counts} | – | " + " / ".join(str(int(r[key])) for r in rows) + " |")
            continue
        values = [float(r[key]) for r in rows]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"| {key} | {statistics.mean(values):.3f} ± {sd:.3f} | {min(values):.3f}–{max(values):.3f} | "
            + " / ".join(f"{v:.3f}" for v in values)
            + " |"
        )
    print("\nSeconds per run (one thread; mean, max):")
    for name, secs in times.items():
        print(f"   {name:20s} {statistics.mean(secs):8.2f} {max(secs):8.2f}")


if __name__ == "__main__":
    main()
