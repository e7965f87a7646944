import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from poisonlab import triggers
from poisonlab.triggers import Blend, Patch, backdoor


def test_patch_stamps_a_checkerboard_in_the_bottom_right_corner():
    x = torch.full((2, 1, 8, 8), 0.5)
    out = Patch(3)(x)
    square = out[0, 0, 5:, 5:]
    assert torch.equal(square, torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]))
    # nothing outside the square changes, and the input is not modified in place
    rest = out.clone()
    rest[..., 5:, 5:] = 0.5
    assert torch.equal(rest, x) and float(x.max()) == 0.5


@pytest.mark.parametrize(
    "location,corner",
    [("top-left", (0, 0)), ("top-right", (0, 6)), ("bottom-left", (6, 0)), ("center", (3, 3)), ((1, 4), (1, 4))],
)
def test_patch_locations(location, corner):
    assert Patch(2, location).corner((1, 8, 8)) == corner
    out = Patch(2, location, pattern="white")(torch.zeros(1, 1, 8, 8))
    r, c = corner
    assert float(out.sum()) == 4 and float(out[0, 0, r : r + 2, c : c + 2].sum()) == 4


def test_patch_opacity_mixes_the_pattern_in():
    x = torch.full((1, 3, 6, 6), 0.2)
    out = Patch(2, pattern="white", opacity=0.25)(x)
    assert torch.allclose(out[0, :, 4:, 4:], torch.full((3, 2, 2), 0.75 * 0.2 + 0.25))
    assert torch.equal(Patch(2, opacity=0.0)(x), x)


def test_patch_accepts_a_pattern_tensor_and_broadcasts_channels():
    pattern = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    out = Patch(2, "top-left", pattern=pattern)(torch.zeros(1, 3, 5, 5))
    assert torch.allclose(out[0, :, :2, :2], pattern.expand(3, 2, 2))


def test_blend_is_a_convex_mix_with_the_key():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    key = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2))
    out = Blend(key, alpha=0.2)(x)
    assert torch.allclose(out, 0.8 * x + 0.2 * key)
    noise = Blend("noise", 0.1, seed=3)
    assert torch.equal(noise(x), noise(x))  # the key is fixed by its seed
    assert not torch.equal(noise(x), Blend("noise", 0.1, seed=4)(x))
    assert torch.equal(Blend(key, 0.0)(x), x)


