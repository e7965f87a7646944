import math

import pytest
import torch
from poisonlab.check import Case, prologue, run, variant


def reference_asr(pred, y, target):
    keep = y != target
    if not keep.any():
        raise ValueError(f"every input is of the target class {target}")
    return float((pred[keep] == target).float().mean())


def test_run_reports_each_case_without_revealing_answers():
    cases = [Case("two", (2,), 4), Case("three", (3,), 9, hint="square it")]
    result = run("square", lambda v: v * 2, cases)
    assert not result.ok and result.passed == 1 and result.total == 2
    report = repr(result)
    assert "1 of 2" in report and "square it" in report and "got 6" in report
    assert "9" not in report.replace("got 6", "")  # the expected value is never shown


def test_run_handles_stubs_errors_and_expected_exceptions():
    def stub(v):
        raise NotImplementedError

    assert "not written yet" in repr(run("x", stub, [Case("a", (1,), 1)]))
    crash = run("x", lambda v: 1 / 0, [Case("a", (1,), 1)])
    assert "ZeroDivisionError" in repr(crash) and not crash.ok
    must_raise = [Case("bad", (-1,), raises=ValueError)]
    assert not run("x", lambda v: v, must_raise).ok

    def strict(v):
        raise ValueError("negative")

    assert run("x", strict, must_raise).ok
    assert not run("x", "not a function", must_raise).ok


def test_compare_checks_tensor_shapes_and_values():
    ok = run("t", lambda: torch.ones(3), [Case("ones", (), torch.ones(3))])
    assert ok.ok
    shape = run("t", lambda: torch.ones(4), [Case("ones", (), torch.ones(3))])
    assert "shape" in repr(shape)


def test_learner_cannot_spoil_later_cases_by_editing_inputs():
    def mutating(pred, y, target):
        value = reference_asr(pred, y, target)
        pred.zero_()
        return value

    assert prologue.check_attack_success_rate(mutating).ok


