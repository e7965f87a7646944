import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import detect
from poisonlab.experiment import mean_sd, per_run, signature_run, train_and_score
from poisonlab.triggers import Patch, backdoor

FAST_PROPERTY = settings(max_examples=50, deadline=None)


def test_badnets_reaches_high_asr_at_five_percent_and_keeps_clean_accuracy(mnist5k):
    d = mnist5k
    trigger = Patch(3)
    clean = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, trigger, 0, epochs=6, lr=0.05)
    poisoned = train_and_score(
        backdoor(d.x_train, d.y_train, trigger, 0, rate=0.05), d.x_test, d.y_test, trigger, 0, epochs=6, lr=0.05
    )
    assert clean.attack_success_rate < 0.05  # a clean model ignores the patch
    assert poisoned.attack_success_rate >= 0.97
    assert abs(poisoned.clean_accuracy - clean.clean_accuracy) <= 0.02 and clean.clean_accuracy > 0.9


def test_per_epoch_records_both_numbers_after_every_epoch(mnist5k):
    d = mnist5k
    ps = backdoor(d.x_train, d.y_train, Patch(3), 0, rate=0.05)
    s = train_and_score(ps, d.x_test, d.y_test, Patch(3), 0, arch="logreg", epochs=3, lr=0.1, per_epoch=True)
    assert len(s.history.metrics["clean_accuracy"]) == 3 and len(s.history.metrics["attack_success_rate"]) == 3
    assert s.history.metrics["attack_success_rate"][-1] == s.attack_success_rate


def test_same_seed_same_result_and_no_trigger_means_no_asr(mnist5k):
    d = mnist5k
    a = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, arch="logreg", epochs=1, lr=0.1, seed=3)
    b = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, arch="logreg", epochs=1, lr=0.1, seed=3)
    assert a.clean_accuracy == b.clean_accuracy and math.isnan(a.attack_success_rate)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_train_and_score_rejects_bad_input(mnist5k):
    d = mnist5k
    with pytest.raises(ValueError):
        train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, arch="resnet50")
    with pytest.raises(ValueError):
        train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, epochs=0)
    x_nan = d.x_test[:20].clone()
    x_nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^x_test must hold finite numbers"):
        train_and_score((d.x_train[:50], d.y_train[:50]), x_nan, d.y_test[:20], epochs=1)
    with pytest.raises(TypeError, match="^x_test must hold floating-point inputs"):
        train_and_score((d.x_train[:50], d.y_train[:50]), (d.x_test[:20] * 255).byte(), d.y_test[:20], epochs=1)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 10\)"):
        train_and_score((d.x_train[:50], d.y_train[:50]), d.x_test[:20], d.y_test[:20], Patch(3), 10, epochs=1)


def test_watch_records_the_loss_of_each_group_after_every_epoch(mnist5k):
    d = mnist5k
    ps = backdoor(d.x_train, d.y_train, Patch(3), 0, rate=0.05)
    xp, yp = ps.poisons()
    s = train_and_score(
        ps,
        d.x_test,
        d.y_test,
        Patch(3),
        0,
        arch="logreg",
        epochs=2,
        lr=0.1,
        per_epoch=True,
        watch={"poisons": (xp, yp), "clean": (ps.x[~ps.is_poison], ps.y[~ps.is_poison])},
    )
    assert len(s.history.metrics["loss poisons"]) == 2 and len(s.history.metrics["loss clean"]) == 2
    assert all(v >= 0 for v in s.history.metrics["loss poisons"])
    with pytest.raises(ValueError, match="per_epoch"):
        train_and_score(ps, d.x_test, d.y_test, Patch(3), 0, arch="logreg", epochs=1, watch={"p": (xp, yp)})


def test_mean_losses_matches_cross_entropy_and_rejects_empty_groups():
    from poisonlab.experiment import mean_losses

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    want = float(torch.nn.functional.cross_entropy(model(x), y))
    assert math.isclose(mean_losses(model, {"a": (x, y)})["a"], want, rel_tol=1e-5)
    with pytest.raises(ValueError, match="at least one"):
        mean_losses(model, {"empty": (x[:0], y[:0])})
    with pytest.raises(ValueError, match=r"^groups\['bad'\] y must have 5 entries"):
        mean_losses(model, {"bad": (x, y[:2])})


