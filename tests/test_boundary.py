import poisonlab as pl
import pytest
import torch
from poisonlab import boundary
from poisonlab.linear import LinearLearner


@pytest.fixture(scope="module")
def blobs():
    return pl.toy2d("blobs", n_train=100, n_test=600, noise=0.7, seed=0)


def test_n_poisons_rounds_down_safely():
    assert boundary.n_poisons(100, 0.29) == 29
    assert boundary.n_poisons(999, 0.01) == 9
    with pytest.raises(ValueError, match="eps"):
        boundary.n_poisons(100, 1.0)


@pytest.mark.parametrize("strategy", ["random", "nearest"])
def test_label_flip_flips_exactly_eps_n_labels(blobs, strategy):
    ps = boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, strategy=strategy, seed=1)
    assert ps.n_poison == 10 and len(ps) == 100
    assert torch.equal(ps.x, blobs.x_train)
    changed = ps.y != blobs.y_train
    assert torch.equal(changed, ps.is_poison)


def test_nearest_flips_pick_the_least_certain_points(blobs):
    ps = boundary.label_flip(blobs.x_train, blobs.y_train, 0.05, strategy="nearest")
    learner = LinearLearner("logistic", 1e-2)
    margin = learner.decision(learner.fit(blobs.x_train, blobs.y_train), blobs.x_train).abs()
    assert float(margin[ps.is_poison].max()) <= float(margin[~ps.is_poison].min())


@pytest.mark.parametrize("model", ["logreg", "svm"])
def test_gradient_poison_beats_its_own_starting_point(blobs, model):
    learner = LinearLearner("logistic" if model == "logreg" else "hinge", 1e-3)
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05,
                                  model=model, lam=1e-3, steps=40, lr=0.05, record=True)
    assert ps.n_poison == 5 and ps.n_clean == 100
    assert float(ps.x.min()) >= 0.0 and float(ps.x.max()) <= 1.0
    traj = ps.info["trajectory"]
    assert traj.shape == (41, 5, 2)
    losses = ps.info["val_loss"]
    assert losses[-1] > 1.3 * losses[0], "the attacker's validation loss should rise"
    start = pl.PoisonedSet.append(blobs.x_train, blobs.y_train, traj[0], ps.y[ps.is_poison])
    err_start = learner.error(learner.fit(start.x, start.y), blobs.x_test, blobs.y_test)
    err_end = learner.error(learner.fit(ps.x, ps.y), blobs.x_test, blobs.y_test)
    assert err_end > err_start + 0.02


def test_gradient_poison_through_an_unrolled_mlp(blobs):
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05,
                                  model="mlp", steps=10, lr=0.05, train_steps=30)
    losses = ps.info["val_loss"]
    assert len(losses) == 11 and losses[-1] > losses[0]
    net, theta = boundary.train_mlp(ps.x, ps.y, train_steps=30)
    assert net.logit(theta, blobs.x_test.double()).shape == (600,)
    assert 0.0 <= net.error(theta, blobs.x_test, blobs.y_test) <= 0.2


def test_zero_budget_adds_nothing(blobs):
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.0)
    assert ps.n_poison == 0 and len(ps) == 100


def test_gradient_poison_rejects_bad_input(blobs):
    x, y, xv, yv = blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test
    with pytest.raises(ValueError, match="model"):
        boundary.gradient_poison(x, y, xv, yv, 0.05, model="resnet")
    with pytest.raises(ValueError, match="eps"):
        boundary.gradient_poison(x, y, xv, yv, 1.5)
    with pytest.raises(ValueError, match="box"):
        boundary.gradient_poison(x, y, xv, yv, 0.05, box=(1.0, 0.0))
    with pytest.raises(ValueError, match="inside the box"):
        boundary.gradient_poison(x * 3, y, xv, yv, 0.05)
    with pytest.raises(ValueError, match="x_val"):
        boundary.gradient_poison(x, y, torch.rand(5, 3), yv[:5], 0.05)
    with pytest.raises(ValueError, match="< 2"):
        boundary.gradient_poison(x, y + 1, xv, yv, 0.05)
    with pytest.raises(ValueError, match="strategy"):
        boundary.label_flip(x, y, 0.1, strategy="farthest")


