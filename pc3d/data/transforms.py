"""Normalization and augmentation of point clouds.

Every function here accepts a single cloud ``(N, 3)`` or a batch ``(B, N, 3)``, as a
``torch.Tensor`` or a ``numpy.ndarray``, and returns the same kind (and, for tensors, the
same device). Normalization is described by a pair ``(shift, scale)``:

* single cloud: ``shift`` is ``(1, 3)`` and ``scale`` is ``(1, 1)``;
* batch: ``shift`` is ``(B, 1, 3)`` and ``scale`` is ``(B, 1, 1)``;

with ``normalized = (raw - shift) / scale`` and ``raw = normalized * scale + shift``. The
same convention is used by :class:`pc3d.data.PC15kDataset` items and batches, so a caller
can always get back to the file's coordinates with :func:`denormalize`.

Normalization modes (the names used throughout pc3d, see ``DESIGN.md``):

``unit_sphere``
    ``shift`` = the **centroid** (mean of the points, per axis); ``scale`` = the largest
    distance from the centroid. The result has centroid 0 and max norm 1 (PointNet's
    convention).
``unit_bbox``
    ``shift`` = the **centre of the axis-aligned bounding box**; ``scale`` = the **longest
    side** of the box. The result fits in ``[-0.5, 0.5]^3`` and its longest side is exactly
    1 (the 3D-LMNet evaluation convention; it also matches the ``[-0.5, 0.5]^3`` grid of the
    PointFlow JSD). Note that some later codes scale to ``[-1, 1]`` instead (half the
    longest side); multiply by 2 to compare with them.
``global``
    one ``shift`` (per-axis mean) and one scalar ``scale`` (std) for the whole data set;
    see :func:`pc3d.data.pc15k.compute_global_stats`.

A degenerate cloud (all points equal) would have a zero scale; its scale is set to 1 so the
result is finite and the round trip stays exact.

The augmentations (:class:`RandomScaleShift`, :class:`RandomRotateY`, :class:`Compose`) act
on one cloud ``(N, 3)`` tensor, draw from torch's global RNG (so they are reproducible under
``lightning.seed_everything(..., workers=True)``) and are off unless passed explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "Compose",
    "RandomRotateY",
    "RandomScaleShift",
    "apply_normalization",
    "denormalize",
    "normalize_unit_bbox",
    "normalize_unit_sphere",
    "unit_bbox_stats",
    "unit_sphere_stats",
]

Array = torch.Tensor | np.ndarray


def _check_points(points: Array, name: str = "points") -> None:
    if not isinstance(points, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(points).__name__}")
    if points.ndim not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (B, N, 3), got {tuple(points.shape)}")
    if points.shape[-2] == 0:
        raise ValueError(f"{name} must contain at least one point, got shape {tuple(points.shape)}")


def _safe_scale(scale: Array) -> Array:
    """Replace zero scales (degenerate clouds) by 1."""
    if isinstance(scale, torch.Tensor):
        return torch.where(scale > 0, scale, torch.ones_like(scale))
    return np.where(scale > 0, scale, np.ones_like(scale))


def unit_sphere_stats(points: Array) -> tuple[Array, Array]:
    """Shift and scale that map ``points`` into the unit sphere.

    ``shift`` is the centroid, ``scale`` the largest distance from it (1 if it is 0).

    Shapes:
        points: ``(N, 3)`` or ``(B, N, 3)``.
        returns: ``shift`` ``(1, 3)`` / ``(B, 1, 3)``, ``scale`` ``(1, 1)`` / ``(B, 1, 1)``.
    """
    _check_points(points)
    if isinstance(points, torch.Tensor):
        shift = points.mean(dim=-2, keepdim=True)
        scale = (points - shift).norm(dim=-1, keepdim=True).amax(dim=-2, keepdim=True)
    else:
        shift = points.mean(axis=-2, keepdims=True)
        scale = np.linalg.norm(points - shift, axis=-1, keepdims=True).max(axis=-2, keepdims=True)
    return shift, _safe_scale(scale)


def unit_bbox_stats(points: Array) -> tuple[Array, Array]:
    """Shift and scale that centre the bounding box and make its longest side 1.

    ``shift`` is the bounding-box centre ``(min + max) / 2``, ``scale`` the longest side
    ``max(max - min)`` over the three axes (1 if it is 0).

    Shapes:
        points: ``(N, 3)`` or ``(B, N, 3)``.
        returns: ``shift`` ``(1, 3)`` / ``(B, 1, 3)``, ``scale`` ``(1, 1)`` / ``(B, 1, 1)``.
    """
    _check_points(points)
    if isinstance(points, torch.Tensor):
        lo = points.amin(dim=-2, keepdim=True)
        hi = points.amax(dim=-2, keepdim=True)
        scale = (hi - lo).amax(dim=-1, keepdim=True)
    else:
        lo = points.min(axis=-2, keepdims=True)
        hi = points.max(axis=-2, keepdims=True)
        scale = (hi - lo).max(axis=-1, keepdims=True)
    return (lo + hi) / 2, _safe_scale(scale)


def apply_normalization(points: Array, shift: Array, scale: Array) -> Array:
    """``(points - shift) / scale``.

    Shapes:
        points: ``(N, 3)`` or ``(B, N, 3)``; shift: broadcastable, normally ``(1, 3)`` /
        ``(B, 1, 3)``; scale: broadcastable, normally ``(1, 1)`` / ``(B, 1, 1)``.
        returns: same shape as ``points``.
    """
    _check_points(points)
    return (points - shift) / scale


def denormalize(points: Array, shift: Array, scale: Array) -> Array:
    """Inverse of :func:`apply_normalization`: ``points * scale + shift``.

    Shapes: as :func:`apply_normalization`.
    """
    _check_points(points)
    return points * scale + shift


def normalize_unit_sphere(points: Array) -> tuple[Array, Array, Array]:
    """Centre on the centroid and scale to max norm 1.

    Shapes:
        points: ``(N, 3)`` or ``(B, N, 3)``.
        returns: ``(normalized, shift, scale)``: normalized like ``points``; shift ``(1, 3)``
        / ``(B, 1, 3)``; scale ``(1, 1)`` / ``(B, 1, 1)``.
    """
    shift, scale = unit_sphere_stats(points)
    return apply_normalization(points, shift, scale), shift, scale


def normalize_unit_bbox(points: Array) -> tuple[Array, Array, Array]:
    """Centre the bounding box and scale its longest side to 1 (result in ``[-0.5, 0.5]^3``).

    Shapes:
        points: ``(N, 3)`` or ``(B, N, 3)``.
        returns: ``(normalized, shift, scale)``: normalized like ``points``; shift ``(1, 3)``
        / ``(B, 1, 3)``; scale ``(1, 1)`` / ``(B, 1, 1)``.
    """
    shift, scale = unit_bbox_stats(points)
    return apply_normalization(points, shift, scale), shift, scale


# --------------------------------------------------------------------------- augmentation
def _check_cloud(points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[-1] != 3:
        shape = tuple(points.shape) if hasattr(points, "shape") else type(points).__name__
        raise ValueError(f"expected a (N, 3) torch.Tensor, got {shape}")


class RandomScaleShift:
    """Random anisotropic scaling then translation of one cloud (train-time augmentation).

    ``x' = x * s + t`` with ``s ~ U(scale_low, scale_high)`` per axis and
    ``t ~ U(-shift_range, shift_range)`` per axis, drawn from torch's global RNG.

    Shapes: ``points`` ``(N, 3)`` -> ``(N, 3)``.
    """

    def __init__(self, scale_low: float = 2.0 / 3.0, scale_high: float = 1.5, shift_range: float = 0.2):
        if not 0 < scale_low <= scale_high:
            raise ValueError(f"need 0 < scale_low <= scale_high, got {scale_low}, {scale_high}")
        if shift_range < 0:
            raise ValueError(f"shift_range must be >= 0, got {shift_range}")
        self.scale_low, self.scale_high, self.shift_range = float(scale_low), float(scale_high), float(shift_range)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        _check_cloud(points)
        s = torch.empty(1, 3).uniform_(self.scale_low, self.scale_high)
        t = torch.empty(1, 3).uniform_(-self.shift_range, self.shift_range)
        return points * s.to(points) + t.to(points)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale_low={self.scale_low:g}, scale_high={self.scale_high:g}, "
            f"shift_range={self.shift_range:g})"
        )


class RandomRotateY:
    """Random rotation about the vertical (y) axis (train-time augmentation).

    The angle is drawn uniformly from ``[-max_angle, max_angle]`` (radians; default a full
    turn) from torch's global RNG. ShapeNet's up axis is +y.

    Shapes: ``points`` ``(N, 3)`` -> ``(N, 3)``.
    """

    def __init__(self, max_angle: float = math.pi):
        if max_angle < 0:
            raise ValueError(f"max_angle must be >= 0, got {max_angle}")
        self.max_angle = float(max_angle)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        _check_cloud(points)
        angle = (torch.rand(()).item() * 2.0 - 1.0) * self.max_angle
        c, s = math.cos(angle), math.sin(angle)
        # Row-vector convention: x' = x @ R^T with R rotating about +y.
        rot = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=points.dtype, device=points.device)
        return points @ rot.T

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_angle={self.max_angle:g})"


class Compose:
    """Apply several ``(N, 3) -> (N, 3)`` transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]):
        self.transforms = list(transforms)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            points = t(points)
        return points

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"{type(self).__name__}([{inner}])"
