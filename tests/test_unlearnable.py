"""Unlearnable examples (poisonlab.unlearnable): the noises stay in their budget, error-minimising
noise makes a fresh victim worse than random noise of the same budget, and the defences undo it."""

import pytest
import torch
from poisonlab import models, train
from poisonlab import unlearnable as ul
from poisonlab.metrics import accuracy


@pytest.fixture(scope="module")
def digits():
    import poisonlab as pl

    return pl.load("digits")


def _victim(d, x, y, *, x_test=None, epochs=6):
    net = models.make("cnn", d.input_shape, d.num_classes, seed=0)
    train.fit(net, x, y, epochs=epochs, lr=0.05, batch_size=64, schedule="cosine", seed=0)
    return accuracy(net, d.x_test if x_test is None else x_test, d.y_test)


def test_random_classwise_noise_is_one_sign_pattern_per_class():
    x, y = torch.rand(30, 1, 4, 4), torch.arange(30) % 3
    delta = ul.random_noise(x, y, 0.1, seed=1)
    assert delta.shape == x.shape
    assert torch.allclose(delta.abs(), torch.full_like(delta, 0.1))
    for c in range(3):
        assert (delta[y == c] == delta[y == c][0]).all()
    assert not torch.equal(delta[0], delta[1])
    assert torch.equal(delta, ul.random_noise(x, y, 0.1, seed=1))
    samplewise = ul.random_noise(x, y, 0.1, classwise=False, seed=1)
    assert not torch.equal(samplewise[0], samplewise[3])  # same class, other pattern


def test_poisoned_set_stays_in_the_budget_and_the_image_range():
    x, y = torch.rand(20, 1, 5, 5), torch.arange(20) % 2
    p = ul.poisoned(x, y, ul.random_noise(x, y, 0.3))
    assert p.x.min() >= 0 and p.x.max() <= 1
    assert (p.x - x).abs().max() <= 0.3 + 1e-6
    assert p.is_poison.all() and p.target is None and torch.equal(p.y, y)


def test_error_minimizing_noise_beats_random_noise_of_the_same_budget(mnist5k):
    d, eps = mnist5k, 0.1
    x, y = d.x_train[:1500], d.y_train[:1500]
    crafted = ul.error_minimizing_noise(x, y, eps, classwise=True, batch_size=64)
    assert crafted.delta.shape == x.shape and crafted.delta.abs().max() <= eps + 1e-6
    assert crafted.train_accuracy[-1] >= 0.99 and crafted.rounds == len(crafted.train_accuracy)
    poisoned = ul.poisoned(x, y, crafted.delta).x
    em = _victim(d, poisoned, y)
    rand = _victim(d, ul.poisoned(x, y, ul.random_noise(x, y, eps)).x, y)
    assert em < rand - 0.2, (em, rand)
    # squeezing to 1 bit, training and test images alike, gives most of the accuracy back
    squeezed = _victim(d, ul.squeeze(poisoned), y, x_test=ul.squeeze(d.x_test))
    assert squeezed > em + 0.2, (squeezed, em)


@pytest.mark.parametrize("classwise", [True, False])
def test_crafting_sees_only_images_in_range_and_keeps_the_budget(monkeypatch, classwise):
    # black-and-white images, where x + δ leaves [0, 1] at once unless every step clamps it
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(48, 1, 6, 6, generator=g) > 0.5).float(), torch.arange(48) % 3
    seen = []
    make = models.make

    def spied(*args, **kwargs):  # the crafting model, recording the range of every batch it is given
        net = make(*args, **kwargs)
        net.register_forward_pre_hook(lambda _, inputs: seen.append((float(inputs[0].min()), float(inputs[0].max()))))
        return net

    monkeypatch.setattr(ul.models, "make", spied)
    crafted = ul.error_minimizing_noise(x, y, 0.3, classwise=classwise, rounds=3, train_steps=2, stop_accuracy=1.0)
    assert seen and min(lo for lo, _ in seen) >= 0 and max(hi for _, hi in seen) <= 1
    assert crafted.delta.abs().max() <= 0.3 + 1e-6
    assert ((x + crafted.delta) >= 0).all() and ((x + crafted.delta) <= 1).all()
    assert crafted.delta.abs().max() > 0  # the noise moved