def test_spread_summarises_runs_and_rejects_nothing_or_nan():
    from poisonlab.experiment import spread

    s = spread([0.9, 1.0, 0.8])
    assert math.isclose(s.mean, 0.9) and math.isclose(s.sd, 0.1) and (s.lo, s.hi, s.n) == (0.8, 1.0, 3)
    assert spread([0.5]).sd == 0.0
    assert f"{s:.0%}" == "90% (range 80%–100%, 3 runs)"
    with pytest.raises(ValueError, match="at least one"):
        spread([])
    with pytest.raises(ValueError, match="NaN"):
        spread([0.1, float("nan")])
    with pytest.raises(ValueError, match="^values must be finite"):
        spread([0.1, float("inf")])


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"lo": 0.9, "hi": 0.1}, "^lo must be <= hi"),
        ({"mean": 2.0}, r"^mean must lie in \[lo, hi\]"),
        ({"sd": -0.1}, "^sd must be"),
        ({"mean": float("nan")}, "^mean must be a finite number"),
        ({"hi": float("inf")}, "^hi must be a finite number"),
        ({"lo": True}, "^lo must be a number"),
        ({"n": 0}, "^n must be >= 1"),
        ({"n": 2.5}, "^n must be an integer"),
        ({"n": True}, "^n must be an integer"),
        ({"lo": -1.0}, r"^sd must lie in \[0.8, 0.9798\] for 3 runs spanning \[lo, hi\] = \[-1.0, 0.6\], got 0.1"),
        ({"sd": 0.5}, r"^sd must lie in \[0.1, 0.1225\] for 3 runs"),
        ({"n": 1}, r"^lo, hi and sd must describe one run"),
    ],
)
def test_spread_refuses_fields_that_cannot_describe_runs(fields, match):
    from poisonlab.experiment import Spread

    good = {"mean": 0.5, "sd": 0.1, "lo": 0.4, "hi": 0.6, "n": 3}
    assert Spread(**good).n == 3
    with pytest.raises(ValueError, match=match):
        Spread(**(good | fields))


def test_epoch_spread_averages_runs_and_leaves_out_masked_epochs():
    from poisonlab.experiment import epoch_spread
    from poisonlab.train import History

    a, b = History(), History()
    a.metrics = {"asr": [1.0, 0.2, 0.9], "ca": [0.1, 0.8, 0.9]}
    b.metrics = {"asr": [1.0, 0.4, 1.0], "ca": [0.1, 0.3, 0.9]}
    mean, lo, hi = epoch_spread([a, b], "asr", mask_key="ca", mask_below=0.5)
    assert math.isnan(mean[0]) and math.isnan(lo[0])  # every run masked: a model answering one class
    assert mean[1] == 0.2 and (lo[1], hi[1]) == (0.2, 0.2)  # only the run with CA ≥ 50% counts
    assert math.isclose(mean[2], 0.95) and (lo[2], hi[2]) == (0.9, 1.0)
    assert epoch_spread([a, b], "asr")[0][0] == 1.0
    with pytest.raises(ValueError, match="together"):
        epoch_spread([a], "asr", mask_key="ca")
    with pytest.raises(ValueError, match="no per-epoch"):
        epoch_spread([a], "loss")
    with pytest.raises(ValueError, match="at least one"):
        epoch_spread([], "asr")
    b.metrics = {"asr": [1.0], "ca": [0.1]}
    with pytest.raises(ValueError, match="different numbers"):
        epoch_spread([a, b], "asr")


def test_first_epoch_is_one_based_and_none_when_never_reached():
    from poisonlab.experiment import first_epoch

    assert first_epoch([0.1, 0.5, 0.9, 0.95], lambda v: v >= 0.9) == 3
    assert first_epoch([0.1, 0.5], lambda v: v >= 0.9) is None
    assert first_epoch([], lambda v: True) is None
    with pytest.raises(ValueError, match="test must be a function"):
        first_epoch([0.1], 0.9)


def test_first_epoch_at_needs_every_metric_at_its_threshold_in_the_same_epoch():
    from poisonlab.experiment import first_epoch_at
    from poisonlab.train import History

    h = History()
    # epoch 1: ASR 100% from a model that answers 0 to everything (CA 10%); it does not count
    h.metrics = {"clean_accuracy": [0.1, 0.6, 0.9, 0.95], "attack_success_rate": [1.0, 0.5, 0.92, 0.99]}
    assert first_epoch_at(h, {"attack_success_rate": 0.9}) == 1
    assert first_epoch_at(h, {"clean_accuracy": 0.5, "attack_success_rate": 0.9}) == 3
    assert first_epoch_at(h, {"clean_accuracy": 0.8}) == 3
    assert first_epoch_at(h, {"clean_accuracy": 0.6}) == 2  # the threshold itself counts
    assert first_epoch_at(h, {"clean_accuracy": 0.99}) is None
    with pytest.raises(ValueError, match="no per-epoch"):
        first_epoch_at(h, {"loss poisons": 0.1})
    with pytest.raises(ValueError, match="at least one metric"):
        first_epoch_at(h, {})


def tiny_backdoor(seed=0):
    """90 clean 1×8×8 images of 3 classes, class 1 brighter in its top half."""
    g = torch.Generator().manual_seed(seed)
    x, y = 0.5 * torch.rand(90, 1, 8, 8, generator=g), torch.arange(90) % 3
    x[y == 1, :, :4] += 0.4  # something to learn
    return x, y


