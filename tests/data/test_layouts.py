"""Every public layout, built as a small fixture in its exact file format, read through the DataModule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pc3d.data import PointCloudDataModule
from pc3d.data.latent3d import Latent3DDataset
from pc3d.data.layouts import detect_layout, make_dataset
from pc3d.data.meshes import MeshFolderDataset, MeshSampler, read_mesh, read_off
from pc3d.data.modelnet import ModelNet40Dataset
from pc3d.data.pc15k import PC15kDataset
from pc3d.data.shapenet_part import ShapeNetPartDataset
from pc3d.data.splits import drawn_index
from tests.data.layouts import (
    box_mesh,
    write_latent3d,
    write_mesh_folder,
    write_modelnet40,
    write_modelnet40_normal,
    write_off,
    write_shapenet_part,
)

PART_SPEC = {"02691156": {"train": 3, "val": 2, "test": 1}, "03001627": {"train": 4, "val": 1, "test": 2}}
MN_SPEC = {"chair": {"train": 10, "test": 2}, "night_stand": {"train": 5, "test": 1}}


def dm_for(root, **kw):
    kw = {"n_points": 16, "batch_size": 2, "eval_batch_size": 8, "layout": "auto", "drop_last": False, **kw}
    return PointCloudDataModule(root, **kw)


def split_counts(dm):
    dm.setup()
    return {s: dict(getattr(dm, f"{s}_set").counts) for s in ("train", "val", "test")}


def rows_of(points: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index in ``table`` of every row of ``points`` (exact up to float32 rounding)."""
    d = np.abs(points[:, None, :].astype(np.float64) - table[None, :, :]).max(axis=2)
    assert np.all(d.min(axis=1) < 1e-5)
    return d.argmin(axis=1)


# ---------------------------------------------------------------------------------- ShapeNet-part
@pytest.fixture
def part_root(tmp_path):
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0"
    return root, write_shapenet_part(root, PART_SPEC)


def test_shapenet_part_counts_labels_and_rows(part_root):
    root, truth = part_root
    assert detect_layout(root) == "shapenet_part"
    dm = dm_for(root)
    assert split_counts(dm) == {s: {k: v[s] for k, v in PART_SPEC.items()} for s in ("train", "val", "test")}
    assert dm.layout == "shapenet_part" and dm.names == ["airplane", "chair"] and dm.num_classes == 2
    batch = next(iter(dm.val_dataloader()))
    assert batch["points"].shape == (3, 16, 3) and batch["part_label"].shape == (3, 16)
    assert batch["part_label"].dtype == torch.int64
    for i in range(3):
        ref = truth[(batch["synset"][i], batch["model_id"][i])]
        assert ref["split"] == "val" and dm.synsets[int(batch["category"][i])] == batch["synset"][i]
        rows = rows_of(batch["points"][i].numpy(), ref["points"])
        assert len(set(rows.tolist())) == 16  # without replacement
        assert torch.equal(batch["part_label"][i], torch.from_numpy(ref["labels"][rows]))


def test_shapenet_part_category_names_and_normal_variant(tmp_path):
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    truth = write_shapenet_part(root, {"03001627": {"train": 2, "val": 1, "test": 1}}, variant="normal")
    ds = ShapeNetPartDataset(root, categories="Chair", split="train", n_points=8, sampling="fixed")
    assert ds.normal_variant and len(ds) == 2 and ds.names == ["chair"]
    item = ds[1]
    ref = truth[("03001627", item["model_id"])]
    rows = rows_of(item["points"].numpy(), ref["points"])
    assert torch.equal(item["part_label"], torch.from_numpy(ref["labels"][rows])) and item["part_label"].min() >= 10
    with pytest.raises(ValueError, match="category 'sofa' \\(synset 04256520\\) is not in this root"):
        ShapeNetPartDataset(root, categories="sofa", n_points=8)
    with pytest.raises(ValueError, match="no category matched \\['sofa_bed'\\]"):
        ShapeNetPartDataset(root, categories="sofa_bed", n_points=8)


