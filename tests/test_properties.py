"""Property-based tests (Hypothesis) of the input checks and of the package's key invariants:
what the checks let through and refuse, poisoned sets consistent with what they claim, metrics in
[0, 1], spectral scores blind to a shift of the features. Counts from rates and triggers that
change only their mask's pixels are checked in test_poison.py and test_triggers.py."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import _validate, detect, models
from poisonlab.metrics import attack_success_rate
from poisonlab.poison import count_for_rate
from poisonlab.triggers import Blend, Patch, adaptive_blend, backdoor, tact

FAST = settings(max_examples=30, deadline=None)
#: for the examples that build a model or a poisoned set
SLOW = settings(max_examples=12, deadline=None)
numbers = st.floats(allow_nan=True, allow_infinity=True)


def _images(seed: int, n: int = 24, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, k, (n,), generator=g)


# -- the checks ---------------------------------------------------------------------------------


@FAST
@given(numbers, st.booleans())
def test_fraction_keeps_exactly_the_values_in_its_interval(v, closed):
    inside = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if inside:
        assert _validate.fraction("rate", v, closed=closed) == v
    else:
        with pytest.raises(ValueError, match="rate must be"):
            _validate.fraction("rate", v, closed=closed)


@FAST
@given(numbers, st.booleans(), st.booleans())
def test_positive_float_keeps_exactly_the_positive_finite_values(v, allow_zero, allow_inf):
    ok = (v >= 0 if allow_zero else v > 0) and not math.isnan(v) and (allow_inf or not math.isinf(v))
    if ok:
        assert _validate.positive_float("lr", v, allow_zero=allow_zero, allow_inf=allow_inf) == v
    else:
        with pytest.raises(ValueError, match="lr must be"):
            _validate.positive_float("lr", v, allow_zero=allow_zero, allow_inf=allow_inf)


@FAST
@given(st.one_of(st.integers(-5, 10**6), st.floats(-5, 50), st.booleans(), st.text(max_size=3)), st.booleans())
def test_positive_int_keeps_integers_at_or_above_its_floor_and_nothing_else(v, allow_zero):
    integral = not isinstance(v, (bool, str)) and float(v).is_integer()
    if integral and v >= (0 if allow_zero else 1):
        assert _validate.positive_int("steps", v, allow_zero=allow_zero) == int(v)
    else:
        with pytest.raises(ValueError, match="steps must be"):
            _validate.positive_int("steps", v, allow_zero=allow_zero)


@FAST
@given(st.lists(st.sampled_from([0.0, 0.5, float("nan"), float("inf"), -float("inf")]), min_size=1, max_size=20))
def test_finite_refuses_any_nan_or_inf_and_counts_them(values):
    x = torch.tensor(values)
    bad = sum(not math.isfinite(v) for v in values)
    if bad:
        with pytest.raises(ValueError, match=f"x must hold finite numbers, got {bad} NaN or infinite"):
            _validate.finite("x", x)
    else:
        assert _validate.finite("x", x) is x


@FAST
@given(
    st.sampled_from([torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]),
    st.lists(st.integers(0, 100), max_size=30),
)
def test_labels_of_any_integer_dtype_are_read_as_the_same_int64_values(dtype, values):
    y = torch.tensor(values, dtype=dtype)
    out = _validate.labels("y", y)
    assert out.dtype == torch.int64 and out.tolist() == values


@FAST
@given(st.lists(st.integers(0, 4), max_size=3), st.lists(st.integers(0, 4), max_size=3))
def test_shaped_like_accepts_exactly_the_shape_asked_for(shape, wanted):
    t = torch.zeros(shape)
    if list(shape) == list(wanted):
        assert _validate.shaped_like("is_poison", t, tuple(wanted)) is t
    else:
        with pytest.raises(ValueError, match="is_poison must be a tensor of shape"):
            _validate.shaped_like("is_poison", t, tuple(wanted))


# -- poisoned sets say what they did --------------------------------------------------------------


@SLOW
@given(st.integers(0, 2**16), st.floats(0.0, 0.6), st.integers(0, 2), st.booleans())
def test_backdoor_marks_exactly_the_replaced_images_as_poisons(seed, rate, target, blend):
    x, y = _images(seed)
    trigger = Blend(alpha=0.3, seed=seed) if blend else Patch(2)
    eligible = int((y != target).sum())
    n = count_for_rate(rate, len(y))
    if n > eligible:
        with pytest.raises(ValueError, match="eligible"):
            backdoor(x, y, trigger, target, rate=rate, num_classes=3, seed=seed)
        return
    before = x.clone()
    ps = backdoor(x, y, trigger, target, rate=rate, num_classes=3, seed=seed)
    assert torch.equal(x, before)  # the input is not mutated
    p = ps.is_poison
    assert int(p.sum()) == n
    assert torch.equal(ps.x[~p], x[~p]) and torch.equal(ps.y[~p], y[~p])  # the rest untouched
    assert bool((ps.y[p] == target).all()) and bool((y[p] != target).all())  # relabelled from another class
    assert torch.equal(ps.x[p], trigger(x[p]))  # stamped with the trigger


@SLOW
@given(st.integers(0, 2**16), st.integers(0, 4), st.integers(0, 6), st.booleans())
def test_cover_attacks_relabel_the_poisons_and_leave_the_covers_labels(seed, count, cover, adaptive):
    x, y = _images(seed, n=60)
    source, target = 1, 0
    have = int((y == source).sum())
    if count > have:
        return
    if adaptive:
        ps = adaptive_blend(x, y, torch.rand(6, 6), target, count=count, cover=cover, source=source, seed=seed)
    else:
        ps = tact(x, y, Patch(2), target, source=source, count=count, cover=cover, seed=seed)
    p, c = ps.is_poison, ps.info["cover"]
    assert int(p.sum()) == count and int(c.sum()) == cover and not bool((p & c).any())
    assert bool((y[p] == source).all()) and bool((ps.y[p] == target).all())
    assert torch.equal(ps.y[c], y[c]) and bool((y[c] != target).all())
    untouched = ~p & ~c
    assert torch.equal(ps.x[untouched], x[untouched]) and torch.equal(ps.y[untouched], y[untouched])


# -- metrics in [0, 1] ---------------------------------------------------------------------------


@SLOW
@given(st.integers(0, 2**16), st.integers(0, 2), st.sampled_from(["logreg", "mlp"]))
def test_attack_success_rate_is_a_share_in_0_1(seed, target, arch):
    x, y = _images(seed)
    model = models.make(arch, (1, 6, 6), 3, seed=seed)
    asr = attack_success_rate(model, x, y, Patch(2), target)
    assert 0.0 <= asr <= 1.0
    assert 0.0 <= attack_success_rate(model, x, y, Patch(2), None) <= 1.0


@FAST
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.booleans()), min_size=2, max_size=40))
def test_auc_is_in_0_1_and_flipping_the_scores_flips_it(points):
    scores = torch.tensor([s for s, _ in points], dtype=torch.float64)
    truth = torch.tensor([t for _, t in points])
    if bool(truth.all()) or not bool(truth.any()):
        with pytest.raises(ValueError, match="at least one poison and one clean"):
            detect.roc_auc(scores, truth)
        return
    auc = detect.roc_auc(scores, truth)
    assert 0.0 <= auc <= 1.0
    assert detect.roc_auc(-scores, truth) == pytest.approx(1.0 - auc, abs=1e-12)  # ties count half both ways
    fpr, tpr = detect.roc_curve(scores, truth)
    assert bool(((fpr >= 0) & (fpr <= 1) & (tpr >= 0) & (tpr <= 1)).all())


# -- spectral scores ------------------------------------------------------------------------------


@FAST
@given(st.integers(0, 2**16), st.lists(st.floats(-100, 100), min_size=4, max_size=4), st.floats(0.1, 10))
def test_spectral_scores_ignore_a_shift_of_the_features_and_scale_with_their_square(seed, shift, scale):
    g = torch.Generator().manual_seed(seed)
    reps = torch.randn(30, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(30) % 2
    scores = detect.spectral_scores(reps, labels)
    assert scores.dtype == torch.float64 and bool((scores >= 0).all())
    shifted = detect.spectral_scores(reps + torch.tensor(shift, dtype=torch.float64), labels)
    assert torch.allclose(shifted, scores, rtol=1e-6, atol=1e-9)
    assert torch.allclose(detect.spectral_scores(scale * reps, labels), scale**2 * scores, rtol=1e-6, atol=1e-9)


@FAST
@given(
    st.lists(st.tuples(st.integers(-50, 50), st.booleans()), min_size=2, max_size=30).filter(
        lambda pts: len({t for _, t in pts}) == 2
    ),
    st.floats(-100, 100),
    st.floats(0.01, 100),
)
def test_auc_refuses_integer_scores_and_ignores_an_increasing_affine_map_of_float_ones(points, shift, scale):
    counts = torch.tensor([s for s, _ in points])
    truth = torch.tensor([t for _, t in points])
    with pytest.raises(TypeError, match="^scores must be floating-point scores"):
        detect.roc_auc(counts, truth)  # counts are ranked only once the caller converts them
    scores = counts.double()
    auc = detect.roc_auc(scores, truth)
    assert 0.0 <= auc <= 1.0
    assert detect.roc_auc(shift + scale * scores, truth) == pytest.approx(auc, abs=1e-12)
