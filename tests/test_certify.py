"""Deep Partition Aggregation (poisonlab.certify): the hash partition, the certificate's counting
argument, and the certificate on real retrainings."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import certify

# ---------------------------------------------------------------- the partition


def test_a_part_depends_on_the_input_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 8, 8, generator=g)
    parts = certify.partition(x, 7)
    assert parts.dtype == torch.int64 and parts.shape == (200,)
    assert int(parts.min()) >= 0 and int(parts.max()) < 7
    assert torch.equal(certify.partition(x[50:120], 7), parts[50:120])  # other points removed
    shuffled = torch.randperm(200, generator=g)
    assert torch.equal(certify.partition(x[shuffled], 7), parts[shuffled])  # order irrelevant
    assert torch.equal(certify.partition(x.double(), 7), parts)  # the dtype too
    counts = torch.bincount(parts, minlength=7)
    assert int(counts.min()) >= 10  # a hash spreads 200 points over every part


@pytest.mark.parametrize(
    "x, k, error",
    [
        (torch.rand(5, 3), 0, "k"),
        (torch.rand(5, 3), 2.5, "k"),
        (torch.tensor([[0.0, float("nan")]]), 3, "x"),
        ([[0.0, 1.0]], 3, "x"),
        (torch.rand(0, 3), 3, "at least one"),
    ],
)
def test_bad_partitions_are_refused(x, k, error):
    with pytest.raises((ValueError, TypeError), match=error):
        certify.partition(x, k)


# ---------------------------------------------------------------- the certificate


def _winner(counts: torch.Tensor) -> int:
    return int(counts.argmax())  # the first maximum: ties to the smallest class


def test_the_radius_on_worked_examples():
    counts = torch.tensor([[10, 4, 0], [3, 5, 5], [2, 2, 0], [0, 0, 0], [0, 7, 7], [1, 0, 6]])
    prediction, radius = certify.certify(counts)
    assert prediction.tolist() == [0, 1, 0, 0, 1, 2]
    # gap n_ĉ − max(n_c + [c < ĉ]): 6; 5 − 5 = 0; 2 − 2 = 0; 0 − 0; 7 − 7 = 0; 6 − (1 + 1) = 4
    assert radius.tolist() == [3, 0, 0, 0, 0, 2]
    assert radius.dtype == prediction.dtype == torch.int64


@settings(max_examples=300, deadline=None)
@given(
    votes=st.lists(st.integers(0, 4), min_size=1, max_size=25),  # each base classifier's class
    abstain=st.integers(0, 5),
    changes=st.data(),
)
def test_no_changes_within_the_radius_move_the_prediction_and_one_more_can(votes, abstain, changes):
    """Each inserted or removed training point changes one base classifier: its vote goes to any
    class, or to nothing (its part emptied), or it starts voting (an empty part filled)."""
    c = 5
    ballots = votes + [None] * abstain  # None: a classifier that abstains

    def tally(ballots):
        counts = torch.zeros(c, dtype=torch.int64)
        for b in ballots:
            if b is not None:
                counts[b] += 1
        return counts

    counts = tally(ballots)
    prediction, radius = certify.certify(counts[None])
    prediction, radius = int(prediction), int(radius)
    assert prediction == _winner(counts)
    r = changes.draw(st.integers(0, radius))
    changed = list(ballots)
    who = changes.draw(st.lists(st.integers(0, len(changed) - 1), min_size=r, max_size=r, unique=True))
    for i in who:
        changed[i] = changes.draw(st.one_of(st.none(), st.integers(0, c - 1)))
    assert _winner(tally(changed)) == prediction
    # tight: radius + 1 classifiers moving from the winner to its strongest rival win
    if counts[prediction] >= radius + 1:
        rival = max((k for k in range(c) if k != prediction), key=lambda k: (int(counts[k]) + (k < prediction), -k))
        moved = counts.clone()
        moved[prediction] -= radius + 1
        moved[rival] += radius + 1
        assert _winner(moved) != prediction


@pytest.mark.parametrize(
    "counts, error",
    [
        (torch.tensor([1, 2]), ValueError),
        (torch.tensor([[1]]), ValueError),
        (torch.tensor([[1.0, 2.0]]), TypeError),
        (torch.tensor([[-1, 2]]), ValueError),
        ([[1, 2]], ValueError),
    ],
)
def test_bad_counts_are_refused(counts, error):
    with pytest.raises(error):
        certify.certify(counts)


def test_certified_accuracy_counts_right_and_certified():
    prediction, radius, y = torch.tensor([0, 1, 2, 2]), torch.tensor([5, 0, 2, 9]), torch.tensor([0, 1, 2, 1])
    assert certify.certified_accuracy(prediction, radius, y, [0, 1, 3, 6]) == [0.75, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="budgets"):
        certify.certified_accuracy(prediction, radius, y, [-1])
    with pytest.raises(ValueError, match="radius must be a tensor of shape"):
        certify.certified_accuracy(prediction, radius[:3], y, [0])


# ---------------------------------------------------------------- on real retrainings


@pytest.fixture(scope="module")
def dpa(digits):
    """k = 15 logistic regressions on the 1,347 training digits (about 90 a part)."""
    x, y = digits.x_train, digits.y_train
    ens = certify.train_partitions(x, y, 15, arch="logreg", epochs=8, lr=0.1, seed=3, workers=1, progress=False)
    return x, y, ens


def test_the_ensemble_learns_and_its_parts_are_the_hash_parts(dpa, digits):
    x, y, ens = dpa
    assert ens.k == 15 and int(ens.part_sizes.sum()) == len(y)
    assert torch.equal(ens.part_sizes, torch.bincount(certify.partition(x, 15), minlength=15))
    counts = certify.votes(ens, digits.x_test)
    assert counts.shape == (len(digits.y_test), 10) and bool((counts.sum(1) == 15).all())
    assert torch.equal(certify.votes(ens, digits.x_test, workers=2), counts)  # side by side, the same votes
    assert torch.equal(certify.votes(ens, digits.x_test, workers=4), counts)  # blocks of uneven size
    with pytest.raises(ValueError, match="workers"):
        certify.votes(ens, digits.x_test, workers=0)
    prediction, radius = certify.certify(counts)
    accuracy, at_two = certify.certified_accuracy(prediction, radius, digits.y_test, [0, 2])
    assert accuracy > 0.85 and 0 < at_two < accuracy


@pytest.mark.parametrize("attack", ["insert", "remove"])
def test_the_certificate_holds_against_real_poisons(dpa, digits, attack):
    """r poisons, r = the certified radius of the test inputs attacked: the ensemble retrained on
    the poisoned set keeps every one of those predictions."""
    x, y, ens = dpa
    prediction, radius = certify.certify(certify.votes(ens, digits.x_test))
    r = 2
    attacked = torch.nonzero(radius >= r).flatten()[:40]
    assert len(attacked) >= 10
    g = torch.Generator().manual_seed(0)
    if attack == "insert":  # r copies of an attacked input, slightly moved, labelled with another class
        victim = digits.x_test[attacked[0]]
        poisons = (victim + 0.05 * torch.rand(r, *victim.shape, generator=g)).clamp(0, 1)
        wrong = (prediction[attacked[0]] + 1) % 10
        x2, y2 = torch.cat([x, poisons]), torch.cat([y, wrong.repeat(r)])
    else:  # r training points removed
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[torch.randperm(len(y), generator=g)[:r]] = False
        x2, y2 = x[keep], y[keep]
    poisoned = certify.train_partitions(
        x2, y2, 15, arch="logreg", num_classes=10, epochs=8, lr=0.1, seed=3, workers=1, progress=False
    )
    after = certify.votes(poisoned, digits.x_test[attacked]).argmax(1)
    assert torch.equal(after, prediction[attacked])
    changed = sum(not torch.equal(a.head.weight, b.head.weight) for a, b in zip(ens.models, poisoned.models))
    assert 1 <= changed <= r  # only the parts that received or lost a point learned anything new


def test_an_empty_part_abstains(digits):
    x, y = digits.x_train[:3], digits.y_train[:3]
    ens = certify.train_partitions(x, y, 40, arch="logreg", num_classes=10, epochs=1, workers=1, progress=False)
    assert sum(m is not None for m in ens.models) <= 3
    assert bool((certify.votes(ens, digits.x_test[:5]).sum(1) <= 3).all())


@pytest.mark.parametrize(
    "kwargs, error",
    [({"k": 0}, "k"), ({"arch": "resnet"}, "arch"), ({"num_classes": 3}, "num_classes"), ({"seed": -1}, "seed")],
)
def test_bad_training_settings_are_refused(digits, kwargs, error):
    settings = {"k": 5, **kwargs}
    with pytest.raises(ValueError, match=error):
        certify.train_partitions(digits.x_train[:50], digits.y_train[:50], workers=1, progress=False, **settings)


def test_votes_needs_an_ensemble(digits):
    with pytest.raises(TypeError, match="PartitionEnsemble"):
        certify.votes([None], digits.x_test)


def test_certified_accuracy_and_votes_refuse_what_certify_cannot_give(dpa, digits):
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="radius"):
        certify.certified_accuracy(torch.tensor([0, 1]), torch.tensor([-1, 2]), y, [0])
    with pytest.raises(ValueError, match="radius"):
        certify.certified_accuracy(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), y, [0])
    with pytest.raises(ValueError, match="prediction"):
        certify.certified_accuracy(torch.tensor([-1, 1]), torch.tensor([1, 2]), y, [0])
    _, _, ens = dpa
    with pytest.raises(ValueError, match="x must hold inputs of shape"):
        certify.votes(ens, digits.x_test[0])  # one image without its batch dimension


# ---------------------------------------------------------------- order invariance


def test_the_canonical_order_depends_on_the_set_alone():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 1, 4, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    x[7], y[7] = x[3], (y[3] + 1) % 3  # the same input twice with two labels
    order = certify.canonical_order(x, y)
    assert sorted(order.tolist()) == list(range(60))
    shuffled = torch.randperm(60, generator=g)
    again = certify.canonical_order(x[shuffled], y[shuffled])
    assert torch.equal(x[shuffled][again], x[order]) and torch.equal(y[shuffled][again], y[order])
    with pytest.raises(ValueError, match="y"):
        certify.canonical_order(x, y[:5])


def test_a_permuted_training_set_gives_identical_base_classifiers(digits):
    """Theorem 1 needs each base classifier to be a function of its part as a set: training on the
    same points in another order must give the very same votes."""
    x, y = digits.x_train[:400], digits.y_train[:400]
    settings = dict(arch="logreg", num_classes=10, epochs=3, lr=0.1, seed=5, workers=1, progress=False)
    ens = certify.train_partitions(x, y, 6, **settings)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    shuffled = certify.train_partitions(x[perm], y[perm], 6, **settings)
    for a, b in zip(ens.models, shuffled.models):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    test = digits.x_test[:100]
    assert torch.equal(
        torch.stack([m(test).argmax(1) for m in ens.models]), torch.stack([m(test).argmax(1) for m in shuffled.models])
    )


def test_certified_accuracy_refuses_labels_outside_the_classes():
    prediction, radius, y = torch.tensor([0, 1, 2]), torch.tensor([1, 1, 1]), torch.tensor([0, 1, 2])
    assert certify.certified_accuracy(prediction, radius, y, [0], num_classes=3) == [1.0]
    with pytest.raises(ValueError, match="y must be < 3"):
        certify.certified_accuracy(prediction, radius, torch.tensor([0, 1, 3]), [0], num_classes=3)
    with pytest.raises(ValueError, match="prediction must be < 3"):
        certify.certified_accuracy(torch.tensor([0, 5, 2]), radius, y, [0], num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        certify.certified_accuracy(prediction, radius, y, [0], num_classes=1)
    with pytest.raises((ValueError, TypeError), match="num_classes"):
        certify.certified_accuracy(prediction, radius, y, [0], num_classes=2.5)


@pytest.mark.parametrize("budgets", [None, 10, "0123"])
def test_certified_accuracy_needs_a_list_of_budgets(budgets):
    y = torch.tensor([0, 1, 1])
    with pytest.raises(TypeError, match="^budgets must be a list"):
        certify.certified_accuracy(y, torch.tensor([3, 0, 5]), y, budgets)
