"""Multi-view reconstruction on the built-in data: test CD / F-score against the number of views.

One image -> cloud model per fusion (``model.fusion=attention`` by default, optionally ``mean``) is
trained on the built-in set rendered with 8 views per shape, drawing a random number of views
(1..8) per training step (``model.views_per_step=[1,8]``, ``data.train_views=8``); the FC decoder
and a ResNet-10 encoder (``experiment=img2cloud_fc model.encoder.arch=resnet10``), from scratch
(Chamfer only) unless ``--ae-ckpt`` warm-starts it. Then every model scores the test split with
1, 2, 4 and 8 views per shape: the **same** views for every model and nested (the seeded views of
:class:`pc3d.data.renderings.ImageCloudDataset`: the 2 views are the first two of the 4 ...).
Metrics per shape with :func:`pc3d.metrics.reconstruction.reconstruction_metrics` (CD squared, sum
of both directional means, data units; F-score at tau = 0.01), averaged over the test shapes.

Prints a markdown table with the ratio to the 1-view score of the same model (measured in the same
process), writes ``<out>/multiview.json`` and the plot ``docs/multiview.png`` (``--plot``).

    python experiments/multiview.py --data /tmp/mv_data --n-per-category 100 --max-time 00:00:09:00 \\
        --fusions attention,mean --out /tmp/mv_runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIEW_COUNTS = (1, 2, 4, 8)


def synthetic_overrides(args) -> list[str]:
    return [f"data.synthetic.root={args.data}", f"data.synthetic.n_per_category={args.n_per_category}",
            "data.synthetic.n_views=8", f"data.synthetic.image_size={args.render_size}"]


def run_config(args, fusion: str, common: list[str]):
    from pc3d.cli.pipeline import _compose

    warm = ([f"model.ae_ckpt_path={args.ae_ckpt}"] if args.ae_ckpt else
            ["model.ae_ckpt_path=null", "model.latent_weight=0", "model.init_decoder_from_ae=false"])
    return _compose([
        "experiment=img2cloud_fc", *synthetic_overrides(args), "data.train_views=8", "data.eval_views=8",
        f"data.batch_size={args.batch_size}", f"model.fusion={fusion}",
        f"model.views_per_step=[1,{max(VIEW_COUNTS)}]",
        f"model.encoder.arch={args.arch}", *warm, f"trainer.max_time={args.max_time}",
        f"trainer.max_epochs={args.epochs}", "test=false", "callbacks.progress_bar=null", *common,
        f"paths.output_dir={Path(args.out).absolute() / fusion}"])


def test_set_of(cfg):
    """The test split of the run's data module, with the largest view count per item (seeded views)."""
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("test")
    return dm.test_dataloader().dataset.variant(views=max(VIEW_COUNTS))


