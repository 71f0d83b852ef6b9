"""Masks for GAN inversion of partial clouds (ShapeInversion, Zhang et al., CVPR 2021) and the masked Chamfer.

A partial cloud (a depth sensor's view of one side) is compared with the part of the generated
cloud it could have seen: a **mask** keeps generated points near the partial one, and the
Chamfer distance is taken between the partial cloud and the kept points only. Three masks:

* :func:`knn_mask` (ShapeInversion's k-nearest-neighbour mask): keep every generated point that is
  among the ``k`` nearest generated points of at least one partial point;
* :func:`distance_mask`: keep generated points within ``tau`` (euclidean) of the partial cloud;
* :func:`voxel_mask`: keep generated points whose voxel (a grid of cubes of side ``voxel_size``
  anchored at the origin, voxel ``floor(p / voxel_size)``) holds at least one partial point.

Partial clouds of one batch may have different sizes: every function takes either a list of
``(P_b, 3)`` tensors, or a padded ``(B, P, 3)`` tensor with ``lengths`` ``(B,)`` (points
``lengths[b]:`` of cloud ``b`` are padding and ignored); :func:`pad_clouds` turns a list into
the padded form. No autograd (masks are index sets). Two exact back-ends for the distance
masks (``backend=``): ``"torch"`` computes distances point by point (``torch.cdist`` without the
matrix-product shortcut) in chunks of ``chunk`` points, so memory stays ``O(chunk * N)`` per
cloud (any device); ``"kdtree"`` queries scipy KD-trees in float64 (CPU; ~10x faster there).
``"auto"`` (default) takes ``kdtree`` for CPU tensors and ``torch`` otherwise. :func:`voxel_mask`
is torch only (integer voxel keys and ``torch.isin``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.ops.knn import gather_points, nearest_indices, resolve_backend, to_numpy64

__all__ = ["MASK_KINDS", "distance_mask", "knn_mask", "make_mask", "masked_chamfer", "pad_clouds", "voxel_mask"]

#: The mask kinds :func:`make_mask` knows, with the name of their size parameter.
MASK_KINDS = {"knn": "k", "distance": "tau", "voxel": "voxel_size"}

_CHUNK = 1024


def pad_clouds(clouds: Sequence[Tensor] | Tensor, lengths: Tensor | Sequence[int] | None = None,
               *, name: str = "partial") -> tuple[Tensor, Tensor]:
    """Validate partial clouds and return them padded, with their lengths.

    Args:
        clouds: a list of ``(P_b, 3)`` tensors, or a ``(B, P, 3)`` tensor.
        lengths: with a tensor: the number of real points of each cloud (default: all ``P``).
        name: how error messages call the input.

    Returns:
        ``(padded (B, P_max, 3), lengths (B,) int64)``; padding repeats each cloud's first point.

    Raises:
        ValueError: an empty batch, an empty cloud, a wrong shape, NaN / inf coordinates among the
        real points, or lengths out of ``[1, P]`` (the message names ``name``).
    """
    if isinstance(clouds, Tensor):
        if clouds.dim() != 3 or clouds.shape[-1] != 3:
            raise ValueError(f"{name}: expected clouds of shape (B, P, 3), got {tuple(clouds.shape)}")
        b, p, _ = clouds.shape
        if b == 0 or p == 0:
            raise ValueError(f"{name}: empty cloud batch of shape {tuple(clouds.shape)}")
        if lengths is None:
            lens = torch.full((b,), p, dtype=torch.long, device=clouds.device)
        else:
            lens = torch.as_tensor(lengths, dtype=torch.long, device=clouds.device).reshape(-1)
            if lens.shape[0] != b:
                raise ValueError(f"{name}: {lens.shape[0]} lengths for {b} clouds")
            if bool((lens < 1).any()) or bool((lens > p).any()):
                raise ValueError(f"{name}: lengths must be in [1, {p}] (an empty cloud cannot be fitted), "
                                 f"got {lens.tolist()}")
        valid = torch.arange(p, device=clouds.device)[None] < lens[:, None]
        if not bool(torch.isfinite(clouds).all(-1)[valid].all()):
            raise ValueError(f"{name}: NaN or infinite coordinates")
        first = clouds[:, :1].expand_as(clouds)
        return torch.where(valid[..., None], clouds, first), lens
    clouds = list(clouds)
    if not clouds:
        raise ValueError(f"{name}: no clouds")
    for i, c in enumerate(clouds):
        if not isinstance(c, Tensor) or c.dim() != 2 or c.shape[-1] != 3:
            shape = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
            raise ValueError(f"{name}[{i}]: expected a cloud of shape (P, 3), got {shape}")
        if c.shape[0] == 0:
            raise ValueError(f"{name}[{i}]: the cloud is empty (shape (0, 3))")
        if not bool(torch.isfinite(c).all()):
            raise ValueError(f"{name}[{i}]: NaN or infinite coordinates")
    lens = torch.tensor([c.shape[0] for c in clouds], dtype=torch.long, device=clouds[0].device)
    p = int(lens.max())
    out = clouds[0].new_empty((len(clouds), p, 3))
    for i, c in enumerate(clouds):
        out[i, : c.shape[0]] = c
        out[i, c.shape[0]:] = c[0]
    return out, lens


def _check_generated(generated: Tensor, b: int) -> None:
    if not isinstance(generated, Tensor) or generated.dim() != 3 or generated.shape[-1] != 3:
        shape = tuple(generated.shape) if isinstance(generated, Tensor) else type(generated).__name__
        raise ValueError(f"generated: expected clouds of shape (B, N, 3), got {shape}")
    if generated.shape[0] != b:
        raise ValueError(f"generated: {generated.shape[0]} clouds but {b} partial clouds")
    if generated.shape[1] == 0:
        raise ValueError("generated: empty clouds (N = 0)")


def _dist(a: Tensor, b: Tensor) -> Tensor:
    """Exact euclidean distances (no ``|a|^2 - 2ab + |b|^2`` cancellation): (P, 3), (N, 3) -> (P, N)."""
    return torch.cdist(a[None], b[None], compute_mode="donot_use_mm_for_euclid_dist")[0]


def knn_mask(generated: Tensor, partial: Sequence[Tensor] | Tensor, k: int, lengths: Tensor | None = None,
             *, backend: str = "auto", chunk: int = _CHUNK) -> Tensor:
    """ShapeInversion's k-nearest-neighbour mask.

    ``mask[b, n]`` is True iff generated point ``n`` is among the ``k`` generated points nearest
    to some (real) partial point of cloud ``b``. Ties are broken by index (``torch.topk``'s order
    is not specified for equal distances; with distinct distances the set is exact).
    ``k >= N`` keeps everything.

    Shapes:
        generated: ``(B, N, 3)``; partial: list of ``(P_b, 3)`` or ``(B, P, 3)`` with
        lengths ``(B,)``; returns ``(B, N)`` bool.
    """
    part, lens = pad_clouds(partial, lengths)
    _check_generated(generated, part.shape[0])
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"mask.k must be an int >= 1, got {k!r}")
    g = generated.detach()
    n = g.shape[1]
    kk = min(k, n)
    mask = torch.zeros(g.shape[:2], dtype=torch.bool, device=g.device)
    if resolve_backend(backend, g.device) == "kdtree":
        from scipy.spatial import cKDTree

        for b in range(g.shape[0]):
            _, idx = cKDTree(to_numpy64(g[b])).query(to_numpy64(part[b, : int(lens[b])]), k=kk)
            mask[b, torch.from_numpy(idx.reshape(-1)).to(g.device)] = True
        return mask
    with torch.no_grad():
        for b in range(g.shape[0]):
            pb = part[b, : int(lens[b])].to(g.dtype)
            for s in range(0, pb.shape[0], chunk):
                idx = _dist(pb[s: s + chunk], g[b]).topk(kk, dim=1, largest=False).indices  # (c, k)
                mask[b, idx.reshape(-1)] = True
    return mask


def distance_mask(generated: Tensor, partial: Sequence[Tensor] | Tensor, tau: float, lengths: Tensor | None = None,
                  *, backend: str = "auto", chunk: int = _CHUNK) -> Tensor:
    """Keep generated points within ``tau`` of the partial cloud: ``min_j ||g_n - p_j|| <= tau``.

    Shapes:
        generated: ``(B, N, 3)``; partial: list of ``(P_b, 3)`` or ``(B, P, 3)`` with
        lengths ``(B,)``; returns ``(B, N)`` bool.
    """
    part, lens = pad_clouds(partial, lengths)
    _check_generated(generated, part.shape[0])
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
        raise ValueError(f"mask.tau must be a number > 0, got {tau!r}")
    g = generated.detach()
    out = torch.zeros(g.shape[:2], dtype=torch.bool, device=g.device)
    if resolve_backend(backend, g.device) == "kdtree":
        from scipy.spatial import cKDTree

        for b in range(g.shape[0]):
            d, _ = cKDTree(to_numpy64(part[b, : int(lens[b])])).query(to_numpy64(g[b]), k=1)
            out[b] = torch.from_numpy(d <= tau).to(g.device)
        return out
    with torch.no_grad():
        for b in range(g.shape[0]):
            pb = part[b, : int(lens[b])].to(g.dtype)
            for s in range(0, g.shape[1], chunk):
                d = _dist(g[b, s: s + chunk], pb).amin(dim=1)
                out[b, s: s + chunk] = d <= tau
    return out


def voxel_mask(generated: Tensor, partial: Sequence[Tensor] | Tensor, voxel_size: float,
               lengths: Tensor | None = None) -> Tensor:
    """Keep generated points whose voxel holds a partial point.

    Voxels are the cubes ``[i, i+1) * voxel_size`` (per axis) of a grid anchored at the origin:
    point ``p`` is in voxel ``floor(p / voxel_size)``.

    Shapes:
        generated: ``(B, N, 3)``; partial: list of ``(P_b, 3)`` or ``(B, P, 3)`` with
        lengths ``(B,)``; returns ``(B, N)`` bool.
    """
    part, lens = pad_clouds(partial, lengths)
    _check_generated(generated, part.shape[0])
    if isinstance(voxel_size, bool) or not isinstance(voxel_size, int | float) or not voxel_size > 0:
        raise ValueError(f"mask.voxel_size must be a number > 0, got {voxel_size!r}")
    g = generated.detach()
    out = torch.zeros(g.shape[:2], dtype=torch.bool, device=g.device)
    with torch.no_grad():
        for b in range(g.shape[0]):
            pv = torch.floor(part[b, : int(lens[b])].double() / voxel_size).long()  # (P, 3)
            gv = torch.floor(g[b].double() / voxel_size).long()  # (N, 3)
            lo = torch.minimum(pv.amin(0), gv.amin(0))
            span = int((torch.maximum(pv.amax(0), gv.amax(0)) - lo).max()) + 1
            if span ** 3 >= 2 ** 62:
                raise ValueError(f"mask.voxel_size={voxel_size} is too small for clouds this large "
                                 f"({span} voxels a side)")

            def key(v: Tensor, lo=lo, span=span) -> Tensor:
                v = v - lo
                return (v[:, 0] * span + v[:, 1]) * span + v[:, 2]

            out[b] = torch.isin(key(gv), key(pv))
    return out


def make_mask(kind: str, generated: Tensor, partial: Sequence[Tensor] | Tensor, lengths: Tensor | None = None,
              **sizes) -> Tensor:
    """The mask ``kind`` (``knn`` / ``distance`` / ``voxel``) with its size from ``sizes`` (``k`` / ``tau`` /
    ``voxel_size``; other sizes are ignored). Raises ``ValueError`` naming ``mask.kind`` for an unknown kind.

    Shapes: as :func:`knn_mask`: ``(B, N, 3)``, partial -> ``(B, N)`` bool.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask.kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
    size = sizes.get(MASK_KINDS[kind])
    if size is None:
        raise ValueError(f"mask.kind={kind} needs mask.{MASK_KINDS[kind]}")
    fn = {"knn": knn_mask, "distance": distance_mask, "voxel": voxel_mask}[kind]
    return fn(generated, partial, size, lengths)


