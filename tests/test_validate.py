"""The package's input checks (poisonlab._validate), and seeds checked the same way everywhere."""

import numpy as np
import poisonlab as pl
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from poisonlab import _validate, collision, robust, spiked
from poisonlab.data import random_split
from poisonlab.triggers import Blend, Patch, backdoor

X = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.arange(30) % 3

#: Every call takes the seed as its one argument; each returns something comparable with torch.equal.
SEEDED = {
    "backdoor": lambda s: backdoor(X, Y, Patch(2), 0, rate=0.1, seed=s).x,
    "toy2d": lambda s: pl.toy2d(n_train=10, n_test=10, seed=s).x_train,
    "load": lambda s: pl.load("digits", seed=s).x_train,
    "make": lambda s: pl.make("mlp", (1, 8, 8), 3, seed=s).head.weight.detach(),
    "fit": lambda s: pl.fit(pl.make("logreg", (1, 8, 8), 3), X, Y, epochs=1, lr=0.1, seed=s, progress=False).loss,
    "Blend": lambda s: Blend("noise", seed=s)(X),
    "random_split": lambda s: random_split(X, Y, [5, 5], seed=s)[0][1],
    "contaminated_gaussian": lambda s: robust.contaminated_gaussian(50, 3, 0.1, seed=s).x,
    "spiked.sample": lambda s: spiked.sample(50, 5, 0.1, 2.0, seed=s).x,
}


def _same(a, b):
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.parametrize("name", SEEDED)
def test_integer_scalars_of_numpy_and_torch_are_seeds_like_ints(name):
    call = SEEDED[name]
    want = call(3)
    assert _same(call(np.int64(3)), want) and _same(call(torch.tensor(3)), want)


@pytest.mark.parametrize("name", SEEDED)
@pytest.mark.parametrize("bad", [None, 1.5, 2.0, True, -1, "0", 2**63])
def test_a_seed_that_is_not_an_integer_in_range_is_refused_by_name(name, bad):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        SEEDED[name](bad)


@given(st.integers(0, 2**63 - 1))
def test_seed_returns_the_int_it_was_given(value):
    assert _validate.seed(value) == value and type(_validate.seed(np.uint64(value))) is int


def test_generator_is_seeded_and_leaves_the_global_state_alone():
    before = torch.random.get_rng_state()
    a, b = _validate.generator(7), _validate.generator(np.int32(7))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_values_checked_at_the_door_are_the_values_kept_and_used():
    from poisonlab.linear import LinearLearner

    learner = LinearLearner(lam=torch.tensor(0.5), beta=3)
    assert type(learner.lam) is float and learner.lam == 0.5 and type(learner.beta) is float
    assert type(spiked.bbp_overlap(torch.tensor(2.0), 0.5)) is float
    with pytest.raises(ValueError, match="lam"):
        LinearLearner(lam=float("inf"))
    with pytest.raises(ValueError, match="theta"):
        spiked.bbp_overlap(float("nan"), 0.5)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: pl.make("cnn", (1, 8, 8), 3, width=0), "width"),
        (lambda: pl.make("cnn", (1, 8, 8), 3, channels=(8, 0)), "channels"),
        (lambda: pl.make("cnn", (1, 8, 8), 3, channels=(8,)), "channels"),
        (lambda: pl.make("mlp", (1, 8, 8), 3, hidden=(16, -4)), "hidden"),
    ],
)
def test_models_refuse_empty_or_negative_layers(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_ranges_are_compared_with_the_model_and_the_data(tiny_images):
    from poisonlab.bilevel import implicit_gradient
    from poisonlab.experiment import train_and_score
    from poisonlab.metrics import attack_success_rate

    x, y = tiny_images
    model = pl.make("logreg", (1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"target must be in \[0, 3\)"):
        attack_success_rate(model, x, y, Patch(2), 10)
    stray = y.clone()
    stray[0] = 10**6
    with pytest.raises(ValueError, match="class indices"):
        train_and_score((x, stray), x, y, epochs=1)
    with pytest.raises(ValueError, match="cg_iter"):
        implicit_gradient(torch.zeros(2), torch.zeros(1), lambda t, p: t.sum(), lambda t: t.sum(), cg_iter=0)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        pl.fit(model, x, y, epochs=1, lr=float("inf"))


NAN_IMAGE = torch.zeros(1, 1, 8, 8).index_put_((torch.tensor([0]),), torch.tensor(float("nan")))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: pl.Dataset("d", NAN_IMAGE.expand(2, 1, 8, 8), torch.tensor([0, 1]), X[:2], Y[:2] % 2, ("a", "b")),
            "x_train must hold finite numbers",
        ),
        (
            lambda: pl.Dataset("d", X[:2], Y[:2] % 2, torch.full((2, 1, 8, 8), float("inf")), Y[:2] % 2, ("a", "b")),
            "x_test must hold finite numbers",
        ),
        (lambda: Patch(2, pattern=torch.tensor([[0.5, float("nan")], [0.0, 1.0]])), "pattern must hold finite"),
        (lambda: Blend(torch.full((8, 8), float("nan"))), "pattern must hold finite"),
        (lambda: pl.triggers.Pixels(torch.full((8, 8), float("inf"))), "key must hold finite"),
    ],
    ids=["dataset-train", "dataset-test", "patch", "blend", "pixels"],
)
def test_nan_and_inf_are_refused_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("z", [0.0, -1.96, float("nan"), float("inf"), "1.96x"])
def test_wilson_interval_refuses_a_non_positive_or_non_finite_z(z):
    with pytest.raises(ValueError, match="z must be"):
        collision.wilson_interval(3, 10, z)


