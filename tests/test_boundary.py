import math

import poisonlab as pl
import pytest
import torch
from poisonlab import boundary, data
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
    ps = boundary.gradient_poison(
        blobs.x_train,
        blobs.y_train,
        blobs.x_test,
        blobs.y_test,
        0.05,
        arch=model,
        lam=1e-3,
        steps=40,
        lr=0.05,
        record=True,
    )
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
    ps = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, arch="mlp", steps=10, lr=0.05, train_steps=30
    )
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
    with pytest.raises(ValueError, match="arch"):
        boundary.gradient_poison(x, y, xv, yv, 0.05, arch="resnet")
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
    grid, loss, error = boundary.attack_surface(
        blobs.x_train, blobs.y_train, blobs.x_test[:100], blobs.y_test[:100], 1, resolution=6
    )
    assert grid.shape == (6,) and loss.shape == (6, 6) and error.shape == (6, 6)
    assert float(loss.max()) > float(loss.min())
    assert float(error.min()) >= 0 and float(error.max()) <= 1
    with pytest.raises(ValueError, match="2-D"):
        boundary.attack_surface(
            torch.rand(5, 3), torch.tensor([0, 1, 0, 1, 0]), torch.rand(5, 3), torch.tensor([0, 1, 0, 1, 0]), 1
        )


def test_gradient_poison_respects_an_extra_projection(blobs):
    centre = torch.tensor([0.5, 0.5], dtype=torch.float64)

    def into_ball(xp, yp):
        d = xp - centre
        n = d.norm(dim=1, keepdim=True)
        return torch.where(n > 0.1, centre + d * 0.1 / n, xp)

    ps = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, lam=1e-3, steps=10, project=into_ball
    )
    xp, _ = ps.poisons()
    assert float((xp.double() - centre).norm(dim=1).max()) <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="project must return"):
        boundary.gradient_poison(
            blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, steps=1, project=lambda xp, yp: xp[:1]
        )


def test_concentrated_poisons_sit_at_few_points_and_split_the_labels(blobs):
    ps = boundary.gradient_poison(
        blobs.x_train,
        blobs.y_train,
        blobs.x_test,
        blobs.y_test,
        0.07,
        lam=1e-3,
        steps=20,
        lr=0.05,
        distinct=1,
        record=True,
        seed=3,
    )
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
    ps = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, lam=1e-3, steps=3, distinct=2, seed=0
    )
    xp, yp = ps.poisons()
    assert yp.tolist() == [0, 0, 0, 1, 1]
    assert len(torch.unique(xp[yp == 0], dim=0)) == 2 and len(torch.unique(xp[yp == 1], dim=0)) == 2
    one = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.01, lam=1e-3, steps=3, distinct=4
    )
    assert one.poisons()[1].tolist() == [0]  # a single poison takes the first label


def test_concentrated_poisons_reject_bad_input(blobs):
    x, y, xv, yv = blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test
    for bad in (0, -1, 1.5):
        with pytest.raises((ValueError, TypeError), match="distinct"):
            boundary.gradient_poison(x, y, xv, yv, 0.05, steps=1, distinct=bad)
    only_ones = torch.ones_like(y)
    with pytest.raises(ValueError, match="there are none"):
        boundary.gradient_poison(x, only_ones, xv, yv, 0.05, steps=1, distinct=1)


def test_confident_flips_pick_the_points_the_clean_model_is_surest_of(blobs):
    ps = boundary.label_flip(blobs.x_train, blobs.y_train, 0.05, strategy="confident", lam=1e-2)
    learner = LinearLearner("logistic", 1e-2)
    s = 2.0 * blobs.y_train.double() - 1.0
    margin = s * learner.decision(learner.fit(blobs.x_train, blobs.y_train), blobs.x_train)
    assert ps.n_poison == 5 and torch.equal(ps.y != blobs.y_train, ps.is_poison)
    assert float(margin[ps.is_poison].min()) >= float(margin[~ps.is_poison].max())


