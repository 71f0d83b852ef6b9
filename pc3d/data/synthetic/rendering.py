"""Renderings of the built-in data set: Open3D ray casting and the R2N2 folder writer.

:func:`render_view` renders one RGBA view of a mesh in the camera model of
:mod:`pc3d.geometry.camera`; :func:`write_renderings` draws ``n_views`` random views of one
shape and writes the ``rendering/`` folder of the ShapeNetRendering (3D-R2N2) layout
(``NN.png``, ``renderings.txt``, ``rendering_metadata.txt``). :func:`turntable_frames` renders a
turntable (evenly spaced azimuths, fixed elevation and distance) with the same renderer and
:func:`write_video` writes frames as an H.264 MP4 with imageio's ffmpeg plugin (``imageio-ffmpeg``
bundles ffmpeg); the built-in set writes one per shape with ``turntable_video=True``.
"""

from __future__ import annotations

import colorsys
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pc3d.data.synthetic.primitives import as_arrays, unit
from pc3d.geometry.camera import FOV_DEG, camera_pose

__all__ = ["AMBIENT", "DISTANCE_RATIO_RANGE", "ELEVATION_RANGE", "TURNTABLE_NAME", "render_view", "shape_color",
           "turntable_frames", "write_renderings", "write_video"]

ELEVATION_RANGE = (15.0, 35.0)
DISTANCE_RATIO_RANGE = (0.8, 1.0)
AMBIENT = 0.3
#: the turntable video of a shape: ``<root>/ShapeNetRendering/<synset>/<id>/turntable.mp4`` (beside rendering/)
TURNTABLE_NAME = "turntable.mp4"
TURNTABLE_ELEVATION = 25.0
TURNTABLE_DISTANCE_RATIO = 0.9


def _scene(v: np.ndarray, f: np.ndarray):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    return scene


def render_view(
    mesh,
    azimuth: float,
    elevation: float,
    distance_ratio: float,
    *,
    fov: float = FOV_DEG,
    image_size: int = 137,
    color: Sequence[float] = (0.7, 0.7, 0.7),
    scene=None,
    nthreads: int = 0,
) -> np.ndarray:
    """Render one RGBA view of a mesh with Open3D's ``RaycastingScene`` (CPU only).

    See the module docstring for the camera convention. Shading: Lambertian,
    ``color * (AMBIENT + (1 - AMBIENT) * max(0, n . l))`` with ``n`` the hit triangle's
    normal turned towards the camera and ``l`` a light direction fixed in the camera
    frame ``normalize(-forward + 0.7 up - 0.4 right)`` (upper left, behind the camera).

    Args:
        mesh: ``o3d.geometry.TriangleMesh`` or ``(vertices (V, 3), triangles (T, 3))``.
        azimuth, elevation, distance_ratio, fov: one metadata line (degrees).
        image_size: S, the output is S x S.
        color: RGB in [0, 1] of the object.
        scene: an existing ``RaycastingScene`` holding exactly this mesh (reused).
        nthreads: threads for the ray cast (0 = Open3D's default); no effect on output.

    Returns:
        uint8 array of shape (S, S, 4); background ``(255, 255, 255, 0)``.
    """
    import open3d as o3d

    if scene is None:
        scene = _scene(*as_arrays(mesh))
    eye, rot = camera_pose(azimuth, elevation, distance_ratio)
    right, up, fwd = rot
    s = image_size
    tan = math.tan(math.radians(fov) / 2)
    c = (2 * (np.arange(s) + 0.5) / s - 1) * tan
    x = c[None, :]  # columns, left to right
    y = -c[:, None]  # rows, top to bottom
    dirs = fwd + x[..., None] * right + y[..., None] * up  # (S, S, 3)
    rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], axis=-1).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    hit = np.isfinite(ans["t_hit"].numpy())
    n = ans["primitive_normals"].numpy().astype(np.float64)
    flip = np.einsum("ijk,ijk->ij", n, dirs) > 0
    n[flip] *= -1
    light = unit(-fwd + 0.7 * up - 0.4 * right)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ light, 0.0, 1.0)
    rgb = np.clip(shade[..., None] * np.asarray(color, float), 0.0, 1.0)
    img = np.full((s, s, 4), 255, dtype=np.uint8)
    img[..., 3] = 0
    img[hit, :3] = np.round(rgb[hit] * 255).astype(np.uint8)
    img[hit, 3] = 255
    return img


