"""Earth mover's distance between equal-size point clouds (differentiable).

Definition (PointFlow's convention, the default here): for one pair of clouds
``x = {x_i}`` and ``y = {y_j}`` with the same number of points ``N``::

    emd(x, y) = min over bijections s of  (1 / N) * sum_i d(x_i, y_s(i))

i.e. the MEAN matched cost of an optimal one-to-one matching (divided by ``N``, not summed),
with ``d(a, b) = ||a - b||`` (euclidean, ``squared=False``, default) or ``||a - b||^2``
(``squared=True``). It is symmetric, 0 for identical or permuted clouds, and equals
``|t|`` (``|t|^2`` when squared) for a translated copy ``y = x + t``.

Two ways to find the matching (no autograd involved in either):

``method="exact"``
    ``scipy.optimize.linear_sum_assignment`` (shortest augmenting paths) on the dense
    float64 cost matrix of every pair; the pairs run on a small thread pool (scipy releases
    the GIL). Exact up to float64 rounding. ``O(N^3)`` worst case and ``O(N^2)`` memory per
    pair: ~0.3 s per pair at N=1024 and ~2 s at N=2048 on one core. The reference, and the
    metric for small N.
``method="auction"`` (alias ``"approx"``)
    Bertsekas' auction algorithm with epsilon scaling. It returns a BIJECTION, so its value
    is an upper bound of the exact EMD, and epsilon-complementary slackness bounds the
    excess: ``emd_auction <= emd_exact + eps_final``. The final ``eps`` is
    ``tol * LB`` with ``LB = max(mean_i min_j d(x_i, y_j), mean_j min_i d(x_i, y_j))`` a
    lower bound of the exact EMD, so (up to float32 rounding of the cost, ~1e-7 relative)::

        emd_exact <= emd_auction <= (1 + tol) * emd_exact        (default tol = 1e-2)

    ``eps_final`` is floored at ``1e-6 * max_ij d(x_i, y_j)`` (clouds that nearly coincide).
    In practice the excess is 15-200x below the bound: at ``tol=1e-2``, N=1024, the mean
    relative excess was 5e-5 on random pairs and 7e-4 on pairs of different built-in shapes
    (see ``experiments/RESULTS.md``). Back-ends:

    * ``"numba"`` (CPU, the default there): a sequential (Gauss-Seidel) auction compiled
      with numba, one pair per thread-pool job (the kernel releases the GIL). Each bidder
      keeps its 8 best objects and an upper bound of the value of every other object
      (prices only rise, so values only fall); a full ``O(N)`` scan is only needed when the
      cached second best falls below that bound. About 0.1 s of CPU per pair at N=2048
      (0.2 s for pairs of very different shapes), so B=32 takes 2-4 s of CPU time spread
      over the cores.
    * ``"torch"`` (any device, the default on CUDA): the same auction, vectorized over the
      batch (Jacobi bidding: every unassigned person of every pair bids at once, conflicts
      resolved with a scatter-max). Slow on CPU (many small rounds), meant for GPUs; on CPU
      it is the fallback when numba is missing and the reference the CUDA path is tested
      against.

Gradient: the matching is found without autograd, then the cost is rebuilt in torch from
the gathered points, ``d(x_i, y_s(i))``, and averaged. This is the exact gradient of the EMD
wherever the optimal matching is unique (almost everywhere; with the auction, the gradient
of the cost of the returned near-optimal bijection). With ``squared=False`` the gradient of
``||a - b||`` at ``a == b`` is taken as 0 (no NaN).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from pc3d.geometry.checks import validate_pair
from pc3d.ops.common import get_pool, lazy_njit, num_threads, reduce_per_cloud, safe_sqrt
from pc3d.ops.common import have_numba as _have_numba
from pc3d.ops.knn import gather_points

__all__ = ["EMDResult", "METHODS", "emd", "emd_pair_values"]

#: Accepted values of ``method`` ("approx" is an alias of "auction").
METHODS = ("exact", "auction", "approx")
#: Accepted values of ``backend`` (auction only).
AUCTION_BACKENDS = ("auto", "numba", "torch")
_REDUCTIONS = ("mean", "sum", "none")

#: Auction schedule: first eps = max cost / _EPS0_DIV, then divided by _EPS_FACTOR per phase.
_EPS0_DIV = 32.0
_EPS_FACTOR = 8.0
#: eps never goes below this fraction of the largest cost of the pair.
_EPS_FLOOR_REL = 1e-6
#: Candidates cached per bidder by the numba kernel.
_CACHE_M = 8
#: Most cost-matrix entries the torch auction holds at once (batch chunks), ~512 MiB float32.
_TORCH_MAX_ENTRIES = 128 * 1024**2


class EMDResult(NamedTuple):
    """EMD with its matching (``return_assignment=True``).

    Attributes:
        distance: the EMD reduced as requested: ``()`` for ``"mean"`` / ``"sum"``, ``(B,)``
            for ``"none"``.
        assignment: ``(B, N)`` int64 permutation; ``x[b, i]`` is matched to
            ``y[b, assignment[b, i]]``.
    """

    distance: Tensor
    assignment: Tensor


# ----------------------------------------------------------------------------- exact


def _lsa_pair(x: np.ndarray, y: np.ndarray, squared: bool) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    # one coordinate at a time: two N x N float64 temporaries instead of an N x N x 3 one
    cost = np.square(np.subtract.outer(x[:, 0], y[:, 0]))
    for k in (1, 2):
        cost += np.square(np.subtract.outer(x[:, k], y[:, k]))
    if not squared:
        np.sqrt(cost, out=cost)
    _, cols = linear_sum_assignment(cost)
    return cols


def _run_pairs(job, B: int) -> list:
    threads = num_threads()
    if B == 1 or threads == 1:
        return [job(b) for b in range(B)]
    return list(get_pool(threads).map(job, range(B)))


def _centered_numpy(x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies translated by the mean of ``y`` (EMD is translation invariant)."""
    xn = x.detach().cpu().to(torch.float64).numpy()
    yn = y.detach().cpu().to(torch.float64).numpy()
    center = yn.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(xn - center), np.ascontiguousarray(yn - center)


