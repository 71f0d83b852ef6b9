"""Headless renders: not blank, deterministic, same camera as the data set, grids, GIFs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.viz import render as R

BACKENDS = ["numpy", "open3d"]


def _backend(name: str, open3d_backend: bool) -> str:
    if name == "open3d" and not open3d_backend:
        pytest.skip("Open3D OffscreenRenderer not available here")
    return name


def _ink(img: np.ndarray) -> np.ndarray:
    return (img.astype(int).sum(-1) < 3 * 250)


def test_backend_is_detected_and_named(open3d_backend, monkeypatch):
    assert R.render_backend() in R.BACKENDS
    monkeypatch.setenv("PC3D_RENDER_BACKEND", "numpy")
    assert R.render_backend() == "numpy"
    with pytest.raises(ValueError, match="backend must be"):
        R.render_backend("vulkan")


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_is_not_blank_and_deterministic(backend, chair_cloud, open3d_backend):
    backend = _backend(backend, open3d_backend)
    a = R.render_cloud(chair_cloud, image_size=96, backend=backend)
    b = R.render_cloud(torch.from_numpy(chair_cloud).float(), image_size=96, backend=backend)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    ink = _ink(a)
    assert 0.03 < ink.mean() < 0.6, ink.mean()  # an object, not an empty or flooded frame
    assert a[ink].std() > 5  # coloured by height: not one flat colour
    assert (a[~ink] >= 250).all()  # white background
    c = R.render_cloud(chair_cloud.astype(np.float32), image_size=96, backend=backend)
    assert np.array_equal(a, c)  # same camera, same pixels
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float32 tensor input: same picture
    d = R.render_cloud(chair_cloud, image_size=96, backend=backend, camera=R.Camera(azimuth=125))
    assert not np.array_equal(a, d)


def test_backends_agree_on_the_camera(chair_cloud, open3d_backend):
    if not open3d_backend:
        pytest.skip("Open3D OffscreenRenderer not available here")
    a = _ink(R.render_cloud(chair_cloud, image_size=96, backend="numpy", depth_cue=0))
    b = _ink(R.render_cloud(chair_cloud, image_size=96, backend="open3d", depth_cue=0))
    ca = np.argwhere(a).mean(0)
    cb = np.argwhere(b).mean(0)
    assert np.abs(ca - cb).max() < 1.5, (ca, cb)
    assert (a & b).sum() / (a | b).sum() > 0.6


def test_same_camera_as_the_dataset_renderings():
    """Dense points of a mesh rendered by the cloud renderer cover the data set's ray-cast silhouette."""
    from pc3d.data.synthetic import make_shape, render_view, sample_surface

    mesh = make_shape("table", np.random.default_rng(1))
    pts = sample_surface(mesh, 20000, np.random.default_rng(2)).astype(np.float64)
    view = dict(azimuth=60.0, elevation=30.0, distance_ratio=0.9)
    sil = render_view(mesh, **view, image_size=64)[..., 3] > 0
    cam = R.Camera(**view)
    img = R.render_cloud(pts, image_size=64, camera=cam, fit="none", point_size=1.5, backend="numpy", depth_cue=0)
    ink = _ink(img)
    assert (sil & ink).sum() / (sil | ink).sum() > 0.8
    col, row, z = cam.project(np.zeros((1, 3)), 64)
    assert np.allclose([col[0], row[0]], 32.0) and z[0] > 0  # the origin is in the centre


def test_point_colors():
    pts = np.c_[np.zeros(8), np.arange(8.0), np.zeros(8)]
    h = R.point_colors(pts, "height")
    assert h.shape == (8, 3) and (0 <= h).all() and (h <= 1).all()
    assert not np.allclose(h[0], h[-1])
    br = R.point_colors(pts, "branch", n_branches=4)
    assert [len({tuple(c) for c in br[i:i + 2]}) for i in range(0, 8, 2)] == [1, 1, 1, 1]
    assert len({tuple(c) for c in br}) == 4
    assert np.allclose(R.point_colors(pts, (1, 0, 0)), [1, 0, 0])
    with pytest.raises(ValueError, match="n_branches"):
        R.point_colors(pts, "branch")
    with pytest.raises(ValueError, match=r"\(8, 3\)"):
        R.point_colors(pts, np.zeros((3, 3)))


def test_bad_shapes_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        R.render_cloud(np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        R.render_clouds(np.zeros((2, 10, 4)))
    with pytest.raises(ValueError, match="empty"):
        R.render_cloud(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        R.render_cloud(np.full((5, 3), np.nan))


def test_grid_size_captions_and_image_rows(chair_cloud):
    clouds = np.stack([chair_cloud, chair_cloud * 0.5, chair_cloud[::-1]])
    g = R.render_grid(clouds, image_size=48, backend="numpy")
    assert g.shape == (48, 3 * 48, 3)
    g = R.render_grid(clouds, ncols=2, captions=["a", "b", "c"], image_size=48, caption_size=10, backend="numpy")
    assert g.shape == (2 * (48 + 16), 2 * 48, 3)
    rows = {"image": torch.rand(3, 3, 20, 30), "input": clouds, "recon": clouds + 0.01}
    g = R.render_grid(rows, captions=[["x"] * 3] * 3, image_size=40, caption_size=10, backend="numpy")
    assert g.shape == (3 * (40 + 16), 40 // 2 + 3 * 40, 3)
    # fit="column": the half-size copy is drawn smaller than the chair above it, not refitted
    g = R.render_grid([[chair_cloud], [chair_cloud * 0.5]], image_size=48, backend="numpy")
    assert _ink(g[48:]).sum() < 0.6 * _ink(g[:48]).sum()
    # captions draw text: the caption strip is not blank
    g = R.render_grid(clouds, captions=["chair", "small", "rev"], image_size=48, caption_size=10, backend="numpy")
    assert _ink(g[48:]).any()


def test_turntable_gif(chair_cloud, tmp_path):
    from PIL import Image

    frames = R.turntable(chair_cloud, n_frames=6, image_size=48, backend="numpy")
    assert len(frames) == 6 and all(f.shape == (48, 48, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[3])
    path = R.save_gif(frames, tmp_path / "t.gif", fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (48, 48)
    png = R.save_png(frames[0], tmp_path / "f.png")
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), frames[0])
    assert not list(tmp_path.glob(".*"))  # no temporary files left
