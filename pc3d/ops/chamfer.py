"""Chamfer distance between batches of point clouds (differentiable, exact).

Convention (PointFlow / latent_3d_points, the default here): for one pair of clouds
``x = {x_i}`` (N points) and ``y = {y_j}`` (M points)::

    cd(x, y) = mean_i min_j d(x_i, y_j)  +  mean_j min_i d(y_j, x_i)
               '------ x_to_y ------'      '------ y_to_x ------'

i.e. the SUM of the two directional means (not their average), with
``d(a, b) = ||a - b||^2`` (``squared=True``, default) or ``||a - b||`` (``squared=False``).

How it is computed: nearest-neighbour indices are found without autograd by
:func:`pc3d.ops.knn.nearest_indices` (scipy KD-trees on CPU, a tiled matmul brute force on
CUDA), then the distances are rebuilt in torch from the gathered points. The forward value
is therefore exact (no ``||x||^2 - 2x.y + ||y||^2`` cancellation), and the backward pass is
``O(B (N + M))``: ``d cd / d x_i = 2 (x_i - y_nn(i)) / N`` from the first term plus the
contributions of every ``y_j`` whose nearest point is ``x_i`` in the second, and likewise
for ``y``. The gradient is the exact gradient wherever the nearest neighbours are unique
(almost everywhere); at ties one of the tied neighbours is used. With ``squared=False`` the
gradient of ``||a - b||`` at ``a == b`` is taken as 0 (no NaN).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from pc3d.geometry.checks import validate_pair
from pc3d.ops.common import reduce_per_cloud, safe_sqrt
from pc3d.ops.knn import gather_points, nearest_indices

__all__ = ["ChamferResult", "chamfer_distance"]

_REDUCTIONS = ("mean", "sum", "none")


class ChamferResult(NamedTuple):
    """Chamfer distance with its parts (``return_parts=True``).

    Attributes:
        distance: the Chamfer distance reduced as requested: ``()`` for ``"mean"`` /
            ``"sum"``, ``(B,)`` for ``"none"``.
        x_to_y: ``(B,)`` per cloud ``mean_i min_j d(x_i, y_j)``.
        y_to_x: ``(B,)`` per cloud ``mean_j min_i d(y_j, x_i)``.
        idx_x_to_y: ``(B, N)`` int64, index in ``y`` of the nearest point of each ``x_i``.
        idx_y_to_x: ``(B, M)`` int64, index in ``x`` of the nearest point of each ``y_j``.

    With ``reduction="none"``, ``distance == x_to_y + y_to_x``.
    """

    distance: Tensor
    x_to_y: Tensor
    y_to_x: Tensor
    idx_x_to_y: Tensor
    idx_y_to_x: Tensor


def chamfer_distance(
    x: Tensor,
    y: Tensor,
    *,
    squared: bool = True,
    reduction: str = "mean",
    return_parts: bool = False,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> Tensor | ChamferResult:
    """Chamfer distance ``mean_i min_j d(x_i, y_j) + mean_j min_i d(y_j, x_i)`` per cloud pair.

    ``d`` is the squared euclidean distance when ``squared=True`` (default; the PointFlow
    and latent_3d_points convention) and the euclidean distance otherwise. The two
    directional means are SUMMED. Differentiable w.r.t. both ``x`` and ``y``.

    Args:
        x: first batch of clouds.
        y: second batch of clouds (same ``B``; ``M`` may differ from ``N``).
        squared: squared euclidean (True) or euclidean (False) point distance.
        reduction: ``"mean"`` over the batch (scalar), ``"sum"`` over the batch (scalar) or
            ``"none"`` (one value per cloud pair).
        return_parts: return a :class:`ChamferResult` with the per-direction terms and the
            nearest-neighbour indices instead of the distance alone.
        backend: nearest-neighbour search, ``"auto"`` (KD-tree on CPU, tiled matmul on
            CUDA), ``"kdtree"`` or ``"torch"``; see :func:`pc3d.ops.nearest_neighbors`.
        chunk_size: ``"torch"`` back-end only: the most query points scored at once;
            ``None`` bounds a tile by ~128 MiB.

    Returns:
        The distance in the dtype and on the device of ``x`` (a :class:`ChamferResult` if
        ``return_parts``).

    Shapes:
        x: ``(B, N, 3)``, y: ``(B, M, 3)`` -> ``()`` for ``"mean"``/``"sum"``, ``(B,)`` for
        ``"none"``. Parts: ``x_to_y, y_to_x: (B,)``, ``idx_x_to_y: (B, N)``,
        ``idx_y_to_x: (B, M)``.

    Cost:
        search: CPU ``O(B (N + M) log(N + M))`` over a thread pool (~80 ms for B=32,
        N=M=2048 on 2 cores), CUDA ``O(B N M)`` in bounded tiles; loss and backward
        ``O(B (N + M))`` time and memory (no ``N x M`` matrix is kept for autograd).

    Raises:
        ValueError: bad shape (expected ``(B, N, 3)``), empty clouds, different batch sizes,
            dtypes or devices, NaN/inf coordinates, unknown ``reduction`` or ``backend``.
        TypeError: non-tensor or non-floating-point input.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    validate_pair(x, y)
    idx_xy, idx_yx = nearest_indices([(x, y), (y, x)], backend=backend, chunk_size=chunk_size)

    d_xy = (x - gather_points(y, idx_xy)).square().sum(-1)  # (B, N)
    d_yx = (y - gather_points(x, idx_yx)).square().sum(-1)  # (B, M)
    if not squared:
        d_xy = safe_sqrt(d_xy)
        d_yx = safe_sqrt(d_yx)
    x_to_y = d_xy.mean(dim=1)
    y_to_x = d_yx.mean(dim=1)
    per_cloud = x_to_y + y_to_x

    distance = reduce_per_cloud(per_cloud, reduction)
    if return_parts:
        return ChamferResult(distance, x_to_y, y_to_x, idx_xy, idx_yx)
    return distance
