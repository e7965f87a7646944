"""Gradient matching (Witches' Brew): the poisons respect the budget, align the gradients, keep the
best restart, and are reproducible; bad inputs are refused by name."""

import functools

import poisonlab as pl
import pytest
import torch
from poisonlab import matching

SHAPE = (1, 6, 6)


@functools.cache
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    """300 noisy 6×6 images of three classes, each class around its own random pattern."""
    g = torch.Generator().manual_seed(0)
    means = torch.rand((3, *SHAPE), generator=g)
    y = torch.arange(300) % 3
    return (means[y] + 0.3 * torch.randn((300, *SHAPE), generator=g)).clamp(0, 1), y


@functools.cache
def _surrogate(name: str = "mlp", seed: int = 0) -> torch.nn.Module:
    """A tiny clean model trained on :func:`_data`, in eval mode (callers must not change it)."""
    kwargs = {"hidden": (16,)} if name == "mlp" else {"channels": (4, 8), "width": 16}
    model = pl.make(name, SHAPE, 3, seed=seed, **kwargs)
    pl.fit(model, *_data(), epochs=10, lr=0.1, batch_size=32, seed=seed, progress=False)
    return model.eval()


def _model(seed: int = 0) -> torch.nn.Module:
    return pl.make("mlp", SHAPE, 3, seed=seed, hidden=(16,)).eval()


def _problem(n: int = 6):
    """A target of class 0 to be read as class 2, and n bases of class 2 (two set to all 0 and all 1,
    where the clipping to the pixel range matters)."""
    x, y = _data()
    bases = x[y == 2][:n].clone()
    bases[0], bases[1] = 0.0, 1.0
    return x[0], 2, bases, torch.full((n,), 2, dtype=torch.long)


def test_poisons_stay_within_the_budget_and_the_pixel_range():
    target, adv, bases, labels = _problem()
    for augment in (False, True):
        poisons = matching.gradient_matching(
            _model(), target, adv, bases, labels, eps=0.05, steps=15, restarts=2, lr=0.05, augment=augment, max_shift=1
        )
        assert poisons.shape == bases.shape
        assert float((poisons - bases).abs().max()) <= 0.05 + 1e-6
        assert float(poisons.min()) >= 0.0 and float(poisons.max()) <= 1.0
        assert float((poisons - bases).abs().max()) > 0.04, "the budget is used, not left idle"


def test_crafting_raises_the_cosine_between_the_two_gradients():
    target, adv, bases, labels = _problem()
    for model in (_surrogate("mlp"), _surrogate("cnn"), [_surrogate("mlp", 1), _surrogate("cnn", 1)]):
        before = matching.gradient_alignment(model, target, adv, bases, labels)
        poisons = matching.gradient_matching(model, target, adv, bases, labels, eps=0.2, steps=40, seed=0)
        after = matching.gradient_alignment(model, target, adv, poisons, labels)
        assert after > before + 0.2, (before, after)


def test_restarts_keep_the_best_objective():
    model = _surrogate()
    target, adv, bases, labels = _problem()
    history = {}
    poisons = matching.gradient_matching(
        model, target, adv, bases, labels, eps=0.1, steps=3, restarts=4, seed=1, history=history
    )
    finals = history["restart_objective"]
    assert len(finals) == 4 and len(history["objective"]) == 4 * 3
    assert min(finals) < min(finals[0], finals[-1]), "the best restart is neither the first nor the last here"
    achieved = 1.0 - matching.gradient_alignment(model, target, adv, poisons, labels)
    assert achieved == pytest.approx(min(finals), abs=1e-5)
    one = matching.gradient_matching(model, target, adv, bases, labels, eps=0.1, steps=3, restarts=1, seed=1)
    assert achieved <= 1.0 - matching.gradient_alignment(model, target, adv, one, labels) + 1e-6


