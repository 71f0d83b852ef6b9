"""Metrics for point-cloud generators: MMD, COV, 1-NNA (with CD or EMD) and JSD.

The protocol follows PointFlow (Yang et al., ICCV 2019) and latent_3d_points (Achlioptas et
al., ICML 2018); every choice they leave implicit is an explicit argument here.

Distances between two clouds
    ``"cd"``: Chamfer distance, **squared** euclidean point distances, the **sum** of the two
    directional means: ``mean_i min_j |x_i - y_j|^2 + mean_j min_i |y_j - x_i|^2``
    (:func:`pc3d.ops.chamfer_distance` with ``squared=True``). Exact.
    ``"emd"``: earth mover's distance, the **mean matched euclidean** (not squared) distance
    over a bijection between the two clouds (equal point counts), i.e. the optimal
    assignment cost divided by ``N`` (:func:`pc3d.ops.emd`; ``emd_method="exact"`` solves the
    assignment exactly, ``"approx"`` uses the approximate solver of ``pc3d.ops.emd``, as
    PointFlow does on GPU).

Metrics (``S`` generated clouds, ``R`` reference clouds, ``D`` the ``(S, R)`` distance matrix)
    MMD: ``mean_r min_s D[s, r]`` (mean over references of the distance to the closest sample;
    lower is better).
    COV: ``|{argmin_r D[s, r] : s}| / R``, the fraction of references that are the nearest
    reference of at least one sample (higher is better). Ties in the argmin go to the lowest
    reference index.
    1-NNA: leave-one-out 1-nearest-neighbour classification over the union of both sets
    (labels "sample" / "reference"); the accuracy over all ``S + R`` clouds, and over each
    side (``_sample``: fraction of samples whose nearest other cloud is a sample, ``_ref``:
    likewise for references). 0.5 is ideal; 1.0 means the sets are perfectly separable.
    **Ties**: when several clouds are at exactly the same minimal distance, a cloud counts
    as ``(#tied neighbours from its own set) / (#tied neighbours)``, the expected accuracy of
    a classifier that picks uniformly among the tied neighbours. PointFlow's ``topk`` picks
    one of them arbitrarily; with continuous data ties do not happen, and with identical
    sets (each cloud's nearest other cloud is its exact copy in the other set, distance 0)
    1-NNA is 0.
    JSD: Jensen-Shannon divergence (base 2, in [0, 1]) between the per-cell point counts of
    the two sets on a ``28^3`` grid of cell centres spanning ``[-0.5, 0.5]^3``, keeping only
    the centres inside the sphere of radius 0.5 (``in_sphere=True``, as PointFlow and
    latent_3d_points call it); every point counts in the cell of its nearest kept centre.
    Points outside the sphere (or the cube when ``in_sphere=False``) still count in the
    nearest boundary cell, and a ``UserWarning`` says how many there were (latent_3d_points
    warns too): normalize the clouds so that they fit (``normalize="unit_bbox"`` fits the
    cube; ``unit_sphere`` radius 1 does NOT fit the 0.5 sphere).

Normalization (``normalize``), applied to both sets before any metric
    ``"none"``: clouds are scored as given (PointFlow de-normalizes samples and references
    to the data's coordinates and scores them as they are).
    ``"unit_sphere"`` / ``"unit_bbox"``: each cloud on its own, see
    :mod:`pc3d.geometry.normalize` (centroid & max norm 1 / bbox centre & longest side 1).
    ``"global"``: one shift (per-axis mean) and one scalar scale (std of all coordinates) for
    both sets, taken from ``global_stats`` (``{"mean": [3], "std": float}`` as written by
    :func:`pc3d.data.pc15k.compute_global_stats`) or, when not given, computed from the
    reference set.

Cost
    CD on CPU (``backend="auto"`` picks ``"numba"`` when numba is installed): a compiled brute
    force (:mod:`pc3d.metrics._chamfer_pairs`) gets BOTH directional terms of a pair from one
    SIMD pass over its ``N x M`` squared distances, computed from coordinate differences in
    the input precision (float32 clouds in float32, float64 in float64; means in float64); the
    pairs of a matrix run on a thread pool, only ``i < j`` for same-set matrices. ~0.7 ms per
    pair at ``N = M = 2048`` (float32, one core of the benchmark machine): the three matrices
    of 100 vs 100 clouds (19,900 pairs) take ~7-14 s on 2 cores.
    ``backend="kdtree"``: one KD-tree per cloud is built once, and every directional term
    ``mean_i min_j |a_i - b_j|^2`` is computed once in float64: the ``(S, R)`` matrix costs
    ``2 S R`` directional queries and a same-set ``(S, S)`` matrix ``S (S - 1)`` (symmetry
    reused); ~2 us per query point between different shapes, ~8 ms per pair at 2048 points.
    On CUDA (or ``backend="torch"``) pairs are batched through ``chamfer_distance`` (and
    ``emd`` for EMD) ``batch_size`` pairs at a time, only ``i < j`` for same-set matrices.
    Memory is bounded by one batch of pairs (or one chunk of query points), never
    ``O(S R N)``; the matrices themselves are ``(S, R)`` float64 on the CPU.

EMD without the full matrices (``emd_pruning=True``, the default)
    MMD, COV and 1-NNA only use per-row minima; :func:`pc3d.metrics.emd_nn.nearest_emd` finds
    them exactly, solving the EMD only for pairs whose lower bounds (centroid distance, sliced
    W1, mean nearest-point distance; proofs in its module docstring) do not exclude them. The
    values (hence the metrics) are bit-identical to those of the full matrices of the same
    solver on the CPU; the auction's own tolerance (``emd_tol``, each EMD within ``[1, 1 + tol]``
    of the exact one) is unchanged. ``emd_pruning=False`` computes the three full matrices.

Sharded evaluation (``group=``, a ``torch.distributed`` process group)
    The matrices (or the pruned queries) are split by contiguous row blocks across the ranks
    and gathered (:mod:`pc3d.metrics.sharded`): every rank returns the same numbers, identical
    to one process.

The distance matrices (and the check of a set of clouds) live in :mod:`pc3d.metrics.pairwise`;
:func:`distance_matrix` and :data:`DISTANCES` are re-exported here.

For use inside training, :class:`GenerationMetrics` (a ``torchmetrics.Metric``) accumulates
samples (and optionally references) whose states are concatenated across DDP ranks, then
calls :func:`evaluate_generation`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.geometry.normalize import NORMALIZATIONS, normalize_unit_bbox, normalize_unit_sphere
from pc3d.metrics.pairwise import DISTANCES, as_clouds, distance_matrix
from pc3d.ops.common import num_threads

__all__ = [
    "DISTANCES",
    "NORMALIZATIONS",
    "GenerationMetrics",
    "distance_matrix",
    "evaluate_generation",
    "jsd_between_sets",
    "mmd_cov",
    "mmd_cov_from_nearest",
    "normalize_sets",
    "occupancy_counts",
    "one_nna",
    "one_nna_from_nearest",
]


# ----------------------------------------------------------------------------- inputs


def _stats_from_mapping(stats: Any) -> tuple[Tensor, Tensor]:
    if isinstance(stats, Mapping):
        mean, std = stats["mean"], stats["std"]
    else:
        mean, std = stats
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float64)).reshape(1, 1, 3)
    std = torch.as_tensor(np.asarray(std, dtype=np.float64)).reshape(1, 1, 1)
    if not bool((std > 0).all()):
        raise ValueError(f"global std must be > 0, got {std.flatten().tolist()}")
    return mean, std


def normalize_sets(
    samples: Any, refs: Any, normalize: str = "none", *, global_stats: Any = None
) -> tuple[Tensor, Tensor]:
    """Normalize both sets the same way (see the module docstring for the modes).

    Args:
        samples, refs: the two sets of clouds (tensors, arrays, or sequences of ``(N, 3)``).
        normalize: ``"none" | "unit_sphere" | "unit_bbox" | "global"``.
        global_stats: for ``"global"``: ``{"mean": [mx, my, mz], "std": s}`` or
            ``(mean, std)``; ``None`` computes them from ``refs`` (per-axis mean of all its
            points, population std of all its coordinates).

    Shapes:
        samples ``(S, N, 3)``, refs ``(R, M, 3)`` -> the same shapes, same dtype and device.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    samples = as_clouds(samples, "samples")
    refs = as_clouds(refs, "refs")
    if normalize == "none":
        return samples, refs
    if normalize == "unit_sphere":
        return normalize_unit_sphere(samples)[0], normalize_unit_sphere(refs)[0]
    if normalize == "unit_bbox":
        return normalize_unit_bbox(samples)[0], normalize_unit_bbox(refs)[0]
    if global_stats is None:
        r64 = refs.to(torch.float64)
        mean = r64.reshape(-1, 3).mean(0).reshape(1, 1, 3)
        std = r64.reshape(-1).std(unbiased=False).reshape(1, 1, 1)
        if not float(std) > 0:
            raise ValueError("refs are degenerate (all coordinates equal): global std is 0")
    else:
        mean, std = _stats_from_mapping(global_stats)

    def apply(t: Tensor) -> Tensor:
        return ((t.to(torch.float64) - mean.to(t.device)) / std.to(t.device)).to(t.dtype)

    return apply(samples), apply(refs)


