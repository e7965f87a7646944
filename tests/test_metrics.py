import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from poisonlab import metrics
from torch import nn


class Oracle(nn.Module):
    """Predicts the class stored in the first pixel; any input with a bright corner → class 0."""

    def forward(self, x):
        cls = (x[:, 0, 0, 0] * 10).round().long()
        cls = torch.where(x[:, 0, -1, -1] > 0.5, torch.zeros_like(cls), cls)
        return nn.functional.one_hot(cls, 10).float()

    def parameters(self, recurse=True):
        return iter([])


def images_of(labels):
    x = torch.zeros(len(labels), 1, 4, 4)
    x[:, 0, 0, 0] = torch.tensor(labels, dtype=torch.float32) / 10
    return x


def corner(x):
    x = x.clone()
    x[..., -1, -1] = 1.0
    return x


def test_accuracy_counts_correct_predictions():
    x = images_of([1, 2, 3, 4])
    assert metrics.accuracy(Oracle(), x, torch.tensor([1, 2, 3, 4])) == 1.0
    assert metrics.accuracy(Oracle(), x, torch.tensor([1, 2, 0, 0])) == 0.5


def test_attack_success_rate_excludes_target_class_inputs():
    x, y = images_of([0, 0, 5, 6]), torch.tensor([0, 0, 5, 6])
    assert metrics.attack_success_rate(Oracle(), x, y, corner, target=0) == 1.0
    assert metrics.attack_success_rate(Oracle(), x, y, lambda v: v, target=0) == 0.0
    # half of the non-target inputs triggered: 1 of 2
    half = lambda v: torch.cat([corner(v[:1]), v[1:]])  # noqa: E731
    assert metrics.attack_success_rate(Oracle(), x, y, half, target=0) == 0.5


def test_metrics_reject_bad_input():
    x, y = images_of([1, 2]), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="2 entries"):
        metrics.accuracy(Oracle(), x, torch.tensor([1]))
    with pytest.raises(ValueError, match="undefined"):
        metrics.attack_success_rate(Oracle(), x, torch.tensor([3, 3]), corner, target=3)
    with pytest.raises(ValueError, match="callable"):
        metrics.attack_success_rate(Oracle(), x, y, "corner", target=0)
    with pytest.raises(ValueError, match="target"):
        metrics.attack_success_rate(Oracle(), x, y, corner, target=-2)
    with pytest.raises(ValueError, match="shaped like"):
        metrics.attack_success_rate(Oracle(), x, y, lambda v: v[:, :, :2], target=0)


class ShiftOracle(Oracle):
    """Like Oracle, but a bright corner sends class c to c + 1 (an all-to-all backdoor)."""

    def forward(self, x):
        cls = (x[:, 0, 0, 0] * 10).round().long()
        cls = torch.where(x[:, 0, -1, -1] > 0.5, (cls + 1) % 10, cls)
        return nn.functional.one_hot(cls, 10).float()


def test_all_to_all_success_means_class_plus_one():
    x, y = images_of([0, 3, 9, 4]), torch.tensor([0, 3, 9, 4])
    assert metrics.attack_success_rate(ShiftOracle(), x, y, corner, target=None) == 1.0
    # an all-to-one model sends everything to 0: only the 9 lands on 9 + 1 mod 10 = 0
    assert metrics.attack_success_rate(Oracle(), x, y, corner, target=None) == 0.25


def test_confusion_rows_are_distributions_over_predictions():
    c = metrics.confusion(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 2, 2, 2, 1]), 3)
    assert torch.allclose(c, torch.tensor([[0.5, 0, 0.5], [0, 1 / 3, 2 / 3], [0, 0, 0]]))
    with pytest.raises(ValueError):
        metrics.confusion(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError):
        metrics.confusion(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_share_labelled_counts_the_inputs_read_as_the_label():
    x = images_of([1, 1, 2, 3])
    assert metrics.share_labelled(Oracle(), x, 1) == 0.5
    assert metrics.share_labelled(Oracle(), corner(x), 0) == 1.0
    assert metrics.share_labelled(Oracle(), x, 9) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        metrics.share_labelled(Oracle(), x[:0], 1)
    for label in (-1, True, 1.5):
        with pytest.raises(ValueError, match="label"):
            metrics.share_labelled(Oracle(), x, label)


def test_a_label_the_model_cannot_output_is_refused_naming_the_argument():
    x = images_of([1, 2, 3])
    with pytest.raises(ValueError, match=r"^y must be < 10, the number of classes the model outputs"):
        metrics.accuracy(Oracle(), x, torch.tensor([1, 2, 109]))
    with pytest.raises(ValueError, match=r"^label must be in \[0, 10\), got 100"):
        metrics.share_labelled(Oracle(), x, 100)
    with pytest.raises(ValueError, match=r"^label must be a class index >= 0"):
        metrics.share_labelled(Oracle(), x, -1)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 10\), got 10"):
        metrics.attack_success_rate(Oracle(), x, torch.tensor([1, 2, 3]), corner, 10)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_or_bool_images_are_refused_with_a_type_error(dtype):
    x = images_of([1, 2, 3]).to(dtype)
    with pytest.raises(TypeError, match=r"^x must hold floating-point inputs"):
        metrics.accuracy(Oracle(), x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=r"^x must hold floating-point inputs"):
        metrics.attack_success_rate(Oracle(), x, torch.tensor([1, 2, 3]), corner, 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_images_are_refused_not_scored(bad):
    x = images_of([1, 2, 3])
    x[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match=r"^x must hold finite numbers"):
        metrics.accuracy(Oracle(), x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"^x must hold finite numbers"):
        metrics.share_labelled(Oracle(), x, 0)
    with pytest.raises(ValueError, match=r"^x must hold finite numbers"):
        metrics.attack_success_rate(Oracle(), x, torch.tensor([1, 2, 3]), corner, 0)


def test_float64_images_are_converted_to_the_models_dtype():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(5, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0, 1])
    assert metrics.accuracy(net, x.double(), y) == metrics.accuracy(net, x, y)


