import math

import pytest
import torch
from poisonlab import detect, models, train
from sklearn.metrics import roc_auc_score


def spiked(n=400, d=20, n_poison=40, shift=4.0, seed=0):
    """Two classes of Gaussian representations; class 1 holds n_poison points shifted along one
    direction (a planted spectral signature)."""
    g = torch.Generator().manual_seed(seed)
    reps = torch.randn(n, d, generator=g)
    labels = torch.arange(n) % 2
    is_poison = torch.zeros(n, dtype=torch.bool)
    is_poison[torch.nonzero(labels == 1).flatten()[:n_poison]] = True
    direction = torch.randn(d, generator=g)
    reps[is_poison] += shift * direction / direction.norm()
    return reps, labels, is_poison


def test_spectral_scores_put_the_planted_poisons_on_top():
    reps, labels, is_poison = spiked()
    scores = detect.spectral_scores(reps, labels)
    assert scores.shape == (400,) and bool((scores >= 0).all())
    keep = detect.remove_top(scores, labels, eps=40 / 200)
    assert int((~keep & is_poison).sum()) >= 36  # ≥ 90% of the poisons fall in the removed 1.5ε
    assert detect.detection_report(scores, is_poison).auc > 0.95


def test_spectral_scores_are_centred_per_class():
    reps, labels, _ = spiked(shift=0.0)
    moved = reps + 100.0  # a common offset must not change centred scores
    assert torch.allclose(
        detect.spectral_scores(reps, labels), detect.spectral_scores(moved, labels), rtol=1e-3, atol=1e-3
    )


def test_spectral_scores_handle_many_samples_without_outer_products():
    g = torch.Generator().manual_seed(0)
    reps, labels = torch.randn(20000, 256, generator=g), torch.randint(0, 10, (20000,), generator=g)
    assert detect.spectral_scores(reps, labels).shape == (20000,)


def test_spectral_scores_reject_bad_input():
    reps, labels, _ = spiked()
    with pytest.raises(ValueError, match="at least 2"):
        detect.spectral_scores(reps[:3], torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="constant"):
        detect.spectral_scores(torch.ones(6, 3), torch.tensor([0, 0, 0, 1, 1, 1]))
    bad = reps.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        detect.spectral_scores(bad, labels)
    with pytest.raises(ValueError, match="2-D"):
        detect.spectral_scores(reps[:, 0], labels)