def test_treegan_protocol_all_files_fixed_indices_with_replacement(part_root):
    root, truth = part_root
    dm = dm_for(root, categories="chair", train_split="all", train_sampling="treegan", n_points=100)
    dm.setup("fit")
    train = dm.train_set
    assert len(train) == 7 and train.split == "all"  # every chair file, whatever its split list
    item = train[0]
    ref = truth[("03001627", item["model_id"])]["points"]  # 40 rows < 100 points: with replacement
    rows = drawn_index(0, "03001627", item["model_id"], len(ref), 100)
    np.testing.assert_allclose(item["points"].numpy(), ref[rows], atol=1e-6)
    assert torch.equal(train[0]["points"], item["points"])  # fixed: the same every epoch
    # an index file (tree-GAN's <synset>/sampling/<id>.sam) takes precedence
    sam = root / "03001627" / "sampling" / f"{item['model_id']}.sam"
    sam.parent.mkdir()
    idx = np.arange(100) % 7
    sam.write_text("\n".join(map(str, idx)))
    np.testing.assert_allclose(train[0]["points"].numpy(), ref[idx], atol=1e-6)
    sam.write_text("1 2 3")
    with pytest.raises(ValueError, match=f"{sam.name}: expected 100 row indices"):
        train[0]


def test_write_index_files_round_trip(part_root):
    from pc3d.data import write_index_files

    root, truth = part_root
    ds = ShapeNetPartDataset(root, categories="chair", split="all", n_points=30, sampling="treegan")
    before = [ds[i]["points"] for i in range(len(ds))]
    written = write_index_files(ds)
    assert len(written) == 7 and all(p.parent.name == "sampling" and p.suffix == ".sam" for p in written)
    idx = np.loadtxt(written[0], dtype=np.int64)
    assert idx.shape == (30,) and idx.min() >= 0
    assert all(torch.equal(ds[i]["points"], before[i]) for i in range(len(ds)))  # the files hold the same draw
    assert write_index_files(ds) == []  # existing files are kept


def test_shapenet_part_bad_files_raise_or_are_skipped(part_root, tmp_path):
    root, truth = part_root
    bad_pts = root / "03001627" / "points" / f"{next(m for s, m in truth if s == '03001627')}.pts"
    bad_pts.write_text("0.1 0.2 0.3\n0.4 zero 0.6\n")
    seg_id = [m for (s, m), r in truth.items() if s == "03001627" and r["split"] == "train"][-1]
    (root / "03001627" / "points_label" / f"{seg_id}.seg").write_text("1\n2\n")
    with pytest.raises(ValueError, match=f"{bad_pts}: expected rows of 'x y z'"):
        dm_for(root, in_memory=True).setup("fit")
    report = tmp_path / "run" / "bad_files.json"
    dm = dm_for(root, skip_bad=True, bad_files_report=str(report))
    dm.setup("fit")
    assert dm.train_set.counts == {"02691156": 3, "03001627": 2}
    listed = json.loads(report.read_text())
    assert [line.split(":")[0] for line in listed["train"]] == [
        str(bad_pts),
        str(root / "03001627" / "points_label" / f"{seg_id}.seg"),
    ]
    assert "expected one part label per point" in listed["train"][1] and dm.bad_files == listed


# ---------------------------------------------------------------------------------- ModelNet40
@pytest.fixture
def modelnet_root(tmp_path):
    root = tmp_path / "ModelNet40"
    return root, write_modelnet40(root, MN_SPEC)


def test_off_reader_tolerates_glued_header_quads_and_comments(tmp_path):
    v, f = box_mesh((1.0, 2.0, 3.0))
    write_off(tmp_path / "glued.off", v, f, glued_header=True)
    assert (tmp_path / "glued.off").read_text().startswith("OFF8 12 0\n")
    v2, f2 = read_off(tmp_path / "glued.off")
    np.testing.assert_allclose(v2, v, atol=1e-6)
    assert np.array_equal(f2, f)
    write_off(tmp_path / "quads.off", v, f, quads=True)
    text = (tmp_path / "quads.off").read_text().replace("OFF\n", "OFF\n# a comment\n\n", 1)
    (tmp_path / "quads.off").write_text(text)
    assert {tuple(sorted(t)) for t in read_off(tmp_path / "quads.off")[1]} == {tuple(sorted(t)) for t in f}
    (tmp_path / "short.off").write_text("OFF\n8 12 0\n0 0 0\n")
    with pytest.raises(ValueError, match="short.off: header says 8 vertices and 12 faces"):
        read_off(tmp_path / "short.off")
    write_off(tmp_path / "range.off", v, f + 1)
    with pytest.raises(ValueError, match="range.off: triangle indices must be in \\[0, 8\\)"):
        read_mesh(tmp_path / "range.off")


