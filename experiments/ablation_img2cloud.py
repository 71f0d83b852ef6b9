"""Ablation of the image -> cloud model on the built-in data: warm start and adversarial term.

Variants (stage 2, ``experiment=img2cloud``, the same budget each):

* ``no warm start``: Chamfer only, decoder from a random init, no autoencoder
  (``model.ae_ckpt_path=null model.latent_weight=0``);
* ``AE warm start``: Chamfer + L1 to the frozen autoencoder's latent, decoder initialized from
  the autoencoder's decoder (3D-LMNet stage 2);
* ``AE warm start + adversarial``: the same plus the WGAN-GP term with an unconditional
  PointCritic (``model.adv_weight``, ``n_critic`` 1);

then two retrieval baselines on the same test views (the training cloud whose image is nearest
by 16 x 16 pixels, or by the ``AE warm start`` model's pooled ResNet features; gallery = every
view of every training model). Prints a markdown table of test CD / EMD / F-score (means over
the test shapes; CD squared, sum of both directions; EMD exact, mean matched euclidean; F-score
at tau = 0.01) and writes ``<out>/ablation.json``.

    python experiments/ablation_img2cloud.py --ae-ckpt outputs/.../ae_pretrain/checkpoints/best-....ckpt \\
        --out outputs/img2cloud/ablation --epochs 8 [hydra overrides for every variant ...]

Without ``--ae-ckpt`` stage 1 (``--ae-experiment``, default ``ae_pretrain``) is trained first;
``--experiment img2cloud_fc`` (with an ``img2cloud_ae_fc`` checkpoint) ablates the FC decoder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> dict:
    from pc3d.callbacks import ReconstructionMetrics
    from pc3d.cli.pipeline import _compose, format_table, retrieval_rows
    from pc3d.cli.train import train
    from pc3d.io import atomic_write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ae-ckpt", default=None, help="stage 1 checkpoint (trained here when missing)")
    p.add_argument("--out", default="outputs/img2cloud/ablation")
    p.add_argument("--epochs", type=int, default=8, help="stage 2 epochs per variant")
    p.add_argument("--max-time", default="00:00:06:00", help="stage 2 wall-clock cap per variant")
    p.add_argument("--adv-weight", type=float, default=1e-3)
    p.add_argument("--variants", default="cold,warm,adv", help="comma-separated subset of cold,warm,adv")
    p.add_argument("--experiment", default="img2cloud", help="stage 2 experiment (img2cloud_fc: the FC decoder)")
    p.add_argument("--ae-experiment", default="ae_pretrain", help="stage 1 experiment when --ae-ckpt is not given")
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = p.parse_args(argv)
    out = Path(args.out).absolute()
    common = ["callbacks.progress_bar=null", *args.overrides]
    t_start = time.perf_counter()

    ae_ckpt = args.ae_ckpt
    if not ae_ckpt:
        res = train(_compose([f"experiment={args.ae_experiment}", *common, f"paths.output_dir={out / 'ae_pretrain'}"]))
        ae_ckpt = res["best_ckpt"] or res["last_ckpt"]
    budget = [f"trainer.max_epochs={args.epochs}", f"trainer.max_time={args.max_time}"]
    variants = {
        "cold": ("no warm start (CD only)",
                 ["model.ae_ckpt_path=null", "model.latent_weight=0", "model.init_decoder_from_ae=false"]),
        "warm": ("AE warm start (CD + latent L1)", [f"model.ae_ckpt_path={ae_ckpt}"]),
        "adv": (f"AE warm start + adversarial (w={args.adv_weight:g})",
                [f"model.ae_ckpt_path={ae_ckpt}", f"model.adv_weight={args.adv_weight}", "model.n_critic=1"]),
    }
    rows: dict = {}
    seconds: dict = {}
    warm_run = None
    for key in args.variants.split(","):
        name, overrides = variants[key]
        t0 = time.perf_counter()
        res = train(_compose([f"experiment={args.experiment}", *overrides, *common, *budget,
                              f"paths.output_dir={out / key}"]))
        seconds[name] = time.perf_counter() - t0
        ev = next(c for c in res["trainer"].callbacks if isinstance(c, ReconstructionMetrics))  # the test metrics
        rows[name] = ev.results
        if key == "warm":
            warm_run = res
        print(f"[ablation] {name}: {seconds[name]:.0f} s, test/cd {rows[name]['all']['cd']:.5f}", flush=True)
    if warm_run is not None:
        ev = next(c for c in warm_run["trainer"].callbacks if isinstance(c, ReconstructionMetrics))
        rows.update(retrieval_rows(warm_run["model"], warm_run["datamodule"], metrics=ev.metrics, tau=ev.tau,
                                   emd_method=ev.emd_method))
    table = format_table(rows)
    result = {"experiment": args.experiment, "ae_ckpt": ae_ckpt, "epochs": args.epochs, "max_time": args.max_time,
              "overrides": common, "seconds": seconds, "total_seconds": time.perf_counter() - t_start,
              "tables": rows, "markdown": table}
    atomic_write_json(out / "ablation.json", result)
    print(table)
    print(f"total {result['total_seconds']:.0f} s; results: {out / 'ablation.json'}")
    return result


if __name__ == "__main__":
    main()
