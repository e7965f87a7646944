"""Checkers for the exercises of chapter 7, poisoning beyond one image classifier."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, generator, run, whole_number


def replacement_update(
    theta: torch.Tensor, backdoored: torch.Tensor, num_clients: int, server_lr: float, num_malicious: int
) -> torch.Tensor:
    """The update each of m colluding attackers submits so that federated averaging lands on the
    backdoored parameters X: (N / (η m)) (X − θ_t) (Bagdasaryan et al. 2020, eq. (3), shared among
    m attackers; the benign updates are taken to be about zero near convergence).

    Args:
        theta: the global parameters θ_t, shape (P,).
        backdoored: the attacker's parameters X, shape (P,).
        num_clients: N, the clients averaged. server_lr: η. num_malicious: m >= 1.

    Returns:
        The update, shape (P,).
    """
    return num_clients / (server_lr * num_malicious) * (backdoored - theta)


def check_replacement_update(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Check ``fn(theta (P,), backdoored (P,), num_clients, server_lr, num_malicious) -> (P,)``: the
    update that, submitted by each of the m attackers while the N − m benign clients submit zero,
    moves θ_t to X under θ_{t+1} = θ_t + η · mean of the N updates (:func:`replacement_update`).
    The parameter vectors differ between variants."""
    hint = (
        "write θ_{t+1} = θ_t + η · (1/N) · (sum of the N updates) with m equal malicious updates and "
        "N − m zero ones, set it equal to X, and solve for the malicious update"
    )

    def update(theta, backdoored, n, eta, m):
        got = fn(theta.clone(), backdoored.clone(), n, eta, m)
        if not isinstance(got, torch.Tensor) or got.shape != theta.shape:
            raise TypeError(f"return one update, a tensor shaped like theta {tuple(theta.shape)}")
        return got.double()

    g = generator(41)
    cases = []
    for n, eta, m, what in (
        (10, 1.0, 1, "10 clients, η = 1, one attacker"),
        (100, 1.0, 1, "100 clients, η = 1, one attacker"),
        (10, 0.5, 1, "a server learning rate η = 0.5"),
        (10, 1.0, 4, "four colluding attackers"),
        (30, 2.0, 3, "30 clients, η = 2, three attackers"),
    ):
        theta = torch.randn(20, generator=g, dtype=torch.float64)
        backdoored = theta + 0.1 * torch.randn(20, generator=g, dtype=torch.float64)
        expected = replacement_update(theta, backdoored, n, eta, m)
        cases.append(Case(what, (theta, backdoored, n, eta, m), expected, hint=hint))
    return run("the replacement update", update, cases, rtol=1e-6, atol=1e-9)


#: The aggregators of the breakdown exercise (Krum's count depends on the f it is built for).
BREAKDOWN_RULES = ("mean", "median", "trimmed_mean")


def breakdown_count(rule: str, num_clients: int, trim: float = 0.2) -> int:
    """The largest number m of malicious clients whose updates, however large, cannot carry the
    aggregate of N updates arbitrarily far (the finite-sample breakdown point, Hampel 1974, as a
    count): 0 for the mean (one unbounded update moves it without limit); ⌈N/2⌉ − 1 for the
    coordinate-wise median; ⌊βN⌋ for the β-trimmed mean (Yin et al. 2018), which drops that many
    values at each end of every coordinate (:func:`poisonlab.federated.aggregate`)."""
    if rule == "mean":
        return 0
    if rule == "median":
        return (num_clients - 1) // 2
    if rule == "trimmed_mean":
        return int(math.floor(round(trim * num_clients, 9)))
    raise ValueError(f"rule must be one of {BREAKDOWN_RULES}, got {rule!r}")


def check_breakdown(fn: Callable[[str, int, float], int]) -> CheckResult:
    """Check ``fn(rule, num_clients, trim) -> int``: the most malicious clients whose arbitrarily
    large updates leave the aggregate bounded, for ``rule`` in :data:`BREAKDOWN_RULES`
    (:func:`breakdown_count`). The numbers of clients differ between variants."""
    hint = (
        "send the m malicious values of one coordinate to +∞: does the aggregate follow them? Count how "
        "many of the N sorted values each rule ignores at the top"
    )

    def count(rule: str, n: int, trim: float) -> int:
        return whole_number(fn(rule, n, trim), "clients")

    g = generator(43)
    sizes = [10, 11] + [int(v) for v in torch.randint(12, 60, (2,), generator=g)]
    cases = []
    for n in sizes:
        for rule, trim in (("mean", 0.2), ("median", 0.2), ("trimmed_mean", 0.2), ("trimmed_mean", 0.1)):
            what = f"{rule}, N = {n}" + (f", β = {trim}" if rule == "trimmed_mean" else "")
            cases.append(Case(what, (rule, n, trim), breakdown_count(rule, n, trim), hint=hint))
    return run("the breakdown count", count, cases)
