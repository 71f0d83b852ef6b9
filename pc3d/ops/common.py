"""Small helpers shared by the kernels of :mod:`pc3d.ops` (and the metrics built on them).

* :func:`num_threads` / :func:`get_pool`: how many CPU threads a kernel may use, and the
  process-local thread pool the per-cloud jobs run on (scipy and numba release the GIL);
* :func:`safe_sqrt`: ``sqrt`` with a zero gradient at 0 (euclidean distances from squared ones);
* :func:`reduce_per_cloud`: the ``reduction`` of a per-cloud loss.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

__all__ = ["get_pool", "have_numba", "lazy_njit", "num_threads", "reduce_per_cloud", "safe_sqrt"]

_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None
_pool_lock = threading.Lock()


def num_threads() -> int:
    """CPU threads a kernel may use: torch's intra-op setting, capped by the core count."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def get_pool(workers: int) -> ThreadPoolExecutor:
    """A process-local thread pool (re-created after ``fork``, e.g. in DataLoader workers)."""
    global _pool, _pool_key
    key = (os.getpid(), workers)
    with _pool_lock:
        if _pool is None or _pool_key != key:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pc3d-knn")
            _pool_key = key
        return _pool


def have_numba() -> bool:
    """Whether numba is importable."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def lazy_njit(py_func: Callable) -> Callable[[], Callable]:
    """A function returning ``numba.njit(nogil=True, cache=True)(py_func)``, compiled on its first
    call (once, thread-safe; numba's on-disk cache makes later processes fast)."""
    lock = threading.Lock()
    compiled: list[Callable] = []

    def get_kernel() -> Callable:
        with lock:
            if not compiled:
                import numba

                compiled.append(numba.njit(nogil=True, cache=True)(py_func))
            return compiled[0]

    return get_kernel


def safe_sqrt(d2: Tensor) -> Tensor:
    """``sqrt`` whose gradient at 0 is 0 instead of inf/NaN.

    Shapes: any -> the same shape.
    """
    positive = d2 > 0
    return torch.where(positive, torch.where(positive, d2, torch.ones_like(d2)).sqrt(), torch.zeros_like(d2))


def reduce_per_cloud(per_cloud: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a loss ``reduction`` (validated by the caller) to per-cloud values.

    Shapes:
        per_cloud: (B,); returns a scalar for "mean" / "sum", the (B,) tensor for "none"
    """
    if reduction == "mean":
        return per_cloud.mean()
    if reduction == "sum":
        return per_cloud.sum()
    return per_cloud