def test_triggers_reject_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        Patch(9)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="runs past"):
        Patch(3, (6, 0))(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="opacity"):
        Patch(3, opacity=1.5)
    with pytest.raises(ValueError, match="alpha"):
        Blend(alpha=-0.1)
    with pytest.raises(ValueError, match="location"):
        Patch(3, "middle")
    with pytest.raises(ValueError, match="location"):
        Patch(3, (1, -1))
    with pytest.raises(ValueError, match="size"):
        Patch(0)
    with pytest.raises(ValueError, match="shaped"):
        Blend(torch.rand(5, 5))(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Blend(torch.full((8, 8), 2.0))(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="shaped"):
        Patch(2, pattern=torch.rand(3, 3))(torch.zeros(1, 1, 8, 8))


def test_backdoor_poisons_the_requested_fraction_of_non_target_images(tiny_images):
    x, y = tiny_images
    ps = backdoor(x, y, Patch(2), target=0, rate=0.25, seed=0)
    assert int(ps.is_poison.sum()) == 3
    assert bool((y[ps.is_poison] != 0).all()) and bool((ps.y[ps.is_poison] == 0).all())
    assert torch.equal(ps.x[ps.is_poison], Patch(2)(x[ps.is_poison]))
    assert torch.equal(ps.x[~ps.is_poison], x[~ps.is_poison]) and torch.equal(ps.y[~ps.is_poison], y[~ps.is_poison])
    assert ps.target == 0 and ps.info["mode"] == "all-to-one" and ps.info["rate"] == 0.25
    assert not torch.equal(ps.is_poison, backdoor(x, y, Patch(2), 0, rate=0.25, seed=1).is_poison)


def test_backdoor_source_count_and_all_to_all(tiny_images):
    x, y = tiny_images
    ps = backdoor(x, y, Patch(2), target=0, count=2, source=2)
    assert int(ps.is_poison.sum()) == 2 and bool((y[ps.is_poison] == 2).all())
    every = backdoor(x, y, Patch(2), target=None, count=12)
    assert torch.equal(every.y, (y + 1) % 3) and every.target is None and every.info["mode"] == "all-to-all"
    assert int(backdoor(x, y, Patch(2), 0, count=0).is_poison.sum()) == 0


def test_backdoor_rejects_bad_input(tiny_images):
    x, y = tiny_images
    with pytest.raises(ValueError, match="exactly one"):
        backdoor(x, y, Patch(2), 0)
    with pytest.raises(ValueError, match="exactly one"):
        backdoor(x, y, Patch(2), 0, rate=0.1, count=1)
    with pytest.raises(ValueError, match="rate"):
        backdoor(x, y, Patch(2), 0, rate=1.0)
    with pytest.raises(ValueError, match="eligible"):
        backdoor(x, y, Patch(2), 0, count=9)
    with pytest.raises(ValueError, match="target"):
        backdoor(x, y, Patch(2), 3, rate=0.1)
    with pytest.raises(ValueError, match="differ"):
        backdoor(x, y, Patch(2), 1, count=1, source=1)
    with pytest.raises(ValueError, match="callable"):
        backdoor(x, y, "patch", 0, rate=0.1)
    with pytest.raises(ValueError, match="shaped like"):
        backdoor(x, y, lambda v: v[:, :, :4], 0, count=2)
    with pytest.raises(ValueError):
        backdoor(x, y[:5], Patch(2), 0, rate=0.1)


def test_relabel_modes():
    y = torch.tensor([0, 1, 2])
    assert torch.equal(triggers.relabel(y, 1, 3), torch.tensor([1, 1, 1]))
    assert torch.equal(triggers.relabel(y, None, 3), torch.tensor([1, 2, 0]))


@pytest.mark.parametrize(
    ("y", "target", "num_classes", "match"),
    [
        (torch.tensor([0, 1, 2]), 100, 10, r"^target must be in \[0, 10\), got 100"),
        (torch.tensor([0, 1, 2]), -1, 10, r"^target must be in \[0, 10\), got -1"),
        (torch.tensor([0, 1, 2]), True, 10, "^target must be an integer"),
        (torch.tensor([0, -1, 2]), 1, 10, "^y must be >= 0"),
        (torch.tensor([0, 1, 12]), None, 10, "^y must be < 10"),
        (torch.tensor([[0, 1, 2]]), 1, 10, r"^y must have shape \(N,\)"),
        (torch.tensor(1), 1, 10, r"^y must have shape \(N,\)"),
        (torch.tensor([0.0, 1.0]), 1, 10, "^y must hold integer class labels"),
        (torch.tensor([0, 1, 2]), None, 2.5, "^num_classes must be an integer"),
        (torch.tensor([0, 1, 2]), None, True, "^num_classes must be an integer"),
        (torch.tensor([0, 1, 2]), None, -1, "^num_classes must be >= 1"),
    ],
)
def test_relabel_refuses_labels_and_targets_out_of_range(y, target, num_classes, match):
    with pytest.raises(ValueError, match=match):
        triggers.relabel(y, target, num_classes)


def test_salient_pixels_of_a_linear_model_are_its_largest_target_weights():
    from poisonlab import models

    model = models.make("logreg", (1, 4, 4), 3, seed=0)
    pattern = triggers.salient_pixels(model, torch.rand(5, 1, 4, 4), target=1, k=3)
    assert pattern.shape == (1, 4, 4) and float(pattern.sum()) == 3
    top = model.head.weight[1].detach().topk(3).indices
    assert torch.equal(torch.nonzero(pattern.flatten()).flatten().sort().values, top.sort().values)
    assert model.training  # the model's mode is restored
    with pytest.raises(ValueError, match="at most"):
        triggers.salient_pixels(model, torch.rand(5, 1, 4, 4), target=1, k=17)
    with pytest.raises(ValueError, match="target"):
        triggers.salient_pixels(model, torch.rand(5, 1, 4, 4), target=3, k=2)
    with pytest.raises(ValueError, match="at least one"):
        triggers.salient_pixels(model, torch.rand(0, 1, 4, 4), target=1, k=2)
    with pytest.raises(TypeError, match="^x must hold floating-point inputs"):
        triggers.salient_pixels(model, torch.ones(5, 1, 4, 4, dtype=torch.uint8), target=1, k=2)
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        triggers.salient_pixels(model, torch.full((5, 1, 4, 4), float("nan")), target=1, k=2)
    double = triggers.salient_pixels(model, torch.rand(5, 1, 4, 4, dtype=torch.float64), target=1, k=3)
    assert torch.equal(double, pattern)  # float64 images are converted to the model's dtype


def _labels_30():
    g = torch.Generator().manual_seed(1)
    return torch.rand(30, 1, 8, 8, generator=g), torch.arange(30) % 5


def test_tact_relabels_source_poisons_and_stamps_covers_with_their_true_labels():
    x, y = _labels_30()
    trig = Patch(2, pattern="white")
    ps = triggers.tact(x, y, trig, target=1, source=3, count=4, cover=5, seed=0)
    cover = ps.info["cover"]
    assert ps.n_poison == 4 and int(cover.sum()) == 5 and not bool((cover & ps.is_poison).any())
    assert bool((y[ps.is_poison] == 3).all()) and bool((ps.y[ps.is_poison] == 1).all())
    # covers come from the other classes, keep their labels and carry the very same trigger
    assert set(y[cover].tolist()) <= {0, 2, 4} and torch.equal(ps.y[cover], y[cover])
    assert torch.equal(ps.x[cover], trig(x[cover])) and torch.equal(ps.x[ps.is_poison], trig(x[ps.is_poison]))
    untouched = ~(cover | ps.is_poison)
    assert torch.equal(ps.x[untouched], x[untouched]) and torch.equal(ps.y[untouched], y[untouched])
    # removing points keeps the cover mask aligned with them
    kept = ps.without(ps.is_poison)
    assert int(kept.info["cover"].sum()) == 5 and torch.equal(kept.x[kept.info["cover"]], ps.x[cover])


def test_tact_rejects_bad_input():
    x, y = _labels_30()
    trig = Patch(2)
    with pytest.raises(ValueError, match="differ"):
        triggers.tact(x, y, trig, target=1, source=1, count=1, cover=1)
    with pytest.raises(ValueError, match="only 6 training images"):
        triggers.tact(x, y, trig, target=1, source=3, count=7, cover=0)
    with pytest.raises(ValueError, match="cover samples"):
        triggers.tact(x, y, trig, target=1, source=3, count=1, cover=19)
    with pytest.raises(ValueError, match="^cover_classes must not include the source class"):
        triggers.tact(x, y, trig, target=1, source=3, count=1, cover=1, cover_classes=[0, 3])
    with pytest.raises(ValueError, match="^cover_classes must not include .* the target class 1, got 1"):
        triggers.tact(x, y, trig, target=1, source=3, count=1, cover=1, cover_classes=[0, 1])
    with pytest.raises(ValueError, match=r"^cover_classes must be in \[0, 5\)"):
        triggers.tact(x, y, trig, target=1, source=3, count=1, cover=1, cover_classes=[0, 7])
    with pytest.raises(ValueError, match="^num_classes must be an integer"):
        triggers.tact(x, y, trig, target=1, source=3, count=1, cover=1, num_classes=5.5)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        triggers.tact(nan, y, trig, target=1, source=3, count=1, cover=1)
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        triggers.backdoor(nan, y, trig, 1, count=1)
    with pytest.raises(ValueError, match="callable"):
        triggers.tact(x, y, "patch", target=1, source=3, count=1, cover=1)
    with pytest.raises(ValueError, match="count"):
        triggers.tact(x, y, trig, target=1, source=3, count=-1, cover=1)


def test_piece_masks_switch_on_the_requested_share_of_grid_cells():
    masks = triggers.piece_masks(6, (1, 8, 8), pieces=4, keep=0.5, seed=3)
    assert masks.shape == (6, 1, 8, 8)
    # 16 cells of 2×2 pixels, 8 of them on in every mask, and the masks differ
    assert bool((masks.sum((1, 2, 3)) == 8 * 4).all()) and not torch.equal(masks[0], masks[1])
    assert torch.equal(masks, triggers.piece_masks(6, (1, 8, 8), pieces=4, keep=0.5, seed=3))
    assert bool((triggers.piece_masks(2, (1, 8, 8), pieces=3, keep=1.0) == 1).all())
    with pytest.raises(ValueError, match="keep"):
        triggers.piece_masks(1, (1, 8, 8), pieces=4, keep=0.0)
    with pytest.raises(ValueError, match="pieces"):
        triggers.piece_masks(1, (1, 8, 8), pieces=9, keep=0.5)


def test_adaptive_blend_stamps_part_of_the_key_on_poisons_and_covers():
    x, y = _labels_30()
    key = torch.ones(8, 8)
    ps = triggers.adaptive_blend(x, y, key, target=2, count=4, cover=6, alpha=0.5, pieces=4, keep=0.5, seed=0)
    cover = ps.info["cover"]
    assert ps.n_poison == 4 and int(cover.sum()) == 6 and bool((ps.y[ps.is_poison] == 2).all())
    assert bool((y[ps.is_poison] != 2).all()) and bool((y[cover] != 2).all()) and torch.equal(ps.y[cover], y[cover])
    for i in torch.nonzero(ps.is_poison | cover).flatten():
        changed = ps.x[i] != x[i]
        blended = torch.isclose(ps.x[i], 0.5 * x[i] + 0.5)
        # half the cells (32 of 64 pixels) are blended with α = 0.5, the others untouched
        assert int(blended.sum()) >= 32 and int(changed.sum()) <= 32
    untouched = ~(cover | ps.is_poison)
    assert torch.equal(ps.x[untouched], x[untouched])
    src = triggers.adaptive_blend(x, y, key, target=2, count=3, cover=0, source=4)
    assert bool((y[src.is_poison] == 4).all())


def test_adaptive_blend_rejects_bad_input():
    x, y = _labels_30()
    with pytest.raises(ValueError, match="pattern"):
        triggers.adaptive_blend(x, y, torch.ones(5, 5), target=2, count=1, cover=1)
    with pytest.raises(ValueError, match="alpha"):
        triggers.adaptive_blend(x, y, torch.ones(8, 8), target=2, count=1, cover=1, alpha=1.5)
    with pytest.raises(ValueError, match="differ"):
        triggers.adaptive_blend(x, y, torch.ones(8, 8), target=2, count=1, cover=1, source=2)
    with pytest.raises(ValueError, match="only 24 training images"):
        triggers.adaptive_blend(x, y, torch.ones(8, 8), target=2, count=25, cover=0)


def test_pixels_sets_only_the_keyed_pixels_and_counts_its_budget():
    key = torch.zeros(1, 5, 5)
    key[0, 0, 0], key[0, 4, 4] = 1.0, 0.5
    t = triggers.Pixels(key)
    x = torch.full((3, 1, 5, 5), 0.2)
    out = t(x)
    assert t.budget == 2 and out[:, 0, 0, 0].eq(1.0).all() and out[:, 0, 4, 4].eq(0.5).all()
    keep = torch.ones(5, 5, dtype=torch.bool)
    keep[0, 0] = keep[4, 4] = False
    assert torch.equal(out[:, 0][:, keep], x[:, 0][:, keep])
    assert triggers.Pixels(key[0])(torch.zeros(2, 3, 5, 5))[:, :, 0, 0].eq(1.0).all()  # (H, W) key, colour image


def test_pixels_rejects_bad_keys():
    with pytest.raises(ValueError, match="at least one"):
        triggers.Pixels(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="lie in"):
        triggers.Pixels(torch.full((1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="floating"):
        triggers.Pixels(torch.ones(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shaped"):
        triggers.Pixels(torch.ones(4))
    with pytest.raises(ValueError, match="shaped"):
        triggers.Pixels(torch.ones(1, 4, 4))(torch.zeros(2, 1, 5, 5))  # a key for another image size


def test_count_for_share_makes_the_poisons_that_share_of_the_class():
    assert triggers.count_for_share(0.1, 400) == 44  # 44 / 444 ≈ 10%
    assert triggers.count_for_share(0.5, 30) == 30
    assert triggers.count_for_share(0.01, 10) == 1  # at least one poison
    for share in (0, 1.0, -0.1, "a"):
        with pytest.raises(ValueError, match="share"):
            triggers.count_for_share(share, 400)
    with pytest.raises(ValueError, match="n_genuine"):
        triggers.count_for_share(0.1, 0)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["patch", "blend", "corner patch"]), st.floats(-2.0, 3.0, allow_nan=False), st.integers(0, 2**16)
)
def test_a_trigger_changes_only_the_pixels_of_its_mask(kind, offset, seed):
    # images deliberately partly outside [0, 1]: pixels outside the trigger must come back untouched
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) + offset
    trigger = {
        "patch": Patch(3, opacity=0.7),
        "blend": Blend("noise", alpha=0.2, seed=seed),
        "corner patch": Patch(2, "top-left"),
    }[kind]
    m = trigger.mask((1, 8, 8)).expand_as(x) > 0
    out = trigger(x)
    assert torch.equal(out[~m], x[~m])
    assert bool(((out[m] >= 0) & (out[m] <= 1)).all())


def test_patch_and_backdoor_messages_name_size_location_and_count():
    with pytest.raises(ValueError, match="^size must be at most the image side, got 9"):
        Patch(9)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(
        ValueError, match=r"^location must keep the patch inside the image, got \(row, col\) = \(6, 0\)"
    ):
        Patch(3, (6, 0))(torch.zeros(1, 1, 8, 8))
    x, y = torch.rand(10, 1, 8, 8), torch.arange(10) % 2
    with pytest.raises(ValueError, match="^count must be at most the 5 eligible training images"):
        backdoor(x, y, Patch(2), 0, rate=None, count=8, num_classes=2)


def test_piece_masks_check_n_and_shape():
    from poisonlab.triggers import piece_masks

    for bad in (-1, None, "3", 1.5, True):
        with pytest.raises(ValueError, match="^n must be"):
            piece_masks(bad, (1, 8, 8), 4, 0.5)
    with pytest.raises(ValueError, match=r"^shape must have 3 entries \(C, H, W\), got \(8, 8\)"):
        piece_masks(2, (8, 8), 4, 0.5)
    with pytest.raises(ValueError, match="^shape must be >= 1, got -1"):
        piece_masks(2, (1, -1, 8), 4, 0.5)
    for bad in (None, 8, "abc"):
        with pytest.raises(TypeError, match="^shape must be a tuple of positive integers"):
            piece_masks(2, bad, 4, 0.5)


def test_tact_names_count_and_cover_when_too_few_images_are_eligible():
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 3
    with pytest.raises(ValueError, match="^count must be at most 4: only 4 training images are eligible as poisons"):
        triggers.tact(x, y, Patch(2), 0, source=1, count=60, cover=1, num_classes=3)
    with pytest.raises(ValueError, match="^cover must be at most .* eligible as cover samples, got 60"):
        triggers.tact(x, y, Patch(2), 0, source=1, count=1, cover=60, num_classes=3)
