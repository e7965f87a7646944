"""The learners of chapter 1 and the two ways of differentiating through their training,
checked against finite differences on tiny problems."""

import pytest
import torch
from poisonlab.bilevel import autograd_hvp, implicit_gradient, unrolled_gradient
from poisonlab.boundary import SmallMLP
from poisonlab.linear import LinearLearner, conjugate_gradient


def tiny_problem(seed=0, n=20, d=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.2 * torch.randn(n, generator=g, dtype=torch.float64) > 0.5).long()
    xv = torch.rand(40, d, generator=g, dtype=torch.float64)
    yv = (xv[:, 0] > 0.5).long()
    xp = torch.rand(2, d, generator=g, dtype=torch.float64)
    yp = torch.tensor([0, 1])
    return x, y, xv, yv, xp, yp


def finite_difference(f, xp, h=1e-5):
    fd = torch.zeros_like(xp)
    for idx in range(xp.numel()):
        e = torch.zeros(xp.numel(), dtype=xp.dtype)
        e[idx] = h
        e = e.reshape(xp.shape)
        fd.view(-1)[idx] = (f(xp + e) - f(xp - e)) / (2 * h)
    return fd


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_newton_training_reaches_the_optimum(loss):
    x, y, *_ = tiny_problem()
    learner = LinearLearner(loss, 0.1, beta=5.0)
    theta = learner.fit(x, y, tol=1e-12)
    assert float(learner.gradient(theta, x, y).norm()) < 1e-10
    th = theta.clone().requires_grad_(True)
    auto = torch.autograd.grad(learner.objective(th, x, y), th)[0]
    assert torch.allclose(auto, learner.gradient(theta, x, y), atol=1e-12)
    reg = 0.5 * learner.lam * theta.pow(2).sum()
    assert torch.allclose(learner.objective(theta, x, y), learner.mean_loss(theta, x, y) + reg)
    v = torch.randn(4, dtype=torch.float64)
    assert torch.allclose(learner.hvp(theta, x, y)(v), learner.hessian(theta, x, y) @ v, atol=1e-12)
    assert torch.allclose(
        autograd_hvp(lambda t: learner.objective(t, x, y), theta)(v), learner.hvp(theta, x, y)(v), atol=1e-12
    )


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
@pytest.mark.parametrize("exact_solve", [False, True])
def test_implicit_gradient_matches_finite_differences(loss, exact_solve):
    x, y, xv, yv, xp, yp = tiny_problem()
    learner = LinearLearner(loss, 0.1, beta=5.0)
    sv = 2.0 * yv - 1

    def objective(t, p):
        return learner.objective(t, torch.cat([x, p]), torch.cat([y, yp]))

    def val_loss(t):
        return learner.margin_loss(sv * (xv @ t[:-1] + t[-1])).mean()

    def outer(p):
        return float(val_loss(learner.fit(torch.cat([x, p]), torch.cat([y, yp]), tol=1e-14)))

    theta = learner.fit(torch.cat([x, xp]), torch.cat([y, yp]), tol=1e-14)
    solve = learner.solver(theta, torch.cat([x, xp]), torch.cat([y, yp])) if exact_solve else None
    grad = implicit_gradient(theta, xp, objective, val_loss, solve=solve)
    fd = finite_difference(outer, xp)
    assert float((grad - fd).norm() / fd.norm()) < 1e-3


def mlp_unrolling(seed=1):
    """A 4-unit SmallMLP on a tiny problem: (θ₀, X_p, J(θ, X_p), ∇_θ J written out, L_val(θ))."""
    x, y, xv, yv, xp, yp = tiny_problem(seed)
    net = SmallMLP(3, hidden=4)

    def objective(t, p):
        return net.loss(t, torch.cat([x, p]), torch.cat([y, yp]), 1e-2)

    def gradient(t, p):
        return net.loss_gradient(t, torch.cat([x, p]), torch.cat([y, yp]), 1e-2)

    def val_loss(t):
        return torch.nn.functional.binary_cross_entropy_with_logits(net.logit(t, xv), yv.double())

    return net.init(0), xp, objective, gradient, val_loss


