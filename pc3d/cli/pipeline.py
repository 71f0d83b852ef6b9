"""``pc3d-img2cloud``: the two-stage image -> cloud pipeline in one command, plus the retrieval baseline.

Stage 1 trains the autoencoder (``experiment=ae_pretrain``), stage 2 the image model
(``experiment=img2cloud model.ae_ckpt=<stage 1's best checkpoint>``), each exactly as
``pc3d-train`` would (same configs, same ``train(cfg)``), then the test split is scored against
the retrieval baselines (:func:`pc3d.models.image2cloud.retrieval_baseline`): the training cloud
whose image is nearest by (a) downsampled pixels (16 x 16 RGB) and (b) the trained image
encoder's pooled ResNet features; the gallery holds every view of every training model.

Arguments are Hydra-style overrides: ``ae.<key>=<value>`` goes to stage 1 only,
``img.<key>=<value>`` to stage 2 only, anything else to both; ``out=<dir>`` (default
``outputs/img2cloud_pipeline/<time>``), ``retrieval=false`` and the two experiments
``ae_experiment=ae_pretrain`` / ``img_experiment=img2cloud`` (the fully connected decoder:
``ae_experiment=img2cloud_ae_fc img_experiment=img2cloud_fc``) are the pipeline's own::

    pc3d-img2cloud out=outputs/img2cloud/run ae.trainer.max_epochs=10 img.model.adv_weight=0.01

Writes ``<out>/ae_pretrain/`` and ``<out>/img2cloud/`` (the two run dirs) and
``<out>/results.json`` (per-category test metrics of the model and of the baselines).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pc3d.cli._common import CONFIG_DIR
from pc3d.io import atomic_write_json

_PREFIXES = ("++", "+", "~", "")


def split_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Sort pipeline arguments into ``{"out", "retrieval", "common", "ae", "img"}``."""
    out: dict[str, Any] = {"out": None, "retrieval": True, "ae_experiment": "ae_pretrain",
                           "img_experiment": "img2cloud", "common": [], "ae": [], "img": []}
    for arg in args:
        if "=" not in arg and not arg.startswith("~"):
            raise ValueError(f"pipeline: expected key=value overrides, got {arg!r}")
        key = arg.split("=", 1)[0]
        if key == "out":
            out["out"] = arg.split("=", 1)[1]
            continue
        if key in ("ae_experiment", "img_experiment"):
            out[key] = arg.split("=", 1)[1]
            continue
        if key == "retrieval":
            out["retrieval"] = arg.split("=", 1)[1].strip().lower() not in ("false", "0", "no", "null")
            continue
        for p in _PREFIXES:
            if arg.startswith(p + "ae."):
                out["ae"].append(p + arg[len(p) + 3:])
                break
            if arg.startswith(p + "img."):
                out["img"].append(p + arg[len(p) + 4:])
                break
        else:
            out["common"].append(arg)
    return out


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def retrieval_rows(model, datamodule, *, metrics=("cd", "emd", "fscore"), tau: float = 0.01,
                   emd_method: str = "exact") -> dict[str, dict[str, dict[str, float]]]:
    """Test-split tables of the two retrieval baselines (pixels, trained-encoder features)."""
    import torch

    from pc3d.models.image2cloud import pixel_features, retrieval_baseline

    datamodule.setup("test")
    model = model.to("cpu").eval()

    def encoder_features(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.encoder.features(images)

    rows = {}
    for name, fn in (("retrieval (16x16 pixels)", pixel_features), ("retrieval (encoder features)", encoder_features)):
        rows[name] = retrieval_baseline(datamodule.train_set, datamodule.test_dataloader(), fn, metrics=metrics,
                                        tau=tau, emd_method=emd_method, names=list(datamodule.names))
    return rows


def format_table(rows: dict[str, dict[str, dict[str, float]]], keys=("cd", "emd", "fscore")) -> str:
    """Markdown table: one line per method, the ``"all"`` row of each per-category table."""
    lines = ["| method | " + " | ".join(f"test {k}" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, table in rows.items():
        row = table.get("all", {})
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.5f}" if k in row else "-" for k in keys) + " |")
    return "\n".join(lines)


def run_pipeline(args: Sequence[str]) -> dict[str, Any]:
    """Run both stages (and the baselines) for the given overrides; see the module docstring."""
    from pc3d.cli.train import train

    parsed = split_overrides(args)
    out = Path(parsed["out"] or f"outputs/img2cloud_pipeline/{time.strftime('%Y-%m-%d_%H-%M-%S')}").absolute()
    t0 = time.perf_counter()
    cfg1 = _compose([f"experiment={parsed['ae_experiment']}", *parsed["common"], *parsed["ae"],
                     f"paths.output_dir={out / 'ae_pretrain'}"])
    res1 = train(cfg1)
    ae_ckpt = res1["best_ckpt"] or res1["last_ckpt"]
    if not ae_ckpt:
        raise RuntimeError("pipeline: stage 1 wrote no checkpoint (callbacks.model_checkpoint disabled?)")
    t1 = time.perf_counter()
    cfg2 = _compose([f"experiment={parsed['img_experiment']}", f"model.ae_ckpt={ae_ckpt}", *parsed["common"],
                     *parsed["img"],
                     f"paths.output_dir={out / 'img2cloud'}"])
    res2 = train(cfg2)
    t2 = time.perf_counter()
    model, dm = res2["model"], res2["datamodule"]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    if model.test_results is not None:
        rows[f"image2cloud ({parsed['img_experiment']}, ae warm start)"] = model.test_results
    if parsed["retrieval"]:
        rows.update(retrieval_rows(model, dm, metrics=model.eval_metrics, tau=model.tau, emd_method=model.emd_method))
    t3 = time.perf_counter()
    result = {"ae_ckpt": ae_ckpt, "img2cloud_ckpt": res2["best_ckpt"] or res2["last_ckpt"],
              "seconds": {"ae_pretrain": t1 - t0, "img2cloud": t2 - t1, "retrieval": t3 - t2, "total": t3 - t0},
              "ae_metrics": res1["metrics"], "img2cloud_metrics": res2["metrics"], "tables": rows,
              "overrides": parsed}
    atomic_write_json(out / "results.json", result)
    print(format_table(rows))
    print(f"times (s): ae_pretrain {t1 - t0:.1f}, img2cloud {t2 - t1:.1f}, retrieval {t3 - t2:.1f}, "
          f"total {t3 - t0:.1f}")
    print(f"results: {out / 'results.json'}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``pc3d-img2cloud``."""
    import logging

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.INFO)
    run_pipeline(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
