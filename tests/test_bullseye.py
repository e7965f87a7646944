"""Bullseye Polytope and the ℓ∞ budget of feature collision (poisonlab.collision)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import collision, models
from torch import nn


class Linear(nn.Module):
    """φ(x) = A·vec(x): a fixed linear feature map, so the mean of the poisons' features is A·mean(p)."""

    def __init__(self, d=16, f=4, seed=0):
        super().__init__()
        self.a = torch.randn(f, d, generator=torch.Generator().manual_seed(seed))

    def forward(self, x):
        return x.flatten(1) @ self.a.T


def uniform(*shape, seed, low=0.0, high=1.0):
    return low + (high - low) * torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def cnn():
    return models.make("cnn", (1, 8, 8), 3, seed=0).eval()


@pytest.mark.parametrize("case", range(12))
def test_no_poison_ever_leaves_its_budget(cnn, case):
    """A property over random budgets, images (pixels at 0 and 1 included) and step sizes: both
    attacks keep every pixel within ε of its base and inside [0, 1]."""
    g = torch.Generator().manual_seed(case)
    eps = float(torch.empty(1).uniform_(0.005, 1.0, generator=g))
    lr = float(10 ** torch.empty(1).uniform_(-3, 0, generator=g))  # Adam's step, in pixels
    fc_lr = float(10 ** torch.empty(1).uniform_(0, 2, generator=g))  # a gradient step: φ's gradients are small
    targets, bases = torch.rand(3, 1, 8, 8, generator=g), torch.rand(3, 2, 1, 8, 8, generator=g)
    bases[0, 0] = bases[0, 0].round()  # saturated pixels: the box and the ball meet
    poisons = collision.bullseye_polytope(cnn.features, targets, bases, eps=eps, steps=15, lr=lr)
    assert float((poisons - bases).abs().max()) <= eps + 1e-6
    assert 0.0 <= float(poisons.min()) and float(poisons.max()) <= 1.0
    flat = bases.flatten(0, 1)
    opacity = float(torch.empty(1).uniform_(0, 0.5, generator=g)) if case % 2 else 0.0
    fc = collision.feature_collision(
        cnn.features, targets.repeat_interleave(2, 0), flat, beta=0.0, lr=fc_lr, steps=15, eps=eps, opacity=opacity
    )
    marked = collision.watermark(flat, targets.repeat_interleave(2, 0), opacity)  # the budget is around this
    assert float((fc - marked).abs().max()) <= eps + 1e-6
    assert 0.0 <= float(fc.min()) and float(fc.max()) <= 1.0


def test_the_budget_binds_where_the_unbounded_attack_would_move_further(cnn):
    targets, bases = uniform(2, 1, 8, 8, seed=1), uniform(2, 1, 8, 8, seed=2)
    free = collision.feature_collision(cnn.features, targets, bases, beta=0.0, lr=0.5, steps=30)
    bound = collision.feature_collision(cnn.features, targets, bases, beta=0.0, lr=0.5, steps=30, eps=0.02)
    assert float((free - bases).abs().max()) > 0.05 and float((bound - bases).abs().max()) <= 0.02 + 1e-6
    whole = collision.feature_collision(cnn.features, targets, bases, beta=0.0, lr=0.5, steps=30, eps=1.0)
    assert torch.equal(whole, free)  # ε = 1 leaves all of [0, 1] open: no budget


def test_one_budgeted_step_is_the_free_step_clamped_to_the_box(cnn):
    phi = Linear().eval()
    t, b = uniform(1, 1, 4, 4, seed=1), uniform(1, 1, 4, 4, seed=2, low=0.25, high=0.75)
    free = collision.feature_collision(phi, t, b, beta=2.0, lr=0.05, steps=1)
    bound = collision.feature_collision(phi, t, b, beta=2.0, lr=0.05, steps=1, eps=0.01)
    assert torch.allclose(bound, torch.minimum(torch.maximum(free, b - 0.01), b + 0.01))


