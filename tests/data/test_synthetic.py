"""Tests of the built-in procedural data set (pc3d.data.synthetic) and its CLI (pc3d-data)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open3d")

from pc3d.data import synthetic as S  # noqa: E402
from pc3d.data.splits import SPLITS, split_counts  # noqa: E402
from pc3d.data.synthetic import categories, lock, rendering, writer  # noqa: E402
from pc3d.data.synthetic.primitives import Parts  # noqa: E402
from pc3d.geometry import camera  # noqa: E402

CATS = ["airplane", "chair", "mug"]
SMALL = {
    "n_per_category": 10,
    "n_points": 2000,
    "n_views": 2,
    "image_size": 64,
    "seed": 0,
    "categories": CATS,
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {k: p.stat().st_mtime_ns for k, p in _files(root).items()}


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        assert im.mode == "RGBA"
        return np.asarray(im)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return S.generate(tmp_path_factory.mktemp("syn") / "root", progress=False, workers=1, **SMALL)


# ---------------------------------------------------------------------------------------- layout


def test_layout(root: Path) -> None:
    pc, rd = root / S.PC15K_DIRNAME, root / S.RENDERING_DIRNAME
    expect_map = "".join(f"{c}\t{S.CATEGORIES[c]}\n" for c in CATS)
    assert (pc / "synsetoffset2category.txt").read_text() == expect_map
    assert (rd / "synsetoffset2category.txt").read_text() == expect_map
    man = S.read_manifest(root)
    assert man is not None and man == json.loads((root / S.MANIFEST_NAME).read_text())
    assert S.read_manifest(pc) == man  # also found from the PC15k folder
    assert man["categories"] == {c: S.CATEGORIES[c] for c in CATS}
    assert man["params"]["n_points"] == 2000 and man["params"]["splits"] == [0.8, 0.1, 0.1]
    assert sorted(p.name for p in root.iterdir()) == sorted([S.MANIFEST_NAME, S.FINE_LABELS_NAME, S.PC15K_DIRNAME,
                                                             S.RENDERING_DIRNAME])
    for c in CATS:
        syn = S.CATEGORIES[c]
        assert sorted(p.name for p in (pc / syn).iterdir()) == ["test", "train", "val"]
        ids = []
        for split in SPLITS:
            files = sorted((pc / syn / split).iterdir())
            assert len(files) == man["counts"][c][split]
            for f in files:
                assert f.suffix == ".npy" and HEX32.match(f.stem)
                arr = np.load(f)
                assert arr.shape == (2000, 3) and arr.dtype == np.float32
                assert np.isfinite(arr).all() and np.linalg.norm(arr, axis=1).max() <= 0.5 + 1e-5
                ids.append(f.stem)
        assert sorted(ids) == sorted(S.model_id(0, c, i) for i in range(10))
        assert sorted(p.name for p in (rd / syn).iterdir()) == sorted(ids)  # every model rendered
        for mid in ids:
            r = rd / syn / mid / "rendering"
            assert sorted(p.name for p in r.iterdir()) == [
                "00.png",
                "01.png",
                "rendering_metadata.txt",
                "renderings.txt",
            ]
            assert (r / "renderings.txt").read_text().split() == ["00.png", "01.png"]
            lines = (r / "rendering_metadata.txt").read_text().strip().splitlines()
            assert len(lines) == 2
            for line in lines:
                az, el, inplane, ratio, fov = (float(x) for x in line.split())
                assert 0 <= az < 360 and 15 <= el <= 35 and inplane == 0
                assert 0.8 <= ratio <= 1.0 and fov == camera.FOV_DEG
            for name in ("00.png", "01.png"):
                assert _read_png(r / name).shape == (64, 64, 4)


def test_model_ids() -> None:
    a = S.model_id(0, "chair", 3)
    assert HEX32.match(a) and a == S.model_id(0, "chair", 3)
    assert len({S.model_id(s, c, i) for s in (0, 1) for c in S.CATEGORIES for i in range(20)}) == 2 * 8 * 20


# ---------------------------------------------------------------------------------------- determinism


def test_determinism_same_seed_and_workers(root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(writer, "_POOL_MIN_SHAPES", 0)  # use the process pool even for a tiny job
    other = S.generate(tmp_path / "b", progress=False, workers=2, **SMALL)
    fa, fb = _files(root), _files(other)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].read_bytes() == fb[k].read_bytes(), k


def test_different_seed_differs(root: Path, tmp_path: Path) -> None:
    other = S.generate(tmp_path / "c", progress=False, workers=1, **{**SMALL, "seed": 1, "categories": ["mug"]})
    syn = S.CATEGORIES["mug"]
    a = sorted((root / S.PC15K_DIRNAME / syn).rglob("*.npy"))
    b = sorted((other / S.PC15K_DIRNAME / syn).rglob("*.npy"))
    assert {p.stem for p in a}.isdisjoint({p.stem for p in b})
    assert not np.allclose(np.load(a[0]), np.load(b[0]))


# ---------------------------------------------------------------------------------------- splits


def test_splits_partition(root: Path) -> None:
    for c in CATS:
        per = {s: {p.stem for p in (root / S.PC15K_DIRNAME / S.CATEGORIES[c] / s).glob("*.npy")} for s in SPLITS}
        assert [len(per[s]) for s in SPLITS] == [8, 1, 1]
        assert per["train"].isdisjoint(per["val"]) and per["train"].isdisjoint(per["test"])
        assert per["val"].isdisjoint(per["test"])
    # the assignment depends on the seed, not only on the counts
    fr = (0.8, 0.1, 0.1)
    assert writer._split_assignment(0, "chair", 50, fr) != writer._split_assignment(1, "chair", 50, fr)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 10, 33, 100, 101])
def test_split_counts(n: int) -> None:
    fr = (0.8, 0.1, 0.1)
    counts = split_counts(n, fr)
    assert sum(counts) == n and min(counts) >= 0
    if n >= 3:
        assert min(counts) >= 1
    if n >= 10:
        assert all(abs(c - n * f) <= 1 for c, f in zip(counts, fr))
    assert split_counts(100, (0.7, 0.3, 0.0)) == [70, 30, 0]


# ---------------------------------------------------------------------------------------- geometry


def test_sampling_is_area_uniform() -> None:
    parts = Parts()
    parts.box((1.0, 2.0, 3.0))
    v, f = parts.mesh()
    pts = S.sample_surface((v, f), 60000, np.random.default_rng(0)).astype(np.float64)
    half = np.array([0.5, 1.0, 1.5])
    face = np.argmin(np.abs(np.abs(pts) - half), axis=1)  # which axis the point's face is normal to
    assert np.allclose(np.abs(pts[np.arange(len(pts)), face]), half[face], atol=1e-5)
    areas = np.array([2 * 3, 1 * 3, 1 * 2], dtype=np.float64)  # faces normal to x, y, z (per side)
    frac = np.bincount(face, minlength=3) / len(pts)
    np.testing.assert_allclose(frac, areas / areas.sum(), atol=0.01)
    # and uniform inside one triangle: a quarter of the samples in the corner half-size triangle
    tri = (np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 2]]))
    p = S.sample_surface(tri, 40000, np.random.default_rng(1))
    assert abs((p[:, 0] + p[:, 1] < 0.5).mean() - 0.25) < 0.01
    assert (p[:, 0] >= -1e-7).all() and (p[:, 1] >= -1e-7).all() and (p[:, 0] + p[:, 1] <= 1 + 1e-6).all()


def test_points_lie_on_the_mesh(root: Path) -> None:
    import open3d as o3d

    for c in CATS:
        v, f = categories.shape_arrays(c, writer._rng(0, c, 0, writer._STREAM_SHAPE))
        mid = S.model_id(0, c, 0)
        (path,) = (root / S.PC15K_DIRNAME / S.CATEGORIES[c]).glob(f"*/{mid}.npy")
        pts = np.load(path)
        scene = rendering._scene(v, f)
        dist = scene.compute_distance(o3d.core.Tensor(pts)).numpy()
        assert dist.max() < 1e-4, (c, dist.max())  # Open3D computes in float32
        # the file is exactly what the public functions give
        np.testing.assert_array_equal(pts, S.sample_surface((v, f), 2000, writer._rng(0, c, 0, writer._STREAM_POINTS)))


@pytest.mark.parametrize("category", list(S.CATEGORIES))
def test_mesh_quality(category: str) -> None:
    import open3d as o3d

    rng = np.random.default_rng(0)
    extents = []
    for i in range(6):
        mesh = S.make_shape(category, writer._rng(0, category, i, writer._STREAM_SHAPE))
        assert mesh.has_triangle_normals()
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        tri = v[f]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        assert area.min() > 1e-7 * area.sum()  # no degenerate triangles
        radius = np.linalg.norm(v, axis=1)
        assert abs(radius.max() - 0.5) < 1e-9  # fits the sphere of radius 0.5, touching it
        np.testing.assert_allclose((v.min(0) + v.max(0)) / 2, 0, atol=1e-9)  # bbox centred
        extents.append(v.max(0) - v.min(0))
        # normals face outwards: rays from outside hit the front side of triangles
        o = rng.normal(size=(3000, 3))
        o = 2 * o / np.linalg.norm(o, axis=1, keepdims=True)
        d = rng.uniform(-0.3, 0.3, size=(3000, 3)) - o
        ans = rendering._scene(v, f).cast_rays(o3d.core.Tensor(np.concatenate([o, d], 1).astype(np.float32)))
        hit = np.isfinite(ans["t_hit"].numpy())
        n = ans["primitive_normals"].numpy()[hit]
        assert hit.mean() > 0.05 and (np.einsum("ij,ij->i", n, d[hit]) < 0).mean() > 0.95
    assert np.std(extents, axis=0).max() > 0.02  # real variation inside the category


def test_categories_are_distinguishable() -> None:
    """Crude shape descriptors + 1-NN already separate the categories (learned features do better)."""
    feats, labels = [], []
    for label, c in enumerate(S.CATEGORIES):
        for i in range(15):
            v, f = categories.shape_arrays(c, writer._rng(0, c, i, writer._STREAM_SHAPE))
            p = S.sample_surface((v, f), 1024, np.random.default_rng(i)).astype(np.float64)
            r = np.random.default_rng(1)
            d2 = np.linalg.norm(p[r.integers(0, 1024, 2000)] - p[r.integers(0, 1024, 2000)], axis=1)
            feats.append(
                np.concatenate(
                    [
                        np.histogram(d2, bins=16, range=(0, 1))[0] / 2000,
                        p.max(0) - p.min(0),
                        10 * np.linalg.eigvalsh(np.cov(p.T)),
                        np.histogram(p[:, 1], bins=8, range=(-0.5, 0.5))[0] / 1024,
                    ]
                )
            )
            labels.append(label)
    x, y = np.array(feats), np.array(labels)
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    assert (y[dist.argmin(1)] == y).mean() >= 0.85


# ---------------------------------------------------------------------------------------- rendering


def test_renders_are_not_blank(root: Path) -> None:
    for c in CATS:
        r = root / S.RENDERING_DIRNAME / S.CATEGORIES[c] / S.model_id(0, c, 0) / "rendering"
        a, b = _read_png(r / "00.png"), _read_png(r / "01.png")
        for img in (a, b):
            alpha = img[..., 3]
            assert set(np.unique(alpha)) == {0, 255}
            assert 0.02 < (alpha == 255).mean() < 0.9
            assert (img[alpha == 0, :3] == 255).all()  # transparent white background
            lum = img[alpha == 255, :3].astype(float).mean(-1)
            assert lum.std() > 3  # shading varies over the object
            # the object is framed: nothing touches the image border much
            assert (alpha[[0, -1], :] == 255).mean() < 0.5 and (alpha[:, [0, -1]] == 255).mean() < 0.5
        assert not np.array_equal(a, b)


def test_render_camera_convention() -> None:
    """A ball at +X shows where camera_pose/camera_intrinsics say; azimuth moves it."""
    parts = Parts()
    parts.ellipsoid((0.35, 0.0, 0.0), (0.08, 0.08, 0.08), res=16)
    parts.box((0.05, 0.05, 0.05), (0.0, 0.0, 0.0))
    v, f = parts.mesh()
    size = 96
    views = {}
    for az, el, ratio in [(0.0, 0.0, 0.9), (45.0, 20.0, 0.8), (300.0, 30.0, 1.0)]:
        img = S.render_view((v, f), az, el, ratio, image_size=size)
        views[az] = img
        eye, rot = camera.camera_pose(az, el, ratio)
        k = camera.camera_intrinsics(size)
        x, y, z = rot @ (np.array([0.35, 0.0, 0.0]) - eye)
        col, row = k[0, 2] + k[0, 0] * x / z, k[1, 2] - k[1, 1] * y / z
        ii, jj = np.nonzero(img[..., 3] == 255)
        near = (np.abs(jj + 0.5 - col) < 12) & (np.abs(ii + 0.5 - row) < 12)  # the ball's pixels
        assert near.sum() > 20
        assert abs((jj[near] + 0.5).mean() - col) < 1.5 and abs((ii[near] + 0.5).mean() - row) < 1.5
    # azimuth 0 looks from +Z: +X is on the right of the image
    jj = np.nonzero(views[0.0][..., 3] == 255)[1]
    assert jj.max() > size * 0.75
    assert not np.array_equal(views[0.0], views[45.0])
    # camera basis is orthonormal, looks at the origin, image up is world +Y projected
    eye, rot = camera.camera_pose(123.0, 25.0, 0.9)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rot[2], -eye / np.linalg.norm(eye), atol=1e-12)
    assert rot[1, 1] > 0 and abs(rot[0, 1]) < 1e-12
    np.testing.assert_allclose(np.linalg.norm(eye), 0.9 * camera.MAX_CAMERA_DISTANCE)


# ---------------------------------------------------------------------------------------- cache


def test_idempotent_and_subset(root: Path, capsys) -> None:
    before = _mtimes(root)
    assert S.is_complete(root, **SMALL)
    assert S.is_complete(root, **{**SMALL, "categories": ["mug"]})  # a subset is satisfied
    assert not S.is_complete(root, **{**SMALL, "seed": 3})
    assert not S.is_complete(root, **{**SMALL, "categories": ["mug", "lamp"]})
    assert S.generate(root, progress=True, **SMALL) == root
    assert "nothing to do" in capsys.readouterr().err
    assert S.ensure_generated(root, progress=True, **SMALL) == root
    assert "nothing to do" in capsys.readouterr().err
    S.ensure_generated(root / S.PC15K_DIRNAME, progress=False, **SMALL)  # the PC15k folder works too
    assert _mtimes(root) == before


def test_parameter_mismatch_raises(root: Path) -> None:
    before = _mtimes(root)
    with pytest.raises(ValueError, match=r"(?s)different parameters.*n_points"):
        S.generate(root, progress=False, **{**SMALL, "n_points": 1000})
    with pytest.raises(ValueError, match=re.escape(str(root))):
        S.ensure_generated(root, progress=False, **{**SMALL, "seed": 5})
    assert _mtimes(root) == before


@pytest.mark.parametrize(
    "bad",
    [
        {"n_per_category": 0},
        {"n_points": 2.5},
        {"splits": (0.5, 0.1, 0.1)},
        {"categories": ["dragon"]},
        {"seed": -1},
    ],
)
def test_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        S.generate(tmp_path / "x", progress=False, **{**SMALL, **bad})


def test_overwrite_and_extend(tmp_path: Path) -> None:
    tiny = {"n_per_category": 3, "n_points": 300, "n_views": 1, "image_size": 24, "progress": False}
    r = S.generate(tmp_path / "r", categories="mug", **tiny)
    mug = _mtimes(r / S.PC15K_DIRNAME / S.CATEGORIES["mug"])
    # extending with another category keeps the first one as it is
    S.ensure_generated(r, categories="mug,bench", **tiny)
    assert _mtimes(r / S.PC15K_DIRNAME / S.CATEGORIES["mug"]) == mug
    assert list(S.read_manifest(r)["categories"]) == ["mug", "bench"]
    assert S.is_complete(r, categories=["bench", "mug"], **{k: v for k, v in tiny.items() if k != "progress"})
    # overwrite with other parameters replaces every built-in category, keeps foreign files
    foreign = r / S.PC15K_DIRNAME / "02691156" / "train"
    foreign.mkdir(parents=True)
    (foreign / "real.npy").write_bytes(b"x")
    S.generate(r, categories="mug", overwrite=True, **{**tiny, "seed": 7})
    man = S.read_manifest(r)
    assert man["params"]["seed"] == 7 and list(man["categories"]) == ["mug"]
    assert not (r / S.PC15K_DIRNAME / S.CATEGORIES["bench"]).exists()
    assert (foreign / "real.npy").exists()
    assert (r / S.PC15K_DIRNAME / "synsetoffset2category.txt").read_text() == "mug\t90000007\n"


def test_interrupted_generation_is_never_complete(tmp_path: Path, monkeypatch) -> None:
    params = {
        "n_per_category": 3,
        "n_points": 300,
        "n_views": 1,
        "image_size": 24,
        "categories": ["chair", "table", "mug"],
    }
    real = writer._write_category
    calls = []

    def flaky(root, category, params, nthreads=0):
        if calls:  # the second category dies half-way
            tmp = Path(root) / f".tmp-{S.CATEGORIES[category]}-crash"
            (tmp / "pc" / "train").mkdir(parents=True)
            np.save(tmp / "pc" / "train" / "half.npy", np.zeros((3, 3), np.float32))
            raise RuntimeError("killed")
        calls.append(category)
        return real(root, category, params, nthreads)

    monkeypatch.setattr(writer, "_write_category", flaky)
    r = tmp_path / "r"
    with pytest.raises(RuntimeError, match="killed"):
        S.generate(r, progress=False, **params)
    assert not S.is_complete(r, **params) and S.read_manifest(r) is None
    pc = r / S.PC15K_DIRNAME
    assert sorted(p.name for p in pc.iterdir()) == [S.CATEGORIES["chair"]]  # only whole categories
    assert not list(r.glob(".tmp-*"))
    chair = _mtimes(pc / S.CATEGORIES["chair"])

    # a hard kill leaves temporary folders and maybe a category moved in without its renderings
    (r / ".tmp-90000003-zz" / "pc").mkdir(parents=True)
    (pc / S.CATEGORIES["mug"] / "train").mkdir(parents=True)
    monkeypatch.setattr(writer, "_write_category", real)
    assert not S.is_complete(r, **params)
    S.ensure_generated(r, progress=False, **params)
    assert S.is_complete(r, **params)
    assert not list(r.glob(".tmp-*")) and not (r / lock.PARTS_DIRNAME).exists()
    assert _mtimes(pc / S.CATEGORIES["chair"]) == chair  # the finished category was reused
    assert len(list((pc / S.CATEGORIES["mug"]).rglob("*.npy"))) == 3


# ---------------------------------------------------------------------------------------- CLI


def test_cli_generate(tmp_path: Path, capsys) -> None:
    from pc3d.cli.data import main

    r = tmp_path / "cli"
    argv = ["generate", "--root", str(r), "--per-category", "4", "--points", "500", "--views", "1"]
    argv += ["--image-size", "32", "--categories", "mug,bench", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert str(r.resolve()) in out and "time:" in out and "MiB" in out
    assert re.search(r"^mug\s+90000007\s+2\s+1\s+1\s+4$", out, re.M), out
    assert re.search(r"^bench\s+90000008\s+2\s+1\s+1\s+4$", out, re.M), out
    assert re.search(r"^total\s+4\s+2\s+2\s+8$", out, re.M), out
    before = _mtimes(r)
    assert main(argv) == 0 and _mtimes(r) == before
    assert main([*argv, "--seed", "9"]) == 2
    assert "different parameters" in capsys.readouterr().err
    assert main([]) == 2


def test_cli_module_help() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pc3d.cli.data", "generate", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        timeout=60,
    )
    assert res.returncode == 0 and "--per-category" in res.stdout


def test_no_views_writes_no_renderings(tmp_path: Path) -> None:
    tiny = {"n_per_category": 3, "n_points": 300, "image_size": 24, "categories": "bench", "progress": False}
    r = S.generate(tmp_path / "r", n_views=1, **tiny)
    assert (r / S.RENDERING_DIRNAME / S.CATEGORIES["bench"]).is_dir()
    S.generate(r, n_views=0, overwrite=True, **tiny)
    assert S.is_complete(r, n_views=0, **{k: v for k, v in tiny.items() if k != "progress"})
    assert not (r / S.RENDERING_DIRNAME / S.CATEGORIES["bench"]).exists()
    assert not (r / S.RENDERING_DIRNAME / "synsetoffset2category.txt").exists()
    assert len(list((r / S.PC15K_DIRNAME).rglob("*.npy"))) == 3
