"""Linear probe on the built-in set's fine-grained labels: random-init vs pretrained encoder.

The 8 built-in categories are separable by any encoder (the probe scores ~100% even on random
features), so the probe cannot rank encoders there. ``--substyles`` probes the variant set
(``pc3d-data generate --substyles``, ``data.synthetic.substyles=true``: interior sub-styles, 18 fine
classes, :data:`pc3d.data.synthetic.SUBSTYLE_CLASSES`), where the parts that tell the classes apart lie
inside the shapes' outlines. The fine-grained labels
(:data:`pc3d.data.synthetic.FINE_CLASSES`: 24 sub-styles such as ``chair/pedestal``,
``car/pickup``, ``bench/panels+back``) make it harder. For each encoder this prints the probe
accuracy on the 8 categories and on the fine labels, with the protocol of the
:class:`pc3d.callbacks.LinearProbe` callback: :func:`pc3d.metrics.probe.linear_probe` (logistic
regression, L-BFGS, standardised features) fitted on the frozen latents of the train split
(``probe_dataloader("train")``: fixed sampling, no augmentation) and scored on the test split (the
test loader, fixed sampling); the val split is scored too, as a second, independent estimate.

Encoders:

* ``random init (seed s)``: the main job's PointNet encoder (``conf/model/autoencoder.yaml``:
  hidden 64-128-128-256, latent 128, BatchNorm, final ReLU) freshly initialised under
  ``torch.manual_seed(s)``, in eval mode; the baseline;
* ``pretrained AE``: the encoder of an autoencoder checkpoint (``--ae-ckpt``, e.g. the main job
  ``pc3d-train out=/tmp/probe_ae test=false`` -> ``/tmp/probe_ae/checkpoints/last.ckpt``).

    python experiments/probe_fine_labels.py --ae-ckpt /tmp/probe_ae/checkpoints/last.ckpt

Data: ``--root`` (default ``data/pc3d_synthetic``, generated with the defaults when missing), 2048
points per cloud, ``normalize=none``, seed 0: the main job's data module. Prints a markdown table
and the pretrained-minus-random difference (points) and ratio; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _embed(encoder, loader) -> tuple:
    """Latents (M, D) and the ``category`` / ``fine_label`` labels (M,) of every cloud in ``loader``."""
    import torch

    zs, cats, fines = [], [], []
    encoder.eval()
    with torch.no_grad():
        for batch in loader:
            zs.append(encoder(batch["points"]).cpu())
            cats.append(batch["category"].cpu())
            fines.append(batch["fine_label"].cpu())
    return torch.cat(zs), torch.cat(cats), torch.cat(fines)


def _probe_row(encoder, dm) -> dict[str, float]:
    from pc3d.metrics.probe import linear_probe

    t0 = time.perf_counter()
    z_tr, c_tr, f_tr = _embed(encoder, dm.probe_dataloader("train"))
    z_va, c_va, f_va = _embed(encoder, dm.val_dataloader())
    z_te, c_te, f_te = _embed(encoder, dm.test_dataloader())
    cat_te = linear_probe(z_tr, c_tr, z_te, c_te)
    fine_te = linear_probe(z_tr, f_tr, z_te, f_te)
    fine_va = linear_probe(z_tr, f_tr, z_va, f_va)
    return {
        "cat_test": cat_te.accuracy,
        "fine_test": fine_te.accuracy,
        "fine_val": fine_va.accuracy,
        "fine_train": fine_te.train_accuracy,
        "seconds": time.perf_counter() - t0,
    }


def _random_encoder(seed: int):
    import torch
    from hydra.utils import instantiate

    from pc3d.cli.pipeline import _compose

    cfg = _compose([])  # the main job's config: conf/model/autoencoder.yaml's encoder
    torch.manual_seed(seed)
    return instantiate(cfg.model.encoder)


def main(argv: list[str] | None = None) -> dict:

    from pc3d.data import PointCloudDataModule
    from pc3d.data.synthetic import ensure_generated, fine_classes
    from pc3d.models.io import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ae-ckpt", default=None, help="autoencoder checkpoint (e.g. the main job's last.ckpt)")
    p.add_argument("--root", default=str(ROOT / "data" / "pc3d_synthetic"), help="built-in data root")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the random-init encoders (the first is the baseline)")
    p.add_argument("--substyles", action="store_true",
                   help="the variant set with interior sub-styles (18 fine classes; data.synthetic.substyles=true)")
    p.add_argument("--per-category", type=int, default=100,
                   help="shapes per category of the built-in set (data.synthetic.n_per_category)")
    p.add_argument("--n-points", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    ensure_generated(args.root, progress=True, workers=1, substyles=args.substyles, n_per_category=args.per_category)
    dm = PointCloudDataModule(root=Path(args.root) / "ShapeNetCore.v2.PC15k", n_points=args.n_points,
                              batch_size=args.batch_size, in_memory=True, seed=0)
    dm.setup()
    counts = {s: len(getattr(dm, f"{s}_set")) for s in ("train", "val", "test")}
    n_fine = len({int(dm.train_set[i]["fine_label"]) for i in range(len(dm.train_set))})

    rows: dict[str, dict[str, float]] = {}
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for s in seeds:
        rows[f"random init (seed {s})"] = _probe_row(_random_encoder(s), dm)
        print(f"[probe] random init seed {s}: {rows[f'random init (seed {s})']}", flush=True)
    if args.ae_ckpt:
        ae = load_model(args.ae_ckpt)
        ref = _random_encoder(seeds[0]).state_dict()
        got = ae.encoder.state_dict()
        if {k: tuple(v.shape) for k, v in ref.items()} != {k: tuple(v.shape) for k, v in got.items()}:
            raise SystemExit(f"{args.ae_ckpt}: its encoder is not the main job's architecture")
        rows["pretrained AE"] = _probe_row(ae.encoder, dm)
        print(f"[probe] pretrained AE: {rows['pretrained AE']}", flush=True)

    print()
    classes = fine_classes(args.substyles)
    print(f"{len(classes)} fine classes ({n_fine} in the train split); shapes train/val/test = "
          f"{counts['train']}/{counts['val']}/{counts['test']}; {args.n_points} points")
    print()
    print("| encoder | 8-category test acc | fine test acc | fine val acc | fine train acc | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {100 * r['cat_test']:.1f} | {100 * r['fine_test']:.1f} | {100 * r['fine_val']:.1f} "
              f"| {100 * r['fine_train']:.1f} | {r['seconds']:.1f} |")
    base_name = f"random init (seed {seeds[0]})"
    if len(seeds) > 1:
        import statistics

        for key in ("fine_test", "fine_val"):
            vals = [100 * rows[f"random init (seed {s})"][key] for s in seeds]
            print(f"random init over seeds {seeds}: {key} mean {statistics.mean(vals):.1f}, "
                  f"min {min(vals):.1f}, max {max(vals):.1f}")
    if "pretrained AE" in rows:
        base, pre = rows[base_name], rows["pretrained AE"]
        for key in ("cat_test", "fine_test", "fine_val"):
            d = 100 * (pre[key] - base[key])
            ratio = pre[key] / base[key] if base[key] else float("inf")
            print(f"pretrained vs {base_name}, {key}: {d:+.1f} points (ratio {ratio:.2f}x)")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    result = {"rows": rows, "counts": counts, "n_fine_classes": len(classes), "total_seconds": total}
    if args.json:
        from pc3d.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