def test_influence_flips_raise_the_validation_loss_more_than_random_flips(blobs):
    learner = LinearLearner("logistic", 1e-3)
    xv, yv = blobs.x_test[:300], blobs.y_test[:300]

    def val_loss(ps):
        return float(learner.mean_loss(learner.fit(ps.x, ps.y), xv.double(), yv))

    chosen = boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, strategy="influence", lam=1e-3, x_val=xv, y_val=yv)
    assert chosen.n_poison == 10 and torch.equal(chosen.y != blobs.y_train, chosen.is_poison)
    random = [val_loss(boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, seed=s)) for s in range(5)]
    assert val_loss(chosen) > max(random), (val_loss(chosen), random)
    one_round = boundary.label_flip(
        blobs.x_train, blobs.y_train, 0.1, strategy="influence", lam=1e-3, x_val=xv, y_val=yv, rounds=1
    )
    assert one_round.n_poison == 10


def test_influence_flips_match_retraining_to_first_order(blobs):
    """The first flip chosen is the one whose retrained validation loss rises most, among the
    points the first-order score ranks highest and lowest."""
    learner = LinearLearner("logistic", 1e-2)
    xv, yv = blobs.x_test[:300], blobs.y_test[:300]
    first = boundary.label_flip(
        blobs.x_train, blobs.y_train, 0.01, strategy="influence", lam=1e-2, x_val=xv, y_val=yv, rounds=1
    )
    i = int(torch.nonzero(first.is_poison)[0])

    def flipped_loss(j):
        y = blobs.y_train.clone()
        y[j] = 1 - y[j]
        return float(learner.mean_loss(learner.fit(blobs.x_train, y), xv.double(), yv))

    others = [flipped_loss(j) for j in range(0, 100, 7) if j != i]
    assert flipped_loss(i) >= max(others)


def test_flip_influence_predicts_the_retrained_rise_of_one_flip(blobs):
    """For one flip, the first-order estimate matches retraining's change in validation loss in
    sign and roughly in size; summed over flips it ranks influence-guided flips above random ones."""
    learner = LinearLearner("logistic", 1e-2)
    xv, yv = blobs.x_test[:300], blobs.y_test[:300]
    clean = float(learner.mean_loss(learner.fit(blobs.x_train, blobs.y_train), xv.double(), yv))
    for j in (3, 40):
        y = blobs.y_train.clone()
        y[j] = 1 - y[j]
        actual = float(learner.mean_loss(learner.fit(blobs.x_train, y), xv.double(), yv)) - clean
        estimate = boundary.flip_influence(blobs.x_train, blobs.y_train, torch.tensor([j]), xv, yv, lam=1e-2)
        assert estimate * actual > 0 and 0.5 < estimate / actual < 2, (j, estimate, actual)
    chosen = boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, strategy="influence", lam=1e-2, x_val=xv, y_val=yv)
    rand = boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, seed=0)
    score = {
        name: boundary.flip_influence(
            blobs.x_train, blobs.y_train, torch.nonzero(p.is_poison).flatten(), xv, yv, lam=1e-2
        )
        for name, p in (("infl", chosen), ("rand", rand))
    }
    assert score["infl"] > score["rand"]


def test_flip_influence_rejects_bad_input(blobs):
    x, y = blobs.x_train, blobs.y_train
    with pytest.raises(ValueError, match="idx"):
        boundary.flip_influence(x, y, torch.tensor([len(y)]), x, y)
    with pytest.raises(ValueError, match="features"):
        boundary.flip_influence(x, y, torch.tensor([0]), torch.rand(5, 3), y[:5])
    with pytest.raises(ValueError, match="lam"):
        boundary.flip_influence(x, y, torch.tensor([0]), x, y, lam=0.0)


def test_label_flip_rejects_bad_input(blobs):
    x, y = blobs.x_train, blobs.y_train
    with pytest.raises(ValueError, match="x_val, y_val"):
        boundary.label_flip(x, y, 0.1, strategy="influence")
    with pytest.raises(ValueError, match="rounds"):
        boundary.label_flip(x, y, 0.1, strategy="influence", x_val=x, y_val=y, rounds=0)
    with pytest.raises(ValueError, match="features"):
        boundary.label_flip(x, y, 0.1, strategy="influence", x_val=torch.rand(5, 3), y_val=y[:5])


