import poisonlab as pl
import pytest
import torch
from poisonlab import metrics


def test_small_cnn_learns_mnist5k_above_90_percent(mnist5k):
    model = pl.make("cnn", mnist5k.input_shape, 10, seed=0)
    history = pl.fit(model, mnist5k.x_train, mnist5k.y_train, epochs=3, lr=0.05, seed=0, progress=False)
    assert history.loss[-1] < history.loss[0]
    assert metrics.accuracy(model, mnist5k.x_test, mnist5k.y_test) > 0.90


def test_logistic_regression_learns_digits(digits):
    model = pl.make("logreg", digits.input_shape, 10)
    pl.fit(model, digits.x_train, digits.y_train, epochs=20, lr=0.1, progress=False)
    assert metrics.accuracy(model, digits.x_test, digits.y_test) > 0.90


def test_fit_is_bit_for_bit_deterministic_on_cpu(digits):
    def run(seed):
        model = pl.make("cnn", digits.input_shape, 10, seed=0)
        pl.fit(model, digits.x_train, digits.y_train, epochs=2, lr=0.05, seed=seed, progress=False, device="cpu")
        return [p.detach().clone() for p in model.parameters()]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))


def test_fit_records_callback_metrics_and_weight_decay_shrinks_weights(digits):
    def test_acc(epoch, model):
        return {"test_accuracy": metrics.accuracy(model, digits.x_test, digits.y_test)}

    norms = []
    for wd in (0.0, 0.05):
        model = pl.make("logreg", digits.input_shape, 10)
        h = pl.fit(
            model,
            digits.x_train,
            digits.y_train,
            epochs=3,
            lr=0.1,
            weight_decay=wd,
            callback=test_acc,
            progress=False,
            optimizer="adam" if wd else "sgd",
        )
        assert h.epochs == 3 and len(h.metrics["test_accuracy"]) == 3 and h.seconds > 0
        norms.append(float(model.head.weight.detach().norm()))
    model = pl.make("logreg", digits.input_shape, 10)
    pl.fit(model, digits.x_train, digits.y_train, epochs=3, lr=0.1, weight_decay=0.5, progress=False)
    assert float(model.head.weight.detach().norm()) < norms[0]


def test_progress_bar_is_shown_unless_disabled(digits, capsys):
    model = pl.make("logreg", digits.input_shape, 10)
    pl.fit(model, digits.x_train[:64], digits.y_train[:64], epochs=2, lr=0.1, progress=True)
    assert "training" in capsys.readouterr().err
    pl.fit(model, digits.x_train[:64], digits.y_train[:64], epochs=2, lr=0.1, progress=False)
    assert capsys.readouterr().err == ""
    pl.fit(model, digits.x_train[:64], digits.y_train[:64], epochs=2, lr=0.1)  # quiet by default, as elsewhere
    assert capsys.readouterr().err == ""


