import math

import pytest
import torch
from poisonlab import collision, experiment, models
from torch import nn


class Linear(nn.Module):
    """φ(x) = A·vec(x): a fixed linear feature map, so the collision problem is a least-squares one."""

    def __init__(self, d=16, f=4, seed=0):
        super().__init__()
        self.a = torch.randn(f, d, generator=torch.Generator().manual_seed(seed))

    def forward(self, x):
        return x.flatten(1) @ self.a.T


def images(n, seed):
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.25


def test_one_step_is_a_gradient_step_then_the_closed_form_proximal_step():
    phi = Linear().eval()
    t, b = images(1, 1), images(1, 2)
    lr, beta = 0.01, 2.0
    p = collision.feature_collision(phi, t, b, beta=beta, lr=lr, steps=1)
    grad = 2 * ((phi(b) - phi(t)) @ phi.a).view_as(b)  # ∇‖A b − A t‖² at p = b
    expected = ((b - lr * grad) + lr * beta * b) / (1 + lr * beta)
    assert torch.allclose(p, expected.clamp(0, 1), atol=1e-6)


def test_collision_pulls_features_together_and_beta_keeps_the_poison_near_its_base():
    phi = Linear().eval()
    t, b = images(3, 3), images(3, 4)
    loose, tight = {}, {}
    p_loose = collision.feature_collision(phi, t, b, beta=0.0, lr=0.005, steps=200, history=loose)
    p_tight = collision.feature_collision(phi, t, b, beta=50.0, lr=0.005, steps=200, history=tight)
    assert loose["feature_distance"][-1] < 0.2 * loose["feature_distance"][0]
    assert (p_tight - b).norm() < (p_loose - b).norm()
    assert tight["feature_distance"][-1] > loose["feature_distance"][-1]
    assert float(p_loose.min()) >= 0 and float(p_loose.max()) <= 1


def test_batched_crafting_equals_one_at_a_time():
    cnn = models.make("cnn", (1, 8, 8), 3, seed=0).eval()
    t, b = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    batched = collision.feature_collision(cnn.features, t, b, beta=0.5, lr=0.01, steps=20)
    single = torch.stack(
        [collision.feature_collision(cnn.features, t[i], b[i], beta=0.5, lr=0.01, steps=20) for i in range(4)]
    )
    assert torch.allclose(batched, single, atol=1e-5)
    shared = collision.feature_collision(cnn.features, t[0], b, beta=0.5, lr=0.01, steps=2)
    assert shared.shape == b.shape


def test_watermark_blends_the_target_into_the_base():
    t, b = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert torch.allclose(collision.watermark(b, t, 0.3), torch.full_like(b, 0.3))
    assert torch.equal(collision.watermark(b, t, 0.0), b)


def test_collision_rejects_bad_input():
    cnn = models.make("cnn", (1, 8, 8), 3, seed=0)
    t, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="training mode"):
        collision.feature_collision(cnn.features, t, b)
    cnn.eval()
    with pytest.raises(ValueError, match="same shape"):
        collision.feature_collision(cnn.features, torch.rand(2, 1, 6, 6), b)
    with pytest.raises(ValueError, match="beta"):
        collision.feature_collision(cnn.features, t, b, beta=-1.0)
    with pytest.raises(ValueError, match="^target must have one image for each image of base"):
        collision.feature_collision(cnn.features, torch.rand(3, 1, 8, 8), b)
    with pytest.raises(ValueError, match="opacity"):
        collision.watermark(b, t, 1.5)
    for beta in (float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="^beta must be"):
            collision.feature_collision(cnn.features, t, b, beta=beta)
    with pytest.raises(ValueError, match="^seed must be an integer"):
        collision.feature_collision(cnn.features, t, b, seed=1.5)
    with pytest.raises(ValueError, match="^target must hold finite numbers"):
        collision.feature_collision(cnn.features, t / 0, b)