@pytest.mark.parametrize("kind", ["sphere", "slab"])
def test_a_defence_fitted_at_a_quantile_keeps_that_share_of_clean_points(blobs, kind):
    cls = boundary.SphereDefence if kind == "sphere" else boundary.SlabDefence
    d = cls.fit(blobs.x_train, blobs.y_train, quantile=0.8)
    keep = d.keep(blobs.x_train, blobs.y_train)
    for k in (0, 1):
        share = float(keep[blobs.y_train == k].double().mean())
        assert 0.78 <= share <= 0.84, share
    assert bool(cls.fit(blobs.x_train, blobs.y_train, quantile=1.0).keep(blobs.x_train, blobs.y_train).all())


@pytest.mark.parametrize("kind", ["sphere", "slab"])
def test_projected_points_survive_their_defence_and_inside_points_stay(blobs, kind):
    cls = boundary.SphereDefence if kind == "sphere" else boundary.SlabDefence
    d = cls.fit(blobs.x_train, blobs.y_train, quantile=0.7)
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.arange(50) % 2
    z = d.project(x, y)
    assert bool(d.keep(z, y).all())
    inside = d.keep(x, y)
    assert inside.any() and (~inside).any()
    assert torch.allclose(z[inside], x[inside])
    assert torch.allclose(d.project(z, y), z)  # a projection is idempotent


def test_sphere_projection_moves_towards_the_labelled_centroid(blobs):
    d = boundary.SphereDefence.fit(blobs.x_train, blobs.y_train, quantile=0.5)
    x = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    z = d.project(x, y)
    dist = (z - d.centres[0]).norm(dim=1)
    assert torch.allclose(dist, d.radii[0].expand(2), rtol=1e-5)
    # the projection lies on the segment from the point to the centre
    for i in range(2):
        a, b = x[i] - d.centres[0], z[i] - d.centres[0]
        assert abs(float(a[0] * b[1] - a[1] * b[0])) < 1e-9 and float(a @ b) > 0


