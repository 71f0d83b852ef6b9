"""PC15kDataset, compute_global_stats and pc3d.data.transforms on small numpy fixtures."""

from __future__ import annotations

import importlib.util
import math

import lightning
import numpy as np
import pytest
import torch

from pc3d.data.pc15k import PC15kDataset, compute_global_stats, load_cloud
from pc3d.data.taxonomy import read_name_map
from pc3d.data.transforms import Compose, RandomRotateY, RandomScaleShift
from pc3d.geometry.normalize import apply_normalization, denormalize, normalize_unit_bbox, normalize_unit_sphere
from tests.helpers import write_pc15k

# Built-in style ids (name map file) and real ShapeNet ids (resolved by the built-in table).
BUILTIN = {"airplane": "90000001", "chair": "90000002", "table": "90000003"}
CHAIR, TABLE, AIRPLANE, SPEAKER = "03001627", "04379243", "02691156", "03691459"


SPEC = {
    BUILTIN["chair"]: {"train": 6, "val": 2, "test": 3},
    BUILTIN["airplane"]: {"train": 4, "val": 2, "test": 1},
    BUILTIN["table"]: {"train": 3, "val": 1, "test": 2},
}


@pytest.fixture
def builtin_root(tmp_path):
    root = tmp_path / "ShapeNetCore.v2.PC15k"
    files = write_pc15k(root, SPEC, name_map=BUILTIN)
    (tmp_path / "pc3d_synthetic.json").write_text("{}")  # built-in ids are read only from a complete set
    return root, files


@pytest.fixture
def real_root(tmp_path):
    root = tmp_path / "pc15k"
    spec = {CHAIR: {"train": 3, "val": 1, "test": 1}, TABLE: {"train": 2, "val": 1, "test": 1}}
    spec[AIRPLANE] = {"train": 2, "val": 1, "test": 1}
    spec[SPEAKER] = {"train": 1, "val": 1, "test": 1}
    write_pc15k(root, spec)
    return root


def rows_of(file_points, sample):
    """Row index in ``file_points`` of every sampled point (asserts each one is a row)."""
    eq = (sample[:, None, :] == file_points[None, :, :]).all(-1)
    assert eq.any(1).all(), "a sampled point is not a row of the file"
    return eq.float().argmax(1)


# --------------------------------------------------------------------------- reading
def test_counts_shapes_dtypes_and_labels(builtin_root):
    root, _ = builtin_root
    for split in ("train", "val", "test"):
        ds = PC15kDataset(root, split=split, n_points=16)
        assert ds.synsets == sorted(SPEC)  # sorted-synset order
        assert ds.names == ["airplane", "chair", "table"]
        assert ds.counts == {s: SPEC[s][split] for s in SPEC}
        assert len(ds) == sum(v[split] for v in SPEC.values())
    ds = PC15kDataset(root, n_points=16)
    assert ds.label_of == {"90000001": 0, "90000002": 1, "90000003": 2}
    for i in range(len(ds)):
        item = ds[i]
        assert item["points"].shape == (16, 3) and item["points"].dtype == torch.float32
        assert item["category"].dtype == torch.int64 and item["category"].ndim == 0
        assert item["category"].item() == ds.label_of[item["synset"]]
        assert item["model_id"].startswith(item["synset"])
        assert item["index"] == i
        assert item["shift"].shape == (1, 3) and item["shift"].dtype == torch.float32
        assert item["scale"].shape == (1, 1) and item["scale"].dtype == torch.float32
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert "airplane=4" in repr(ds)


def test_category_selection_via_name_map(builtin_root):
    root, _ = builtin_root
    assert PC15kDataset(root, "chair", n_points=8).synsets == ["90000002"]
    assert PC15kDataset(root, " Chair ", n_points=8).synsets == ["90000002"]
    assert PC15kDataset(root, "90000003", n_points=8).synsets == ["90000003"]
    ds = PC15kDataset(root, ["table", "90000001", "airplane"], n_points=8)
    assert ds.synsets == ["90000001", "90000003"] and ds.names == ["airplane", "table"]
    assert len(ds) == 4 + 3
    assert {ds[i]["category"].item() for i in range(len(ds))} == {0, 1}


