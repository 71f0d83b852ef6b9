"""Headless rendering of point clouds to images: single views, captioned grids, turntable GIFs.

Backends
--------
``"open3d"`` (Open3D's Filament ``OffscreenRenderer``, headless) or ``"numpy"`` (a pure NumPy
z-buffered splat); ``render_backend("auto")`` (the default everywhere) picks one once per
process, ``PC3D_RENDER_BACKEND=open3d|numpy`` overrides it. See :mod:`pc3d.viz.backends`.

Camera
------
The camera model of :mod:`pc3d.geometry.camera` (that of the built-in data set's renderings):
world **Y up**, objects facing **+Z**; a :class:`Camera` is one ``rendering_metadata.txt``
line (azimuth about +Y from +Z towards +X, elevation above the XZ plane, distance as a
fraction of ``MAX_CAMERA_DISTANCE = 2.9``, vertical field of view 25 degrees) and uses
:func:`pc3d.geometry.camera.camera_pose` / :func:`~pc3d.geometry.camera.camera_intrinsics`.
At ``distance_ratio=0.8`` the sphere of radius 0.5 fills the frame, so clouds are *fitted*
(centred on their bounding-box centre and scaled to radius ``FIT_RADIUS = 0.46``) before
rendering unless ``fit="none"``.

Colours
-------
``colors="height"`` (a blue-to-yellow ramp over each cloud's world Y), ``"branch"`` (tree-GAN:
the points of a ``TreeGenerator`` are ordered by tree node, so ``n_branches`` equal
consecutive index blocks each get a colour of a fixed palette), ``"index"`` (a ramp over the
point index), one RGB triple in [0, 1], or an (N, 3) array. A depth cue darkens far points
(``depth_cue=0`` turns it off). Backgrounds are white.

Shapes: a cloud is (N, 3); many clouds are (B, N, 3) or a sequence of (N_i, 3); NumPy arrays
or torch tensors (any device). Images are (H, W, 3) uint8.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.geometry.camera import FOV_DEG, camera_intrinsics, camera_pose
from pc3d.io import atomic_write
from pc3d.viz.backends import BACKENDS, render_backend, render_numpy, render_open3d

__all__ = [
    "BACKENDS",
    "FIT_RADIUS",
    "Camera",
    "as_cloud",
    "fit_clouds",
    "point_colors",
    "render_backend",
    "render_cloud",
    "render_clouds",
    "render_grid",
    "save_gif",
    "save_png",
    "turntable",
]

FIT_RADIUS = 0.46
# a blue -> teal -> green -> yellow ramp (pc3d's own anchors), for heights and indices
_RAMP = np.array([[0.20, 0.18, 0.52], [0.15, 0.42, 0.68], [0.16, 0.62, 0.58], [0.45, 0.76, 0.32],
                  [0.96, 0.84, 0.20]])


# ----------------------------------------------------------------------------------------
# Camera, inputs, colours
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A view in the data set's camera convention (see the module docstring); degrees."""

    azimuth: float = 35.0
    elevation: float = 25.0
    distance_ratio: float = 0.8
    fov: float = FOV_DEG

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``eye`` (3,) and ``R`` (3, 3) with rows right, up, forward (camera coords ``R @ (p - eye)``)."""
        return camera_pose(self.azimuth, self.elevation, self.distance_ratio)

    def intrinsics(self, image_size: int) -> np.ndarray:
        """Pinhole K (3, 3) for an ``image_size`` square image."""
        return camera_intrinsics(image_size, self.fov)

    def project(self, points: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel coordinates of points (N, 3): ``col`` (N,), ``row`` (N,) (continuous, pixel
        ``(i, j)`` covers ``[j, j+1) x [i, i+1)``) and camera depth ``z`` (N,)."""
        eye, rot = self.pose()
        cam = (np.asarray(points, np.float64) - eye) @ rot.T
        k = self.intrinsics(image_size)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            col = k[0, 2] + k[0, 0] * cam[:, 0] / z
            row = k[1, 2] - k[1, 1] * cam[:, 1] / z
        return col, row, z


