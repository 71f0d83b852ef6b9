"""Per-shape reconstruction metrics: Chamfer distance, EMD and F-score, with per-category means.

Conventions (explicit, as everywhere in pc3d):

* ``cd``: squared euclidean point distances, the SUM of the two directional means
  (:func:`pc3d.ops.chamfer_distance`, ``squared=True``).
* ``emd``: mean matched euclidean distance over a bijection (:func:`pc3d.ops.emd`,
  ``emd_method`` ``"exact"`` or ``"approx"``; equal point counts).
* ``fscore`` at threshold ``tau`` (Tatarchenko et al., CVPR 2019; Knapitsch et al. 2017):
  ``precision`` = fraction of predicted points whose nearest target point is at euclidean
  distance ``< tau`` (the threshold is on the **distance, not the squared distance**),
  ``recall`` = fraction of target points within ``< tau`` of the prediction,
  ``fscore = 2 P R / (P + R)`` (0 when both are 0). Default ``tau = 0.01`` after unit
  normalization.

Normalization (``normalize``): the *target's* shift and scale are applied to both clouds,
so the prediction is scored in the target's frame and a wrong scale stays visible:
``"none"`` (as given), ``"unit_sphere"`` (target centroid, max norm 1), ``"unit_bbox"``
(target bbox centre, longest side 1), ``"global"`` (one shift/scale for all, ``global_stats``
``{"mean", "std"}``, or computed from the targets).

Completion fidelity without the ground truth (the UCD and UHD of ShapeInversion, Zhang et al., CVPR 2021):
:func:`unidirectional_chamfer` (``mean_i min_j ||p_i - c_j||^2``, the partial-to-completion half
of ``cd``, squared as ``cd``) and :func:`unidirectional_hausdorff` (``max_i min_j ||p_i - c_j||``,
euclidean) score how well a completion ``c`` keeps the observed partial points ``p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.geometry.normalize import unit_bbox_stats, unit_sphere_stats

__all__ = ["per_category_means", "reconstruction_metrics", "unidirectional_chamfer", "unidirectional_hausdorff"]

_METRICS = ("cd", "emd", "fscore")


def _normalize_pair(pred: Tensor, target: Tensor, normalize: str, global_stats: Any) -> tuple[Tensor, Tensor]:
    if normalize == "none":
        return pred, target
    if normalize == "unit_sphere":
        shift, scale = unit_sphere_stats(target)
    elif normalize == "unit_bbox":
        shift, scale = unit_bbox_stats(target)
    elif normalize == "global":
        if global_stats is None:
            t64 = target.to(torch.float64)
            shift = t64.reshape(-1, 3).mean(0).reshape(1, 1, 3)
            scale = t64.reshape(-1).std(unbiased=False).reshape(1, 1, 1)
        else:
            shift = torch.as_tensor(np.asarray(global_stats["mean"], dtype=np.float64)).reshape(1, 1, 3)
            scale = torch.as_tensor(float(global_stats["std"]), dtype=torch.float64).reshape(1, 1, 1)
        shift, scale = shift.to(target), scale.to(target)
    else:
        raise ValueError(f"normalize must be one of none | unit_sphere | unit_bbox | global, got {normalize!r}")
    return (pred - shift) / scale, (target - shift) / scale


@torch.no_grad()
def reconstruction_metrics(
    pred: Tensor,
    target: Tensor,
    *,
    metrics: Sequence[str] = ("cd", "fscore"),
    tau: float = 0.01,
    normalize: str = "none",
    emd_method: str = "exact",
    global_stats: Any = None,
) -> dict[str, Tensor]:
    """Per-shape metrics between predicted and target clouds.

    Args:
        pred: reconstructions / predictions. target: ground truth.
        metrics: any of ``"cd"``, ``"emd"``, ``"fscore"`` (adds ``precision`` and ``recall``).
        tau: F-score threshold on the euclidean distance (after normalization).
        normalize: see the module docstring (the target's frame is used for both).
        emd_method: ``"exact"`` or ``"approx"`` (``pc3d.ops.emd``).
        global_stats: for ``normalize="global"``.

    Returns:
        ``{name: (B,) float64 CPU tensor}`` for ``cd``, ``emd``, ``fscore``, ``precision``,
        ``recall`` as requested.

    Shapes:
        pred ``(B, N, 3)``, target ``(B, M, 3)`` (``N == M`` for EMD) -> ``(B,)`` each.
    """
    from pc3d.ops import chamfer_distance

    unknown = [m for m in metrics if m not in _METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {_METRICS}, got {tuple(metrics)!r}")
    if not float(tau) > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[-1] != 3:
            shape = tuple(t.shape) if hasattr(t, "shape") else type(t).__name__
            raise ValueError(f"{name} must be a (B, N, 3) tensor, got {shape}")
    pred, target = pred.detach(), target.detach().to(pred)
    pred, target = _normalize_pair(pred, target, normalize, global_stats)
    out: dict[str, Tensor] = {}
    if "cd" in metrics or "fscore" in metrics:
        res = chamfer_distance(pred, target, squared=True, reduction="none", return_parts=True)
        if "cd" in metrics:
            out["cd"] = res.distance.to(torch.float64).cpu()
        if "fscore" in metrics:
            from pc3d.ops.knn import gather_points

            d_pt = (pred - gather_points(target, res.idx_x_to_y)).square().sum(-1).sqrt()  # (B, N)
            d_tp = (target - gather_points(pred, res.idx_y_to_x)).square().sum(-1).sqrt()  # (B, M)
            precision = (d_pt < tau).to(torch.float64).mean(1).cpu()
            recall = (d_tp < tau).to(torch.float64).mean(1).cpu()
            denom = precision + recall
            out["fscore"] = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300),
                                        torch.zeros_like(denom))
            out["precision"] = precision
            out["recall"] = recall
    if "emd" in metrics:
        from pc3d.ops.emd import emd

        if pred.shape[1] != target.shape[1]:
            raise ValueError(f"EMD needs equal point counts, got pred N={pred.shape[1]} and target M={target.shape[1]}")
        out["emd"] = emd(pred, target, method=emd_method, squared=False, reduction="none").to(torch.float64).cpu()
    return out


def per_category_means(
    values: dict[str, Tensor], categories: Sequence[Any] | Tensor, names: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Mean of every per-shape metric within each category, plus ``"all"`` (mean over shapes).

    Args:
        values: ``{metric: (B,)}`` as returned by :func:`reconstruction_metrics` (possibly
            concatenated over batches).
        categories: ``(B,)`` category labels (ints or strings).
        names: optional display names indexed by integer label.

    Returns:
        ``{category: {metric: mean}}`` with categories in sorted order, then ``"all"``; a
        ``"count"`` entry gives the number of shapes. (The "all" row is the mean over shapes,
        not over categories.)
    """
    cats = categories.tolist() if isinstance(categories, Tensor) else list(categories)
    n = len(cats)
    for k, v in values.items():
        if len(v) != n:
            raise ValueError(f"values[{k!r}] has {len(v)} entries but there are {n} categories labels")
    out: dict[str, dict[str, float]] = {}
    for c in sorted(set(cats), key=str):
        mask = torch.tensor([x == c for x in cats])
        label = names[c] if names is not None and isinstance(c, int) and 0 <= c < len(names) else str(c)
        out[label] = {k: float(torch.as_tensor(v)[mask].to(torch.float64).mean()) for k, v in values.items()}
        out[label]["count"] = int(mask.sum())
    out["all"] = {k: float(torch.as_tensor(v).to(torch.float64).mean()) for k, v in values.items()}
    out["all"]["count"] = n
    return out


def _partial_to_completion(partial: Tensor, completion: Tensor) -> Tensor:
    """Squared distance of every partial point to its nearest completion point: (B, P) float64."""
    from pc3d.ops.knn import gather_points, nearest_indices

    for name, t in (("partial", partial), ("completion", completion)):
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[-1] != 3 or t.shape[0] < 1 or t.shape[1] < 1:
            shape = tuple(t.shape) if hasattr(t, "shape") else type(t).__name__
            raise ValueError(f"{name} must be a non-empty (B, N, 3) tensor, got {shape}")
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must hold finite floating-point coordinates ({t.dtype})")
    if partial.shape[0] != completion.shape[0]:
        raise ValueError(f"partial (B, P, 3) and completion (B, N, 3) must have the same B, got "
                         f"{tuple(partial.shape)} and {tuple(completion.shape)}")
    p = partial.detach().to(torch.float64)
    c = completion.detach().to(device=p.device, dtype=torch.float64)
    (idx,) = nearest_indices([(p, c)])
    return (p - gather_points(c, idx)).square().sum(-1)


@torch.no_grad()
def unidirectional_chamfer(partial: Tensor, completion: Tensor) -> Tensor:
    """Unidirectional Chamfer distance from a partial cloud to its completion (UCD).

    ``ucd(p, c) = mean_i min_j ||p_i - c_j||^2``: the ``x_to_y`` half of pc3d's squared Chamfer
    distance (:func:`pc3d.ops.chamfer_distance` with ``x = partial``), no normalization. It needs no
    ground truth: it measures whether the completion covers every observed point (ShapeInversion's
    UCD), and is 0 when every partial point is also a completion point.

    Args:
        partial: the observed partial clouds.
        completion: the completed clouds.

    Returns:
        ``(B,)`` float64 CPU tensor.

    Shapes:
        partial ``(B, P, 3)``, completion ``(B, N, 3)`` -> ``(B,)``.

    Raises:
        ValueError: a cloud that is not a non-empty finite ``(B, N, 3)`` floating tensor, or different ``B``.
    """
    return _partial_to_completion(partial, completion).mean(1).cpu()


@torch.no_grad()
def unidirectional_hausdorff(partial: Tensor, completion: Tensor) -> Tensor:
    """Unidirectional Hausdorff distance from a partial cloud to its completion (UHD).

    ``uhd(p, c) = max_i min_j ||p_i - c_j||``: the euclidean (not squared) distance of the partial
    point farthest from the completion, no normalization (ShapeInversion's UHD). It needs no
    ground truth, and one stray observed point the completion misses sets it.

    Args:
        partial: the observed partial clouds.
        completion: the completed clouds.

    Returns:
        ``(B,)`` float64 CPU tensor.

    Shapes:
        partial ``(B, P, 3)``, completion ``(B, N, 3)`` -> ``(B,)``.

    Raises:
        ValueError: a cloud that is not a non-empty finite ``(B, N, 3)`` floating tensor, or different ``B``.
    """
    return _partial_to_completion(partial, completion).amax(1).sqrt().cpu()