def test_category_selection_via_shapenet_table(real_root):
    ds = PC15kDataset(real_root, "chair", n_points=8)
    assert ds.synsets == [CHAIR] and ds.names == ["chair"]
    ds = PC15kDataset(real_root, ["table", CHAIR, "speaker", "Plane"], n_points=8)
    assert ds.synsets == sorted([TABLE, CHAIR, SPEAKER, AIRPLANE])
    assert ds.names == ["airplane", "chair", "loudspeaker", "table"]
    assert PC15kDataset(real_root, "loudspeaker", n_points=8).synsets == [SPEAKER]
    assert PC15kDataset(real_root, n_points=8).names == ["airplane", "chair", "loudspeaker", "table"]


def test_all_skips_synsets_without_the_split(tmp_path):
    root = tmp_path / "r"
    write_pc15k(root, {"00000001": {"train": 2, "val": 1}, "00000002": {"train": 2}})
    assert PC15kDataset(root, split="train", n_points=8).synsets == ["00000001", "00000002"]
    assert PC15kDataset(root, split="val", n_points=8).synsets == ["00000001"]
    with pytest.raises(ValueError, match="has no 'val' split"):
        PC15kDataset(root, "00000002", split="val", n_points=8)
    with pytest.raises(ValueError, match="no category has a 'test' split"):
        PC15kDataset(root, split="test", n_points=8)


def test_read_name_map(tmp_path):
    path = tmp_path / "synsetoffset2category.txt"
    path.write_text("# comment\nAirplane\t02691156\n\nmy chair 03001627\n")
    assert read_name_map(path) == {"airplane": "02691156", "my_chair": "03001627"}
    path.write_text("airplane\t02691156\nlonelyfield\n")
    with pytest.raises(ValueError, match="line 2"):
        read_name_map(path)


# --------------------------------------------------------------------------- sampling
def test_fixed_sampling_is_stable_and_a_subset(builtin_root):
    root, files = builtin_root
    ds = PC15kDataset(root, split="val", n_points=20, sampling="fixed")
    for i in range(len(ds)):
        a, b = ds[i]["points"], ds[i]["points"]
        assert torch.equal(a, b)
        rows = rows_of(torch.from_numpy(files[ds.files[i]]), a)
        assert len(set(rows.tolist())) == 20  # without replacement
    assert not torch.equal(ds[0]["points"], ds.variant(seed=1)[0]["points"])
    assert torch.equal(ds[0]["points"], PC15kDataset(root, split="val", n_points=20, sampling="fixed")[0]["points"])


def test_random_sampling_differs_and_is_reproducible(builtin_root):
    root, files = builtin_root
    ds = PC15kDataset(root, n_points=20, sampling="random")
    a, b = ds[0]["points"], ds[0]["points"]
    assert not torch.equal(a, b)
    for p in (a, b):
        rows = rows_of(torch.from_numpy(files[ds.files[0]]), p)
        assert len(set(rows.tolist())) == 20
    lightning.seed_everything(123, verbose=False)
    first = [ds[i]["points"] for i in range(3)]
    lightning.seed_everything(123, verbose=False)
    again = [ds[i]["points"] for i in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))


def test_pointflow_split_rows(tmp_path):
    root = tmp_path / "r"
    for split in ("train", "val", "test"):
        d = root / "00000001" / split
        d.mkdir(parents=True)
        pts = np.zeros((10_500, 3), np.float32)
        pts[:, 0] = np.arange(10_500)  # x = row index
        np.save(d / "a.npy", pts)
    for split, sampling in (("train", "random"), ("val", "fixed"), ("test", "fixed"), ("test", "random")):
        ds = PC15kDataset(root, split=split, n_points=400, sampling=sampling, pointflow_split=True)
        x = torch.cat([ds[0]["points"][:, 0] for _ in range(5)])
        if split == "train":
            assert x.max() < 10_000
        else:
            assert x.min() >= 10_000
    # Without pointflow_split every split draws from all rows.
    x = torch.cat([PC15kDataset(root, split="val", n_points=400)[0]["points"][:, 0] for _ in range(5)])
    assert x.min() < 10_000 <= x.max()
    with pytest.raises(ValueError, match="rows \\[10000, 10500\\) hold 500 points"):
        PC15kDataset(root, split="val", n_points=600, pointflow_split=True)[0]
    with pytest.raises(ValueError, match="exceeds the 10000 train rows"):
        PC15kDataset(root, split="train", n_points=10_001, pointflow_split=True)


# --------------------------------------------------------------------------- normalization
def _raw_and_item(ds, files, i):
    item = ds[i]
    full = files[ds.files[i]].astype(np.float64)
    return full, item