def test_modelnet40_splits_and_area_uniform_sampling(modelnet_root):
    root, truth = modelnet_root
    assert detect_layout(root) == "modelnet40"
    dm = dm_for(root, layout_options={"surface_points": 4000, "val_fraction": 0.2})
    counts = split_counts(dm)
    assert counts == {
        "train": {"chair": 8, "night_stand": 4},
        "val": {"chair": 2, "night_stand": 1},
        "test": {"chair": 2, "night_stand": 1},
    }
    train_ids, val_ids = set(dm.train_set.model_ids), set(dm.val_set.model_ids)
    assert not train_ids & val_ids
    assert train_ids | val_ids == {m for (c, m), (s, _) in truth.items() if s == "train"}
    again = dm_for(root, layout_options={"surface_points": 4000, "val_fraction": 0.2})
    again.setup("validate")
    assert again.val_set.model_ids == dm.val_set.model_ids
    assert torch.equal(again.val_set[0]["points"], dm.val_set[0]["points"])  # deterministic per seed
    # area-uniform on the box: points lie on the surface, each face pair gets its share of the area
    ds = ModelNet40Dataset(root, categories="chair", split="test", n_points=4000, surface_points=4000)
    for i in range(len(ds)):
        pts = ds[i]["points"].numpy().astype(np.float64)
        half = truth[("chair", ds.model_ids[i])][1] / 2
        on_face = np.isclose(np.abs(pts), half, atol=1e-4)
        assert on_face.any(axis=1).all() and (np.abs(pts) <= half + 1e-4).all()
        sx, sy, sz = 2 * half
        areas = np.array([sy * sz, sx * sz, sx * sy])
        frac = on_face.sum(axis=0) / len(pts)
        np.testing.assert_allclose(frac, areas / areas.sum(), atol=0.04)


def test_modelnet40_corrupt_off_error_and_skip(modelnet_root, tmp_path):
    root, _ = modelnet_root
    bad = root / "chair" / "test" / "chair_0099.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 x\n")
    ds = ModelNet40Dataset(root, categories="chair", split="test", n_points=8, surface_points=100)
    with pytest.raises(ValueError, match=f"{bad}: face 0: expected"):
        [ds[i] for i in range(len(ds))]
    dm = dm_for(root, skip_bad=True, layout_options={"surface_points": 100})
    dm.setup("test")
    assert dm.test_set.counts == {"chair": 2, "night_stand": 1}
    assert dm.bad_files["test"][0].startswith(f"{bad}: face 0")


def test_modelnet40_cache_round_trip(modelnet_root, tmp_path, monkeypatch):
    root, _ = modelnet_root
    opts = {"surface_points": 200, "cache_dir": str(tmp_path / "cache")}
    ds = ModelNet40Dataset(root, categories="night_stand", split="test", n_points=200, sampling="fixed", **opts)
    first = ds[0]["points"]
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    assert entry.parent.parts[-3:] == ("ShapeNetCore.v2.PC15k", "night_stand", "test")
    monkeypatch.setattr(MeshSampler, "sample", lambda *a: pytest.fail("the cache was not used"))
    assert torch.equal(
        ModelNet40Dataset(root, categories="night_stand", split="test", n_points=200, sampling="fixed", **opts)[0][
            "points"
        ],
        first,
    )


