"""Rendering back-ends of :mod:`pc3d.viz.render`: which one works here, and the two renderers.

Backends
--------
* ``"open3d"``: Open3D's Filament ``OffscreenRenderer`` (software Vulkan or EGL, no display
  needed). Points are drawn unlit as screen-space squares of ``point_size`` pixels;
  post-processing (tone mapping, temporal dithering) is switched off, which makes frames
  bit-for-bit repeatable. One renderer per process is kept and reused (creating one costs
  ~0.7 s, the first frame ~0.5 s, later frames ~70 ms on a 2-core CPU).
* ``"numpy"``: a pure NumPy z-buffered splat of round discs, 2x supersampled. No Open3D,
  no driver, deterministic, ~10 ms per 256 px frame.

``render_backend("auto")`` (the default everywhere) tries the Open3D renderer once per
process (first in a child process, because a missing GPU driver can abort rather than raise,
then in this process) and falls back to ``"numpy"``; the choice is cached and logged. The
environment variable ``PC3D_RENDER_BACKEND=open3d|numpy`` overrides ``"auto"``.

:func:`render_open3d` and :func:`render_numpy` draw one cloud (N, 3) with per-point colours
(N, 3) in [0, 1] from one or more :class:`~pc3d.viz.render.Camera` views into (S, S, 3) uint8
frames; :func:`pc3d.viz.render.render_clouds` picks one of them with :func:`render_backend`.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pc3d.viz.render import Camera

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "render_backend", "render_numpy", "render_open3d"]

BACKENDS = ("open3d", "numpy")
_BACKGROUND = 255

_BACKEND: str | None = None
_O3D_RENDERER: dict[str, Any] = {}

_PROBE = """
import numpy as np, open3d as o3d
from open3d.visualization import rendering
o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
r = rendering.OffscreenRenderer(16, 16)
img = np.asarray(r.render_to_image())
assert img.shape == (16, 16, 3), img.shape
print("PC3D-RENDER-OK")
"""


def _probe_open3d() -> tuple[bool, str]:
    """Can Open3D's OffscreenRenderer draw a frame here? Tried in a child process first."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"probe failed: {exc}"
    if "PC3D-RENDER-OK" not in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return False, f"OffscreenRenderer unavailable ({tail[0]})"
    try:
        _o3d_renderer(16)
    except Exception as exc:  # noqa: BLE001 - any failure means: use the fallback
        return False, f"OffscreenRenderer failed in this process: {exc}"
    return True, "OffscreenRenderer works"


def render_backend(prefer: str = "auto") -> str:
    """Name of the backend that renders here: ``"open3d"`` or ``"numpy"``.

    ``prefer="auto"`` (or ``PC3D_RENDER_BACKEND``) detects once per process and logs the choice;
    naming a backend returns it (``"open3d"`` raises ``RuntimeError`` if it does not work).
    """
    global _BACKEND
    if prefer == "auto":
        prefer = os.environ.get("PC3D_RENDER_BACKEND", "auto") or "auto"
    if prefer == "numpy":
        return "numpy"
    if prefer not in ("auto", "open3d"):
        raise ValueError(f"backend must be 'auto', 'open3d' or 'numpy', got {prefer!r}")
    if _BACKEND is None:
        ok, why = _probe_open3d()
        _BACKEND = "open3d" if ok else "numpy"
        log.info("pc3d.viz: rendering with the %s backend (%s)", _BACKEND, why)
    if prefer == "open3d" and _BACKEND != "open3d":
        raise RuntimeError("the Open3D OffscreenRenderer does not work here; use backend='numpy' or 'auto'")
    return _BACKEND


@contextmanager
def _quiet_fds():
    """Silence C-level stdout/stderr (Filament prints its engine banner there) for a moment."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):  # no real file descriptors (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _o3d_renderer(size: int):
    """The process's OffscreenRenderer, (re)created for ``size`` x ``size`` images."""
    if _O3D_RENDERER.get("size") != size:
        import open3d as o3d
        from open3d.visualization import rendering

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        _O3D_RENDERER.clear()  # at most one renderer alive
        with _quiet_fds():
            r = rendering.OffscreenRenderer(size, size)
        r.scene.view.set_post_processing(False)  # no tone mapping / temporal dithering: repeatable frames
        r.scene.set_background([1.0, 1.0, 1.0, 1.0])
        _O3D_RENDERER.update(size=size, renderer=r)
    return _O3D_RENDERER["renderer"]


def render_open3d(points: np.ndarray, rgb: np.ndarray, camera: Camera, size: int, point_size: float,
                  frames: Sequence[Camera] | None = None) -> list[np.ndarray]:
    import open3d as o3d
    from open3d.visualization import rendering

    r = _o3d_renderer(size)
    r.scene.clear_geometry()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(rgb, 0, 1))  # unlit, no tone mapping: written as given
    mat = rendering.MaterialRecord()
    mat.shader = "defaultUnlit"
    mat.point_size = float(point_size)
    r.scene.add_geometry("cloud", pcd, mat)
    out = []
    for cam in frames or [camera]:
        eye, rot = cam.pose()
        ext = np.eye(4)
        ext[:3, :3] = rot * np.array([[1.0], [-1.0], [1.0]])  # OpenCV camera: x right, y down, z forward
        ext[:3, 3] = -ext[:3, :3] @ eye
        r.setup_camera(cam.intrinsics(size), ext, size, size)
        out.append(np.asarray(r.render_to_image()).copy())
    return out


def render_numpy(points: np.ndarray, rgb: np.ndarray, camera: Camera, size: int, point_size: float,
                 frames: Sequence[Camera] | None = None, supersample: int = 2) -> list[np.ndarray]:
    out = []
    big = size * supersample
    rad = max(point_size * supersample / 2.0, 0.5)
    ri = int(math.ceil(rad)) + 1
    dy, dx = (a.ravel() for a in np.mgrid[-ri:ri + 1, -ri:ri + 1])
    colors8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.float64)
    for cam in frames or [camera]:
        col, row, z = cam.project(points, big)
        ok = (z > 1e-6) & np.isfinite(col) & np.isfinite(row)
        col, row, zz, cc = col[ok], row[ok], z[ok], colors8[ok]
        cols = np.floor(col).astype(np.int64)[:, None] + dx[None]
        rows = np.floor(row).astype(np.int64)[:, None] + dy[None]
        near = (cols + 0.5 - col[:, None]) ** 2 + (rows + 0.5 - row[:, None]) ** 2 <= rad**2  # disc of each dot
        src = np.broadcast_to(np.arange(len(zz))[:, None], cols.shape)[near]
        cols, rows = cols[near], rows[near]
        depth = zz[src]
        inside = (cols >= 0) & (cols < big) & (rows >= 0) & (rows < big)
        pix = rows[inside] * big + cols[inside]
        depth, src = depth[inside], src[inside]
        order = np.lexsort((src, depth, pix))  # per pixel: nearest first (ties: lower index)
        pix, src = pix[order], src[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        img = np.full((big * big, 3), float(_BACKGROUND))
        img[pix[first]] = cc[src[first]]
        img = img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
        out.append(np.round(img).astype(np.uint8))
    return out
