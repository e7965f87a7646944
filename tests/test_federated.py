"""Poisoning federated learning (poisonlab.federated): the split, the aggregators' arithmetic, the
attacks' updates, and model replacement winning against the mean but not against Krum."""

import math

import pytest
import torch
from poisonlab import federated as fl
from poisonlab import models


def test_dirichlet_split_covers_every_example_once_and_skews_labels():
    y = torch.arange(1000) % 10
    parts = fl.dirichlet_split(y, 8, alpha=0.1, min_size=5, seed=3)
    assert len(parts) == 8 and min(len(p) for p in parts) >= 5
    assert torch.equal(torch.sort(torch.cat(parts))[0], torch.arange(1000))
    assert all(torch.equal(a, b) for a, b in zip(parts, fl.dirichlet_split(y, 8, alpha=0.1, min_size=5, seed=3)))

    def classes_per_client(alpha):
        return sum(len(torch.unique(y[p])) for p in fl.dirichlet_split(y, 8, alpha=alpha, seed=0)) / 8

    assert classes_per_client(0.1) < 6 < classes_per_client(100.0)


def test_aggregators_on_hand_computed_updates():
    u = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [100.0, -100.0]])
    assert torch.allclose(fl.aggregate(u, "mean"), torch.tensor([22.0, 0.0]))
    assert torch.equal(fl.aggregate(u, "median"), torch.tensor([3.0, 20.0]))
    assert torch.allclose(fl.aggregate(u, "trimmed_mean", trim=0.2), torch.tensor([3.0, 20.0]))
    assert torch.equal(fl.aggregate(u, "trimmed_mean", trim=0.0), fl.aggregate(u, "mean"))
    # Krum with f = 1 scores each update by its N - f - 2 = 2 nearest neighbours: the middle one wins
    assert torch.equal(fl.aggregate(u, "krum", f=1), u[1])


def test_robust_aggregators_ignore_one_huge_update_and_the_mean_does_not():
    g = torch.Generator().manual_seed(0)
    benign = 0.1 * torch.randn(9, 50, generator=g) + 1.0
    u = torch.cat([torch.full((1, 50), 1000.0), benign])
    assert fl.aggregate(u, "mean").min() > 50
    for rule in ("median", "trimmed_mean", "krum"):
        assert (fl.aggregate(u, rule) - 1.0).abs().max() < 0.5, rule


def test_alie_shift_is_the_normal_quantile_of_the_papers_rule():
    assert fl.alie_z(10, 1) == pytest.approx(0.0, abs=1e-12)  # s = 5: no room with one attacker of ten
    assert fl.alie_z(10, 4) == pytest.approx(0.8416, abs=1e-4)  # s = 2, Φ⁻¹(0.8)
    assert fl.alie_z(50, 12) == pytest.approx(0.5828, abs=1e-4)  # s = 14, Φ⁻¹(0.72)
    benign = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    assert torch.allclose(fl.little_is_enough(benign, 1.5), torch.tensor([2.0 - 3.0, 3.0 - 3.0]))
    with pytest.raises(ValueError, match="num_malicious"):
        fl.alie_z(10, 6)


def test_flatten_and_load_flat_round_trip_on_the_channels_last_cnn():
    net = models.make("cnn", (1, 8, 8), 3, seed=0)
    v = fl.flatten(net)
    assert v.shape == (sum(p.numel() for p in net.parameters()),)
    other = models.make("cnn", (1, 8, 8), 3, seed=1)
    fl.load_flat(other, v)
    assert torch.equal(fl.flatten(other), v)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(other(x), net(x))
    with pytest.raises(ValueError, match="vector"):
        fl.load_flat(other, v[:-1])


def test_model_replacement_update_replaces_the_global_model_under_the_mean():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 6, 6, generator=g), torch.arange(40) % 4
    net = models.make("mlp", (1, 6, 6), 4, seed=0, hidden=(16,))
    before = fl.flatten(net)

    def stamp(b):
        b = b.clone()
        b[..., -2:, -2:] = 1.0
        return b

    scaled = fl.model_replacement(net, x, y, stamp, 0, num_clients=10, server_lr=2.0, seed=1)
    shared = fl.model_replacement(net, x, y, stamp, 0, num_clients=10, server_lr=2.0, num_malicious=4, seed=1)
    assert torch.allclose(shared, scaled / 4)  # four colluding attackers share the scale N/(η m)
    assert torch.equal(fl.flatten(net), before)  # the global model is left alone
    # γ = 1 (one client, η = 1) gives the attacker's own model X as X − θ_t: the same training, unscaled
    xs_update = fl.model_replacement(net, x, y, stamp, 0, num_clients=1, server_lr=1.0, seed=1)
    assert torch.allclose(scaled, (10 / 2.0) * xs_update)
    updates = torch.cat([scaled[None], torch.zeros(9, scaled.numel())])
    after = before + 2.0 * fl.aggregate(updates, "mean")
    assert torch.allclose(after, before + xs_update, atol=1e-5)
    assert xs_update.abs().max() > 0