def test_sanitise_and_feasible_projection_against_both_defences(blobs):
    x, y = blobs.x_train, blobs.y_train
    sphere = boundary.SphereDefence.fit(x, y, quantile=0.9)
    slab = boundary.SlabDefence.fit(x, y, quantile=0.9)
    xk, yk, keep = boundary.sanitise(x, y, sphere, slab)
    assert torch.equal(keep, sphere.keep(x, y) & slab.keep(x, y)) and len(yk) == int(keep.sum())
    project = boundary.feasible_projection(sphere, slab)
    far = torch.rand(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    yp = torch.arange(40) % 2
    z = project(far, yp)
    assert bool(sphere.keep(z, yp).all() and slab.keep(z, yp).all())
    assert float(z.min()) >= -1e-6 and float(z.max()) <= 1 + 1e-6
    ps = boundary.gradient_poison(
        x, y, blobs.x_test, blobs.y_test, 0.1, lam=1e-3, steps=15, lr=0.05, distinct=1, project=project
    )
    _, _, keep = boundary.sanitise(ps.x, ps.y, sphere, slab)
    assert bool(keep[ps.is_poison].all()), "poisons projected onto the defences survive them"


def test_defences_reject_bad_input(blobs):
    x, y = blobs.x_train, blobs.y_train
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="quantile"):
            boundary.SphereDefence.fit(x, y, quantile=bad)
    with pytest.raises(ValueError, match="class 1 has none"):
        boundary.SlabDefence.fit(x, torch.zeros_like(y))
    with pytest.raises(ValueError, match="radii must be > 0"):
        boundary.SphereDefence(torch.zeros(2, 2, dtype=torch.float64), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="centres"):
        boundary.SphereDefence(torch.zeros(3, 2), torch.ones(2))
    with pytest.raises(ValueError, match="distinct centroids"):
        boundary.SlabDefence(torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    d = boundary.SphereDefence.fit(x, y)
    with pytest.raises(ValueError, match="3 features"):
        d.keep(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="at least one defence"):
        boundary.sanitise(x, y)
    with pytest.raises(ValueError, match="at least one defence"):
        boundary.feasible_projection()
    with pytest.raises(ValueError, match="box"):
        boundary.feasible_projection(d, box=(1.0, 0.0))


def _ridge_solution(x, y, lam, x_val, y_val, j):
    n, d = x.shape
    h = x.T @ x / n + lam * torch.eye(d, dtype=x.dtype)
    theta = torch.linalg.solve(h, x.T @ y / n)
    dtheta = -torch.linalg.solve(h, x[j] * (x[j] @ theta - y[j]))
    return float((x_val.T @ (x_val @ theta - y_val) / len(y_val)) @ dtheta)


def test_ridge_influence_checker_matches_retraining_and_rejects_a_sign_slip():
    from poisonlab.check import boundary as ex
    from poisonlab.check.boundary import _ridge_influence

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    xv, yv = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randn(10, generator=g, dtype=torch.float64)

    def val_loss(delta, j=4, lam=0.1):  # retrain with point j weighted 1/n + δ
        w = torch.full((30,), 1 / 30, dtype=torch.float64)
        w[j] += delta
        theta = torch.linalg.solve(
            (x * w[:, None]).T @ x + lam * torch.eye(3, dtype=torch.float64), (x * w[:, None]).T @ y
        )
        return float(0.5 * ((xv @ theta - yv) ** 2).mean())

    fd = (val_loss(1e-6) - val_loss(-1e-6)) / 2e-6
    assert abs(fd - _ridge_influence(x, y, 0.1, xv, yv, 4)) < 1e-7
    assert ex.check_ridge_influence(_ridge_solution).ok
    assert not ex.check_ridge_influence(lambda *a: -_ridge_solution(*a)).ok


def test_sphere_design_checker_fails_poisons_the_defence_removes():
    from poisonlab.check import boundary as ex

    def flipped_far(x, y, xv, yv, defence, k):  # strong without the defence, removed by it
        far = defence.centres[1].clamp(0, 1).repeat(k, 1).float()
        return far, torch.zeros(k, dtype=torch.long)

    result = ex.check_sphere_poisons(flipped_far)
    assert not result.ok and "survives" in repr(result)


# -- the chapter's experiments: attack, retrain, measure ----------------------------------------


@pytest.mark.parametrize("loss, model", [("logistic", "logreg"), ("hinge", "svm")])
def test_attack_and_fit_attacks_the_learner_it_is_given_and_measures_its_test_error(blobs, loss, model):
    learner = LinearLearner(loss, 1e-3)
    x_val, y_val, x_te, y_te = blobs.x_test[:300], blobs.y_test[:300], blobs.x_test[300:], blobs.y_test[300:]
    run = boundary.attack_and_fit(
        learner, blobs.x_train, blobs.y_train, x_val, y_val, x_te, y_te, 0.05, steps=20, lr=0.05, seed=1
    )
    by_hand = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, x_val, y_val, 0.05, arch=model, lam=1e-3, steps=20, lr=0.05, seed=1
    )
    assert run.poisoned.info["arch"] == model and run.poisoned.info["lam"] == 1e-3
    assert torch.equal(run.poisoned.x, by_hand.x) and torch.equal(run.poisoned.y, by_hand.y)
    theta = learner.fit(by_hand.x, by_hand.y)
    assert torch.allclose(run.theta, theta)
    assert run.error == learner.error(theta, x_te, y_te)
    clean = learner.error(learner.fit(blobs.x_train, blobs.y_train), x_te, y_te)
    assert run.error > clean, "the crafted poisons should raise the test error"
    poisoned, theta_run, error = run  # a tuple too, in the order of its fields
    assert poisoned is run.poisoned and error == run.error


def test_attack_and_fit_rejects_bad_input(blobs):
    args = (blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, blobs.x_test, blobs.y_test, 0.05)
    with pytest.raises(ValueError, match="LinearLearner"):
        boundary.attack_and_fit("logreg", *args)
    with pytest.raises(ValueError, match="do not pass lam, model"):
        boundary.attack_and_fit(LinearLearner("logistic", 1e-3), *args, model="svm", lam=1.0)
    with pytest.raises(ValueError, match="beta"):
        boundary.attack_and_fit(LinearLearner("hinge", 1e-3, beta=2.0), *args)
    bad = (*args[:5], blobs.y_test[:10], 0.05)
    with pytest.raises(ValueError, match="y_test"):
        boundary.attack_and_fit(LinearLearner("logistic", 1e-3), *bad)