def test_signature_run_trains_scores_and_watches_the_signatures():
    x, y = tiny_backdoor()
    trigger = Patch(3, pattern="white")
    ps = backdoor(x, y, trigger, 0, count=6, source=2, seed=1)
    run = signature_run(ps, x[:30], y[:30], trigger, 2, arch="mlp", epochs=2, lr=0.1, batch_size=16, per_epoch=True)
    assert run["set"] is ps and run["seed"] == 0 and not run["model"].training
    assert 0 <= run["ca"] <= 1 and 0 <= run["asr"] <= 1
    assert run["reps"].shape == (90, 128) and run["input"].shape == run["representation"].shape == (90,)
    assert torch.equal(run["input"], detect.spectral_scores(ps.x.flatten(1), ps.y))
    assert len(run["per_epoch"]["representation"]) == len(run["per_epoch"]["gradient"]) == 2
    t = ps.y == 0
    last = detect.signature_aucs(run["model"], ps.x[t], ps.y[t], ps.is_poison[t])
    assert run["per_epoch"]["representation"][-1] == last["representation"]  # scored after the last epoch
    again = signature_run(ps, x[:30], y[:30], trigger, 2, arch="mlp", epochs=2, lr=0.1, batch_size=16)
    assert torch.equal(again["representation"], run["representation"])  # same seed, same run
    assert "representation" not in again["per_epoch"]
    with pytest.raises(ValueError, match="target"):
        signature_run(backdoor(x, y, trigger, None, count=6), x, y, trigger, 2, arch="mlp", epochs=1)
    with pytest.raises(ValueError, match="source"):
        signature_run(ps, x[y != 2], y[y != 2], trigger, 2, arch="mlp", epochs=1)
    stray = y[:30].clone()
    stray[0] = 109
    with pytest.raises(ValueError, match="^y_test must be < 3, the number of classes the model outputs"):
        signature_run(ps, x[:30], stray, trigger, 2, arch="mlp", epochs=1)
    with pytest.raises(ValueError, match="^x_test must hold finite numbers"):
        signature_run(ps, x[:30] / 0, y[:30], trigger, 2, arch="mlp", epochs=1)