@pytest.mark.parametrize("aggregator, succeeds", [("mean", True), ("krum", False)])
def test_one_model_replacement_client_backdoors_the_mean_but_not_krum(aggregator, succeeds):
    import poisonlab as pl

    d = pl.load("digits")
    r = fl.run(
        d.x_train,
        d.y_train,
        d.x_test,
        d.y_test,
        num_clients=5,
        rounds=4,
        attack_from=3,
        aggregator=aggregator,
        attack="model_replacement",
        trigger=pl.Patch(size=2),
        target=0,
        arch="mlp",
        lr=0.1,
    )
    assert len(r.clean_accuracy) == 4 and r.malicious == [0] and sum(r.client_sizes) == len(d.y_train)
    assert r.attack_success_rate[2] < 0.2  # before the attack
    assert (r.attack_success_rate[-1] > 0.9) == succeeds, r.attack_success_rate


def test_local_update_leaves_the_global_model_alone():
    net = models.make("logreg", (1, 4, 4), 2, seed=0)
    before = fl.flatten(net)
    delta = fl.local_update(net, torch.rand(16, 1, 4, 4), torch.arange(16) % 2, epochs=2)
    assert delta.shape == before.shape and delta.abs().max() > 0
    assert torch.equal(fl.flatten(net), before)
    assert not math.isnan(float(delta.sum()))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: fl.aggregate(torch.zeros(3), "mean"), "updates"),
        (lambda: fl.aggregate(torch.zeros(3, 2), "mode"), "rule"),
        (lambda: fl.aggregate(torch.zeros(4, 2), "krum", f=1), "krum"),
        (lambda: fl.aggregate(torch.zeros(4, 2), "trimmed_mean", trim=0.5), "trim"),
        (lambda: fl.aggregate(torch.tensor([[float("nan")]]), "mean"), "updates"),
        (lambda: fl.dirichlet_split(torch.arange(10) % 2, 0), "num_clients"),
        (lambda: fl.dirichlet_split(torch.arange(10) % 2, 2, alpha=0.0), "alpha"),
        (lambda: fl.dirichlet_split(torch.arange(10) % 2, 5, min_size=3), "min_size"),
        (lambda: fl.little_is_enough(torch.zeros(1, 3), 1.0), "benign"),
        (lambda: fl.little_is_enough(torch.zeros(3, 3), -1.0), "z"),
        (lambda: fl.clip_to_norm(torch.ones(3), 0.0), "bound"),
        (lambda: fl.clip_to_norm(torch.ones(3), float("nan")), "bound"),
        (lambda: fl.clip_to_norm(torch.ones(2, 3), 1.0), "update"),
        (lambda: fl.clip_to_norm(torch.tensor([1.0, float("inf")]), 1.0), "update"),
        (lambda: fl.krum_select(torch.zeros(4, 2), 1), "krum"),
        (lambda: fl.krum_select(torch.zeros(6, 2), -1), "f"),
    ],
)
def test_bad_inputs_are_refused(call, error):
    with pytest.raises(ValueError, match=error):
        call()


def test_bad_run_settings_are_refused():
    x, y = torch.rand(40, 1, 6, 6), torch.arange(40) % 2
    with pytest.raises(ValueError, match="num_malicious"):
        fl.run(x, y, x, y, num_clients=4, attack="little_is_enough", num_malicious=4)
    with pytest.raises(ValueError, match="trigger"):
        fl.run(x, y, x, y, num_clients=4, attack="model_replacement")
    with pytest.raises(ValueError, match="trigger"):
        fl.run(x, y, x, y, num_clients=4, attack="norm_bounded")
    with pytest.raises(ValueError, match="krum_f"):
        fl.run(x, y, x, y, num_clients=6, aggregator="krum", krum_f=2)
    with pytest.raises(ValueError, match="num_malicious"):
        fl.model_replacement(models.make("logreg", (1, 6, 6), 2), x, y, lambda b: b, 0, num_clients=4, num_malicious=5)
    with pytest.raises(ValueError, match="aggregator"):
        fl.run(x, y, x, y, aggregator="average")
    with pytest.raises(TypeError, match="trigger"):
        fl.model_replacement(models.make("logreg", (1, 6, 6), 2), x, y, "patch", 0, num_clients=4)


def test_krum_runs_with_as_many_attackers_as_its_rule_allows_and_more():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 1, 6, 6, generator=g), torch.arange(60) % 3
    for m in (1, 2):  # N = 5: Krum's f is capped at 1
        r = fl.run(x, y, x, y, num_clients=5, rounds=1, aggregator="krum", attack="little_is_enough", num_malicious=m)
        assert r.malicious == list(range(m)) and len(r.clean_accuracy) == 1


