"""Normalisation of point clouds: the one list of modes and the math (shift / scale).

Every function here accepts a single cloud ``(N, 3)`` or a batch ``(B, N, 3)``, as a
``torch.Tensor`` or a ``numpy.ndarray``, and returns the same kind (and, for tensors, the
same device). Normalization is described by a pair ``(shift, scale)``:

* single cloud: ``shift`` is ``(1, 3)`` and ``scale`` is ``(1, 1)``;
* batch: ``shift`` is ``(B, 1, 3)`` and ``scale`` is ``(B, 1, 1)``;

with ``normalized = (raw - shift) / scale`` and ``raw = normalized * scale + shift``. The
same convention is used by :class:`pc3d.data.PC15kDataset` items and batches, so a caller
can always get back to the file's coordinates with :func:`denormalize`.

Normalization modes (:data:`NORMALIZATIONS`, the names used throughout pc3d, see ``DESIGN.md``):

``none``
    the clouds as given.
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

Part of :mod:`pc3d.geometry`: imports nothing from pc3d but :mod:`pc3d.geometry.checks`.
"""

from __future__ import annotations

import numpy as np
import torch

from pc3d.geometry.checks import check_points

__all__ = [
    "NORMALIZATIONS",
    "apply_normalization",
    "denormalize",
    "normalize_unit_bbox",
    "normalize_unit_sphere",
    "unit_bbox_stats",
    "unit_sphere_stats",
]

#: Accepted ``normalize`` values everywhere in pc3d (data sets, metrics, FPD).
NORMALIZATIONS = ("none", "unit_sphere", "unit_bbox", "global")

Array = torch.Tensor | np.ndarray


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
    check_points(points)
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
    check_points(points)
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
    check_points(points)
    return (points - shift) / scale


def denormalize(points: Array, shift: Array, scale: Array) -> Array:
    """Inverse of :func:`apply_normalization`: ``points * scale + shift``.

    Shapes: as :func:`apply_normalization`.
    """
    check_points(points)
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
