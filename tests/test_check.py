import math

import pytest
import torch
from poisonlab.check import Case, prologue, run


def reference_asr(pred, y, target):
    keep = y != target
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

    def budget(n, eps):
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        return math.floor(round(eps * n, 9))

    def truncating(n, eps):
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        return int(eps * n)  # 0.29 * 100 -> 28

    def silent(n, eps):
        if not 0 <= eps < 1:
            raise ValueError("bad budget")  # does not say what was given
        return math.floor(round(eps * n, 9))

    assert prologue.check_poison_budget(budget).ok
    assert not prologue.check_poison_budget(lambda n, eps: round(eps * n)).ok
    assert not prologue.check_poison_budget(lambda n, eps: math.floor(round(eps * n, 9))).ok
    assert "28.99" in repr(prologue.check_poison_budget(truncating))
    assert "does not say what was given" in repr(prologue.check_poison_budget(silent))


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
    assert ex.check_implicit_step(lambda h, g, m: -m.T @ torch.linalg.solve(h, g)).ok
    assert not ex.check_implicit_step(lambda h, g, m: m.T @ torch.linalg.solve(h, g)).ok

    def project(x, c, r):
        d = x - c
        n = d.norm(dim=1, keepdim=True)
        return torch.where(n > r, c + d * r / n, x)

    assert ex.check_project_sphere(project).ok
    always = lambda x, c, r: c + (x - c) * r / (x - c).norm(dim=1, keepdim=True)  # noqa: E731
    assert not ex.check_project_sphere(always).ok


def test_backdoor_checkers_accept_references_and_reject_mistakes():
    from poisonlab.check import backdoor as ex
    from poisonlab.triggers import salient_pixels

    def blend(x, key, alpha):
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return (1 - alpha) * x + alpha * key

    assert ex.check_blend(blend).ok
    assert not ex.check_blend(lambda x, key, alpha: (1 - alpha) * x + alpha * key).ok  # no validation
    assert not ex.check_blend(lambda x, key, alpha: x + alpha * key).ok

    def choose(y, target, count, seed):
        candidates = torch.nonzero(y != target).flatten()
        return candidates[torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:count]]

    assert ex.check_choose_poisons(choose).ok
    assert not ex.check_choose_poisons(lambda y, t, c, s: torch.nonzero(y != t).flatten()[:c]).ok  # ignores seed
    assert not ex.check_choose_poisons(
        lambda y, t, c, s: torch.randperm(len(y), generator=torch.Generator().manual_seed(s))[:c]).ok  # target too

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

    assert ex.check_proximal_step(lambda p, b, lr, beta: (p + lr * beta * b) / (1 + lr * beta)).ok
    assert not ex.check_proximal_step(lambda p, b, lr, beta: (p + 2 * lr * beta * b) / (1 + 2 * lr * beta)).ok

    def watermark(b, t, gamma):
        if not 0 <= gamma <= 1:
            raise ValueError(f"opacity must lie in [0, 1], got {gamma}")
        return gamma * t + (1 - gamma) * b

    assert ex.check_watermark(watermark).ok
    assert not ex.check_watermark(lambda b, t, g: g * b + (1 - g) * t).ok
    assert ex.check_clean_label_success(lambda f, j, c: float((f & (j == c)).float().mean())).ok
    assert not ex.check_clean_label_success(lambda f, j, c: float(f.float().mean())).ok


def test_spectral_checkers_accept_references_and_reject_mistakes():
    from poisonlab import detect
    from poisonlab.check import spectral as ex

    def score(reps):
        centred = reps - reps.mean(0)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ vh[0]).pow(2)

    def uncentred(reps):  # the toolkit default the chapter warns about
        _, _, vh = torch.linalg.svd(reps, full_matrices=False)
        return (reps @ vh[0]).pow(2)

    assert ex.check_spectral_score(score).ok
    assert not ex.check_spectral_score(uncentred).ok
    assert not ex.check_spectral_score(lambda r: r.pow(2).sum(1)).ok

    def mixture(eps, mu_d, mu_w, cov_d, cov_w):
        delta = mu_d - mu_w
        return (1 - eps) * cov_d + eps * cov_w + eps * (1 - eps) * torch.outer(delta, delta)

    assert ex.check_mixture_covariance(mixture).ok
    assert not ex.check_mixture_covariance(lambda e, a, b, c, d: (1 - e) * c + e * d).ok  # forgets the spike

    assert ex.check_separation(detect.separation).ok

    def unbalanced(reps, is_poison):  # ε‖Δ‖² without the (1 − ε) and over the clean spread only
        eps = float(is_poison.double().mean())
        delta = reps[~is_poison].mean(0) - reps[is_poison].mean(0)
        c = reps[~is_poison] - reps[~is_poison].mean(0)
        return float(eps * delta @ delta / torch.linalg.eigvalsh(c.T @ c / len(c))[-1])

    assert not ex.check_separation(unbalanced).ok
    stub = ex.check_separation(lambda r, p: (_ for _ in ()).throw(NotImplementedError))
    assert stub.passed == 0


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
    from poisonlab import spiked
    from poisonlab.check import limits

    assert limits.check_best_detector(lambda p, q: (q > p).double()).ok
    # flagging where the poisons are *less* likely, or flagging everything, is not the best detector
    assert not limits.check_best_detector(lambda p, q: (q < p).double()).ok
    assert not limits.check_best_detector(lambda p, q: torch.ones_like(p)).ok
    assert "[0, 1]" in repr(limits.check_best_detector(lambda p, q: 2 * (q > p).double()))

    assert limits.check_threshold_shift(
        lambda n, d, eps, sigma: spiked.shift_for(math.sqrt(d / n), eps, sigma)).ok
    assert not limits.check_threshold_shift(  # θ set to γ instead of √γ
        lambda n, d, eps, sigma: spiked.shift_for(d / n, eps, sigma)).ok

    def at(distance):
        def place(n, d, u, eps, seed):
            x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            return x - (x @ u)[:, None] * u + distance(eps) * u
        return place

    assert limits.check_place_poisons(at(lambda eps: math.sqrt(2 * math.log(1 / eps)))).ok
    assert not limits.check_place_poisons(at(lambda eps: 0.5)).ok  # too timid: the mean hardly moves
    assert not limits.check_place_poisons(at(lambda eps: 8.0)).ok  # too far: the filter removes them