def test_watermark_broadcasts_only_a_single_image_target():
    b = torch.zeros(2, 1, 4, 4)
    assert torch.allclose(collision.watermark(b, torch.ones(1, 4, 4), 0.5), torch.full_like(b, 0.5))
    with pytest.raises(ValueError, match="^target must have one image for each image of base or a single"):
        collision.watermark(b, torch.ones(1, 1, 4, 4), 0.5)
    with pytest.raises(ValueError, match="^base must hold finite numbers"):
        collision.watermark(b / 0, torch.ones(1, 4, 4), 0.5)


def test_head_predict_checks_that_weights_biases_and_features_agree():
    w, bias, feats = torch.zeros(2, 3, 5), torch.zeros(2, 3), torch.rand(4, 5)
    assert collision.head_predict(w, bias, feats).shape == (2, 4)
    with pytest.raises(ValueError, match=r"^biases must be a tensor of shape \(2, 3\)"):
        collision.head_predict(w, bias[:1], feats)
    with pytest.raises(ValueError, match=r"^biases must be a tensor of shape \(1, 3\)"):
        collision.head_predict(w[:1], bias, feats)
    with pytest.raises(ValueError, match=r"^features must have shape \(N, 5\)"):
        collision.head_predict(w, bias, feats[:, :4])
    with pytest.raises(ValueError, match="^weights must hold finite numbers"):
        collision.head_predict(w / 0, bias, feats)
    with pytest.raises(ValueError, match="^biases must be a floating-point tensor"):
        collision.head_predict(w, bias.long(), feats)


def test_heads_read_float64_features_in_their_own_dtype():
    w, bias, feats = torch.rand(2, 3, 5), torch.rand(2, 3), torch.rand(4, 5)
    assert torch.equal(collision.head_predict(w, bias, feats.double()), collision.head_predict(w, bias, feats))
    x, labels = torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    extra, extra_y = torch.rand(2, 1, 3), torch.tensor([[0], [1]])
    w64, b64 = collision.fine_tune_heads(x.double(), labels, extra, extra_y, 3, steps=3)
    w32, _ = collision.fine_tune_heads(x, labels, extra.double(), extra_y, 3, steps=3)
    assert w64.dtype == b64.dtype == torch.float64 and w32.dtype == torch.float32
    assert torch.allclose(w64.float(), w32, atol=1e-5)


@pytest.mark.parametrize("extra", [None, [[[0.0, 1.0, 2.0]]], "poisons"])
def test_fine_tune_heads_name_extra_features_and_labels_that_are_not_tensors(extra):
    x, labels = torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="^extra_features must be a torch.Tensor"):
        collision.fine_tune_heads(x, labels, extra, torch.tensor([[0]]), 3, steps=1)
    with pytest.raises(ValueError, match="^extra_labels must be a"):
        collision.fine_tune_heads(x, labels, torch.rand(1, 1, 3), extra, 3, steps=1)


def test_fine_tune_heads_refuse_float_labels_and_non_finite_features():
    feats, labels = torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    extra, extra_y = torch.rand(2, 1, 3), torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match="^extra_labels must hold integer class labels"):
        collision.fine_tune_heads(feats, labels, extra, extra_y.float(), 3, steps=1)
    with pytest.raises(ValueError, match="^extra_labels must be < 3"):
        collision.fine_tune_heads(feats, labels, extra, extra_y + 5, 3, steps=1)
    with pytest.raises(ValueError, match="^features must hold finite numbers"):
        collision.fine_tune_heads(feats / 0, labels, extra, extra_y, 3, steps=1)
    with pytest.raises(ValueError, match="^extra_features must hold finite numbers"):
        collision.fine_tune_heads(feats, labels, extra / 0, extra_y, 3, steps=1)
    with pytest.raises(ValueError, match="^weight_decay must be"):
        collision.fine_tune_heads(feats, labels, extra, extra_y, 3, steps=1, weight_decay=float("nan"))


