"""Integrity of an indexed dataset: the defence against split-view poisoning.

Carlini et al. (2024, "Poisoning Web-Scale Training Datasets is Practical", IEEE S&P) show that a
dataset distributed as an *index* (names or URLs) whose content is fetched later can be poisoned
without touching the index: whoever controls an item's content after indexing (an expired domain
in their case) serves a different item to every later downloader. This is *split-view* poisoning:
the annotator who indexed the data saw one view, the trainer sees another. Their mitigation is
integrity checking: record a cryptographic hash of every item when the index is made, and have
the loader refuse any item whose content no longer has that hash. An attacker must then find a
SHA-256 second preimage to change an item unnoticed.

Here the items are files under a folder: :func:`build_index` hashes each (SHA-256 of its bytes),
:func:`write_index` and :func:`read_index` store the index as JSON, and :func:`load_bytes`,
:func:`load_item` and :func:`load_items` read items back, refusing with :class:`IntegrityError`
(naming the item, the hash at indexing and the hash now) any whose bytes changed. Each item is
read once and the bytes that were hashed are the bytes that are parsed, so a file changed between
the check and the use cannot slip through.

:func:`save_items` writes a labelled image set as one file per item, (C, H, W) float32 image and
its int64 label, which :func:`load_items` stacks back into (N, C, H, W) and (N,).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from poisonlab import _validate

__all__ = [
    "Index",
    "IntegrityError",
    "build_index",
    "load_bytes",
    "load_item",
    "load_items",
    "read_index",
    "save_items",
    "sha256_hex",
    "verify",
    "write_index",
]

#: The format tag written into every index file.
FORMAT = "poisonlab-index/1"


class IntegrityError(ValueError):
    """An item's content differs from what was indexed (or the item is gone)."""


@dataclass(frozen=True)
class Index:
    """The hashes of a dataset's items, made when it was indexed.

    Attributes:
        root: the folder the item names are relative to.
        hashes: item name (a relative POSIX path, e.g. ``"item-00007.pt"``) → SHA-256 of its bytes
            at indexing time, 64 lowercase hexadecimal digits.
    """

    root: Path
    hashes: dict[str, str]

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def names(self) -> list[str]:
        """The item names, sorted."""
        return sorted(self.hashes)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hexadecimal digits (FIPS 180-4)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return hashlib.sha256(data).hexdigest()


def _folder(name: str, root: str | os.PathLike) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(root).__name__}")
    path = Path(root)
    if not path.is_dir():
        raise ValueError(f"{name} must be an existing folder, got {str(path)!r}")
    return path


def build_index(root: str | os.PathLike, *, pattern: str = "**/*", exclude: tuple[str, ...] = ()) -> Index:
    """Hash every regular file under ``root`` that matches ``pattern``.

    Args:
        root: the dataset's folder.
        pattern: a glob relative to ``root`` (default: every file, in subfolders too).
        exclude: item names to leave out (e.g. the index file itself, if it lives in ``root``).

    Returns:
        An :class:`Index` of every matching file, by name relative to ``root``.
    """
    root = _folder("root", root)
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty glob string, got {pattern!r}")
    hashes = {}
    for path in sorted(root.glob(pattern)):
        name = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and name not in exclude:
            hashes[name] = sha256_hex(path.read_bytes())
    if not hashes:
        raise ValueError(f"root {str(root)!r} holds no file matching {pattern!r}: nothing to index")
    return Index(root, hashes)


def write_index(index: Index, path: str | os.PathLike) -> Path:
    """Write ``index`` as JSON (``{"format", "items": {name: sha256}}``) to ``path``; returns the path.
    Item names are stored relative, so the folder can move with its index."""
    if not isinstance(index, Index):
        raise TypeError(f"index must be an Index, got {type(index).__name__}")
    path = Path(path)
    path.write_text(json.dumps({"format": FORMAT, "items": dict(sorted(index.hashes.items()))}, indent=1))
    return path


