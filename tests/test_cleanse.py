"""Neural Cleanse (poisonlab.cleanse): stamping, the anomaly index, trigger reversal and unlearning."""

import pytest
import torch
from poisonlab import cleanse
from poisonlab.experiment import train_and_score
from poisonlab.metrics import accuracy, attack_success_rate
from poisonlab.triggers import Patch, backdoor


def test_stamp_mixes_image_and_pattern_by_the_mask():
    x = torch.zeros(2, 1, 3, 3)
    mask = torch.zeros(1, 3, 3)
    mask[0, 2, 2], mask[0, 0, 0] = 1.0, 0.25
    out = cleanse.stamp(x, mask, torch.ones(1, 3, 3))
    assert out.shape == x.shape
    assert float(out[0, 0, 2, 2]) == 1.0 and float(out[1, 0, 0, 0]) == 0.25 and float(out[0, 0, 1, 1]) == 0.0


def test_the_anomaly_index_is_the_robust_distance_below_the_median():
    norms = torch.tensor([10.0, 100.0, 90.0, 110.0, 95.0, 105.0])
    index = cleanse.anomaly_index(norms)
    median, mad = 97.5, 7.5  # |norms − 97.5| = 87.5, 2.5, 7.5, 12.5, 2.5, 7.5
    assert float(index[0]) == pytest.approx((median - 10.0) / (cleanse.MAD_SCALE * mad))
    assert float(index[0]) > 2 and bool((index[1:] < 2).all()) and float(index[1]) < 0  # above the median: negative
    assert index.dtype == torch.float64


@pytest.mark.parametrize(
    "norms, error",
    [
        (torch.tensor([1.0, 2.0]), "K >= 3"),
        (torch.ones(5), "deviation of 0"),
        (torch.tensor([1.0, float("nan"), 3.0]), "norms"),
        (torch.ones(2, 3), "1-D"),
    ],
)
def test_bad_norms_are_refused(norms, error):
    with pytest.raises(ValueError, match=error):
        cleanse.anomaly_index(norms)


@pytest.mark.parametrize(
    "norms", [torch.tensor([1, 5, 6, 7], dtype=torch.uint8), torch.tensor([True, False, True]), [1.0, 2.0, 3.0]]
)
def test_norms_that_are_not_float_tensors_are_refused(norms):
    with pytest.raises(TypeError, match="norms"):
        cleanse.anomaly_index(norms)