def test_wilson_interval_and_budgets_refuse_bool_float_counts_and_bad_distances():
    with pytest.raises(ValueError, match="^successes must be an integer"):
        collision.wilson_interval(True, 10)
    with pytest.raises(ValueError, match="^trials must be an integer"):
        collision.wilson_interval(3, 10.5)
    flipped, judged = torch.tensor([True, True]), torch.tensor([8, 8])
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="^l2 must"):
            collision.success_under_budget(flipped, judged, torch.tensor([1.0, bad]), 8)


def test_fine_tuned_heads_fit_their_own_extra_points():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) - 3, torch.randn(50, 2, generator=g) + 3])
    y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    extra = torch.tensor([[[-3.0, -3.0]], [[3.0, 3.0]]])  # head 0 gets a class-1 point deep in class 0
    w, b = collision.fine_tune_heads(x, y, extra, torch.tensor([[1], [1]]), 2, steps=200, lr=0.5)
    assert w.shape == (2, 2, 2) and b.shape == (2, 2)
    assert (collision.head_predict(w, b, x) == y).float().mean() > 0.9
    assert collision.head_predict(w, b, torch.tensor([[3.0, 3.0], [3.0, 3.0]]), paired=True).tolist() == [1, 1]
    with pytest.raises(ValueError, match="extra_labels"):
        collision.fine_tune_heads(x, y, extra, torch.tensor([1, 1]), 2)
    with pytest.raises(ValueError, match="one row per head"):
        collision.head_predict(w, b, x, paired=True)


