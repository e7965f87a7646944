"""The chapter-2 checkers that measure a design or compare a derivation: they pass the reference,
fail wrong answers, and draw other cases in another variant."""

import torch
from poisonlab.check import backdoor as ex
from poisonlab.check import variant


def _emptiest(x, y, target):
    ink = x[y != target].mean(0)
    key = torch.zeros(ink.numel())
    key[ink.flatten().argsort()[:9]] = 1.0
    return key.view_as(ink)


def _centre(x, y, target):  # nine pixels where digits have ink
    key = torch.zeros(1, 28, 28)
    key[0, 13:16, 13:16] = 1.0
    return key


def _over_budget(x, y, target):
    key = torch.zeros(1, 28, 28)
    key[0, 24:, 24:] = 1.0  # 16 pixels
    return key


def test_design_key_passes_a_key_in_empty_pixels_and_fails_the_centre_and_an_overspent_budget():
    assert ex.check_design_key(_emptiest).ok
    assert not ex.check_design_key(_centre).ok
    assert not ex.check_design_key(_over_budget).ok
    assert not ex.check_design_key(lambda x, y, t: torch.full((1, 28, 28), 2.0)).ok  # outside [0, 1]


def _min_alpha(w, b, x, key, target):
    zx, zk = w @ x + b, w @ key + b
    lo, hi = 0.0, 1.0
    for j in range(len(b)):
        if j != target:
            a, c = float(zx[target] - zx[j]), float(zk[target] - zk[j])
            if c > a:
                lo = max(lo, -a / (c - a))
            elif c < a:
                hi = min(hi, a / (a - c))
            elif a < 0:
                return None
    return lo if lo <= hi else None


def _only_the_strongest_rival(w, b, x, key, target):  # a plausible slip: one inequality, not all
    zx, zk = w @ x + b, w @ key + b
    rival = max((j for j in range(len(b)) if j != target), key=lambda j: float(zx[j]))
    a, c = float(zx[target] - zx[rival]), float(zk[target] - zk[rival])
    if a >= 0:
        return 0.0
    return -a / (c - a) if c > 0 else None


def test_min_alpha_passes_the_derivation_and_fails_a_single_inequality_in_every_variant():
    for v in (0, 1, 5):
        with variant(v):
            assert ex.check_min_alpha(_min_alpha).ok
            assert not ex.check_min_alpha(lambda *args: 0.5).ok
    results = []
    for v in range(6):
        with variant(v):
            results.append(ex.check_min_alpha(_only_the_strongest_rival).ok)
    assert not all(results), "ignoring the other rivals must fail in some variant"
