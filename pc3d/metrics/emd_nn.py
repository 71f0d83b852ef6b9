"""Nearest neighbours under the EMD without the full distance matrices (exact pruning).

MMD, COV and 1-NNA (:mod:`pc3d.metrics.generative`) use a distance matrix only through per-row
minima: MMD the minimum over samples of each reference's column, COV the first argmin over
references of each sample's row, 1-NNA each cloud's nearest other cloud in the union of both
sets (with the number of exact ties). :func:`nearest_emd` answers exactly these queries, and
skips every pair that provably cannot be a row minimum, using cheap lower bounds of the EMD.

EMD here is the metrics' EMD: mean matched **euclidean** cost over a bijection of two clouds
of ``N`` points (:mod:`pc3d.ops.emd`, ``squared=False``, divided by ``N``), solved exactly
(``method="exact"``) or by the auction (``"approx"``, within ``(1 + tol)`` of the exact value).

Lower bounds (each holds for the cost of EVERY bijection ``s``, so for the exact EMD and for the
cost of the auction's returned matching alike)::

    cost(s) = (1/N) sum_i ||x_i - y_s(i)||

1. Centroid: ``||mean(x) - mean(y)|| = ||(1/N) sum_i (x_i - y_s(i))|| <= cost(s)`` (triangle
   inequality).
2. Sliced, block-averaged: for a unit vector ``t``, ``||x_i - y_s(i)|| >= |t.x_i - t.y_s(i)|``
   (Cauchy-Schwarz), and the 1-D matching of sorted projections is optimal for the cost
   ``|a - b|``, so ``cost(s) >= W1_t = (1/N) sum_k |p_(k) - q_(k)|`` with ``p_(k)``, ``q_(k)``
   the sorted projections of ``x`` and ``y``. Grouping the ``N`` sorted ranks into consecutive
   blocks ``b`` and using ``|sum_{k in b} (p_(k) - q_(k))| <= sum_{k in b} |p_(k) - q_(k)|``::

       LB_t = (1/N) sum_b |P_b - Q_b| <= W1_t <= cost(s),   P_b = sum_{k in b} p_(k)

   so only ``n_blocks`` block sums per cloud and direction are stored. The bound is the maximum
   over ``n_directions`` fixed directions (a Fibonacci lattice on the half sphere).
3. Nearest point (per pair, ``O(N^2)``, used only on pairs that survive 1-2):
   ``||x_i - y_s(i)|| >= min_j ||x_i - y_j||`` for every ``i``, so
   ``cost(s) >= (1/N) sum_i min_j ||x_i - y_j||``, and symmetrically over ``j``; the bound is
   the larger of the two means (the same bound the auction uses to set its final epsilon).

4. Dual of the auction (``method="approx"``, numba; :func:`pc3d.ops.emd.emd_pair_values` with
   ``abort_above``): at the end of each epsilon phase the prices ``p`` give the dual feasible
   point ``u_i = min_j (C_ij + p_j)``, ``v_j = -p_j`` of the assignment LP, so
   ``(1/N) (sum_i u_i + sum_j v_j) <= min_s cost(s)`` (weak duality), less a margin for the
   float32 costs the auction uses. By epsilon-complementary slackness it is within about
   ``eps`` of the optimum, so a solve that is only needed to rule a candidate out is abandoned
   after its first (cheap, large-eps) phases. A solve that is not abandoned returns exactly
   the matching of an unchecked one.

(For a squared-euclidean EMD the analogues are ``||mean(x) - mean(y)||^2`` (Jensen), the squared
sorted differences (1-D W2^2), and the squared nearest-point distances; the metrics use the
euclidean EMD, so only that one is implemented.) The bounds are computed in float64 and
multiplied by ``1 - 1e-9`` before use, far more than their rounding error, so they stay below
the float64 value of every pair.

Search (per query cloud ``q`` and candidate set ``C``, the samples or the references, ``q``
itself excluded): candidates in increasing order of bound 1-2 (ties by index); a candidate whose
bound exceeds the best value found so far ends the search (every later one has a larger bound,
hence a larger value); otherwise bound 3 is computed (cached per pair) and, when it does not
exceed the best value, the EMD itself (abandoned once bound 4 exceeds the best value; cached per
unordered pair, computed in the orientation the full matrices use: ``(samples[i], refs[j])``,
``(a[i], a[j])`` with ``i < j``). A candidate is only ever skipped when one of its lower bounds
is strictly above the best value, so every candidate whose value equals the minimum is
evaluated: the minimum, the first argmin (lowest index among the exact ties) and the number of
exact ties are those of the full matrix row.

1-NNA needs less than the nearest cloud of a query's own set: only whether it is nearer than,
as near as (with the number of exact ties) or farther than the nearest cloud of the other set,
whose distance ``v`` is known first. With ``exact_same_set=False`` (what the metrics use) the
own-set search starts after the other-set one, prunes against ``min(best, v)`` and stops at the
first value strictly below ``v``.

Equality with the full matrices: every pair value is computed by
:func:`pc3d.ops.emd.emd_pair_values`, which on the CPU (exact, or the numba auction) gives a
pair the same float64 value in any batch or process. The pruned metrics are therefore
**bit-identical** to MMD / COV / 1-NNA computed from the full matrices of the same solver (no
tolerance needed between the two paths). The solver's own tolerance is unchanged: with the
auction each value is within ``[1, 1 + tol]`` of the exact EMD, so a sample whose nearest two
references lie within ``tol`` of each other may have another argmin than with the exact solver,
pruned or not. On CUDA (the batched torch auction) a pair's matching can depend on the batch it
was solved in, so there the two paths agree within the auction tolerance only.

Cost: bounds 1-2 for all pairs are ``O(K^2 D n_blocks)`` (~1 s for 200 clouds), bound 3 ~2-5 ms
per surviving pair, one auction EMD ~0.1-0.3 s at N=2048 (its first, large-eps phases ~20% of
that). On 100 vs 100 built-in shapes at N=2048 (``experiments/bench_metrics.py --emd``): 290
pairs solved to the end and 804 abandoned early out of 19,900, 1,127 nearest-point bounds;
155 s on one (shared) core against ~6,000 s extrapolated for the three full matrices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from pc3d.ops.common import get_pool, lazy_njit, num_threads

__all__ = ["NearestEMD", "emd_lower_bounds", "nearest_emd"]

#: Directions of the sliced bound (Fibonacci lattice on the half sphere).
N_DIRECTIONS = 64
#: Blocks of sorted ranks per direction in the sliced bound.
N_BLOCKS = 128
#: Relative safety margin applied to every lower bound (its float64 rounding is ~1e-13).
_LB_SLACK = 1e-9


class NearestEMD(NamedTuple):
    """Per query cloud, the nearest cloud among the samples (column 0) and the references (column 1).

    Attributes:
        value: ``(Q, 2)`` float64, the minimum EMD over the set (the query itself excluded;
            ``inf`` when the set has no other cloud).
        index: ``(Q, 2)`` int64, the first (lowest-index) argmin within the set (``-1`` if empty).
        ties: ``(Q, 2)`` int64, how many clouds of the set attain the minimum exactly.
        n_emd: EMD solves run to the end (unordered pairs, each once).
        n_bound: pairs whose nearest-point bound (3) was computed.
        n_abandoned: EMD solves abandoned early (bound 4 above the best value).
    """

    value: np.ndarray
    index: np.ndarray
    ties: np.ndarray
    n_emd: int
    n_bound: int
    n_abandoned: int = 0


def _fibonacci_half_sphere(n: int) -> np.ndarray:
    """``n`` well-spread unit vectors with ``z >= 0`` (``(n, 3)`` float64)."""
    k = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - k / n  # in (0, 1]
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _block_sums(clouds: np.ndarray, directions: np.ndarray, n_blocks: int) -> np.ndarray:
    """Block sums of the sorted projections divided by ``N``: ``(K, N, 3)`` -> ``(K, D, n_blocks)``."""
    K, N, _ = clouds.shape
    nb = max(1, min(int(n_blocks), N))
    starts = np.linspace(0, N, nb + 1).astype(np.int64)[:-1]
    out = np.empty((K, len(directions), nb), dtype=np.float64)
    for k in range(K):
        proj = np.sort(clouds[k] @ directions.T, axis=0)  # (N, D)
        out[k] = np.add.reduceat(proj, starts, axis=0).T / N
    return out


def emd_lower_bounds(
    a: Tensor, b: Tensor | None = None, *, n_directions: int = N_DIRECTIONS, n_blocks: int = N_BLOCKS
) -> Tensor:
    """Lower bounds 1-2 of the module docstring (centroid and block-sliced W1) for all pairs.

    ``LB[i, j] <= emd(a[i], b[j])`` for the euclidean EMD divided by ``N`` (exact, or the cost of
    any bijection such as the auction's), including a ``1e-9`` relative safety margin.

    Shapes: a ``(A, N, 3)``, b ``(B, N, 3)`` or None (``b = a``) -> float64 ``(A, B)``.
    """
    an = a.detach().cpu().to(torch.float64).numpy()
    bn = an if b is None else b.detach().cpu().to(torch.float64).numpy()
    if an.ndim != 3 or bn.ndim != 3 or an.shape[2] != 3 or bn.shape[2] != 3 or an.shape[1] != bn.shape[1]:
        raise ValueError(f"expected a (A, N, 3) and b (B, N, 3), got {an.shape} and {bn.shape}")
    dirs = _fibonacci_half_sphere(int(n_directions))
    sa = _block_sums(an, dirs, n_blocks)
    sb = sa if b is None else _block_sums(bn, dirs, n_blocks)
    return torch.from_numpy(_bounds_rows(sa, sb, an.mean(axis=1), bn.mean(axis=1), np.arange(len(an))))


def _bounds_rows(sa: np.ndarray, sb: np.ndarray, ca: np.ndarray, cb: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), len(sb)), dtype=np.float64)
    for k, i in enumerate(rows):
        sliced = np.abs(sb - sa[i]).sum(axis=2).max(axis=1)  # (B,)
        cent = np.linalg.norm(cb - ca[i], axis=1)
        out[k] = np.maximum(sliced, cent) * (1.0 - _LB_SLACK)
    return out


def _nearest_point_bound_py(x, y):  # pragma: no cover - compiled
    """``max(mean_i min_j |x_i - y_j|, mean_j min_i |x_i - y_j|)`` for ``x (3, N)``, ``y (3, M)`` float64."""
    n = x.shape[1]
    m = y.shape[1]
    colmin = np.full(m, np.inf)
    x0, x1, x2 = x[0], x[1], x[2]
    y0, y1, y2 = y[0], y[1], y[2]
    s = 0.0
    for i in range(n):
        a0 = x0[i]
        a1 = x1[i]
        a2 = x2[i]
        best = np.inf
        for j in range(m):
            d0 = a0 - y0[j]
            d1 = a1 - y1[j]
            d2 = a2 - y2[j]
            d = d0 * d0 + d1 * d1 + d2 * d2
            best = min(best, d)
            colmin[j] = min(colmin[j], d)
        s += np.sqrt(best)
    t = 0.0
    for j in range(m):
        t += np.sqrt(colmin[j])
    return max(s / n, t / m)


_get_bound_kernel = lazy_njit(_nearest_point_bound_py)


def _soa(clouds: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(clouds.transpose(0, 2, 1))


def nearest_emd(
    samples: Tensor,
    refs: Tensor,
    *,
    queries: Sequence[int] | np.ndarray | None = None,
    method: str = "exact",
    tol: float = 1e-2,
    backend: str = "auto",
    batch_size: int | None = None,
    nearest_point_bound: bool = True,
    early_abort: bool = True,
    exact_same_set: bool = True,
    n_directions: int = N_DIRECTIONS,
    n_blocks: int = N_BLOCKS,
    progress: Callable[[int, int], None] | None = None,
) -> NearestEMD:
    """Exact nearest samples and nearest references (under the EMD) of some clouds of the union.

    The clouds are numbered as in the union ``cat([samples, refs])``: ``0 .. S-1`` the samples,
    ``S .. S+R-1`` the references. For each query ``q`` the result holds the minimum EMD from
    ``q`` to the other samples and to the other references, the first argmin within each set and
    the number of exact ties, equal to what the full matrices of
    :func:`pc3d.metrics.pairwise.distance_matrix` give (bit-identical on the CPU; see the module
    docstring for the pruning and its proof).

    Args:
        samples, refs: the two sets (same ``N``, same dtype and device).
        queries: union indices to answer (default all ``S + R``); a rank of a sharded evaluation
            passes its contiguous block.
        method, tol, backend: the EMD solver (:func:`pc3d.ops.emd.emd_pair_values`).
        batch_size: most EMD pairs per solver call (default: every pair needed in a round).
        nearest_point_bound: also use bound 3 before solving a pair.
        early_abort: abandon an auction solve whose dual bound (bound 4) exceeds the best value of
            every search waiting for it (numba auction only).
        exact_same_set: ``False``: the nearest cloud of a query's OWN set (samples for a sample,
            references for a reference) is only searched as far as 1-NNA needs it: its column
            then holds a value ``< v`` when some same-set cloud is strictly nearer than ``v``,
            the nearest other-set distance (the value and index are then of that cloud, not
            necessarily the nearest), exactly ``v`` with the exact number of ties when the minimum
            equals ``v``, and a value ``> v`` (possibly ``inf``) otherwise. The other-set column
            (MMD, COV) is always exact. :func:`~pc3d.metrics.generative.one_nna_from_nearest`
            gives the same 1-NNA from either.
        n_directions, n_blocks: resolution of the sliced bound (cost only, never the result).
        progress: optional ``progress(done_queries, total_queries)`` after each round of solves.

    Returns:
        :class:`NearestEMD` with ``(len(queries), 2)`` arrays.

    Shapes:
        samples ``(S, N, 3)``, refs ``(R, N, 3)``, queries ``(Q,)`` -> arrays ``(Q, 2)``.
    """
    from pc3d.ops.emd import emd_pair_values

    if samples.dim() != 3 or refs.dim() != 3 or samples.shape[1:] != refs.shape[1:] or samples.shape[-1] != 3:
        raise ValueError(
            f"EMD needs clouds with equal point counts: samples (S, N, 3) and refs (R, N, 3), got "
            f"{tuple(samples.shape)} and {tuple(refs.shape)}"
        )
    S, R = samples.shape[0], refs.shape[0]
    K = S + R
    union = torch.cat([samples, refs.to(samples.dtype)])
    qs = np.arange(K, dtype=np.int64) if queries is None else np.asarray(queries, dtype=np.int64).reshape(-1)
    if len(qs) and (qs.min() < 0 or qs.max() >= K):
        raise ValueError(f"queries must be union indices in [0, {K}), got {qs.min()}..{qs.max()}")
    un = union.detach().cpu().to(torch.float64).numpy()
    dirs = _fibonacci_half_sphere(int(n_directions))
    sums = _block_sums(un, dirs, n_blocks)
    lb1 = _bounds_rows(sums, sums, un.mean(axis=1), un.mean(axis=1), qs)  # (Q, K)
    soa = _soa(un) if nearest_point_bound else None
    kernel = _get_bound_kernel() if nearest_point_bound else None

    sets = ((0, S), (S, K))
    # one search per (query, set): candidate order, pointer, best value, first argmin, ties
    orders, qids = [], []
    for qi, q in enumerate(qs):
        for lo, hi in sets:
            cand = np.arange(lo, hi, dtype=np.int64)
            cand = cand[cand != q]
            orders.append(cand[np.argsort(lb1[qi, cand], kind="stable")])
            qids.append(qi)
    n_s = len(orders)
    ptr = np.zeros(n_s, dtype=np.int64)
    best = np.full(n_s, np.inf)
    arg = np.full(n_s, -1, dtype=np.int64)
    ties = np.zeros(n_s, dtype=np.int64)
    done = np.zeros(n_s, dtype=bool)
    cap = np.full(n_s, np.inf)
    # 1-NNA only compares a cloud's nearest same-set distance with its nearest other-set one: without
    # exact_same_set, a same-set search waits for its partner (same query, other set) and then only
    # decides "below / equal (with the exact ties) / above" that value
    waiting = np.zeros(n_s, dtype=bool)
    capped = np.zeros(n_s, dtype=bool)
    if not exact_same_set:
        for k, q in enumerate(qs):
            waiting[2 * k + (0 if q < S else 1)] = True
    values: dict[tuple[int, int], float] = {}
    bounds: dict[tuple[int, int], float] = {}
    threads = num_threads()

    def advance(s: int, need_bound: set, need_emd: dict) -> None:
        q = int(qs[qids[s]])
        row = lb1[qids[s]]
        order = orders[s]
        while ptr[s] < len(order):
            if capped[s] and best[s] < cap[s]:
                break  # a same-set neighbour strictly nearer than the other set's: decided
            limit = min(best[s], cap[s])
            c = int(order[ptr[s]])
            if row[c] > limit:
                break
            key = (q, c) if q < c else (c, q)
            v = values.get(key)
            if v is not None:
                if v < best[s]:
                    best[s], arg[s], ties[s] = v, c, 1
                elif v == best[s]:
                    ties[s] += 1
                    arg[s] = min(arg[s], c)
                ptr[s] += 1
                continue
            lb = bounds.get(key)
            if lb is None and kernel is not None:
                need_bound.add(key)
                return
            if lb is not None and lb > limit:
                ptr[s] += 1
                continue
            # solve it, abandoning the solve once it provably exceeds every requester's limit
            need_emd[key] = max(need_emd.get(key, -np.inf), limit)
            return
        done[s] = True

    def compute_bounds(keys: list[tuple[int, int]]) -> None:
        def job(key: tuple[int, int]) -> float:
            return kernel(soa[key[0]], soa[key[1]])

        if threads > 1 and len(keys) > 1:
            res = list(get_pool(threads).map(job, keys))
        else:
            res = [job(k) for k in keys]
        for key, v in zip(keys, res):
            bounds[key] = max(bounds.get(key, -np.inf), v * (1.0 - _LB_SLACK))
            n_bound[0] += 1

    n_bound = [0]
    n_solved = [0, 0]  # solved to the end, abandoned
    while True:
        while True:
            need_bound: set = set()
            need_emd: dict = {}
            for s in np.flatnonzero(waiting & done[np.arange(n_s) ^ 1]):
                cap[s] = best[s ^ 1]
                waiting[s] = False
                capped[s] = True
            for s in np.flatnonzero(~done & ~waiting):
                advance(int(s), need_bound, need_emd)
            if need_bound:
                compute_bounds(sorted(need_bound))
            elif not (waiting & done[np.arange(n_s) ^ 1]).any():
                break  # else: a same-set search can start (its partner finished in this pass)
        if not need_emd:
            break
        keys = sorted(need_emd)
        step = len(keys) if batch_size is None else max(1, int(batch_size))
        for k0 in range(0, len(keys), step):
            chunk = keys[k0 : k0 + step]
            ii = np.array([k[0] for k in chunk], dtype=np.int64)
            jj = np.array([k[1] for k in chunk], dtype=np.int64)
            limits = np.array([need_emd[k] if early_abort else np.inf for k in chunk])
            vals, lbs = emd_pair_values(union, union, ii, jj, method=method, tol=tol, backend=backend,
                                        abort_above=limits)
            for key, v, lb in zip(chunk, vals, lbs):
                if np.isnan(v):
                    bounds[key] = max(bounds.get(key, -np.inf), float(lb))
                    n_solved[1] += 1
                else:
                    values[key] = float(v)
                    n_solved[0] += 1
        if progress is not None:
            finished = done.reshape(-1, 2).all(axis=1).sum()
            progress(int(finished), len(qs))
    if progress is not None:
        progress(len(qs), len(qs))
    shape = (len(qs), 2)
    # index within the set: samples 0..S-1, references 0..R-1
    index = arg.reshape(shape).copy()
    index[:, 1] = np.where(index[:, 1] >= 0, index[:, 1] - S, -1)
    return NearestEMD(best.reshape(shape), index, ties.reshape(shape), n_solved[0], n_bound[0], n_solved[1])
