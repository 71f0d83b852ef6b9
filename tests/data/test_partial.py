"""Partial inputs of the built-in set (pc3d.data.partial): depth scans, ball holes, noise, the writer
and reader, and ``pc3d-data partial``.

The acceptance check: every point of a scan lies on the mesh surface (Open3D's distance < 1e-5) and
on a triangle facing the camera (normal from the closest triangle, not from the scan), and nothing
occludes it (a ray from the eye hits it first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from pc3d.data import partial as P
from pc3d.data.partial import (
    PARTIAL_DIR,
    PARTIAL_KINDS,
    add_noise,
    ball_hole,
    depth_scan,
    random_ball_hole,
    random_camera,
    read_partial_set,
    write_partial_set,
)
from pc3d.data.synthetic import read_manifest

# ----------------------------------------------------------------------------- helpers


def _scene(v, f):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    return scene


def _face_normals(v, f):
    t = v[f]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _segment_dist(p, a, b):
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / (ab * ab).sum(1), 0.0, 1.0)
    return np.linalg.norm(a + t[:, None] * ab - p, axis=1)


def _exact_distance(p, v, f):
    """float64 brute-force distance from one point (3,) to a triangle mesh: the plane distance where the
    projection falls inside a triangle, else the distance to its nearest edge; min over triangles."""
    t = v[f].astype(np.float64)
    n = _face_normals(v, f)
    h = ((p - t[:, 0]) * n).sum(1)
    q = p - h[:, None] * n
    inside = np.ones(len(t), bool)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        inside &= (np.cross(t[:, b] - t[:, a], q - t[:, a]) * n).sum(1) >= 0
    edges = np.min([_segment_dist(p, t[:, a], t[:, b]) for a, b in ((0, 1), (1, 2), (2, 0))], axis=0)
    return float(np.where(inside, np.abs(h), edges).min())


def assert_on_surface(points, v, f, scene=None, tol=1e-5):
    """Every point within ``tol`` of the mesh: Open3D's distance, and where its float32 arithmetic is off
    (sliver triangles, up to ~2e-5) the exact float64 distance decides."""
    points = np.asarray(points, dtype=np.float32)
    scene = _scene(v, f) if scene is None else scene
    dist = scene.compute_distance(o3d.core.Tensor(points)).numpy()
    assert dist.max() < 1e-4, f"a point is {dist.max():.2e} off the mesh"
    for k in np.flatnonzero(dist >= tol):
        exact = _exact_distance(points[k].astype(np.float64), v, f)
        assert exact < tol, f"point {points[k]} is {exact:.2e} off the mesh"


def _on_facing_triangle(p, eye, v, f, tol=1e-5):
    """Brute force: is ``p`` on some triangle (plane distance < tol, inside up to tol) facing ``eye``?"""
    t = v[f].astype(np.float64)
    n = _face_normals(v, f)
    on_plane = np.abs(((p - t[:, 0]) * n).sum(1)) < tol
    e0, e1, w = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0], p - t[:, 0]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = (w * e0).sum(1), (w * e1).sum(1)
    den = d00 * d11 - d01 * d01
    b1 = (d11 * d20 - d01 * d21) / den
    b2 = (d00 * d21 - d01 * d20) / den
    inside = (b1 >= -1e-4) & (b2 >= -1e-4) & (b1 + b2 <= 1 + 1e-4)
    facing = (n * (eye - p)).sum(1) > 0
    return bool(np.any(on_plane & inside & facing))


def assert_visible_surface(points, v, f, eye):
    """Acceptance: on the surface, on a triangle facing the camera, and the first thing seen from the eye."""
    points = np.asarray(points, dtype=np.float32)
    scene = _scene(v, f)
    q = o3d.core.Tensor(points)
    assert_on_surface(points, v, f, scene)
    pid = scene.compute_closest_points(q)["primitive_ids"].numpy()
    normals = _face_normals(v, f)[pid]
    facing = (normals * (eye[None] - points.astype(np.float64))).sum(1) > 0
    for k in np.flatnonzero(~facing):  # closest triangle ambiguous (coincident faces): brute force
        assert _on_facing_triangle(points[k].astype(np.float64), eye, v, f), f"point {points[k]} faces away"
    # nothing occludes a point: the ray from the eye towards it first hits the mesh at it
    d = points.astype(np.float64) - eye
    length = np.linalg.norm(d, axis=1)
    rays = np.concatenate([np.broadcast_to(eye, d.shape), d / length[:, None]], axis=1).astype(np.float32)
    t_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    assert np.all(t_hit > length - 1e-4), "a scan point is hidden behind another surface"


def _box(h=0.3):
    """A closed axis-aligned cube [-h, h]^3, outward-facing triangles."""
    mesh = o3d.geometry.TriangleMesh.create_box(2 * h, 2 * h, 2 * h).translate((-h, -h, -h))
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    c = v[f].mean(1)
    assert np.all((_face_normals(v, f) * c).sum(1) > 0)  # outward
    return v, f


@pytest.fixture(scope="module")
def builtin_copy(tiny_builtin, tmp_path_factory) -> Path:
    """A private copy of the tiny built-in root (the session one stays untouched)."""
    root = tmp_path_factory.mktemp("partial") / "pc3d_synthetic"
    shutil.copytree(tiny_builtin, root, ignore=shutil.ignore_patterns("ShapeNetRendering"))
    return root


@pytest.fixture(scope="module")
def written(builtin_copy) -> Path:
    write_partial_set(builtin_copy, kinds=("scan", "hole"), splits=("test",), noise=(0.0, 0.01), n_points=512)
    return builtin_copy


def _test_shapes(root):
    man = read_manifest(root)
    return list(P._builtin_shapes(root, man, ["test"])), int(man["params"]["seed"])


# ----------------------------------------------------------------------------- mesh replay


def test_rebuilt_mesh_matches_stored_complete_cloud(builtin_copy):
    shapes, seed = _test_shapes(builtin_copy)
    assert len(shapes) == 8  # one test shape per category in the tiny set
    for c, synset, i, mid, split in shapes:
        stored = np.load(builtin_copy / "ShapeNetCore.v2.PC15k" / synset / split / f"{mid}.npy")
        v, f = P._builtin_mesh(seed, c, i)
        assert_on_surface(stored, v, f)
        # a different shape of the same category does not fit this cloud
        v2, f2 = P._builtin_mesh(seed, c, (i + 1) % 5)
        assert _scene(v2, f2).compute_distance(o3d.core.Tensor(stored)).numpy().max() > 1e-3


# ----------------------------------------------------------------------------- depth_scan


def test_depth_scan_of_builtin_shapes_is_the_visible_surface(builtin_copy):
    shapes, seed = _test_shapes(builtin_copy)
    rng = np.random.default_rng(3)
    for c, _, i, _, _ in shapes:
        v, f = P._builtin_mesh(seed, c, i)
        eye = random_camera(rng)
        pts = depth_scan(v, f, eye, n_points=1024, rng=rng)
        assert pts.shape == (1024, 3) and pts.dtype == np.float32
        assert_visible_surface(pts, v, f, eye)


@pytest.mark.parametrize(
    ("eye", "seen"),
    [
        ((2.0, 1.5, 3.0), {(0, 1), (1, 1), (2, 1)}),  # +x, +y, +z faces
        ((0.0, 0.0, 3.0), {(2, 1)}),
        ((0.0, -2.5, 0.0), {(1, -1)}),  # straight up from below: the up vector falls back to +Z
        ((-3.0, 0.0, -0.5), {(0, -1), (2, -1)}),
    ],
)
def test_box_scan_covers_only_the_faces_seen(eye, seen):
    h = 0.3
    v, f = _box(h)
    eye = np.array(eye)
    pts = depth_scan(v, f, eye, n_points=None).astype(np.float64)
    assert len(pts) > 1000
    on_face = {(ax, s): np.abs(pts[:, ax] - s * h) < 1e-5 for ax in range(3) for s in (-1, 1)}
    assert np.all(np.any(np.stack(list(on_face.values())), axis=0))  # every point on some face
    for face, mask in on_face.items():
        if face in seen:
            assert mask.sum() > 50, face
        else:  # an unseen face holds no point except on its edges shared with a seen face
            interior = mask & np.all(np.abs(np.delete(pts, face[0], axis=1)) < h - 1e-4, axis=1)
            assert interior.sum() == 0, face
    if len(seen) == 1:  # the one face seen is seen whole
        (ax, s), = seen
        other = np.delete(pts, ax, axis=1)
        assert np.all(other.min(0) < -h + 0.02) and np.all(other.max(0) > h - 0.02)
    assert_visible_surface(pts, v, f, eye)


def test_depth_scan_resampling():
    v, f = _box()
    eye = np.array([1.0, 0.8, 1.5])
    hits = depth_scan(v, f, eye, width=40, height=40, n_points=None)
    assert 50 < len(hits) < 1600
    rows = {tuple(r) for r in hits}
    fewer = depth_scan(v, f, eye, width=40, height=40, n_points=len(hits) // 2, rng=np.random.default_rng(1))
    assert len({tuple(r) for r in fewer}) == len(fewer) and {tuple(r) for r in fewer} <= rows  # no repeats
    more = depth_scan(v, f, eye, width=40, height=40, n_points=3 * len(hits), rng=np.random.default_rng(1))
    assert len(more) == 3 * len(hits) and {tuple(r) for r in more} <= rows  # repeats only when needed
    again = depth_scan(v, f, eye, width=40, height=40, n_points=len(hits) // 2, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(fewer, again)
    # the default rng is deterministic
    np.testing.assert_array_equal(depth_scan(v, f, eye, n_points=100), depth_scan(v, f, eye, n_points=100))


def test_random_camera_ranges():
    rng = np.random.default_rng(0)
    eyes = np.stack([random_camera(rng) for _ in range(500)])
    d = np.linalg.norm(eyes, axis=1)
    elev = np.degrees(np.arcsin(eyes[:, 1] / d))
    assert d.min() >= 1.2 and d.max() <= 2.0 and elev.min() >= -10 - 1e-9 and elev.max() <= 45 + 1e-9
    az = np.degrees(np.arctan2(eyes[:, 0], eyes[:, 2])) % 360
    assert np.histogram(az, bins=4, range=(0, 360))[0].min() > 80  # every side is seen
    np.testing.assert_array_equal(random_camera(np.random.default_rng(5)), random_camera(np.random.default_rng(5)))


# ----------------------------------------------------------------------------- holes and noise


def test_ball_hole_against_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    center, radius = np.array([0.1, -0.2, 0.3]), 0.6
    expected = [p for p in pts if sum((float(a) - b) ** 2 for a, b in zip(p, center)) ** 0.5 >= radius]
    out = ball_hole(pts, center, radius)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array(expected))
    np.testing.assert_array_equal(ball_hole(pts, center, 0.0), pts)


def test_random_ball_hole_removes_the_drawn_fraction():
    pts = np.random.default_rng(1).normal(size=(1000, 3))
    kept, center, radius = random_ball_hole(pts, np.random.default_rng(7), frac=(0.2, 0.3))
    ref = np.random.default_rng(7)  # replay the draws: centre index, then the fraction
    c_ref = pts[ref.integers(1000)]
    k = round(ref.uniform(0.2, 0.3) * 1000)
    np.testing.assert_array_equal(center, c_ref)
    assert len(kept) == 1000 - k
    d = np.linalg.norm(pts - center, axis=1)
    assert np.sort(d)[k - 1] < radius < np.sort(d)[k]
    np.testing.assert_array_equal(kept, pts[d >= radius])
    np.testing.assert_array_equal(kept, ball_hole(pts, center, radius))


def test_add_noise_against_reference():
    pts = np.random.default_rng(2).uniform(-0.5, 0.5, (20000, 3)).astype(np.float32)
    out = add_noise(pts, 0.01, np.random.default_rng(4))
    ref = (pts.astype(np.float64) + 0.01 * np.random.default_rng(4).standard_normal((20000, 3))).astype(np.float32)
    assert out.dtype == np.float32 and out.shape == pts.shape
    np.testing.assert_array_equal(out, ref)
    diff = out.astype(np.float64) - pts
    assert abs(diff.std() - 0.01) < 3e-4 and abs(diff.mean()) < 3e-4
    assert abs(np.corrcoef(diff[:, 0], diff[:, 1])[0, 1]) < 0.03  # isotropic, independent axes
    np.testing.assert_array_equal(add_noise(pts, 0.0, np.random.default_rng(4)), pts)


# ----------------------------------------------------------------------------- writer and reader


def test_written_scans_are_the_visible_surface(written):
    items = read_partial_set(written, "scan", "test", noise=0.0)
    assert len(items) == 8
    seed = read_manifest(written)["params"]["seed"]
    for it in items:
        v, f = P._builtin_mesh(seed, it.category, it.meta["index"])
        assert it.partial.shape == (512, 3) and it.partial.dtype == np.float32
        assert len(np.unique(it.partial, axis=0)) == 512  # enough rays hit: no repeated points
        assert_visible_surface(it.partial, v, f, np.array(it.meta["eye"]))
        assert it.meta["target"] == [0.0, 0.0, 0.0] and it.meta["n_hits"] >= 512


def test_written_holes_lie_on_the_mesh_outside_the_ball(written):
    seed = read_manifest(written)["params"]["seed"]
    for it in read_partial_set(written, "hole", "test"):
        v, f = P._builtin_mesh(seed, it.category, it.meta["index"])
        assert_on_surface(it.partial, v, f)
        d = np.linalg.norm(it.partial - np.array(it.meta["center"]), axis=1)
        assert d.min() >= it.meta["radius"] - 1e-6
        assert 0.15 - 1e-3 <= it.meta["frac"] <= 0.35 + 1e-3
        # the hole is real: the complete cloud has points inside the ball
        assert (np.linalg.norm(it.complete - np.array(it.meta["center"]), axis=1) < it.meta["radius"]).sum() > 0


def test_layout_round_trip(written):
    out = written / PARTIAL_DIR
    assert sorted(p.name for p in out.iterdir()) == ["hole", "hole_noise0.01", "scan", "scan_noise0.01"]
    shapes, _ = _test_shapes(written)
    for name in ("scan", "scan_noise0.01", "hole", "hole_noise0.01"):
        files = sorted(out.glob(f"{name}/*/*/*.npy"))
        assert len(files) == 8 and all(p.parent.name == "test" for p in files)
        assert {(p.parent.parent.name, p.stem) for p in files} == {(s[1], s[3]) for s in shapes}
    for kind in PARTIAL_KINDS:
        clean = read_partial_set(written, kind, "test")
        noisy = read_partial_set(written, kind, "test", noise=0.01)
        for a, b in zip(clean, noisy):
            assert (a.synset, a.model_id) == (b.synset, b.model_id)
            np.testing.assert_array_equal(a.partial, np.load(out / kind / a.synset / "test" / f"{a.model_id}.npy"))
            np.testing.assert_array_equal(
                a.complete, np.load(written / "ShapeNetCore.v2.PC15k" / a.synset / "test" / f"{a.model_id}.npy")
            )
            assert a.meta["noise"] == 0.0 and b.meta["noise"] == 0.01
            # the same scan / hole, noise added on top
            diff = b.partial.astype(np.float64) - a.partial
            assert 0.008 < diff.std() < 0.012
            keys = ("eye",) if kind == "scan" else ("center", "radius")
            assert all(a.meta[k] == b.meta[k] for k in keys)


def test_writing_another_split_adds_to_the_variant(builtin_copy, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(builtin_copy, root, ignore=shutil.ignore_patterns(PARTIAL_DIR))
    write_partial_set(root, kinds="hole", splits="test", n_points=64)
    first = (root / PARTIAL_DIR / "hole" / "meta.json").read_text()
    write_partial_set(root, kinds="hole", splits="val", n_points=64)
    assert len(read_partial_set(root, "hole", "test")) == 8 and len(read_partial_set(root, "hole", "val")) == 8
    write_partial_set(root, kinds="hole", splits="test", n_points=64)  # rewriting a split keeps the other
    assert len(read_partial_set(root, "hole", "val")) == 8
    write_partial_set(root, kinds="hole", splits="test", n_points=32)  # other params: the variant is replaced
    assert len(read_partial_set(root, "hole", "test")[0].partial) == 32
    with pytest.raises(ValueError, match="split 'val' was not written"):
        read_partial_set(root, "hole", "val")
    assert "val" not in first


def test_same_seed_writes_identical_bytes(builtin_copy, tmp_path):
    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        shutil.copytree(builtin_copy, root, ignore=shutil.ignore_patterns(PARTIAL_DIR))
        write_partial_set(root, kinds=("scan", "hole"), noise=(0, 0.02), n_points=128, seed=3)
        roots.append(root / PARTIAL_DIR)
    files = sorted(p.relative_to(roots[0]) for p in roots[0].rglob("*") if p.is_file())
    assert len(files) == 4 * 9 and files == sorted(p.relative_to(roots[1]) for p in roots[1].rglob("*") if p.is_file())
    for rel in files:
        assert (roots[0] / rel).read_bytes() == (roots[1] / rel).read_bytes(), rel
    write_partial_set(roots[1].parent, kinds="scan", n_points=128, seed=4)  # another seed: other cameras
    a = read_partial_set(roots[0].parent, "scan", "test")[0]
    b = read_partial_set(roots[1].parent, "scan", "test")[0]
    assert a.meta["eye"] != b.meta["eye"] and not np.array_equal(a.partial, b.partial)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ball_hole(np.zeros((0, 3)), (0, 0, 0), 0.1), "empty"),
        (lambda: ball_hole(np.array([[0, 0, np.nan]]), (0, 0, 0), 0.1), "NaN"),
        (lambda: ball_hole(np.zeros((5, 2)), (0, 0, 0), 0.1), r"shape \(N, 3\)"),
        (lambda: ball_hole(np.zeros((5, 3)), (0, 0), 0.1), r"center.*\(3,\)"),
        (lambda: ball_hole(np.zeros((5, 3)), (0, 0, 0), -1), "radius"),
        (lambda: add_noise(np.zeros((0, 3)), 0.1, np.random.default_rng()), "empty"),
        (lambda: add_noise(np.full((4, 3), np.inf), 0.1, np.random.default_rng()), "NaN or infinite"),
        (lambda: add_noise(np.zeros((2, 4, 3)), 0.1, np.random.default_rng()), r"shape \(N, 3\)"),
        (lambda: add_noise(np.zeros((4, 3)), -0.1, np.random.default_rng()), "sigma"),
        (lambda: random_ball_hole(np.zeros((1, 3)), np.random.default_rng()), "N >= 2"),
        (lambda: random_ball_hole(np.zeros((9, 3)), np.random.default_rng(), frac=(0.5, 0.2)), "frac"),
        (lambda: depth_scan(*_box(), (0, 0, 0.3 + 1), n_points=0), "n_points"),
        (lambda: depth_scan(np.zeros((0, 3)), np.zeros((0, 3), int), (0, 0, 2)), "vertices"),
        (lambda: depth_scan(_box()[0], _box()[1] + 100, (0, 0, 2)), "indices"),
        (lambda: depth_scan(_box()[0] * np.nan, _box()[1], (0, 0, 2)), "NaN"),
        (lambda: depth_scan(*_box(), (0, 0, np.nan)), "eye"),
        (lambda: depth_scan(*_box(), (0, 0, 0)), "eye and target must differ"),
        (lambda: depth_scan(*_box(), (0, 0, 2), target=(0, 0, 5)), "out of view"),
        (lambda: P.variant_name("crop"), "unknown partial kind"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_roots_and_arguments(written, tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "ShapeNetCore.v2.PC15k" / "02691156" / "test").mkdir(parents=True)
    np.save(foreign / "ShapeNetCore.v2.PC15k" / "02691156" / "test" / "a.npy", np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="not a complete built-in pc3d data set"):
        write_partial_set(foreign)
    with pytest.raises(ValueError, match="no such folder"):
        write_partial_set(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown partial kind"):
        write_partial_set(written, kinds="scan,crop")
    with pytest.raises(ValueError, match="unknown split"):
        write_partial_set(written, splits="testing")
    with pytest.raises(ValueError, match="noise"):
        write_partial_set(written, noise="0,-1")
    with pytest.raises(ValueError, match="n_points"):
        write_partial_set(written, n_points=0)
    with pytest.raises(ValueError, match="unknown partial kind"):
        read_partial_set(written, "crop", "test")
    with pytest.raises(ValueError, match="unknown split"):
        read_partial_set(written, "scan", "dev")
    with pytest.raises(ValueError, match=r"noise levels written for 'scan': \[0.0, 0.01\]"):
        read_partial_set(written, "scan", "test", noise=0.05)
    with pytest.raises(ValueError, match="split 'train' was not written"):
        read_partial_set(written, "scan", "train")
    with pytest.raises(ValueError, match="no partial set of kind 'scan'"):
        read_partial_set(foreign, "scan", "test")


def test_stored_cloud_off_its_mesh_is_refused(builtin_copy, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(builtin_copy, root, ignore=shutil.ignore_patterns(PARTIAL_DIR))
    (c, synset, i, mid, split), = [s for s in _test_shapes(root)[0] if s[0] == "mug"]
    path = root / "ShapeNetCore.v2.PC15k" / synset / split / f"{mid}.npy"
    np.save(path, np.load(path) * 1.01)
    with pytest.raises(ValueError, match="away from the mesh rebuilt"):
        write_partial_set(root, kinds="scan")
    np.save(path, np.full((10, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        write_partial_set(root, kinds="scan")


# ----------------------------------------------------------------------------- CLI


def test_cli_partial(builtin_copy, tmp_path, capsys):
    from pc3d.cli.data import main

    root = tmp_path / "r"
    shutil.copytree(builtin_copy, root, ignore=shutil.ignore_patterns(PARTIAL_DIR))
    code = main(["partial", "--root", str(root), "--kinds", "scan,hole", "--splits", "test,val",
                 "--noise", "0,0.01", "--points", "64", "--seed", "0", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert str((root / PARTIAL_DIR).resolve()) in out and "time:" in out
    for name in ("scan", "scan_noise0.01", "hole", "hole_noise0.01"):
        assert name in out
    assert len(read_partial_set(root, "scan", "val", noise=0.01)) == 8
    code = main(["partial", "--root", str(tmp_path / "nothing"), "--quiet"])
    assert code == 2 and "no such folder" in capsys.readouterr().err
    code = main(["partial", "--root", str(root), "--kinds", "crop", "--quiet"])
    assert code == 2 and "unknown partial kind" in capsys.readouterr().err


def test_exact_distance_reference():
    """The float64 reference used above, on hand-checkable cases."""
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = np.array([[0, 1, 2]])
    assert _exact_distance(np.array([0.2, 0.2, 0.5]), v, f) == pytest.approx(0.5)  # above the face
    assert _exact_distance(np.array([-1.0, 0.5, 0.0]), v, f) == pytest.approx(1.0)  # beside an edge
    assert _exact_distance(np.array([2.0, 0.0, 0.0]), v, f) == pytest.approx(1.0)  # beyond a vertex
    assert _exact_distance(np.array([1.0, 1.0, 0.0]), v, f) == pytest.approx(np.sqrt(0.5))  # off the hypotenuse


def test_visibility_check_rejects_hidden_and_off_surface_points():
    """The acceptance check itself can fail: points on the far side of a box, or off it, are refused."""
    h = 0.3
    v, f = _box(h)
    eye = np.array([0.0, 0.0, 3.0])
    far = np.array([[0.0, 0.0, -h], [0.1, -0.1, -h]])  # on the back face: faces away and is hidden
    with pytest.raises(AssertionError):
        assert_visible_surface(far, v, f, eye)
    with pytest.raises(AssertionError):
        assert_visible_surface(np.array([[0.0, 0.0, h + 1e-3]]), v, f, eye)
    assert_visible_surface(np.array([[0.0, 0.0, h], [0.1, -0.1, h]]), v, f, eye)