def test_unrolled_gradient_matches_finite_differences():
    theta0, xp, objective, _, val_loss = mlp_unrolling()

    def outer(p):
        _, th = unrolled_gradient(theta0, p, objective, val_loss, steps=15, lr=0.5)
        return float(val_loss(th))

    grad, _ = unrolled_gradient(theta0, xp, objective, val_loss, steps=15, lr=0.5)
    fd = finite_difference(outer, xp)
    assert float((grad - fd).norm() / fd.norm()) < 1e-3


def test_small_mlp_loss_gradient_is_the_autograd_gradient():
    x, y, *_ = tiny_problem(2)
    net = SmallMLP(3, hidden=4)
    theta = (net.init(3) + 0.1).requires_grad_(True)
    (want,) = torch.autograd.grad(net.loss(theta, x, y, 0.3), theta)
    assert torch.allclose(net.loss_gradient(theta.detach(), x, y, 0.3), want, atol=1e-12)


def test_unrolled_gradient_with_a_written_out_gradient_is_the_same():
    theta0, xp, objective, gradient, val_loss = mlp_unrolling()
    g1, th1 = unrolled_gradient(theta0, xp, objective, val_loss, steps=15, lr=0.5)
    g2, th2 = unrolled_gradient(theta0, xp, objective, val_loss, steps=15, lr=0.5, train_gradient=gradient)
    assert torch.allclose(g1, g2, atol=1e-12) and torch.allclose(th1, th2, atol=1e-12)
    assert g1.abs().max() > 0


def test_conjugate_gradient_solves_spd_systems():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = a @ a.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    assert torch.allclose(conjugate_gradient(lambda v: a @ v, b, tol=1e-14), torch.linalg.solve(a, b))


