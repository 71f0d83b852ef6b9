"""Pairwise distances between sets of point clouds (the matrices behind MMD, COV and 1-NNA).

Moved out of :mod:`pc3d.metrics.generative`, whose module docstring documents the distances
(``"cd"``: squared-euclidean Chamfer, sum of the two directional means; ``"emd"``: mean
matched euclidean distance) and the cost of each back-end. Also the one check of a set of
clouds, :func:`as_clouds`, used by every generative metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.ops.common import get_pool, num_threads

__all__ = ["DISTANCES", "as_clouds", "distance_matrix", "fill_matrix", "pair_distances", "pair_list"]

#: Accepted cloud distances (``"jsd"`` may also appear in ``distances`` of
#: :func:`pc3d.metrics.generative.evaluate_generation`, it is not a distance between two clouds).
DISTANCES = ("cd", "emd")
_BACKENDS = ("auto", "numba", "kdtree", "torch")
#: Query points per KD-tree call (bounds the memory of the CPU Chamfer path).
_QUERY_CHUNK_POINTS = 1 << 18
#: Bytes of cloud data gathered for one batch of pairs in the pairwise paths.
_PAIR_BATCH_BYTES = 32 * 1024**2
#: Distance evaluations (pairs x N x M) per thread between two progress reports of the numba
#: Chamfer path: ~1 s of float32 work on one core (~2 s in float64), e.g. ~1430 pairs of
#: 2048-point clouds per thread.
_PROGRESS_EVALS = 6 * 10**9
#: Fewest pairs between two progress reports of the numba Chamfer path.
_PROGRESS_MIN_PAIRS = 256


# ----------------------------------------------------------------------------- inputs


def as_clouds(x: Any, name: str) -> Tensor:
    """A ``(B, N, 3)`` floating tensor from a tensor, array or sequence of ``(N, 3)`` clouds.

    Non-floating input becomes float32; the result is detached. ``name`` is used in errors.

    Raises:
        TypeError: not a tensor, array or non-empty sequence of clouds.
        ValueError: not ``(B, N, 3)``, empty, NaN or inf.

    Shapes: ``(B, N, 3)`` -> ``(B, N, 3)``.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, Tensor):
        if isinstance(x, Sequence) and len(x) > 0:
            x = torch.stack([torch.as_tensor(np.asarray(c)) if not isinstance(c, Tensor) else c for c in x])
        else:
            raise TypeError(f"{name} must be a tensor or array of shape (B, N, 3), got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty set of non-empty clouds (B, N, 3), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    x = x.detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite coordinates; expected finite values (B, N, 3)")
    return x


# ----------------------------------------------------------------------------- distance matrices