def test_flip_sets_draws_random_flips_and_runs_deterministic_ones_once(blobs):
    sets = boundary.flip_sets(blobs.x_train, blobs.y_train, 0.1, "random", draws=3)
    assert len(sets) == 3
    for seed, ps in enumerate(sets):
        assert torch.equal(ps.y, boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, seed=seed).y)
    assert not torch.equal(sets[0].is_poison, sets[1].is_poison), "the draws must differ"
    nearest = boundary.flip_sets(blobs.x_train, blobs.y_train, 0.1, "nearest", draws=3, lam=1e-3)
    assert len(nearest) == 1
    expected = boundary.label_flip(blobs.x_train, blobs.y_train, 0.1, strategy="nearest", lam=1e-3)
    assert torch.equal(nearest[0].y, expected.y)
    with pytest.raises(ValueError, match="strategy"):
        boundary.flip_sets(blobs.x_train, blobs.y_train, 0.1, "furthest")
    with pytest.raises(ValueError, match="draws"):
        boundary.flip_sets(blobs.x_train, blobs.y_train, 0.1, "random", draws=0)
    with pytest.raises(ValueError, match="x_val"):
        boundary.flip_sets(blobs.x_train, blobs.y_train, 0.1, "influence")


def test_mlp_attack_trains_the_same_network_on_clean_and_poisoned_data(blobs):
    x_val, y_val, x_te, y_te = blobs.x_test[:300], blobs.y_test[:300], blobs.x_test[300:], blobs.y_test[300:]
    kw = dict(steps=3, lr=0.05, train_steps=20, train_lr=0.5, seed=2)
    out = boundary.mlp_attack(blobs.x_train, blobs.y_train, x_val, y_val, x_te, y_te, 0.05, **kw)
    ps = boundary.gradient_poison(blobs.x_train, blobs.y_train, x_val, y_val, 0.05, arch="mlp", **kw)
    net, theta = boundary.train_mlp(blobs.x_train, blobs.y_train, train_steps=20, train_lr=0.5, seed=2)
    assert out.clean_error == net.error(theta, x_te, y_te)
    net, theta = boundary.train_mlp(ps.x, ps.y, train_steps=20, train_lr=0.5, seed=2)
    assert out.poisoned_error == net.error(theta, x_te, y_te)
    assert out.val_loss == (ps.info["val_loss"][0], ps.info["val_loss"][-1])
    assert out.val_loss[1] > out.val_loss[0], "the ascent should raise the validation loss"
    with pytest.raises(ValueError, match="x_test"):
        boundary.mlp_attack(blobs.x_train, blobs.y_train, x_val, y_val, y_te, y_te, 0.05, **kw)


def test_poison_groups_finds_each_concentrated_point_and_its_copies(blobs):
    ps = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.07, lam=1e-3, steps=5, distinct=1, record=True
    )
    points = boundary.poison_groups(ps)
    assert points.counts == [4, 3] and points.labels.tolist() == [0, 1]
    traj = ps.info["trajectory"]
    xp, yp = ps.poisons()
    for g, label in enumerate((0, 1)):
        first = int(torch.nonzero(yp == label)[0])
        assert torch.equal(points.start[g], traj[0, first]) and torch.equal(points.end[g], traj[-1, first])
    free = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, lam=1e-3, steps=5, record=True
    )
    assert sum(boundary.poison_groups(free).counts) == 5
    with pytest.raises(ValueError, match="record=True"):
        boundary.poison_groups(
            boundary.gradient_poison(blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, steps=2)
        )
    with pytest.raises(ValueError, match="record=True"):
        boundary.poison_groups(blobs.x_train)