def as_cloud(x: Any, name: str = "cloud") -> np.ndarray:
    """One cloud as a float64 (N, 3) array; ``ValueError`` naming the expected shape otherwise."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name}: expected a point cloud of shape (N, 3), got shape {tuple(a.shape)}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: the cloud is empty (shape (0, 3)); expected (N, 3) with N >= 1")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: {int((~np.isfinite(a)).any(1).sum())} of {len(a)} points are NaN or infinite")
    return a


def _as_clouds(clouds: Any) -> list[np.ndarray]:
    """(B, N, 3) array/tensor, one (N, 3) cloud, or a sequence of (N_i, 3) -> list of (N_i, 3)."""
    if hasattr(clouds, "detach") or isinstance(clouds, np.ndarray):
        shape = tuple(clouds.shape)
        if len(shape) == 2:
            return [as_cloud(clouds)]
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError(f"expected clouds of shape (B, N, 3) or (N, 3), got shape {shape}")
        return [as_cloud(c, f"cloud {i}") for i, c in enumerate(clouds)]
    return [as_cloud(c, f"cloud {i}") for i, c in enumerate(clouds)]


def fit_clouds(clouds: Sequence[np.ndarray], radius: float = FIT_RADIUS) -> list[np.ndarray]:
    """Centre the clouds (N_i, 3) jointly on their bounding-box centre and scale them by one
    factor so that the farthest point is at ``radius``. Pass one cloud to fit it alone."""
    allp = np.concatenate(list(clouds), axis=0)
    centre = (allp.min(0) + allp.max(0)) / 2
    r = float(np.linalg.norm(allp - centre, axis=1).max())
    scale = radius / r if r > 0 else 1.0
    return [(c - centre) * scale for c in clouds]


def _ramp(t: np.ndarray) -> np.ndarray:
    t = np.clip(np.asarray(t, np.float64), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    f = (t - i)[:, None]
    return _RAMP[i] * (1 - f) + _RAMP[i + 1] * f


def branch_palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (n, 3) in [0, 1] (golden-ratio hue steps)."""
    return np.array([colorsys.hsv_to_rgb((0.08 + i * 0.6180339887) % 1.0, 0.70 if i % 2 else 0.55,
                                         0.92 if i % 3 else 0.75) for i in range(n)])


def point_colors(points: np.ndarray, colors: Any = "height", n_branches: int | None = None) -> np.ndarray:
    """Per-point RGB (N, 3) in [0, 1] for a cloud (N, 3); see the module docstring for ``colors``."""
    n = len(points)
    if isinstance(colors, str):
        if colors == "height":
            y = points[:, 1]
            span = float(y.max() - y.min())
            return _ramp((y - y.min()) / span if span > 0 else np.full(n, 0.5))
        if colors == "index":
            return _ramp(np.arange(n) / max(n - 1, 1))
        if colors == "branch":
            if not n_branches or n_branches < 1:
                raise ValueError("colors='branch' needs n_branches >= 1 (the number of index blocks)")
            block = (np.arange(n) * int(n_branches)) // n
            return branch_palette(int(n_branches))[block]
        raise ValueError(f"colors must be 'height', 'index', 'branch', an RGB triple or an (N, 3) array, "
                         f"got {colors!r}")
    c = np.asarray(colors, np.float64)
    if c.shape == (3,):
        return np.broadcast_to(c, (n, 3)).copy()
    if c.shape == (n, 3):
        return c / 255.0 if c.max() > 1.0 else c
    raise ValueError(f"colors: expected an RGB triple (3,) or per-point colours ({n}, 3), got shape {c.shape}")


# ----------------------------------------------------------------------------------------
# Public rendering functions
# ----------------------------------------------------------------------------------------


def _default_point_size(image_size: int, n_points: int) -> float:
    # about 2.5 px at 256 px for 2048 points; sparser clouds get bigger dots
    return max(1.0, image_size / 100.0 * math.sqrt(2048.0 / max(n_points, 1)) ** 0.5)