@pytest.mark.parametrize("mode", ["none", "unit_sphere", "unit_bbox"])
def test_per_shape_normalization_against_reference(builtin_root, mode):
    root, files = builtin_root
    ds = PC15kDataset(root, n_points=32, sampling="fixed", normalize=mode)
    for i in range(0, len(ds), 3):
        full, item = _raw_and_item(ds, files, i)
        if mode == "none":
            shift, scale = np.zeros(3), 1.0
        elif mode == "unit_sphere":
            shift = full.mean(0)
            scale = np.sqrt(((full - shift) ** 2).sum(1)).max()
        else:
            lo, hi = full.min(0), full.max(0)
            shift, scale = (lo + hi) / 2, (hi - lo).max()
        np.testing.assert_allclose(item["shift"].numpy(), shift[None], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(item["scale"].numpy(), [[scale]], rtol=1e-6)
        # Round trip to the raw sampled rows of the file.
        raw = item["points"].double() * item["scale"].double() + item["shift"].double()
        rows = ds._sample_rows(i, full.shape[0])
        np.testing.assert_allclose(raw.numpy(), full[rows], rtol=1e-5, atol=1e-5)
        # The whole file, normalized the same way, satisfies the mode's definition.
        whole = (full - shift) / scale
        if mode == "unit_sphere":
            assert np.isclose(np.linalg.norm(whole, axis=1).max(), 1.0)
            assert np.linalg.norm(item["points"].numpy(), axis=1).max() <= 1 + 1e-6
        if mode == "unit_bbox":
            ext = whole.max(0) - whole.min(0)
            assert np.isclose(ext.max(), 1.0) and np.allclose(whole.max(0), -whole.min(0))
            assert np.abs(item["points"].numpy()).max() <= 0.5 + 1e-6


def test_global_stats_match_naive_numpy(builtin_root):
    root, files = builtin_root
    train = np.concatenate([a for p, a in files.items() if p.parent.name == "train"]).astype(np.float64)
    stats = compute_global_stats(root, "all", split="train")
    np.testing.assert_allclose(stats["mean"], train.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["std"], train.reshape(-1).std(), rtol=1e-10)
    assert stats["n_shapes"] == 13 and stats["n_points"] == train.shape[0]
    # A category subset uses only that category's train files.
    chair = np.concatenate(
        [a for p, a in files.items() if p.parent.name == "train" and p.parent.parent.name == "90000002"]
    ).astype(np.float64)
    sub = compute_global_stats(root, "chair")
    np.testing.assert_allclose(sub["mean"], chair.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sub["std"], chair.reshape(-1).std(), rtol=1e-10)

    tr = PC15kDataset(root, n_points=16, normalize="global")
    assert tr.global_stats["mean"] == pytest.approx(stats["mean"])
    for split in ("val", "test"):
        kw = {"split": split, "n_points": 16, "sampling": "fixed", "normalize": "global"}
        passed = PC15kDataset(root, global_stats=tr.global_stats, **kw)
        computed = PC15kDataset(root, **kw)  # global_stats=None: computed from the train split
        for ds in (passed, computed):
            item = ds[0]
            np.testing.assert_allclose(item["shift"].numpy(), [stats["mean"]], rtol=1e-6)
            np.testing.assert_allclose(item["scale"].numpy(), [[stats["std"]]], rtol=1e-6)
            raw = item["points"].double() * item["scale"].double() + item["shift"].double()
            full = files[ds.files[0]].astype(np.float64)
            np.testing.assert_allclose(raw.numpy(), full[ds._sample_rows(0, len(full))], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="only used with normalize='global'"):
        PC15kDataset(root, n_points=16, global_stats=stats)
    with pytest.raises(ValueError, match="std > 0"):
        PC15kDataset(root, n_points=16, normalize="global", global_stats={"mean": [0, 0, 0], "std": 0.0})


def test_transforms_functions_batched_and_numpy():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(4, 50, 3)) * 3 + 1
    for fn in (normalize_unit_sphere, normalize_unit_bbox):
        for x in (pts, torch.from_numpy(pts)):
            y, shift, scale = fn(x)
            assert type(y) is type(x) and y.shape == (4, 50, 3)
            assert shift.shape == (4, 1, 3) and scale.shape == (4, 1, 1)
            back = denormalize(y, shift, scale)
            np.testing.assert_allclose(np.asarray(back), pts, atol=1e-12)
            np.testing.assert_allclose(np.asarray(apply_normalization(x, shift, scale)), np.asarray(y))
        y1, s1, c1 = fn(pts[1])
        assert s1.shape == (1, 3) and c1.shape == (1, 1)
        np.testing.assert_allclose(y1, fn(pts)[0][1])
    y, _, _ = normalize_unit_sphere(torch.from_numpy(pts))
    assert torch.allclose(y.norm(dim=-1).amax(-1), torch.ones(4, dtype=torch.float64))
    y, _, _ = normalize_unit_bbox(torch.from_numpy(pts))
    ext = y.amax(1) - y.amin(1)
    assert torch.allclose(ext.amax(-1), torch.ones(4, dtype=torch.float64))
    # Degenerate cloud: scale 1, finite.
    _, _, scale = normalize_unit_sphere(np.ones((5, 3)))
    assert scale.item() == 1.0
    with pytest.raises(ValueError, match="\\(N, 3\\) or \\(B, N, 3\\)"):
        normalize_unit_bbox(torch.zeros(5, 2))