def test_polytope_centre_lands_on_the_target_when_the_optimum_is_reachable():
    """With φ linear, mean_j φ(p_j) = A·mean_j p_j: moving every base by the same δ* (inside the
    budget) puts the centre exactly on a target t = mean_j b_j + δ*, so the loss can reach 0."""
    phi = Linear(d=16, f=4).eval()
    p_targets, k, eps = 3, 4, 0.1
    bases = uniform(p_targets, k, 1, 4, 4, seed=3, low=0.25, high=0.75)
    shift = uniform(p_targets, 1, 4, 4, seed=4, low=-0.5 * eps, high=0.5 * eps)
    targets = bases.mean(1) + shift
    history = {}
    poisons = collision.bullseye_polytope(phi, targets, bases, eps=eps, steps=400, lr=0.002, history=history)
    centre = phi(poisons.flatten(0, 1)).view(p_targets, k, -1).mean(1)
    relative = (centre - phi(targets)).norm(dim=1) / phi(targets).norm(dim=1)
    start = (phi(bases.flatten(0, 1)).view(p_targets, k, -1).mean(1) - phi(targets)).norm(dim=1)
    assert float(relative.max()) < 1e-3 and bool((start / phi(targets).norm(dim=1) > 0.02).all())
    assert len(history["loss"]) == 401 and history["loss"][-1] < 1e-4 * history["loss"][0]
    assert float((poisons - bases).abs().max()) <= eps + 1e-6


def test_crafting_p_targets_together_equals_one_at_a_time(cnn):
    targets, bases = uniform(3, 1, 8, 8, seed=5), uniform(3, 2, 1, 8, 8, seed=6)
    together = collision.bullseye_polytope(cnn.features, targets, bases, eps=0.1, steps=25, lr=0.01)
    alone = torch.cat(
        [
            collision.bullseye_polytope(cnn.features, targets[i : i + 1], bases[i : i + 1], eps=0.1, steps=25, lr=0.01)
            for i in range(3)
        ]
    )
    assert together.shape == bases.shape
    assert torch.allclose(together, alone, atol=1e-4)
    assert float((together - bases).abs().max()) > 0.05  # they did move


def test_bullseye_is_deterministic_and_leaves_its_inputs_alone(cnn):
    targets, bases = uniform(2, 1, 8, 8, seed=7), uniform(2, 3, 1, 8, 8, seed=8)
    t0, b0 = targets.clone(), bases.clone()
    state = torch.random.get_rng_state()
    first = collision.bullseye_polytope(cnn.features, targets, bases, eps=0.05, steps=10, lr=0.01, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
    again = collision.bullseye_polytope(cnn.features, targets, bases, eps=0.05, steps=10, lr=0.01, seed=3)
    assert torch.equal(first, again)
    assert torch.equal(targets, t0) and torch.equal(bases, b0)
    assert not first.requires_grad
    assert all(w.grad is None for w in cnn.parameters())  # the extractor is left as it was


def test_the_mean_objective_beats_collision_under_the_same_budget_on_a_linear_extractor():
    """Bullseye only asks the k poisons' centre to reach φ(t); collision asks each poison to. Under one
    budget, the centre of the collision poisons ends no closer to the target than Bullseye's."""
    phi = Linear(d=16, f=8, seed=1).eval()
    bases = uniform(4, 5, 1, 4, 4, seed=9, low=0.2, high=0.8)
    targets = uniform(4, 1, 4, 4, seed=10, low=0.2, high=0.8)
    bp = collision.bullseye_polytope(phi, targets, bases, eps=0.1, steps=300, lr=0.005)
    fc = collision.feature_collision(
        phi, targets.repeat_interleave(5, 0), bases.flatten(0, 1), beta=0.0, lr=0.002, steps=300, eps=0.1
    ).view_as(bases)

    def miss(p):
        return (phi(p.flatten(0, 1)).view(4, 5, -1).mean(1) - phi(targets)).norm(dim=1)

    assert bool((miss(bp) <= miss(fc) + 1e-4).all())


@pytest.mark.parametrize(
    "change, match",
    [
        ({"bases": torch.rand(2, 1, 8, 8)}, "bases must be a floating-point tensor shaped"),
        ({"bases": torch.rand(3, 2, 1, 8, 8)}, "bases must be shaped"),
        ({"bases": torch.rand(2, 2, 1, 6, 6)}, "bases must be shaped"),
        ({"bases": torch.rand(2, 0, 1, 8, 8)}, "at least one target"),
        ({"targets": torch.rand(1, 8, 8)}, "targets must have shape"),
        ({"eps": None}, "eps"),
        ({"eps": 0.0}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"eps": True}, "eps"),
        ({"steps": 0}, "steps"),
        ({"lr": -0.1}, "lr"),
        ({"seed": 0.5}, "seed"),
    ],
)
def test_bullseye_rejects_bad_input(cnn, change, match):
    args = {"targets": torch.rand(2, 1, 8, 8), "bases": torch.rand(2, 2, 1, 8, 8), "eps": 0.1, "steps": 2, "lr": 0.01}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        collision.bullseye_polytope(cnn.features, args.pop("targets"), args.pop("bases"), **args)