def score(model, test_set, batch_size: int = 32) -> dict[int, dict[str, float]]:
    """Mean test CD / F-score of ``model`` with the first k seeded views, k in VIEW_COUNTS."""
    import torch

    from pc3d.data.datamodule import collate
    from pc3d.metrics.reconstruction import reconstruction_metrics

    model = model.to("cpu").eval()
    vals: dict[int, dict[str, list]] = {k: {"cd": [], "fscore": []} for k in VIEW_COUNTS}
    with torch.no_grad():
        for start in range(0, len(test_set), batch_size):
            batch = collate([test_set[i] for i in range(start, min(start + batch_size, len(test_set)))])
            for k in VIEW_COUNTS:
                pred = model.predict_cloud_from_views(batch["image"][:, :k], batch["view_mask"][:, :k])
                m = reconstruction_metrics(pred, batch["points"], metrics=("cd", "fscore"), tau=0.01)
                vals[k]["cd"].append(m["cd"])
                vals[k]["fscore"].append(m["fscore"])
    return {k: {n: float(torch.cat(v).mean()) for n, v in d.items()} for k, d in vals.items()}


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, res in rows.items():
        ks = sorted(res)
        axes[0].plot(ks, [res[k]["cd"] * 1e3 for k in ks], "o-", label=name)
        axes[1].plot(ks, [res[k]["fscore"] for k in ks], "o-", label=name)
    for ax, lab in zip(axes, ("test CD x 1e3 (lower is better)", "test F-score @ 0.01 (higher is better)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(VIEW_COUNTS), [str(k) for k in VIEW_COUNTS])
        ax.set_xlabel("views per shape")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("pc3d multi-view reconstruction (built-in data, one model per fusion, random 1..8 views/step)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    from pc3d.data.synthetic import ensure_generated
    from pc3d.io import atomic_write_json
    from pc3d.models.io import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/tmp/mv_data", help="built-in root, generated with n_views=8 (reused)")
    p.add_argument("--n-per-category", type=int, default=100)
    p.add_argument("--render-size", type=int, default=64, help="rendered view side (the model sees 64 px)")
    p.add_argument("--out", default="/tmp/mv_runs")
    p.add_argument("--fusions", default="attention,mean", help="comma-separated: attention, mean")
    p.add_argument("--max-time", default="00:00:09:00", help="training wall-clock cap per model")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--arch", default="resnet10")
    p.add_argument("--ae-ckpt", default=None, help="autoencoder checkpoint for the warm start (default: none)")
    p.add_argument("--plot", default=str(ROOT / "docs" / "multiview.png"))
    p.add_argument("--reuse", action="store_true", help="score <out>/<fusion>/checkpoints/best-*.ckpt when there")
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    ensure_generated(args.data, n_per_category=args.n_per_category, n_views=8, image_size=args.render_size,
                     n_points=15000, seed=0)
    gen_s = time.perf_counter() - t0
    rows: dict = {}
    seconds: dict = {"generate": gen_s}
    test_set = None
    from pc3d.cli.train import train

    for fusion in args.fusions.split(","):
        cfg = run_config(args, fusion, list(args.overrides))
        found = sorted((Path(args.out) / fusion / "checkpoints").glob("best-*.ckpt")) if args.reuse else []
        t0 = time.perf_counter()
        if found:
            ckpt = str(found[-1])
            print(f"[multiview] {fusion}: reusing {ckpt}", flush=True)
        else:
            res = train(cfg)
            seconds[f"train {fusion}"] = time.perf_counter() - t0
            ckpt = res["best_ckpt"] or res["last_ckpt"]
            print(f"[multiview] {fusion}: trained {seconds[f'train {fusion}']:.0f} s ({res['trainer'].global_step} "
                  f"steps, {res['trainer'].current_epoch} epochs), ckpt {ckpt}", flush=True)
        model = load_model(ckpt)  # the checkpoint round trip (attention pooling rebuilt from build data)
        if test_set is None:
            test_set = test_set_of(cfg)
        t0 = time.perf_counter()
        rows[f"{fusion} fusion"] = score(model, test_set)
        seconds[f"score {fusion}"] = time.perf_counter() - t0
        print(f"[multiview] {fusion}: " + ", ".join(f"{k} views CD {v['cd']:.5f} F {v['fscore']:.4f}"
                                                    for k, v in rows[f"{fusion} fusion"].items()), flush=True)

    lines = ["| model | views | test CD x1e3 | CD / 1-view | test F-score@0.01 | F / 1-view |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, res in rows.items():
        base = res[1]
        for k in VIEW_COUNTS:
            lines.append(f"| {name} | {k} | {res[k]['cd'] * 1e3:.3f} | {res[k]['cd'] / base['cd']:.3f} | "
                         f"{res[k]['fscore']:.4f} | {res[k]['fscore'] / base['fscore']:.3f} |")
    table = "\n".join(lines)
    result = {"data": args.data, "n_per_category": args.n_per_category, "render_size": args.render_size,
              "n_test": len(test_set), "max_time": args.max_time, "arch": args.arch, "ae_ckpt": args.ae_ckpt,
              "seconds": seconds, "total_seconds": time.perf_counter() - t_start,
              "results": {n: {str(k): v for k, v in r.items()} for n, r in rows.items()}, "markdown": table}
    atomic_write_json(Path(args.out) / "multiview.json", result)
    if args.plot:
        plot(rows, Path(args.plot))
    print(table)
    print(f"test shapes: {len(test_set)}; seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print(f"total {result['total_seconds']:.0f} s; results: {Path(args.out) / 'multiview.json'}; plot: {args.plot}")
    return result


if __name__ == "__main__":
    main()
