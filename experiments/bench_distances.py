"""Distance kernels benchmark: Chamfer vs a naive torch.cdist baseline, and EMD accuracy/speed.

    python experiments/bench_distances.py            # full run (several minutes on 2 cores)
    python experiments/bench_distances.py --quick    # sanity run (small sizes, few pairs)

Part 1, Chamfer (forward + backward, squared, float32): for B in {1, 8, 32} and
N = M in {1024, 2048} (plus 4096 on CUDA) the median and min of ``--repeats`` timed runs
(after one warm-up) of ``pc3d.ops.chamfer_distance`` (default back-end: KD-trees on CPU,
tiled matmul on CUDA) and of a naive ``torch.cdist`` loss, measured in the same process,
and their ratio (cdist median / pc3d median). Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` during one fwd+bwd; on CPU the growth of the peak
resident set size (``ru_maxrss``) of a fresh subprocess that runs one fwd+bwd of that case
only (inputs created before the first reading), plus the size of the dense ``B x N x M``
float32 matrix for reference. "Peak RSS growth": the subprocess resets its peak RSS to the
current RSS (Linux ``/proc/self/clear_refs``), runs one fwd+bwd, and reports
``VmHWM - VmRSS before`` (all memory the case touched, torch's allocator caches included).

Part 2, EMD (``pc3d.ops.emd``, euclidean cost, mean over points):
- fwd+bwd time of ``method="auction"`` at B=32, N=2048 and N=1024 (wall and process CPU
  time), and of ``method="exact"`` per pair at N=1024 (serial vs thread pool, to show
  whether scipy's ``linear_sum_assignment`` runs in parallel);
- relative error ``(auction - exact) / exact`` on random pairs (uniform in the unit cube)
  and on pairs from the built-in procedural dataset (``data/pc3d_synthetic``, test split,
  1024 points subsampled with a fixed seed): different shapes, and the same shape
  resampled (small EMD, the hardest relative case). Squared cost on a subset.
Absolute times move a lot with the machine's load (the load average is printed); ratios
measured in one process hold better.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pc3d.ops import chamfer_distance, emd

ROOT = Path(__file__).resolve().parents[1]


def naive_cdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, y).square()  # (B, N, M), kept for autograd
    return (d.min(dim=2).values.mean(1) + d.min(dim=1).values.mean(1)).mean()


def pc3d_chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return chamfer_distance(x, y)


CHAMFER_FNS = {"pc3d": pc3d_chamfer, "cdist": naive_cdist}


def fwd_bwd(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x, y) -> Callable[[], None]:
    def run() -> None:
        a = x.detach().clone().requires_grad_()
        b = y.detach().clone().requires_grad_()
        loss_fn(a, b).backward()

    return run


def time_it(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up (thread pools, allocator, numba cache)
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def clouds(B: int, N: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, 3, generator=g)
    y = torch.rand(B, N, 3, generator=g)
    return x.to(device), y.to(device)


def rss_peak_growth_mib(name: str, B: int, N: int) -> float:
    """Peak RSS growth of one fwd+bwd in a fresh subprocess (CPU)."""
    out = subprocess.run(
        [sys.executable, __file__, "--_memory-case", name, str(B), str(N)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _memory_case(name: str, B: int, N: int) -> None:
    x, y = clouds(B, N, "cpu")
    fn = fwd_bwd(CHAMFER_FNS[name], x, y)
    fwd_bwd(CHAMFER_FNS[name], x[:1, :8], y[:1, :8])()  # load lazy modules, thread pools
    try:  # Linux: reset the peak RSS (VmHWM) to the current RSS, so imports do not mask it
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _proc_status_kib("VmRSS")
        fn()
        after = _proc_status_kib("VmHWM")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        fn()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)


def cuda_peak_mib(fn: Callable[[], None]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 1024**2


# ----------------------------------------------------------------------------- Chamfer


def bench_chamfer(args: argparse.Namespace, device: str) -> None:
    batches = [1, 8] if args.quick else [1, 8, 32]
    sizes = [1024] if args.quick else [1024, 2048]
    if device == "cuda" and not args.quick:
        sizes.append(4096)
    print(f"\n## Chamfer fwd+bwd, squared, float32, device={device}, median/min of {args.repeats} ({load()})")
    mem_what = "CUDA max_memory_allocated" if device == "cuda" else "peak RSS growth, own subprocess"
    print(f"memory: {mem_what}; dense = size of one float32 B x N x N matrix")
    head = (
        f"{'B':>3} {'N':>5} | {'pc3d med ms':>11} {'min':>8} | {'cdist med ms':>12} {'min':>8} | {'ratio':>6} | "
        f"{'pc3d MiB':>8} {'cdist MiB':>9} {'dense MiB':>9}"
    )
    print(head)
    print("-" * len(head))
    for N in sizes:
        for B in batches:
            x, y = clouds(B, N, device)
            t_p = time_it(fwd_bwd(pc3d_chamfer, x, y), args.repeats)
            t_c = time_it(fwd_bwd(naive_cdist, x, y), args.repeats)
            if device == "cuda":
                m_p = cuda_peak_mib(fwd_bwd(pc3d_chamfer, x, y))
                m_c = cuda_peak_mib(fwd_bwd(naive_cdist, x, y))
            elif args.no_memory:
                m_p = m_c = float("nan")
            else:
                m_p = rss_peak_growth_mib("pc3d", B, N)
                m_c = rss_peak_growth_mib("cdist", B, N)
            med_p, med_c = statistics.median(t_p), statistics.median(t_c)
            print(
                f"{B:>3} {N:>5} | {med_p * 1e3:>11.1f} {min(t_p) * 1e3:>8.1f} | {med_c * 1e3:>12.1f} "
                f"{min(t_c) * 1e3:>8.1f} | {med_c / med_p:>6.1f} | {m_p:>8.1f} {m_c:>9.1f} "
                f"{B * N * N * 4 / 1024**2:>9.1f}",
                flush=True,
            )


# ----------------------------------------------------------------------------- EMD


def dataset_pairs(n_pairs: int, N: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y) of different shapes and (x, x') of one shape resampled, from the built-in set."""
    from pc3d.data.synthetic import ensure_generated

    root = ROOT / "data" / "pc3d_synthetic"
    if not (root / "ShapeNetCore.v2.PC15k").is_dir():
        ensure_generated(root)  # the same call the data module makes; a no-op when present
    files = sorted((root / "ShapeNetCore.v2.PC15k").glob("*/test/*.npy"))
    if len(files) < 2:
        raise RuntimeError(f"no built-in test clouds under {root}")
    rng = np.random.default_rng(seed)

    def sample(f: Path) -> np.ndarray:
        pts = np.load(f)
        return pts[rng.choice(len(pts), N, replace=False)]

    xs, ys, same_a, same_b = [], [], [], []
    for _ in range(n_pairs):
        i, j = rng.choice(len(files), 2, replace=False)
        xs.append(sample(files[i]))
        ys.append(sample(files[j]))
        k = rng.integers(len(files))
        same_a.append(sample(files[k]))
        same_b.append(sample(files[k]))
    as_t = lambda a: torch.from_numpy(np.stack(a).astype(np.float32))  # noqa: E731
    return as_t(xs), as_t(ys), as_t(same_a), as_t(same_b)