def test_prologue_checkers_accept_the_reference_and_reject_common_mistakes():
    assert prologue.check_attack_success_rate(reference_asr).ok
    including_target = lambda pred, y, t: float((pred == t).float().mean())  # noqa: E731
    assert not prologue.check_attack_success_rate(including_target).ok
    count = lambda pred, y, t: int((pred[y != t] == t).sum())  # noqa: E731
    assert not prologue.check_attack_success_rate(count).ok

    def additive(n, eps):
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        return math.floor(round(eps * n / (1 - eps), 9))

    def unrounded(n, eps):
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        return math.floor(eps * n / (1 - eps))  # 0.2 * 172 / 0.8 -> 42.99…

    def silent(n, eps):
        if not 0 <= eps < 1:
            raise ValueError("bad budget")  # does not say what was given
        return additive(n, eps)

    assert prologue.check_additive_poisons(additive).ok
    assert not prologue.check_additive_poisons(lambda n, eps: additive(n, eps) if eps else 1).ok
    replacement = lambda n, eps: math.floor(round(eps * n, 9)) if 0 <= eps < 1 else additive(n, eps)  # noqa: E731
    assert not prologue.check_additive_poisons(replacement).ok  # ⌊εn⌋ bounds the share of the clean set

    def rounded_up(n, eps):
        return math.ceil(round(eps * n / (1 - eps), 9)) if 0 <= eps < 1 else additive(n, eps)

    assert not prologue.check_additive_poisons(rounded_up).ok
    assert "42" in repr(prologue.check_additive_poisons(unrounded))
    assert "does not say what was given" in repr(prologue.check_additive_poisons(silent))

    def generic(n, eps):
        if not 0 <= eps < 1:
            raise ValueError("eps must be in [0, 1)")  # the "1" of "[0, 1)" is not the value given
        return additive(n, eps)

    assert not prologue.check_additive_poisons(generic).ok
    assert not prologue.check_additive_poisons(lambda n, eps: additive(n, abs(eps))).ok  # accepts ε < 0
    with variant(1):  # n = 2000, ε = 20%: exactly 500, which floating point puts a hair below
        report = repr(
            prologue.check_additive_poisons(
                lambda n, eps: int(eps * n // (1 - eps)) if 0 <= eps < 1 else additive(n, eps)
            )
        )
    assert "499" in report and "floating point" in report
    undefined = prologue.check_attack_success_rate(
        lambda pred, y, t: reference_asr(pred, y, t) if (y != t).any() else float("nan")
    )
    assert not undefined.ok and "ValueError" in repr(undefined)

    measured = prologue.pixel_centroid_accuracy(0)
    assert 0.0 < measured < 1.0
    assert prologue.check_predict_pixel_centroid(lambda: measured).ok
    assert prologue.check_predict_pixel_centroid(lambda: measured + 0.09).ok
    assert not prologue.check_predict_pixel_centroid(lambda: measured + 0.11).ok
    assert not prologue.check_predict_pixel_centroid(lambda: measured - 0.11).ok
    assert "fraction in [0, 1]" in repr(prologue.check_predict_pixel_centroid(lambda: 80))
    assert not prologue.check_predict_pixel_centroid(lambda: True).ok


def test_boundary_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import boundary as ex

    def hinge_grad(theta, x, y, lam, beta):
        s = 2.0 * y - 1
        m = s * (x @ theta[:-1] + theta[-1])
        c = -torch.sigmoid(beta * (1 - m)) * s / len(y)
        return torch.cat([x.T @ c, c.sum().reshape(1)]) + lam * theta

    assert ex.check_smooth_hinge_gradient(hinge_grad).ok
    no_bias = lambda t, x, y, lam, beta: torch.cat([hinge_grad(t, x, y, lam, beta)[:-1], torch.zeros(1)])  # noqa: E731
    assert not ex.check_smooth_hinge_gradient(no_bias).ok


def test_backdoor_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import backdoor as ex
    from poisonlab.triggers import salient_pixels

    assert ex.check_salient_pixels(salient_pixels).ok

    def absolute(model, x, target, k):  # |gradient| ranks pixels that push *away* from the target too
        x = x.clone().requires_grad_(True)
        model(x)[:, target].sum().backward()
        g = x.grad.abs().mean(0).flatten()
        mask = torch.zeros_like(g)
        mask[g.topk(k).indices] = 1.0
        return mask.view(x.shape[1:])

    assert not ex.check_salient_pixels(absolute).ok


def test_collision_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import collision as ex

    def prox_l1(x_hat, base, lr, beta):
        if lr <= 0 or beta < 0:
            raise ValueError(f"need lr > 0 and beta >= 0, got lr={lr}, beta={beta}")
        d = x_hat - base
        return base + d.sign() * (d.abs() - lr * beta).clamp(min=0)

    def guarded(step):
        def fn(x_hat, base, lr, beta):
            if lr <= 0 or beta < 0:
                raise ValueError(f"need lr > 0 and beta >= 0, got lr={lr}, beta={beta}")
            return step(x_hat, base, lr, beta)

        return fn

    assert ex.check_proximal_l1(prox_l1).ok
    quadratic = guarded(lambda p, b, lr, beta: (p + lr * beta * b) / (1 + lr * beta))  # the ℓ2 step of eq. ch3-prox
    assert not ex.check_proximal_l1(quadratic).ok
    unscaled = guarded(lambda p, b, lr, beta: b + (p - b).sign() * ((p - b).abs() - beta).clamp(min=0))
    assert not ex.check_proximal_l1(unscaled).ok
    no_clamp = guarded(lambda p, b, lr, beta: b + (p - b).sign() * ((p - b).abs() - lr * beta))
    assert not ex.check_proximal_l1(no_clamp).ok
    halved = guarded(lambda p, b, lr, beta: b + (p - b).sign() * ((p - b).abs() - lr * beta / 2).clamp(min=0))
    assert not ex.check_proximal_l1(halved).ok
    assert "does not say" in repr(
        ex.check_proximal_l1(
            lambda p, b, lr, beta: (
                prox_l1(p, b, lr, beta) if lr > 0 and beta >= 0 else (_ for _ in ()).throw(ValueError("bad"))
            )
        )
    )
    generic = guarded(lambda p, b, lr, beta: prox_l1(p, b, lr, beta))
    assert ex.check_proximal_l1(generic).ok

    def generic_message(x_hat, base, lr, beta):  # names the rule, not the value: "0" of "lr > 0" is no value
        if lr <= 0 or beta < 0:
            raise ValueError("need lr > 0 and beta >= 0")
        return prox_l1(x_hat, base, lr, beta)

    assert not ex.check_proximal_l1(generic_message).ok
    assert not ex.check_proximal_l1(lambda p, b, lr, beta: prox_l1(p, b, abs(lr) or 1e-9, beta)).ok

    distances = ex.class_mean_distances(0)
    assert distances.shape == (10, 10) and torch.allclose(distances, distances.T)
    assert torch.all(distances.diagonal() < 1e-3)
    with pytest.raises(ValueError, match="epochs"):
        ex.class_mean_distances(0, epochs=0)
    nearest = lambda t: ex.nearest_classes(distances, t)[0]  # noqa: E731
    farthest = lambda t: ex.nearest_classes(distances, t, k=9)[-1]  # noqa: E731
    assert ex.check_predict_base_class(nearest).ok
    assert set(ex.nearest_classes(distances, 0)) <= set(ex.accepted_classes(distances, 0))
    with pytest.raises(ValueError, match="slack"):
        ex.accepted_classes(distances, 0, slack=-0.1)
    assert not ex.check_predict_base_class(farthest).ok
    assert "another class" in repr(ex.check_predict_base_class(lambda t: t))
    assert "digit from 0 to 9" in repr(ex.check_predict_base_class(lambda t: 10))

    def success(flipped, judged, l2, base, tau, strict=False):
        won = flipped & (judged == base) & ((l2 < tau) if strict else (l2 <= tau))
        return float(won.float().mean()), (float(l2[won].mean()) if won.any() else math.nan)

    assert ex.check_clean_label_success(success).ok
    assert not ex.check_clean_label_success(lambda f, j, l2, c, tau: success(f, j, l2, c, math.inf)).ok
    assert not ex.check_clean_label_success(lambda f, j, l2, c, tau: success(f, j.fill_(c), l2, c, tau)).ok
    assert not ex.check_clean_label_success(lambda f, j, l2, c, tau: success(f, j, l2, c, tau, strict=True)).ok
    assert not ex.check_clean_label_success(
        lambda f, j, l2, c, tau: (success(f, j, l2, c, tau)[0], float(l2.mean()))
    ).ok
    assert "a pair" in repr(ex.check_clean_label_success(lambda f, j, l2, c, tau: 0.5))


def test_success_predictor_checker_accepts_the_margin_and_rejects_ties_reversals_and_bad_shapes():
    from poisonlab.check import collision as ex
    from poisonlab.check import variant

    def margin(z_target, z_bases, w, c):
        return z_target @ w + c

    def reversed_margin(z_target, z_bases, w, c):
        return -(z_target @ w + c)

    def same_for_all(z_target, z_bases, w, c):  # one number per pair of digits, as the class-mean distance
        return torch.ones(len(z_target))

    def one_per_base(z_target, z_bases, w, c):
        return (z_bases @ w).flatten()

    for v in (0, 3):
        with variant(v):
            assert ex.check_success_predictor(margin).ok
            for wrong in (reversed_margin, same_for_all, one_per_base):
                assert not ex.check_success_predictor(wrong).ok, wrong.__name__
    report = repr(ex.check_success_predictor(same_for_all))
    assert "undefined" in report and "ties" in report and "higher in 0" in report
    assert "one per target" in repr(ex.check_success_predictor(one_per_base))
    assert "finite" in repr(ex.check_success_predictor(lambda z, b, w, c: margin(z, b, w, c) / 0.0))
    evidence = ex.ease_evidence(0)
    assert evidence["z_target"].shape == (ex.EASE_TARGETS, 256) and evidence["z_bases"].shape[:2] == (
        ex.EASE_TARGETS,
        ex.EASE_K,
    )
    assert 0 < int(evidence["won"].sum()) < ex.EASE_TARGETS
    assert bool(((evidence["z_target"] @ evidence["w"] + evidence["c"]) < 0).all()), "every target starts as a 3"


def test_spectral_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import spectral as ex

    def score(reps):
        centred = reps - reps.mean(0)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ vh[0]).pow(2)

    def uncentred(reps):  # the score without centring, which the chapter warns about
        _, _, vh = torch.linalg.svd(reps, full_matrices=False)
        return (reps @ vh[0]).pow(2)

    assert ex.check_spectral_score(score).ok
    assert not ex.check_spectral_score(uncentred).ok
    assert not ex.check_spectral_score(lambda r: r.pow(2).sum(1)).ok


