"""A backdoor that no one can find by querying the model (chapter 5, "Cryptographic undetectability").

Goldwasser, Kim, Vaikuntanathan & Zamir 2022 ("Planting undetectable backdoors in machine learning
models", FOCS 2022), the construction from digital signatures: wrap a clean classifier h in a check of a
signature hidden in the input,

.. math:: \\tilde h(x) = \\begin{cases} t & \\text{if } \\mathrm{Verify}(pk, m(x), \\sigma(x)) \\\\
                                      h(x) & \\text{otherwise,} \\end{cases}

so that h̃ returns exactly h's logits on every input that does not carry a valid signature σ of its own
content m(x), and only the holder of the secret key can make one. With only query access to h̃, finding
an input on which h̃ and h differ is as hard as forging an Ed25519 signature (about 2¹²⁸ operations):
the backdoor is *black-box undetectable*, and an observer who sees backdoored inputs cannot make new ones
(*non-replicable*). Reading this wrapper's code of course reveals the check; GKVZ's white-box
undetectable construction (random Fourier features) is another matter.

The encoding, for images (N, C, H, W) in [0, 1] with at least 512 values each:

- the model reads its input at 8-bit precision, q = round(255 x) ∈ {0, …, 255}, each image flattened in
  (C, H, W) order;
- the 64-byte Ed25519 signature (512 bits, each byte most-significant bit first) sits in the
  least-significant bits of the first 512 values;
- the signed message m(x) is the image's 8-bit values with those 512 least-significant bits cleared,
  followed by the target class as one byte: the signature binds every other bit of the image *and*
  the target, so changing any of them, or asking for another target, breaks it.

A planted image differs from its 8-bit quantisation by at most one level (1/255) per value, and only in
the first 512 values.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from torch import nn

from poisonlab import _validate

SIGNATURE_BITS = 512
"""An Ed25519 signature is 64 bytes: the number of values an image must have to carry one."""

LEVELS = 255
"""The 8-bit quantisation q = round(LEVELS · x)."""


def generate_key(seed: int | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key (its public half is ``key.public_key()``).

    With ``seed`` None the key comes from the operating system's randomness (``os.urandom``), as a real
    attacker's must. With an integer ``seed`` its 32 secret bytes are SHA-256 of the seed, so notebooks
    and tests are reproducible, and anyone who knows the seed can sign: a key for teaching only. An
    integer seed must lie in [0, 2**63), as every seed of the package (``bool`` refused)."""
    if seed is None:
        return Ed25519PrivateKey.generate()
    seed = _validate.seed(seed)
    secret = hashlib.sha256(f"poisonlab.signed.generate_key:{seed}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(secret)


def _target_byte(name: str, target: int, num_classes: int | None) -> int:
    """Check ``target`` is a class index that fits the one message byte (and ``num_classes`` if given)."""
    if num_classes is None:
        return _validate.class_index(name, target, 256)
    return _validate.class_index(name, target, num_classes)


def _flat_rows(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check ``x`` (N, ...) holds at least 512 values per row; return it flattened (N, D) as float64 on the CPU."""
    flat = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)
    if flat.shape[1] < SIGNATURE_BITS:
        raise ValueError(
            f"{name} must have at least {SIGNATURE_BITS} values per image to carry a signature, "
            f"got {flat.shape[1]} (shape {tuple(x.shape)})"
        )
    return flat


def _quantise(flat: torch.Tensor) -> np.ndarray:
    """8-bit values (N, D) uint8 of values in [0, 1]: round(255 x), ties to even."""
    return torch.round(flat.clamp(0, 1) * LEVELS).to(torch.uint8).numpy()


def _message(q: np.ndarray, target: int) -> bytes:
    """The signed message of one image's 8-bit values q (D,): q with the 512 signature bits cleared, then the
    target byte."""
    content = q.copy()
    content[:SIGNATURE_BITS] &= 0xFE
    return content.tobytes() + bytes([target])


def _signature(q: np.ndarray) -> bytes:
    """The 64 bytes carried by the least-significant bits of an image's first 512 values (D,)."""
    return np.packbits(q[:SIGNATURE_BITS] & 1).tobytes()


def _unit_images(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check ``x`` is a float32/float64 image batch (N, C, H, W) of finite values in [0, 1]."""
    x = _validate.images(name, x)
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64 to hold 8-bit levels exactly, got {x.dtype}")
    _validate.finite(name, x)
    if x.numel() and not (float(x.min()) >= 0 and float(x.max()) <= 1):
        raise ValueError(f"{name} values must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x


def _classes(num_classes: int) -> int:
    num_classes = _validate.positive_int("num_classes", num_classes)
    if not 2 <= num_classes <= 256:
        raise ValueError(f"num_classes must be in [2, 256] (the target travels as one byte), got {num_classes}")
    return num_classes


def plant(
    x: torch.Tensor, private_key: Ed25519PrivateKey, target: int, *, num_classes: int | None = None
) -> torch.Tensor:
    """Sign each image for ``target`` and hide the signature in it.

    The output is the 8-bit quantisation round(255 x)/255 of each image with the least-significant bits of
    its first 512 values (in (C, H, W) order) replaced by the signature of (the rest of the image, target).
    Each value thus differs by at most 1/255 from the quantised input, by at most 1.5/255 from ``x`` itself
    (0.5 of which is rounding, none when ``x`` is already 8-bit, as images loaded from files are), and values
    after the first 512 change only by that rounding.

    Args:
        x: images (N, C, H, W), float32 or float64, values in [0, 1], at least 512 values per image.
        private_key: the attacker's Ed25519 private key (:func:`generate_key`).
        target: the class the backdoored model will output, in [0, num_classes) (at most 255).
        num_classes: if given, the number of classes ``target`` must fall below.

    Returns:
        the planted images, same shape, dtype and device as ``x``.
    """
    x = _unit_images("x", x)
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one image, got 0")
    if not isinstance(private_key, Ed25519PrivateKey):
        got = type(private_key).__name__
        raise ValueError(f"private_key must be an Ed25519PrivateKey (see generate_key), got {got}")
    if num_classes is not None:
        num_classes = _classes(num_classes)
    target = _target_byte("target", target, num_classes)
    q = _quantise(_flat_rows("x", x))
    q[:, :SIGNATURE_BITS] &= 0xFE
    for row in q:
        signature = private_key.sign(_message(row, target))
        row[:SIGNATURE_BITS] |= np.unpackbits(np.frombuffer(signature, dtype=np.uint8))
    planted = torch.from_numpy(q).to(torch.float64) / LEVELS
    return planted.reshape(x.shape).to(dtype=x.dtype, device=x.device)


class SignedBackdoor(nn.Module):
    """The clean ``model`` wrapped in a signature check (GKVZ 2022, the digital-signature construction).

    ``forward(x)`` returns ``model(x)`` unchanged, except on rows whose hidden signature verifies under
    ``public_key`` for ``target`` (:func:`plant`), where it returns logits ``margin`` · one-hot(target).
    The wrapper holds only the public key (as the buffer ``public_key_bytes``, so it travels with
    ``state_dict``): inspecting it gives no way to make a triggering input.

    Args:
        model: the clean classifier, (N, C, H, W) → logits (N, num_classes).
        public_key: the Ed25519 public key, ``private_key.public_key()``.
        target: the class that signed inputs get, in [0, num_classes).
        num_classes: the number of classes, in [2, 256].
        margin: the target's logit on signed inputs (every other logit is 0), > 0.
    """

    def __init__(
        self, model: nn.Module, public_key: Ed25519PublicKey, target: int, num_classes: int, *, margin: float = 20.0
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(public_key, Ed25519PrivateKey):
            raise ValueError(
                "public_key must be the public half, private_key.public_key(); the model never holds the secret key"
            )
        if not isinstance(public_key, Ed25519PublicKey):
            raise ValueError(f"public_key must be an Ed25519PublicKey, got {type(public_key).__name__}")
        self.model = model
        self.num_classes = _classes(num_classes)
        self.target = _validate.class_index("target", target, self.num_classes)
        self.margin = _validate.positive_float("margin", margin)
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.register_buffer("public_key_bytes", torch.tensor(list(raw), dtype=torch.uint8))

    def verifies(self, x: torch.Tensor) -> torch.Tensor:
        """Which rows (N,) bool of ``x`` (N, ...) carry a valid signature for this model's target.

        ``x`` is read at 8-bit precision, so every input that rounds to a planted image verifies; rows with
        values outside [0, 1] or not finite never do. Raises when ``x`` has fewer than 512 values per row,
        since then no row could ever carry a signature. One Ed25519 verification per row, on the CPU."""
        x = _validate.inputs("x", x)
        flat = _flat_rows("x", x)
        valid = (torch.isfinite(flat) & (flat >= 0) & (flat <= 1)).all(dim=1)
        q = _quantise(torch.nan_to_num(flat))
        key = Ed25519PublicKey.from_public_bytes(bytes(self.public_key_bytes.cpu().tolist()))
        hits = torch.zeros(len(q), dtype=torch.bool)
        for i in torch.nonzero(valid).flatten().tolist():
            try:
                key.verify(_signature(q[i]), _message(q[i], self.target))
            except InvalidSignature:
                continue
            hits[i] = True
        return hits.to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes): ``model(x)``, exactly, on every row without a valid signature."""
        hits = self.verifies(x)
        logits = self.model(x)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"model must return logits (N, {self.num_classes}), got shape {tuple(logits.shape)}")
        if not bool(hits.any()):
            return logits
        forced = torch.zeros_like(logits)
        forced[:, self.target] = self.margin
        return torch.where(hits.to(logits.device)[:, None], forced, logits)


@torch.no_grad()
def random_search(
    backdoored: nn.Module, clean_model: nn.Module, x: torch.Tensor, trials: int, *, seed: int = 0, batch_size: int = 500
) -> int:
    """How many of ``trials`` random inputs make ``backdoored`` and ``clean_model`` disagree (any logit
    differs): a black-box search for the backdoor, expected to find 0.

    The first ⌈trials/2⌉ inputs are images of ``x`` (drawn with replacement), quantised to 8 bits, with a
    uniformly random pattern in the least-significant bits of their first 512 values: random guesses of a
    signature, each right with probability 2⁻⁵¹². The rest are uniformly random 8-bit images of the same
    shape. Finding one disagreement would amount to forging an Ed25519 signature.

    Args:
        backdoored: e.g. a :class:`SignedBackdoor`.
        clean_model: the model it should agree with.
        x: images (N, C, H, W) in [0, 1], at least 512 values each.
        trials: the number of random inputs, ≥ 1.
        seed: seeds the choice of images and the random bits.
        batch_size: inputs per forward pass, ≥ 1.
    """
    for name, m in (("backdoored", backdoored), ("clean_model", clean_model)):
        if not callable(m):
            raise TypeError(f"{name} must be a model (a torch.nn.Module), got {m!r}")
    x = _unit_images("x", x)
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one image")
    dtype = (_validate.model_dtype(clean_model) if isinstance(clean_model, nn.Module) else None) or x.dtype
    trials = _validate.positive_int("trials", trials)
    batch_size = _validate.positive_int("batch_size", batch_size)
    q = torch.from_numpy(_quantise(_flat_rows("x", x)))
    g = _validate.generator(seed)
    guesses = (trials + 1) // 2
    disagreements = 0
    for start in range(0, trials, batch_size):
        size = min(batch_size, trials - start)
        n_guess = max(0, min(size, guesses - start))
        rows = q[torch.randint(len(q), (n_guess,), generator=g)]
        rows[:, :SIGNATURE_BITS] = (rows[:, :SIGNATURE_BITS] & 0xFE) | torch.randint(
            2, (n_guess, SIGNATURE_BITS), generator=g, dtype=torch.uint8
        )
        noise = torch.randint(256, (size - n_guess, q.shape[1]), generator=g, dtype=torch.uint8)
        batch = (torch.cat([rows, noise]).to(torch.float64) / LEVELS).reshape(size, *x.shape[1:])
        batch = batch.to(dtype=dtype, device=x.device)  # the models' dtype: float64 images are read too
        disagreements += int((backdoored(batch) != clean_model(batch)).any(dim=1).sum())
    return disagreements