def read_index(path: str | os.PathLike, root: str | os.PathLike) -> Index:
    """Read an index written by :func:`write_index`, for the items under ``root``.

    Raises:
        ValueError: when the file is not such an index (wrong format tag, a hash that is not 64
            hexadecimal digits, a name that leaves ``root``).
    """
    root = _folder("root", root)
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), dict):
        raise ValueError(f"{str(path)!r} is not a {FORMAT} index")
    for name, digest in data["items"].items():
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"index entry {name!r} has no valid SHA-256 digest: {digest!r}")
        _inside(root, name)
    return Index(root, dict(data["items"]))


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"item name {name!r} points outside the dataset's folder")
    return path


def load_bytes(index: Index, name: str) -> bytes:
    """The bytes of item ``name``, after checking they hash to what was indexed.

    Raises:
        ValueError: ``name`` is not in the index.
        IntegrityError: the item is missing, or its content changed since indexing (the message
            names the item and both hashes).
    """
    if not isinstance(index, Index):
        raise TypeError(f"index must be an Index, got {type(index).__name__}")
    if name not in index.hashes:
        raise ValueError(f"name must be an indexed item; {name!r} is not in the index of {len(index)} items")
    path = _inside(index.root, name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"item {name!r} is missing from {str(index.root)!r}") from None
    digest = sha256_hex(data)
    if digest != index.hashes[name]:
        raise IntegrityError(
            f"item {name!r} changed since it was indexed: SHA-256 {digest[:16]}… differs from the indexed "
            f"{index.hashes[name][:16]}…; refusing to load it"
        )
    return data


def load_item(index: Index, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The image (C, H, W) and label (0-d int64) of item ``name`` (written by :func:`save_items`),
    parsed from the verified bytes of :func:`load_bytes` (with ``torch.load(weights_only=True)``,
    which unpickles tensors only)."""
    item = torch.load(io.BytesIO(load_bytes(index, name)), weights_only=True)
    if not isinstance(item, dict) or set(item) != {"x", "y"}:
        raise ValueError(f"item {name!r} is not an image-label pair written by save_items")
    return item["x"], item["y"]


def verify(index: Index) -> list[str]:
    """The names of the items that are missing or whose content changed since indexing, sorted
    (empty when every item is intact)."""
    bad = []
    for name in index.names:
        try:
            load_bytes(index, name)
        except IntegrityError:
            bad.append(name)
    return bad


def load_items(index: Index, *, skip_altered: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load every item of ``index`` as a labelled image set.

    Args:
        index: the dataset's index.
        skip_altered: ``False`` (default) raises :class:`IntegrityError` at the first altered or
            missing item; ``True`` leaves those out and lists them.

    Returns:
        ``(x, y, refused)``: images (M, C, H, W), labels (M,) int64 of the M intact items in name
        order, and the refused items' names.
    """
    xs, ys, refused = [], [], []
    for name in index.names:
        try:
            x, y = load_item(index, name)
        except IntegrityError:
            if not skip_altered:
                raise
            refused.append(name)
            continue
        xs.append(x)
        ys.append(y)
    if not xs:
        raise IntegrityError(f"every one of the {len(index)} items was refused")
    return torch.stack(xs), torch.stack(ys).long(), refused


def save_items(x: torch.Tensor, y: torch.Tensor, folder: str | os.PathLike) -> list[str]:
    """Write a labelled image set as one file per item, ``item-00000.pt``, … (a dict of the image
    (C, H, W) and its 0-d int64 label), into an existing ``folder``; returns the names written."""
    x = _validate.finite("x", _validate.images("x", x))
    y = _validate.labels("y", y, n=x.shape[0])
    folder = _folder("folder", folder)
    width = max(5, len(str(x.shape[0] - 1)))
    names = []
    for i in range(x.shape[0]):
        name = f"item-{i:0{width}d}.pt"
        buffer = io.BytesIO()
        torch.save({"x": x[i].clone(), "y": y[i].clone()}, buffer)
        (folder / name).write_bytes(buffer.getvalue())
        names.append(name)
    return names