def masked_chamfer(generated: Tensor, partial: Sequence[Tensor] | Tensor, mask: Tensor | None = None,
                   lengths: Tensor | None = None) -> Tensor:
    """Chamfer distance between each partial cloud and the kept points of its generated cloud.

    Per cloud ``b`` with real partial points ``P_b`` and kept points ``G_b = {g_n : mask[b, n]}``::

        cd_b = mean_{p in P_b} min_{g in G_b} ||p - g||^2 + mean_{g in G_b} min_{p in P_b} ||g - p||^2

    (squared distances, the two means summed: pc3d's Chamfer convention, :func:`pc3d.ops.chamfer_distance`).
    ``mask=None`` keeps every point (the plain Chamfer distance). A cloud whose mask keeps no point
    falls back to its whole generated cloud. Differentiable w.r.t. ``generated`` (nearest
    neighbours are found without autograd by :func:`pc3d.ops.knn.nearest_indices`, then the
    distances rebuilt from the gathered points, as ``chamfer_distance`` does).

    Shapes:
        generated: ``(B, N, 3)``; partial: list of ``(P_b, 3)`` or ``(B, P, 3)`` with lengths
        ``(B,)``; mask: ``(B, N)`` bool or None; returns ``(B,)``.
    """
    part, lens = pad_clouds(partial, lengths)
    _check_generated(generated, part.shape[0])
    if mask is not None and (mask.shape != generated.shape[:2] or mask.dtype != torch.bool):
        raise ValueError(f"mask: expected a bool tensor of shape {tuple(generated.shape[:2])}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    part = part.to(generated.dtype)
    kept, parts = [], []
    for b in range(generated.shape[0]):
        keep = generated[b] if mask is None or not bool(mask[b].any()) else generated[b][mask[b]]
        kept.append(keep[None])
        parts.append(part[b, : int(lens[b])][None])
    pairs = [pair for b in range(len(kept)) for pair in ((parts[b], kept[b]), (kept[b], parts[b]))]
    idx = nearest_indices(pairs)
    out = []
    for b in range(len(kept)):
        p_to_g = (parts[b] - gather_points(kept[b], idx[2 * b])).square().sum(-1).mean()
        g_to_p = (kept[b] - gather_points(parts[b], idx[2 * b + 1])).square().sum(-1).mean()
        out.append(p_to_g + g_to_p)
    return torch.stack(out)
