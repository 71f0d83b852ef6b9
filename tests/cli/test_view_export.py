"""pc3d-view and pc3d-export: headless PNG/GIF output, clear errors, mesh files that load back."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
from PIL import Image

from pc3d.cli.export import main as export_main
from pc3d.cli.view import main as view_main


@pytest.fixture()
def clouds(tmp_path):
    from pc3d.data.synthetic import make_shape, sample_surface

    pts = [sample_surface(make_shape(c, np.random.default_rng(i)), 512, np.random.default_rng(i)).astype(np.float32)
           for i, c in enumerate(["chair", "mug", "lamp"])]
    np.save(tmp_path / "one.npy", pts[0])
    np.save(tmp_path / "many.npy", np.stack(pts))
    return tmp_path


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("PC3D_RENDER_BACKEND", "numpy")


def test_view_without_display_writes_png_and_says_where(clouds, capsys, monkeypatch):
    monkeypatch.chdir(clouds)
    assert view_main([str(clouds / "one.npy"), "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "no display, wrote" in out and str(clouds / "one.png") in out
    with Image.open(clouds / "one.png") as im:
        assert im.size == (64, 64 + 16)  # one cell + caption strip (10 px font + 6)


def test_view_many_clouds_grid_and_gif(clouds, tmp_path):
    out = str(tmp_path / "g.png")
    assert view_main([str(clouds / "many.npy"), "--index", "0:2", "--size", "48", "--out", out]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.size[0] == 2 * 48
    assert view_main([str(clouds / "many.npy"), "--gif", "--frames", "4", "--size", "32",
                      "--out", str(tmp_path / "t.gif")]) == 0
    with Image.open(tmp_path / "t.gif") as im:
        assert im.n_frames == 4


@pytest.mark.parametrize("content,expect", [
    (np.zeros((5, 2)), r"bad\.npy: expected a cloud of shape \(N, 3\)"),
    (np.zeros((0, 3)), r"bad\.npy: the cloud is empty"),
    (b"", r"bad\.npy: not a readable"),
])
def test_view_errors_name_file_and_shape(tmp_path, capsys, content, expect):
    import re

    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    assert view_main([str(path)]) == 2
    assert re.search(expect, capsys.readouterr().err)


def test_view_missing_file(tmp_path, capsys):
    assert view_main([str(tmp_path / "nope.ply")]) == 2
    assert "nope.ply: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("suffix,extra", [(".glb", ["--z-up"]), (".obj", []), (".ply", ["--method", "ball-pivoting"])])
def test_export_mesh_round_trip(clouds, tmp_path, suffix, extra, capsys):
    out = tmp_path / f"m{suffix}"
    assert export_main([str(clouds / "many.npy"), str(out), "--index", "1", *extra]) == 0
    assert "triangles" in capsys.readouterr().out
    mesh = o3d.io.read_triangle_mesh(str(out))
    assert len(mesh.triangles) > 100


def test_export_poisson_preview_and_points(clouds, tmp_path):
    assert export_main([str(clouds / "one.npy"), str(tmp_path / "p.ply"), "--method", "poisson", "--depth", "6",
                        "--preview", str(tmp_path / "p.png"), "--preview-size", "64"]) == 0
    with Image.open(tmp_path / "p.png") as im:
        a = np.asarray(im.convert("RGB"))
    assert a.shape == (64, 64, 3) and (a.sum(-1) < 700).mean() > 0.05  # the mesh is visible
    assert export_main([str(clouds / "one.npy"), str(tmp_path / "c.ply"), "--method", "points"]) == 0
    pcd = o3d.io.read_point_cloud(str(tmp_path / "c.ply"))
    assert len(pcd.points) == 512 and pcd.has_colors()


# What Blender's default importer does to a file's coordinates, per format (see pc3d/export.py,
# BLENDER_Y_UP_FORMATS, for the sources): OBJ (forward -Z, up Y) and glTF (Y up) are converted to Blender's
# Y forward / Z up, i.e. the file's (x, y, z) lands at (x, -z, y); PLY is taken as it is.
_Y_UP_TO_BLENDER = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
BLENDER_IMPORT = {".ply": np.eye(3), ".obj": _Y_UP_TO_BLENDER, ".glb": _Y_UP_TO_BLENDER}


@pytest.mark.parametrize("suffix,method", [(".ply", "points"), (".ply", "alpha"), (".obj", "alpha"),
                                           (".glb", "alpha")])
def test_export_z_up_stands_upright_in_blender(tmp_path, suffix, method, capsys):
    """A tall thin column along the data's up axis (+Y, from 0 to 1), standing in front (+Z = 0.3), comes
    in along Blender's +Z, foot at 0, top at 1, in front (-Y), after Blender's default import of each format."""
    from pc3d.export import read_glb

    rng = np.random.default_rng(0)
    n = 1500
    face = rng.integers(0, 4, n)  # the four long faces of a 0.1 x 1 x 0.1 box
    u, h = rng.uniform(-0.05, 0.05, n), rng.uniform(0.0, 1.0, n)
    side = np.where(face % 2 == 0, -0.05, 0.05)
    x, z = np.where(face < 2, side, u), np.where(face < 2, u, side)
    column = np.stack([x, h, z + 0.3], axis=1).astype(np.float32)
    np.save(tmp_path / "column.npy", column)
    out = tmp_path / f"column{suffix}"
    assert export_main([str(tmp_path / "column.npy"), str(out), "--method", method, "--z-up"]) == 0
    assert ("Z up" if suffix == ".ply" else "Y up") in capsys.readouterr().out
    if method == "points":
        written = np.asarray(o3d.io.read_point_cloud(str(out)).points)
    elif suffix == ".glb":
        written = read_glb(out)[0]
    else:
        written = np.asarray(o3d.io.read_triangle_mesh(str(out)).vertices)
    assert len(written) > 100
    in_blender = written @ BLENDER_IMPORT[suffix].T
    lo, hi = in_blender.min(0), in_blender.max(0)
    assert np.allclose([lo[2], hi[2]], [0.0, 1.0], atol=0.02)  # upright: foot at 0, top at +1 on Blender's Z
    assert (hi - lo)[:2].max() < 0.15  # thin across X and Y
    assert np.isclose(in_blender[:, 1].mean(), -0.3, atol=0.02)  # pc3d's front (+Z) is Blender's front (-Y)


def test_export_errors(clouds, tmp_path, capsys):
    assert export_main([str(clouds / "one.npy"), str(tmp_path / "m.stl")]) == 2
    assert "mesh format" in capsys.readouterr().err
    assert export_main([str(clouds / "many.npy"), str(tmp_path / "m.ply"), "--index", "7"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_dead_display_falls_back_to_png(clouds, tmp_path, monkeypatch, capsys):
    import pc3d.cli.view as view

    # DISPLAY set, but no server: no window may be tried (Open3D would hang in an invisible one); without
    # --out (which renders headlessly whatever the display) the display check alone decides
    monkeypatch.setenv("DISPLAY", ":987")
    monkeypatch.chdir(tmp_path)
    windows = []
    monkeypatch.setattr(view, "_show_window", lambda *a: windows.append(a) or True)
    assert view_main([str(clouds / "one.npy"), "--size", "32"]) == 0
    assert not windows
    assert "no display, wrote" in capsys.readouterr().out
    assert (tmp_path / "one.png").is_file()


def test_live_display_opens_a_window(clouds, tmp_path, monkeypatch):
    import socket

    import pc3d.cli.view as view

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a stand-in display server socket
    server.bind(str(tmp_path / "wl"))
    server.listen(1)
    monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "wl"))
    shown = []
    monkeypatch.setattr(view, "_show_window", lambda c, rgb, title: shown.append((len(c), title)) or True)
    try:
        assert view_main([str(clouds / "many.npy")]) == 0
    finally:
        server.close()
    assert shown == [(3, "many[0] | many[1] | many[2]")]
    assert not list(tmp_path.glob("*.png"))