def rel_errors(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> tuple[np.ndarray, float, float]:
    t0 = time.perf_counter()
    exact = emd(x.double(), y.double(), method="exact", squared=squared, reduction="none")
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    approx = emd(x, y, method="auction", squared=squared, reduction="none").double()
    t_approx = time.perf_counter() - t0
    return ((approx - exact) / exact).numpy(), t_exact, t_approx


def bench_emd(args: argparse.Namespace, device: str) -> None:
    print(f"\n## EMD (pc3d.ops.emd), euclidean cost, mean over points, device={device} ({load()})")
    # timing
    configs = [("random", 8, 1024)]
    if not args.quick:
        configs = [("random", 32, 2048), ("random", 32, 1024), ("built-in", 32, 2048)]
    for kind, B, N in configs:
        if kind == "random":
            x, y = clouds(B, N, device, seed=1)
        else:  # different shapes of the built-in set (long-range transport: more bids)
            x, y = (t.to(device) for t in dataset_pairs(B, N, seed=1)[:2])
        fn = fwd_bwd(lambda a, b: emd(a, b, method="auction"), x, y)
        fn()  # warm-up (numba compile / cache load)
        walls, cpus = [], []
        for _ in range(args.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        print(
            f"auction fwd+bwd {kind:<8} B={B} N={N}: wall median {statistics.median(walls):.2f} s "
            f"(min {min(walls):.2f}), process CPU median {statistics.median(cpus):.2f} s ({load()})",
            flush=True,
        )
    x, y = clouds(2, 1024, "cpu", seed=2)
    t0 = time.perf_counter()
    for b in range(2):
        emd(x[b : b + 1].double(), y[b : b + 1].double(), method="exact")
    serial = (time.perf_counter() - t0) / 2
    t0 = time.perf_counter()
    emd(x.double(), y.double(), method="exact")
    pooled = (time.perf_counter() - t0) / 2
    print(
        f"exact (scipy linear_sum_assignment) N=1024: {serial:.2f} s per pair serial, "
        f"{pooled:.2f} s per pair with 2 pairs on the thread pool"
    )

    # accuracy
    n_rand = 10 if args.quick else args.random_pairs
    n_data = 4 if args.quick else args.data_pairs
    N = 1024
    print(f"\nrelative error (auction - exact) / exact at N={N}, default tol=1e-2 (guaranteed bound 1e-2)")
    print(f"{'pairs':<44} {'count':>5} {'mean':>10} {'max':>10} {'min':>10} {'exact s':>8} {'auction s':>9}")
    rows = []
    g = torch.Generator().manual_seed(3)
    xr = torch.rand(n_rand, N, 3, generator=g)
    yr = torch.rand(n_rand, N, 3, generator=g)
    rows.append(("random uniform unit cube", xr, yr, False))
    xd, yd, sa, sb = dataset_pairs(n_data, N)
    rows.append(("built-in dataset, different shapes", xd, yd, False))
    rows.append(("built-in dataset, same shape resampled", sa, sb, False))
    k = min(n_rand, 20)
    rows.append(("random uniform, squared cost", xr[:k], yr[:k], True))
    rows.append(("built-in, different shapes, squared cost", xd, yd, True))
    for name, a, b, squared in rows:
        err, t_e, t_a = rel_errors(a, b, squared)
        print(
            f"{name:<44} {len(err):>5} {err.mean():>10.2e} {err.max():>10.2e} {err.min():>10.2e} "
            f"{t_e:>8.1f} {t_a:>9.2f}",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few pairs (sanity run)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 5, quick 2)")
    p.add_argument("--random-pairs", type=int, default=100)
    p.add_argument("--data-pairs", type=int, default=20)
    p.add_argument("--no-memory", action="store_true", help="skip the CPU memory subprocesses")
    p.add_argument("--skip-chamfer", action="store_true")
    p.add_argument("--skip-emd", action="store_true")
    p.add_argument("--_memory-case", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._memory_case:
        name, B, N = args._memory_case
        _memory_case(name, int(B), int(N))
        return
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"torch {torch.__version__}, device={device}, CPU threads={torch.get_num_threads()}, "
        f"cores={os.cpu_count()}, {load()}"
    )
    if not args.skip_chamfer:
        bench_chamfer(args, device)
    if not args.skip_emd:
        bench_emd(args, device)


if __name__ == "__main__":
    main()