# ----------------------------------------------------------------------------- metrics


def _check_matrix(d: Tensor, name: str) -> Tensor:
    d = torch.as_tensor(d).detach().to(torch.float64).cpu()
    if d.dim() != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D distance matrix, got shape {tuple(d.shape)}")
    if bool(torch.isnan(d).any()):
        raise ValueError(f"{name} contains NaN")
    return d


def mmd_cov(d_sr: Tensor) -> tuple[float, float]:
    """MMD and COV from the sample-to-reference distance matrix.

    MMD ``= mean_r min_s d_sr[s, r]``; COV ``= |{argmin_r d_sr[s, r]}| / R`` (ties in the
    argmin go to the lowest reference index).

    Shapes: d_sr ``(S, R)`` -> two floats.
    """
    d = _check_matrix(d_sr, "d_sr")
    mmd = float(d.min(dim=0).values.mean())
    nearest = d.argmin(dim=1)  # first minimal index on ties (documented by torch)
    cov = float(torch.unique(nearest).numel() / d.shape[1])
    return mmd, cov


def one_nna(d_sr: Tensor, d_ss: Tensor, d_rr: Tensor) -> tuple[float, float, float]:
    """Leave-one-out 1-NN accuracy over the union of samples and references.

    A cloud is correctly classified when its nearest other cloud comes from its own set;
    exact ties count as the fraction of tied neighbours from its own set (see the module
    docstring).

    Shapes:
        d_sr ``(S, R)``, d_ss ``(S, S)``, d_rr ``(R, R)`` (diagonals ignored).

    Returns:
        ``(accuracy over all S + R clouds, accuracy over samples, accuracy over references)``.
    """
    d_sr = _check_matrix(d_sr, "d_sr")
    d_ss = _check_matrix(d_ss, "d_ss")
    d_rr = _check_matrix(d_rr, "d_rr")
    S, R = d_sr.shape
    if d_ss.shape != (S, S) or d_rr.shape != (R, R):
        raise ValueError(
            f"expected d_ss (S, S) = {(S, S)} and d_rr (R, R) = {(R, R)}, got {tuple(d_ss.shape)} "
            f"and {tuple(d_rr.shape)}"
        )

    def side(same: Tensor, other: Tensor) -> Tensor:
        same = same.clone()
        same.fill_diagonal_(math.inf)
        best = torch.minimum(same.min(dim=1).values, other.min(dim=1).values).unsqueeze(1)
        n_same = (same == best).sum(dim=1).to(torch.float64)
        n_other = (other == best).sum(dim=1).to(torch.float64)
        return n_same / (n_same + n_other)

    acc_s = side(d_ss, d_sr)
    acc_r = side(d_rr, d_sr.T)
    acc = float((acc_s.sum() + acc_r.sum()) / (S + R))
    return acc, float(acc_s.mean()), float(acc_r.mean())


