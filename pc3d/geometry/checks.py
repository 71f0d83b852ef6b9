"""Input validation of point clouds, shared by every layer above (ops, nn, data, metrics).

One policy everywhere:

* ``TypeError``: the input is not a ``torch.Tensor`` (or, for :func:`check_points`, not a
  tensor / ``numpy.ndarray``), or is not floating point;
* ``ValueError``: wrong number of dimensions, wrong last dimension, empty, batch sizes /
  dtypes / devices that do not match, NaN or inf (the message names the expected shape).

:func:`check_cloud` is the cheap structural check (networks call it on every forward);
:func:`validate_cloud` / :func:`validate_pair` add the finiteness check (the ops' public
boundary). Standard library, NumPy and torch only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["all_finite", "check_cloud", "check_points", "check_single_cloud", "validate_cloud", "validate_pair"]

_NUMPY_DTYPES = (torch.float32, torch.float64)


def check_cloud(t: object, name: str = "x", dims: int = 3) -> None:
    """Raise unless ``t`` is a non-empty ``(B, N, dims)`` floating-point tensor.

    Shapes:
        t: ``(B, N, dims)`` with ``B, N >= 1``.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong shape, or empty.
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, N, {dims}), got {type(t).__name__}")
    if t.dim() != 3 or t.shape[-1] != dims:
        raise ValueError(f"{name} must have shape (B, N, {dims}), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got {t.dtype}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty batch of non-empty clouds, shape (B, N, {dims}) with B >= 1 "
            f"and N >= 1, got {tuple(t.shape)}"
        )


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite (no autograd, any shape)."""
    t = t.detach()
    if t.device.type == "cpu" and t.dtype in _NUMPY_DTYPES:
        # numpy runs this single-threaded: no OpenMP barrier, which on a busy 2-core machine
        # costs a scheduler tick per torch op.
        return bool(np.isfinite(t.numpy()).all())
    return bool(torch.isfinite(t).all())


def validate_cloud(x: Tensor, name: str = "x") -> None:
    """Check one batch of point clouds at a public boundary.

    Shapes:
        x: ``(B, N, 3)`` with ``B, N >= 1``.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong shape, empty, NaN or inf.
    """
    check_cloud(x, name)
    if not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite coordinates; expected finite values")


def validate_pair(x: Tensor, y: Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Check two batches of point clouds at a public boundary.

    Shapes:
        x: ``(B, N, 3)``, y: ``(B, M, 3)``, both with ``B, N, M >= 1``, same dtype and device.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong shape, empty, batch sizes / dtypes / devices differ, NaN or inf.
    """
    nx, ny = names
    check_cloud(x, nx)
    check_cloud(y, ny)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{nx} and {ny} must have the same batch size B (shapes (B, N, 3) and (B, M, 3)), "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dtype != y.dtype:
        raise ValueError(f"{nx} and {ny} must have the same dtype, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"{nx} and {ny} must be on the same device, got {x.device} and {y.device}")
    for t, name in ((x, nx), (y, ny)):
        if not all_finite(t):
            raise ValueError(f"{name} contains NaN or infinite coordinates; expected finite values")


def check_points(points: object, name: str = "points") -> None:
    """Raise unless ``points`` is one cloud ``(N, 3)`` or a batch ``(B, N, 3)`` with ``N >= 1``,
    as a ``torch.Tensor`` or ``numpy.ndarray`` (the normalisation functions' inputs).

    Raises:
        TypeError: neither a tensor nor an array.
        ValueError: wrong shape, or no points.
    """
    if not isinstance(points, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(points).__name__}")
    if points.ndim not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (B, N, 3), got {tuple(points.shape)}")
    if points.shape[-2] == 0:
        raise ValueError(f"{name} must contain at least one point, got shape {tuple(points.shape)}")


def check_single_cloud(points: object, name: str = "points") -> None:
    """Raise unless ``points`` is one ``(N, 3)`` tensor (the augmentations' input).

    Raises:
        TypeError: not a tensor.
        ValueError: not of shape ``(N, 3)``.
    """
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name}: expected a (N, 3) torch.Tensor, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"{name}: expected a (N, 3) torch.Tensor, got {tuple(points.shape)}")
