"""Augmentation of point clouds.

The normalisation functions (``unit_sphere_stats``, ``apply_normalization``, ...) live in one
module, :mod:`pc3d.geometry.normalize` (the modes, the ``(shift, scale)`` convention and the
degenerate-cloud rule are documented there).

The augmentations (:class:`RandomScaleShift`, :class:`RandomRotateY`, :class:`Compose`) act
on one cloud ``(N, 3)`` tensor, draw from torch's global RNG (so they are reproducible under
``lightning.seed_everything(..., workers=True)``) and are off unless passed explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from pc3d.geometry.checks import check_single_cloud

__all__ = [
    "Compose",
    "RandomRotateY",
    "RandomScaleShift",
]


# --------------------------------------------------------------------------- augmentation
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
        check_single_cloud(points)
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
        check_single_cloud(points)
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
