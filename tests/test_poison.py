from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from poisonlab import PoisonedSet
from poisonlab.poison import count_for_rate


def test_append_marks_added_points_as_poisons(tiny_images):
    x, y = tiny_images
    ps = PoisonedSet.append(x, y, torch.ones(3, 1, 8, 8), torch.tensor([2, 2, 2]), target=2, attack="demo")
    assert len(ps) == 15 and ps.n_poison == 3 and ps.n_clean == 12
    assert ps.poison_fraction == pytest.approx(3 / 15)
    assert ps.is_poison.tolist() == [False] * 12 + [True] * 3
    xc, yc = ps.clean()
    assert torch.equal(xc, x) and torch.equal(yc, y)
    xp, yp = ps.poisons()
    assert torch.equal(yp, torch.tensor([2, 2, 2])) and ps.info["attack"] == "demo"
    assert "3 poisons" in repr(ps)


def test_without_removes_flagged_points(tiny_images):
    x, y = tiny_images
    ps = PoisonedSet.append(x, y, torch.ones(3, 1, 8, 8), torch.tensor([0, 0, 0]), target=0)
    kept = ps.without(ps.is_poison)
    assert kept.n_poison == 0 and len(kept) == 12 and kept.target == 0
    with pytest.raises(ValueError, match="remove"):
        ps.without(torch.zeros(3, dtype=torch.bool))


def test_poisoned_set_validates_its_fields(tiny_images):
    x, y = tiny_images
    mask = torch.zeros(12, dtype=torch.bool)
    with pytest.raises(ValueError, match="is_poison"):
        PoisonedSet(x, y, mask.long())
    with pytest.raises(ValueError, match="is_poison"):
        PoisonedSet(x, y, mask[:4])
    with pytest.raises(ValueError, match="target"):
        PoisonedSet(x, y, mask, target=-1)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 3\), got 100"):
        PoisonedSet(x, y, mask, target=100)
    with pytest.raises(ValueError, match="^target must be an integer"):
        PoisonedSet(x, y, mask, target=True)
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        PoisonedSet(x / 0, y, mask)
    with pytest.raises(ValueError, match="y must have 12"):
        PoisonedSet(x, y[:3], mask)
    with pytest.raises(ValueError, match="x_poison"):
        PoisonedSet.append(x, y, torch.ones(3, 1, 4, 4), torch.tensor([0, 0, 0]))


percent = st.integers(0, 100)


@given(percent, st.integers(0, 10_000))
def test_count_for_rate_floors_the_exact_product_whatever_floating_point_does(p, n):
    rate = p / 100  # 0.29 and friends, which are not exact in binary
    exact = Fraction(p, 100) * n
    assert count_for_rate(rate, n) == exact.numerator // exact.denominator
    assert count_for_rate(rate, n, rounding="ceil") == -(-exact.numerator // exact.denominator)
    assert abs(count_for_rate(rate, n, rounding="nearest") - exact) <= Fraction(1, 2)


@given(st.floats(0, 1), st.integers(0, 10_000), st.sampled_from(["floor", "nearest", "ceil"]))
def test_count_for_rate_stays_between_zero_and_n_and_orders_its_roundings(rate, n, rounding):
    count = count_for_rate(rate, n, rounding=rounding)
    assert 0 <= count <= n
    assert count_for_rate(rate, n) <= count <= count_for_rate(rate, n, rounding="ceil")


def test_count_for_rate_rejects_bad_inputs():
    with pytest.raises(ValueError, match="rate"):
        count_for_rate(1.5, 10)
    with pytest.raises(ValueError, match="rate"):
        count_for_rate(float("nan"), 10)
    with pytest.raises(ValueError, match="n"):
        count_for_rate(0.1, -1)
    with pytest.raises(ValueError, match="rounding"):
        count_for_rate(0.1, 10, rounding="up")


def test_backdoor_and_the_budgets_count_poisons_the_same_way(tiny_images):
    from poisonlab.boundary import n_poisons
    from poisonlab.triggers import Patch, backdoor

    x = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(100) % 3
    assert backdoor(x, y, Patch(2), 0, rate=0.29).n_poison == 29 == n_poisons(100, 0.29)