def test_modelnet40_normal_resampled(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    truth = write_modelnet40_normal(root, {"airplane": {"train": 5, "test": 2}, "chair": {"train": 10, "test": 1}})
    assert detect_layout(root) == "modelnet40_normal"
    dm = dm_for(root, layout_options={"val_fraction": 0.2}, n_points=50)
    assert split_counts(dm) == {
        "train": {"airplane": 4, "chair": 8},
        "val": {"airplane": 1, "chair": 2},
        "test": {"airplane": 2, "chair": 1},
    }
    item = dm.test_set[2]
    assert item["synset"] == "chair" and int(item["category"]) == 1
    rows = rows_of(item["points"].numpy(), truth[("chair", item["model_id"])])
    assert sorted(rows.tolist()) == list(range(50))
    bad = root / "chair" / "chair_0011.txt"
    bad.write_text("1,2,3,4,5\n")
    with pytest.raises(ValueError, match=f"{bad}: expected rows of 'x,y,z,nx,ny,nz'"):
        dm_for(root, in_memory=True).setup("test")


# ---------------------------------------------------------------------------------- latent_3d_points
def test_latent3d_ply_split_and_bad_file(tmp_path):
    root = tmp_path / "shape_net_core_uniform_samples_2048"
    truth = write_latent3d(root, {"03001627": 20, "02691156": 10}, n_rows=64)
    assert detect_layout(root) == "latent3d"
    dm = dm_for(root, categories=["chair", "airplane"], n_points=64)
    assert split_counts(dm) == {
        "train": {"02691156": 8, "03001627": 17},
        "val": {"02691156": 1, "03001627": 1},
        "test": {"02691156": 1, "03001627": 2},
    }
    item = dm.val_set[1]
    rows = rows_of(item["points"].numpy(), truth[(item["synset"], item["model_id"])])
    assert sorted(rows.tolist()) == list(range(64))  # binary and ASCII PLY both read exactly
    other = Latent3DDataset(root, split="test", n_points=8, seed=1)
    assert other.model_ids != dm.test_set.model_ids  # the split follows the seed
    bad = root / "03001627" / "03001627zzzz.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 10\nproperty float x\nend_header\n1\n")
    dm = dm_for(root, skip_bad=True, categories="chair", n_points=64)
    dm.setup()
    assert sum(len(v) for v in dm.bad_files.values()) == 1
    assert next(iter(dm.bad_files.values()))[0].startswith(str(bad))


# ---------------------------------------------------------------------------------- folder of meshes
MESH_SPEC = {"crate": [".obj", ".ply", ".off", ".glb", ".stl", "sub/.obj"], "pillar": [".obj", ".stl", ".glb"]}


def test_every_mesh_format_reads_the_same_box(tmp_path):
    truth = write_mesh_folder(tmp_path, MESH_SPEC)
    for (cls, model_id), scale in truth.items():
        v, f = read_mesh(tmp_path / cls / model_id.replace("__", "/"))
        extent = v.max(axis=0) - v.min(axis=0)
        np.testing.assert_allclose(extent, scale, rtol=1e-5, err_msg=model_id)
        tri = v[f]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
        sx, sy, sz = scale
        np.testing.assert_allclose(area, 2 * (sx * sy + sy * sz + sx * sz), rtol=1e-5, err_msg=model_id)


def test_mesh_folder_normalized_cached_and_readable_as_pc15k(tmp_path, monkeypatch):
    root = tmp_path / "assets"
    write_mesh_folder(root, MESH_SPEC)
    assert detect_layout(root) == "meshes"
    dm = dm_for(root, layout_options={"surface_points": 500, "cache_dir": str(tmp_path / "cache")}, n_points=64)
    dm.prepare_data()
    counts = split_counts(dm)
    assert counts == {
        "train": {"crate": 4, "pillar": 1},
        "val": {"crate": 1, "pillar": 1},
        "test": {"crate": 1, "pillar": 1},
    }
    assert dm.names == ["crate", "pillar"]
    (cache,) = (tmp_path / "cache").iterdir()
    pc15k = cache / "ShapeNetCore.v2.PC15k"
    assert len(list(pc15k.rglob("*.npy"))) == 9 and len(list(pc15k.rglob("*.json"))) == 9
    # normalized like the built-in set: bounding box centred, farthest point <= 0.5
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        for i in range(len(ds)):
            pts = ds[i]["points"]
            assert pts.norm(dim=1).max() <= 0.5 + 1e-5
    # the cache is a PC15k data set with the same splits and points
    as_pc15k = PC15kDataset(pc15k, split="val", n_points=64, sampling="fixed")
    assert as_pc15k.model_ids == dm.val_set.model_ids
    assert torch.equal(as_pc15k[0]["points"], dm.val_set[0]["points"])
    # later runs read the cache; a touched file with the same bytes still hits it (SHA-256)
    src = root / "pillar" / "pillar02.glb"
    src.touch()
    monkeypatch.setattr(MeshSampler, "sample", lambda *a: pytest.fail("the cache was not used"))
    again = dm_for(root, layout_options={"surface_points": 500, "cache_dir": str(tmp_path / "cache")}, n_points=64)
    again.setup()
    assert torch.equal(again.val_set[0]["points"], dm.val_set[0]["points"])
    monkeypatch.undo()
    # changed content: sampled again
    src.write_bytes((root / "crate" / "crate03.glb").read_bytes())
    calls = []
    real = MeshSampler.sample
    monkeypatch.setattr(MeshSampler, "sample", lambda self, p, r: calls.append(p) or real(self, p, r))
    dm_for(root, layout_options={"surface_points": 500, "cache_dir": str(tmp_path / "cache")}).prepare_data()
    assert calls == [src]