def test_fine_tuned_heads_are_independent_and_match_one_head_on_the_union():
    """The clean examples are shared by every head: batching P heads gives what P single-head runs
    give, and a head's result is softmax regression on the clean set plus its own extra points."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    extra, extra_y = torch.randn(4, 2, 3, generator=g), torch.randint(0, 3, (4, 2), generator=g)
    kw = {"steps": 50, "lr": 0.3, "weight_decay": 1e-3}
    w, b = collision.fine_tune_heads(x, y, extra, extra_y, 3, **kw)
    for j in range(4):
        wj, bj = collision.fine_tune_heads(x, y, extra[j : j + 1], extra_y[j : j + 1], 3, **kw)
        assert torch.allclose(w[j], wj[0], atol=1e-5) and torch.allclose(b[j], bj[0], atol=1e-5)
    # head 2 by hand: full-batch SGD with momentum on the mean cross-entropy of the union
    xu, yu = torch.cat([x, extra[2]]), torch.cat([y, extra_y[2]])
    wr, br = torch.zeros(3, 3, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([wr, br], lr=0.3, momentum=0.9)
    for _ in range(50):
        loss = F.cross_entropy(xu @ wr.T + br, yu) + 0.5e-3 * wr.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(w[2], wr.detach(), atol=1e-5) and torch.allclose(b[2], br.detach(), atol=1e-5)


@pytest.fixture(scope="module")
def transfer_setting(mnist5k, made_once):
    from poisonlab.experiment import train_and_score

    d = mnist5k

    def train(folder):  # once per test run: the pytest workers load the same two models
        extractor = train_and_score(
            (d.x_train, d.y_train), d.x_test, d.y_test, arch="mlp", hidden=(256, 256), epochs=4, lr=0.05
        ).model
        judge = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, epochs=4, lr=0.05, seed=7).model
        folder.mkdir(parents=True)
        torch.save({"extractor": extractor, "judge": judge}, folder / "models.pt")
        return [folder / "models.pt"]

    _, (saved,) = made_once("transfer-models", train)
    trained = torch.load(saved, weights_only=False)
    extractor, judge = trained["extractor"].eval(), trained["judge"].eval()
    pair = d.pair(3, 8)  # 3 → 0, 8 → 1
    pick = torch.randperm(len(pair.y_train), generator=torch.Generator().manual_seed(1))[:40]
    targets = pair.x_test[pair.y_test == 0][:12]
    bases = pair.x_test[pair.y_test == 1][:12]
    return extractor, judge, pair, pick, targets, bases


def test_one_shot_transfer_flips_targets_when_the_poison_may_drift(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    inputs = (extractor, judge, pair.x_train[pick], pair.y_train[pick], pair.x_test, pair.y_test, targets, bases, 1)
    loose = collision.one_shot_transfer(*inputs, judge_label=8, beta=0.3, steps=600)
    tight = collision.one_shot_transfer(*inputs, judge_label=8, beta=1000.0, steps=600)
    assert loose.rate("flipped")[0] >= 0.5 and tight.rate("flipped")[0] <= 0.2
    assert float(tight.l2.max()) < float(loose.l2.min())  # β keeps poisons at their bases
    assert tight.rate("judge_reads_base")[0] >= 0.9
    assert torch.equal(loose.success, loose.flipped & loose.judge_reads_base)
    rate, low, high = loose.rate()
    assert low <= rate <= high and loose.poisons.shape == bases.shape and loose.seconds > 0


def test_one_shot_transfer_refuses_labels_and_pairs_out_of_range_by_name(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    x_ft, y_ft = pair.x_train[pick], pair.y_train[pick]

    def call(**change):
        args = dict(x_finetune=x_ft, y_finetune=y_ft, x_test=pair.x_test, y_test=pair.y_test, targets=targets)
        args |= change
        return collision.one_shot_transfer(extractor, judge, bases=bases, base_label=1, steps=1, **args)

    stray = pair.y_test.clone()
    stray[0] = 109
    with pytest.raises(ValueError, match="^y_test must be < 2"):
        call(y_test=stray)
    with pytest.raises(ValueError, match="^y_test must be >= 0"):
        call(y_test=stray - 110)
    with pytest.raises(ValueError, match="^targets must have one image for each image of bases; got 11 for 12"):
        call(targets=targets[:-1])
    with pytest.raises(ValueError, match=r"^targets must have shape \(N, C, H, W\)"):
        call(targets=targets[0])
    with pytest.raises(ValueError, match="^x_test must hold finite numbers"):
        call(x_test=pair.x_test / 0)
    with pytest.raises(TypeError, match="^x_finetune must hold floating-point inputs"):
        call(x_finetune=(x_ft * 255).to(torch.uint8))


def test_one_shot_transfer_rejects_models_in_training_mode(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    judge.train()
    try:
        with pytest.raises(ValueError, match="judge"):
            collision.one_shot_transfer(
                extractor,
                judge,
                pair.x_train[pick],
                pair.y_train[pick],
                pair.x_test,
                pair.y_test,
                targets,
                bases,
                1,
                steps=1,
            )
    finally:
        judge.eval()


def test_wilson_interval():
    low, high = collision.wilson_interval(45, 50)
    assert 0.78 < low < 0.9 < high < 0.97
    assert collision.wilson_interval(0, 10)[0] == 0.0 and collision.wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        collision.wilson_interval(3, 2)


def test_end_to_end_fine_tuning_reports_whether_the_target_flips(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    before = [p.detach().clone() for p in extractor.parameters()]
    # copies of the target itself, labelled as the base class, flip it; no poisons do not
    x_ft, y_ft = pair.x_train[pick], pair.y_train[pick]
    assert experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[0], targets[:1].repeat(20, 1, 1, 1), 1)
    assert not experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[0], targets[:0], 1)
    assert all(torch.equal(a, b) for a, b in zip(before, extractor.parameters()))  # the extractor is untouched
    with pytest.raises(ValueError, match="one image"):
        experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[:2], targets[:0], 1)


def test_success_under_budget_counts_wins_the_judge_and_the_budget_accept():
    flipped = torch.tensor([True, True, False, True, True])
    judged = torch.tensor([8, 3, 8, 8, 8])
    l2 = torch.tensor([1.0, 1.0, 1.0, 3.0, 2.0])
    # pair 0 and 4 pass (4 exactly at τ); 1 is read as a 3, 2 did not flip, 3 is over budget
    assert collision.success_under_budget(flipped, judged, l2, 8, 2.0) == (0.4, 1.5)
    assert collision.success_under_budget(flipped, judged, l2, 8) == (0.6, 2.0)  # no budget
    rate, mean_l2 = collision.success_under_budget(flipped, judged, l2, 8, 0.5)
    assert rate == 0.0 and math.isnan(mean_l2)


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.tensor([1, 0]), torch.tensor([8, 8]), torch.tensor([1.0, 1.0]), 8, 2.0), "flipped"),
        ((torch.tensor([True]), torch.tensor([8, 8]), torch.tensor([1.0]), 8, 2.0), "judged"),
        ((torch.tensor([True]), torch.tensor([8]), torch.tensor([1]), 8, 2.0), "l2"),
        ((torch.tensor([True]), torch.tensor([8]), torch.tensor([1.0]), -1, 2.0), "base"),
        ((torch.tensor([True]), torch.tensor([8]), torch.tensor([1.0]), 8, 0.0), "tau"),
        (
            (torch.tensor([], dtype=torch.bool), torch.tensor([], dtype=torch.long), torch.tensor([]), 8, 2.0),
            "one pair",
        ),
    ],
)
def test_success_under_budget_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        collision.success_under_budget(*args)


def test_end_to_end_flipped_asks_one_victim_per_target(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    x_ft, y_ft = pair.x_train[pick], pair.y_train[pick]
    copies = targets[:2].unsqueeze(1).repeat(1, 20, 1, 1, 1)  # 20 copies of each target, labelled as the base
    flipped = experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2], copies, 1)
    assert flipped.dtype == torch.bool and flipped.tolist() == [True, True]
    mixed = torch.stack([copies[0, :12], bases[:12]])  # the second target gets 8s, not copies of itself
    expected = [experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[j], mixed[j], 1) for j in range(2)]
    assert experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2], mixed, 1).tolist() == expected
    clean = experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2], None, 1)
    assert clean.tolist() == [
        experiment.end_to_end_flips(extractor, x_ft, y_ft, t, targets[:0], 1) for t in targets[:2]
    ]
    with pytest.raises(ValueError, match="one per target"):
        experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2], copies[:1], 1)
    with pytest.raises(ValueError, match="targets must be images"):
        experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[0], None, 1)
    with pytest.raises(ValueError, match="^targets must hold finite numbers"):
        experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2] / 0, None, 1)
    with pytest.raises(TypeError, match="^poisons must hold floating-point inputs"):
        experiment.end_to_end_flipped(extractor, x_ft, y_ft, targets[:2], copies.to(torch.uint8), 1)


def test_end_to_end_flips_refuses_integer_images_and_mismatched_shapes_by_name(transfer_setting):
    extractor, judge, pair, pick, targets, bases = transfer_setting
    x_ft, y_ft = pair.x_train[pick], pair.y_train[pick]
    with pytest.raises(TypeError, match="^x_finetune must hold floating-point inputs"):
        experiment.end_to_end_flips(extractor, (x_ft * 255).to(torch.uint8), y_ft, targets[0], targets[:0], 1)
    with pytest.raises(TypeError, match="^poisons must hold floating-point inputs"):
        experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[0], bases[:2].bool(), 1)
    with pytest.raises(ValueError, match="^target must hold finite numbers"):
        experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[0] / 0, targets[:0], 1)
    with pytest.raises(ValueError, match="^poisons must be images"):
        experiment.end_to_end_flips(extractor, x_ft, y_ft, targets[0], bases[0], 1)
    with pytest.raises(ValueError, match="^y_finetune must hold at least one label"):
        experiment.end_to_end_flips(extractor, x_ft[:0], y_ft[:0], targets[0], targets[:0], 1)
    with pytest.raises(ValueError, match="^y_finetune must have"):
        experiment.end_to_end_flips(extractor, x_ft, y_ft[:-1], targets[0], targets[:0], 1)


def test_bases_per_target_draws_different_bases_target_by_target():
    pool = torch.arange(100, 130)
    picks = collision.bases_per_target(pool, 5, 4)
    assert picks.shape == (5, 4) and bool(torch.isin(picks, pool).all())
    assert all(len(set(row.tolist())) == 4 for row in picks)  # no base twice for one target
    assert torch.equal(collision.bases_per_target(pool, 2, 4), picks[:2])  # a target's draw ignores the others
    assert torch.equal(collision.bases_per_target(pool, 5, 4), picks)
    assert not torch.equal(collision.bases_per_target(pool, 5, 4, seed=1)[0], picks[0])
    assert torch.equal(collision.bases_per_target(pool, 5, 4, seed=1)[:4], picks[1:])
    with pytest.raises(ValueError, match="count must be at most"):
        collision.bases_per_target(pool, 5, 31)
    with pytest.raises(ValueError, match="pool must be a 1-D"):
        collision.bases_per_target(pool.view(5, 6), 5, 4)
    with pytest.raises(ValueError, match="n_targets"):
        collision.bases_per_target(pool, 0, 4)
    with pytest.raises(ValueError, match="seed"):
        collision.bases_per_target(pool, 5, 4, seed=0.5)
    with pytest.raises(ValueError, match="^pool must hold indices >= 0"):
        collision.bases_per_target(torch.tensor([-1, 2, 3]), 1, 2)
    with pytest.raises(ValueError, match="^pool must hold integer indices"):
        collision.bases_per_target(pool.float(), 1, 2)


def test_perturbation_norms_are_the_mean_l2_and_linf_of_the_moves():
    bases = torch.zeros(2, 1, 2, 2)
    poisons = bases.clone()
    poisons[0, 0, 0, 0] = 0.3  # L2 0.3, L∞ 0.3
    poisons[1, 0] = torch.tensor([[0.4, 0.0], [0.0, -0.3]])  # L2 0.5, L∞ 0.4
    l2, linf = collision.perturbation_norms(poisons, bases)
    assert l2 == pytest.approx(0.4) and linf == pytest.approx(0.35)
    assert collision.perturbation_norms(bases, bases) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        collision.perturbation_norms(poisons, bases[:1])
    with pytest.raises(ValueError, match="P >= 1"):
        collision.perturbation_norms(poisons[:0], bases[:0])
    with pytest.raises(ValueError, match="^poisons must be a floating-point tensor"):
        collision.perturbation_norms(poisons.long(), bases.long())
    with pytest.raises(ValueError, match="^bases must hold finite numbers"):
        collision.perturbation_norms(poisons, bases / 0)


def test_simplex_projection_and_polytopes_refuse_non_finite_inputs():
    with pytest.raises(ValueError, match="^v must hold finite numbers"):
        collision.project_simplex(torch.tensor([[0.5, float("nan")]]))
    model = models.make("cnn", (1, 8, 8), 3, seed=0).eval()
    bases = torch.rand(1, 2, 1, 8, 8)
    bases[0, 0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="^bases must hold finite numbers"):
        collision.bullseye_polytope(model.features, torch.rand(1, 1, 8, 8), bases, eps=0.1, steps=1)


def test_float64_images_are_converted_to_the_extractors_dtype():
    cnn = models.make("cnn", (1, 8, 8), 3, seed=0).eval()
    t, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    single = collision.feature_collision(cnn.features, t, b, steps=2)
    double = collision.feature_collision(cnn.features, t.double(), b.double(), steps=2)
    assert double.dtype == torch.float32 and torch.allclose(double, single)
    with pytest.raises(ValueError, match="^feature_fn must be callable"):
        collision.feature_collision("features", t, b, steps=2)


def test_collision_with_adam_moves_the_features_and_keeps_the_budget():
    cnn = models.make("cnn", (1, 8, 8), 3, seed=0).eval()
    g = torch.Generator().manual_seed(3)
    t, b = torch.rand(4, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    history = {}
    p = collision.feature_collision(
        cnn.features, t, b, beta=0.0, lr=0.01, steps=30, eps=0.1, optimizer="adam", history=history
    )
    assert (p - b).abs().max() <= 0.1 + 1e-6 and p.min() >= 0 and p.max() <= 1
    assert history["feature_distance"][-1] < 0.9 * history["feature_distance"][0]
    with pytest.raises(ValueError, match="optimizer"):
        collision.feature_collision(cnn.features, t, b, optimizer="sgd")


def test_fine_tuned_heads_report_their_training_and_reach_the_minimiser_with_weight_decay():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) - 2, torch.randn(50, 2, generator=g) + 2])
    y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    none = x.new_zeros(1, 0, 2)
    history = {}
    collision.fine_tune_heads(x, y, none, y.new_zeros(1, 0), 2, steps=300, lr=0.5, weight_decay=1e-2, history=history)
    assert len(history["loss"]) == 300 and history["final_loss"][0] <= history["loss"][0]
    assert history["train_accuracy"][0] > 0.95
    assert history["gradient_norm"][0] < 1e-3  # strongly convex: 300 steps reach the minimiser
    short = {}
    collision.fine_tune_heads(x, y, none, y.new_zeros(1, 0), 2, steps=3, lr=0.5, weight_decay=1e-2, history=short)
    assert short["gradient_norm"][0] > 10 * history["gradient_norm"][0]  # three steps do not


def test_rank_agreement_counts_agreements_disagreements_and_ties_and_matches_spearman():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.5])
    outcomes = torch.tensor([2, 0, 1, 0])
    r = collision.rank_agreement(scores, outcomes)
    # pairs with different outcomes: (0,1) (0,2) (0,3) (2,1) (2,3): four agree, one (2 vs 3) ties
    assert (r["agree"], r["disagree"], r["tied"], r["comparisons"]) == (4.0, 0.0, 1.0, 5.0)
    assert r["c_index"] == pytest.approx(4.5 / 5)
    # Spearman by hand: ranks of the scores (4, 1, 2.5, 2.5), of the outcomes (4, 1.5, 3, 1.5)
    rs, ro = torch.tensor([4, 1, 2.5, 2.5]), torch.tensor([4, 1.5, 3, 1.5])
    rs, ro = rs - rs.mean(), ro - ro.mean()
    assert r["spearman"] == pytest.approx(float((rs * ro).sum() / (rs.norm() * ro.norm())))
    reverse = collision.rank_agreement(-scores, outcomes)
    assert (reverse["agree"], reverse["disagree"]) == (0.0, 4.0) and reverse["spearman"] == pytest.approx(
        -r["spearman"]
    )


def test_rank_agreement_of_a_binary_outcome_is_the_area_under_the_roc_curve():
    g = torch.Generator().manual_seed(0)
    scores, won = torch.randn(60, generator=g), torch.rand(60, generator=g) < 0.3
    pos, neg = scores[won], scores[~won]
    auc = float((pos[:, None] > neg[None, :]).double().mean())  # no ties among continuous scores
    assert collision.rank_agreement(scores, won)["c_index"] == pytest.approx(auc)


def test_rank_agreement_of_a_constant_score_ties_every_pair():
    r = collision.rank_agreement(torch.zeros(5), torch.tensor([0, 1, 1, 2, 0]))
    assert r["tied"] == r["comparisons"] == 8.0 and r["c_index"] == 0.5 and math.isnan(r["spearman"])
    assert math.isnan(collision.rank_agreement(torch.arange(3.0), torch.ones(3))["c_index"])


@pytest.mark.parametrize(
    "scores, outcomes, match",
    [
        ([0.1, 0.2], torch.tensor([0, 1]), "scores"),
        (torch.tensor([1, 2]), torch.tensor([0, 1]), "floating point"),
        (torch.zeros(2, 2), torch.tensor([0, 1]), "scores must be a 1-D"),
        (torch.zeros(3), torch.tensor([0, 1]), "same length"),
        (torch.zeros(1), torch.tensor([0]), "P >= 2"),
        (torch.tensor([0.0, float("nan")]), torch.tensor([0, 1]), "scores must hold finite"),
        (torch.zeros(2), torch.tensor([0.0, float("inf")]), "outcomes must hold finite"),
    ],
)
def test_rank_agreement_rejects_bad_input(scores, outcomes, match):
    with pytest.raises(ValueError, match=match):
        collision.rank_agreement(scores, outcomes)