class Corner(torch.nn.Module):
    """A 3-class model with a built-in backdoor: class 0 wins when the bottom-right pixel is bright,
    otherwise class 1 for dark images and class 2 for bright ones."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        corner, mean = x[:, 0, -1, -1], x.mean((1, 2, 3))
        return self.scale * torch.stack([corner - 0.5, 0.5 - mean, mean - 0.5], 1)


@pytest.fixture
def images():
    """Half dark (class 1), half bright (class 2), every bottom-right pixel black."""
    x = torch.rand(64, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5
    x[32:] += 0.5
    x[..., -1, -1] = 0.0
    return x


def test_the_backdoored_class_needs_the_smallest_mask_and_it_sits_on_the_trigger(images):
    model = Corner()
    before = [p.clone() for p in model.parameters()]
    found = cleanse.reverse_triggers(model, images, steps=150, lr=0.1, lam=0.01, batch_size=32, progress=False)
    assert found.classes.tolist() == [0, 1, 2]
    assert found.masks.shape == (3, 1, 6, 6) and found.patterns.shape == (3, 1, 6, 6)
    assert bool(((found.masks >= 0) & (found.masks <= 1)).all())
    assert int(found.norms.argmin()) == 0
    assert float(found.masks[0, 0, -1, -1]) > 0.5 and float(found.norms[0]) < 3  # one pixel's worth
    assert float(found.success[0]) == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad for p in model.parameters()) and model.training  # left as found
    again = cleanse.reverse_triggers(model, images, steps=150, lr=0.1, lam=0.01, batch_size=32, progress=False)
    assert torch.equal(again.masks, found.masks)  # deterministic for a seed
    assert found.trace.shape == (150, 3) and torch.allclose(found.trace[-1], found.norms)


def test_the_search_stops_once_the_masks_settle(images):
    full = cleanse.reverse_triggers(Corner(), images, steps=400, lam=0.01, batch_size=32, progress=False)
    early = cleanse.reverse_triggers(Corner(), images, steps=400, lam=0.01, batch_size=32, tol=0.01, progress=False)
    assert full.trace.shape[0] == 400 and 20 < early.trace.shape[0] < 400
    last = early.trace[-1]
    assert float(((last - early.trace[-21]).abs() / last).max()) <= 0.01  # settled over the window
    assert int(early.norms.argmin()) == 0 and torch.equal(early.trace[-1], early.norms)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"steps": 0}, "steps"),
        ({"lr": 0}, "lr"),
        ({"lam": -1}, "lam"),
        ({"classes": [3]}, "classes"),
        ({"classes": [0, 0]}, "classes"),
        ({"batch_size": 0}, "batch_size"),
        ({"tol": -0.1}, "tol"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_reversal_settings_are_refused(images, kwargs, error):
    with pytest.raises(ValueError, match=error):
        cleanse.reverse_triggers(Corner(), images, progress=False, **kwargs)


@pytest.mark.parametrize("model", [None, "cnn", 3])
def test_reversal_needs_a_model(images, model):
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module"):
        cleanse.reverse_triggers(model, images, progress=False)


def test_reversal_refuses_classes_that_are_not_a_list(images):
    with pytest.raises(TypeError, match="^classes must be a list"):
        cleanse.reverse_triggers(Corner(), images, classes=0, progress=False)


def test_float64_images_are_read_in_the_models_dtype(images):
    settings = dict(steps=5, lam=0.01, batch_size=16, progress=False)
    found64 = cleanse.reverse_triggers(Corner(), images.double(), **settings)
    found32 = cleanse.reverse_triggers(Corner(), images, **settings)
    assert torch.equal(found64.norms, found32.norms)


def test_reversal_needs_finite_images():
    with pytest.raises(ValueError, match="x"):
        cleanse.reverse_triggers(Corner(), torch.rand(4, 6, 6), progress=False)
    with pytest.raises(ValueError, match="x"):
        cleanse.reverse_triggers(Corner(), torch.full((4, 1, 6, 6), float("nan")), progress=False)


def test_neural_cleanse_finds_and_unlearns_a_real_backdoor(mnist5k):
    """A CNN backdoored on 2,000 MNIST digits (3×3 patch, target 0): the reversed triggers single out
    class 0, and unlearning with its reversed trigger ends the backdoor at little cost in accuracy.
    (On the 8×8 ``digits`` the search finds no trigger smaller than any class's natural change.)"""
    trigger, x, y = Patch(3), mnist5k.x_train[:2000], mnist5k.y_train[:2000]
    poisoned = backdoor(x, y, trigger, 0, rate=0.05, seed=0)
    run = train_and_score(poisoned, mnist5k.x_test, mnist5k.y_test, epochs=8, lr=0.05, seed=0)
    others = mnist5k.y_test != 0
    x_src, y_src = mnist5k.x_test[others], mnist5k.y_test[others]
    assert attack_success_rate(run.model, x_src, y_src, trigger, 0) > 0.5
    found = cleanse.reverse_triggers(run.model, mnist5k.x_test[:100], steps=100, batch_size=32, progress=False)
    index = cleanse.anomaly_index(found.norms)
    assert int(index.argmax()) == 0 and float(index[0]) > 2
    fixed = cleanse.unlearn(run.model, x, y, found.masks[0], found.patterns[0], epochs=2)
    assert fixed is not run.model
    assert attack_success_rate(fixed, x_src, y_src, trigger, 0) < 0.1
    assert accuracy(fixed, mnist5k.x_test, mnist5k.y_test) > run.clean_accuracy - 0.03
    kept = cleanse.unlearn(run.model, x[:400], y[:400], found.masks[0], found.patterns[0], keep_clean=True, epochs=10)
    assert attack_success_rate(kept, x_src, y_src, trigger, 0) < 0.1
    assert accuracy(kept, mnist5k.x_test, mnist5k.y_test) > run.clean_accuracy - 0.03
    with pytest.raises(ValueError, match="share"):
        cleanse.unlearn(run.model, x, y, found.masks[0], found.patterns[0], share=0)
    with pytest.raises(ValueError, match="mask"):
        cleanse.unlearn(run.model, x, y, torch.zeros(1, 3, 3), found.patterns[0])


@pytest.mark.parametrize(
    "mask, pattern, error",
    [
        (torch.full((1, 3, 3), 2.0), torch.ones(1, 3, 3), "mask must lie in"),
        (torch.zeros(3, 3), torch.ones(1, 3, 3), "mask must be a tensor of shape"),
        (torch.zeros(1, 3, 3), torch.ones(2, 3, 3), "pattern must be a tensor of shape"),
        (torch.zeros(1, 3, 3, dtype=torch.uint8), torch.ones(1, 3, 3), "floating-point"),
        (torch.zeros(1, 3, 3), torch.full((1, 3, 3), float("nan")), "pattern must hold finite"),
    ],
)
def test_stamp_refuses_triggers_that_do_not_fit(mask, pattern, error):
    with pytest.raises(ValueError, match=error):
        cleanse.stamp(torch.zeros(2, 1, 3, 3), mask, pattern)
    with pytest.raises(ValueError, match="x"):
        cleanse.stamp(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), torch.ones(1, 3, 3))


@pytest.mark.parametrize("keep_clean", [False, True])
def test_unlearning_stamps_a_share_and_keeps_the_labels(monkeypatch, keep_clean):
    """What unlearn fine-tunes on: ``share`` of the images stamped, with their own labels, either in
    place of the clean originals or added to them."""
    seen = {}
    monkeypatch.setattr(cleanse, "fit", lambda model, x, y, **kw: seen.update(x=x, y=y))
    x, y = torch.rand(10, 1, 4, 4) * 0.5, torch.arange(10) % 3
    mask, pattern = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    mask[0, 0, 0] = 1.0  # stamps one pixel to 1, which no clean image has
    cleanse.unlearn(torch.nn.Linear(16, 3), x, y, mask, pattern, share=0.3, keep_clean=keep_clean)
    stamped = seen["x"][:, 0, 0, 0] == 1
    assert int(stamped.sum()) == 3
    if keep_clean:
        assert len(seen["x"]) == 13 and torch.equal(seen["x"][:10], x) and torch.equal(seen["y"][:10], y)
        assert bool(stamped[10:].all())  # the copies carry the trigger, each with its original's label
        for image, label in zip(seen["x"][10:], seen["y"][10:]):
            same = [i for i in range(10) if torch.equal(x[i].flatten()[1:], image.flatten()[1:])]
            assert len(same) == 1 and int(y[same[0]]) == int(label)
    else:
        assert len(seen["x"]) == 10 and torch.equal(seen["y"], y)
        assert torch.equal(seen["x"][~stamped], x[~stamped])


def test_unlearning_refuses_a_keep_clean_that_is_not_a_bool():
    x, y = torch.rand(4, 1, 3, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="keep_clean"):
        cleanse.unlearn(torch.nn.Linear(9, 2), x, y, torch.zeros(1, 3, 3), torch.ones(1, 3, 3), keep_clean="yes")
