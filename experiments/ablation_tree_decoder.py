"""Why does the TreeGCN decoder learn slowly as an autoencoder decoder? Ablations at a fixed budget.

Each variant is the autoencoder of ``experiment=ae_pretrain`` (PointNet encoder, latent 128, all
built-in categories, 1024 points, Adam, cosine decay to 0 over the budget) with one decoder
setting changed; the FC decoder (``latent -> 256 -> 256 -> 1024 x 3``) is the baseline, run in the
same process. Training is a plain PyTorch loop (the same losses and data as ``pc3d-train``, without
the Lightning overhead) so that short budgets compare decoders, not frameworks.

The budget is a number of epochs per variant (``--epochs``) or of wall-clock seconds
(``--seconds``; the cosine schedule is then laid over the measured epoch time of the first
epoch). Test metrics over the built-in test split: CD (squared, sum of both directions), F-score
at tau = 0.01 with its precision (share of predicted points near the truth) and recall (share of
true points covered), so clumping shows as high precision, low recall.

    python experiments/ablation_tree_decoder.py --seconds 150 --variants fc,faithful,mean,...

Prints a markdown table and the ratio of each variant's test CD to the FC decoder's; writes
``--out`` JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

#: decoder settings per variant: kwargs of pc3d.nn.TreeGenerator (or "fc"), plus optimiser knobs.
BASE_TREE = dict(features=[128, 128, 64, 64, 32, 3], degrees=[2, 2, 4, 8, 8], support=10)
NODE_MEAN = {**BASE_TREE, "init": "node", "ancestor_scale": "mean"}


def variants() -> dict[str, dict]:
    v: dict[str, dict] = {
        "fc": {"decoder": "fc", "lr": 5e-4, "batch_size": 32},
        "faithful": {"decoder": BASE_TREE, "lr": 1e-3, "batch_size": 16},
        "node": {"decoder": {**BASE_TREE, "init": "node"}, "lr": 1e-3, "batch_size": 16},
        "mean": {"decoder": {**BASE_TREE, "ancestor_scale": "mean"}, "lr": 1e-3, "batch_size": 16},
        "node_mean": {"decoder": {**BASE_TREE, "init": "node", "ancestor_scale": "mean"}, "lr": 1e-3,
                      "batch_size": 16},
        "fc_lr1e3": {"decoder": "fc", "lr": 1e-3, "batch_size": 32},
        "fc_bs16": {"decoder": "fc", "lr": 1e-3, "batch_size": 16},
        "nm_lr2e3": {"decoder": NODE_MEAN, "lr": 2e-3, "batch_size": 16},
        "nm_lr5e4": {"decoder": NODE_MEAN, "lr": 5e-4, "batch_size": 16},
        "nm_bs32": {"decoder": NODE_MEAN, "lr": 1e-3, "batch_size": 32},
        "nm_wide": {"decoder": {**NODE_MEAN, "features": [128, 128, 128, 64, 64, 3]}, "lr": 1e-3, "batch_size": 16},
        "nm_deg4": {"decoder": {**NODE_MEAN, "degrees": [4, 4, 4, 4, 4]}, "lr": 1e-3, "batch_size": 16},
        "nm_deg_last4": {"decoder": {**NODE_MEAN, "features": [128, 128, 64, 64, 32, 32, 3],
                                     "degrees": [2, 2, 4, 4, 4, 4]}, "lr": 1e-3, "batch_size": 16},
        "nm_unif1e-3": {"decoder": NODE_MEAN, "lr": 1e-3, "batch_size": 16, "uniformity": 1e-3},
        "nm_unif3e-3": {"decoder": NODE_MEAN, "lr": 1e-3, "batch_size": 16, "uniformity": 3e-3},
        "fc_unif1e-3": {"decoder": "fc", "lr": 1e-3, "batch_size": 32, "uniformity": 1e-3},
    }
    return v


def load_split(root: Path, split: str, n_points: int, seed: int = 0):
    from pc3d.data import PointCloudDataModule

    dm = PointCloudDataModule(root=root, categories="all", n_points=n_points, batch_size=16, in_memory=True,
                              seed=seed)
    dm.setup("fit" if split == "train" else "test")
    return dm


def build(variant: dict, n_points: int):
    from pc3d.nn import FCDecoder, PointNetEncoder, TreeGenerator

    enc = PointNetEncoder(in_dim=3, hidden=[64, 128, 128, 256], latent_dim=128)
    spec = variant["decoder"]
    if spec == "fc":
        dec = FCDecoder(latent_dim=128, n_points=n_points, hidden=[256, 256])
    else:
        dec = TreeGenerator(**spec)
    return torch.nn.ModuleDict({"encoder": enc, "decoder": dec})


@torch.no_grad()
def evaluate(model, loader, save: Path | None = None) -> dict[str, float]:
    """Test metrics; with ``save``, also the inputs and reconstructions of the first test shape of every
    category (``save/input.npy``, ``save/recon.npy``: (C, N, 3))."""
    import numpy as np

    from pc3d.metrics.reconstruction import reconstruction_metrics

    model.eval()
    vals: dict[str, list] = {}
    firsts: dict[int, tuple] = {}
    for batch in loader:
        pts = batch["points"]
        rec = model["decoder"](model["encoder"](pts))
        m = reconstruction_metrics(rec, pts, metrics=("cd", "fscore"), tau=0.01)
        for k, x in m.items():
            vals.setdefault(k, []).append(x)
        for i, c in enumerate(batch["category"].tolist()):
            firsts.setdefault(c, (pts[i].numpy(), rec[i].numpy()))
    model.train()
    if save is not None:
        from pc3d.io import atomic_save_npy

        keys = sorted(firsts)
        atomic_save_npy(save / "input.npy", np.stack([firsts[c][0] for c in keys]).astype(np.float32))
        atomic_save_npy(save / "recon.npy", np.stack([firsts[c][1] for c in keys]).astype(np.float32))
    return {k: float(torch.cat(x).mean()) for k, x in vals.items()}


def run_variant(name: str, variant: dict, dm_train, dm_test, *, epochs: int | None, seconds: float | None,
                n_points: int, seed: int, save: Path | None = None) -> dict:
    from pc3d.ops import chamfer_distance, uniformity_loss

    torch.manual_seed(seed)
    model = build(variant, n_points)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=variant["lr"], betas=tuple(variant.get("betas", (0.9, 0.999))))
    bs = variant["batch_size"]
    g = torch.Generator().manual_seed(seed)
    train_set = dm_train.train_set
    n = len(train_set)
    steps_per_epoch = n // bs
    total_steps = None if epochs is None else epochs * steps_per_epoch
    step, epoch, t0 = 0, 0, time.perf_counter()
    losses = []
    warmup = int(variant.get("warmup", 0))
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs].tolist()
            pts = torch.stack([train_set[j]["points"] for j in idx])
            if total_steps is None:  # time budget: cosine over the projected number of steps
                elapsed = time.perf_counter() - t0
                frac = min(1.0, elapsed / seconds)
            else:
                frac = step / total_steps
            lr = variant["lr"] * 0.5 * (1 + math.cos(math.pi * frac))
            if warmup and step < warmup:
                lr *= (step + 1) / warmup
            for group in opt.param_groups:
                group["lr"] = lr
            recon = model["decoder"](model["encoder"](pts))
            loss = chamfer_distance(recon, pts)
            if variant.get("uniformity"):
                loss = loss + variant["uniformity"] * uniformity_loss(recon, k=8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if variant.get("clip"):
                torch.nn.utils.clip_grad_norm_(params, variant["clip"])
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if total_steps is not None and step >= total_steps:
                break
            if seconds is not None and time.perf_counter() - t0 >= seconds:
                break
        epoch += 1
        out_of_time = seconds is not None and time.perf_counter() - t0 >= seconds
        if (total_steps is not None and step >= total_steps) or out_of_time:
            break
    train_s = time.perf_counter() - t0
    metrics = evaluate(model, dm_test.test_dataloader(), None if save is None else save / name)
    n_params = sum(p.numel() for p in model["decoder"].parameters())
    return {"variant": name, "steps": step, "epochs": step / steps_per_epoch, "train_s": train_s,
            "final_train_cd": sum(losses[-20:]) / max(1, len(losses[-20:])), "decoder_params": n_params, **metrics,
            "spec": {k: v for k, v in variant.items()}}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="data/pc3d_synthetic/ShapeNetCore.v2.PC15k")
    p.add_argument("--variants", default="fc,faithful")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--n-points", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--save-recon", default=None, help="folder: <variant>/{input,recon}.npy, one test shape a category")
    args = p.parse_args(argv)
    if (args.epochs is None) == (args.seconds is None):
        p.error("give exactly one of --epochs / --seconds")
    if args.threads:
        torch.set_num_threads(args.threads)
    dm_train = load_split(Path(args.root), "train", args.n_points, args.seed)
    dm_test = load_split(Path(args.root), "test", args.n_points, args.seed)
    table = variants()
    rows = []
    for name in args.variants.split(","):
        if name not in table:
            p.error(f"unknown variant {name!r}; known: {', '.join(table)}")
        row = run_variant(name, table[name], dm_train, dm_test, epochs=args.epochs, seconds=args.seconds,
                          n_points=args.n_points, seed=args.seed,
                          save=None if args.save_recon is None else Path(args.save_recon))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "spec"}), flush=True)
    fc = next((r for r in rows if r["variant"] == "fc"), None)
    print("\n| variant | epochs | train s | test CD | CD / FC | F-score | precision | recall | decoder params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['cd'] / fc['cd']:.2f}" if fc else "-"
        print(f"| {r['variant']} | {r['epochs']:.1f} | {r['train_s']:.0f} | {r['cd']:.5f} | {ratio} "
              f"| {r['fscore']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['decoder_params']:,} |")
    if args.out:
        from pc3d.io import atomic_write_json

        atomic_write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