def mmd_cov_from_nearest(nn: Any, n_samples: int) -> tuple[float, float]:
    """MMD and COV from exact nearest-neighbour answers (:class:`pc3d.metrics.emd_nn.NearestEMD` over
    the union ``[samples, refs]``): the same numbers as :func:`mmd_cov` on the full matrix (bit-identical:
    the same per-reference minima, reduced by the same torch operations).

    Shapes: nn arrays ``(S + R, 2)`` -> two floats.
    """
    S = int(n_samples)
    R = nn.value.shape[0] - S
    if S < 1 or R < 1:
        raise ValueError(f"expected answers for S >= 1 samples and R >= 1 references, got S={S}, R={R}")
    mins = torch.from_numpy(np.ascontiguousarray(nn.value[S:, 0], dtype=np.float64))  # (R,) min over samples
    mmd = float(mins.mean())
    nearest = torch.from_numpy(np.ascontiguousarray(nn.index[:S, 1]))  # (S,) first argmin over references
    cov = float(torch.unique(nearest).numel() / R)
    return mmd, cov


def one_nna_from_nearest(nn: Any, n_samples: int) -> tuple[float, float, float]:
    """1-NNA from exact nearest-neighbour answers (column 0: nearest sample, 1: nearest reference, with
    the number of exact ties): the same numbers as :func:`one_nna` on the full matrices.

    Shapes: nn arrays ``(S + R, 2)`` -> ``(accuracy, accuracy over samples, accuracy over references)``.
    """
    S = int(n_samples)
    value = torch.from_numpy(np.asarray(nn.value, dtype=np.float64))
    ties = torch.from_numpy(np.asarray(nn.ties, dtype=np.int64))
    R = value.shape[0] - S

    def side(rows: slice, same: int) -> Tensor:
        v_same, v_other = value[rows, same], value[rows, 1 - same]
        best = torch.minimum(v_same, v_other)
        n_same = torch.where(v_same == best, ties[rows, same], 0).to(torch.float64)
        n_other = torch.where(v_other == best, ties[rows, 1 - same], 0).to(torch.float64)
        return n_same / (n_same + n_other)

    acc_s = side(slice(0, S), 0)
    acc_r = side(slice(S, S + R), 1)
    acc = float((acc_s.sum() + acc_r.sum()) / (S + R))
    return acc, float(acc_s.mean()), float(acc_r.mean())


