"""Fine-grained labels of the built-in set (pc3d.data.synthetic.fine_labels, issue 16).

The shapes must stay bit-identical to those generated before fine labels existed: the labels are
recorded from choices the builders already draw, never by drawing more."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("open3d")

from pc3d.data import PC15kDataset  # noqa: E402
from pc3d.data.datamodule import collate  # noqa: E402
from pc3d.data.synthetic import (  # noqa: E402
    CATEGORIES,
    FINE_CLASSES,
    FINE_LABELS_NAME,
    PC15K_DIRNAME,
    ensure_fine_labels,
    generate,
    read_fine_labels,
    replay_fine_labels,
)
from pc3d.data.synthetic.categories import shape_and_style, shape_arrays, shape_style  # noqa: E402
from pc3d.data.synthetic.primitives import sample_surface  # noqa: E402
from pc3d.data.synthetic.writer import _STREAM_POINTS, _STREAM_SHAPE, _rng  # noqa: E402

# sha256 of the float32 bytes of sample_surface(shape_arrays(c, rng(0, c, i, shape)), 2048,
# rng(0, c, i, points)), computed from the generator BEFORE fine labels were added
REFERENCE_HASHES = {
    ("airplane", 0): "0b9fa0211c2e8a64b10d31874f1f3a753f6618143781844b6a757b9c1c4e5306",
    ("airplane", 7): "1935fdad53919eae40b68e7495f4170c8fed5451f1032d58a3b6d7e7943f5acb",
    ("chair", 0): "513d61ebb597ba993085f34b0235f94b202be37eafaec89fc26b7898699d50d2",
    ("chair", 7): "c19f2b74fc0d6c2d97d60675e3523070c61e5ac5fabf92d207b475e22a764a37",
    ("table", 0): "f54fbde4cf687d572dab3908e692a7422b6dc64d23f5a53e6c8e3c22475e28f7",
    ("table", 7): "0e17a1143f325347a705e93c18d4a899558e7c6c5067ad76f1b9b820dd66432a",
    ("lamp", 0): "0eef339cfd7c71fc917de56be870f2a14272af5e4139256c7ceea1c8434b0498",
    ("lamp", 7): "ecde1854552ae4644c6c6c4589a6c9c9d0ff17566cbc1fc30edc5c2c04ebe174",
    ("sofa", 0): "b56a492a617e643f4372bfcb27096f00aee3912a863bc9864017cc56f0acfa1c",
    ("sofa", 7): "500ac98a47579ffae5e270209e2be01235e2a9ed64ab501c95045016768c1913",
    ("car", 0): "39b9e2ceca38c490111f33fefc4f9a0e79bc32b010133d7dc94d2e0711247efd",
    ("car", 7): "21a7dc6c479f709161b737b5d0d72d7e9fad75be3c1b389887da4e175b39f820",
    ("mug", 0): "299a1ac4cb35366c4311f115721e7c3d06e78606bac3ec24af83bfdfd8b337f8",
    ("mug", 7): "8fadfdb4a2fc550c4fc7c54774a6ceaa729d66fd1832001dd8cb9ae024828ea6",
    ("bench", 0): "e7a030c37a62825bf9303814c5b93414fe4119b3c9666414391259d15f0214be",
    ("bench", 7): "e8fa8412b7ea6939062e316a3f822158c0c9930b4ab416265ee5bc61b4cca17e",
}

# class counts of the default set (seed 0, 100 shapes per category), in FINE_CLASSES order
DEFAULT_COUNTS = [29, 47, 24, 52, 33, 15, 61, 14, 11, 14, 46, 54, 53, 24, 23, 48, 29, 23, 83, 17, 41, 32, 16, 11]

TINY = {"n_per_category": 3, "n_points": 200, "n_views": 0, "seed": 0}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("fine") / "root", progress=False, workers=1, **TINY)


@pytest.mark.parametrize("key", sorted(REFERENCE_HASHES))
def test_shapes_unchanged(key):
    c, i = key
    pts = sample_surface(shape_arrays(c, _rng(0, c, i, _STREAM_SHAPE)), 2048, _rng(0, c, i, _STREAM_POINTS))
    assert pts.dtype == np.float32 and pts.shape == (2048, 3)
    assert hashlib.sha256(np.ascontiguousarray(pts).tobytes()).hexdigest() == REFERENCE_HASHES[key]


def test_style_draws_nothing_extra():
    """The style comes with the mesh, and the generator ends in the same state either way."""
    for c in CATEGORIES:
        a, b = _rng(0, c, 3, _STREAM_SHAPE), _rng(0, c, 3, _STREAM_SHAPE)
        (v, f), style = shape_and_style(c, a)
        assert shape_style(c, b) == style and style
        assert a.bit_generator.state == b.bit_generator.state
        v2, f2 = shape_arrays(c, _rng(0, c, 3, _STREAM_SHAPE))
        assert np.array_equal(v, v2) and np.array_equal(f, f2)


def test_class_list():
    assert len(FINE_CLASSES) >= 16 and len(set(FINE_CLASSES)) == len(FINE_CLASSES)
    per = collections.Counter(name.split("/")[0] for name in FINE_CLASSES)
    assert set(per) == set(CATEGORIES) and all(1 <= n <= 4 for n in per.values())
    assert "chair/pedestal" in FINE_CLASSES and "car/pickup" in FINE_CLASSES


def test_every_class_present_at_the_default_size():
    labels: dict[str, int] = {}
    for c in CATEGORIES:
        labels.update(replay_fine_labels(0, c, 100))
    counts = collections.Counter(labels.values())
    assert [counts[k] for k in range(len(FINE_CLASSES))] == DEFAULT_COUNTS
    assert min(DEFAULT_COUNTS) >= 10


def test_recorded_labels_equal_replayed(tiny_root):
    doc = json.loads((tiny_root / FINE_LABELS_NAME).read_text())
    assert doc["classes"] == list(FINE_CLASSES) and doc["params"] == {"seed": 0, "n_per_category": 3}
    recorded = doc["labels"]
    replayed = {}
    for c in CATEGORIES:
        replayed.update(replay_fine_labels(0, c, 3))
    assert recorded == replayed and len(recorded) == 3 * len(CATEGORIES)
    # every file on disk is listed
    on_disk = {f"{p.parts[-3]}/{p.stem}" for p in (tiny_root / PC15K_DIRNAME).rglob("*.npy")}
    assert on_disk == set(recorded)


def test_old_root_gets_the_file_on_first_use(tiny_root, tmp_path, caplog):
    old = tmp_path / "old"
    shutil.copytree(tiny_root, old)
    recorded = read_fine_labels(old)
    (old / FINE_LABELS_NAME).unlink()  # a set generated before fine labels existed
    with caplog.at_level("INFO", logger="pc3d.data.synthetic.fine_labels"):
        ds = PC15kDataset(old / PC15K_DIRNAME, split="train", n_points=64)
    assert "replaying the generator" in caplog.text
    assert read_fine_labels(old) == recorded  # written, equal to what generation recorded
    for i in range(len(ds)):
        item = ds[i]
        assert item["fine_label"].dtype == torch.int64 and item["fine_label"].shape == ()
        assert int(item["fine_label"]) == recorded[f"{item['synset']}/{item['model_id']}"]
        name = FINE_CLASSES[int(item["fine_label"])]
        assert name.split("/")[0] == ds.names[int(item["category"])]
    batch = collate([ds[0], ds[1]])
    assert batch["fine_label"].shape == (2,) and batch["fine_label"].dtype == torch.int64
    caplog.clear()
    with caplog.at_level("INFO", logger="pc3d.data.synthetic.fine_labels"):
        assert ensure_fine_labels(old) == recorded
    assert "replaying" not in caplog.text  # one-time


def test_stale_file_is_replaced(tiny_root, tmp_path):
    old = tmp_path / "stale"
    shutil.copytree(tiny_root, old)
    path = old / FINE_LABELS_NAME
    doc = json.loads(path.read_text())
    doc["params"]["seed"] = 5
    path.write_text(json.dumps(doc))
    assert read_fine_labels(old, {"seed": 0, "n_per_category": 3}) is None
    assert ensure_fine_labels(old) == doc["labels"]
    assert json.loads(path.read_text())["params"]["seed"] == 0


def test_extending_a_root_keeps_every_label(tmp_path):
    root = generate(tmp_path / "r", progress=False, workers=1, categories="mug", **TINY)
    generate(root, progress=False, workers=1, categories="mug,car", **TINY)
    labels = read_fine_labels(root)
    want = {**replay_fine_labels(0, "mug", 3), **replay_fine_labels(0, "car", 3)}
    assert labels == want


def test_other_roots_have_no_fine_label(tiny_root, tmp_path):
    plain = tmp_path / "plain"  # a PC15k root outside any built-in root
    (plain / "02691156" / "train").mkdir(parents=True)
    np.save(plain / "02691156" / "train" / "a.npy", np.random.default_rng(0).random((100, 3), dtype=np.float32))
    assert "fine_label" not in PC15kDataset(plain, split="train", n_points=64)[0]
    # a foreign synset inside a built-in root: -1
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_root, mixed)
    shutil.copytree(plain / "02691156", mixed / PC15K_DIRNAME / "02691156")
    ds = PC15kDataset(mixed / PC15K_DIRNAME, categories=["02691156", "mug"], split="train", n_points=64)
    got = {item["synset"]: int(item["fine_label"]) for item in (ds[i] for i in range(len(ds)))}
    assert got["02691156"] == -1 and FINE_CLASSES[got[CATEGORIES["mug"]]].startswith("mug/")
    assert "fine_label" in collate([ds[i] for i in range(len(ds))])