def test_mesh_folder_bad_mesh_and_renderings(tmp_path):
    root = tmp_path / "assets"
    write_mesh_folder(root, {"crate": [".obj", ".off", ".ply"]})
    bad = root / "crate" / "broken.ply"
    bad.write_text("this is not a ply file\n")
    opts = {"surface_points": 100, "render_views": 2, "image_size": 16}
    with pytest.raises(ValueError, match=f"{bad}: not a readable PLY file"):
        dm_for(root, layout_options=opts).prepare_data()
    bad.unlink()
    dm = dm_for(root, layout_options=opts)
    dm.prepare_data()
    folders = sorted((root / ".pc3d_cache" / "ShapeNetRendering" / "crate").iterdir())
    assert [p.name for p in folders] == ["crate00", "crate01", "crate02"]
    rendering = folders[0] / "rendering"
    assert (rendering / "renderings.txt").read_text().split() == ["00.png", "01.png"]
    meta = (rendering / "rendering_metadata.txt").read_text().splitlines()
    assert len(meta) == 2 and all(len(line.split()) == 5 for line in meta)
    assert (rendering / "00.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad.write_text("still not a ply\n")
    dm = dm_for(root, skip_bad=True, layout_options={"surface_points": 100})
    dm.prepare_data()
    dm.setup()
    assert [line.split(":")[0] for v in dm.bad_files.values() for line in v] == [str(bad)]
    assert sum(len(getattr(dm, f"{s}_set")) for s in ("train", "val", "test")) == 3


# ---------------------------------------------------------------------------------- one DataModule
def _fixture(kind, tmp_path):
    if kind == "shapenet_part":
        write_shapenet_part(tmp_path / kind, PART_SPEC)
    elif kind == "modelnet40":
        write_modelnet40(tmp_path / kind, MN_SPEC)
    elif kind == "modelnet40_normal":
        write_modelnet40_normal(tmp_path / kind, {"airplane": {"train": 5, "test": 2}})
    elif kind == "latent3d":
        write_latent3d(tmp_path / kind, {"03001627": 12}, n_rows=32)
    else:
        write_mesh_folder(tmp_path / kind, MESH_SPEC)
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["shapenet_part", "modelnet40", "modelnet40_normal", "latent3d", "meshes"])
def test_datamodule_contract_for_every_layout(kind, tmp_path):
    root = _fixture(kind, tmp_path)
    built = []

    class Wrapping(PointCloudDataModule):  # what a subclass that wraps the data sets does
        def _make(self, split, sampling, categories, in_memory, transform=None):
            ds = super()._make(split, sampling, categories, in_memory, transform)
            built.append((split, sampling, type(ds).__name__))
            return ds

    dm = Wrapping(
        root,
        layout=kind,
        normalize="global",
        n_points=8,
        batch_size=2,
        drop_last=False,
        layout_options={"surface_points": 64} if kind in ("modelnet40", "meshes") else None,
    )
    dm.setup()
    assert [b[:2] for b in built] == [("train", "random"), ("val", "fixed"), ("test", "fixed")]
    assert dm.num_classes == len(dm.synsets) == len(dm.names) >= 1
    state = dm.state_dict()
    assert state["synsets"] == dm.synsets and set(state["global_stats"]) >= {"mean", "std"}
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (2, 8, 3) and batch["scale"].shape == (2, 1, 1)
    assert {"points", "category", "synset", "model_id", "index", "shift", "scale"} <= set(batch)
    # global statistics come from the train split, as with PC15k
    arrays = np.concatenate([dm.train_set._cloud(i)[0] for i in range(len(dm.train_set))]).astype(np.float64)
    np.testing.assert_allclose(dm.global_stats["mean"], arrays.mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dm.global_stats["std"], arrays.reshape(-1).std(), rtol=1e-6)