def _prepare(cloud: np.ndarray, camera: Camera, colors: Any, n_branches: int | None,
             depth_cue: float) -> np.ndarray:
    rgb = point_colors(cloud, colors, n_branches)
    if depth_cue > 0:
        _, _, z = camera.project(cloud, 2)
        span = float(z.max() - z.min())
        t = (z - z.min()) / span if span > 0 else np.zeros(len(z))
        rgb = rgb * (1.0 - depth_cue * t)[:, None]
    return rgb


def render_clouds(
    clouds: Any,
    *,
    camera: Camera | None = None,
    image_size: int = 256,
    point_size: float | None = None,
    colors: Any = "height",
    n_branches: int | None = None,
    fit: str = "each",
    depth_cue: float = 0.35,
    backend: str = "auto",
) -> np.ndarray:
    """Render clouds, one image each.

    Args:
        clouds: (B, N, 3) array/tensor, one (N, 3) cloud, or a sequence of (N_i, 3) clouds.
        camera: the view (default :class:`Camera`: azimuth 35, elevation 25, ratio 0.8).
        image_size: S; images are S x S.
        point_size: dot diameter in output pixels (default: from S and N).
        colors, n_branches: see :func:`point_colors`.
        fit: ``"each"`` (every cloud fitted alone), ``"all"`` (one transform for all, keeps
            relative scale) or ``"none"`` (world units as given).
        depth_cue: how much the farthest point is darkened (0 = off).
        backend: ``"auto"``, ``"open3d"`` or ``"numpy"`` (see :func:`render_backend`).

    Returns:
        uint8 array (B, S, S, 3), white background.
    """
    cams = [camera or Camera()]
    pcs = _as_clouds(clouds)
    return np.stack(_render_many(pcs, cams, image_size, point_size, colors, n_branches, fit, depth_cue,
                                 backend, per_cloud_frames=False))


def _fit(pcs: list[np.ndarray], fit: str) -> list[np.ndarray]:
    if fit == "each":
        return [fit_clouds([c])[0] for c in pcs]
    if fit == "all":
        return fit_clouds(pcs)
    if fit == "none":
        return list(pcs)
    raise ValueError(f"fit must be 'each', 'all' or 'none', got {fit!r}")


def _render_many(pcs, cams, image_size, point_size, colors, n_branches, fit, depth_cue, backend,
                 per_cloud_frames: bool) -> list[np.ndarray]:
    name = render_backend(backend)
    pcs = _fit(pcs, fit)
    images = []
    for c in pcs:
        ps = point_size if point_size is not None else _default_point_size(image_size, len(c))
        rgb = _prepare(c, cams[0], colors, n_branches, depth_cue)
        fn = render_open3d if name == "open3d" else render_numpy
        frames = fn(c, rgb, cams[0], image_size, ps, frames=cams)
        images.extend(frames if per_cloud_frames else frames[:1])
    return images


def render_cloud(cloud: Any, **kwargs: Any) -> np.ndarray:
    """Render one cloud (N, 3) to a uint8 image (S, S, 3); keyword arguments as :func:`render_clouds`."""
    return render_clouds([as_cloud(cloud)], **kwargs)[0]