def test_mixture_covariance_and_separation_reject_bad_input():
    from poisonlab import detect

    with pytest.raises(ValueError, match="mean_poison"):
        detect.mixture_covariance(0.1, torch.zeros(3), torch.zeros(4), torch.eye(3), torch.eye(3))
    with pytest.raises(ValueError, match="eps"):
        detect.mixture_covariance(1.5, torch.zeros(3), torch.zeros(3), torch.eye(3), torch.eye(3))
    reps = torch.randn(20, 3)
    with pytest.raises(ValueError, match="at least 2 poisons"):
        detect.separation(reps, torch.arange(20) < 1)
    with pytest.raises(ValueError, match="shape"):
        detect.separation(reps, torch.arange(10) < 3)
    assert detect.separation(torch.cat([torch.zeros(10, 2), torch.ones(10, 2)]), torch.arange(20) < 10) == float("inf")


def test_limits_checkers_accept_references_and_reject_mistakes():
    from poisonlab import robust, spiked
    from poisonlab.check import limits
    from poisonlab.check.core import variant

    assert limits.check_best_detector(lambda p, q: (q > p).double()).ok
    # flagging where the poisons are *less* likely, or flagging everything, is not the best detector
    assert not limits.check_best_detector(lambda p, q: (q < p).double()).ok
    assert not limits.check_best_detector(lambda p, q: torch.ones_like(p)).ok
    assert "[0, 1]" in repr(limits.check_best_detector(lambda p, q: 2 * (q > p).double()))

    def predict(square=True):
        def overlaps(n, d, eps):
            gamma = d / n
            out = []
            for factor in limits.PREDICTION_FACTORS:
                theta = (factor**2 if square else factor) * math.sqrt(gamma)
                out.append(spiked.bbp_overlap(theta, gamma))
            return tuple(out)

        return overlaps

    for v in range(4):
        with variant(v):
            assert limits.check_predict_overlaps(predict()).ok, v
            # θ taken as proportional to the shift rather than to its square
            assert not limits.check_predict_overlaps(predict(square=False)).ok, v
            assert not limits.check_predict_overlaps(lambda n, d, eps: (0.0, 1.0)).ok, v  # "seen = perfect"
    assert "[0, 1]" in repr(limits.check_predict_overlaps(lambda n, d, eps: (0.0, 2.0)))
    assert "two numbers" in repr(limits.check_predict_overlaps(lambda n, d, eps: 0.5))

    def at(distance):
        def place(n, d, u, eps, seed):
            x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            return x - (x @ u)[:, None] * u + distance(n, d, eps) * u

        return place

    def under_the_level(n_poison, d, eps):  # the reference: 10% under the stopping level's excess over 1
        level = robust.spectral_threshold(eps, round(n_poison / eps), d)
        return math.sqrt((0.9 * (level - 1) + eps) / (eps * (1 - eps)))

    # the margin on the excess stays real where a margin on the whole level would go negative
    assert 0.9 * robust.spectral_threshold(0.005, 200_000, 10) - (1 - 0.005) < 0
    assert under_the_level(1000, 10, 0.005) > robust.tail_distance(0.005)

    for v in range(4):
        with variant(v):
            assert limits.check_place_poisons(at(under_the_level)).ok, v
            # the section's own construction, at the tail quantile, moves the mean by only ε t_ε
            assert not limits.check_place_poisons(at(lambda n, d, eps: robust.tail_distance(eps))).ok, v
            assert not limits.check_place_poisons(at(lambda n, d, eps: 8.0)).ok, v  # too far: removed
    assert "shape" in repr(limits.check_place_poisons(lambda n, d, u, eps, seed: torch.zeros(n)))


