"""Reading clouds for viewing and export: ``.npy``, ``.npz``, ``.ply`` / ``.pcd`` / ``.xyz`` / ``.pts``.

Every error names the file and what was expected; an empty or NaN cloud is an error, never a
silent empty picture (Open3D's readers return an empty cloud with a warning on unreadable
files: :func:`load_clouds` checks the result).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pc3d.io import NPZ_KEYS, check_clouds, read_clouds

__all__ = ["NPZ_KEYS", "SUFFIXES", "load_clouds"]

SUFFIXES = (".npy", ".npz", ".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")


def load_clouds(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read clouds from a file.

    Args:
        path: ``.npy`` / ``.npz`` holding (N, 3) or (B, N, 3) numbers, or a point-cloud file
            Open3D reads (``.ply``, ``.pcd``, ``.xyz``, ...; a mesh ``.ply`` gives its vertices).
        key: the array of an ``.npz`` (default: the only one, else the first of
            :data:`pc3d.io.NPZ_KEYS`). ``.npy`` / ``.npz`` are read by :func:`pc3d.io.read_clouds`,
            the reader every pc3d command uses.

    Returns:
        ``points`` float32 (B, N, 3) and ``colors`` float (B, N, 3) in [0, 1] when the file
        has per-point colours (PLY/PCD), else ``None``.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable file, unknown suffix, wrong
        shape, empty cloud or NaN coordinates (the message starts with the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown cloud file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if suffix in (".npy", ".npz"):
        return read_clouds(path, key=key), None
    import open3d as o3d

    level = o3d.utility.get_verbosity_level()
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    try:
        pcd = o3d.io.read_point_cloud(str(path))
    finally:
        o3d.utility.set_verbosity_level(level)
    pts = np.asarray(pcd.points)
    if len(pts) == 0:
        raise ValueError(f"{path}: Open3D read no points (unreadable, not a point cloud, or empty); "
                         f"expected a cloud of shape (N, 3) with N >= 1")
    colors = np.asarray(pcd.colors)[None].astype(np.float32) if pcd.has_colors() else None
    return check_clouds(pts, str(path)), colors