def _grid_centres(resolution: int, in_sphere: bool) -> np.ndarray:
    ticks = np.linspace(-0.5, 0.5, resolution)
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    if in_sphere:
        grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    return grid


def occupancy_counts(clouds: Any, *, resolution: int = 28, in_sphere: bool = True) -> np.ndarray:
    """Per-cell point counts of a set of clouds on the JSD grid (see the module docstring).

    Shapes: clouds ``(B, N, 3)`` -> int64 ``(C,)``, ``C`` = number of kept grid centres
    (``28^3`` = 21952, or the 11536 inside the sphere of radius 0.5).
    """
    from scipy.spatial import cKDTree

    if int(resolution) < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution!r}")
    pts = as_clouds(clouds, "clouds").cpu().to(torch.float64).reshape(-1, 3).numpy()
    grid = _grid_centres(int(resolution), in_sphere)
    bound = 0.5 + 1e-6
    outside = int((np.linalg.norm(pts, axis=1) > bound).sum() if in_sphere else (np.abs(pts) > bound).any(axis=1).sum())
    if outside:
        where = "the sphere of radius 0.5" if in_sphere else "[-0.5, 0.5]^3"
        warnings.warn(
            f"{outside} of {len(pts)} points lie outside {where}; they are counted in the nearest "
            f"boundary cell (normalize the clouds, e.g. normalize='unit_bbox')",
            stacklevel=2,
        )
    idx = cKDTree(grid).query(pts, k=1, workers=num_threads())[1]
    return np.bincount(idx, minlength=len(grid)).astype(np.int64)


