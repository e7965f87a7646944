import math

import pytest
import torch
from poisonlab import robust

N, D = 20_000, 50


def _errors(c, eps, **kwargs):
    return {
        "mean": robust.mean_error(robust.sample_mean(c.x), c.true_mean),
        "median": robust.mean_error(robust.coordinate_median(c.x), c.true_mean),
        "filter": robust.mean_error(robust.filtered_mean(c.x, eps, **kwargs), c.true_mean),
    }


def test_the_sample_has_the_promised_shape_share_and_geometry():
    c = robust.contaminated_gaussian(1000, 20, 0.1, placement="tail", seed=4)
    assert c.x.shape == (1000, 20) and c.x.dtype == torch.float64 and c.is_poison.dtype == torch.bool
    assert int(c.is_poison.sum()) == 100 and torch.equal(c.true_mean, torch.zeros(20, dtype=torch.float64))
    assert float(c.direction.norm()) == pytest.approx(1.0)
    # every poison sits exactly at t_eps along u, and its norm is that of a clean point
    t = robust.tail_distance(0.1)
    assert c.distance == pytest.approx(t) == pytest.approx(math.sqrt(2 * math.log(10)))
    assert torch.allclose(c.x[c.is_poison] @ c.direction, torch.full((100,), t, dtype=torch.float64))
    clean_norms, poison_norms = c.x[~c.is_poison].norm(dim=1), c.x[c.is_poison].norm(dim=1)
    low, high = torch.quantile(clean_norms, torch.tensor([0.01, 0.99], dtype=torch.float64)).tolist()
    assert float(((poison_norms > low) & (poison_norms < high)).float().mean()) > 0.9
    again = robust.contaminated_gaussian(1000, 20, 0.1, placement="tail", seed=4)
    assert torch.equal(again.x, c.x) and torch.equal(again.is_poison, c.is_poison)


def test_far_poisons_drag_the_mean_but_the_filter_removes_them():
    eps = 0.1
    c = robust.contaminated_gaussian(N, D, eps, placement="far", seed=0)
    errors = _errors(c, eps)
    assert errors["mean"] > 1 and errors["mean"] == pytest.approx(eps * 10 * math.sqrt(D), rel=0.05)
    assert errors["filter"] < 0.15
    keep = robust.filter_mask(c.x, eps)
    assert not bool(keep[c.is_poison].any())  # every poison removed
    assert float(keep[~c.is_poison].float().mean()) > 0.8  # at the cost of some of the clean tail


def test_tail_poisons_survive_the_filter_and_leave_the_floor_error():
    eps = 0.1
    shift = eps * robust.tail_distance(eps)  # ε t_ε = √2 · strong_contamination_floor(ε)
    assert shift == pytest.approx(math.sqrt(2) * robust.strong_contamination_floor(eps))
    c = robust.contaminated_gaussian(N, D, eps, placement="tail", seed=0)
    errors = _errors(c, eps)
    assert errors["mean"] == pytest.approx(shift, rel=0.2)
    assert 0.3 < errors["filter"] / shift < 3
    assert bool(robust.filter_mask(c.x, eps)[c.is_poison].all())  # not one tail poison removed


def test_the_filter_catches_the_same_poisons_placed_farther_along_the_tail():
    eps = 0.1
    c = robust.contaminated_gaussian(N, D, eps, placement="tail", distance=3 * robust.tail_distance(eps), seed=1)
    errors = _errors(c, eps)
    assert errors["mean"] > 0.5 and errors["filter"] < 0.15  # the mean moves by 3 ε t_ε ≈ 0.64


def test_coordinate_median_error_grows_like_sqrt_d_while_the_filter_does_not():
    eps = 0.1
    small = _errors(robust.contaminated_gaussian(N, 10, eps, placement="far", seed=2), eps)
    large = _errors(robust.contaminated_gaussian(N, 200, eps, placement="far", seed=2), eps)
    assert 3 < large["median"] / small["median"] < 6  # √(200 / 10) ≈ 4.5
    per_coordinate = large["median"] / math.sqrt(200)  # each coordinate's median moves by ≈ Φ⁻¹(0.5 / 0.9) ≈ 0.14
    assert 0.1 < per_coordinate < 0.18
    assert large["filter"] < 0.2 < large["median"] / 5


def test_the_filter_leaves_clean_data_alone():
    c = robust.contaminated_gaussian(N, D, 0.0, seed=3)
    assert bool(robust.filter_mask(c.x, 0.05).all())
    assert torch.equal(robust.filtered_mean(c.x, 0.05), c.x.mean(0))