def test_poison_groups_with_a_tolerance_joins_nearby_poisons_of_one_label(blobs):
    ps = boundary.gradient_poison(
        blobs.x_train, blobs.y_train, blobs.x_test, blobs.y_test, 0.05, lam=1e-3, steps=2, record=True
    )
    traj = ps.info["trajectory"].clone()
    _, yp = ps.poisons()
    traj[-1] = torch.tensor([0.5, 0.5])  # every poison at one spot, then three of them nudged
    traj[-1, :3] += torch.tensor([0.01, -0.02])
    ps.info["trajectory"] = traj
    exact = boundary.poison_groups(ps)
    near = boundary.poison_groups(ps, tol=0.05)
    assert sum(exact.counts) == sum(near.counts) == len(yp)
    assert len(near.counts) == len(set(yp.tolist())) < len(exact.counts)
    assert len(boundary.poison_groups(ps, tol=0.001).counts) == len(exact.counts)
    with pytest.raises(ValueError, match="tol"):
        boundary.poison_groups(ps, tol=-1)


def test_grey_share_counts_values_strictly_inside_the_band():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.79], [0.8, 1.0, 0.3, 0.1]])
    assert boundary.grey_share(x) == 3 / 8
    assert boundary.grey_share(x, lo=0.0, hi=1.0) == 6 / 8  # all but pure black and white
    with pytest.raises(ValueError, match="lo and hi"):
        boundary.grey_share(x, lo=0.8, hi=0.2)
    with pytest.raises(ValueError, match="empty"):
        boundary.grey_share(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="x must"):
        boundary.grey_share([0.5])


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.rand(1, 4, 1, 3, 3), {}, r"^x must be images \(N, C, H, W\) or inputs \(N, d\)"),
        (torch.rand(4, 3, 3), {}, r"^x must be images \(N, C, H, W\) or inputs \(N, d\)"),
        (torch.full((2, 4), float("nan")), {}, "^x must hold finite numbers"),
        (torch.rand(2, 4), {"hi": True}, "^hi must be a number"),
        (torch.rand(2, 4), {"lo": "0.1"}, "^lo must be a number"),
    ],
)
def test_grey_share_refuses_other_shapes_nan_and_bool_bounds(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        boundary.grey_share(x, **kwargs)


def test_sanitise_poisoned_counts_the_poisons_that_survive(blobs):
    sphere = boundary.SphereDefence.fit(blobs.x_train, blobs.y_train, quantile=0.9)
    inside = sphere.centres.float()  # each class's centroid, with that class's label: kept
    far = (sphere.centres[0] + torch.stack([2 * sphere.radii[0], sphere.radii[0] * 0])).float()  # 2 r away
    poisons = torch.cat([inside, far.unsqueeze(0)])
    ps = pl.PoisonedSet.append(blobs.x_train, blobs.y_train, poisons, torch.tensor([0, 1, 0]))
    x_kept, y_kept, share = boundary.sanitise_poisoned(ps, sphere)
    x_ref, y_ref, keep = boundary.sanitise(ps.x, ps.y, sphere)
    assert torch.equal(x_kept, x_ref) and torch.equal(y_kept, y_ref)
    assert share == 2 / 3 and bool(keep[-3:-1].all()) and not bool(keep[-1])
    clean = pl.PoisonedSet.append(blobs.x_train, blobs.y_train, blobs.x_train[:0], blobs.y_train[:0])
    assert math.isnan(boundary.sanitise_poisoned(clean, sphere)[2])
    with pytest.raises(ValueError, match="PoisonedSet"):
        boundary.sanitise_poisoned((blobs.x_train, blobs.y_train), sphere)
    with pytest.raises(ValueError, match="at least one defence"):
        boundary.sanitise_poisoned(ps)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: boundary.SmallMLP(2.5), "^d must be an integer"),
        (lambda: boundary.SmallMLP(True), "^d must be an integer"),
        (lambda: boundary.SmallMLP(2, hidden=False), "^hidden must be an integer"),
        (lambda: boundary.train_mlp(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), lam=True), "^lam must be a number"),
        (
            lambda: boundary.train_mlp(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), train_lr=float("nan")),
            "^train_lr must be a finite number",
        ),
        (
            lambda: boundary.train_mlp(torch.full((4, 2), float("inf")), torch.tensor([0, 1, 0, 1])),
            "^x must hold finite numbers",
        ),
    ],
)
def test_the_mlp_victim_refuses_bool_and_non_finite_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"train_steps": True}, "^train_steps must be an integer"),
        ({"train_steps": 10.5}, "^train_steps must be an integer"),
        ({"train_lr": True}, "^train_lr must be a number"),
        ({"lam": float("inf")}, "^lam must be a finite number"),
    ],
)
def test_gradient_poison_checks_the_victims_settings_at_the_door(change, match):
    x, y = torch.rand(20, 2), torch.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        boundary.gradient_poison(x, y, x, y, 0.1, steps=1, **change)