def _directional_means(tree: Any, cloud: np.ndarray, queries: np.ndarray, skip: int | None) -> np.ndarray:
    """``mean_i min_j |q_i - cloud_j|^2`` for each query cloud (``skip``: an index left NaN)."""
    n_q, n_pts, _ = queries.shape
    out = np.full(n_q, np.nan)
    keep = np.arange(n_q) if skip is None else np.delete(np.arange(n_q), skip)
    step = max(1, _QUERY_CHUNK_POINTS // n_pts)
    for c0 in range(0, len(keep), step):
        ids = keep[c0 : c0 + step]
        pts = queries[ids].reshape(-1, 3)
        idx = tree.query(pts, k=1)[1]
        d2 = np.square(pts - cloud[idx]).sum(-1)  # rebuilt from the neighbour: exact
        out[ids] = d2.reshape(len(ids), n_pts).mean(1)
    return out


def _cd_matrix_kdtree(a: Tensor, b: Tensor | None, progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Chamfer matrix on the CPU with one KD-tree per cloud and each direction computed once.

    ``progress(done_pairs, total_pairs)`` after each column job (one direction of a row or column of
    pairs; two directions make a pair, so ``done_pairs`` is half the directional terms done, rounded
    down), in the calling thread, and once with ``done_pairs == total_pairs`` at the end."""
    from scipy.spatial import cKDTree

    an = a.detach().cpu().to(torch.float64).numpy()
    bn = None if b is None else b.detach().cpu().to(torch.float64).numpy()
    threads = num_threads()
    A = len(an)
    total = A * (A - 1) // 2 if bn is None else A * len(bn)
    terms = [0, 0]  # directional terms done, pairs last reported

    def report(n_terms: int) -> None:
        terms[0] += n_terms
        pairs = terms[0] // 2
        if progress is not None and terms[1] < pairs < total:
            terms[1] = pairs
            progress(pairs, total)

    def run(jobs: list, n_terms: list[int]) -> list:
        if threads == 1 or len(jobs) == 1:
            out = []
            for j, n in zip(jobs, n_terms):
                out.append(j())
                report(n)
            return out
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pc3d-metrics") as pool:
            futures = [pool.submit(j) for j in jobs]
            if progress is not None:
                size = dict(zip(futures, n_terms))
                for f in as_completed(futures):
                    f.result()
                    report(size[f])
            return [f.result() for f in futures]

    def tree_of(cloud: np.ndarray) -> Any:
        return cKDTree(cloud, leafsize=16, balanced_tree=False)

    if bn is None:
        # column j: every other cloud i queried against cloud j -> dir(i -> j).
        jobs = [lambda j=j: _directional_means(tree_of(an[j]), an[j], an, skip=j) for j in range(len(an))]
        d_dir = np.stack(run(jobs, [A - 1] * A), axis=1)  # (A, A): d_dir[i, j] = dir(i -> j)
        np.fill_diagonal(d_dir, 0.0)
        mat = d_dir + d_dir.T
        np.fill_diagonal(mat, 0.0)
        out = torch.from_numpy(mat)
    else:
        B = len(bn)
        jobs_ab = [lambda j=j: _directional_means(tree_of(bn[j]), bn[j], an, None) for j in range(B)]
        jobs_ba = [lambda i=i: _directional_means(tree_of(an[i]), an[i], bn, None) for i in range(A)]
        res = run(jobs_ab + jobs_ba, [A] * B + [B] * A)
        d_ab = np.stack(res[:B], axis=1)  # (A, B): dir(a_i -> b_j)
        d_ba = np.stack(res[B:], axis=0)  # (A, B): dir(b_j -> a_i)
        out = torch.from_numpy(d_ab + d_ba)
    if progress is not None:
        progress(total, total)
    return out


def _cd_matrix_numba(a: Tensor, b: Tensor | None, progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Chamfer matrix on the CPU: both directions of each pair from one compiled brute-force pass.

    ``progress(done_pairs, total_pairs)`` about every ``_PROGRESS_EVALS`` distance evaluations per
    thread (at least ``_PROGRESS_MIN_PAIRS`` pairs apart), in the calling thread, and once with
    ``done_pairs == total_pairs`` at the end (see ``chamfer_pair_terms``)."""
    from pc3d.metrics._chamfer_pairs import chamfer_pair_terms

    def as_np(t: Tensor) -> np.ndarray:
        t = t.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float32)
        return t.numpy()

    an = as_np(a)
    bn = an if b is None else as_np(b)
    threads = num_threads()
    pool = get_pool(threads) if threads > 1 else None
    every = max(_PROGRESS_MIN_PAIRS, _PROGRESS_EVALS * threads // max(1, an.shape[1] * bn.shape[1]))
    kw = dict(pool=pool, workers=threads, progress=progress, progress_every=every)
    A = an.shape[0]
    if b is None:
        ii, jj = np.triu_indices(A, k=1)
        d_ab, d_ba = chamfer_pair_terms(an, an, ii, jj, **kw)
        mat = np.zeros((A, A), dtype=np.float64)
        mat[ii, jj] = d_ab + d_ba
        mat[jj, ii] = mat[ii, jj]
        return torch.from_numpy(mat)
    B = bn.shape[0]
    ii = np.repeat(np.arange(A), B)
    jj = np.tile(np.arange(B), A)
    d_ab, d_ba = chamfer_pair_terms(an, bn, ii, jj, **kw)
    return torch.from_numpy((d_ab + d_ba).reshape(A, B))


def pair_list(A: int, B: int | None, rows: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pairs a distance matrix is made of, in the order and orientation every path uses.

    ``B is None``: the symmetric ``A x A`` matrix, each unordered pair once as ``(i, j)`` with
    ``i < j``, row-major; otherwise every ``(i, j)`` of ``A x B``, row-major. ``rows=(r0, r1)``
    keeps the pairs whose row ``i`` is in ``[r0, r1)`` (one shard of the matrix).

    Shapes: -> ``ii (P,)``, ``jj (P,)`` int64.
    """
    r0, r1 = (0, A) if rows is None else (max(0, int(rows[0])), min(A, int(rows[1])))
    r = np.arange(r0, max(r0, r1), dtype=np.int64)
    if B is None:
        ii = np.repeat(r, A - 1 - r)
        jj = np.concatenate([np.arange(i + 1, A, dtype=np.int64) for i in r]) if len(r) else r
        return ii, jj
    return np.repeat(r, B), np.tile(np.arange(B, dtype=np.int64), len(r))


def _resolve_cd_backend(backend: str, device: torch.device) -> str:
    if backend != "auto":
        return backend
    if device.type != "cpu":
        return "torch"
    from pc3d.metrics._chamfer_pairs import have_numba

    return "numba" if have_numba() else "kdtree"


def pair_distances(
    a: Tensor,
    b: Tensor | None,
    ii: Any,
    jj: Any,
    *,
    distance: str = "cd",
    backend: str = "auto",
    emd_method: str = "exact",
    emd_tol: float = 1e-2,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Distances of the pairs ``(a[ii[p]], b[jj[p]])`` (``b=None``: ``a`` with itself).

    The per-pair computation of :func:`distance_matrix` (same definitions and back-ends, see its
    docstring), for any list of pairs: a shard of a matrix, or the pairs a pruned search needs. On
    the CPU the value of a pair does not depend on the other pairs computed with it (numba Chamfer:
    one pair per kernel call; EMD: :func:`pc3d.ops.emd.emd_pair_values`), so any split of the pairs
    gives bit-identical values. ``backend="kdtree"`` works on whole matrices only (ValueError here).

    Shapes: a ``(A, N, 3)``, b ``(B, M, 3)`` or None, ii ``(P,)``, jj ``(P,)`` -> float64 ``(P,)``.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    other = a if b is None else b
    ii = np.asarray(ii, dtype=np.int64).reshape(-1)
    jj = np.asarray(jj, dtype=np.int64).reshape(-1)
    P = len(ii)
    if distance == "emd" and a.shape[1] != other.shape[1]:
        raise ValueError(
            f"EMD needs clouds with equal point counts: samples (S, N, 3) and refs (R, N, 3), "
            f"got N={a.shape[1]} and N={other.shape[1]}"
        )
    if batch_size is None:
        per_pair = (a.shape[1] + other.shape[1]) * 3 * a.element_size()
        # EMD: ~0.1-2 s per pair on a CPU core, so batches of 64 pairs keep the progress reports coming
        batch_size = int(max(1, min(64 if distance == "emd" else 512, _PAIR_BATCH_BYTES // per_pair)))
    elif int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    batch_size = int(batch_size)
    if distance == "cd":
        which = _resolve_cd_backend(backend, a.device)
        if which == "kdtree":
            raise ValueError("backend='kdtree' computes whole matrices only; use 'numba' or 'torch' for pair lists")
        if which == "numba":
            from pc3d.metrics._chamfer_pairs import chamfer_pair_terms

            def as_np(t: Tensor) -> np.ndarray:
                t = t.detach().cpu()
                return (t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float32)).numpy()

            an = as_np(a)
            bn = an if b is None else as_np(b)
            threads = num_threads()
            pool = get_pool(threads) if threads > 1 else None
            every = max(_PROGRESS_MIN_PAIRS, _PROGRESS_EVALS * threads // max(1, an.shape[1] * bn.shape[1]))
            d_ab, d_ba = chamfer_pair_terms(an, bn, ii, jj, pool=pool, workers=threads, progress=progress,
                                            progress_every=every)
            return d_ab + d_ba
        from pc3d.ops import chamfer_distance

        def values(x: Tensor, y: Tensor) -> np.ndarray:
            v = chamfer_distance(x, y, squared=True, reduction="none", backend="torch")
            return v.detach().to(torch.float64).cpu().numpy()
    else:
        from pc3d.ops.emd import emd_pair_values

        values = None
    out = np.empty(P, dtype=np.float64)
    with torch.no_grad():
        for p0 in range(0, P, batch_size):
            i, j = ii[p0 : p0 + batch_size], jj[p0 : p0 + batch_size]
            if values is None:
                out[p0 : p0 + len(i)] = emd_pair_values(a, other, i, j, method=emd_method, tol=emd_tol,
                                                        squared=False)
            else:
                ti, tj = torch.from_numpy(i).to(a.device), torch.from_numpy(j).to(a.device)
                out[p0 : p0 + len(i)] = values(a[ti], other[tj])
            if progress is not None:
                progress(p0 + len(i), P)
    return out


def _pairwise(a: Tensor, b: Tensor | None, batch_size: int | None, progress: Callable[[int, int], None] | None,
              **kw: Any) -> Tensor:
    """The matrix from :func:`pair_distances` over :func:`pair_list` (``i < j`` when ``b is None``)."""
    other = a if b is None else b
    ii, jj = pair_list(a.shape[0], None if b is None else other.shape[0])
    vals = pair_distances(a, b, ii, jj, batch_size=batch_size, progress=progress, **kw)
    return fill_matrix(a.shape[0], other.shape[0], ii, jj, vals, symmetric=b is None)


def fill_matrix(A: int, B: int, ii: np.ndarray, jj: np.ndarray, vals: np.ndarray, *, symmetric: bool) -> Tensor:
    """A float64 ``(A, B)`` matrix with ``D[ii, jj] = vals`` (and ``D[jj, ii]`` when ``symmetric``; zero elsewhere).

    Shapes: ii, jj, vals ``(P,)`` -> ``(A, B)``.
    """
    mat = np.zeros((A, B), dtype=np.float64)
    mat[ii, jj] = vals
    if symmetric:
        mat[jj, ii] = vals
    return torch.from_numpy(mat)


def distance_matrix(
    a: Any,
    b: Any = None,
    *,
    distance: str = "cd",
    batch_size: int | None = None,
    backend: str = "auto",
    emd_method: str = "exact",
    emd_tol: float = 1e-2,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """All pairwise cloud distances between two sets (or within one set).

    ``distance="cd"``: squared-euclidean Chamfer distance, sum of the two directional means.
    ``distance="emd"``: mean matched euclidean distance (``pc3d.ops.emd``, ``emd_method``
    ``"exact"`` or ``"approx"``; equal point counts). No normalization is applied here.

    Args:
        a: first set. b: second set, or ``None`` for the symmetric ``a``-vs-``a`` matrix
            (zero diagonal; each unordered pair computed once).
        batch_size: pairs per batch in the pairwise paths (CUDA Chamfer, EMD); ``None`` picks
            a batch of ~32 MiB of gathered clouds (at most 512 pairs).
        backend: CD only: ``"auto"`` (CPU tensors: ``"numba"`` when numba is installed, else
            ``"kdtree"``; batched ``chamfer_distance`` on the tensors' device otherwise),
            ``"numba"`` (compiled brute force, both directions per pass, input precision),
            ``"kdtree"`` (scipy KD-trees, float64) or ``"torch"``.
        emd_method: EMD only, ``"exact"`` or ``"approx"`` (auction), passed to ``pc3d.ops.emd``.
        emd_tol: EMD auction only, its guaranteed relative excess over the exact EMD
            (``pc3d.ops.emd``, default 1e-2). Each pair's value is the cost of the returned
            matching recomputed in float64 (:func:`pc3d.ops.emd.emd_pair_values`): on the CPU it
            does not depend on the batch it was computed in.
        progress: optional ``progress(done_pairs, total_pairs)``, called after each batch of
            pairs in every path (EMD and CUDA Chamfer: each ``batch_size`` batch; numba Chamfer:
            every ~0.5-2 s of work; KD-tree Chamfer: each cloud's tree queries), in the calling
            thread, with ``done_pairs`` non-decreasing up to ``total_pairs`` (reached once, by the
            last call); it does not change the numbers.

    Returns:
        float64 CPU tensor ``D`` with ``D[i, j] = dist(a[i], b[j])``.

    Shapes:
        a ``(A, N, 3)``, b ``(B, M, 3)`` (or ``None``) -> ``(A, B)`` (``(A, A)``).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    a = as_clouds(a, "a")
    b = None if b is None else as_clouds(b, "b")
    if b is not None:
        if b.device != a.device:
            raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")
        if b.dtype != a.dtype:
            b = b.to(a.dtype)
    if distance == "cd":
        which = _resolve_cd_backend(backend, a.device)
        if which in ("numba", "kdtree"):
            fn = _cd_matrix_numba if which == "numba" else _cd_matrix_kdtree
            # progress only when asked: the back-ends keep their two-argument call otherwise
            return fn(a, b) if progress is None else fn(a, b, progress=progress)
        return _pairwise(a, b, batch_size, progress, distance="cd", backend=which)
    return _pairwise(a, b, batch_size, progress, distance="emd", emd_method=emd_method, emd_tol=emd_tol)
