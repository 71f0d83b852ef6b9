"""Mesh export round trips: files load back with triangles; Poisson is watertight where it promises."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from pc3d import export as E


@pytest.fixture(scope="module")
def sphere_poisson(sphere_cloud):
    return E.poisson_mesh(sphere_cloud, depth=7, trim=0.0)


def test_poisson_is_watertight_untrimmed_and_trim_opens_it(sphere_cloud, sphere_poisson):
    assert sphere_poisson.is_watertight()
    v = np.asarray(sphere_poisson.vertices)
    assert np.allclose(np.linalg.norm(v, axis=1), 0.4, atol=0.03)  # on the sphere
    n = np.asarray(sphere_poisson.vertex_normals)
    assert (np.einsum("ij,ij->i", n, v) > 0).mean() > 0.99  # normals point outwards
    trimmed = E.poisson_mesh(sphere_cloud, depth=7, trim=0.1)
    assert 0 < len(trimmed.triangles) < len(sphere_poisson.triangles)
    assert not trimmed.is_watertight()  # documented: the low-density trim opens holes


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_mesh_file_round_trip(sphere_poisson, tmp_path, suffix):
    path = E.write_mesh(sphere_poisson, tmp_path / f"m{suffix}", colors="height" if suffix != ".obj" else None)
    back = o3d.io.read_triangle_mesh(str(path))  # Open3D (ASSIMP for .glb) reads it back
    assert len(back.triangles) == len(sphere_poisson.triangles) > 0
    # the same vertex positions (readers may reorder or duplicate vertices: ASSIMP, OBJ)
    from scipy.spatial import cKDTree

    a, b = np.asarray(back.vertices), np.asarray(sphere_poisson.vertices)
    assert cKDTree(b).query(a)[0].max() < 1e-5 and cKDTree(a).query(b)[0].max() < 1e-5
    if suffix == ".ply":
        assert back.is_watertight() and back.has_vertex_colors()
    if suffix == ".glb":
        v, t = E.read_glb(path)
        assert v.shape == (len(sphere_poisson.vertices), 3) and t.shape == (len(sphere_poisson.triangles), 3)
        assert np.array_equal(t, np.asarray(sphere_poisson.triangles))


@pytest.mark.parametrize("method", ["alpha", "ball-pivoting"])
def test_other_methods_make_triangles(chair_cloud, method, tmp_path):
    mesh = E.cloud_to_mesh(chair_cloud, method)
    assert len(mesh.triangles) > 500
    back = o3d.io.read_triangle_mesh(str(E.write_mesh(mesh, tmp_path / "m.ply")))
    assert len(back.triangles) == len(mesh.triangles)


def test_z_up_rotation(sphere_poisson, tmp_path):
    pts = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert np.allclose(E.y_up_to_z_up(pts), [[0, 0, 1], [0, -1, 0], [1, 0, 0]])  # up -> +Z, front -> -Y
    path = E.write_mesh(sphere_poisson, tmp_path / "z.obj", z_up=True)
    back = np.asarray(o3d.io.read_triangle_mesh(str(path)).vertices)
    assert np.allclose(np.sort(back[:, 2]), np.sort(np.asarray(sphere_poisson.vertices)[:, 1]), atol=1e-5)
    assert len(np.asarray(sphere_poisson.vertices)) == len(back)  # the input mesh is not modified
    with pytest.raises(ValueError, match="Y-up"):
        E.write_mesh(sphere_poisson, tmp_path / "z.glb", z_up=True)


def test_coloured_cloud_ply(chair_cloud, tmp_path):
    path = E.write_cloud(chair_cloud, tmp_path / "c.ply", colors="height")
    back = o3d.io.read_point_cloud(str(path))
    assert len(back.points) == len(chair_cloud) and back.has_colors()
    assert np.asarray(back.colors).std(0).max() > 0.05  # not one flat colour


def test_errors(chair_cloud, tmp_path):
    with pytest.raises(ValueError, match="method must be"):
        E.cloud_to_mesh(chair_cloud, "marching-cubes")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        E.cloud_to_mesh(chair_cloud[:, :2])
    with pytest.raises(ValueError, match="mesh format"):
        E.write_mesh(o3d.geometry.TriangleMesh.create_box(), tmp_path / "m.stl")