def test_shaped_like_names_the_argument_the_shape_and_its_origin():
    mask = torch.zeros(4, dtype=torch.bool)
    assert _validate.shaped_like("is_poison", mask, (4,)) is mask
    with pytest.raises(
        ValueError, match=r"is_poison must be a tensor of shape \(5,\) \(the same shape as labels\), got \(4,\)"
    ):
        _validate.shaped_like("is_poison", mask, torch.Size([5]), "labels")
    with pytest.raises(ValueError, match="got list"):
        _validate.shaped_like("is_poison", [0, 1], (2,))


@pytest.mark.parametrize(
    "call",
    [
        lambda: backdoor(X, Y, Patch(2), 1, count=2, source=1),
        lambda: pl.triggers.tact(X, Y, Patch(2), 1, source=1, count=2, cover=2),
        lambda: pl.triggers.adaptive_blend(X, Y, torch.rand(8, 8), 2, count=2, cover=2, source=2),
    ],
    ids=["backdoor", "tact", "adaptive_blend"],
)
def test_a_source_equal_to_the_target_is_refused_the_same_way_everywhere(call):
    with pytest.raises(ValueError, match="source and target must differ, both are"):
        call()
    _validate.distinct_classes(None, 1)
    _validate.distinct_classes(0, None)


@pytest.mark.parametrize(
    "call",
    [
        lambda: backdoor(X, Y, Patch(2), 0, 0.1),
        lambda: pl.triggers.tact(X, Y, Patch(2), 1, 0, 2, cover=2),
        lambda: pl.triggers.adaptive_blend(X, Y, torch.rand(8, 8), 2, 2, cover=2),
        lambda: pl.load("digits", 0),
    ],
    ids=["backdoor", "tact", "adaptive_blend", "load"],
)
def test_only_x_y_trigger_and_target_are_positional(call):
    with pytest.raises(TypeError, match="positional argument"):
        call()


def test_arch_names_the_architecture_and_the_old_keyword_still_works(tiny_images):
    from poisonlab import boundary, detect, experiment

    x, y = tiny_images
    new = experiment.train_and_score((x, y), x, y, arch="logreg", epochs=1, seed=0)
    old = experiment.train_and_score((x, y), x, y, model="logreg", epochs=1, seed=0)
    assert torch.equal(new.model.head.weight, old.model.head.weight)
    assert torch.equal(
        detect.early_gradient_scores(x, y, 0, arch="logreg"), detect.early_gradient_scores(x, y, 0, model="logreg")
    )
    with pytest.raises(ValueError, match="arch and its old name model disagree"):
        experiment.train_and_score((x, y), x, y, arch="mlp", model="logreg", epochs=1)
    toy = pl.toy2d(n_train=20, n_test=20)
    with pytest.raises(ValueError, match="arch must be one of"):
        boundary.gradient_poison(toy.x_train, toy.y_train, toy.x_test, toy.y_test, 0.1, arch="tree")
    ps = boundary.gradient_poison(toy.x_train, toy.y_train, toy.x_test, toy.y_test, 0.1, model="svm", steps=1)
    assert ps.info["arch"] == "svm"