def _exact_assignment(x: Tensor, y: Tensor, squared: bool) -> Tensor:
    xn, yn = _centered_numpy(x, y)
    cols = _run_pairs(lambda b: _lsa_pair(xn[b], yn[b], squared), x.shape[0])
    return torch.from_numpy(np.stack(cols).astype(np.int64, copy=False)).to(x.device)


# ----------------------------------------------------------------------------- auction, numba


def _auction_pair_py(x, y, squared, tol, eps0_div, factor, floor_rel, m_cache, abort_above):  # pragma: no cover
    """Gauss-Seidel auction with eps scaling for one pair; returns ``(person -> object (N,), dual)``.

    ``abort_above`` (``inf``: never): at the end of every eps phase but the last, the dual lower
    bound of the prices, ``dual = (sum_i min_j (C[i, j] + p_j) - sum_j p_j) / N`` (valid for any
    prices: ``u_i = min_j (C[i, j] + p_j)``, ``v_j = -p_j`` is dual feasible), is computed; when it
    exceeds ``abort_above`` the auction stops and returns ``(p2o with p2o[0] = -1, dual)``. The
    checks do not change the auction's state: a run that is not aborted returns the same matching
    as with ``abort_above = inf`` (``dual = -1`` then).

    Minimizes sum_i C[i, s(i)] (maximizes the benefit -C). Prices are kept across eps
    phases; the assignment is reset at each phase. Every bidder caches its ``m`` best
    objects and ``bound[i]``, the (m+1)-th best value at that scan: since prices only rise,
    no object outside the cache can be worth more than ``bound[i]`` later, so the cached
    top two are the true top two while the cached second best is >= ``bound[i]``.
    """
    N = x.shape[0]
    p2o = np.empty(N, np.int64)
    if N == 1:
        p2o[0] = 0
        return p2o, -1.0
    # float32 cost (the matching only; the returned value is recomputed by the caller from
    # the input points). Coordinates are centered by the caller, so float32 keeps ~1e-7
    # relative precision on the cost.
    C = np.empty((N, N), np.float32)
    xs = x.astype(np.float32)
    ys = y.astype(np.float32)
    cmax = np.float32(0.0)
    row_sum = 0.0
    col_min = np.full(N, np.inf, np.float32)
    for i in range(N):
        a0 = xs[i, 0]
        a1 = xs[i, 1]
        a2 = xs[i, 2]
        row = C[i]
        for j in range(N):
            d = (a0 - ys[j, 0]) ** 2 + (a1 - ys[j, 1]) ** 2 + (a2 - ys[j, 2]) ** 2
            row[j] = d if squared else np.sqrt(d)
        rmin = np.float32(np.inf)
        for j in range(N):
            d = row[j]
            cmax = max(cmax, d)
            rmin = min(rmin, d)
            col_min[j] = min(col_min[j], d)
        row_sum += rmin
    lb = max(row_sum / N, col_min.sum() / N)
    eps_final = max(tol * lb, floor_rel * cmax)
    if cmax == 0.0:
        for i in range(N):
            p2o[i] = i
        return p2o, -1.0

    m = min(m_cache, N - 1)
    o2p = np.empty(N, np.int64)
    price = np.zeros(N)
    queue = np.empty(N, np.int64)
    cand = np.zeros((N, m), np.int64)
    bound = np.full(N, np.inf)
    topv = np.empty(m)
    topj = np.empty(m, np.int64)
    eps = cmax / eps0_div
    while True:
        if eps < eps_final:
            eps = eps_final
        for i in range(N):
            p2o[i] = -1
            o2p[i] = -1
            queue[i] = i
        head = 0
        n = N
        while n > 0:
            i = queue[head]
            head += 1
            if head == N:
                head = 0
            n -= 1
            best = -1e300
            second = -1e300
            bj = 0
            if bound[i] < 1e300:
                for k in range(m):
                    j = cand[i, k]
                    v = -C[i, j] - price[j]
                    if v > second:
                        if v > best:
                            second = best
                            best = v
                            bj = j
                        else:
                            second = v
            if second < bound[i]:
                # full scan, keeping the m best values sorted and the (m+1)-th in w
                for k in range(m):
                    topv[k] = -1e300
                    topj[k] = 0
                w = -1e300
                for j in range(N):
                    v = -C[i, j] - price[j]
                    if v > w:
                        if v > topv[m - 1]:
                            w = topv[m - 1]
                            k = m - 1
                            while k > 0 and topv[k - 1] < v:
                                topv[k] = topv[k - 1]
                                topj[k] = topj[k - 1]
                                k -= 1
                            topv[k] = v
                            topj[k] = j
                        else:
                            w = v
                for k in range(m):
                    cand[i, k] = topj[k]
                bound[i] = w
                best = topv[0]
                second = topv[1] if m > 1 else w
                bj = topj[0]
            price[bj] += best - second + eps
            old = o2p[bj]
            o2p[bj] = i
            p2o[i] = bj
            if old >= 0:
                p2o[old] = -1
                t = head + n
                if t >= N:
                    t -= N
                queue[t] = old
                n += 1
        if eps <= eps_final:
            break
        if abort_above < np.inf:
            dual = 0.0
            for j in range(N):
                dual -= price[j]
            for i in range(N):
                row = C[i]
                rmin = np.inf
                for j in range(N):
                    rmin = min(rmin, row[j] + price[j])
                dual += rmin
            dual /= N
            if dual > abort_above:
                p2o[0] = -1
                return p2o, dual
        eps /= factor
    return p2o, -1.0