def test_gradient_scores_match_explicit_per_sample_gradients():
    model = models.make("mlp", (1, 6, 6), 3, seed=0, hidden=(8,)).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 1, 6, 6, generator=g), torch.arange(60) % 3
    scores = detect.gradient_scores(model, x, y)
    expected = torch.zeros(60, dtype=torch.float64)
    for c in range(3):
        idx = torch.nonzero(y == c).flatten()
        grads = []
        for i in idx:
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            grads.append(model.head.weight.grad.flatten().clone())
        gmat = torch.stack(grads).double()
        centred = gmat - gmat.mean(0)
        v = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        expected[idx] = (centred @ v).pow(2)
    assert scores.dtype == torch.float64 and torch.allclose(scores, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("fn", [detect.gradient_scores, detect.head_gradients])
def test_gradient_signatures_check_inputs_at_the_model_door(fn):
    model = models.make("mlp", (1, 6, 6), 3, seed=0, hidden=(8,)).eval()
    x, y = torch.rand(12, 1, 6, 6), torch.arange(12) % 3
    with pytest.raises(TypeError, match="^x must hold floating-point inputs"):
        fn(model, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        fn(model, x / 0, y)
    with pytest.raises(ValueError, match="^y must be < 3, the number of classes the model outputs"):
        fn(model, x, y + 100)
    with pytest.raises(ValueError, match="^batch_size must be an integer"):
        fn(model, x, y, batch_size=True)
    assert torch.allclose(fn(model, x.double(), y)[0], fn(model, x, y)[0])


def test_gradient_scores_reject_models_without_a_head():
    with pytest.raises(ValueError, match="head"):
        detect.gradient_scores(torch.nn.Linear(4, 2), torch.rand(4, 4), torch.tensor([0, 1, 0, 1]))


def test_activation_clusters_flag_a_separate_small_cluster():
    reps, labels, is_poison = spiked(shift=12.0)
    clusters = detect.activation_clusters(reps, labels, dims=5)
    poisoned_class = labels == 1  # in a clean class the smaller cluster is an arbitrary split
    report = detect.detection_report(clusters.flags[poisoned_class], is_poison[poisoned_class])
    assert report.recall == 1.0 and report.precision > 0.9
    assert clusters.relative_size[1] < 0.3 and clusters.silhouette[1] > clusters.silhouette[0]
    with pytest.raises(ValueError, match="dims"):
        detect.activation_clusters(reps, labels, dims=50)


def test_remove_top_drops_one_and_a_half_eps_per_class():
    scores = torch.arange(20.0)
    labels = torch.tensor([0] * 10 + [1] * 10)
    keep = detect.remove_top(scores, labels, eps=0.2)  # ⌈1.5 · 0.2 · 10⌉ = 3 per class
    assert keep.tolist() == [True] * 7 + [False] * 3 + [True] * 7 + [False] * 3
    assert bool(detect.remove_top(scores, labels, eps=0.0).all())
    with pytest.raises(ValueError, match="eps"):
        detect.remove_top(scores, labels, eps=1.0)
    with pytest.raises(ValueError, match="NaN"):
        detect.remove_top(torch.tensor([float("nan")] * 20), labels, eps=0.1)


def test_detection_report_agrees_with_scikit_learn():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(300, generator=g) < 0.2
    scores = truth.float() + torch.randn(300, generator=g)
    scores[:50] = scores[0]  # ties
    report = detect.detection_report(scores, truth)
    assert abs(report.auc - roc_auc_score(truth.numpy(), scores.numpy())) < 1e-9
    flags = scores > 1.0
    r = detect.detection_report(flags, truth)
    assert abs(r.precision - int((flags & truth).sum()) / int(flags.sum())) < 1e-12 and r.flagged == float(flags.sum())
    with pytest.raises(ValueError, match="is_poison must be a tensor of shape"):
        detect.detection_report(scores, truth[:5])
    with pytest.raises(ValueError, match="at least one"):
        detect.detection_report(scores, torch.zeros(300, dtype=torch.bool))


def test_remove_top_can_be_limited_to_chosen_classes():
    scores = torch.arange(20.0)
    labels = torch.tensor([0] * 10 + [1] * 10)
    keep = detect.remove_top(scores, labels, eps=0.2, classes=[1])
    assert keep.tolist() == [True] * 17 + [False] * 3
    with pytest.raises(ValueError, match=r"classes \[7\]"):
        detect.remove_top(scores, labels, eps=0.2, classes=[7])


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    g = torch.Generator().manual_seed(1)
    truth = torch.rand(200, generator=g) < 0.3
    scores = truth.float() + torch.randn(200, generator=g)
    scores[:40] = scores[0]  # ties enter the curve together
    fpr, tpr = detect.roc_curve(scores, truth)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert bool((fpr.diff() >= 0).all()) and bool((tpr.diff() >= 0).all())
    area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())  # trapezoids: ties count half
    assert abs(area - detect.roc_auc(scores, truth)) < 1e-9
    with pytest.raises(ValueError, match="at least one poison"):
        detect.roc_curve(scores, torch.zeros(200, dtype=torch.bool))
    with pytest.raises(ValueError, match="is_poison must be a tensor of shape"):
        detect.roc_curve(scores, truth[:10])


def test_tpr_at_fpr_reads_the_roc_curve():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    truth = torch.tensor([True, False, True, False, False, True])
    assert detect.tpr_at_fpr(scores, truth, 0.0) == pytest.approx(1 / 3)
    assert detect.tpr_at_fpr(scores, truth, 1 / 3) == pytest.approx(2 / 3)
    assert detect.tpr_at_fpr(scores, truth, 1.0) == 1.0
    with pytest.raises(ValueError, match="fpr"):
        detect.tpr_at_fpr(scores, truth, 1.5)
    with pytest.raises(ValueError, match="one poison"):
        detect.tpr_at_fpr(scores, torch.zeros(6, dtype=torch.bool), 0.1)


def test_alignment_is_one_for_a_loud_spike_and_small_for_none():
    reps, labels, is_poison = spiked(shift=12.0)
    one = labels == 1
    assert detect.alignment(reps[one], is_poison[one]) > 0.95
    quiet, _, _ = spiked(shift=0.0, d=50)
    assert detect.alignment(quiet[one], is_poison[one]) < 0.5  # a random direction in 50-D
    with pytest.raises(ValueError, match="at least one poison"):
        detect.alignment(reps[one], torch.zeros(int(one.sum()), dtype=torch.bool))
    with pytest.raises(ValueError, match="same mean"):
        detect.alignment(
            torch.ones(6, 2).cumsum(0) * torch.tensor([1.0, 0.0]),
            torch.tensor([True, False, False, False, False, True]),
        )


def test_top_direction_is_the_same_from_either_gram_matrix():
    g = torch.Generator().manual_seed(2)
    wide = torch.randn(30, 80, generator=g, dtype=torch.float64)
    wide[:, 0] *= 6.0  # one loud direction
    centred = wide - wide.mean(0)
    v = detect.top_direction(centred)  # n < F: through the n × n Gram matrix
    reference = torch.linalg.eigh(centred.T @ centred)[1][:, -1]
    assert float(v.norm()) == pytest.approx(1.0) and float((v @ reference).abs()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="constant"):
        detect.top_direction(torch.zeros(5, 9))


def test_spike_components_give_the_separation():
    reps, labels, is_poison = spiked(shift=6.0)
    one = labels == 1
    eps, delta_sq, sigma_sq = detect.spike_components(reps[one], is_poison[one])
    assert eps == pytest.approx(40 / 200) and delta_sq > 25
    assert detect.separation(reps[one], is_poison[one]) == pytest.approx(eps * (1 - eps) * delta_sq / sigma_sq)


def test_activation_clusters_with_ica_find_a_separate_small_cluster():
    reps, labels, is_poison = spiked(shift=12.0)
    clusters = detect.activation_clusters(reps, labels, dims=5, reduce="ica")
    poisoned_class = labels == 1
    report = detect.detection_report(clusters.flags[poisoned_class], is_poison[poisoned_class])
    assert report.recall == 1.0 and report.precision > 0.9
    pca = detect.activation_clusters(reps, labels, dims=5)  # the default reduction is unchanged
    assert torch.equal(pca.flags[poisoned_class], clusters.flags[poisoned_class])
    with pytest.raises(ValueError, match="reduce"):
        detect.activation_clusters(reps, labels, reduce="umap")
    with pytest.raises(ValueError, match="more than 10 points"):
        detect.activation_clusters(reps[:16], labels[:16], reduce="ica")


def test_activation_verdicts_flag_a_small_cluster_and_pass_an_even_split():
    reps, labels, _ = spiked(shift=12.0)
    verdicts = detect.activation_verdicts(detect.activation_clusters(reps, labels, dims=5))
    assert verdicts[1].by_size and verdicts[1].by_silhouette and verdicts[1].relative_size <= 0.35
    assert not verdicts[0].by_size and not verdicts[0].by_silhouette  # a clean Gaussian splits in halves
    # the rules are thresholds on the two numbers, so they can be moved
    strict = detect.activation_verdicts(detect.activation_clusters(reps, labels, dims=5), size=0.05)
    assert not strict[1].by_size and not strict[1].by_silhouette
    for bad in ({"size": 0.0}, {"size": 0.6}, {"silhouette": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            detect.activation_verdicts(detect.activation_clusters(reps, labels, dims=5), **bad)
    with pytest.raises(ValueError, match="Clusters"):
        detect.activation_verdicts({1: 0.2})


def test_reclassification_ratio_tells_genuine_from_relabelled_clusters():
    genuine = torch.tensor([1] * 18 + [7, 4])  # read as its label: l / p = 18 / 1
    poisons = torch.tensor([7] * 15 + [1] * 3 + [2, 2])  # read as the source class: 3 / 15
    assert detect.reclassification_ratio(genuine, 1) == 18.0
    assert detect.reclassification_ratio(poisons, 1) == pytest.approx(0.2)
    assert detect.reclassification_ratio(torch.tensor([1, 1]), 1) == float("inf")
    with pytest.raises(ValueError, match="non-empty"):
        detect.reclassification_ratio(torch.tensor([], dtype=torch.long), 1)
    with pytest.raises(ValueError, match="integer"):
        detect.reclassification_ratio(torch.tensor([1.0, 7.0]), 1)
    with pytest.raises(ValueError, match="label"):
        detect.reclassification_ratio(torch.tensor([1, 7]), "1")
    with pytest.raises(ValueError, match="^label must be a class index >= 0, got -1"):
        detect.reclassification_ratio(torch.tensor([1, 7]), -1)
    with pytest.raises(ValueError, match="^predictions must be >= 0"):
        detect.reclassification_ratio(torch.tensor([1, -7]), 1)


def test_chapter_4_checkers_pass_right_answers_and_reject_wrong_ones():
    """The two derive exercises of chapter 4 (their checkers live in check.spectral)."""
    from poisonlab.check import spectral as ex
    from poisonlab.check import variant

    def mean_scores(eps, norm, cos):
        return ((1 - eps) * norm * cos) ** 2, (eps * norm * cos) ** 2

    def switch(sigma1_sq, delta_norm):
        return sigma1_sq / delta_norm**2 if sigma1_sq < delta_norm**2 else math.inf

    def forgets_dilution(sigma1_sq, delta_norm):  # solves ε(1 − ε)‖Δ‖² = σ₁², as if the genuine spread stayed whole
        disc = 1 - 4 * sigma1_sq / delta_norm**2
        return (1 - math.sqrt(disc)) / 2 if disc >= 0 else math.inf

    for v in (0, 5):
        with variant(v):
            assert ex.check_mean_scores(mean_scores).ok
            assert not ex.check_mean_scores(lambda e, n, c: ((n * c) ** 2, 0.0)).ok  # distances from the other mean
            assert not ex.check_mean_scores(lambda e, n, c: ((e * n * c) ** 2, ((1 - e) * n * c) ** 2)).ok
            assert ex.check_switch_share(switch).ok
            assert not ex.check_switch_share(forgets_dilution).ok
            assert not ex.check_switch_share(lambda s1, d: s1 / d**2).ok  # never says "no switch"
            assert not ex.check_switch_share(lambda s1, d: min(1.0, 2 * s1 / d**2)).ok  # s = 2 of the bound
            assert ex.check_switch_share(lambda s1, d: (_ for _ in ()).throw(NotImplementedError)).passed == 0


def test_auc_chance_width_holds_95_percent_of_the_aucs_of_useless_scores():
    n_pos, n_neg = 40, 160
    w = detect.auc_chance_width(n_pos, n_neg)
    assert w == pytest.approx(1.96 * math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg)))
    assert detect.auc_chance_width(n_pos, n_neg, z=2.58) == pytest.approx(w * 2.58 / 1.96)
    g = torch.Generator().manual_seed(0)
    truth = torch.arange(n_pos + n_neg) < n_pos
    aucs = torch.tensor([detect.roc_auc(torch.rand(n_pos + n_neg, generator=g), truth) for _ in range(1000)])
    outside = float(((aucs - 0.5).abs() > w).float().mean())
    assert 0.03 < outside < 0.07  # about 5% of random scores fall outside ½ ± w
    assert float(aucs.std()) == pytest.approx(w / 1.96, rel=0.1)


@pytest.mark.parametrize(
    "args, match", [((0, 10), "n_pos"), ((10, -1), "n_neg"), ((10, 10.5), "n_neg"), ((10, 10, 0.0), "z")]
)
def test_auc_chance_width_rejects_empty_groups_and_bad_quantiles(args, match):
    n_pos, n_neg, *z = args
    with pytest.raises(ValueError, match=match):
        detect.auc_chance_width(n_pos, n_neg, **({"z": z[0]} if z else {}))


def test_removal_recall_counts_the_poisons_in_the_removed_top_of_the_class():
    scores = torch.arange(20.0)
    is_poison = torch.zeros(20, dtype=torch.bool)
    is_poison[[0, 17, 18, 19]] = True  # three on top, one at the bottom
    assert detect.removal_recall(scores, is_poison, 0.1) == 0.75  # ⌈1.5 · 0.1 · 20⌉ = 3 removed
    assert detect.removal_recall(scores, is_poison, 0.1, factor=0.5) == 0.25  # only the top one
    assert detect.removal_recall(-scores, is_poison, 0.1) == 0.25  # reversed, the bottom poison is on top
    assert detect.removal_recall(scores, is_poison, 0.0) == 0.0  # ε = 0 removes nothing
    with pytest.raises(ValueError, match="no poison"):
        detect.removal_recall(scores, torch.zeros(20, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError, match="is_poison must be a tensor of shape"):
        detect.removal_recall(scores, is_poison[:10], 0.1)
    with pytest.raises(ValueError, match="1-D"):
        detect.removal_recall(scores.view(4, 5), is_poison, 0.1)
    with pytest.raises(ValueError, match="eps"):
        detect.removal_recall(scores, is_poison, 1.0)


def test_spike_visibility_is_loud_for_a_planted_spike_and_quiet_without_one():
    reps, labels, is_poison = spiked(shift=12.0)
    one = labels == 1
    loud = detect.spike_visibility(reps[one], is_poison[one])
    assert loud.separation == detect.separation(reps[one], is_poison[one]) and loud.separation > 1
    assert loud.auc == detect.detection_report(detect.spectral_scores(reps[one], labels[one]), is_poison[one]).auc
    assert loud.auc > 0.99 and loud.cos2 == pytest.approx(detect.alignment(reps[one], is_poison[one]) ** 2)
    assert loud.cos2 > 0.9
    quiet_reps, _, _ = spiked(shift=0.0, d=50)
    quiet = detect.spike_visibility(quiet_reps[one], is_poison[one])
    assert quiet.separation < 0.1 and abs(quiet.auc - 0.5) < 0.2 and quiet.cos2 < 0.25
    with pytest.raises(ValueError, match="is_poison must be a tensor of shape"):
        detect.spike_visibility(reps[one], is_poison)
    with pytest.raises(ValueError, match="2-D"):
        detect.spike_visibility(reps[one][:, 0], is_poison[one])
    with pytest.raises(ValueError, match="at least 2 poisons"):
        detect.spike_visibility(reps[one], torch.zeros(int(one.sum()), dtype=torch.bool))


def patched_images(n=60, n_poison=8, seed=0):
    """n 1×8×8 images of 3 classes; n_poison of class 0 carry a bright 3×3 corner (the poisons)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % 3
    is_poison = torch.zeros(n, dtype=torch.bool)
    is_poison[torch.nonzero(y == 0).flatten()[:n_poison]] = True
    x[is_poison, :, -3:, -3:] = 1.0
    return x, y, is_poison


def test_signature_stats_see_a_planted_spike_in_the_target_class():
    reps, labels, is_poison = spiked(shift=8.0)
    stats = detect.signature_stats(reps, labels, is_poison, 1)
    assert stats["auc"] > 0.95 and stats["cos"] > 0.8 and stats["s"] > 1
    scores = detect.spectral_scores(reps, labels)
    assert detect.signature_stats(reps, labels, is_poison, 1, scores=scores) == stats
    flat = detect.signature_stats(*spiked(shift=0.0), 1)  # no spike: the top direction looks past the poisons
    assert flat["cos"] < 0.5 and flat["s"] < stats["s"]
    with pytest.raises(ValueError, match="target"):
        detect.signature_stats(reps, labels, is_poison, 7)
    with pytest.raises(ValueError, match="is_poison"):
        detect.signature_stats(reps, labels, is_poison[:10], 1)
    with pytest.raises(ValueError, match="scores"):
        detect.signature_stats(reps, labels, is_poison, 1, scores=scores[:10])


def test_signature_aucs_find_a_patch_the_representation_keeps():
    x, y, is_poison = patched_images()
    model = models.make("logreg", (1, 8, 8), 3, seed=0)  # its representation is the pixels
    t = y == 0
    aucs = detect.signature_aucs(model, x[t], y[t], is_poison[t])
    assert list(aucs) == ["representation", "gradient"] and 0.0 <= aucs["gradient"] <= 1.0
    assert aucs["representation"] > 0.95
    assert aucs["representation"] == detect.roc_auc(detect.spectral_scores(x[t].flatten(1), y[t]), is_poison[t])
    with pytest.raises(ValueError, match="one class"):
        detect.signature_aucs(model, x, y, is_poison)
    with pytest.raises(ValueError, match="is_poison"):
        detect.signature_aucs(model, x[t], y[t], is_poison)


def test_early_gradient_scores_score_the_target_class_of_a_short_run():
    x, y, is_poison = patched_images()
    scores = detect.early_gradient_scores(x, y, 0, epochs=1, lr=0.1, seed=3, arch="mlp")
    assert scores.shape == (60,) and bool((scores[y != 0] == 0).all()) and bool((scores[y == 0] >= 0).all())
    net = models.make("mlp", (1, 8, 8), 3, seed=3)
    train.fit(net, x, y, epochs=1, lr=0.1, seed=3, progress=False)
    assert torch.equal(scores[y == 0], detect.gradient_scores(net, x[y == 0], y[y == 0]))  # the same short run
    assert torch.equal(scores, detect.early_gradient_scores(x, y, 0, epochs=1, lr=0.1, seed=3, arch="mlp"))
    with pytest.raises(ValueError, match="target"):
        detect.early_gradient_scores(x, y, 5)
    with pytest.raises(ValueError, match="epochs"):
        detect.early_gradient_scores(x, y, 0, epochs=0)


def test_activation_report_flags_the_small_cluster_of_the_target_class():
    reps, labels, is_poison = spiked(shift=12.0)
    report = detect.activation_report(reps, labels, is_poison, 1, dims=5)
    clusters = detect.activation_clusters(reps, labels, dims=5)
    assert torch.equal(report["flags"], clusters.flags)
    assert report["by_size"] and report["recall"] == 1.0 and report["precision"] > 0.9
    assert report["relative_size"] == clusters.relative_size[1] and report["auc"] > 0.9
    verdicts = detect.activation_verdicts(clusters)
    assert report["clean_by_size"] == int(verdicts[0].by_size)  # the one other class
    with pytest.raises(ValueError, match="target"):
        detect.activation_report(reps, labels, is_poison, 3, dims=5)
    with pytest.raises(ValueError, match="is_poison"):
        detect.activation_report(reps, labels, is_poison[:5], 1, dims=5)


def test_detectors_on_class_report_three_aucs_and_the_verdict():
    x, y, is_poison = patched_images()
    model = models.make("logreg", (1, 8, 8), 3, seed=0)
    found = detect.detectors_on_class(model, x, y, is_poison, 0, dims=3)
    assert list(found)[:3] == ["representation", "gradient", "clustering"]
    assert found["representation"] > 0.95 and found["separation"] > 0
    t = y == 0
    alone = detect.activation_report(x[t].flatten(1), y[t], is_poison[t], 0, dims=3)
    assert found["clustering"] == alone["auc"] and found["by_size"] == alone["by_size"]
    with pytest.raises(ValueError, match="target"):
        detect.detectors_on_class(model, x, y, is_poison, 4, dims=3)
    with pytest.raises(ValueError, match="is_poison"):
        detect.detectors_on_class(model, x, y, is_poison[:3], 0, dims=3)


def test_poisons_removed_and_the_threshold_of_the_removal():
    labels = torch.tensor([0] * 5 + [1] * 5)
    scores = torch.tensor([0.1, 0.9, 0.5, 0.8, 0.2, 5.0, 1.0, 2.0, 3.0, 4.0])
    is_poison = torch.zeros(10, dtype=torch.bool)
    is_poison[[1, 2, 9]] = True
    # eps = 0.2, factor 1.5: ⌈1.5 · 0.2 · 5⌉ = 2 removed per class: 0.9, 0.8 and 5.0, 4.0
    assert detect.poisons_removed(scores, labels, is_poison, 0.2) == 2
    assert detect.poisons_removed(scores, labels, is_poison, 0.2, classes=[0]) == 1
    assert detect.removal_threshold(scores, labels, 0.2, classes=[0]) == pytest.approx(0.8)
    assert detect.removal_threshold(scores, labels, 0.2) == pytest.approx(0.8)
    assert detect.removal_threshold(scores, labels, 0.2, classes=[1]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="nothing is removed"):
        detect.removal_threshold(scores, labels, 0.0)
    with pytest.raises(ValueError, match="is_poison"):
        detect.poisons_removed(scores, labels, is_poison[:4], 0.2)
    with pytest.raises(ValueError, match="eps"):
        detect.poisons_removed(scores, labels, is_poison, 1.5)


@pytest.mark.parametrize("seed", range(5))
def test_the_silhouette_is_scikit_learns_and_zero_for_one_cluster(seed):
    from sklearn.metrics import silhouette_score

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(40, 3, generator=g).double()
    assign = (torch.rand(40, generator=g) < 0.3).long()
    assign[:2] = torch.tensor([0, 1])  # both clusters present
    assert detect._silhouette(z, assign) == pytest.approx(silhouette_score(z.numpy(), assign.numpy()), rel=1e-12)
    assert detect._silhouette(z, torch.zeros(40, dtype=torch.long)) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: detect.top_direction(torch.ones(4, 3, dtype=torch.long)), "^centred must be a floating-point"),
        (lambda: detect.top_direction(torch.ones(3)), r"^centred must be a 2-D tensor"),
        (lambda: detect.top_direction(torch.ones(0, 3)), "^centred must have at least one row"),
        (lambda: detect.top_direction(torch.full((3, 3), float("nan"))), "^centred must hold finite"),
        (
            lambda: detect.spectral_scores(torch.ones(4, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)),
            "^reps",
        ),
        (lambda: detect.tpr_at_fpr(torch.rand(4), torch.tensor([1, 0, 1, 0]).bool(), True), "^fpr must be a number"),
        (
            lambda: detect.activation_clusters(
                torch.rand(20, 4), torch.zeros(20, dtype=torch.long), silhouette_sample=True
            ),
            "^silhouette_sample must be an integer",
        ),
        (
            lambda: detect.activation_clusters(
                torch.rand(20, 4), torch.zeros(20, dtype=torch.long), silhouette_sample=0
            ),
            "^silhouette_sample must be",
        ),
    ],
)
def test_detectors_refuse_integer_matrices_and_bool_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_activation_verdicts_refuse_bool_thresholds():
    clusters = detect.activation_clusters(torch.rand(20, 4), torch.zeros(20, dtype=torch.long), dims=2)
    with pytest.raises(ValueError, match="^silhouette must be a number"):
        detect.activation_verdicts(clusters, silhouette=True)
    with pytest.raises(ValueError, match="^size must be a number"):
        detect.activation_verdicts(clusters, size=True)


def test_mixture_covariance_refuses_integer_and_non_finite_moments():
    mean, cov = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match="^mean_clean must be a floating-point"):
        detect.mixture_covariance(0.1, mean.long(), mean, cov, cov)
    with pytest.raises(ValueError, match="^cov_poison must be a floating-point"):
        detect.mixture_covariance(0.1, mean, mean, cov, cov.long())
    with pytest.raises(ValueError, match="^mean_poison must hold finite"):
        detect.mixture_covariance(0.1, mean, mean / 0, cov, cov)
    with pytest.raises(ValueError, match=r"^cov_clean must be a tensor of shape \(3, 3\)"):
        detect.mixture_covariance(0.1, mean, mean, cov[:2], cov)


# -- scores must be real-valued: integer, uint8 and bool tensors are refused, not ranked ----------

_TRUTH = torch.arange(20) % 4 == 0
_NON_FLOAT_SCORES = {
    "int64": torch.arange(20),
    "uint8": (torch.linspace(0, 1, 20) * 255).to(torch.uint8),
    "bool": torch.arange(20) > 10,
}
_SCORE_CALLS = {
    "roc_auc": lambda s: detect.roc_auc(s, _TRUTH),
    "roc_curve": lambda s: detect.roc_curve(s, _TRUTH),
    "tpr_at_fpr": lambda s: detect.tpr_at_fpr(s, _TRUTH, 0.1),
    "remove_top": lambda s: detect.remove_top(s, torch.zeros(20, dtype=torch.long), 0.1),
    "removal_threshold": lambda s: detect.removal_threshold(s, torch.zeros(20, dtype=torch.long), 0.1),
    "poisons_removed": lambda s: detect.poisons_removed(s, torch.zeros(20, dtype=torch.long), _TRUTH, 0.1),
    "removal_recall": lambda s: detect.removal_recall(s, _TRUTH, 0.1),
}


@pytest.mark.parametrize("dtype", list(_NON_FLOAT_SCORES))
@pytest.mark.parametrize("fn", list(_SCORE_CALLS))
def test_score_functions_refuse_integer_uint8_and_bool_scores(fn, dtype):
    with pytest.raises(TypeError, match=rf"^scores must be floating-point scores, got dtype torch\.{dtype}"):
        _SCORE_CALLS[fn](_NON_FLOAT_SCORES[dtype])
    _SCORE_CALLS[fn](_NON_FLOAT_SCORES[dtype].float())  # the converted scores are accepted


@pytest.mark.parametrize("fn", list(_SCORE_CALLS))
def test_score_functions_refuse_non_tensors_and_non_finite_scores(fn):
    with pytest.raises(TypeError, match="^scores must be a torch.Tensor"):
        _SCORE_CALLS[fn](list(range(20)))
    with pytest.raises(ValueError, match="^scores must hold finite numbers"):
        _SCORE_CALLS[fn](torch.arange(20.0).index_fill(0, torch.tensor([3]), float("nan")))


def test_detection_report_takes_bool_flags_or_float_scores_but_not_integers():
    flags = torch.arange(20) % 4 == 0
    assert detect.detection_report(flags, _TRUTH).precision == 1.0  # flags: precision and recall
    assert detect.detection_report(flags.double(), _TRUTH).auc == 1.0  # scores: the AUC
    for bad in (flags.long(), (flags * 255).to(torch.uint8)):
        with pytest.raises(TypeError, match="^flags_or_scores must be bool flags or floating-point scores"):
            detect.detection_report(bad, _TRUTH)


def test_auc_and_spike_messages_name_is_poison():
    with pytest.raises(ValueError, match="^is_poison must mark at least one poison and one clean point, got 0"):
        detect.roc_auc(torch.rand(10), torch.zeros(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="^is_poison must mark at least 2 poisons and 2 clean points, got 1"):
        detect.separation(torch.rand(10, 3), torch.arange(10) == 0)
    with pytest.raises(ValueError, match="^is_poison must mark at least one poison"):
        detect.alignment(torch.rand(10, 3), torch.ones(10, dtype=torch.bool))


def test_reclassification_ratio_checks_label_and_predictions_against_num_classes():
    predictions = torch.tensor([1, 1, 7, 7, 7])
    assert detect.reclassification_ratio(predictions, 100) == 0.0  # no class count: 100 may be a class
    assert detect.reclassification_ratio(predictions, 1, num_classes=10) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"^label must be in \[0, 10\), got 100"):
        detect.reclassification_ratio(predictions, 100, num_classes=10)
    with pytest.raises(ValueError, match="^predictions must be < 10"):
        detect.reclassification_ratio(torch.tensor([1, 12]), 1, num_classes=10)


def test_spectral_scores_name_labels_when_a_class_is_too_small():
    with pytest.raises(ValueError, match="^labels must give every class at least 2 samples .*got class 101 with 1"):
        detect.spectral_scores(torch.rand(5, 3), torch.tensor([0, 0, 0, 0, 101]))


def test_early_gradient_scores_name_arch():
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    for bad in ("bogus", None, 3, "MLP"):
        with pytest.raises(ValueError, match="^arch must be one of 'logreg', 'mlp', 'cnn'"):
            detect.early_gradient_scores(x, y, 0, epochs=1, arch=bad)