def test_bullseye_and_the_budget_reject_a_model_in_training_mode_and_bad_eps():
    model = models.make("cnn", (1, 8, 8), 3, seed=0)
    with pytest.raises(ValueError, match="training mode"):
        collision.bullseye_polytope(model.features, torch.rand(1, 1, 8, 8), torch.rand(1, 2, 1, 8, 8), eps=0.1)
    model.eval()
    for eps in (0.0, -0.1, 2.0, "0.1", True):
        with pytest.raises(ValueError, match=r"eps must be None or a number in \(0, 1\]"):
            collision.feature_collision(model.features, torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), eps=eps)


def test_simplex_projection_lands_on_the_simplex_and_keeps_points_already_there():
    v = torch.tensor([[0.2, 0.3, 0.5], [2.0, 0.0, 0.0], [0.6, 0.6, -1.0], [-1.0, -1.0, -1.0]])
    c = collision.project_simplex(v)
    assert torch.allclose(c.sum(1), torch.ones(4)) and bool((c >= 0).all())
    assert torch.allclose(c, torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    with pytest.raises(ValueError, match="shaped"):
        collision.project_simplex(torch.rand(3))


def test_convex_polytope_encloses_a_reachable_target_within_its_budget():
    """An invertible linear φ and a target at a convex combination (weights w) of slightly shifted bases:
    the loss can reach 0, but only with the coefficients free (equal weights, Bullseye's, cannot)."""
    phi = Linear(d=16, f=16).eval()
    bases = uniform(2, 4, 1, 4, 4, seed=11, low=0.25, high=0.75)
    w = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    shift = uniform(2, 4, 1, 4, 4, seed=12, low=-0.01, high=0.01)
    targets = torch.einsum("pk,pkchw->pchw", w, bases + shift)
    history = {}
    poisons, c = collision.convex_polytope(phi, targets, bases, eps=0.03, steps=300, lr=0.001, history=history)
    assert poisons.shape == bases.shape and c.shape == (2, 4)
    assert torch.allclose(c.sum(1), torch.ones(2)) and bool((c >= 0).all())
    assert float((poisons - bases).abs().max()) <= 0.03 + 1e-6
    reached = torch.einsum("pk,pkf->pf", c, phi(poisons.flatten(0, 1)).view(2, 4, -1))
    assert float(((reached - phi(targets)).norm(dim=1) / phi(targets).norm(dim=1)).max()) < 1e-2
    assert history["loss"][-1] < 1e-3 * history["loss"][0]
    centre = collision.bullseye_polytope(phi, targets, bases, eps=0.03, steps=300, lr=0.001)
    missed = (phi(centre.flatten(0, 1)).view(2, 4, -1).mean(1) - phi(targets)).norm(dim=1) / phi(targets).norm(dim=1)
    assert float(missed[0]) > 0.05  # the unequal mixture is out of Bullseye's reach
    with pytest.raises(ValueError, match="coefficient_steps"):
        collision.convex_polytope(phi, targets, bases, eps=0.1, coefficient_steps=0)


def keeping_setup():
    """An invertible linear φ and a three-class head on it that reads an image by its mean pixel
    (class 0 below 0.5, class 1 above): the bases (mean about 0.45) read as 0, the targets (about
    0.6) as 1, so pulling the poisons' centre onto the target costs the head's reading of them."""
    phi = Linear(d=16, f=16, seed=2).eval()
    bases = uniform(3, 4, 1, 4, 4, seed=13, low=0.35, high=0.55)
    targets = uniform(3, 1, 4, 4, seed=14, low=0.45, high=0.75)
    mean_pixel = torch.linalg.pinv(phi.a).T @ torch.full((16,), 1 / 16)  # w·φ(x) = the mean pixel of x
    w = 40.0 * torch.stack([-mean_pixel, mean_pixel, torch.zeros(16)])
    return phi, targets, bases, (w, torch.tensor([20.0, -20.0, -5.0]))


def test_the_keeping_term_raises_the_own_heads_confidence_in_the_base_class():
    phi, targets, bases, (w, bias) = keeping_setup()

    def p_base(poisons):
        return float(torch.softmax(phi(poisons.flatten(0, 1)) @ w.T + bias, 1)[:, 0].mean())

    assert p_base(bases) > 0.9 and p_base(targets.unsqueeze(1)) < 0.01  # bases read as 0, targets as 1
    args = {"eps": 0.1, "steps": 150, "lr": 0.005}
    plain = collision.bullseye_polytope(phi, targets, bases, **args)
    history = {}
    kept = collision.bullseye_polytope(
        phi, targets, bases, keep_classifier=(w, bias), keep_label=0, keep_weight=1.0, history=history, **args
    )
    assert p_base(plain) < 0.5 and p_base(kept) > 0.9
    assert float((kept - bases).abs().max()) <= 0.1 + 1e-6 and 0.0 <= float(kept.min()) and float(kept.max()) <= 1.0
    assert len(history["keep"]) == len(history["loss"]) == 151
    # λ = 0 with a head given is the paper's loss, bit for bit
    zero = collision.bullseye_polytope(phi, targets, bases, keep_classifier=(w, bias), keep_label=0, **args)
    assert torch.equal(zero, plain)
    # the same classifier given as a network of images gives the same poisons
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        net[1].weight.copy_(w @ phi.a)
        net[1].bias.copy_(bias)
    by_net = collision.bullseye_polytope(
        phi, targets, bases, keep_classifier=net, keep_label=0, keep_weight=1.0, **args
    )
    assert torch.allclose(by_net, kept, atol=1e-4)
    assert all(q.grad is None for q in net.parameters())


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"keep_weight": -0.1}, ValueError, "keep_weight"),
        ({"keep_weight": float("nan")}, ValueError, "keep_weight"),
        ({"keep_weight": True}, ValueError, "keep_weight"),
        ({"keep_classifier": None}, ValueError, "needs keep_classifier"),
        ({"keep_classifier": torch.zeros(3, 16)}, ValueError, "pair"),
        ({"keep_classifier": (torch.zeros(3, 16), [0.0, 0.0, 0.0])}, ValueError, "pair"),
        ({"keep_classifier": (torch.zeros(3, 5), torch.zeros(3))}, ValueError, r"shaped \(K, 16\)"),
        ({"keep_classifier": (torch.zeros(3, 16), torch.zeros(2))}, ValueError, r"shaped \(K, 16\)"),
        ({"keep_classifier": (torch.zeros(1, 16), torch.zeros(1))}, ValueError, "K >= 2"),
        ({"keep_classifier": (torch.zeros(3, 16, dtype=torch.long), torch.zeros(3))}, TypeError, "floating point"),
        ({"keep_classifier": (torch.full((3, 16), float("nan")), torch.zeros(3))}, ValueError, "finite"),
        ({"keep_label": None}, ValueError, "needs keep_label"),
        ({"keep_classifier": nn.Linear(16, 3)}, ValueError, "training mode"),
        ({"keep_classifier": nn.Linear(5, 3).eval()}, ValueError, "model"),
        (
            {"keep_classifier": nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval(), "keep_label": 2},
            ValueError,
            "keep_label",
        ),
        ({"keep_label": 3}, ValueError, "keep_label"),
        ({"keep_label": 1.0}, ValueError, "keep_label"),
        (
            {"keep_label": 2, "keep_weight": 0.0, "keep_classifier": (torch.zeros(3, 5), torch.zeros(3))},
            ValueError,
            "K",
        ),
    ],
)
def test_bullseye_rejects_a_bad_keeping_head(change, error, match):
    phi, targets, bases, head = keeping_setup()
    args = {"keep_classifier": head, "keep_label": 0, "keep_weight": 0.5, "eps": 0.1, "steps": 2}
    args.update(change)
    with pytest.raises(error, match=match):
        collision.bullseye_polytope(phi, targets, bases, **args)