def test_classwise_noise_is_the_mean_of_its_images_steps():
    # grey images that no step can push out of [0, 1]: the pattern is shared by a class's images
    x, y = torch.full((40, 1, 5, 5), 0.5), torch.arange(40) % 4
    crafted = ul.error_minimizing_noise(x, y, 0.2, classwise=True, rounds=2, train_steps=1, stop_accuracy=1.0)
    for c in range(4):
        assert torch.allclose(crafted.delta[y == c], crafted.delta[y == c][0].expand_as(crafted.delta[y == c]))
    assert crafted.delta.abs().max() <= 0.2 + 1e-6


def test_samplewise_noise_lowers_the_crafting_loss():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 6, 6, generator=g), torch.arange(64) % 4  # random labels: nothing to learn
    crafted = ul.error_minimizing_noise(x, y, 0.2, classwise=False, rounds=4, train_steps=5, stop_accuracy=1.0)
    assert crafted.delta.abs().max() <= 0.2 + 1e-6
    assert ((x + crafted.delta) >= 0).all() and ((x + crafted.delta) <= 1 + 1e-6).all()
    assert crafted.train_accuracy[-1] > crafted.train_accuracy[0]  # the noise makes labels learnable
    assert crafted.train_accuracy[-1] > 0.6


def test_squeeze_erases_small_noise_on_black_and_white_pixels():
    x = (torch.rand(8, 1, 5, 5) > 0.5).float()
    noise = ul.random_noise(x, torch.arange(8) % 2, 0.3, classwise=False)
    assert torch.equal(ul.squeeze((x + noise).clamp(0, 1)), x)
    levels = ul.squeeze(torch.rand(4, 1, 5, 5), bits=2) * 3
    assert torch.equal(levels, levels.round())


def test_pgd_example_raises_the_loss_within_the_budget(digits):
    d = digits
    net = models.make("logreg", d.input_shape, d.num_classes, seed=0)
    train.fit(net, d.x_train, d.y_train, epochs=2, lr=0.1, seed=0)
    x, y = d.x_test[:200], d.y_test[:200]
    xa = ul.pgd_example(net, x, y, 0.1, steps=3)
    assert (xa - x).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert loss(net(xa), y) > loss(net(x), y) + 0.1


def test_adversarial_fit_trains_in_place(digits):
    d = digits
    net = models.make("logreg", d.input_shape, d.num_classes, seed=0)
    h = ul.adversarial_fit(net, d.x_train, d.y_train, eps=0.1, steps=1, epochs=2, lr=0.1)
    assert h.epochs == 2 and h.loss[1] < h.loss[0]
    assert accuracy(net, d.x_test, d.y_test) > 0.8


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"eps": 0.1, "rounds": 0}, "rounds"),
        ({"eps": 0.1, "stop_accuracy": 1.2}, "stop_accuracy"),
        ({"eps": 0.1, "step_size": -1.0}, "step_size"),
        ({"eps": 0.1, "arch": "resnet"}, "name"),
        ({"eps": 0.1, "noise_steps": 0}, "noise_steps"),
        ({"eps": 0.1, "craft_share": 0.0}, "craft_share"),
        ({"eps": 0.1, "craft_share": 0.5, "classwise": False}, "craft_share"),
    ],
)
def test_bad_crafting_arguments_are_refused(kwargs, error):
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])
    eps = kwargs.pop("eps")
    with pytest.raises(ValueError, match=error):
        ul.error_minimizing_noise(x, y, eps, **kwargs)


def test_bad_inputs_are_refused():
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="x"):
        ul.random_noise(torch.rand(4, 16), y, 0.1)
    with pytest.raises(ValueError, match="y"):
        ul.random_noise(x, torch.tensor([0, 1]), 0.1)
    with pytest.raises(ValueError, match="delta"):
        ul.poisoned(x, y, torch.zeros(4, 1, 4, 3))
    with pytest.raises(ValueError, match="bits"):
        ul.squeeze(x, bits=0)
    with pytest.raises(ValueError, match="x"):
        ul.squeeze(torch.tensor([[float("nan")]] * 2).view(1, 1, 2, 1))
