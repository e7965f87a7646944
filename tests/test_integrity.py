"""Split-view poisoning's defence (poisonlab.integrity): items whose content changed after indexing
are refused by name, intact items load as they were saved."""

import json

import pytest
import torch
from poisonlab import integrity


@pytest.fixture
def indexed(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 1, 6, 6, generator=g), torch.arange(12) % 3
    folder = tmp_path / "data"
    folder.mkdir()
    names = integrity.save_items(x, y, folder)
    index = integrity.build_index(folder)
    path = integrity.write_index(index, tmp_path / "index.json")
    return x, y, names, integrity.read_index(path, folder)


def test_every_altered_item_is_refused_and_every_intact_one_loads(indexed):
    x, y, names, index = indexed
    folder = index.root
    flipped = names[1]  # one byte of the file changed
    data = bytearray((folder / flipped).read_bytes())
    data[-40] ^= 0x01
    (folder / flipped).write_bytes(bytes(data))
    swapped = names[4]  # a valid item with other content: what a split-view attacker serves
    integrity.save_items(torch.ones(1, 1, 6, 6), torch.tensor([2]), folder)  # rewrites item-00000.pt
    replaced = names[0]
    (folder / swapped).write_bytes((folder / names[5]).read_bytes())
    removed = names[9]
    (folder / removed).unlink()
    altered = sorted({flipped, swapped, replaced, removed})

    assert integrity.verify(index) == altered
    for name in altered:
        with pytest.raises(integrity.IntegrityError, match=name):
            integrity.load_item(index, name)
    intact = [i for i, n in enumerate(names) if n not in altered]
    for i in intact:
        xi, yi = integrity.load_item(index, names[i])
        assert torch.equal(xi, x[i]) and int(yi) == int(y[i])
    with pytest.raises(integrity.IntegrityError, match=sorted(altered)[0]):
        integrity.load_items(index)
    xs, ys, refused = integrity.load_items(index, skip_altered=True)
    assert refused == altered
    assert torch.equal(xs, x[intact]) and torch.equal(ys, y[intact])


def test_an_untouched_dataset_loads_whole(indexed):
    x, y, names, index = indexed
    assert len(index) == 12 and index.names == names
    assert integrity.verify(index) == []
    xs, ys, refused = integrity.load_items(index)
    assert torch.equal(xs, x) and torch.equal(ys, y) and refused == []


def test_an_item_restored_to_its_indexed_bytes_loads_again(indexed):
    _, _, names, index = indexed
    path = index.root / names[3]
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    assert integrity.verify(index) == [names[3]]
    path.write_bytes(original)
    assert integrity.verify(index) == []


def test_sha256_matches_the_standard_test_vector():
    assert integrity.sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_tampered_index_file_is_refused(tmp_path, indexed):
    _, _, names, index = indexed
    path = integrity.write_index(index, tmp_path / "i.json")
    data = json.loads(path.read_text())
    data["items"][names[0]] = "not-a-hash"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=names[0]):
        integrity.read_index(path, index.root)
    path.write_text(json.dumps({"format": "other", "items": {}}))
    with pytest.raises(ValueError, match="index"):
        integrity.read_index(path, index.root)
    path.write_text(json.dumps({"format": integrity.FORMAT, "items": {"../escape.pt": "0" * 64}}))
    with pytest.raises(ValueError, match="outside"):
        integrity.read_index(path, index.root)


def test_bad_inputs_are_refused(tmp_path, indexed):
    _, _, _, index = indexed
    with pytest.raises(ValueError, match="name"):
        integrity.load_bytes(index, "item-99999.pt")
    with pytest.raises(TypeError, match="index"):
        integrity.load_bytes({"a": "b"}, "a")
    with pytest.raises(ValueError, match="root"):
        integrity.build_index(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to index"):
        integrity.build_index(tmp_path / "empty")
    with pytest.raises(TypeError, match="data"):
        integrity.sha256_hex("text")
    with pytest.raises(ValueError, match="x"):
        integrity.save_items(torch.rand(3, 4), torch.zeros(3, dtype=torch.long), tmp_path)
    with pytest.raises(ValueError, match="y"):
        integrity.save_items(torch.rand(3, 1, 2, 2), torch.zeros(2, dtype=torch.long), tmp_path)