def test_predict_logits_and_embed_shapes(tiny_images):
    x, _ = tiny_images
    model = pl.make("mlp", (1, 8, 8), 3, hidden=(16,))
    model.train()
    assert pl.train.logits(model, x, batch_size=5).shape == (12, 3)
    pred = pl.predict(model, x)
    assert pred.shape == (12,) and pred.dtype == torch.int64
    assert pl.train.embed(model, x).shape == (12, 16)
    assert model.training, "prediction must not change the model's mode"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"momentum": 1.0}, "momentum"),
        ({"schedule": "step"}, "schedule"),
    ],
)
def test_fit_rejects_bad_hyperparameters(tiny_images, kwargs, match):
    x, y = tiny_images
    model = pl.make("logreg", (1, 8, 8), 3)
    args = {"epochs": 1, "lr": 0.1, "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        pl.fit(model, x, y, **args)


def test_fit_rejects_bad_data(tiny_images):
    x, y = tiny_images
    model = pl.make("logreg", (1, 8, 8), 3)
    with pytest.raises(ValueError, match="12 entries"):
        pl.fit(model, x, y[:5], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="integer class labels"):
        pl.fit(model, x, y.float(), epochs=1, lr=0.1)
    with pytest.raises(TypeError, match="^x must hold floating-point inputs"):
        pl.fit(model, (x * 255).to(torch.uint8), y, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="^y must be < 3, the number of classes the model outputs"):
        pl.fit(model, x, torch.full((12,), 109), epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="^device must name a torch device"):
        pl.fit(model, x, y, epochs=1, lr=0.1, device="bogus")


@pytest.mark.parametrize("fn", [pl.predict, pl.train.logits, pl.train.embed])
def test_prediction_refuses_integer_and_non_finite_inputs_and_converts_float64(tiny_images, fn):
    x, _ = tiny_images
    model = pl.make("mlp", (1, 8, 8), 3, hidden=(4,))
    for dtype in (torch.uint8, torch.int64, torch.bool):
        with pytest.raises(TypeError, match="^x must hold floating-point inputs"):
            fn(model, x.to(dtype))
    for bad in (float("nan"), float("inf")):
        z = x.clone()
        z[3, 0, 1, 1] = bad
        with pytest.raises(ValueError, match="^x must hold finite numbers"):
            fn(model, z)
    assert torch.equal(fn(model, x.double()), fn(model, x))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("cosine", 0.1, 20, 10), "^step must be <= total_steps"),
        (("cosine", 0.1, -5, 10), "^step must be >= 0"),
        (("cosine", 0.1, True, 10), "^step must be an integer"),
        (("cosine", 0.1, 2.5, 10), "^step must be an integer"),
        (("cosine", 0.1, 2, 0), "^total_steps must be >= 1"),
        (("cosine", 0.1, 2, False), "^total_steps must be an integer"),
        (("constant", float("nan"), 2, 10), "^lr must be a finite number"),
        (("constant", float("inf"), 2, 10), "^lr must be a finite number"),
        (("constant", True, 2, 10), "^lr must be a number"),
    ],
)
def test_learning_rate_refuses_a_step_past_the_end_and_bad_numbers(args, match):
    with pytest.raises(ValueError, match=match):
        pl.train.learning_rate(*args)


def test_notebook_progress_line_updates_one_display_in_place(monkeypatch):
    import IPython.display
    from poisonlab.progress import _NotebookLine

    shown = []

    class Handle:
        def update(self, obj, raw):
            shown.append(("update", obj["text/plain"]))

    def display(obj, raw, display_id):
        shown.append(("display", obj["text/plain"]))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    line = _NotebookLine()
    line.write("\rtraining:  50%| 1/2")
    line.write("\rtraining: 100%| 2/2")
    line.write("\n")
    assert shown == [("display", "training:  50%| 1/2"), ("update", "training: 100%| 2/2")]


def test_default_device_is_an_available_device():
    dev = pl.train.default_device()
    assert dev.type in {"cpu", "cuda", "mps"}
    if dev.type == "cpu":
        assert not torch.cuda.is_available()


def test_track_yields_every_item_and_shows_a_bar(capsys):
    from poisonlab.progress import track

    assert list(track(range(3), desc="budgets")) == [0, 1, 2]
    assert "budgets" in capsys.readouterr().err


def test_cosine_schedule_anneals_the_learning_rate_to_zero(tiny_images):
    lr = pl.train.learning_rate
    assert lr("cosine", 0.1, 0, 10) == 0.1 and abs(lr("cosine", 0.1, 5, 10) - 0.05) < 1e-12
    assert abs(lr("cosine", 0.1, 10, 10)) < 1e-12 and lr("constant", 0.1, 7, 10) == 0.1
    x, y = tiny_images
    models = []
    for schedule in ("cosine", "cosine", "constant"):
        model = pl.make("logreg", (1, 8, 8), 3, seed=0)
        pl.fit(model, x, y, epochs=3, lr=0.5, batch_size=4, schedule=schedule, progress=False)
        models.append(list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(models[0], models[1]))
    assert not all(torch.equal(a, b) for a, b in zip(models[0], models[2]))


