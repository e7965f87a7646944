import math

import pytest
import torch
from poisonlab import spiked


def test_the_theory_curve_is_zero_below_the_threshold_and_rises_to_one():
    gamma = 0.5
    assert spiked.bbp_threshold(gamma) == pytest.approx(math.sqrt(0.5))
    assert spiked.bbp_overlap(0.5 * math.sqrt(gamma), gamma) == 0.0
    assert spiked.bbp_overlap(math.sqrt(gamma), gamma) == 0.0
    values = [spiked.bbp_overlap(t, gamma) for t in (1.0, 2.0, 10.0, 1000.0)]
    assert values == sorted(values) and 0 < values[0] and values[-1] == pytest.approx(1.0, abs=1e-3)


def test_shift_and_strength_are_inverse():
    shift = spiked.shift_for(2.0, 0.1, sigma=0.5)
    assert spiked.spike_strength(0.1, shift, 0.5) == pytest.approx(2.0)
    s = spiked.sample(100, 5, 0.1, shift, sigma=0.5, seed=3)
    assert s.x.shape == (100, 5) and int(s.is_poison.sum()) == 10 and s.theta == pytest.approx(2.0)
    assert float(s.direction.norm()) == pytest.approx(1.0)


@pytest.mark.parametrize("ratio", [0.6, 1.5, 2.0, 4.0])
def test_measured_overlap_lands_on_the_theory_away_from_the_threshold(ratio):
    # chapter 5's target: within ±0.05 of the curve at n ≥ 2,000 when |θ − √γ| > 0.2 √γ
    n, d, eps = 2000, 1000, 0.1
    theta = ratio * spiked.bbp_threshold(d / n)
    shift = spiked.shift_for(theta, eps)
    measured = [
        spiked.top_overlap(s.x, s.direction) for s in (spiked.sample(n, d, eps, shift, seed=seed) for seed in range(3))
    ]
    assert abs(sum(measured) / 3 - spiked.bbp_overlap(theta, d / n)) < 0.05


def test_top_overlap_uses_the_smaller_gram_matrix_consistently():
    s = spiked.sample(50, 80, 0.2, 6.0, seed=1)  # n < d
    wide = spiked.top_overlap(s.x, s.direction)
    centred = s.x - s.x.mean(0)
    v = torch.linalg.eigh(centred.T @ centred)[1][:, -1]
    assert wide == pytest.approx(float((v @ s.direction) ** 2), rel=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="eps"):
        spiked.spike_strength(1.5, 1.0)
    with pytest.raises(ValueError, match="shift"):
        spiked.spike_strength(0.1, -1.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        spiked.shift_for(1.0, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        spiked.bbp_overlap(1.0, 0.0)
    with pytest.raises(ValueError, match="direction"):
        spiked.top_overlap(torch.randn(10, 3), torch.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        spiked.top_overlap(torch.full((10, 3), float("nan")), torch.ones(3))


@pytest.mark.parametrize(("n", "d"), [(400, 100), (60, 150), (30, 2)])
def test_top_eigenvector_is_the_full_decompositions_top_vector(n, d):
    from poisonlab.detect import top_direction

    s = spiked.sample(n, d, 0.1, spiked.shift_for(1.2 * math.sqrt(d / n), 0.1), seed=2)  # near the edge
    v = spiked.top_eigenvector(s.x)
    full = top_direction(s.x - s.x.mean(0)).double()
    assert v.dtype == torch.float64 and v.shape == (d,)
    assert float(v.norm()) == pytest.approx(1.0) and abs(float(v @ full)) == pytest.approx(1.0, abs=1e-9)
    assert torch.equal(v, spiked.top_eigenvector(s.x))  # deterministic


def test_top_eigenvector_rejects_points_without_a_direction():
    with pytest.raises(ValueError, match="all equal"):
        spiked.top_eigenvector(torch.ones(10, 4))
    with pytest.raises(ValueError, match="n >= 2"):
        spiked.top_eigenvector(torch.randn(1, 4))
    with pytest.raises(ValueError, match="NaN"):
        spiked.top_eigenvector(torch.full((10, 3), float("inf")))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: spiked.sample(10, 3, 0.1, True), "^shift must be a number"),
        (lambda: spiked.sample(10, 3, 0.1, float("inf")), "^shift must be a finite number"),
        (lambda: spiked.spike_strength(0.1, float("nan")), "^shift must be a finite number"),
        (lambda: spiked.shift_for(True, 0.1), "^theta must be a number"),
        (lambda: spiked.shift_for(float("inf"), 0.1), "^theta must be a finite number"),
        (lambda: spiked.top_eigenvector(torch.ones(4, 3, dtype=torch.long)), "^x must be a floating-point tensor"),
        (lambda: spiked.top_overlap(torch.rand(4, 3), torch.tensor([1.0, float("nan"), 0.0])), "^direction must hold"),
        (lambda: spiked.top_overlap(torch.rand(4, 3), torch.tensor([1, 0, 0])), "^direction must be a floating"),
        (lambda: spiked.top_overlap(torch.rand(4, 3), torch.zeros(3)), "^direction must be a non-zero vector"),
    ],
)
def test_bool_infinite_and_integer_inputs_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()