def test_the_randomized_rule_also_removes_far_poisons_and_is_deterministic_given_the_seed():
    eps = 0.1
    c = robust.contaminated_gaussian(N, D, eps, placement="far", seed=5)
    keep = robust.filter_mask(c.x, eps, rule="random", seed=7)
    assert torch.equal(keep, robust.filter_mask(c.x, eps, rule="random", seed=7))
    assert int(keep[c.is_poison].sum()) <= 2 and float(keep[~c.is_poison].float().mean()) > 0.95
    assert robust.mean_error(robust.filtered_mean(c.x, eps, rule="random", seed=7), c.true_mean) < 0.15
    # the deterministic rule draws nothing
    assert torch.equal(robust.filter_mask(c.x, eps, seed=0), robust.filter_mask(c.x, eps, seed=1))


def test_the_filter_stops_after_max_rounds():
    eps = 0.1
    c = robust.contaminated_gaussian(N, D, eps, placement="far", seed=6)
    one = robust.filter_mask(c.x, eps, rule="random", max_rounds=1, seed=0)
    assert 0 < int(one[c.is_poison].sum())  # one randomized round leaves some poisons behind
    assert int(robust.filter_mask(c.x, eps, rule="random", seed=0)[c.is_poison].sum()) < int(one[c.is_poison].sum())


def test_median_mean_threshold_and_floor_on_small_cases():
    x = torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [100.0, 40.0]])
    assert torch.equal(robust.coordinate_median(x), torch.tensor([1.5, 25.0], dtype=torch.float64))
    assert torch.equal(robust.coordinate_median(x[:3]), torch.tensor([1.0, 20.0], dtype=torch.float64))
    assert torch.equal(robust.sample_mean(x), torch.tensor([25.75, 25.0], dtype=torch.float64))
    assert robust.mean_error(torch.tensor([3.0, 4.0]), torch.zeros(2)) == pytest.approx(5.0)
    assert robust.strong_contamination_floor(0.0) == 0.0
    assert robust.strong_contamination_floor(0.1) == pytest.approx(0.1 * math.sqrt(math.log(10)))
    assert robust.information_floor(0.1) == robust.strong_contamination_floor(0.1)  # the former name
    assert robust.spectral_threshold(0.0, 100, 1) == pytest.approx(1.21)
    assert robust.spectral_threshold(0.1, 100, 1) == pytest.approx(1.21 + 0.3 * math.log(10))


