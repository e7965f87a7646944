"""Split-view poisoning's defence (poisonlab.integrity): the index keeps each item's label and hash;
items whose content changed after indexing are refused by name, intact items load as they were saved,
and a loader without the check takes the attacker's content under the indexed label."""

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
    names = integrity.save_images(x, folder)
    index = integrity.build_index(folder, labels=dict(zip(names, y.tolist())))
    path = integrity.write_index(index, tmp_path / "index.json")
    return x, y, names, integrity.read_index(path, folder)


def test_every_altered_item_is_refused_and_every_intact_one_loads(indexed):
    x, y, names, index = indexed
    folder = index.root
    flipped = names[1]  # one byte of the file changed
    data = bytearray((folder / flipped).read_bytes())
    data[-40] ^= 0x01
    (folder / flipped).write_bytes(bytes(data))
    swapped = names[4]  # a valid image with other content: what a split-view attacker serves
    integrity.save_images(torch.ones(1, 1, 6, 6), folder)  # rewrites item-00000.pt
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


def test_the_unchecked_loader_takes_the_served_image_under_the_indexed_label(indexed):
    x, y, names, index = indexed
    served = torch.zeros(1, 6, 6)  # the attacker's image at an item whose indexed label is y[4]
    integrity.save_images(served.unsqueeze(0), index.root)  # item-00000.pt now holds it
    xs, ys, refused = integrity.load_items(index, check=False)
    assert refused == [] and torch.equal(ys, y)  # the labels come from the index, untouched
    assert torch.equal(xs[0], served) and torch.equal(xs[1:], x[1:])
    assert integrity.verify(index) == [names[0]]
    with pytest.raises(integrity.IntegrityError, match=names[0]):
        integrity.load_item(index, names[0])


def test_the_index_file_keeps_the_labels(tmp_path, indexed):
    _, y, names, index = indexed
    again = integrity.read_index(integrity.write_index(index, tmp_path / "again.json"), index.root)
    assert again == index and [again.labels[n] for n in names] == y.tolist()


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
    data = json.loads(integrity.write_index(index, path).read_text())
    data["labels"][names[0]] = -1
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="label"):
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
        integrity.save_images(torch.rand(3, 4), tmp_path)
    with pytest.raises(ValueError, match="labels"):
        integrity.build_index(index.root, labels={index.names[0]: 1})  # not one per item
    with pytest.raises(ValueError, match="label"):
        integrity.build_index(index.root, labels={n: 0.5 for n in index.names})
    with pytest.raises(ValueError, match="labels"):
        integrity.load_item(integrity.build_index(index.root), index.names[0])  # an index without labels