def test_augmentations():
    pts = torch.randn(100, 3)
    lightning.seed_everything(0, verbose=False)
    rot = RandomRotateY()(pts)
    assert torch.allclose(rot.norm(dim=1), pts.norm(dim=1), atol=1e-5)
    assert torch.equal(rot[:, 1], pts[:, 1])
    lightning.seed_everything(0, verbose=False)
    assert torch.equal(RandomRotateY()(pts), rot)
    aug = RandomScaleShift(0.5, 2.0, 0.1)
    out = aug(torch.ones(10, 3))
    assert ((out >= 0.4) & (out <= 2.1)).all()
    assert Compose([RandomRotateY(0.0), RandomScaleShift(1.0, 1.0, 0.0)])(pts).allclose(pts, atol=1e-6)
    assert "RandomRotateY" in repr(Compose([RandomRotateY()]))
    with pytest.raises(ValueError, match="\\(N, 3\\)"):
        RandomRotateY()(torch.zeros(2, 5, 3))


def test_transform_hook_and_in_memory(builtin_root):
    root, _ = builtin_root
    calls = []

    def tf(p):
        calls.append(p.shape)
        return p * 0

    ds = PC15kDataset(root, n_points=8, transform=tf, in_memory=True)
    assert ds[0]["points"].abs().sum() == 0 and calls == [(8, 3)]
    lazy = PC15kDataset(root, n_points=8, sampling="fixed", normalize="unit_sphere")
    mem = PC15kDataset(root, n_points=8, sampling="fixed", normalize="unit_sphere", in_memory=True)
    assert torch.equal(lazy[3]["points"], mem[3]["points"])
    assert lazy.validate() == []


# --------------------------------------------------------------------------- bad input
def _one_file_root(tmp_path, n_rows=64):
    root = tmp_path / "bad"
    files = write_pc15k(root, {"00000001": {"train": 2}}, n_rows=n_rows)
    return root, sorted(files)[1]


