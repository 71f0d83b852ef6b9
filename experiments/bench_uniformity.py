"""Density-uniformity loss benchmark: forward + backward of ``pc3d.ops.uniformity_loss`` (k=8).

    OMP_NUM_THREADS=1 python experiments/bench_uniformity.py          # ~10 s
    python experiments/bench_uniformity.py --repeats 30 --sizes 20x512 16x1024 20x2048

For each (B, N): clouds of N points drawn from the built-in chair shapes
(``data/pc3d_synthetic/ShapeNetCore.v2.PC15k/90000002/train``, as a generator's samples
would be: surfaces) and uniform in the unit cube (volumes, the grid's harder case); the
median and min of ``--repeats`` timed fwd+bwd runs (after one warm-up, which also loads
numba's cached kernel) of the loss with each CPU neighbour search (``numba`` grid = the
default, ``kdtree``, ``torch`` brute force), and, as the in-process baseline, a Chamfer
distance fwd+bwd between the same clouds and a shifted copy. ``ratio`` = loss / Chamfer
median. Absolute times move with the machine's load (printed); ratios hold better.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pc3d.ops import chamfer_distance, uniformity_loss

ROOT = Path(__file__).resolve().parents[1]
CHAIRS = ROOT / "data" / "pc3d_synthetic" / "ShapeNetCore.v2.PC15k" / "90000002" / "train"


def clouds(kind: str, B: int, N: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    if kind == "cube":
        return torch.from_numpy(rng.random((B, N, 3), dtype=np.float32))
    files = sorted(CHAIRS.glob("*.npy"))
    if not files:
        raise SystemExit(f"no chair clouds under {CHAIRS}; run pc3d-data first")
    out = []
    for b in range(B):
        pts = np.load(files[b % len(files)])
        out.append(pts[rng.choice(len(pts), N, replace=False)])
    return torch.from_numpy(np.stack(out).astype(np.float32))


def time_it(fn, repeats: int) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


def loss_fwd_bwd(x: torch.Tensor, k: int, backend: str) -> None:
    a = x.clone().requires_grad_()
    uniformity_loss(a, k=k, backend=backend).backward()


def chamfer_fwd_bwd(x: torch.Tensor) -> None:
    a = x.clone().requires_grad_()
    chamfer_distance(a, x + 0.01).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["20x512", "16x1024"], help="BxN cases")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, CPU threads={torch.get_num_threads()}, cores={os.cpu_count()}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"\n## uniformity_loss fwd+bwd, k={args.k}, float32, cpu, median/min of {args.repeats} (ms)")
    print(f"{'cloud':>6} {'B':>3} {'N':>5} | {'numba':>13} | {'kdtree':>13} | {'torch':>13} | "
          f"{'chamfer':>13} | ratio numba/chamfer")
    print("-" * 98)
    for size in args.sizes:
        B, N = (int(v) for v in size.split("x"))
        for kind in ("chair", "cube"):
            x = clouds(kind, B, N)
            cols = [time_it(lambda b=backend, x=x: loss_fwd_bwd(x, args.k, b), args.repeats)
                    for backend in ("numba", "kdtree", "torch")]
            base = time_it(lambda x=x: chamfer_fwd_bwd(x), args.repeats)
            cells = " | ".join(f"{m:6.1f} {lo:6.1f}" for m, lo in (*cols, base))
            print(f"{kind:>6} {B:>3} {N:>5} | {cells} | {cols[0][0] / base[0]:.2f}")
    print(f"(load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
