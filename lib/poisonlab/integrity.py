"""Integrity of an indexed dataset: the defence against split-view poisoning.

Carlini et al. (2024, "Poisoning Web-Scale Training Datasets is Practical", IEEE S&P) show that a
dataset distributed as an *index* (names or URLs) whose content is fetched later can be poisoned
without touching the index: whoever controls an item's content after indexing (an expired domain
in their case) serves a different item to every later downloader. This is *split-view* poisoning:
the annotator who indexed the data saw one view, the trainer sees another. Their mitigation is
integrity checking: record a cryptographic hash of every item when the index is made, and have
the loader refuse any item whose content no longer has that hash. An attacker must then find a
SHA-256 second preimage to change an item unnoticed.

Here the items are files under a folder, one image per file, as a web index lists one image per
URL: :func:`save_images` writes them, and :func:`build_index` records, for every item, the SHA-256
of its bytes and, given them, the labels the annotator assigned (the captions of a web-scale index).
The labels live in the index; the files hold only the content, which is all that whoever controls
an item after indexing can change. :func:`write_index` and :func:`read_index` store the index as
JSON, and :func:`load_bytes`, :func:`load_item` and :func:`load_items` read items back, each image
with its indexed label, refusing with :class:`IntegrityError` (naming the item, the hash at
indexing and the hash now) any whose bytes changed. Each item is read once and the bytes that were
hashed are the bytes that are parsed, so a file changed between the check and the use cannot slip
through. ``load_items(index, check=False)`` is the loader without the defence: it returns whatever
each item's bytes now hold, under the indexed label.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "save_images",
    "sha256_hex",
    "verify",
    "write_index",
]

#: The format tag written into every index file.
FORMAT = "poisonlab-index/2"


class IntegrityError(ValueError):
    """An item's content differs from what was indexed (or the item is gone)."""


@dataclass(frozen=True)
class Index:
    """The hashes of a dataset's items, made when it was indexed.

    Attributes:
        root: the folder the item names are relative to.
        hashes: item name (a relative POSIX path, e.g. ``"item-00007.pt"``; a URL in a web index)
            → SHA-256 of its bytes at indexing time, 64 lowercase hexadecimal digits.
        labels: item name → the label recorded at indexing (the annotator's; empty when the index
            records none). Changing an item's bytes does not change its label.
    """

    root: Path
    hashes: dict[str, str]
    labels: dict[str, int] = field(default_factory=dict)

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


def build_index(
    root: str | os.PathLike,
    *,
    labels: Mapping[str, int] | None = None,
    pattern: str = "**/*",
    exclude: tuple[str, ...] = (),
) -> Index:
    """Hash every regular file under ``root`` that matches ``pattern``, and record its label.

    Args:
        root: the dataset's folder.
        labels: item name → integer label, one for every item indexed (the annotator's labels), or
            ``None`` for an index of content only.
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
    return Index(root, hashes, {} if labels is None else _labels(labels, hashes))


def _labels(labels: Mapping[str, int], hashes: Mapping[str, str]) -> dict[str, int]:
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must map item names to integers, got {type(labels).__name__}")
    if set(labels) != set(hashes):
        missing, extra = sorted(set(hashes) - set(labels)), sorted(set(labels) - set(hashes))
        raise ValueError(f"labels must name every indexed item once: missing {missing[:3]}, not indexed {extra[:3]}")
    out = {}
    for name, label in labels.items():
        if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
            label = int(label)
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ValueError(f"the label of {name!r} must be a non-negative integer, got {label!r}")
        out[name] = label
    return out


def write_index(index: Index, path: str | os.PathLike) -> Path:
    """Write ``index`` as JSON (``{"format", "items": {name: sha256}, "labels": {name: label}}``) to
    ``path``; returns the path. Item names are stored relative, so the folder can move with its index."""
    if not isinstance(index, Index):
        raise TypeError(f"index must be an Index, got {type(index).__name__}")
    path = Path(path)
    data = {"format": FORMAT, "items": dict(sorted(index.hashes.items())), "labels": dict(sorted(index.labels.items()))}
    path.write_text(json.dumps(data, indent=1))
    return path


def read_index(path: str | os.PathLike, root: str | os.PathLike) -> Index:
    """Read an index written by :func:`write_index`, for the items under ``root``.

    Raises:
        ValueError: when the file is not such an index (wrong format tag, a hash that is not 64
            hexadecimal digits, a name that leaves ``root``, labels that are not one non-negative
            integer per item).
    """
    root = _folder("root", root)
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), dict):
        raise ValueError(f"{str(path)!r} is not a {FORMAT} index")
    for name, digest in data["items"].items():
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"index entry {name!r} has no valid SHA-256 digest: {digest!r}")
        _inside(root, name)
    labels = data.get("labels", {})
    return Index(root, dict(data["items"]), _labels(labels, data["items"]) if labels else {})


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


def _image(name: str, data: bytes) -> torch.Tensor:
    image = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"item {name!r} is not a (C, H, W) image written by save_images")
    return image


def load_item(index: Index, name: str, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The image (C, H, W) of item ``name`` (written by :func:`save_images`) and its label as the
    index recorded it (0-d int64). The image is parsed from the verified bytes of :func:`load_bytes`
    (with ``torch.load(weights_only=True)``, which unpickles tensors only); ``check=False`` skips the
    verification and parses whatever the file holds now, as a loader without the defence would.

    Raises:
        ValueError: the index records no labels, or the item is not an image.
        IntegrityError: (``check=True``) the item is missing or changed since indexing.
    """
    if not isinstance(index, Index):
        raise TypeError(f"index must be an Index, got {type(index).__name__}")
    if not index.labels:
        raise ValueError("index must record labels (build_index(..., labels=...)) to load labelled items")
    data = load_bytes(index, name) if check else _inside(index.root, name).read_bytes()
    return _image(name, data), torch.tensor(index.labels[name], dtype=torch.int64)


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


def load_items(
    index: Index, *, skip_altered: bool = False, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load every item of ``index`` as a labelled image set, each image with its indexed label.

    Args:
        index: the dataset's index (with labels).
        skip_altered: ``False`` (default) raises :class:`IntegrityError` at the first altered or
            missing item; ``True`` leaves those out and lists them.
        check: ``False`` loads every item's current bytes unchecked (the loader without the
            defence; nothing is refused).

    Returns:
        ``(x, y, refused)``: images (M, C, H, W), labels (M,) int64 of the M intact items in name
        order, and the refused items' names.
    """
    xs, ys, refused = [], [], []
    for name in index.names:
        try:
            x, y = load_item(index, name, check=check)
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


def save_images(x: torch.Tensor, folder: str | os.PathLike) -> list[str]:
    """Write images as one file per item, ``item-00000.pt``, … (the (C, H, W) float32 image alone: the
    content a URL serves), into an existing ``folder``; returns the names written. Labels belong in
    the index (:func:`build_index`), not in the files."""
    x = _validate.finite("x", _validate.images("x", x))
    folder = _folder("folder", folder)
    width = max(5, len(str(x.shape[0] - 1)))
    names = []
    for i in range(x.shape[0]):
        name = f"item-{i:0{width}d}.pt"
        buffer = io.BytesIO()
        torch.save(x[i].clone(), buffer)
        (folder / name).write_bytes(buffer.getvalue())
        names.append(name)
    return names