#: Compile the auction kernel on first use (numba's on-disk cache makes later runs fast).
_get_numba_kernel = lazy_njit(_auction_pair_py)


def _auction_numba(x: Tensor, y: Tensor, squared: bool, tol: float) -> Tensor:
    kernel = _get_numba_kernel()
    xn, yn = _centered_numpy(x, y)

    def job(b: int) -> np.ndarray:
        return kernel(xn[b], yn[b], squared, tol, _EPS0_DIV, _EPS_FACTOR, _EPS_FLOOR_REL, _CACHE_M, np.inf)[0]

    cols = _run_pairs(job, x.shape[0])
    return torch.from_numpy(np.stack(cols)).to(x.device)


# ----------------------------------------------------------------------------- auction, torch


def _auction_torch_chunk(cost: Tensor, tol: float) -> Tensor:
    """Jacobi auction with eps scaling on a batch of cost matrices ``(B, N, N)``."""
    B, N, _ = cost.shape
    dev = cost.device
    if N == 1:
        return torch.zeros(B, 1, dtype=torch.int64, device=dev)
    value_dtype = torch.float64 if cost.dtype == torch.float64 else torch.float32
    cost = cost.to(value_dtype)
    cmax = cost.amax(dim=(1, 2))
    lb = torch.maximum(cost.amin(dim=2).mean(dim=1), cost.amin(dim=1).mean(dim=1))
    eps_final = torch.maximum(tol * lb, _EPS_FLOOR_REL * cmax)
    eps = cmax / _EPS0_DIV
    done_all = cmax == 0  # identical single-location clouds: any bijection is optimal
    eps_final = torch.where(done_all, torch.ones_like(eps_final), eps_final)
    eps = torch.where(done_all, eps_final, eps)
    neg = cost.neg_()
    price = torch.zeros(B, N, dtype=value_dtype, device=dev)
    while True:
        eps = torch.maximum(eps, eps_final)
        p2o = torch.full((B, N), -1, dtype=torch.int64, device=dev)
        o2p = torch.full((B, N), -1, dtype=torch.int64, device=dev)
        while True:
            b, i = (p2o < 0).nonzero(as_tuple=True)
            if b.numel() == 0:
                break
            vals = neg[b, i] - price[b]  # (U, N)
            top = vals.topk(2, dim=1)
            v1, v2 = top.values.unbind(1)
            j = top.indices[:, 0]
            bid = price[b, j] + (v1 - v2) + eps[b]
            flat = b * N + j
            best = torch.full((B * N,), -torch.inf, dtype=value_dtype, device=dev)
            best.scatter_reduce_(0, flat, bid, reduce="amax")
            win = bid == best[flat]
            winner = torch.full((B * N,), -1, dtype=torch.int64, device=dev)
            winner.scatter_reduce_(0, flat[win], i[win], reduce="amax")
            objs = (winner >= 0).nonzero(as_tuple=True)[0]
            new = winner[objs]
            ob, oj = objs // N, objs % N
            old = o2p[ob, oj]
            had = old >= 0
            p2o[ob[had], old[had]] = -1
            o2p[ob, oj] = new
            p2o[ob, new] = oj
            price.view(-1)[objs] = best[objs]
        if bool((eps <= eps_final).all()):
            break
        eps = torch.where(eps <= eps_final, eps, eps / _EPS_FACTOR)
    return p2o