def test_attack_surface_maps_loss_and_error_over_the_square(blobs):
    grid, loss, error = boundary.attack_surface(blobs.x_train, blobs.y_train, blobs.x_test[:100],
                                                blobs.y_test[:100], 1, resolution=6)
    assert grid.shape == (6,) and loss.shape == (6, 6) and error.shape == (6, 6)
    assert float(loss.max()) > float(loss.min())
    assert float(error.min()) >= 0 and float(error.max()) <= 1
    with pytest.raises(ValueError, match="2-D"):
        boundary.attack_surface(torch.rand(5, 3), torch.tensor([0, 1, 0, 1, 0]), torch.rand(5, 3),
                                torch.tensor([0, 1, 0, 1, 0]), 1)


def test_gradient_poison_respects_an_extra_projection(blobs):
    centre = torch.tensor([0.5, 0.5], dtype=torch.float64)

    def into_ball(xp, yp):
        d = xp - centre
        n = d.norm(dim=1, keepdim=True)
        return torch.where(n > 0.1, centre + d * 0.1 / n, xp)

    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05,
                                  lam=1e-3, steps=10, project=into_ball)
    xp, _ = ps.poisons()
    assert float((xp.double() - centre).norm(dim=1).max()) <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="project must return"):
        boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05,
                                 steps=1, project=lambda xp, yp: xp[:1])


def test_concentrated_poisons_sit_at_few_points_and_split_the_labels(blobs):
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.07,
                                  lam=1e-3, steps=20, lr=0.05, distinct=1, record=True, seed=3)
    xp, yp = ps.poisons()
    assert ps.n_poison == 7 and ps.info["distinct"] == 1
    assert yp.tolist() == [0, 0, 0, 0, 1, 1, 1, 1][:7] and int((yp == 0).sum()) == 4
    for label in (0, 1):  # every copy of a group is the same point, at every step
        group = ps.info["trajectory"][:, yp == label]
        assert torch.equal(group, group[:, :1].expand_as(group))
    assert not torch.equal(xp[yp == 0][0], xp[yp == 1][0])
    assert ps.info["val_loss"][-1] > ps.info["val_loss"][0]
    # each group starts at a training point of the other class, its label flipped
    start = ps.info["trajectory"][0]
    for j in range(7):
        hits = (blobs.x_train - start[j]).abs().sum(1) < 1e-6
        assert hits.any() and bool((blobs.y_train[hits] == 1 - yp[j]).all())


def test_concentrated_groups_share_the_copies_round_robin(blobs):
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05,
                                  lam=1e-3, steps=3, distinct=2, seed=0)
    xp, yp = ps.poisons()
    assert yp.tolist() == [0, 0, 0, 1, 1]
    assert len(torch.unique(xp[yp == 0], dim=0)) == 2 and len(torch.unique(xp[yp == 1], dim=0)) == 2
    one = boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.01,
                                   lam=1e-3, steps=3, distinct=4)
    assert one.poisons()[1].tolist() == [0]  # a single poison takes the first label


def test_concentrated_poisons_reject_bad_input(blobs):
    x, y, xv, yv = blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test
    for bad in (0, -1, 1.5):
        with pytest.raises((ValueError, TypeError), match="distinct"):
            boundary.gradient_poison(x, y, xv, yv, 0.05, steps=1, distinct=bad)
    only_ones = torch.ones_like(y)
    with pytest.raises(ValueError, match="there are none"):
        boundary.gradient_poison(x, only_ones, xv, yv, 0.05, steps=1, distinct=1)