def test_every_score_is_float64_and_lam_has_one_default(tiny_images):
    import inspect

    from poisonlab import boundary, detect, linear

    x, y = tiny_images
    reps = torch.rand(len(y), 5, dtype=torch.float32)
    assert detect.spectral_scores(reps, y).dtype == torch.float64
    net = pl.make("mlp", tuple(x.shape[1:]), int(y.max()) + 1, hidden=(8,))
    assert detect.gradient_scores(net, x, y).dtype == torch.float64
    assert detect.early_gradient_scores(x, y, 0, arch="logreg").dtype == torch.float64
    fpr, tpr = detect.roc_curve(torch.rand(10), torch.arange(10) < 3)
    assert fpr.dtype == tpr.dtype == torch.float64
    defaults = {
        f"{m.__name__}.{name}": p.default
        for m in (boundary, linear)
        for name, fn in vars(m).items()
        if callable(fn)
        for p in (inspect.signature(fn).parameters.values() if inspect.isfunction(fn) else ())
        if p.name == "lam" and p.default is not inspect.Parameter.empty
    }
    assert defaults and set(defaults.values()) == {1e-2}, defaults
    assert linear.LinearLearner("logistic").lam == 1e-2


def test_model_inputs_is_the_one_door_for_what_a_model_reads(tiny_images):
    from poisonlab import _validate

    x, y = tiny_images
    model = pl.make("logreg", (1, 8, 8), 3).double()
    got, labels = _validate.model_inputs(model, x, y=y.int())
    assert got.dtype == torch.float64 and labels.dtype == torch.int64
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module"):
        _validate.model_inputs("model", x)
    with pytest.raises(TypeError, match="^poisons must hold floating-point inputs"):
        _validate.model_inputs(model, (x * 255).to(torch.uint8), name="poisons")
    with pytest.raises(ValueError, match="^poisons must hold finite numbers"):
        _validate.model_inputs(model, x / 0, name="poisons")
    with pytest.raises(ValueError, match="^y_test must be < 3, the number of classes the model outputs"):
        _validate.model_inputs(model, x, y=y + 1, y_name="y_test")
    with pytest.raises(ValueError, match=r"^base_label must be in \[0, 3\), got 3"):
        _validate.model_inputs(model, x, classes={"base_label": 3})
    assert _validate.model_inputs(model, x[0], single=True)[0].shape == (1, 1, 8, 8)


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_integer_helpers_refuse_bool_float_and_text(bad):
    from poisonlab import _validate

    with pytest.raises(ValueError, match="^target must be an integer"):
        _validate.class_index("target", bad, 10)
    with pytest.raises(ValueError, match="^label must be an integer"):
        _validate.non_negative_class("label", bad)


def test_integer_helpers_accept_numpy_and_torch_integers():
    import numpy as np
    from poisonlab import _validate

    assert _validate.class_index("target", np.int64(3), 10) == 3
    assert _validate.class_index("target", torch.tensor(3), 10) == 3
    assert _validate.positive_int("n", np.int32(4)) == 4


def test_real_values_and_real_grid_read_generators_and_refuse_bools():
    from poisonlab import _validate

    assert _validate.real_values("v", (x for x in (1, 2.5))).tolist() == [1.0, 2.5]
    assert _validate.real_grid("g", ([a, a] for a in (0.1, 0.2))).shape == (2, 2)
    with pytest.raises(TypeError, match="^v must hold real numbers, got dtype torch.bool"):
        _validate.real_values("v", torch.tensor([True, False]))
    with pytest.raises(TypeError, match="^g must hold floating-point values, got dtype torch.int64"):
        _validate.real_grid("g", torch.ones(2, 2, dtype=torch.long))