def test_deterministic_for_a_seed_without_touching_global_state_or_inputs():
    model = _model()
    model.train()
    weights = [p.detach().clone() for p in model.parameters()]
    target, adv, bases, labels = _problem()
    copies = (target.clone(), bases.clone(), labels.clone())
    torch.manual_seed(123)
    state = torch.get_rng_state()
    kwargs = {"eps": 0.1, "steps": 5, "restarts": 2, "augment": True, "max_shift": 1}  # the generator's two uses
    first = matching.gradient_matching(model, target, adv, bases, labels, seed=5, **kwargs)
    again = matching.gradient_matching(model, target, adv, bases, labels, seed=5, **kwargs)
    other = matching.gradient_matching(model, target, adv, bases, labels, seed=6, **kwargs)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was used"
    assert all(torch.equal(a, b) for a, b in zip((target, bases, labels), copies)), "an input was modified"
    assert model.training, "the model's mode is restored after crafting in eval mode"
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"steps": 0}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"lr": -1.0}, "lr"),
        ({"seed": 1.5}, "seed"),
        ({"augment": "yes"}, "augment"),
        ({"max_shift": 6}, "max_shift"),
        ({"adversarial_label": 3}, "adversarial_label"),
        ({"base_labels": torch.zeros(5, dtype=torch.long)}, "base_labels"),
        ({"base_labels": torch.full((6,), 7)}, "base_labels"),
        ({"bases": torch.full((6, *SHAPE), 1.5)}, "bases"),
        ({"bases": torch.rand(6, 36)}, "bases"),
        ({"target": torch.rand(1, 5, 5)}, "target"),
        ({"model": "cnn"}, "model"),
        ({"target": torch.full(SHAPE, float("nan"))}, "^target must hold finite numbers"),
        ({"bases": torch.full((6, *SHAPE), float("inf"))}, "^bases must hold finite numbers"),
        ({"adversarial_label": -1}, r"^adversarial_label must be in \[0, 3\)"),
        ({"adversarial_label": True}, "^adversarial_label must be an integer"),
    ],
)
def test_bad_inputs_are_refused_by_name(change, name):
    target, adv, bases, labels = _problem()
    args = {"model": _model(), "target": target, "adversarial_label": adv, "bases": bases, "base_labels": labels}
    args.update({k: v for k, v in change.items() if k in args})
    kwargs = {"eps": 0.1, "steps": 1, **{k: v for k, v in change.items() if k not in args}}
    with pytest.raises(ValueError, match=name):
        matching.gradient_matching(*args.values(), **kwargs)


def test_largest_gradient_bases_puts_a_mislabelled_example_first():
    model = _surrogate()
    x, y = _data()
    x, y = x[:10], y[:10].clone()
    y[4] = (y[4] + 1) % 3  # a wrong label: a large loss, and a large gradient
    chosen = matching.largest_gradient_bases(model, x, y, 3)
    assert chosen.shape == (3,) and int(chosen[0]) == 4
    with pytest.raises(ValueError, match="count"):
        matching.largest_gradient_bases(model, x, y, 11)
    assert torch.equal(matching.largest_gradient_bases(model, x.double(), y, 3), chosen)
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        matching.largest_gradient_bases(model, x / 0, y, 3)
    with pytest.raises(ValueError, match="^y must be < 3"):
        matching.largest_gradient_bases(model, x, y + 100, 3)


def test_substitute_replaces_the_bases_and_keeps_the_labels():
    x, y = torch.rand(8, *SHAPE), torch.arange(8) % 3
    x_copy = x.clone()
    index = torch.tensor([5, 1])
    poisons = torch.zeros(2, *SHAPE)
    poisoned = matching.substitute(x, y, index, poisons, target=2)
    assert torch.equal(poisoned.x[index], poisons) and torch.equal(poisoned.y, y)
    assert poisoned.is_poison.tolist() == [i in (1, 5) for i in range(8)]
    assert torch.equal(x, x_copy)
    with pytest.raises(ValueError, match="index"):
        matching.substitute(x, y, torch.tensor([1, 1]), poisons)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 3\), got 100"):
        matching.substitute(x, y, index, poisons, target=100)
    with pytest.raises(ValueError, match="^index must be a 1-D tensor of integer indices"):
        matching.substitute(x, y, index.double(), poisons)
    with pytest.raises(ValueError, match="^poisons must hold finite numbers"):
        matching.substitute(x, y, index, poisons / 0)


def test_float64_targets_and_bases_are_converted_to_the_models_dtype():
    target, adv, bases, labels = _problem()
    model = _model()
    a = matching.gradient_alignment(model, target, adv, bases, labels)
    assert matching.gradient_alignment(model, target.double(), adv, bases.double(), labels) == pytest.approx(a)
    poisons = matching.gradient_matching(model, target.double(), adv, bases.double(), labels, eps=0.1, steps=1)
    assert poisons.dtype == torch.float32