def test_learner_rejects_bad_settings():
    with pytest.raises(ValueError, match="loss"):
        LinearLearner("squared")
    with pytest.raises(ValueError, match="lam"):
        LinearLearner("logistic", lam=0.0)
    with pytest.raises(ValueError, match="< 2"):
        LinearLearner().fit(torch.rand(4, 2), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="steps"):
        unrolled_gradient(torch.zeros(3), torch.zeros(1, 2), lambda t, p: t.sum(), lambda t: t.sum(), steps=0, lr=0.1)


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
@pytest.mark.parametrize("n", [5, 30])  # fewer points than parameters (Woodbury), and more (Cholesky)
def test_solver_inverts_the_hessian_with_fewer_or_more_points_than_parameters(loss, n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 12, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g) > 0.5).long()
    learner = LinearLearner(loss, 1e-3, beta=5.0)
    theta = torch.randn(13, generator=g, dtype=torch.float64)
    v = torch.randn(13, generator=g, dtype=torch.float64)
    z = learner.solver(theta, x, y)(v)
    assert z.shape == v.shape
    assert torch.allclose(learner.hessian(theta, x, y) @ z, v, atol=1e-9)
    assert torch.allclose(z, torch.linalg.solve(learner.hessian(theta, x, y), v), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: autograd_hvp(lambda t: (t**2).sum(), torch.zeros(1, 3)), r"^theta must be a flat vector"),
        (lambda: autograd_hvp(lambda t: (t**2).sum(), torch.tensor(1.0)), r"^theta must be a flat vector"),
        (lambda: autograd_hvp(lambda t: (t**2).sum(), torch.tensor([1.0, float("nan")])), "^theta must hold finite"),
        (lambda: autograd_hvp(lambda t: (t**2).sum(), torch.zeros(3))(torch.ones(4)), r"^v must be a tensor of shape"),
        (
            lambda: implicit_gradient(torch.zeros(2, 1), torch.zeros(1), lambda t, p: t.sum(), lambda t: t.sum()),
            r"^theta must be a flat vector",
        ),
        (
            lambda: implicit_gradient(
                torch.zeros(2), torch.tensor([[float("inf")]]), lambda t, p: t.sum(), lambda t: t.sum()
            ),
            "^x_poison must hold finite",
        ),
        (
            lambda: unrolled_gradient(
                torch.zeros(3), torch.zeros(0, 2), lambda t, p: t.sum(), lambda t: t.sum(), steps=1, lr=0.1
            ),
            "^x_poison must hold at least one poison",
        ),
        (
            lambda: unrolled_gradient(
                torch.zeros(1, 3), torch.zeros(1, 2), lambda t, p: t.sum(), lambda t: t.sum(), steps=1, lr=0.1
            ),
            r"^theta0 must be a flat vector",
        ),
        (
            lambda: unrolled_gradient(
                torch.zeros(3),
                torch.zeros(1, 2, dtype=torch.long),
                lambda t, p: t.sum(),
                lambda t: t.sum(),
                steps=1,
                lr=0.1,
            ),
            "^x_poison must be a floating-point tensor",
        ),
    ],
)
def test_bilevel_gradients_refuse_parameters_that_are_not_finite_flat_vectors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: conjugate_gradient(lambda z: z, torch.ones(3), tol=True), "^tol must be a number"),
        (lambda: conjugate_gradient(lambda z: z, torch.ones(3), max_iter=True), "^max_iter must be an integer"),
        (lambda: conjugate_gradient(lambda z: z, torch.tensor([1.0, float("nan")])), "^b must hold finite"),
        (lambda: conjugate_gradient(lambda z: z, torch.ones(1, 3)), "^b must be a flat vector"),
        (lambda: conjugate_gradient(lambda z: z, torch.ones(3, dtype=torch.long)), "^b must be a floating-point"),
        (lambda: conjugate_gradient(lambda z: z[:2], torch.ones(3)), "^apply_a must return a vector shaped like b"),
        (lambda: LinearLearner().fit(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), max_iter=True), "^max_iter must"),
        (
            lambda: LinearLearner().fit(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), theta0=torch.zeros(2)),
            r"^theta0 must be a tensor of shape \(3,\)",
        ),
    ],
)
def test_linear_solvers_refuse_bool_counts_and_mis_shaped_vectors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("shape", [(3,), (1, 2, 3)])
def test_bilevel_gradients_refuse_poisons_with_a_dropped_or_an_extra_dimension(shape):
    # the objective's mean over the poisons broadcasts either shape without an error
    def objective(t, p):
        return ((t - p.mean(0)) ** 2).sum()

    theta, xp = torch.zeros(3, dtype=torch.float64), torch.rand(shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^x_poison must have shape \(n_p, d\), one poison per row, got shape"):
        implicit_gradient(theta, xp, objective, lambda t: (t**2).sum())
    with pytest.raises(ValueError, match=r"^x_poison must have shape \(n_p, d\)"):
        unrolled_gradient(theta, xp, objective, lambda t: (t**2).sum(), steps=2, lr=0.1)


def test_bilevel_gradients_name_theta_when_the_objective_cannot_read_it_and_refuse_non_functions():
    def objective(t, p):
        return ((t - p.mean(0)) ** 2).sum()

    xp = torch.rand(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^train_objective cannot read theta of shape \(2,\)"):
        implicit_gradient(torch.zeros(2, dtype=torch.float64), xp, objective, lambda t: (t**2).sum())
    with pytest.raises(ValueError, match=r"^train_objective cannot read theta0 of shape \(2,\)"):
        unrolled_gradient(torch.zeros(2, dtype=torch.float64), xp, objective, lambda t: (t**2).sum(), steps=1, lr=0.1)
    for bad in (None, 3, "f"):
        with pytest.raises(TypeError, match="^val_loss must be a function"):
            implicit_gradient(torch.zeros(3, dtype=torch.float64), xp, objective, bad)
        with pytest.raises(TypeError, match="^train_objective must be a function"):
            unrolled_gradient(torch.zeros(3, dtype=torch.float64), xp, bad, lambda t: t.sum(), steps=1, lr=0.1)
        with pytest.raises(TypeError, match="^objective must be a function"):
            autograd_hvp(bad, torch.zeros(3))


def test_conjugate_gradient_names_b_when_it_does_not_fit_the_matrix():
    from poisonlab.linear import conjugate_gradient

    a = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^apply_a cannot take a vector shaped like b \(2,\)"):
        conjugate_gradient(lambda v: a @ v, torch.ones(2, dtype=torch.float64))
