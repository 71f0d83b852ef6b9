"""Benchmark of the generation metrics (issue 5), plus the FPD sanity table.

    python experiments/bench_metrics.py                      # CD metrics, 100 vs 100 at N=2048
    python experiments/bench_metrics.py --emd                # + EMD metrics at N=1024 (approx EMD)
    python experiments/bench_metrics.py --fpd-classifier outputs/.../last.ckpt   # FPD same vs across

Clouds are built-in shapes (``data/pc3d_synthetic``, all categories, ``n`` from the train
split as references and ``n`` from the val+test+train remainder as "generated"); random blobs
when the data is missing. Timings: min / median of ``--repeats`` runs. The baseline, measured
in the same process on a ``--baseline-n`` x ``--baseline-n`` subset, is the straightforward
way: every ordered pair (S x R, S x S, R x R) through ``chamfer_distance(..., reduction="none")``
in batches of 32 pairs; the ratio compares the per-pair cost of both on that subset. The same
subset is also timed with ``backend="kdtree"`` (scipy KD-trees, the CPU path before the
compiled brute force of ``pc3d.metrics._chamfer_pairs`` became the default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pc3d.metrics.generative import distance_matrix, evaluate_generation, mmd_cov, one_nna
from pc3d.ops import chamfer_distance

ROOT = Path(__file__).resolve().parent.parent / "data" / "pc3d_synthetic" / "ShapeNetCore.v2.PC15k"


def load_sets(n: int, n_points: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    rng = np.random.default_rng(seed)
    files = {s: sorted(ROOT.glob(f"*/{s}/*.npy")) for s in ("train", "val", "test")}
    if len(files["train"]) < 2 * n:
        g = torch.Generator().manual_seed(seed)
        blobs = torch.randn(2 * n, n_points, 3, generator=g)
        blobs = blobs / blobs.norm(dim=-1, keepdim=True) * (0.3 + 0.2 * torch.rand(2 * n, 1, 3, generator=g))
        return blobs[:n], blobs[n:], "random blobs"
    train = [files["train"][i] for i in rng.permutation(len(files["train"]))]
    refs_f, rest = train[:n], files["val"] + files["test"] + train[n:]
    samp_f = [rest[i] for i in rng.permutation(len(rest))[:n]]

    def load(fs):
        out = []
        for f in fs:
            a = np.load(f)
            out.append(a[rng.choice(len(a), n_points, replace=False)])
        return torch.from_numpy(np.stack(out).astype(np.float32))

    return load(samp_f), load(refs_f), f"built-in shapes ({ROOT})"


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def baseline_all_pairs(s: torch.Tensor, r: torch.Tensor, batch: int = 32):
    """Every ordered pair of every matrix through chamfer_distance (no tree reuse, no symmetry)."""

    def full(a, b):
        ii = torch.arange(len(a)).repeat_interleave(len(b))
        jj = torch.arange(len(b)).repeat(len(a))
        vals = torch.cat(
            [
                chamfer_distance(a[ii[k : k + batch]], b[jj[k : k + batch]], reduction="none")
                for k in range(0, len(ii), batch)
            ]
        )
        return vals.view(len(a), len(b)).double()

    d_sr, d_ss, d_rr = full(s, r), full(s, s), full(r, r)
    return mmd_cov(d_sr), one_nna(d_sr, d_ss, d_rr)


def bench_cd(args) -> None:
    s, r, what = load_sets(args.n, args.n_points)
    print(f"## CD-based metrics: {args.n} generated vs {args.n} reference clouds, N={args.n_points} ({what})")
    print(
        f"torch threads={torch.get_num_threads()}  cpu_count={os.cpu_count()}  loadavg(before)="
        f"{tuple(round(x, 2) for x in os.getloadavg())}"
    )
    evaluate_generation(s[:2], r[:2])  # compile / load the numba kernel outside the timing
    mn, md, out = timed(lambda: evaluate_generation(s, r, distances=("cd", "jsd")), args.repeats)
    print(f"evaluate_generation(cd, jsd)        min {mn:7.2f} s  median {md:7.2f} s")
    print("   " + "  ".join(f"{k}={v:.5g}" for k, v in out.items()))
    mn_j, md_j, _ = timed(lambda: evaluate_generation(s, r, distances=("jsd",)), args.repeats)
    print(f"  of which JSD                      min {mn_j:7.2f} s  median {md_j:7.2f} s")
    b = args.baseline_n
    sb, rb = s[:b], r[:b]
    mn_n, md_n, _ = timed(lambda: [distance_matrix(sb, rb), distance_matrix(sb), distance_matrix(rb)], args.repeats)
    mn_k, md_k, _ = timed(
        lambda: [distance_matrix(x, y, backend="kdtree") for x, y in ((sb, rb), (sb, None), (rb, None))],
        args.repeats,
    )
    mn_b, md_b, _ = timed(lambda: baseline_all_pairs(sb, rb), args.repeats)
    print(f"subset {b} vs {b}: pc3d matrices    min {mn_n:7.2f} s  median {md_n:7.2f} s  (backend=auto)")
    print(
        f"subset {b} vs {b}: kdtree backend   min {mn_k:7.2f} s  median {md_k:7.2f} s  "
        f"(ratio kdtree / auto: {mn_k / mn_n:.2f}x)"
    )
    print(
        f"subset {b} vs {b}: baseline         min {mn_b:7.2f} s  median {md_b:7.2f} s  "
        f"(all ordered pairs via chamfer_distance, batches of 32)"
    )
    print(f"ratio baseline / pc3d (min): {mn_b / mn_n:.2f}x")
    print(f"loadavg(after)={tuple(round(x, 2) for x in os.getloadavg())}")


def bench_emd(args) -> None:
    n_pts = args.emd_n_points
    print(f"\n## EMD-based metrics: {args.n} vs {args.n}, N={n_pts}, approximate EMD")
    try:
        from pc3d.ops.emd import emd  # noqa: F401
    except ImportError:
        print("pc3d.ops.emd is not available in this tree: EMD metrics not timed")
        return
    s, r, what = load_sets(args.n, n_pts)
    mn, md, out = timed(lambda: evaluate_generation(s, r, distances=("emd",), emd_method="approx"), 1)
    print(f"evaluate_generation(emd, approx)    {mn:7.2f} s ({what})")
    print("   " + "  ".join(f"{k}={v:.5g}" for k, v in out.items()))


def fpd_table(args) -> None:
    """FPD(test of category c vs train of category c') for the built-in categories."""
    from pc3d.data import PC15kDataset
    from pc3d.metrics.fpd import compute_features, feature_statistics, frechet_distance
    from pc3d.models.io import load_classifier

    net = load_classifier(args.fpd_classifier)
    feats: dict[tuple[str, str], torch.Tensor] = {}
    names = []
    for split in ("train", "test"):
        ds = PC15kDataset(ROOT, categories="all", split=split, n_points=args.n_points, sampling="fixed")
        pts = torch.stack([ds[i]["points"] for i in range(len(ds))])
        labels = torch.tensor([int(ds[i]["category"]) for i in range(len(ds))])
        f = compute_features(net, pts)
        names = list(ds.names) if hasattr(ds, "names") else [str(c) for c in sorted(set(labels.tolist()))]
        for c in sorted(set(labels.tolist())):
            feats[(split, names[c])] = f[labels == c]
        feats[(split, "all")] = f
    stats = {k: feature_statistics(v) for k, v in feats.items()}
    cats = [n for n in names]
    print(f"\n## FPD with {args.fpd_classifier}: rows = test split of a category, columns = train split")
    print("test\\train " + " ".join(f"{c[:9]:>10}" for c in cats))
    same, across = [], []
    for a in cats:
        row = []
        for b in cats:
            sa, sb = stats[("test", a)], stats[("train", b)]
            v = frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
            (same if a == b else across).append(v)
            row.append(v)
        print(f"{a[:10]:>10} " + " ".join(f"{v:10.2f}" for v in row))
    sa, sb = stats[("test", "all")], stats[("train", "all")]
    print(f"FPD(test all vs train all) = {frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma):.3f}")
    print(
        f"same category: mean {np.mean(same):.2f} (max {np.max(same):.2f}); "
        f"across categories: mean {np.mean(across):.2f} (min {np.min(across):.2f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--n-points", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--baseline-n", type=int, default=20)
    p.add_argument("--emd", action="store_true")
    p.add_argument("--emd-n-points", type=int, default=1024)
    p.add_argument("--fpd-classifier", default=None)
    p.add_argument("--skip-cd", action="store_true")
    args = p.parse_args()
    if not args.skip_cd:
        bench_cd(args)
    if args.emd:
        bench_emd(args)
    if args.fpd_classifier:
        fpd_table(args)


if __name__ == "__main__":
    main()