def _entropy2(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def jsd_between_sets(
    samples: Any,
    refs: Any,
    *,
    normalize: str = "none",
    resolution: int = 28,
    in_sphere: bool = True,
    global_stats: Any = None,
) -> float:
    """Jensen-Shannon divergence (base 2) between the grid occupancy of two sets.

    ``JSD(P, Q) = H((P + Q) / 2) - (H(P) + H(Q)) / 2`` with ``P``, ``Q`` the normalized
    per-cell point counts of :func:`occupancy_counts`. 0 for identical sets, at most 1.

    Shapes: samples ``(S, N, 3)``, refs ``(R, M, 3)`` -> float.
    """
    samples, refs = normalize_sets(samples, refs, normalize, global_stats=global_stats)
    p = occupancy_counts(samples, resolution=resolution, in_sphere=in_sphere).astype(np.float64)
    q = occupancy_counts(refs, resolution=resolution, in_sphere=in_sphere).astype(np.float64)
    p /= p.sum()
    q /= q.sum()
    jsd = _entropy2((p + q) / 2) - (_entropy2(p) + _entropy2(q)) / 2
    return max(0.0, jsd)


def _labelled(progress: Any, label: str) -> Any:
    """``progress(label, done, total)`` as a ``(done, total)`` callback for :func:`distance_matrix`."""
    return None if progress is None else (lambda done, total: progress(label, done, total))


def evaluate_generation(
    samples: Any,
    refs: Any,
    *,
    distances: Sequence[str] = ("cd",),
    normalize: str = "none",
    batch_size: int | None = None,
    emd_method: str = "exact",
    backend: str = "auto",
    global_stats: Any = None,
    jsd_resolution: int = 28,
    progress: Any = None,
    emd_pruning: bool = True,
    emd_tol: float = 1e-2,
    group: Any = None,
) -> dict[str, float]:
    """MMD, COV and 1-NNA per distance (and JSD) between generated and reference clouds.

    Args:
        samples: generated clouds. refs: reference clouds (PointFlow: the val/test split).
        distances: any of ``"cd"``, ``"emd"`` and ``"jsd"``.
        normalize: ``"none" | "unit_sphere" | "unit_bbox" | "global"`` (module docstring).
        batch_size: pairs per batch of the pairwise paths (see :func:`distance_matrix`).
        emd_method: ``"exact"`` or ``"approx"`` (``pc3d.ops.emd``).
        backend: Chamfer matrices, see :func:`distance_matrix`.
        global_stats: for ``normalize="global"``, see :func:`normalize_sets`.
        jsd_resolution: JSD grid cells per axis.
        progress: optional ``progress(label, done_pairs, total_pairs)`` for the distance
            matrices (``label`` e.g. ``"emd samples x refs"``; see :func:`distance_matrix`); the
            pruned EMD path reports ``("emd nearest neighbours", done_queries, total_queries)``.
        emd_pruning: EMD metrics from exact pruned nearest-neighbour queries
            (:func:`pc3d.metrics.emd_nn.nearest_emd`, the same numbers) instead of the full
            ``(S, R)``, ``(S, S)``, ``(R, R)`` matrices.
        emd_tol: the auction's guaranteed relative excess over the exact EMD
            (``emd_method="approx"`` only).
        group: a ``torch.distributed`` process group to shard the work over (every rank must
            call with the same arguments and gets the same result); ``None``: this process.

    Returns:
        ``{"mmd_cd", "cov_cd", "1nna_cd", "1nna_cd_sample", "1nna_cd_ref"}`` for ``"cd"``,
        the same with ``_emd`` for ``"emd"``, and ``"jsd"``: plain floats. MMD-CD is in
        squared units of the (normalized) coordinates, MMD-EMD in units.

    Shapes:
        samples ``(S, N, 3)``, refs ``(R, M, 3)`` (``N == M`` for EMD); tensors on any
        device, arrays, or sequences of ``(N, 3)`` clouds.
    """
    distances = tuple(distances)
    unknown = [d for d in distances if d not in (*DISTANCES, "jsd")]
    if unknown or not distances:
        raise ValueError(f"distances must be a non-empty subset of {(*DISTANCES, 'jsd')}, got {distances!r}")
    samples, refs = normalize_sets(samples, refs, normalize, global_stats=global_stats)
    if refs.device != samples.device:
        refs = refs.to(samples.device)
    if refs.dtype != samples.dtype:
        refs = refs.to(samples.dtype)
    out: dict[str, float] = {}
    for dist in distances:
        if dist == "jsd":
            out["jsd"] = jsd_between_sets(samples, refs, resolution=jsd_resolution)
            continue
        if dist == "emd" and emd_pruning:
            from pc3d.metrics.sharded import sharded_nearest_emd

            if samples.shape[1] != refs.shape[1]:
                raise ValueError(
                    f"EMD needs clouds with equal point counts: samples (S, N, 3) and refs (R, N, 3), "
                    f"got N={samples.shape[1]} and N={refs.shape[1]}"
                )
            nn = sharded_nearest_emd(samples, refs, group=group, method=emd_method, tol=emd_tol, exact_same_set=False,
                                     progress=_labelled(progress, "emd nearest neighbours"))
            mmd, cov = mmd_cov_from_nearest(nn, samples.shape[0])
            acc, acc_s, acc_r = one_nna_from_nearest(nn, samples.shape[0])
        else:
            from pc3d.metrics.sharded import sharded_distance_matrix

            kw = dict(distance=dist, batch_size=batch_size, backend=backend, emd_method=emd_method, emd_tol=emd_tol)
            mats = []
            for a, b, label in ((samples, refs, "samples x refs"), (samples, None, "samples x samples"),
                                (refs, None, "refs x refs")):
                prog = _labelled(progress, f"{dist} {label}")
                if group is None:
                    mats.append(distance_matrix(a, b, **kw, progress=prog))
                else:
                    mats.append(sharded_distance_matrix(a, b, group=group, **kw, progress=prog))
            d_sr, d_ss, d_rr = mats
            mmd, cov = mmd_cov(d_sr)
            acc, acc_s, acc_r = one_nna(d_sr, d_ss, d_rr)
        out.update(
            {
                f"mmd_{dist}": mmd,
                f"cov_{dist}": cov,
                f"1nna_{dist}": acc,
                f"1nna_{dist}_sample": acc_s,
                f"1nna_{dist}_ref": acc_r,
            }
        )
    return out


# ----------------------------------------------------------------------------- torchmetrics

from torchmetrics import Metric as _Metric  # noqa: E402  (a dependency of lightning)
from torchmetrics.utilities import dim_zero_cat as _dim_zero_cat  # noqa: E402


class GenerationMetrics(_Metric):
    """Accumulate generated (and reference) clouds, then :func:`evaluate_generation`.

    States are lists concatenated across DDP ranks (``dist_reduce_fx="cat"``), so
    ``compute()`` scores the union of what every rank generated. References are either
    given once (``refs``, kept on the CPU, not synchronized, not saved in the
    ``state_dict``) or accumulated with the samples (``update(samples, refs)``).

    Example (in a LightningModule)::

        self.gen_metrics = GenerationMetrics(refs=val_clouds, normalize="none")
        # validation_step: self.gen_metrics.update(self.sample(16))
        # on_validation_epoch_end:
        self.log_dict({f"val/{k}": v for k, v in self.gen_metrics.compute().items()})
        self.gen_metrics.reset()

    Shapes: ``update(samples (B, N, 3), refs (B', M, 3) | None)``; ``compute() ->
    dict[str, Tensor]`` of scalars (keys of :func:`evaluate_generation`).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, refs: Any = None, *, max_samples: int | None = None, **eval_kwargs: Any):
        super().__init__()
        self.add_state("samples", default=[], dist_reduce_fx="cat")
        self.add_state("refs", default=[], dist_reduce_fx="cat")
        self._fixed_refs = None if refs is None else as_clouds(refs, "refs").cpu()
        self.max_samples = max_samples
        self.eval_kwargs = dict(eval_kwargs)

    def update(self, samples: Tensor, refs: Tensor | None = None) -> None:
        self.samples.append(as_clouds(samples, "samples"))
        if refs is not None:
            self.refs.append(as_clouds(refs, "refs"))

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.samples, list) and not self.samples:
            raise RuntimeError("GenerationMetrics.compute() called before any update()")
        samples = _dim_zero_cat(self.samples)
        if self.max_samples is not None:
            samples = samples[: self.max_samples]
        if self._fixed_refs is not None:
            refs = self._fixed_refs
        elif isinstance(self.refs, list) and not self.refs:
            raise RuntimeError("no reference clouds: pass refs= to the constructor or to update()")
        else:
            refs = _dim_zero_cat(self.refs)
        res = evaluate_generation(samples, refs.to(samples.device), **self.eval_kwargs)
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in res.items()}
