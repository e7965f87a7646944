"""Poisoning federated learning on ``mnist5k``: clean accuracy and attack success of federated
averaging under each aggregator, with model replacement (Bagdasaryan et al. 2020; m colluding
attackers share the scale N/(η m)), its norm-bounded variant (Sun et al. 2019: each update scaled
down to the median benign norm) and "a little is enough" (Baruch et al. 2019) from m of N = 10
clients.

The 4,000 training images are split among 10 clients by Dirichlet label skew (α = 0.5, seed 0);
:func:`poisonlab.federated.run` trains the course's MLP (or ``--arch cnn``) by federated averaging,
one local epoch of SGD (batch ``--batch``) per round, and the malicious clients attack from round ``--attack-from``
on. The backdoor is a 3×3 white patch (:class:`poisonlab.Patch`) to class 0; ASR is measured on the
1,000 clean test images of other classes. Table 1: m = 1 (one attacker in ten). Table 2: for each
m, the aggregator *survives* when its clean accuracy stays within 10 points of its accuracy
without attack and (backdoor attacks) the ASR stays below 50%; "a little is enough" is untargeted,
so only its clean accuracy is shown. Krum is configured for f = 3 in every run, the largest f its
rule N > 2f + 2 allows for N = 10. One run per cell (seed 0).

    nice -n 19 .venv/bin/python benchmarks/federated.py
    nice -n 19 .venv/bin/python benchmarks/federated.py --malicious 1 2 3 4 --workers 2
    nice -n 19 .venv/bin/python benchmarks/federated.py --malicious 4 --attack-from 0   # attacked throughout
"""

from __future__ import annotations

import argparse
import time

import poisonlab as pl
import torch
from poisonlab import federated as fl
from poisonlab.parallel import run_parallel

AGGS = fl.AGGREGATORS
ATTACKS = ("model_replacement", "norm_bounded", "little_is_enough")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--malicious", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--attack-from", type=int, default=6)
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = pl.load("mnist5k", seed=args.seed)
    trigger = pl.Patch()
    splits = fl.dirichlet_split(d.y_train, 10, alpha=0.5, seed=args.seed)

    def one(agg: str, attack: str, m: int) -> tuple[float, float, float]:
        t = time.perf_counter()
        r = fl.run(
            d.x_train,
            d.y_train,
            d.x_test,
            d.y_test,
            num_clients=10,
            rounds=args.rounds,
            aggregator=agg,
            attack=attack,
            num_malicious=m,
            attack_from=args.attack_from,
            trigger=None if attack == "little_is_enough" else trigger,
            target=0,
            arch=args.arch,
            lr=args.lr,
            batch_size=args.batch,
            seed=args.seed,
            splits=splits,
        )
        asr = r.attack_success_rate[-1] if r.attack_success_rate else float("nan")
        out = r.clean_accuracy[-1], asr, time.perf_counter() - t
        print(f"  {agg:>13} {attack:>17} m={m}: clean {out[0]:.1%}, ASR {out[1]:.1%}, {out[2]:.0f} s", flush=True)
        return out

    jobs = [(a, "none", 1) for a in AGGS]
    jobs += [(a, atk, m) for m in args.malicious for atk in ATTACKS for a in AGGS]
    out = dict(zip(jobs, run_parallel(one, jobs, workers=args.workers, progress=False)))
    print(
        f"mnist5k, 10 clients (Dirichlet α = 0.5, sizes {[len(s) for s in splits]}), {args.arch}, "
        f"{args.rounds} rounds of 1 local epoch, attack from round {args.attack_from}; one run per cell"
    )
    print("\nTable 1: one malicious client of 10")
    print(f"{'aggregator':>13}  {'no attack':>9}  {'MR clean':>8}  {'MR ASR':>6}  {'ALIE clean':>10}  {'run (s)':>7}")
    for a in AGGS:
        c0, _, s0 = out[(a, "none", 1)]
        c1, asr, s1 = out[(a, "model_replacement", 1)] if 1 in args.malicious else (float("nan"),) * 3
        c2, _, s2 = out[(a, "little_is_enough", 1)] if 1 in args.malicious else (float("nan"),) * 3
        print(f"{a:>13}  {c0:9.1%}  {c1:8.1%}  {asr:6.1%}  {c2:10.1%}  {(s0 + s1 + s2) / 3:7.1f}")
    print("\nTable 2: clean accuracy / ASR by number of malicious clients m (of 10); * = survives")
    print(
        f"{'aggregator':>13}  {'attack':>17}  "
        + "  ".join(f"{'m=' + str(m):>13}" for m in args.malicious)
        + "  survives"
    )
    for atk in ATTACKS:
        for a in AGGS:
            base = out[(a, "none", 1)][0]
            cells, survived, streak = [], 0, True
            for m in args.malicious:
                c, asr, _ = out[(a, atk, m)]
                ok = c >= base - 0.10 and (atk == "little_is_enough" or asr < 0.5)
                streak = streak and ok
                survived = m if streak else survived
                shown = f"{c:5.0%}" if atk == "little_is_enough" else f"{c:5.0%}/{asr:4.0%}"
                cells.append(f"{shown}{'*' if ok else ' '}")
            print(
                f"{a:>13}  {atk:>17}  "
                + "  ".join(f"{x:>13}" for x in cells)
                + (f"  up to {survived}/10" if survived else f"  below {args.malicious[0]}/10")
            )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s for {len(jobs)} federated runs")


if __name__ == "__main__":
    main()
