"""Split-view poisoning's defence (Carlini et al. 2024) on ``mnist5k``: the cost of hashing a dataset
when it is indexed and of checking every item when it is loaded, and how many altered items the
loader refuses.

The 4,000 training images are written one file per item (:func:`poisonlab.integrity.save_images`)
into a temporary folder and indexed with their labels; then a share of the items is altered on disk
as a split-view attacker would (the image bytes of each replaced by another, valid image of a
different class; the labels stay in the index) and the dataset is loaded with
:func:`poisonlab.integrity.load_items` (``skip_altered=True``). Printed per share:
items altered, items refused, altered items that loaded, intact items refused, and the times of
indexing, of a loading with checks and of the same loading without them.

    nice -n 19 .venv/bin/python benchmarks/integrity.py
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import poisonlab as pl
import torch
from poisonlab import integrity


def unchecked_load(folder: Path, names: list[str]) -> None:
    for name in names:
        torch.load(io.BytesIO((folder / name).read_bytes()), weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.001, 0.01, 0.1])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = pl.load("mnist5k", seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    print("share  altered  refused  altered loaded  intact refused  index (s)  checked load (s)  unchecked load (s)")
    for share in args.shares:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            names = integrity.save_images(d.x_train, folder)
            t = time.perf_counter()
            index = integrity.build_index(folder, labels=dict(zip(names, d.y_train.tolist())))
            t_index = time.perf_counter() - t
            count = round(share * len(names))
            chosen = torch.randperm(len(names), generator=g)[:count].tolist()
            for i in chosen:  # a valid image of another class, served under the indexed name and label
                j = int(torch.nonzero(d.y_train != d.y_train[i])[0])
                (folder / names[i]).write_bytes((folder / names[j]).read_bytes())
            altered = {names[i] for i in chosen}
            t = time.perf_counter()
            _, _, refused = integrity.load_items(index, skip_altered=True)
            t_checked = time.perf_counter() - t
            t = time.perf_counter()
            unchecked_load(folder, names)
            t_unchecked = time.perf_counter() - t
            refused = set(refused)
            print(
                f"{share:5.1%}  {count:7d}  {len(refused):7d}  {len(altered - refused):14d}  "
                f"{len(refused - altered):14d}  {t_index:9.2f}  {t_checked:16.2f}  {t_unchecked:18.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
