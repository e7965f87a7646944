"""Checkers for the exercises of chapter 7, poisoning beyond one image classifier."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from poisonlab.check.core import Case, CheckResult, generator, run, whole_number


def fewest_attackers(distance: float, bound: float, num_clients: int, server_lr: float) -> int:
    """The fewest colluding attackers m that can move the global model by ``distance`` D = ‖X − θ_r‖
    in one round of federated averaging with server learning rate η when the server clips every
    update to norm at most ``bound`` M (Sun et al. 2019) and the N − m benign updates are about
    zero: each of the m equal updates u must satisfy η m u / N = X − θ_r, so ‖u‖ = N D / (η m) ≤ M,
    and m = ⌈N D / (η M)⌉, at least 1 (Bagdasaryan et al. 2020, eq. (3), shared among m attackers
    under a norm bound). A result above N means that no number of clients can do it in one round.

    Args:
        distance: D > 0. bound: M > 0. num_clients: N >= 1. server_lr: η > 0.

    Returns:
        m, an int >= 1.
    """
    return max(1, math.ceil(round(num_clients * distance / (server_lr * bound), 9)))


def check_fewest_attackers(fn: Callable[[float, float, int, float], int]) -> CheckResult:
    """Check ``fn(distance, bound, num_clients, server_lr) -> int``: the fewest colluding attackers
    that replace the global model in one round under a server that clips updates to norm ``bound``
    (:func:`fewest_attackers`). The distances differ between variants."""
    hint = (
        "with m equal clipped updates u and N − m zero ones, one round moves θ by η · m · u / N; set its "
        "length to D with ‖u‖ at most M, solve for m, and round in the attackers' disfavour"
    )

    def count(distance: float, bound: float, n: int, eta: float) -> int:
        return whole_number(fn(distance, bound, n, eta), "attackers")

    g = generator(41)
    drawn = [round(float(v), 3) for v in 0.05 + 0.9 * torch.rand(2, generator=g)]
    cases = []
    for distance, bound, n, eta, what in (
        (0.2, 1.0, 10, 1.0, "N D / (η M) exactly 2"),
        (0.25, 1.0, 10, 1.0, "N D / (η M) = 2.5"),
        (0.05, 1.0, 10, 1.0, "one attacker has room to spare"),
        (0.3, 2.0, 100, 0.5, "100 clients, η = 0.5, M = 2"),
        (0.1, 1.0, 30, 2.0, "a server learning rate η = 2"),
        (drawn[0], 0.5, 40, 1.0, f"D = {drawn[0]}, M = 0.5, 40 clients"),
        (drawn[1], 3.0, 200, 1.5, f"D = {drawn[1]}, M = 3, 200 clients, η = 1.5"),
    ):
        expected = fewest_attackers(distance, bound, n, eta)
        cases.append(Case(what, (distance, bound, n, eta), expected, hint=hint))
    return run("the fewest attackers under a norm bound", count, cases)


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