def test_detect_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "ModelNet40").mkdir()
    with pytest.raises(ValueError, match="no known data set layout.*did you mean .*ModelNet40 \\(modelnet40\\)"):
        detect_layout(tmp_path)
    with pytest.raises(ValueError, match="unknown layout 'obj'"):
        make_dataset("obj", tmp_path)
    with pytest.raises(ValueError, match="layout must be 'auto' or one of"):
        PointCloudDataModule(tmp_path, layout="obj")


def test_mesh_folder_split_is_deterministic_and_seeded(tmp_path):
    write_mesh_folder(tmp_path, {"crate": [".obj"] * 10})
    a = MeshFolderDataset(tmp_path, split="val", n_points=4, cache_dir=False, surface_points=16)
    b = MeshFolderDataset(tmp_path, split="val", n_points=4, cache_dir=False, surface_points=16)
    c = MeshFolderDataset(tmp_path, split="val", n_points=4, cache_dir=False, surface_points=16, seed=3)
    assert a.model_ids == b.model_ids and len(a) == 1 and a.model_ids != c.model_ids


# ---------------------------------------------------------------------------------- pc3d-data inspect
def _inspect(capsys, *argv):
    from pc3d.cli.data import main

    # the fixtures hold clouds of 8 or more rows; inspect flags clouds shorter than --n-points (default 2048)
    rc = main(["inspect", "--n-points", "8", *map(str, argv)])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "layout", "total"),
    [
        ("shapenet_part", "shapenet_part", "total                   7    3     3     13"),
        ("modelnet40", "modelnet40", "total                        13    2     3     18"),
        ("modelnet40_normal", "modelnet40_normal", "total                   4    1     2      7"),
        ("latent3d", "latent3d", "total                  10    1     1     12"),
        ("meshes", "meshes", "total                 5    2     2      9"),
    ],
)
def test_inspect_reports_layout_counts_and_no_problems(kind, layout, total, tmp_path, capsys):
    root = _fixture(kind, tmp_path)
    rc, out = _inspect(capsys, root)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == f"{root}: layout {layout} (detected)"
    assert total in lines and lines[-1] == "problems: 0"
    assert not list(root.rglob(".pc3d_cache"))  # inspecting writes nothing into the data folder


def test_inspect_lists_bad_files_and_malformed_off(tmp_path, capsys):
    root = _fixture("modelnet40", tmp_path)
    glued = root / "chair" / "train" / "chair_0001.off"
    assert glued.read_text().startswith("OFF8 12 0")  # the malformed header is read fine
    bad = root / "chair" / "test" / "chair_0013.off"
    bad.write_text("OFF\n4 2 0\n0 0 0\n")
    rc, out = _inspect(capsys, root)
    assert rc == 1
    assert "chair        chair            9    1     2     12" in out
    assert out.splitlines()[-2:] == [
        "problems: 1",
        f"  {bad}: header says 4 vertices and 2 faces, the file has 1 data lines",
    ]
    rc, out = _inspect(capsys, root, "--json")
    report = json.loads(out)
    assert (
        rc == 1 and report["layout"] == "modelnet40" and report["counts"]["chair"] == {"train": 9, "val": 1, "test": 2}
    )
    assert report["bad_files"] == [f"{bad}: header says 4 vertices and 2 faces, the file has 1 data lines"]


def test_inspect_pc15k_missing_split_and_unknown_folder(tmp_path, capsys):
    from tests.helpers import write_pc15k

    root = tmp_path / "ShapeNetCore.v2.PC15k"
    write_pc15k(root, {"03001627": {"train": 3, "test": 1}}, n_rows=8)
    np.save(root / "03001627" / "train" / "nan.npy", np.full((8, 3), np.nan, np.float32))
    rc, out = _inspect(capsys, root)
    assert rc == 1 and out.splitlines()[0] == f"{root}: layout pc15k (detected)"
    assert f"  val: {root}: no category has a 'val' split (categories with other splits: 03001627 (chair))" in out
    assert f"  {root / '03001627' / 'train' / 'nan.npy'}: 24 non-finite coordinates" in out
    from pc3d.cli.data import main

    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "pc3d-data: error: " in capsys.readouterr().err


