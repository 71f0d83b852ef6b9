"""Reading clouds: every bad file is a clear error naming the file and the expected shape."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.viz.io import load_clouds


def test_npy_npz_ply(tmp_path, chair_cloud):
    import open3d as o3d

    np.save(tmp_path / "one.npy", chair_cloud.astype(np.float32))
    np.save(tmp_path / "many.npy", np.stack([chair_cloud] * 3))
    np.savez(tmp_path / "s.npz", samples=np.stack([chair_cloud] * 2), other=np.zeros(3))
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(chair_cloud))
    pcd.colors = o3d.utility.Vector3dVector(np.full_like(chair_cloud, 0.5))
    o3d.io.write_point_cloud(str(tmp_path / "c.ply"), pcd)
    pts, col = load_clouds(tmp_path / "one.npy")
    assert pts.shape == (1, 1024, 3) and pts.dtype == np.float32 and col is None
    assert load_clouds(tmp_path / "many.npy")[0].shape == (3, 1024, 3)
    assert load_clouds(tmp_path / "s.npz")[0].shape == (2, 1024, 3)  # 'samples' is a known key
    pts, col = load_clouds(tmp_path / "c.ply")
    assert pts.shape == (1, 1024, 3) and np.allclose(col, 0.5, atol=1e-2)
    with pytest.raises(ValueError, match=r"s\.npz.*no array 'nope'"):
        load_clouds(tmp_path / "s.npz", key="nope")
    with pytest.raises(ValueError, match=r"s\.npz\[other\].*\(N, 3\)"):
        load_clouds(tmp_path / "s.npz", key="other")


@pytest.mark.parametrize("case", ["shape", "empty_array", "nan", "empty_file", "truncated", "garbage_ply", "suffix"])
def test_bad_files(tmp_path, case):
    path = tmp_path / ("bad.ply" if case == "garbage_ply" else "bad.txt" if case == "suffix" else "bad.npy")
    if case == "shape":
        np.save(path, np.zeros((10, 4)))
        match = r"bad\.npy: expected a cloud of shape \(N, 3\).*got shape \(10, 4\)"
    elif case == "empty_array":
        np.save(path, np.zeros((0, 3)))
        match = r"bad\.npy: the cloud is empty"
    elif case == "nan":
        a = np.zeros((10, 3))
        a[3, 1] = np.nan
        np.save(path, a)
        match = r"bad\.npy: 1 points are NaN"
    elif case == "empty_file":
        path.write_bytes(b"")
        match = r"bad\.npy: not a readable \.npy"
    elif case == "truncated":
        np.save(path, np.zeros((100, 3)))
        path.write_bytes(path.read_bytes()[:200])
        match = r"bad\.npy: not a readable \.npy"
    elif case == "garbage_ply":
        path.write_bytes(b"this is not a ply file\n")
        match = r"bad\.ply: Open3D read no points"
    else:
        path.write_text("1 2 3\n")
        match = r"bad\.txt: unknown cloud file type"
    with pytest.raises(ValueError, match=match):
        load_clouds(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_clouds(tmp_path / "nope.npy")