def test_the_median_moves_as_predicted_in_one_coordinate():
    g = torch.Generator().manual_seed(0)
    for eps in (0.05, 0.2):
        n = 200_000
        clean = torch.randn(round(n * (1 - eps)), 1, generator=g, dtype=torch.float64)
        x = torch.cat([clean, torch.full((n - len(clean), 1), 50.0, dtype=torch.float64)])
        assert float(robust.coordinate_median(x)) == pytest.approx(robust.median_shift(eps), abs=0.01)
    assert robust.median_shift(0.0) == 0.0
    assert robust.median_shift(0.01) == pytest.approx(math.sqrt(math.pi / 2) * 0.01, rel=0.02)  # ≈ 1.25 ε
    assert robust.median_shift(0.2) > 1.25 * 0.2  # it grows faster than linearly


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="eps must be in"):
        robust.median_shift(0.5)
    with pytest.raises(ValueError, match="eps must be in"):
        robust.strong_contamination_floor(-0.1)
    with pytest.raises(ValueError, match=r"eps must be in \[0, 0.5\), got 0.5"):
        robust.contaminated_gaussian(100, 2, 0.5)
    with pytest.raises(ValueError, match="eps must be in"):
        robust.filtered_mean(torch.randn(10, 2), -0.1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        robust.contaminated_gaussian(0, 2, 0.1)
    with pytest.raises(ValueError, match="d must be"):
        robust.contaminated_gaussian(10, 2.5, 0.1)
    with pytest.raises(ValueError, match="placement must be one of"):
        robust.contaminated_gaussian(10, 2, 0.1, placement="near")
    with pytest.raises(ValueError, match="distance"):
        robust.contaminated_gaussian(10, 2, 0.1, distance=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        robust.filtered_mean(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        robust.coordinate_median(torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match="2-D"):
        robust.sample_mean(torch.zeros(5))
    with pytest.raises(ValueError, match="at least 2 row"):
        robust.filter_mask(torch.zeros(1, 3), 0.1)
    with pytest.raises(ValueError, match="rule must be one of"):
        robust.filter_mask(torch.zeros(4, 3), 0.1, rule="median")
    with pytest.raises(ValueError, match="max_rounds"):
        robust.filter_mask(torch.zeros(4, 3), 0.1, max_rounds=0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        robust.tail_distance(0.0)
    with pytest.raises(ValueError, match="same shape"):
        robust.mean_error(torch.zeros(3), torch.zeros(2))


def test_tail_distance_is_where_the_chernoff_bound_equals_eps_not_the_quantile():
    # exp(−t²/2) = ε exactly; the true tail mass P(Z > t_ε) is smaller (0.036 at ε = 0.2, 0.0026 at 0.02)
    import statistics

    for eps, mass in ((0.02, 0.0026), (0.05, 0.0072), (0.1, 0.016), (0.2, 0.036)):
        t = robust.tail_distance(eps)
        assert math.exp(-t * t / 2) == pytest.approx(eps)
        tail = 1 - statistics.NormalDist().cdf(t)
        assert tail == pytest.approx(mass, abs=6e-4) and tail < eps


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_coordinate_median_equals_the_middle_of_the_sorted_columns(n):
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    s = x.sort(dim=0).values
    assert torch.equal(robust.coordinate_median(x), 0.5 * (s[(n - 1) // 2] + s[n // 2]))


def test_top_eigenvalue_of_clean_points_sits_at_the_marchenko_pastur_edge():
    x = torch.randn(4000, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    edge = (1 + math.sqrt(100 / 4000)) ** 2
    assert robust.top_eigenvalue(x) == pytest.approx(edge, abs=0.04)
    assert robust.top_eigenvalue(x + 5.0) == pytest.approx(robust.top_eigenvalue(x))  # centred at the mean
    spiked = x.clone()
    spiked[:, 0] *= 2.0  # variance 4 along one coordinate
    assert robust.top_eigenvalue(spiked) == pytest.approx(4.0, rel=0.1)
    with pytest.raises(ValueError, match="2-D"):
        robust.top_eigenvalue(torch.zeros(5))
    with pytest.raises(ValueError, match="at least 2 row"):
        robust.top_eigenvalue(torch.zeros(1, 3))


def test_tail_poisons_raise_the_variance_along_u_by_the_mixture_excess_and_no_more():
    eps = 0.2
    c = robust.contaminated_gaussian(N, D, eps, placement="tail", seed=1)
    spike = robust.poison_spike(c)
    t = robust.tail_distance(eps)
    assert spike.along_u_clean == pytest.approx(1.0, abs=0.05)
    assert spike.along_u_all - 1 == pytest.approx(eps * (t**2 - 1) - eps**2 * t**2, abs=0.05)
    assert spike.top_clean == pytest.approx((1 + math.sqrt(D / N)) ** 2, abs=0.05)
    # the spike stands out against the clean sample, yet stays below the filter's stopping level
    assert spike.top_clean + 0.15 < spike.top_all < robust.spectral_threshold(eps, N, D)
    far = robust.poison_spike(robust.contaminated_gaussian(N, D, eps, placement="far", seed=1))
    assert far.along_u_all > 100 and far.top_all == pytest.approx(far.along_u_all, rel=0.01)
    assert robust.poison_spike(c) == spike  # deterministic
    with pytest.raises(ValueError, match="Contaminated"):
        robust.poison_spike(c.x)
    only_poisons = robust.Contaminated(
        c.x[:3], torch.ones(3, dtype=torch.bool), c.true_mean, c.direction, eps, t, "tail"
    )
    with pytest.raises(ValueError, match="at least 2 clean"):
        robust.poison_spike(only_poisons)


@pytest.mark.parametrize("eps", ["0.1", True, float("nan")])
def test_eps_must_be_a_number_not_text_or_bool(eps):
    with pytest.raises(ValueError, match="^eps must be"):
        robust.median_shift(eps)


def test_mean_error_refuses_integer_and_non_finite_vectors():
    with pytest.raises(ValueError, match="^estimate must be a floating-point"):
        robust.mean_error(torch.tensor([1, 2]), torch.zeros(2))
    with pytest.raises(ValueError, match="^true_mean must hold finite"):
        robust.mean_error(torch.zeros(2), torch.tensor([0.0, float("inf")]))
