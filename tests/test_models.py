import poisonlab as pl
import pytest
import torch


@pytest.mark.parametrize("name, feature_dim", [("logreg", 784), ("mlp", 128), ("cnn", 64)])
def test_models_split_into_features_and_head(name, feature_dim):
    model = pl.make(name, (1, 28, 28), 10)
    x = torch.rand(5, 1, 28, 28)
    z = model.features(x)
    assert z.shape == (5, feature_dim) and model.feature_dim == feature_dim
    assert torch.allclose(model(x), model.head(z))


def test_cnn_handles_small_and_colour_images():
    assert pl.make("cnn", (1, 8, 8), 10)(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert pl.make("cnn", (3, 32, 32), 10)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert pl.make("cnn", (1, 7, 9), 3)(torch.rand(2, 1, 7, 9)).shape == (2, 3)


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_every_pixel_reaches_the_output_including_the_bottom_right_corner(name):
    # A CNN without padding never sees the last rows and columns: a corner trigger then fails.
    model = pl.make(name, (1, 28, 28), 10, seed=1)
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    model(x).sum().backward()
    assert float(x.grad[0, 0, -1, -1].abs()) > 0
    assert float(x.grad[0, 0, -3:, -3:].abs().min()) > 0


def test_cnn_pools_before_its_relu_with_the_values_and_gradients_of_the_usual_order():
    # ReLU commutes with max-pooling; the CNN applies it after the pool to save time. Its outputs
    # and weight gradients equal those of the textbook conv → ReLU → pool, images with flat
    # (tied) backgrounds included.
    model = pl.make("cnn", (1, 28, 28), 10, seed=2)
    conv1, _, _, conv2, *_ = model.conv
    x = torch.rand(6, 1, 28, 28) * (torch.rand(6, 1, 28, 28) > 0.7)

    def usual(x):
        pool = torch.nn.functional.max_pool2d
        h = pool(torch.relu(conv1(x)), 2, ceil_mode=True)
        h = pool(torch.relu(conv2(h)), 2, ceil_mode=True)
        return model.head(model.dense(h.flatten(1)))

    grads = []
    for forward in (model, usual):
        model.zero_grad()
        out = forward(x)
        torch.nn.functional.cross_entropy(out, torch.arange(6)).backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grad_a), (out_b, grad_b) = grads
    assert torch.allclose(out_a, out_b, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grad_a, grad_b))


def test_initialisation_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = pl.make("cnn", (1, 28, 28), 10, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = pl.make("cnn", (1, 28, 28), 10, seed=4)
    c = pl.make("cnn", (1, 28, 28), 10, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_make_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'logreg', 'mlp', 'cnn'"):
        pl.make("resnet152", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="num_classes"):
        pl.make("mlp", (1, 28, 28), 1)
    with pytest.raises(ValueError, match="input_shape"):
        pl.make("mlp", (0, 28), 10)
    with pytest.raises(ValueError, match="C, H, W"):
        pl.make("cnn", (784,), 10)


@pytest.mark.parametrize("cls", [pl.models.LogisticRegression, pl.models.MLP, pl.models.SmallCNN])
def test_model_classes_refuse_negative_and_non_integer_sizes_naming_the_argument(cls):
    for bad in ((1, -8, 8), (1, 8, float("nan")), ("a", "b", "c")):
        with pytest.raises(ValueError, match="^input_shape must be"):
            cls(bad, 10)
    for bad in (None, 8):
        with pytest.raises(TypeError, match="^input_shape must be a tuple of positive integers"):
            cls(bad, 10)
    for bad in (-1, 1, None, "3", 2.5, True):
        with pytest.raises(ValueError, match="^num_classes must be an integer >= 2"):
            cls((1, 8, 8), bad)


def test_mlp_refuses_a_bare_integer_and_zero_as_hidden_widths():
    with pytest.raises(TypeError, match=r"^hidden must be a tuple of positive integers \(the widths"):
        pl.models.MLP((1, 8, 8), 10, hidden=3)  # once read as (3,) without a word
    with pytest.raises(ValueError, match="^hidden must be >= 1, got 0"):
        pl.models.MLP((1, 8, 8), 10, hidden=(0,))
    assert pl.models.MLP((1, 8, 8), 10, hidden=(3,)).feature_dim == 3


def test_small_cnn_names_input_shape_and_channels():
    with pytest.raises(ValueError, match=r"^input_shape must have 3 entries \(C, H, W\)"):
        pl.models.SmallCNN((8, 8), 10)
    with pytest.raises(ValueError, match=r"^input_shape must have 3 entries"):
        pl.make("cnn", (1, 8, 8, 1), 10)
    with pytest.raises(TypeError, match=r"^channels must be a tuple of positive integers"):
        pl.models.SmallCNN((1, 8, 8), 10, channels=4)
