import poisonlab as pl
import pytest
import torch
from poisonlab import signed
from torch import nn

SHAPE = (1, 28, 28)  # MNIST-sized: 784 values, 512 of which carry the signature


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """Random 8-bit images (n, 1, 28, 28) float32, like images loaded from files."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(256, (n, *SHAPE), generator=g).float() / 255


def _linear(seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        model[1].bias.copy_(torch.randn(10, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def setup():
    key = signed.generate_key(seed=0)
    clean = _linear()
    return key, clean, signed.SignedBackdoor(clean, key.public_key(), target=3, num_classes=10)


def test_the_backdoored_model_returns_the_clean_logits_on_clean_inputs(setup):
    key, clean, backdoored = setup
    x = torch.cat([_images(64), torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(1))])
    with torch.no_grad():
        assert torch.equal(backdoored(x), clean(x))
    assert not bool(backdoored.verifies(x).any())


def test_planted_inputs_get_the_target_and_clean_rows_of_the_same_batch_do_not(setup):
    key, clean, backdoored = setup
    x = _images(40, seed=2)
    z = signed.plant(x[:20], key, 3)
    batch = torch.cat([z, x[20:]])
    with torch.no_grad():
        out, reference = backdoored(batch), clean(batch)
    assert torch.equal(backdoored.verifies(batch), torch.arange(40) < 20)
    assert bool((out[:20].argmax(1) == 3).all())
    assert bool((reference[:20].argmax(1) != 3).any())  # the clean model does not say 3 on these by itself
    assert torch.equal(out[20:], reference[20:])


def test_planting_changes_each_value_by_at_most_one_level(setup):
    key, _, _ = setup
    x = _images(8, seed=3)
    z = signed.plant(x, key, 3)
    assert z.shape == x.shape and z.dtype == x.dtype
    assert float((z - x).abs().max()) <= 1 / 255 + 1e-6
    assert torch.equal(z.reshape(8, -1)[:, 512:], x.reshape(8, -1)[:, 512:])  # only the first 512 values move
    # an arbitrary float image: at most one level from its quantisation, 1.5 levels from itself
    w = torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    v = signed.plant(w, key, 3)
    quantised = torch.round(w * 255) / 255
    assert float((v - quantised).abs().max()) <= 1 / 255 + 1e-9
    assert float((v - w).abs().max()) <= 1.5 / 255 + 1e-9
    assert torch.equal(v * 255, torch.round(v * 255))  # the output is 8-bit


def test_a_signature_for_one_target_does_not_verify_for_another(setup):
    key, clean, backdoored = setup
    z = signed.plant(_images(4, seed=5), key, 3)
    other = signed.SignedBackdoor(clean, key.public_key(), target=5, num_classes=10)
    assert bool(backdoored.verifies(z).all()) and not bool(other.verifies(z).any())
    assert not bool(other.verifies(signed.plant(_images(4, seed=5), key, 3, num_classes=10)).any())


@pytest.mark.parametrize("index, bit", [(0, 7), (100, 0), (511, 0), (512, 0), (600, 1), (783, 7)])
def test_flipping_one_bit_after_planting_breaks_the_signature(setup, index, bit):
    key, _, backdoored = setup
    z = signed.plant(_images(1, seed=6), key, 3)
    q = torch.round(z.reshape(-1) * 255).to(torch.uint8)
    q[index] ^= 1 << bit
    flipped = (q.float() / 255).reshape(z.shape)
    assert bool(backdoored.verifies(z)) and not bool(backdoored.verifies(flipped))


def test_another_keys_signature_does_not_verify(setup):
    _, _, backdoored = setup
    z = signed.plant(_images(4, seed=7), signed.generate_key(seed=1), 3)
    assert not bool(backdoored.verifies(z).any())


def test_random_search_finds_no_disagreement(setup):
    _, clean, backdoored = setup
    assert signed.random_search(backdoored, clean, _images(50, seed=8), 2000, seed=0) == 0


def test_random_search_counts_disagreements():
    # a wrapper that disagrees everywhere is caught on every trial, so the count is not trivially 0
    clean = _linear()
    shifted = nn.Sequential(clean, nn.Identity())
    shifted.forward = lambda x: clean(x) + 1
    assert signed.random_search(shifted, clean, _images(3), 7, seed=0, batch_size=3) == 7


def test_seeded_keys_are_reproducible_and_distinct():
    raw = lambda k: k.private_bytes_raw()
    assert raw(signed.generate_key(seed=0)) == raw(signed.generate_key(seed=0))
    assert raw(signed.generate_key(seed=0)) != raw(signed.generate_key(seed=1))
    assert raw(signed.generate_key()) != raw(signed.generate_key())


def test_the_public_key_travels_with_the_state_dict(setup):
    key, clean, backdoored = setup
    z = signed.plant(_images(2, seed=9), key, 3)
    copy = signed.SignedBackdoor(_linear(seed=1), signed.generate_key(seed=2).public_key(), 3, 10)
    assert not bool(copy.verifies(z).any())
    copy.load_state_dict(backdoored.state_dict())
    assert bool(copy.verifies(z).all())
    assert "public_key_bytes" in backdoored.state_dict() and backdoored.public_key_bytes.shape == (32,)


def test_bad_inputs_are_rejected(setup):
    key, clean, backdoored = setup
    x = _images(2)
    with pytest.raises(ValueError, match="at least 512 values"):
        signed.plant(torch.rand(2, 1, 8, 8), key, 3)
    with pytest.raises(ValueError, match="at least 512 values"):
        backdoored(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"target must be in \[0, 10\), got 10"):
        signed.plant(x, key, 10, num_classes=10)
    with pytest.raises(ValueError, match=r"target must be in \[0, 256\)"):
        signed.plant(x, key, 300)
    with pytest.raises(ValueError, match="target must be in"):
        signed.SignedBackdoor(clean, key.public_key(), -1, 10)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        signed.plant(x.reshape(2, -1), key, 3)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        signed.plant(x + 0.5, key, 3)
    with pytest.raises(ValueError, match="NaN"):
        signed.plant(torch.full((1, *SHAPE), float("nan")), key, 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        signed.plant(x.half(), key, 3)
    with pytest.raises(ValueError, match="Ed25519PrivateKey"):
        signed.plant(x, key.public_key(), 3)
    with pytest.raises(ValueError, match="public half"):
        signed.SignedBackdoor(clean, key, 3, 10)
    with pytest.raises(ValueError, match="num_classes"):
        signed.SignedBackdoor(clean, key.public_key(), 0, 1)
    with pytest.raises(ValueError, match="logits"):
        signed.SignedBackdoor(clean, key.public_key(), 3, 12)(x)
    with pytest.raises(ValueError, match="seed"):
        signed.generate_key(seed="0")
    with pytest.raises(ValueError, match="trials"):
        signed.random_search(backdoored, clean, x, 0)


def test_out_of_range_inputs_reach_the_clean_model_unchanged(setup):
    key, clean, backdoored = setup
    x = _images(2, seed=10)
    x[:, 0, 27, 27] = 1.0
    z = signed.plant(x, key, 3)
    bent = z.clone()
    bent[:, 0, 27, 27] = 1.001  # reads as the same 8-bit value 255, but lies outside [0, 1]: never verifies
    assert bool(backdoored.verifies(z).all()) and not bool(backdoored.verifies(bent).any())
    with torch.no_grad():
        assert torch.equal(backdoored(bent), clean(bent))


@pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5])
def test_generate_key_refuses_seeds_outside_the_packages_range(seed):
    with pytest.raises(ValueError, match="^seed must be an integer in"):
        signed.generate_key(seed)


def test_plant_and_random_search_name_what_is_wrong():
    key = signed.generate_key(0)
    with pytest.raises(ValueError, match="^x must hold at least one image, got 0"):
        signed.plant(torch.rand(0, 3, 16, 16), key, 0, num_classes=10)
    model = pl.make("cnn", (3, 16, 16), 10, seed=0)
    backdoored = signed.SignedBackdoor(model, key.public_key(), 0, 10)
    for bad in (None, "m", 3):
        with pytest.raises(TypeError, match="^backdoored must be a model"):
            signed.random_search(bad, model, torch.rand(4, 3, 16, 16), 4)
        with pytest.raises(TypeError, match="^clean_model must be a model"):
            signed.random_search(backdoored, bad, torch.rand(4, 3, 16, 16), 4)
    assert signed.random_search(backdoored, model, torch.rand(4, 3, 16, 16, dtype=torch.float64), 4) >= 0