def turntable(
    cloud: Any,
    *,
    n_frames: int = 36,
    elevation: float = 25.0,
    distance_ratio: float = 0.8,
    start_azimuth: float = 0.0,
    image_size: int = 256,
    point_size: float | None = None,
    colors: Any = "height",
    n_branches: int | None = None,
    fit: str = "each",
    depth_cue: float = 0.0,
    backend: str = "auto",
) -> list[np.ndarray]:
    """Frames of one cloud (N, 3) seen from ``n_frames`` azimuths evenly spaced over 360
    degrees, starting at ``start_azimuth``; each frame is (S, S, 3) uint8. Other arguments as
    :func:`render_clouds` (no depth cue by default: a fixed colouring reads better when it
    turns). Save with :func:`save_gif`."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    cams = [Camera(start_azimuth + 360.0 * i / n_frames, elevation, distance_ratio) for i in range(n_frames)]
    return _render_many([as_cloud(cloud)], cams, image_size, point_size, colors, n_branches, fit, depth_cue,
                        backend, per_cloud_frames=True)


# ----------------------------------------------------------------------------------------
# Grids, captions, files
# ----------------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _as_image(x: Any, size: int) -> np.ndarray:
    """An image (3, H, W) float in [0, 1] or (H, W, 3)/(H, W, 4) uint8/float -> (size, size, 3) uint8,
    scaled (up or down) so that its longer side is ``size``, centred on white."""
    from PIL import Image

    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image (3, H, W) or (H, W, 3), got shape {tuple(np.shape(x))}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.shape[-1] == 4:  # composite on white
        alpha = a[..., 3:].astype(np.float64) / 255
        a = np.round(a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    img = Image.fromarray(a)
    scale = size / max(img.width, img.height)  # fit the cell: small views (e.g. 64 px model inputs) are enlarged
    if scale != 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return np.asarray(canvas)


def _is_image_row(x: Any) -> bool:
    shape = tuple(getattr(x, "shape", ()))
    return len(shape) == 4


def render_grid(
    rows: Any,
    *,
    captions: Sequence[Sequence[str] | str] | None = None,
    row_labels: Sequence[str] | None = None,
    ncols: int | None = None,
    image_size: int = 160,
    fit: str = "column",
    caption_size: int | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """A captioned grid of renders (and images) as one uint8 image.

    Args:
        rows: a mapping ``{row label: clouds}`` or a sequence of rows, each row being clouds
            (B, N, 3) / a sequence of (N_i, 3), or images (B, 3, H, W) in [0, 1] (such a row is
            shown as pictures scaled to the cell, e.g. the input image of an image-to-cloud model). A single
            (B, N, 3) array is one row, wrapped into ``ncols`` columns.
        captions: per cell (a list per row, or a flat list for a single row); drawn under
            each cell. ``None``: no caption strip.
        row_labels: drawn in a column on the left (default: the mapping's keys, if any); a label
            wider than the column is written bottom-up along its row, whole.
        ncols: columns when ``rows`` is a single batch (default: all in one row).
        image_size: S, each cell is S x S (+ the caption strip).
        fit: ``"column"`` (default: clouds in one column share one transform, so a
            reconstruction is shown at the scale of its input), ``"each"``, ``"all"``, ``"none"``.
        **kwargs: passed to :func:`render_clouds` (camera, colors, n_branches, point_size,
            depth_cue, backend).

    Returns:
        uint8 (H, W, 3) with ``H = nrows * (S + C)`` and ``W = L + ncols * S``, where ``C`` is
        the caption strip height (0 without captions; ``caption_size + 6``) and ``L`` the label
        column width (0 without row labels; ``S // 2``).
    """
    from PIL import Image, ImageDraw

    if isinstance(rows, Mapping):
        if row_labels is None:
            row_labels = [str(k) for k in rows]
        rows = list(rows.values())
    elif hasattr(rows, "shape") and len(rows.shape) in (2, 3):
        clouds = _as_clouds(rows)
        ncols = ncols or len(clouds)
        rows = [clouds[i:i + ncols] for i in range(0, len(clouds), ncols)]
        if captions is not None and captions and isinstance(captions[0], str):
            captions = [list(captions[i:i + ncols]) for i in range(0, len(captions), ncols)]
    rows = list(rows)
    if captions is not None and len(rows) == 1 and captions and isinstance(captions[0], str):
        captions = [list(captions)]
    cells: list[list[np.ndarray]] = []
    cloud_rows = {}
    for i, row in enumerate(rows):
        if _is_image_row(row):
            cells.append([_as_image(im, image_size) for im in row])
        else:
            cloud_rows[i] = _as_clouds(row)
            cells.append([])
    # fit clouds column-wise (or as asked), then render everything
    if fit == "column":
        width = max(len(r) for r in cloud_rows.values()) if cloud_rows else 0
        for j in range(width):
            col = [(i, cloud_rows[i][j]) for i in cloud_rows if j < len(cloud_rows[i])]
            fitted = fit_clouds([c for _, c in col])
            for (i, _), c in zip(col, fitted):
                cloud_rows[i][j] = c
        inner_fit = "none"
    else:
        inner_fit = fit
    if inner_fit == "all" and cloud_rows:
        flat = fit_clouds([c for r in cloud_rows.values() for c in r])
        k = 0
        for i in cloud_rows:
            n = len(cloud_rows[i])
            cloud_rows[i], k = flat[k:k + n], k + n
        inner_fit = "none"
    for i, clouds in cloud_rows.items():
        cells[i] = list(render_clouds(clouds, image_size=image_size, fit=inner_fit, **kwargs))
    nrows = len(cells)
    ncol = max((len(r) for r in cells), default=0)
    if nrows == 0 or ncol == 0:
        raise ValueError("render_grid: nothing to draw (no rows or empty rows)")
    fs = caption_size or max(10, image_size // 12)
    cap_h = fs + 6 if captions is not None else 0
    lab_w = image_size // 2 if row_labels is not None else 0
    canvas = Image.new("RGB", (lab_w + ncol * image_size, nrows * (image_size + cap_h)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(fs)
    for i, row in enumerate(cells):
        y = i * (image_size + cap_h)
        for j, img in enumerate(row):
            canvas.paste(Image.fromarray(img), (lab_w + j * image_size, y))
            if captions is not None and i < len(captions) and j < len(captions[i]):
                text = _clip_text(draw, str(captions[i][j]), font, image_size - 4)
                tw = draw.textlength(text, font=font)
                draw.text((lab_w + j * image_size + (image_size - tw) / 2, y + image_size + 2), text,
                          fill=(40, 40, 40), font=font)
        if row_labels is not None and i < len(row_labels):
            _draw_row_label(canvas, draw, str(row_labels[i]), fs, y, lab_w, image_size)
    return np.asarray(canvas)


def _draw_row_label(canvas, draw, text: str, fs: int, y: int, lab_w: int, height: int) -> None:
    """A row label in the label column (``lab_w`` wide, ``height`` high, from ``y``): horizontal when
    it fits, else written bottom-up along the row (smaller, down to 6 px, if it must) so that it
    is shown whole; clipped with "…" only when even that does not fit."""
    from PIL import Image, ImageDraw

    font = _font(fs)
    if draw.textlength(text, font=font) <= lab_w - 4:
        draw.text((2, y + height / 2 - fs / 2), text, fill=(40, 40, 40), font=font)
        return
    size = fs
    while size > 6 and draw.textlength(text, font=_font(size)) > height - 4:
        size -= 1
    font = _font(size)
    text = _clip_text(draw, text, font, height - 4)
    tw = int(np.ceil(draw.textlength(text, font=font)))
    strip = Image.new("RGB", (max(1, tw), size + 4), (255, 255, 255))
    ImageDraw.Draw(strip).text((0, 1), text, fill=(40, 40, 40), font=font)
    strip = strip.rotate(90, expand=True)
    canvas.paste(strip, ((lab_w - strip.width) // 2, y + (height - strip.height) // 2))


def _clip_text(draw, text: str, font, width: float) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 image (H, W, 3) as PNG (atomically); returns the path."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, np.uint8))
    return atomic_write(Path(path), lambda tmp: img.save(tmp, format="PNG", optimize=True))


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 12.0, colors: int = 128) -> Path:
    """Write frames (each (H, W, 3) uint8) as a looping GIF with an adaptive palette of
    ``colors`` entries (atomically); returns the path."""
    from PIL import Image

    if not frames:
        raise ValueError("save_gif: no frames")
    imgs = [Image.fromarray(np.asarray(f, np.uint8)).quantize(colors, method=Image.Quantize.MEDIANCUT,
                                                                dither=Image.Dither.NONE) for f in frames]
    duration = int(round(1000 / fps))
    return atomic_write(Path(path), lambda tmp: imgs[0].save(tmp, format="GIF", save_all=True,
                                                              append_images=imgs[1:], duration=duration,
                                                              loop=0, optimize=False))
