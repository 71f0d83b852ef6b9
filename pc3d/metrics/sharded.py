"""Sharded evaluation: the distance matrices (or nearest-neighbour queries) of the generation
metrics split by rows across the ranks of a ``torch.distributed`` process group, then gathered.

Every rank takes a contiguous block of rows (balanced by the number of pairs: a symmetric matrix
only has its ``i < j`` pairs, so its early rows are longer), computes the pairs of its rows with
:func:`pc3d.metrics.pairwise.pair_distances` (the very function the single-process matrices use)
and ``all_gather``\\ s the values; every rank then holds the full result. On the CPU a pair's
value does not depend on the process or batch that computed it (numba Chamfer, EMD via
:func:`pc3d.ops.emd.emd_pair_values`), so the metrics are **bit-identical** to one process.
The pruned EMD queries (:func:`pc3d.metrics.emd_nn.nearest_emd`) are split the same way by
query cloud, and FPD features by whole classifier batches (:func:`pc3d.metrics.fpd.compute_features`,
identical features as long as every rank runs the same number of intra-op threads).

Only ``torch.distributed`` is used (no Lightning): the caller initialises the process group
(``pc3d-eval`` does it from the environment of ``torchrun`` / SLURM). ``gloo`` gathers CPU
tensors, ``nccl`` CUDA tensors of the current device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.metrics.pairwise import as_clouds, fill_matrix, pair_distances, pair_list

__all__ = ["all_gather_rows", "rank_and_size", "row_blocks", "sharded_distance_matrix", "sharded_nearest_emd"]


def rank_and_size(group: Any) -> tuple[int, int]:
    """``(rank, world size)`` in ``group`` (``None``: one process, ``(0, 1)``)."""
    if group is None:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("a process group was given but torch.distributed is not initialised")
    return dist.get_rank(group), dist.get_world_size(group)


def row_blocks(n_rows: int, world: int, weights: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Split ``range(n_rows)`` into ``world`` contiguous blocks of about equal total ``weights``.

    Shapes: weights ``(n_rows,)`` (default: all ones) -> ``world`` pairs ``(start, stop)``.
    """
    w = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    total = cum[-1]
    bounds = [0]
    for r in range(1, world):
        bounds.append(int(np.searchsorted(cum, total * r / world, side="left")) if total > 0 else n_rows * r // world)
        bounds[-1] = max(bounds[-1], bounds[-2])
    bounds.append(n_rows)
    return [(bounds[r], bounds[r + 1]) for r in range(world)]


def all_gather_rows(local: Tensor, counts: list[int], group: Any) -> Tensor:
    """Concatenate, in rank order, every rank's ``local`` rows (``counts[r]`` rows on rank ``r``).

    Pads to the largest count for ``all_gather`` (gloo needs equal sizes), then trims.

    Shapes: local ``(counts[rank], *F)`` -> ``(sum(counts), *F)``, same dtype, on the CPU.
    """
    import torch.distributed as dist

    rank, world = rank_and_size(group)
    if world == 1:
        return local
    if local.shape[0] != counts[rank]:
        raise ValueError(f"rank {rank} holds {local.shape[0]} rows, expected counts[{rank}] = {counts[rank]}")
    device = torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    m = max(counts)
    pad = torch.zeros((m, *local.shape[1:]), dtype=local.dtype, device=device)
    pad[: local.shape[0]] = local.to(device)
    parts = [torch.empty_like(pad) for _ in range(world)]
    dist.all_gather(parts, pad, group=group)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).cpu()


def sharded_distance_matrix(
    a: Any,
    b: Any = None,
    *,
    group: Any = None,
    distance: str = "cd",
    backend: str = "auto",
    emd_method: str = "exact",
    emd_tol: float = 1e-2,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """:func:`pc3d.metrics.pairwise.distance_matrix`, rows split across the ranks of ``group``.

    Rank ``r`` computes the pairs of its contiguous row block (balanced by pair count; for the
    symmetric ``b=None`` matrix only ``i < j``), all ranks gather them; every rank returns the
    full matrix, bit-identical to ``distance_matrix`` in one process on the CPU. ``group=None``
    runs everything here. ``backend`` ``"auto"`` / ``"numba"`` / ``"torch"`` (``"kdtree"``
    computes whole matrices only). ``progress(done, total)`` counts this rank's pairs.

    Shapes: a ``(A, N, 3)``, b ``(B, M, 3)`` or None -> float64 CPU ``(A, B)`` (``(A, A)``).
    """
    a = as_clouds(a, "a")
    b = None if b is None else as_clouds(b, "b").to(device=a.device, dtype=a.dtype)
    rank, world = rank_and_size(group)
    A = a.shape[0]
    B = None if b is None else b.shape[0]
    per_row = np.full(A, B, dtype=np.float64) if B is not None else (A - 1 - np.arange(A)).astype(np.float64)
    blocks = row_blocks(A, world, per_row)
    ii, jj = pair_list(A, B, blocks[rank])
    vals = pair_distances(a, b, ii, jj, distance=distance, backend=backend, emd_method=emd_method, emd_tol=emd_tol,
                          batch_size=batch_size, progress=progress)
    counts = [int(per_row[r0:r1].sum()) for r0, r1 in blocks]
    allv = all_gather_rows(torch.from_numpy(vals), counts, group).numpy()
    ii, jj = pair_list(A, B)
    return fill_matrix(A, A if B is None else B, ii, jj, allv, symmetric=B is None)


def sharded_nearest_emd(samples: Tensor, refs: Tensor, *, group: Any = None, **kwargs: Any):
    """:func:`pc3d.metrics.emd_nn.nearest_emd` for all ``S + R`` union clouds, queries split across ranks.

    Every rank answers a contiguous block of query clouds and gathers the others' answers; each
    query's answer is exact and deterministic, so the result equals the single-process one.
    ``n_emd`` / ``n_bound`` / ``n_abandoned`` of the result are summed over ranks (a pair may be solved on two
    ranks).

    Shapes: samples ``(S, N, 3)``, refs ``(R, N, 3)`` -> :class:`NearestEMD` with ``(S + R, 2)`` arrays.
    """
    from pc3d.metrics.emd_nn import NearestEMD, nearest_emd

    rank, world = rank_and_size(group)
    K = samples.shape[0] + refs.shape[0]
    blocks = row_blocks(K, world)
    r0, r1 = blocks[rank]
    res = nearest_emd(samples, refs, queries=np.arange(r0, r1), **kwargs)
    if world == 1:
        return res
    counts = [q1 - q0 for q0, q1 in blocks]
    value = all_gather_rows(torch.from_numpy(res.value), counts, group).numpy()
    index = all_gather_rows(torch.from_numpy(res.index), counts, group).numpy()
    ties = all_gather_rows(torch.from_numpy(res.ties), counts, group).numpy()
    n = all_gather_rows(torch.tensor([[res.n_emd, res.n_bound, res.n_abandoned]], dtype=torch.int64), [1] * world,
                        group).sum(0)
    return NearestEMD(value, index, ties, int(n[0]), int(n[1]), int(n[2]))