def test_mean_sd_formats_the_mean_and_the_sample_sd():
    assert mean_sd([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert mean_sd([0.5, 0.7], ".0%") == "60% ± 14%"
    with pytest.raises(ValueError, match="at least two"):
        mean_sd([1.0])
    with pytest.raises(ValueError, match="spec"):
        mean_sd([1.0, 2.0], "q")


def test_per_run_picks_one_value_per_run_along_a_path():
    records = [{"ca": 0.9, "rep": {"auc": 0.8}}, {"ca": 0.7, "rep": {"auc": 0.6}}]
    assert per_run(records, "ca") == [0.9, 0.7] and per_run(records, "rep", "auc") == [0.8, 0.6]
    with pytest.raises(ValueError, match=r"^records\[1\] has no"):
        per_run([records[0], {"ca": 1.0}], "rep", "auc")
    with pytest.raises(ValueError, match="at least one key"):
        per_run(records)


def test_train_and_score_and_epoch_spread_name_what_is_wrong():
    from poisonlab.experiment import epoch_spread
    from poisonlab.train import History

    x, y = torch.rand(8, 1, 4, 4), torch.arange(8) % 2
    with pytest.raises(ValueError, match=r"^y_test must have shape \(N,\)"):
        train_and_score((x, y), x, y[0], epochs=1)
    with pytest.raises(ValueError, match="^train must be a PoisonedSet or a pair"):
        train_and_score(3, x, y, epochs=1)
    with pytest.raises(ValueError, match="^key must be the name of a per-epoch metric"):
        epoch_spread([History(metrics={"a": [0.1]})], None)


def test_first_epoch_refuses_nan_values_and_non_sequences():
    from poisonlab.experiment import first_epoch

    assert first_epoch([0.1, 0.5, 0.9], lambda v: v > 0.4) == 2
    with pytest.raises(ValueError, match=r"^values must not hold NaN \(epoch 1 is NaN\)"):
        first_epoch([float("nan"), 0.5, 0.9], lambda v: v > 0.4)  # NaN would fail the test: epoch 2 unseen
    with pytest.raises(ValueError, match=r"^values must not hold NaN \(epoch 2"):
        first_epoch([(0.1, 0.2), (float("nan"), 0.3)], lambda row: row[0] > 0.4)
    for bad in (None, 3, "abc"):
        with pytest.raises(TypeError, match="^values must be a list with one value per epoch"):
            first_epoch(bad, lambda v: v > 0.4)


def test_spread_and_mean_sd_name_values_and_spec():
    from poisonlab.experiment import mean_sd, spread

    for fn in (spread, mean_sd):
        for bad in (None, 3, "abc"):
            with pytest.raises(TypeError, match="^values must"):
                fn(bad)
    with pytest.raises(ValueError, match="^values must hold at least one value"):
        spread([])
    with pytest.raises(ValueError, match="^values must hold finite numbers"):
        mean_sd([1.0, float("nan"), 3.0])
    for spec in (3, ""):
        with pytest.raises(ValueError, match="^spec must be a format spec"):
            mean_sd([1.0, 2.0], spec)
    assert spread([torch.tensor(0.5), 1]).mean == 0.75  # 0-d tensors and integers are numbers


@FAST_PROPERTY
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_spread_of_any_runs_is_a_valid_spread_and_invariant_to_a_shift(values):
    from poisonlab.experiment import spread

    s = spread(values)  # the Spread it builds passes its own consistency checks
    shifted = spread([v + 10.0 for v in values])
    assert shifted.sd == pytest.approx(s.sd, rel=1e-6, abs=1e-6)
    assert shifted.mean == pytest.approx(s.mean + 10.0, rel=1e-9, abs=1e-9)


def test_experiment_helpers_name_the_argument_that_is_wrong():
    from poisonlab.experiment import epoch_spread, first_epoch_at, mean_losses
    from poisonlab.train import History

    h = History(metrics={"a": [0.1, 0.9]})
    for bad in ("abc", 3):
        with pytest.raises(TypeError, match="^histories must be a list of History objects"):
            epoch_spread(bad, "a")
    with pytest.raises(TypeError, match=r"^histories\[1\] must be a History, got str"):
        epoch_spread([h, "h"], "a")
    with pytest.raises(ValueError, match="^histories must hold at least one run"):
        epoch_spread([], "a")
    for bad in (None, "h", 3):
        with pytest.raises(TypeError, match="^history must be a History"):
            first_epoch_at(bad, {"a": 0.5})
    for bad in (None, 3):
        with pytest.raises(TypeError, match="^records must be a list with one mapping per run"):
            per_run(bad, "a")
    with pytest.raises(ValueError, match=r"^records\[0\] has no 'b' \(missing key 'b'\)"):
        per_run([{"a": 1}], "b")
    with pytest.raises(ValueError, match="^keys: per_run needs at least one key"):
        per_run([{"a": 1}])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    for bad in (None, [1, 2]):
        with pytest.raises(TypeError, match=r"^groups must be a dict \{name: \(x, y\)\}"):
            mean_losses(model, bad)
    with pytest.raises(ValueError, match=r"^groups\['a'\] y must have 5 entries"):
        mean_losses(model, {"a": (x, y[:-1])})
    with pytest.raises(ValueError, match=r"^groups\['a'\] x must hold at least one example"):
        mean_losses(model, {"a": (x[:0], y[:0])})


def test_train_and_score_and_signature_run_name_arch_and_trigger():
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 2
    for bad in ("bogus", None, 3):
        with pytest.raises(ValueError, match="^arch must be one of 'logreg', 'mlp', 'cnn'"):
            train_and_score((x, y), x, y, epochs=1, arch=bad)
    for bad in (3, "patch"):
        with pytest.raises(TypeError, match="^trigger must be a function of a batch of images"):
            train_and_score((x, y), x, y, trigger=bad, epochs=1)
    poisoned = backdoor(x, y, Patch(2), 0, rate=0.2, num_classes=2)
    with pytest.raises(TypeError, match="^trigger must be a function"):
        signature_run(poisoned, x, y, None, 1, epochs=1)
    with pytest.raises(ValueError, match="^arch must be one of"):
        signature_run(poisoned, x, y, Patch(2), 1, arch="bogus", epochs=1)


def test_end_to_end_flips_names_the_extractor():
    from poisonlab.experiment import end_to_end_flipped, end_to_end_flips

    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    for bad in (None, "model", 3):
        with pytest.raises(TypeError, match="^extractor must be a torch.nn.Module"):
            end_to_end_flips(bad, x, y, x[0], x[:1], 0, epochs=1)
        with pytest.raises(TypeError, match="^extractor must be a torch.nn.Module"):
            end_to_end_flipped(bad, x, y, x[:1], x[:1].unsqueeze(0), 0, epochs=1)


def test_spread_reads_a_generator_of_values_once():
    from poisonlab.experiment import spread

    s = spread(v for v in (0.25, 0.5, 0.75))  # as the chapters pass it
    assert (s.mean, s.n) == (0.5, 3)


def test_train_and_score_names_train_when_its_pair_has_unequal_lengths():
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 2
    with pytest.raises(ValueError, match="^train's labels y must have 12 entries to match the inputs, got 11"):
        train_and_score((x, y[:-1]), x, y, epochs=1)
