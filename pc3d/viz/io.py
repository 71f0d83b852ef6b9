"""Reading clouds for viewing and export: ``.npy``, ``.npz``, ``.ply`` / ``.pcd`` / ``.xyz`` / ``.pts``.

Every error names the file and what was expected; an empty or NaN cloud is an error, never a
silent empty picture (Open3D's readers return an empty cloud with a warning on unreadable
files: :func:`load_clouds` checks the result).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["NPZ_KEYS", "SUFFIXES", "load_clouds"]

SUFFIXES = (".npy", ".npz", ".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
#: keys tried, in order, when an ``.npz`` holds several arrays and no key is given
NPZ_KEYS = ("points", "clouds", "samples", "recon", "pred", "x")


def _check(path: Path, a: np.ndarray, what: str) -> np.ndarray:
    shape = tuple(a.shape)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{path}{what}: expected a cloud of shape (N, 3) or clouds of shape (B, N, 3), "
                         f"got shape {shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{path}{what}: the cloud is empty (shape {tuple(a.shape)})")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{path}{what}: expected numbers, got dtype {a.dtype}")
    a = np.asarray(a, np.float32)
    bad = ~np.isfinite(a).all(-1)
    if bad.any():
        raise ValueError(f"{path}{what}: {int(bad.sum())} points are NaN or infinite")
    return a


def load_clouds(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read clouds from a file.

    Args:
        path: ``.npy`` / ``.npz`` holding (N, 3) or (B, N, 3) numbers, or a point-cloud file
            Open3D reads (``.ply``, ``.pcd``, ``.xyz``, ...; a mesh ``.ply`` gives its vertices).
        key: the array of an ``.npz`` (default: the only one, else the first of :data:`NPZ_KEYS`).

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
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc.__class__.__name__}: {exc})") from exc
        return _check(path, a, ""), None
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                if key is None:
                    if len(keys) == 1:
                        key = keys[0]
                    else:
                        key = next((k for k in NPZ_KEYS if k in keys), None)
                        if key is None:
                            raise ValueError(f"{path}: holds arrays {keys}; say which one with --key "
                                             f"(default keys: {', '.join(NPZ_KEYS)})")
                if key not in keys:
                    raise ValueError(f"{path}: no array {key!r}; it holds {keys}")
                a = z[key]
        except (EOFError, OSError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable .npz archive ({exc.__class__.__name__}: {exc})") from exc
        return _check(path, a, f"[{key}]"), None
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
    return _check(path, pts, ""), colors