def test_fit_converts_labels_and_inputs_to_what_the_model_reads(tiny_images):
    x, y = tiny_images
    want = pl.fit(pl.make("cnn", (1, 8, 8), 3, seed=0), x, y, epochs=2, lr=0.05, progress=False).loss
    for xs, ys in ((x.double(), y), (x, y.int()), (x, y.to(torch.uint8))):
        assert pl.fit(pl.make("cnn", (1, 8, 8), 3, seed=0), xs, ys, epochs=2, lr=0.05, progress=False).loss == want
    model = pl.make("cnn", (1, 8, 8), 3, seed=0)
    assert torch.equal(pl.predict(model, x.double()), pl.predict(model, x))


def test_fit_refuses_data_the_model_cannot_learn(tiny_images):
    x, y = tiny_images
    with pytest.raises(ValueError, match="finite"):
        nan = x.index_put((torch.tensor([0]),), torch.tensor(float("nan")))  # one image of NaN pixels
        pl.fit(pl.make("cnn", (1, 8, 8), 3), nan, y, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="y must be < 2"):
        pl.fit(pl.make("cnn", (1, 8, 8), 2), x, y, epochs=1, lr=0.1)  # labels up to 2 for a 2-class model
    with pytest.raises(ValueError, match=r"cannot read inputs of shape \(1, 8, 8\)"):
        pl.fit(pl.make("mlp", (1, 28, 28), 3), x, y, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match=r"cannot read inputs of shape \(1, 8, 8\)"):
        pl.predict(pl.make("mlp", (1, 28, 28), 3), x)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"loss": "abc"}, "^loss must be a list"),
        ({"loss": [1.0, "x"]}, "^loss must be a number"),
        ({"train_accuracy": [True]}, "^train_accuracy must be a number"),
        ({"metrics": [1, 2]}, "^metrics must be a dict"),
        ({"metrics": {"asr": [0.1, None]}}, r"^metrics\['asr'\] must be a number"),
        ({"seconds": -1.0}, "^seconds must be a finite number >= 0"),
        ({"seconds": float("inf")}, "^seconds must be a finite number >= 0"),
        ({"seconds": True}, "^seconds must be a number"),
    ],
)
def test_history_checks_its_fields(fields, match):
    assert pl.train.History(loss=[1.0, float("nan")]).epochs == 2  # a diverging run is recorded as it went
    with pytest.raises(ValueError, match=match):
        pl.train.History(**fields)


def test_fit_progress_must_be_true_or_false(tiny_images):
    x, y = tiny_images
    with pytest.raises(ValueError, match="^progress must be True or False"):
        pl.fit(pl.make("logreg", (1, 8, 8), 3), x, y, epochs=1, lr=0.1, progress="yes")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"loss": [1.0, -0.5]}, r"^loss must hold values >= 0 \(or NaN for a diverged epoch\), got -0.5 at epoch 2"),
        ({"train_accuracy": [0.5, float("nan")]}, r"^train_accuracy must hold fractions in \[0, 1\], got nan"),
        ({"train_accuracy": [-1.0]}, r"^train_accuracy must hold fractions in \[0, 1\], got -1.0"),
        ({"train_accuracy": [1.5]}, r"^train_accuracy must hold fractions in \[0, 1\]"),
    ],
)
def test_history_refuses_negative_losses_and_accuracies_outside_0_1(fields, match):
    with pytest.raises(ValueError, match=match):
        pl.train.History(**fields)


def test_fit_refuses_a_callback_that_is_not_a_function_or_returns_no_dict():
    model = pl.make("logreg", (1, 4, 4), 2)
    x, y = torch.rand(8, 1, 4, 4), torch.arange(8) % 2
    with pytest.raises(TypeError, match="^callback must be a function callback\\(epoch, model\\) or None, got 'f'"):
        pl.fit(model, x, y, epochs=1, lr=0.1, callback="f")
    with pytest.raises(TypeError, match="^callback must return a dict \\{name: value\\} or None, got 5"):
        pl.fit(model, x, y, epochs=1, lr=0.1, callback=lambda epoch, m: 5)
