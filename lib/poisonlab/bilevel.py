"""Gradients through training: the two ways to differentiate a learner's optimum.

Poisoning as a bilevel problem (Biggio et al. 2012; Mei & Zhu 2015; Muñoz-González et al. 2017):

.. math::
   \\max_{X_p \\in \\mathcal{C}}\\ L_{\\text{val}}\\big(\\hat\\theta(X_p)\\big)
   \\quad\\text{s.t.}\\quad
   \\hat\\theta(X_p) = \\arg\\min_\\theta J(\\theta; D_c \\cup D_p).

The attacker needs dL_val/dX_p, which runs through the training procedure.

* **Implicit differentiation** (convex learners). At the optimum ∇_θ J(θ̂, X_p) = 0; differentiating
  this identity (implicit function theorem) gives

  .. math:: \\frac{d\\hat\\theta}{dX_p} = -H^{-1} \\frac{\\partial^2 J}{\\partial\\theta\\,\\partial X_p},
     \\qquad
     \\frac{dL_{\\text{val}}}{dX_p} =
     -\\Big(\\frac{\\partial^2 J}{\\partial\\theta\\,\\partial X_p}\\Big)^{\\!\\top}
     H^{-1}\\nabla_\\theta L_{\\text{val}},

  with H = ∇²_θ J(θ̂) (Koh & Liang 2017, eq. 2; Mei & Zhu 2015). :func:`implicit_gradient`
  solves H v = ∇_θ L_val by conjugate gradients with Hessian-vector products, then takes one
  vector–Jacobian product of ∇_θ J with respect to X_p.

* **Unrolled differentiation** (any differentiable learner). Training is T steps of gradient
  descent θ_{t+1} = θ_t − η ∇_θ J(θ_t; X_p) from a fixed θ_0; :func:`unrolled_gradient` keeps
  the graph of all T steps and back-propagates L_val(θ_T) to X_p (back-gradient optimisation,
  Muñoz-González et al. 2017, who reverse the dynamics instead of storing them to save memory).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from poisonlab import _validate
from poisonlab.linear import conjugate_gradient


def implicit_gradient(
    theta: torch.Tensor,
    x_poison: torch.Tensor,
    train_objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    hvp: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    solve: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cg_tol: float = 1e-10,
    cg_iter: int = 500,
) -> torch.Tensor:
    """dL_val/dX_p at a training optimum θ̂, by the implicit function theorem.

    Args:
        theta: the optimum θ̂ of ``train_objective``, a flat (d,) finite floating-point vector;
            the result is only as exact as ∇_θ J(θ̂) is close to 0.
        x_poison: poison points X_p, (n_p, d), one per row, n_p >= 1, finite floating point (a
            dropped or an extra dimension is refused: the objective would broadcast it silently).
        train_objective: J(θ, X_p), the full regularised training objective (clean and poison
            points), differentiable twice.
        val_loss: L_val(θ), the attacker's objective on its validation set.
        hvp: v ↦ ∇²_θ J(θ̂) v; by default computed by double back-propagation through
            ``train_objective``. Conjugate gradients then solve H v = ∇_θ L_val.
        solve: v ↦ H⁻¹ v, if the caller has a factorisation; replaces ``hvp`` and CG.

    Returns:
        The gradient, shaped like ``x_poison``.
    """
    cg_iter = _validate.positive_int("cg_iter", cg_iter)
    cg_tol = _validate.positive_float("cg_tol", cg_tol)
    theta = _validate.vector("theta", theta).detach()
    xp = _poison_inputs(x_poison).detach()
    _callables(train_objective=train_objective, val_loss=val_loss)
    _call(train_objective, "train_objective", "theta", theta, xp)  # reads θ and X_p, returns a scalar
    th = theta.clone().requires_grad_(True)
    g_val = torch.autograd.grad(_call(val_loss, "val_loss", "theta", th), th)[0]
    if solve is not None:
        v = solve(g_val)
    else:
        if hvp is None:
            hvp = autograd_hvp(lambda t: train_objective(t, xp), theta)
        v = conjugate_gradient(hvp, g_val, tol=cg_tol, max_iter=cg_iter)
    xp = xp.clone().requires_grad_(True)
    th = theta.clone().requires_grad_(True)
    g_train = torch.autograd.grad(_call(train_objective, "train_objective", "theta", th, xp), th, create_graph=True)[0]
    mixed = torch.autograd.grad(g_train @ v, xp)[0]
    return -mixed


def _poison_inputs(x: torch.Tensor) -> torch.Tensor:
    """``x_poison`` checked: a floating-point tensor (n_p, d) with at least one poison, finite."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x_poison must be a floating-point tensor, got {got}")
    if x.numel() == 0:
        raise ValueError("x_poison must hold at least one poison, got an empty tensor")
    if x.ndim != 2:
        raise ValueError(f"x_poison must have shape (n_p, d), one poison per row, got shape {tuple(x.shape)}")
    return _validate.finite("x_poison", x)


