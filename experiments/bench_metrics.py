"""Benchmark of the generation metrics (issue 5), plus the FPD sanity table.

    python experiments/bench_metrics.py                      # CD metrics, 100 vs 100 at N=2048
    python experiments/bench_metrics.py --skip-cd --emd      # EMD metrics (issue 18): full matrices vs pruned
    taskset -c 0 env OMP_NUM_THREADS=1 python experiments/bench_metrics.py --skip-cd --emd   # one core
    python experiments/bench_metrics.py --fpd-classifier outputs/.../last.ckpt   # FPD same vs across

Clouds are built-in shapes (``data/pc3d_synthetic``, all categories, ``n`` from the train
split as references and ``n`` from the val+test+train remainder as "generated"); random blobs
when the data is missing. Timings: min / median of ``--repeats`` runs. The baseline, measured
in the same process on a ``--baseline-n`` x ``--baseline-n`` subset, is the straightforward
way: every ordered pair (S x R, S x S, R x R) through ``chamfer_distance(..., reduction="none")``
in batches of 32 pairs; the ratio compares the per-pair cost of both on that subset. The same
subset is also timed with ``backend="kdtree"`` (scipy KD-trees, the CPU path before the
compiled brute force of ``pc3d.metrics._chamfer_pairs`` became the default).

EMD (``--emd``, issue 18): MMD / COV / 1-NNA with the auction EMD (``tol`` 1e-2) on ``n`` vs ``n``
clouds at ``--emd-n-points`` (2048). The current path (the three full matrices, every pair
through ``pc3d.ops.emd``) is timed on ``--emd-baseline-n`` x ``--emd-baseline-n`` clouds and
extrapolated per pair to ``n`` (``--emd-full`` runs it on everything); the new path
(``evaluate_generation(..., emd_pruning=True)``: exact pruned nearest-neighbour queries,
:mod:`pc3d.metrics.emd_nn`) runs on everything. Checks: on the subset the pruned metrics equal
the full matrices of the same solver bit for bit, and agree with the current path (COV / 1-NNA
equal, MMD within float32 rounding). Record ``uptime`` with each run: the machine is shared.
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


def current_emd_matrices(s: torch.Tensor, r: torch.Tensor, tol: float = 1e-2, batch: int = 64):
    """The EMD path before issue 18, reproduced: every pair of the three matrices (``i < j`` within a
    set) through ``pc3d.ops.emd(..., method="approx", reduction="none")`` in batches of 64 pairs (the
    auction per pair on the thread pool, values in float32), then MMD / COV / 1-NNA of the matrices."""
    from pc3d.ops.emd import emd

    def matrix(a, b):
        A = len(a)
        B = A if b is None else len(b)
        other = a if b is None else b
        if b is None:
            ii, jj = torch.triu_indices(A, A, offset=1)
        else:
            ii, jj = torch.arange(A).repeat_interleave(B), torch.arange(B).repeat(A)
        vals = torch.cat([emd(a[ii[k : k + batch]], other[jj[k : k + batch]], method="approx", tol=tol,
                              reduction="none").double() for k in range(0, len(ii), batch)])
        mat = torch.zeros(A, B, dtype=torch.float64)
        mat[ii, jj] = vals
        if b is None:
            mat[jj, ii] = vals
        return mat

    d_sr, d_ss, d_rr = matrix(s, r), matrix(s, None), matrix(r, None)
    mmd, cov = mmd_cov(d_sr)
    acc, acc_s, acc_r = one_nna(d_sr, d_ss, d_rr)
    return {"mmd_emd": mmd, "cov_emd": cov, "1nna_emd": acc, "1nna_emd_sample": acc_s, "1nna_emd_ref": acc_r}


def _n_pairs(n: int) -> int:
    return n * n + n * (n - 1)  # S x R + two triangles


def _fmt(res: dict) -> str:
    return "  ".join(f"{k}={v:.6g}" for k, v in res.items())


def bench_emd(args) -> None:
    """EMD metrics (issue 18): the current full-matrix path vs exact pruned nearest-neighbour queries."""
    from pc3d.metrics.emd_nn import nearest_emd
    from pc3d.metrics.generative import mmd_cov_from_nearest, one_nna_from_nearest

    n, n_pts, tol = args.n, args.emd_n_points, args.emd_tol
    s, r, what = load_sets(n, n_pts)
    print(f"\n## EMD-based metrics: {n} generated vs {n} reference clouds, N={n_pts}, auction EMD (tol={tol}), {what}")
    print(f"torch threads={torch.get_num_threads()}  cpu_count={os.cpu_count()}  "
          f"affinity={sorted(os.sched_getaffinity(0))}  loadavg(before)={tuple(round(x, 2) for x in os.getloadavg())}")
    evaluate_generation(s[:2, :64], r[:2, :64], distances=("emd",), emd_method="approx")  # compile the kernels
    rows = []
    # the current path: measured on a b x b subset (or in full with --emd-full), per pair extrapolated
    b = n if args.emd_full else args.emd_baseline_n
    sb, rb = s[:b], r[:b]
    t = time.perf_counter()
    cur = current_emd_matrices(sb, rb, tol)
    t_cur = time.perf_counter() - t
    per_pair = t_cur / _n_pairs(b)
    t_cur_full = per_pair * _n_pairs(n)
    how = "measured" if b == n else f"EXTRAPOLATED from {b} vs {b} ({_n_pairs(b)} pairs in {t_cur:.1f} s)"
    rows.append(("current: full matrices, pc3d.ops.emd batches", _n_pairs(n), t_cur_full, how))
    # the new path on the same subset: the pruned metrics must equal the full matrices of the same solver
    t = time.perf_counter()
    full_b = evaluate_generation(sb, rb, distances=("emd",), emd_method="approx", emd_tol=tol, emd_pruning=False)
    t_full_b = time.perf_counter() - t
    pruned_b = evaluate_generation(sb, rb, distances=("emd",), emd_method="approx", emd_tol=tol, emd_pruning=True)
    # the new path on everything (what evaluate_generation(..., emd_pruning=True) runs, with the counts)
    t = time.perf_counter()
    nn = nearest_emd(s, r, method="approx", tol=tol, exact_same_set=False)
    mmd, cov = mmd_cov_from_nearest(nn, n)
    acc, acc_s, acc_r = one_nna_from_nearest(nn, n)
    t_new = time.perf_counter() - t
    new = {"mmd_emd": mmd, "cov_emd": cov, "1nna_emd": acc, "1nna_emd_sample": acc_s, "1nna_emd_ref": acc_r}
    solved = f"{nn.n_emd} solved + {nn.n_abandoned} abandoned, {nn.n_bound} bounds"
    rows.append(("new: pruned nearest neighbours (emd_pruning)", solved, t_new, "measured"))
    print(f"{'path':48s} {'EMD pairs':>34s} {'time s':>9s}")
    for name, pairs, secs, note in rows:
        print(f"{name:48s} {str(pairs):>34s} {secs:9.1f}  ({note})")
    print(f"ratio current / new: {t_cur_full / t_new:.1f}x   target <= 300 s: {'MET' if t_new <= 300 else 'NOT met'} "
          f"({t_new:.1f} s)")
    print(f"new  {n}x{n}: {_fmt(new)}")
    if b == n:
        print(f"current {n}x{n}: {_fmt(cur)}")
    print(f"check on {b} vs {b}: pruned == full matrices (same solver, pc3d.ops.emd.emd_pair_values): "
          f"{'IDENTICAL' if pruned_b == full_b else 'DIFFERENT'}  (full matrices took {t_full_b:.1f} s)")
    same_sets = all(cur[k] == pruned_b[k] for k in ("cov_emd", "1nna_emd", "1nna_emd_sample", "1nna_emd_ref"))
    rel = abs(cur["mmd_emd"] - pruned_b["mmd_emd"]) / cur["mmd_emd"]
    print(f"check on {b} vs {b}: vs the current path: COV / 1-NNA {'equal' if same_sets else 'DIFFER'}, "
          f"MMD relative difference {rel:.1e} (both are auction values within tol={tol} of the exact EMD)")
    print(f"   current {b}x{b}: {_fmt(cur)}")
    print(f"   pruned  {b}x{b}: {_fmt(pruned_b)}")
    print(f"loadavg(after)={tuple(round(x, 2) for x in os.getloadavg())}")


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
    p.add_argument("--emd-n-points", type=int, default=2048)
    p.add_argument("--emd-tol", type=float, default=1e-2, help="auction tolerance of the EMD metrics")
    p.add_argument("--emd-baseline-n", type=int, default=12,
                   help="the current full-matrix EMD path is timed on this many vs this many clouds and extrapolated")
    p.add_argument("--emd-full", action="store_true", help="run the current full-matrix EMD path on all n vs n")
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