def test_labels_given_as_none_are_refused_by_name():
    with pytest.raises(ValueError, match="^y must be a torch.Tensor of integer labels"):
        metrics.accuracy(Oracle(), images_of([1, 2]), None)
    with pytest.raises(ValueError, match="^y must be a torch.Tensor of integer labels"):
        metrics.attack_success_rate(Oracle(), images_of([1, 2]), None, corner, 0)


def test_mcnemar_exact_counts_only_the_discordant_targets_and_matches_scipy():
    from scipy.stats import binomtest

    first = torch.tensor([True] * 12 + [False] * 2 + [True] * 5 + [False] * 30)
    second = torch.tensor([False] * 12 + [True] * 2 + [True] * 5 + [False] * 30)
    r = metrics.mcnemar_exact(first, second)
    assert (r["first_only"], r["second_only"], r["both"], r["neither"]) == (12, 2, 5, 30)
    assert r["p_value"] == pytest.approx(binomtest(12, 14, 0.5).pvalue, rel=1e-12)
    assert r["p_value"] < 0.05
    # the same discordant pairs with any number of concordant ones: the same p-value
    assert metrics.mcnemar_exact(first[:14], second[:14])["p_value"] == pytest.approx(r["p_value"])
    assert metrics.mcnemar_exact(second, first)["p_value"] == pytest.approx(r["p_value"])  # two-sided
    assert metrics.mcnemar_exact(first, first)["p_value"] == 1.0  # no discordant target
    balanced = metrics.mcnemar_exact(torch.tensor([True, False] * 5), torch.tensor([False, True] * 5))
    assert balanced["p_value"] == 1.0


def test_mcnemar_exact_rejects_bad_input():
    with pytest.raises(TypeError, match="first"):
        metrics.mcnemar_exact(torch.tensor([1, 0]), torch.tensor([True, False]))
    with pytest.raises(TypeError, match="second"):
        metrics.mcnemar_exact(torch.tensor([True, False]), [True, False])
    with pytest.raises(ValueError, match="same P"):
        metrics.mcnemar_exact(torch.tensor([True, False]), torch.tensor([True]))
    with pytest.raises(ValueError, match="same P"):
        metrics.mcnemar_exact(torch.tensor([], dtype=torch.bool), torch.tensor([], dtype=torch.bool))


def test_logit_margin_is_the_label_logit_minus_the_best_rival():
    scores = torch.tensor([[1.0, 3.0, 0.5], [2.0, -1.0, 2.0], [0.0, 0.0, 5.0]])
    assert torch.allclose(metrics.logit_margin(scores, 1), torch.tensor([2.0, -3.0, -5.0]))
    assert torch.allclose(metrics.logit_margin(scores, 0), torch.tensor([-2.0, 0.0, -5.0]))  # a tie gives 0


@given(
    scores=hnp.arrays(
        np.float32, st.tuples(st.integers(1, 6), st.integers(2, 5)), elements=st.floats(-20, 20, width=32)
    ),
    data=st.data(),
)
def test_logit_margin_is_positive_exactly_where_the_label_wins(scores, data):
    scores = torch.from_numpy(scores)
    label = data.draw(st.integers(0, scores.shape[1] - 1))
    margin = metrics.logit_margin(scores, label)
    assert margin.shape == (scores.shape[0],)
    unique_best = (scores == scores.max(1, keepdim=True).values).sum(1) == 1
    wins = (scores.argmax(1) == label) & unique_best
    assert torch.equal(margin > 0, wins)
    shifted = metrics.logit_margin(scores + 7.0, label)  # a constant added to every logit changes nothing
    assert torch.allclose(shifted, margin, atol=1e-4)


@pytest.mark.parametrize(
    ("scores", "label", "error", "match"),
    [
        (torch.zeros(3), 0, ValueError, "shaped \\(N, K\\)"),
        (torch.zeros(3, 2, dtype=torch.long), 0, ValueError, "floating-point"),
        (torch.zeros(3, 1), 0, ValueError, "K >= 2"),
        (torch.tensor([[0.0, float("nan")]]), 0, ValueError, "finite"),
        (torch.zeros(2, 3), 3, ValueError, "label must be in \\[0, 3\\)"),
        (torch.zeros(2, 3), -1, ValueError, "label"),
        (torch.zeros(2, 3), 1.5, (TypeError, ValueError), "label"),
        ([[0.0, 1.0]], 0, ValueError, "tensor"),
    ],
)
def test_logit_margin_refuses_bad_inputs(scores, label, error, match):
    with pytest.raises(error, match=match):
        metrics.logit_margin(scores, label)
