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


@pytest.mark.parametrize("suffix,extra", [(".glb", []), (".obj", ["--z-up"]), (".ply", ["--method", "ball-pivoting"])])
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


def test_export_errors(clouds, tmp_path, capsys):
    assert export_main([str(clouds / "one.npy"), str(tmp_path / "m.glb"), "--z-up"]) == 2
    assert "Y-up" in capsys.readouterr().err
    assert export_main([str(clouds / "one.npy"), str(tmp_path / "m.stl")]) == 2
    assert "mesh format" in capsys.readouterr().err
    assert export_main([str(clouds / "many.npy"), str(tmp_path / "m.ply"), "--index", "7"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_dead_display_falls_back_to_png(clouds, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":987")  # set, but no server: must not hang in an invisible window
    assert view_main([str(clouds / "one.npy"), "--size", "32", "--out", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "d.png").is_file()


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