def test_few_points_repeat_or_error(part_root):
    root, truth = part_root
    # every shape has 40 + 3k rows (40..58); ask for 50 points
    ds = ShapeNetPartDataset(root, categories="airplane", split="train", n_points=50, sampling="fixed")
    assert ds.few_points == "repeat"
    item = ds[0]
    ref = truth[("02691156", item["model_id"])]["points"]
    rows = rows_of(item["points"].numpy(), ref)
    assert len(ref) == 40 and set(rows.tolist()) == set(range(40))  # every row once, 10 repeated
    assert torch.equal(ds[0]["points"], item["points"])
    strict = ShapeNetPartDataset(root, categories="airplane", split="train", n_points=50, few_points="error")
    with pytest.raises(ValueError, match="with P >= n_points=50, got shape \\(40, 3\\)"):
        strict[0]


# ---------------------------------------------------------------------------------- configs and CLI
@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ("shapenet_part", "shapenet_part"),
        ("modelnet40", "modelnet40"),
        ("modelnet40_normal", "modelnet40_normal"),
        ("latent3d", "latent3d"),
        ("meshes", "meshes"),
    ],
)
def test_data_config_per_layout_instantiates(config, kind, tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    root = _fixture(kind, tmp_path)
    overrides = [f"data={config}", f"data.root={root}", "data.n_points=8", "data.batch_size=2", "data.num_workers=0"]
    if config in ("modelnet40", "meshes"):
        overrides += ["data.layout_options.surface_points=64", f"data.layout_options.cache_dir={tmp_path / 'cache'}"]
    cfg = compose_train(overrides, tmp_path / "run")
    assert cfg.data.skip_bad is False and cfg.data.bad_files_report == str(tmp_path / "run" / "bad_files.json")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    assert dm.layout == kind and len(dm.train_set) > 0 and len(dm.val_set) > 0 and len(dm.test_set) > 0
    assert next(iter(dm.train_dataloader()))["points"].shape == (2, 8, 3)


def test_pc3d_data_inspect_console_script(tmp_path):
    import subprocess
    import sys

    root = _fixture("latent3d", tmp_path)
    (root / "03001627" / "03001627broken.ply").write_bytes(b"\x00\x01")
    proc = subprocess.run(
        [sys.executable, "-m", "pc3d.cli.data", "inspect", "--n-points", "8", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{root}: layout latent3d (detected)"
    assert "chair     03001627     10    1     1     12" in lines
    assert lines[-2:] == [
        "problems: 1",
        f"  {root / '03001627' / '03001627broken.ply'}: not a PLY file (expected 'ply' ... 'end_header' at the start)",
    ]


def test_shapenet_part_partial_download(part_root):
    import shutil

    root, _ = part_root
    shutil.rmtree(root / "02691156")  # the split lists still name airplanes
    ds = ShapeNetPartDataset(root, split="test", n_points=8)
    assert ds.synsets == ["03001627"] and len(ds) == 2
    with pytest.raises(ValueError, match="category 'airplane' \\(synset 02691156\\) is not in this root"):
        ShapeNetPartDataset(root, categories="airplane", n_points=8)


def test_pc15k_skip_bad_through_the_datamodule(tmp_path):
    from tests.helpers import write_pc15k

    root = tmp_path / "ShapeNetCore.v2.PC15k"
    write_pc15k(root, {"03001627": {"train": 4, "val": 2, "test": 1}}, n_rows=32)
    bad = root / "03001627" / "val" / "truncated.npy"
    bad.write_bytes(b"\x93NUMPY")
    with pytest.raises(ValueError, match=f"{bad}: "):
        PointCloudDataModule(root, n_points=8, in_memory=True).setup("fit")
    dm = PointCloudDataModule(root, n_points=8, skip_bad=True, bad_files_report=tmp_path / "bad.json")
    dm.setup("fit")
    assert dm.layout == "pc15k" and len(dm.val_set) == 2
    assert json.loads((tmp_path / "bad.json").read_text())["val"][0].startswith(f"{bad}: ")
