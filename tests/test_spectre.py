"""SPECTRE (poisonlab.spectre): the filter's robust moments, QUE scores and their limits, and the
whitened score against the plain spectral signature on Gaussian classes whose poisons are known."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import detect, spectre

FAST = settings(max_examples=25, deadline=None)


def _class(frac=0.1, n_clean=400, d=8, shift=8.0, tight=0.5, spread=8.0, seed=0):
    """One class: genuine points N(0, I) except a spread of ``spread`` along axis 0 (their natural
    variation, larger than the poisons' offset), and poisons, a share ``frac`` of the class, at
    ``shift`` along axis 1 with standard deviation ``tight``."""
    g = torch.Generator().manual_seed(seed)
    n_poison = round(frac * n_clean / (1 - frac))
    clean = torch.randn(n_clean, d, generator=g, dtype=torch.float64)
    clean[:, 0] *= spread
    poison = tight * torch.randn(n_poison, d, generator=g, dtype=torch.float64)
    poison[:, 1] += shift
    reps = torch.cat([clean, poison])
    return reps, torch.zeros(len(reps), dtype=torch.long), torch.arange(len(reps)) >= n_clean


def _share(truth):
    return float(truth.double().mean())


@pytest.mark.parametrize("frac, tight", [(0.1, 0.5), (0.1, 1.0), (0.2, 0.3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_spectre_removes_the_poisons_that_the_genuine_spread_hides_from_the_plain_score(frac, tight, seed):
    reps, labels, truth = _class(frac=frac, tight=tight, seed=seed)
    eps = _share(truth)
    plain = detect.removal_recall(detect.spectral_scores(reps, labels), truth, eps)
    robust = detect.removal_recall(spectre.spectre_scores(reps, labels, eps, dims=8), truth, eps)
    assert plain < 0.1  # the top direction is the genuine spread
    assert robust > 0.95


def test_the_filter_removes_the_poisons_and_stays_within_its_budget():
    reps, _, truth = _class(frac=0.1, seed=3)
    eps = _share(truth)
    keep = spectre.covariance_filter(reps, eps, budget=2.0)
    assert int((~keep).sum()) <= math.ceil(2.0 * eps * len(reps))
    assert bool((~keep[truth]).all())  # every poison is gone
    mean, cov = spectre.robust_moments(reps, eps)
    clean = reps[~truth]
    assert float((mean - clean.mean(0)).norm()) < 0.5 < float((reps.mean(0) - clean.mean(0)).norm())
    assert float(cov[1, 1]) < 1.5 < float(reps[:, 1].var())  # the poisons' offset is not in it


def test_the_filter_leaves_a_gaussian_class_almost_whole():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2000, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    keep = spectre.covariance_filter(z, 0.1)
    assert int((~keep).sum()) <= 20


def test_the_filter_stops_at_its_budget_and_a_level_of_zero_budget_removes_nothing():
    reps, _, truth = _class(frac=0.1, seed=5)
    keep = spectre.covariance_filter(reps, 0.01, budget=1.0)
    assert int((~keep).sum()) <= math.ceil(0.01 * len(reps))
    keep = spectre.covariance_filter(reps, 0.1, level=1e9)  # everything counts as Gaussian
    assert bool(keep.all())


def test_whitening_with_the_true_clean_moments_makes_the_clean_points_isotropic():
    reps, _, truth = _class(frac=0.2, seed=6)
    clean = reps[~truth]
    cov = torch.cov(clean.T, correction=0)
    white = spectre.whiten(reps, clean.mean(0), cov)
    w = white[~truth]
    assert torch.allclose(torch.cov(w.T, correction=0), torch.eye(reps.shape[1], dtype=torch.float64), atol=1e-8)
    assert torch.allclose(w.mean(0), torch.zeros(reps.shape[1], dtype=torch.float64), atol=1e-10)


def test_scores_do_not_change_under_an_invertible_affine_map_of_the_features():
    reps, labels, truth = _class(frac=0.1, d=6, seed=7)
    g = torch.Generator().manual_seed(8)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64) + 3 * torch.eye(6, dtype=torch.float64)
    moved = reps @ a.T + torch.randn(6, generator=g, dtype=torch.float64) * 10
    eps = _share(truth)
    before = spectre.spectre_scores(reps, labels, eps, dims=6)
    after = spectre.spectre_scores(moved, labels, eps, dims=6)
    assert torch.allclose(before, after, rtol=1e-6, atol=1e-9)


def test_scores_are_float64_on_the_cpu_and_computed_class_by_class():
    reps, labels, truth = _class(frac=0.1, n_clean=150, d=5, seed=9)
    both = torch.cat([reps, reps.float() + 5.0]).float()
    labels2 = torch.cat([labels, labels + 1])
    scores = spectre.spectre_scores(both, labels2, 0.1, dims=5)
    assert scores.dtype == torch.float64 and scores.device.type == "cpu" and scores.shape == (len(both),)
    assert bool((scores >= 0).all())
    alone = spectre.spectre_scores(reps.float(), labels, 0.1, dims=5)
    assert torch.allclose(scores[: len(reps)], alone, rtol=1e-9)
    assert torch.allclose(scores[len(reps) :], alone, rtol=1e-4, atol=1e-6)  # the same class, shifted


def _excess_along_axis0(seed=2, n=500, k=4):
    g = torch.Generator().manual_seed(seed)
    white = torch.randn(n, k, generator=g, dtype=torch.float64)
    white[:, 0] *= 2.0
    return white - white.mean(0)


def test_alpha_zero_gives_the_squared_norm_and_alpha_infinity_the_top_direction():
    white = _excess_along_axis0()
    k = white.shape[1]
    assert torch.allclose(spectre.que_scores(white, alpha=0.0), white.pow(2).sum(1) / k)
    v = detect.top_direction(white)
    assert torch.allclose(spectre.que_scores(white, alpha=math.inf), (white @ v).pow(2))
    assert torch.allclose(spectre.que_scores(white, alpha=500.0), (white @ v).pow(2), rtol=1e-6, atol=1e-9)


def test_alpha_moves_the_weight_from_every_direction_to_the_excess_one():
    white = _excess_along_axis0()

    def corr(a, b):
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    top = white[:, 0].pow(2)
    c = [corr(spectre.que_scores(white, alpha=a), top) for a in (0.0, 1.0, 4.0, 16.0)]
    assert c == sorted(c) and c[0] < 0.95 and c[-1] > 0.99, c


def test_que_without_excess_variance_weighs_every_direction_alike():
    iso = torch.eye(4, dtype=torch.float64).repeat(2, 1) * 2**0.5
    iso = torch.cat([iso, -iso])  # mean 0, covariance exactly I
    assert torch.allclose(spectre.que_scores(iso), iso.pow(2).sum(1) / 4)


@FAST
@given(st.integers(0, 10_000), st.integers(1, 5), st.floats(0.0, 50.0))
def test_que_scores_are_blind_to_a_rotation_and_average_between_the_extreme_variances(seed, k, alpha):
    g = torch.Generator().manual_seed(seed)
    white = torch.randn(40, k, generator=g, dtype=torch.float64) * torch.rand(k, generator=g, dtype=torch.float64) * 3
    rotation, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    scores = spectre.que_scores(white, alpha=alpha)
    assert scores.dtype == torch.float64 and bool((scores >= 0).all())
    assert torch.allclose(spectre.que_scores(white @ rotation, alpha=alpha), scores, rtol=1e-7, atol=1e-9)
    second = white.T @ white / len(white)  # Q has trace 1, so the mean score is ⟨Q, second moment⟩
    values = torch.linalg.eigvalsh(second)
    assert float(values[0]) - 1e-9 <= float(scores.mean()) <= float(values[-1]) + 1e-9


def test_the_quadratic_direction_of_a_gaussian_has_variance_two():
    g = torch.Generator().manual_seed(11)
    white = torch.randn(20_000, 3, generator=g, dtype=torch.float64)
    lam, v = spectre.quadratic_direction(white)
    assert abs(lam - spectre.GAUSSIAN_QUADRATIC_VARIANCE) < 0.25
    assert torch.allclose(v, v.T) and abs(float(v.norm()) - 1) < 1e-9


def test_the_quadratic_direction_points_at_outliers():
    g = torch.Generator().manual_seed(12)
    white = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    white[:30, 2] += 8.0
    lam, v = spectre.quadratic_direction(white)
    assert lam > 10 and abs(float(v[2, 2])) > 0.9  # V ≈ ±e₂e₂ᵀ
    # the Gram-matrix route (more features than points) finds the same
    lam_small, v_small = spectre.quadratic_direction(white[:5])
    feats = white[:5]
    quad = torch.einsum("ni,ij,nj->n", feats, v_small, feats) - v_small.trace()
    assert abs(float(quad.pow(2).mean()) - lam_small) < 1e-9


def test_the_cut_removes_the_points_near_the_farthest_one_or_beyond_the_far_ones():
    d = torch.tensor([0.1, 0.5, 2.0, 5.0, 6.5])
    assert spectre.filter_cut(d, 0.1) == pytest.approx(3.5)  # within 3 of the farthest
    assert spectre.filter_cut(torch.tensor([0.1, 2.9]), 0.1) is None  # nothing farther than the slack
    far = 3 + 10 * math.log(10) + 1
    d = torch.tensor([0.1, 1.0, far, far + 40])
    assert spectre.filter_cut(d, 0.1) == pytest.approx(far - 3)  # from 3 below the nearest far one


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: spectre.spectre_scores([[1.0, 2.0]], torch.zeros(1, dtype=torch.long), 0.1), TypeError, "reps"),
        (
            lambda: spectre.spectre_scores(torch.full((50, 4), float("nan")), torch.zeros(50, dtype=torch.long), 0.1),
            ValueError,
            "reps",
        ),
        (
            lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(49, dtype=torch.long), 0.1),
            ValueError,
            "labels",
        ),
        (lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(50, dtype=torch.long), 0.0), ValueError, "eps"),
        (lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(50, dtype=torch.long), 1.0), ValueError, "eps"),
        (
            lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(50, dtype=torch.long), 0.1, dims=0),
            ValueError,
            "dims",
        ),
        (
            lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(50, dtype=torch.long), 0.1, alpha=-1.0),
            ValueError,
            "alpha",
        ),
        (
            lambda: spectre.spectre_scores(torch.randn(50, 4), torch.zeros(50, dtype=torch.long), 0.1, budget=0),
            ValueError,
            "budget",
        ),
        (
            lambda: spectre.spectre_scores(torch.randn(6, 8), torch.zeros(6, dtype=torch.long), 0.1),
            ValueError,
            "too small",
        ),
        (
            lambda: spectre.spectre_scores(torch.randn(50, 4, 2), torch.zeros(50, dtype=torch.long), 0.1),
            ValueError,
            "reps",
        ),
        (lambda: spectre.covariance_filter(torch.randn(4, 3), 0.1), ValueError, "z must have more rows"),
        (lambda: spectre.covariance_filter(torch.randn(40, 3), 0.1, level=0), ValueError, "level"),
        (lambda: spectre.que_scores(torch.randn(1, 2)), ValueError, "white"),
        (lambda: spectre.que_scores(torch.randn(10, 2), alpha=float("nan")), ValueError, "alpha"),
        (lambda: spectre.whiten(torch.randn(10, 2), torch.zeros(3), torch.eye(2)), ValueError, "mean"),
        (lambda: spectre.whiten(torch.randn(10, 2), torch.zeros(2), torch.zeros(2, 2)), ValueError, "cov"),
        (
            lambda: spectre.whiten(torch.randn(10, 2), torch.zeros(2), torch.diag(torch.tensor([1.0, 0.0]))),
            ValueError,
            "positive definite",
        ),
        (
            lambda: spectre.whiten(torch.randn(10, 2), torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
            ValueError,
            "symmetric",
        ),
        (lambda: spectre.principal_coordinates(torch.randn(10, 3), 0), ValueError, "dims"),
        (lambda: spectre.filter_cut(torch.tensor([]), 0.1), ValueError, "deviations"),
        (lambda: spectre.filter_cut(torch.tensor([1.0]), 0.1, shift=-1), ValueError, "shift"),
    ],
)
def test_bad_inputs_are_refused_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_singular_covariance_whitens_with_a_floor():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    white = spectre.whiten(z, torch.zeros(2), torch.diag(torch.tensor([1.0, 0.0])), rcond=1e-4)
    assert torch.allclose(white, torch.tensor([[1.0, 0.0], [0.0, 200.0]], dtype=torch.float64))