def _callables(**functions: object) -> None:
    """Check each named argument is callable (TypeError naming it otherwise)."""
    for name, f in functions.items():
        if not callable(f):
            raise TypeError(f"{name} must be a function, got {type(f).__name__}")


def _call(f: Callable, name: str, theta_name: str, theta: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    """``f(theta, *args)``, a scalar; a function that cannot read a θ of this shape (a RuntimeError
    of torch) or does not return a scalar raises a ValueError naming ``theta_name``."""
    try:
        out = f(theta, *args)
    except RuntimeError as e:
        shapes = f"{theta_name} of shape {tuple(theta.shape)}" + "".join(
            f" and x_poison of shape {tuple(a.shape)}" for a in args
        )
        raise ValueError(f"{name} cannot read {shapes} ({str(e).splitlines()[0]})") from None
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return a scalar for {theta_name} of shape {tuple(theta.shape)}, got {got}")
    return out.reshape(())


def autograd_hvp(
    objective: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ ∇²f(θ) v by double back-propagation (Pearlmutter 1994).

    ``theta`` must be a flat (d,) finite floating-point vector; ``v`` a vector of the same shape.
    """
    th = _validate.vector("theta", theta).detach().clone().requires_grad_(True)
    _callables(objective=objective)
    g = torch.autograd.grad(_call(objective, "objective", "theta", th), th, create_graph=True)[0]

    def apply(v: torch.Tensor) -> torch.Tensor:
        _validate.shaped_like("v", v, th.shape, "theta")
        return torch.autograd.grad(g, th, grad_outputs=v, retain_graph=True)[0]

    return apply


def unrolled_gradient(
    theta0: torch.Tensor,
    x_poison: torch.Tensor,
    train_objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    lr: float,
    train_gradient: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """dL_val(θ_T)/dX_p through T steps of full-batch gradient descent from θ_0
    (θ_{t+1} = θ_t − η ∇_θ J(θ_t, X_p); Maclaurin et al. 2015, Muñoz-González et al. 2017).

    Args:
        theta0: the initial parameters θ_0, a flat (d,) finite floating-point vector, held fixed.
        x_poison: poison points X_p, (n_p, d), one per row, n_p >= 1, finite floating point.
        train_objective: J(θ, X_p).
        val_loss: L_val(θ).
        steps: T, the number of descent steps, >= 1.
        lr: η, the step size, > 0.
        train_gradient: optional ∇_θ J(θ, X_p) written out in differentiable torch operations.
            When given, each step uses it instead of differentiating ``train_objective`` with a
            graph of its own (double backward): the same result, with fewer operations.

    Returns:
        ``(gradient shaped like x_poison, θ_T detached)``.
    """
    steps = _validate.positive_int("steps", steps)
    lr = _validate.positive_float("lr", lr)
    xp = _poison_inputs(x_poison).detach().clone().requires_grad_(True)
    th = _validate.vector("theta0", theta0).detach().clone()
    _callables(train_objective=train_objective, val_loss=val_loss)
    if train_gradient is not None:
        _callables(train_gradient=train_gradient)
    if train_gradient is None:
        th.requires_grad_(True)
    for _ in range(steps):
        if train_gradient is None:
            g = torch.autograd.grad(_call(train_objective, "train_objective", "theta0", th, xp), th, create_graph=True)[
                0
            ]
        else:
            g = train_gradient(th, xp)
        th = th - lr * g
    grad = torch.autograd.grad(_call(val_loss, "val_loss", "theta0", th), xp)[0]
    return grad, th.detach()