def test_defences_checkers_accept_references_and_reject_mistakes():
    from poisonlab import certify, cleanse
    from poisonlab.check import defences
    from poisonlab.check.core import variant

    def radius_without_tie_break(counts):
        top = counts.sort(1, descending=True).values
        return (top[:, 0] - top[:, 1]) // 2

    def greedy_flip(counts, target):
        counts, moved = counts.clone(), 0
        while int(counts.argmax()) != target:
            counts[counts.argmax()] -= 1
            counts[target] += 1
            moved += 1
        return moved

    def flip_from_winner_ignoring_ties(counts, target):
        return max(0, (int(counts.max()) - int(counts[target]) + 1) // 2)

    def norm_from_the_others_only(others):  # the target's own norm left out of the median and MAD
        median = others.median()
        return float(median - 2 * cleanse.MAD_SCALE * (others - median).abs().median())

    for v in range(3):
        with variant(v):
            assert defences.check_certified_radius(lambda c: certify.certify(c)[1]).ok, v
            assert not defences.check_certified_radius(radius_without_tie_break).ok, v
            assert not defences.check_certified_radius(lambda c: 2 * certify.certify(c)[1]).ok, v
            assert defences.check_replicated_radius(defences.replicated_radius).ok, v
            assert not defences.check_replicated_radius(lambda c, d: certify.certify(c)[1]).ok, v  # d ignored
            assert not defences.check_replicated_radius(lambda c, d: 2 * certify.certify(c)[1] // d).ok, v  # gap / d
            assert defences.check_cheapest_flip(greedy_flip).ok, v
            assert not defences.check_cheapest_flip(flip_from_winner_ignoring_ties).ok, v
            assert defences.check_smallest_unflagged_norm(defences.smallest_unflagged_norm).ok, v
            assert not defences.check_smallest_unflagged_norm(norm_from_the_others_only).ok, v
    assert "one number" in repr(defences.check_smallest_unflagged_norm(lambda o: "small"))
    assert "radii" in repr(defences.check_certified_radius(lambda c: torch.zeros(3)))
    assert "radii" in repr(defences.check_replicated_radius(lambda c, d: torch.zeros(3)))


def test_the_certificate_is_tight_in_the_vote_model():
    from poisonlab import certify
    from poisonlab.check import defences

    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        counts = torch.randint(0, 12, (5,), generator=g)
        if int(counts.sum()) == 0:
            continue
        prediction, radius = certify.certify(counts[None])
        cheapest = min(defences.cheapest_flip(counts, t) for t in range(5) if t != int(prediction))
        assert cheapest == int(radius) + 1, counts


def test_the_smallest_unflagged_norm_sits_on_the_threshold():
    from poisonlab import cleanse
    from poisonlab.check import defences

    others = torch.tensor([60.0, 70, 80, 90, 100, 110, 120, 130, 140], dtype=torch.float64)
    m = defences.smallest_unflagged_norm(others)
    index = cleanse.anomaly_index(torch.cat([others, torch.tensor([m], dtype=torch.float64)]))[-1]
    assert abs(float(index) - 2) < 1e-6
    below = cleanse.anomaly_index(torch.cat([others, torch.tensor([m - 0.5], dtype=torch.float64)]))[-1]
    assert float(below) > 2


def test_a_learner_function_that_exits_is_reported_and_the_check_goes_on():
    import sys

    calls = []

    def quits(x):
        calls.append(x)
        if x == 1:
            sys.exit("bye")
        return x

    res = run("demo", quits, [Case("exits", (1,), 1), Case("returns", (2,), 2)])
    assert res.passed == 1 and calls == [1, 2]
    assert "SystemExit" in res.lines[0] and "✓" not in res.lines[0]


def test_beyond_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import beyond
    from poisonlab.check.core import variant

    def median_breakdown_rounded_up(rule, n, trim):  # one too many: half of an even N breaks the median
        return {"mean": 0, "median": n // 2, "trimmed_mean": int(trim * n)}[rule]

    for v in range(3):
        with variant(v):
            assert beyond.check_fewest_attackers(beyond.fewest_attackers).ok, v
            # rounded down (one attacker short), η ignored, and the ratio upside down
            assert not beyond.check_fewest_attackers(lambda d, b, n, eta: max(1, int(n * d / (eta * b)))).ok, v
            assert not beyond.check_fewest_attackers(lambda d, b, n, eta: max(1, math.ceil(n * d / b))).ok, v
            assert not beyond.check_fewest_attackers(lambda d, b, n, eta: math.ceil(n * b / (eta * d))).ok, v
            assert beyond.check_breakdown(beyond.breakdown_count).ok, v
            assert not beyond.check_breakdown(median_breakdown_rounded_up).ok, v
            assert not beyond.check_breakdown(lambda rule, n, trim: 1 if rule == "mean" else 0).ok, v
    assert "whole number" in repr(beyond.check_fewest_attackers(lambda d, b, n, eta: 2.5))
    assert "whole number" in repr(beyond.check_breakdown(lambda rule, n, trim: "half"))


def test_the_fewest_attackers_under_a_norm_bound_replace_the_mean_and_one_fewer_cannot():
    from poisonlab import federated
    from poisonlab.check import beyond

    g = torch.Generator().manual_seed(0)
    theta, target = torch.randn(50, generator=g), torch.randn(50, generator=g)
    distance = float((target - theta).norm())
    for n, eta, share in ((10, 1.0, 3.0), (10, 0.5, 5.0), (20, 2.0, 1.5)):  # M = share · D
        bound = share * distance
        m = beyond.fewest_attackers(distance, bound, n, eta)
        for attackers, lands in ((m, True), (m - 1, False)):
            if attackers < 1:
                continue
            u = federated.clip_to_norm(n / (eta * attackers) * (target - theta), bound)
            updates = torch.cat([u.expand(attackers, -1), torch.zeros(n - attackers, 50)])
            after = theta + eta * federated.aggregate(updates, "mean")
            assert torch.allclose(after, target, atol=1e-4) == lands, (n, eta, bound, attackers)


def test_the_breakdown_count_is_where_the_aggregate_starts_to_follow_the_attackers():
    from poisonlab import federated
    from poisonlab.check import beyond

    g = torch.Generator().manual_seed(0)
    for n in (10, 11, 13):
        benign = torch.randn(n, 5, generator=g)
        for rule in beyond.BREAKDOWN_RULES:
            m = beyond.breakdown_count(rule, n, 0.2)
            for attackers, bounded in ((m, True), (m + 1, False)):
                far = False  # pushed up or down: the lower median of an even N gives way downwards first
                for sign in (1.0, -1.0):
                    updates = torch.cat([torch.full((attackers, 5), sign * 1e9), benign[attackers:]])
                    far |= float(federated.aggregate(updates, rule, trim=0.2).abs().max()) > 1e6
                assert far != bounded, (rule, n, attackers)
    with pytest.raises(ValueError, match="rule"):
        beyond.breakdown_count("krum", 10)