def test_a_run_continued_from_its_model_equals_one_longer_run():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(80, 1, 6, 6, generator=g), torch.arange(80) % 4

    def stamp(b):
        b = b.clone()
        b[..., -2:, -2:] = 1.0
        return b

    common = dict(num_clients=5, aggregator="median", attack="model_replacement", num_malicious=1, attack_from=2)
    common |= dict(trigger=stamp, target=0, arch="mlp", alpha=5.0, seed=3)
    whole = fl.run(x, y, x, y, rounds=4, **common)
    head = fl.run(x, y, x, y, rounds=2, **common)
    before = fl.flatten(head.model)
    tail = fl.run(x, y, x, y, rounds=2, initial=head.model, first_round=2, **common)
    assert torch.equal(fl.flatten(head.model), before)  # the initial model is copied, not trained
    assert torch.equal(fl.flatten(tail.model), fl.flatten(whole.model))
    assert head.clean_accuracy + tail.clean_accuracy == whole.clean_accuracy
    assert head.attack_success_rate + tail.attack_success_rate == whole.attack_success_rate
    with pytest.raises(ValueError, match="first_round"):
        fl.run(x, y, x, y, num_clients=5, first_round=-1)
    with pytest.raises(TypeError, match="initial"):
        fl.run(x, y, x, y, num_clients=5, initial="model")
    small = fl.run(x, y, x, y, num_clients=5, rounds=1, arch="mlp", model_kwargs={"hidden": (8,)})
    assert sum(p.numel() for p in small.model.parameters()) == 36 * 8 + 8 + 8 * 4 + 4
    with pytest.raises(TypeError, match="model_kwargs"):
        fl.run(x, y, x, y, num_clients=5, model_kwargs=[("hidden", (8,))])


def test_clip_to_norm_projects_onto_the_ball_and_leaves_small_updates_alone():
    u = torch.tensor([3.0, 4.0])  # norm 5
    assert torch.allclose(fl.clip_to_norm(u, 1.0), torch.tensor([0.6, 0.8]))
    assert fl.clip_to_norm(u, 5.0) is u and fl.clip_to_norm(u, 7.0) is u
    big = 100.0 * torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert float(fl.clip_to_norm(big, 2.5).norm()) == pytest.approx(2.5, rel=1e-5)


def test_krum_select_keeps_the_update_of_the_densest_group_and_aggregate_agrees():
    g = torch.Generator().manual_seed(0)
    u = torch.cat([torch.full((3, 4), 5.0), torch.randn(7, 4, generator=g)])  # three identical far updates
    # f = 3: scores sum the 5 nearest; the three identical ones each see two zeros and three far updates
    kept = fl.krum_select(u, 3)
    assert 3 <= kept < 10 and torch.equal(fl.aggregate(u, "krum", f=3), u[kept])
    close = torch.cat([torch.full((4, 4), 0.05), 0.5 * torch.randn(6, 4, generator=g)])
    assert fl.krum_select(close, 3) < 4  # four identical updates inside the spread are kept


def test_a_norm_bounded_attacker_submits_an_update_of_benign_size():
    import poisonlab as pl

    d = pl.load("digits")
    common = dict(num_clients=5, rounds=1, aggregator="mean", trigger=pl.Patch(size=2), target=0, arch="mlp")
    runs = {a: fl.run(d.x_train, d.y_train, d.x_test, d.y_test, attack=a, **common) for a in ("none", "norm_bounded")}
    start = fl.flatten(models.make("mlp", d.input_shape, d.num_classes, seed=0))
    steps = {a: 5 * (fl.flatten(r.model) - start) for a, r in runs.items()}  # η = 1: N times the mean step
    # the sum of the updates differs only by the attacker's; its norm is at most the median benign norm
    assert 0 < float((steps["norm_bounded"] - steps["none"]).norm()) < float(steps["none"].norm())
    krum = fl.run(d.x_train, d.y_train, d.x_test, d.y_test, attack="norm_bounded", **(common | {"aggregator": "krum"}))
    assert len(krum.krum_selected) == 1 and 0 <= krum.krum_selected[0] < 5


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_local_update_takes_the_steps_of_torch_sgd(momentum):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 1, 6, 6, generator=g), torch.arange(48) % 3
    net = models.make("mlp", (1, 6, 6), 3, seed=0, hidden=(16,))
    delta = fl.local_update(net, x, y, epochs=2, lr=0.1, batch_size=16, momentum=momentum, seed=5)
    ref = models.make("mlp", (1, 6, 6), 3, seed=0, hidden=(16,))
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=momentum)
    order = torch.Generator().manual_seed(5)
    ref.train()
    for _ in range(2):
        for idx in torch.randperm(48, generator=order).split(16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ref(x[idx]), y[idx]).backward()
            opt.step()
    assert torch.allclose(delta, fl.flatten(ref) - fl.flatten(net), atol=1e-6)