def test_centred_bases_balance_bases_on_both_sides_of_the_target():
    # the target at the origin; two near bases on the same side, two a little farther on opposite sides
    target = torch.zeros(1, 2)
    pool = torch.tensor([[1.0, 0.0], [1.1, 0.0], [-1.5, 0.0], [0.0, 3.0]])
    nearest = collision.centred_bases(target, pool, 2, candidates=2)
    assert nearest.tolist() == [[0, 1]]  # candidates == k: the k nearest
    centred = collision.centred_bases(target, pool, 2, candidates=3)
    assert centred.tolist() == [[0, 2]]  # the nearest, then the one that pulls the mean back to the target
    mean_gap = lambda idx: float(pool[idx[0]].mean(0).norm())  # noqa: E731
    assert mean_gap(centred) < mean_gap(nearest)


@given(p=st.integers(1, 4), b=st.integers(3, 12), k=st.integers(1, 3), extra=st.integers(0, 4), seed=st.integers(0, 99))
@settings(max_examples=40, deadline=None)
def test_centred_bases_are_distinct_candidates_and_no_farther_in_mean_than_the_nearest(p, b, k, extra, seed):
    g = torch.Generator().manual_seed(seed)
    targets, pool = torch.randn(p, 3, generator=g), torch.randn(b, 3, generator=g)
    candidates = min(b, k + extra)
    picks = collision.centred_bases(targets, pool, k, candidates=candidates)
    assert picks.shape == (p, k) and picks.dtype == torch.long
    near = torch.cdist(targets, pool).topk(candidates, dim=1, largest=False).indices
    for i in range(p):
        assert len(set(picks[i].tolist())) == k and set(picks[i].tolist()) <= set(near[i].tolist())
        assert int(picks[i, 0]) == int(near[i, 0])  # the first pick is the nearest
    gap = (pool[picks].mean(1) - targets).norm(dim=1)
    # greedy keeps the nearest as its first pick, so with one base it is exactly the nearest
    if k == 1:
        assert torch.allclose(gap, (pool[near[:, :1]].mean(1) - targets).norm(dim=1))


@pytest.mark.parametrize(
    ("targets", "pool", "k", "candidates", "match"),
    [
        (torch.zeros(2), torch.zeros(5, 2), 1, 2, "target_features"),
        (torch.zeros(1, 2), torch.zeros(5, 3), 1, 2, "share F"),
        (torch.zeros(0, 2), torch.zeros(5, 2), 1, 2, "P >= 1"),
        (torch.zeros(1, 2, dtype=torch.long), torch.zeros(5, 2), 1, 2, "floating-point"),
        (torch.zeros(1, 2), torch.full((5, 2), float("nan")), 1, 2, "finite"),
        (torch.zeros(1, 2), torch.zeros(5, 2), 3, 2, "k <= candidates"),
        (torch.zeros(1, 2), torch.zeros(5, 2), 1, 6, "pool size 5"),
        (torch.zeros(1, 2), torch.zeros(5, 2), 0, 2, "k"),
        (torch.zeros(1, 2, dtype=torch.float64), torch.zeros(5, 2), 1, 2, "share a dtype"),
    ],
)
def test_centred_bases_refuse_bad_inputs(targets, pool, k, candidates, match):
    with pytest.raises(ValueError, match=match):
        collision.centred_bases(targets, pool, k, candidates=candidates)