def test_missing_root_and_not_a_pc15k_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as exc:
        PC15kDataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(exc.value)
    (tmp_path / "empty" / "somedir").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a PC15k root") as exc:
        PC15kDataset(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(exc.value)
    # Passing the built-in root instead of its PC15k directory gets a hint.
    write_pc15k(tmp_path / "builtin" / "ShapeNetCore.v2.PC15k", {"00000001": {"train": 1}})
    with pytest.raises(ValueError, match="did you mean .*ShapeNetCore.v2.PC15k"):
        PC15kDataset(tmp_path / "builtin")


def test_unmatched_and_absent_categories(builtin_root, real_root):
    root, _ = builtin_root
    with pytest.raises(ValueError, match="no category matched \\['sofa_bed'\\]") as exc:
        PC15kDataset(root, ["chair", "sofa_bed"])
    msg = str(exc.value)
    assert "90000002 (chair)" in msg and "90000001 (airplane)" in msg and str(root) in msg
    with pytest.raises(ValueError, match="synset 04256520\\) is not in this root"):
        PC15kDataset(real_root, "sofa")
    with pytest.raises(ValueError, match="categories is empty"):
        PC15kDataset(root, [])


def test_empty_category_split(tmp_path):
    root = tmp_path / "r"
    write_pc15k(root, {"00000001": {"train": 1}})
    (root / "00000002" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .npy files") as exc:
        PC15kDataset(root)
    assert str(root / "00000002" / "train") in str(exc.value)


def _corrupt(path, kind):
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickled":
        np.save(path, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "not_npy":
        path.write_text("1 2 3\n4 5 6\n")
    elif kind == "shape_2d":
        np.save(path, np.zeros((64, 2), np.float32))
    elif kind == "shape_transposed":
        np.save(path, np.zeros((3, 64), np.float32))
    elif kind == "shape_1d":
        np.save(path, np.zeros(192, np.float32))
    elif kind == "too_few":
        np.save(path, np.zeros((10, 3), np.float32))
    elif kind == "strings":
        np.save(path, np.array([["a", "b", "c"]] * 64))
    elif kind in ("nan", "inf"):
        pts = np.zeros((64, 3), np.float32)
        pts[7, 1] = np.nan if kind == "nan" else np.inf
        np.save(path, pts)


BAD = {
    "truncated": "truncated",
    "empty": "empty or truncated",
    "pickled": "pickled Python objects",
    "not_npy": "pickled|not a readable",
    "shape_2d": "expected a \\(P, 3\\) float array, got shape \\(64, 2\\)",
    "shape_transposed": "got shape \\(3, 64\\)",
    "shape_1d": "got shape \\(192,\\)",
    "too_few": "P >= n_points=32, got shape \\(10, 3\\)",
    "strings": "got dtype <U1",
    "nan": "non-finite coordinates \\(NaN or inf\\).*first at row 7",
    "inf": "non-finite coordinates \\(NaN or inf\\).*first at row 7",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_errors_name_the_path(tmp_path, kind):
    root, bad = _one_file_root(tmp_path)
    _corrupt(bad, kind)
    ds = PC15kDataset(root, n_points=32)  # lazy: construction only lists files
    assert ds[0]["points"].shape == (32, 3)  # the good file still reads
    with pytest.raises(ValueError, match=BAD[kind]) as exc:
        ds[1]
    assert str(bad) in str(exc.value)
    problems = ds.validate(raise_on_error=False)
    assert len(problems) == 1 and str(bad) in problems[0]
    with pytest.raises(ValueError, match="1 of 2 files .* are invalid"):
        ds.validate()
    with pytest.raises(ValueError, match=BAD[kind]) as exc:
        PC15kDataset(root, n_points=32, in_memory=True)
    assert str(bad) in str(exc.value)
    if kind not in ("shape_2d", "shape_transposed", "shape_1d", "too_few", "strings", "nan", "inf"):
        with pytest.raises(ValueError, match=str(bad.name)):
            load_cloud(bad)


def test_pointflow_split_needs_10000_rows(tmp_path):
    root, bad = _one_file_root(tmp_path, n_rows=64)
    with pytest.raises(ValueError, match="pointflow_split needs at least 10000 rows") as exc:
        PC15kDataset(root, n_points=32, pointflow_split=True)[1]
    assert str(bad) in str(exc.value)


def test_incomplete_builtin_set(tmp_path):
    builtin = tmp_path / "builtin"
    root = builtin / "ShapeNetCore.v2.PC15k"
    write_pc15k(root, {"90000002": {"train": 2}}, name_map={"chair": "90000002"})
    (builtin / ".tmp-abc123").mkdir()
    with pytest.raises(ValueError, match="incomplete.*regenerate") as exc:
        PC15kDataset(root)
    assert ".tmp-abc123" in str(exc.value) and str(builtin) in str(exc.value)
    (builtin / ".tmp-abc123").rmdir()
    if importlib.util.find_spec("pc3d.data.synthetic") is not None:
        # Killed between two categories: no .tmp-* left, but built-in ids and no manifest.
        with pytest.raises(ValueError, match="built-in synsets 90000002 are present.*regenerate"):
            PC15kDataset(root)
    (builtin / "pc3d_synthetic.json").write_text("{}")
    assert len(PC15kDataset(root, n_points=8)) == 2


def test_argument_errors(builtin_root):
    root, _ = builtin_root
    for kwargs, match in (
        ({"split": "training"}, "split must be one of"),
        ({"sampling": "fps"}, "sampling must be one of"),
        ({"normalize": "unit_cube"}, "normalize must be one of"),
        ({"n_points": 0}, "n_points must be a positive int"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ):
        with pytest.raises(ValueError, match=match):
            PC15kDataset(root, **kwargs)


def test_variant_shares_files(builtin_root):
    root, _ = builtin_root
    ds = PC15kDataset(root, n_points=8, transform=lambda p: p + 1)
    fixed = ds.variant(sampling="fixed", transform=None)
    assert fixed.files is ds.files and fixed.sampling == "fixed" and fixed.transform is None
    assert ds.sampling == "random" and ds.transform is not None
    assert torch.equal(fixed[2]["points"], fixed[2]["points"])
    assert math.isfinite(float(fixed[2]["points"].sum()))
