"""Quick Chamfer benchmark: forward + backward on CPU, ratio to a naive torch.cdist baseline.

    python experiments/bench_chamfer_quick.py [--batch 32] [--points 2048] [--repeats 5]

Every row is timed in this process (one warm-up, then ``--repeats`` timed runs); the ratio
is the median time of the row divided by the median time of the cdist baseline. Absolute
times vary a lot between runs on shared machines; ratios are the thing to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from pc3d.ops import chamfer_distance
from pc3d.ops.knn import nearest_indices


def naive_cdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, y).square()  # (B, N, M), kept for autograd
    return (d.min(dim=2).values.mean(1) + d.min(dim=1).values.mean(1)).mean()


def time_it(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up (thread pools, allocator)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fwd_bwd(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x, y) -> Callable[[], None]:
    def run() -> None:
        a = x.clone().requires_grad_()
        b = y.clone().requires_grad_()
        loss_fn(a, b).backward()

    return run


def open3d_search(x: torch.Tensor, y: torch.Tensor) -> Callable[[], None] | None:
    """Both directions with Open3D's NearestNeighborSearch on a thread pool (for comparison)."""
    try:
        import open3d as o3d
    except ImportError:
        return None
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(torch.get_num_threads())
    xs, ys = list(x.numpy()), list(y.numpy())

    def one(job):
        q, r = job
        nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(r))
        nns.knn_index()
        return nns.knn_search(o3d.core.Tensor(q), 1)[0].numpy()

    return lambda: list(pool.map(one, list(zip(xs + ys, ys + xs, strict=True))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--points", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, args.points, 3, generator=g)
    y = torch.rand(args.batch, args.points, 3, generator=g)

    rows: list[tuple[str, Callable[[], object]]] = [
        ("fwd+bwd  naive torch.cdist (baseline)", fwd_bwd(naive_cdist, x, y)),
        (
            "fwd+bwd  pc3d backend=torch (tiled mm)",
            fwd_bwd(lambda a, b: chamfer_distance(a, b, backend="torch"), x, y),
        ),
        ("fwd+bwd  pc3d backend=auto (kdtree)", fwd_bwd(chamfer_distance, x, y)),
        (
            "fwd+bwd  pc3d auto, squared=False",
            fwd_bwd(lambda a, b: chamfer_distance(a, b, squared=False), x, y),
        ),
        ("search   pc3d kdtree, both directions", lambda: nearest_indices([(x, y), (y, x)], backend="kdtree")),
    ]
    o3d_fn = open3d_search(x, y)
    if o3d_fn is not None:
        rows.append(("search   open3d NNS, both directions", o3d_fn))

    print(
        f"Chamfer B={args.batch} N=M={args.points} float32, CPU threads={torch.get_num_threads()}, "
        f"torch {torch.__version__}, median of {args.repeats}"
    )
    print(f"{'case':<42} {'median ms':>10} {'min ms':>9} {'ratio':>8}")
    base = None
    for name, fn in rows:
        ts = time_it(fn, args.repeats)
        med = statistics.median(ts)
        base = med if base is None else base
        print(f"{name:<42} {med * 1e3:>10.1f} {min(ts) * 1e3:>9.1f} {med / base:>8.4f}")


if __name__ == "__main__":
    main()