def _png_bytes(rgba: np.ndarray) -> bytes:
    """Encode an (H, W, 4) uint8 array as an 8-bit RGBA PNG (deterministic)."""
    h, w, _ = rgba.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgba.reshape(h, w * 4)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _shape_color(rng: np.random.Generator) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.65, 0.95))


def shape_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """The object colour of a shape: the first draws of its views stream (as in :func:`write_renderings`)."""
    return _shape_color(rng)


def turntable_frames(
    v: np.ndarray,
    f: np.ndarray,
    n_frames: int,
    size: int,
    color: Sequence[float],
    *,
    elevation: float = TURNTABLE_ELEVATION,
    distance_ratio: float = TURNTABLE_DISTANCE_RATIO,
    nthreads: int = 0,
) -> list[np.ndarray]:
    """``n_frames`` RGBA views (S, S, 4) uint8 at azimuths ``360 k / n_frames`` (k = 0..n-1), fixed
    ``elevation`` and ``distance_ratio``, rendered by :func:`render_view`."""
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames!r}")
    scene = _scene(v, f)
    return [render_view((v, f), 360.0 * k / n_frames, elevation, distance_ratio, image_size=size, color=color,
                        scene=scene, nthreads=nthreads) for k in range(int(n_frames))]


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 12.0,
                background: Sequence[int] = (255, 255, 255)) -> None:
    """Write RGBA or RGB uint8 frames (H, W, 4|3) as an H.264 MP4 (yuv420p), atomically.

    RGBA is composited onto ``background``. H.264 4:2:0 needs even sides, so odd sides are padded
    with the background by one row / column at the bottom / right (a 137 px view -> 138 px video).
    """
    import imageio.v2 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    bg = np.asarray(background, np.float64).reshape(1, 1, 3)
    try:
        with iio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, ffmpeg_log_level="error") as w:
            for fr in frames:
                fr = np.asarray(fr)
                if fr.shape[-1] == 4:
                    a = fr[..., 3:4].astype(np.float64) / 255.0
                    fr = np.round(fr[..., :3] * a + bg * (1.0 - a)).astype(np.uint8)
                h, wd = fr.shape[:2]
                if h % 2 or wd % 2:
                    canvas = np.empty((h + h % 2, wd + wd % 2, 3), np.uint8)
                    canvas[...] = np.asarray(background, np.uint8)
                    canvas[:h, :wd] = fr
                    fr = canvas
                w.append_data(np.ascontiguousarray(fr[..., :3]))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_renderings(
    folder: Path, v: np.ndarray, f: np.ndarray, n_views: int, size: int, rng: np.random.Generator, nthreads: int
) -> None:
    folder.mkdir(parents=True)
    color = _shape_color(rng)
    scene = _scene(v, f)
    names, lines = [], []
    for k in range(n_views):
        az = rng.uniform(0.0, 360.0)
        el = rng.uniform(*ELEVATION_RANGE)
        dr = rng.uniform(*DISTANCE_RATIO_RANGE)
        line = f"{az:.4f} {el:.4f} 0 {dr:.4f} {FOV_DEG:g}"
        az, el, _, dr, fov = (float(x) for x in line.split())  # render what the file says
        img = render_view((v, f), az, el, dr, fov=fov, image_size=size, color=color, scene=scene, nthreads=nthreads)
        name = f"{k:02d}.png"
        (folder / name).write_bytes(_png_bytes(img))
        names.append(name)
        lines.append(line)
    (folder / "renderings.txt").write_text("\n".join(names) + "\n")
    (folder / "rendering_metadata.txt").write_text("\n".join(lines) + "\n")
