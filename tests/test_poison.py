import pytest
import torch
from poisonlab import PoisonedSet


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
    with pytest.raises(ValueError, match="y must have 12"):
        PoisonedSet(x, y[:3], mask)
    with pytest.raises(ValueError, match="x_poison"):
        PoisonedSet.append(x, y, torch.ones(3, 1, 4, 4), torch.tensor([0, 0, 0]))