def test_flip_influence_refuses_float_indices(blobs):
    x, y = blobs.x_train, blobs.y_train
    with pytest.raises(ValueError, match="^idx must hold integer indices"):
        boundary.flip_influence(x, y, torch.tensor([0.0, 1.0]), blobs.x_test, blobs.y_test)


# -- boxes, defences and index arguments are named when they are wrong ---------------------------


@pytest.mark.parametrize(
    ("box", "error", "match"),
    [
        (None, TypeError, r"^box must be a pair \(lo, hi\) of numbers, got None"),
        (1, TypeError, r"^box must be a pair \(lo, hi\)"),
        ("ab", TypeError, r"^box must be a pair \(lo, hi\)"),
        ((), ValueError, r"^box must be a pair \(lo, hi\) of numbers, got 0 entries"),
        ((0.0, 1.0, 1.0), ValueError, r"^box must be a pair \(lo, hi\) of numbers, got 3 entries"),
        ((1.0, 0.0), ValueError, r"^box must be \(lo, hi\) with finite lo < hi"),
        ((0.0, float("nan")), ValueError, r"^box must be \(lo, hi\) with finite lo < hi"),
    ],
)
def test_box_arguments_are_checked_by_one_rule(box, error, match):
    d = data.toy2d(n_train=20, n_test=20)
    sphere = boundary.SphereDefence.fit(d.x_train, d.y_train)
    with pytest.raises(error, match=match):
        boundary.feasible_projection(sphere, box=box)
    with pytest.raises(error, match=match):
        boundary.attack_surface(d.x_train, d.y_train, d.x_test, d.y_test, 1, resolution=2, box=box)
    with pytest.raises(error, match=match):
        boundary.gradient_poison(d.x_train, d.y_train, d.x_test, d.y_test, 0.1, steps=1, train_steps=2, box=box)


def test_sanitise_and_feasible_projection_name_their_defences():
    d = data.toy2d(n_train=20, n_test=20)
    sphere = boundary.SphereDefence.fit(d.x_train, d.y_train)
    with pytest.raises(TypeError, match="^defences\\[1\\] must be a SphereDefence or a SlabDefence, got 'sphere'"):
        boundary.sanitise(d.x_train, d.y_train, sphere, "sphere")
    with pytest.raises(ValueError, match="^defences must hold at least one defence"):
        boundary.sanitise(d.x_train, d.y_train)
    with pytest.raises(TypeError, match="^defences\\[0\\] must be a SphereDefence"):
        boundary.feasible_projection("sphere")
    with pytest.raises(ValueError, match="^y must be a torch.Tensor of integer labels"):
        boundary.sanitise(d.x_train, None, sphere)


def test_attack_surface_names_the_training_labels_and_flip_influence_names_idx():
    d = data.toy2d(n_train=20, n_test=20)
    with pytest.raises(ValueError, match="^y_train must have 20 entries"):
        boundary.attack_surface(d.x_train, d.y_train[:-1], d.x_test, d.y_test, 1, resolution=2)
    with pytest.raises(ValueError, match="^y_val must be a torch.Tensor"):
        boundary.attack_surface(d.x_train, d.y_train, d.x_test, None, 1, resolution=2)
    for idx in (None, "ab"):
        with pytest.raises(TypeError, match="^idx must be integer indices"):
            boundary.flip_influence(d.x_train, d.y_train, idx, d.x_test, d.y_test)


def test_mlp_attack_refuses_a_budget_that_buys_no_poison():
    d = data.toy2d(n_train=20, n_test=20)
    with pytest.raises(ValueError, match="^eps must buy at least one poison among the 20 training points"):
        boundary.mlp_attack(d.x_train, d.y_train, d.x_test, d.y_test, d.x_test, d.y_test, 0.0, steps=1, train_steps=2)