def _auction_torch(x: Tensor, y: Tensor, squared: bool, tol: float) -> Tensor:
    with torch.no_grad():
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        center = y.mean(dim=1, keepdim=True)
        xc, yc = (x - center).to(dtype), (y - center).to(dtype)
        B, N, _ = x.shape
        step = max(1, _TORCH_MAX_ENTRIES // (N * N))
        out = []
        for b0 in range(0, B, step):
            xb, yb = xc[b0 : b0 + step], yc[b0 : b0 + step]
            cost = _sqdist(xb, yb)
            if not squared:
                cost = cost.sqrt_()
            out.append(_auction_torch_chunk(cost, tol))
        return torch.cat(out)


def _sqdist(x: Tensor, y: Tensor) -> Tensor:
    """Squared distances ``(B, N, M)`` as three exact elementwise terms (no matmul rounding)."""
    d = (x[:, :, None, 0] - y[:, None, :, 0]).square_()
    d += (x[:, :, None, 1] - y[:, None, :, 1]).square_()
    d += (x[:, :, None, 2] - y[:, None, :, 2]).square_()
    return d


# ----------------------------------------------------------------------------- public API


def _resolve(method: str, backend: str, device: torch.device) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in AUCTION_BACKENDS:
        raise ValueError(f"backend must be one of {AUCTION_BACKENDS}, got {backend!r}")
    if method == "exact":
        return "exact"
    if backend == "auto":
        return "numba" if device.type == "cpu" and _have_numba() else "torch"
    if backend == "numba" and not _have_numba():
        raise ValueError("backend='numba' needs the numba package (pip install numba)")
    return backend


def emd(
    x: Tensor,
    y: Tensor,
    *,
    method: str = "exact",
    squared: bool = False,
    reduction: str = "mean",
    return_assignment: bool = False,
    tol: float = 1e-2,
    backend: str = "auto",
) -> Tensor | EMDResult:
    """Earth mover's distance ``min_s (1/N) sum_i d(x_i, y_s(i))`` per cloud pair.

    ``s`` ranges over bijections (both clouds have ``N`` points); ``d`` is the euclidean
    distance (default, PointFlow's EMD: mean matched euclidean distance) or its square
    (``squared=True``). Differentiable w.r.t. ``x`` and ``y`` through the matched points.

    Args:
        x: first batch of clouds.
        y: second batch of clouds, same ``B`` and the same ``N``.
        method: ``"exact"`` (scipy ``linear_sum_assignment`` on the float64 cost, the
            reference) or ``"auction"`` / ``"approx"`` (epsilon-scaled auction: a bijection
            whose value is within ``[1, 1 + tol]`` times the exact EMD; use it as a
            training loss at N = 2048).
        squared: squared euclidean (True) or euclidean (False, default) point cost. The
            matching is optimal for the chosen cost.
        reduction: ``"mean"`` over the batch (scalar), ``"sum"`` (scalar) or ``"none"``
            (one value per pair).
        return_assignment: also return the matching (an :class:`EMDResult`).
        tol: auction only, guaranteed relative excess over the exact EMD (> 0); smaller is
            slower (the last eps phase gets longer).
        backend: auction only, ``"auto"`` (numba on CPU when installed, torch otherwise and
            on CUDA), ``"numba"`` or ``"torch"``.

    Returns:
        The distance in the dtype and on the device of ``x`` (an :class:`EMDResult` if
        ``return_assignment``).

    Shapes:
        x: ``(B, N, 3)``, y: ``(B, N, 3)`` -> ``()`` for ``"mean"``/``"sum"``, ``(B,)`` for
        ``"none"``; assignment ``(B, N)`` int64, ``x[b, i] <-> y[b, assignment[b, i]]``.

    Cost:
        exact: ``O(N^3)`` worst case per pair (~0.3 s at N=1024, ~2 s at N=2048 per core),
        ``O(N^2)`` float64 memory per running pair. auction (numba): ``O(N^2)`` per pair in
        practice (~0.1-0.2 s of CPU at N=2048), float32 ``N x N`` cost per running pair.
        auction (torch): ``O(B N^2)`` memory in batch chunks of ~512 MiB. Backward
        ``O(B N)``.

    Raises:
        ValueError: bad shape (expected ``(B, N, 3)``), ``N`` differing between ``x`` and
            ``y``, empty clouds, different batch sizes / dtypes / devices, NaN/inf, unknown
            ``method`` / ``reduction`` / ``backend``, ``tol <= 0``.
        TypeError: non-tensor or non-floating-point input.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not (isinstance(tol, (int, float)) and tol > 0 and np.isfinite(tol)):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    validate_pair(x, y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            "EMD needs clouds with the same number of points: x (B, N, 3) and y (B, N, 3), "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    which = _resolve(method, backend, x.device)
    with torch.no_grad():
        if which == "exact":
            assignment = _exact_assignment(x, y, squared)
        elif which == "numba":
            assignment = _auction_numba(x, y, squared, float(tol))
        else:
            assignment = _auction_torch(x, y, squared, float(tol))

    d = (x - gather_points(y, assignment)).square().sum(-1)  # (B, N)
    if not squared:
        d = safe_sqrt(d)
    per_cloud = d.mean(dim=1)
    distance = reduce_per_cloud(per_cloud, reduction)
    if return_assignment:
        return EMDResult(distance, assignment)
    return distance


# ----------------------------------------------------------------------------- many pairs, values only


def _pair_value(x: np.ndarray, y: np.ndarray, cols: np.ndarray, squared: bool) -> float:
    """``(1/N) sum_i d(x_i, y_cols[i])`` in float64, one pair (numpy: the same summation order for a
    pair whatever batch it was computed in)."""
    d = np.square(x - y[cols]).sum(axis=1)
    if not squared:
        d = np.sqrt(d)
    return float(d.mean())


def emd_pair_values(
    a: Tensor,
    b: Tensor,
    ii: Any,
    jj: Any,
    *,
    method: str = "exact",
    squared: bool = False,
    tol: float = 1e-2,
    backend: str = "auto",
    batch_size: int = 64,
    abort_above: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """EMD values of many pairs ``(a[ii[p]], b[jj[p]])``, no autograd: the evaluation path of the metrics.

    The same definition and solvers as :func:`emd` (mean matched cost, ``method`` exact or
    auction); the value of a pair is the cost of the returned bijection recomputed in float64 from
    the input points (``_pair_value``). On the CPU (``method="exact"``, or the numba auction) the
    matching of a pair depends only on that pair's two clouds (each pair is solved on its own,
    float64 copies centred on the second cloud's mean), so **a pair's value is bit-identical
    whatever batch, order, thread or process computed it**: a full distance matrix, a pruned
    nearest-neighbour search and a matrix sharded over ranks give the same numbers. (The batched
    torch auction, the default on CUDA, solves a batch jointly: its matching of a pair may depend on
    the other pairs of the batch, within the auction tolerance.)

    Args:
        a, b: two sets of clouds (``b`` may be ``a``), same device, same ``N``.
        ii, jj: integer indices into ``a`` and ``b``, one pair per entry (orientation matters for
            the auction: ``(a[i], b[j])`` and ``(b[j], a[i])`` may differ within ``tol``).
        method, squared, tol, backend: as :func:`emd`.
        batch_size: pairs per thread-pool map / per torch batch.
        abort_above: numba auction only, a threshold per pair ``(P,)`` (or one for all): a pair
            whose dual lower bound (checked at the end of each eps phase but the last, see
            ``_auction_pair_py``) rises above its threshold is abandoned; its value is then NaN
            and its lower bound is returned. A pair that is not abandoned gets exactly the value
            it gets without a threshold. (Other solvers ignore it: every pair is solved.)

    Returns:
        float64 numpy ``(P,)``; with ``abort_above``, ``(values, bounds)``: ``bounds[p]`` a lower
        bound of the EMD of an abandoned pair (its dual bound less a float32 rounding margin),
        ``-inf`` for solved pairs.

    Shapes:
        a ``(A, N, 3)``, b ``(B, N, 3)``, ii ``(P,)``, jj ``(P,)`` -> ``(P,)``.
    """
    if a.dim() != 3 or b.dim() != 3 or a.shape[-1] != 3 or b.shape[-1] != 3 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have shapes (A, N, 3) and (B, N, 3), got {tuple(a.shape)} and {tuple(b.shape)}")
    ii = np.asarray(ii, dtype=np.int64).reshape(-1)
    jj = np.asarray(jj, dtype=np.int64).reshape(-1)
    if ii.shape != jj.shape:
        raise ValueError(f"ii and jj must have the same length (P,), got {ii.shape} and {jj.shape}")
    if len(ii) and (ii.min() < 0 or ii.max() >= a.shape[0] or jj.min() < 0 or jj.max() >= b.shape[0]):
        raise ValueError(f"pair indices out of range: ii in [0, {a.shape[0]}), jj in [0, {b.shape[0]})")
    if not (isinstance(tol, (int, float)) and tol > 0 and np.isfinite(tol)):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    which = _resolve(method, backend, a.device)
    out = np.empty(len(ii), dtype=np.float64)
    lbs = np.full(len(ii), -np.inf)
    thresholds = None
    if abort_above is not None:
        thresholds = np.broadcast_to(np.asarray(abort_above, dtype=np.float64), ii.shape)
    if len(ii) == 0:
        return out if thresholds is None else (out, lbs)
    an = a.detach().cpu().to(torch.float64).numpy()
    bn = an if b is a else b.detach().cpu().to(torch.float64).numpy()
    if which in ("exact", "numba"):
        kernel = _get_numba_kernel() if which == "numba" else None

        def job(p: int) -> tuple[float, float]:
            x, y = an[ii[p]], bn[jj[p]]
            center = y.mean(axis=0, keepdims=True)
            xc, yc = np.ascontiguousarray(x - center), np.ascontiguousarray(y - center)
            if kernel is None:
                return _pair_value(x, y, _lsa_pair(xc, yc, squared), squared), -np.inf
            limit = np.inf if thresholds is None else float(thresholds[p])
            cols, dual = kernel(xc, yc, squared, float(tol), _EPS0_DIV, _EPS_FACTOR, _EPS_FLOOR_REL, _CACHE_M, limit)
            if cols[0] < 0:  # abandoned: the dual bound, less the float32 rounding of the costs it used
                radius = np.sqrt(np.square(xc).sum(1).max()) + np.sqrt(np.square(yc).sum(1).max())
                margin = 4e-6 * radius * (radius if squared else 1.0)
                return np.nan, dual - margin - 1e-9 * abs(dual)
            return _pair_value(x, y, cols, squared), -np.inf

        threads = num_threads()
        if threads == 1 or len(ii) == 1:
            res = [job(p) for p in range(len(ii))]
        else:
            res = list(get_pool(threads).map(job, range(len(ii))))
        out[:] = [v for v, _ in res]
        lbs[:] = [lb for _, lb in res]
        return out if thresholds is None else (out, lbs)
    step = max(1, int(batch_size))
    for p0 in range(0, len(ii), step):
        i = torch.from_numpy(ii[p0 : p0 + step]).to(a.device)
        j = torch.from_numpy(jj[p0 : p0 + step]).to(a.device)
        x, y = a[i], b[j]
        cols = _auction_torch(x, y, squared, float(tol)).cpu().numpy()
        for k in range(len(cols)):
            out[p0 + k] = _pair_value(an[ii[p0 + k]], bn[jj[p0 + k]], cols[k], squared)
    return out if thresholds is None else (out, lbs)
