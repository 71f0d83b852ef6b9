"""``pc3d-img2cloud``: the two-stage image -> cloud pipeline in one command, plus the retrieval baseline.

Stage 1 trains the autoencoder (``experiment=ae_pretrain``), stage 2 the image model
(``experiment=img2cloud model.ae_ckpt_path=<stage 1's best checkpoint>``), each exactly as
``pc3d-train`` would (same configs, same ``train(cfg)``), then the test split is scored against
the retrieval baselines (:func:`pc3d.models.image2cloud.retrieval_baseline`): the training cloud
whose image is nearest by (a) downsampled pixels (16 x 16 RGB) and (b) the trained image
encoder's pooled ResNet features; the gallery holds every view of every training model.

A Hydra app (``conf/pipeline.yaml``; ``run_pipeline(cfg, overrides)`` is the plain function).
Its own keys: ``out=<dir>`` (default: the run folder ``${paths.log_dir}/img2cloud_pipeline/runs/<time>``),
``retrieval=false`` and the two experiments ``ae_experiment=ae_pretrain`` /
``img_experiment=img2cloud`` (the fully connected decoder: ``ae_experiment=img2cloud_ae_fc
img_experiment=img2cloud_fc``). Every other argument is a ``pc3d-train`` override:
``ae.<key>=<value>`` goes to stage 1 only, ``img.<key>=<value>`` to stage 2 only, anything else
to both (``+ae.<key>=<value>`` adds a key to stage 1; deleting stage keys with ``~`` is not
supported: set them to null)::

    pc3d-img2cloud out=outputs/img2cloud/run ae.trainer.max_epochs=10 img.model.adv_weight=0.01

Writes ``<out>/ae_pretrain/`` and ``<out>/img2cloud/`` (the two run dirs), ``<out>/results.json``
(per-category test metrics of the model and of the baselines) and Hydra's record of the
pipeline run (``<out>/.hydra/``).

How the stage overrides pass through Hydra: the pipeline config cannot know the stage configs'
keys (they depend on the experiments), so :func:`main` hands Hydra each stage override as a
forced addition under ``ae.`` / ``img.`` / ``both.`` (``trainer.max_epochs=1`` becomes
``++both.trainer.max_epochs=1``); the job reads them back from Hydra's list of task overrides
(:func:`stage_overrides`), so group choices (``data=pc15k``) and ``+`` additions keep their meaning.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from pc3d.cli._common import CONFIG_DIR, hydra_entry
from pc3d.io import atomic_write_json

_PREFIXES = ("++", "+", "~", "")
#: the pipeline's own keys (everything else on the command line is a stage override)
OWN_KEYS = ("out", "retrieval", "ae_experiment", "img_experiment", "task_name")
STAGES = ("ae", "img", "both")


def _parse(arg: str) -> tuple[str, str, str | None]:
    """``(prefix, key, value)`` of an override: ``+ae.x=1`` -> ``("+", "ae.x", "1")``."""
    prefix = next(p for p in _PREFIXES if arg.startswith(p))
    body = arg[len(prefix):]
    key, eq, value = body.partition("=")
    return prefix, key, (value if eq else None)


def _is_own(key: str) -> bool:
    return key in OWN_KEYS or key == "hydra" or key.startswith(("hydra.", "hydra/"))


def hydra_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments as Hydra gets them: stage overrides become forced additions under
    ``ae.`` / ``img.`` / ``both.`` (see the module docstring); flags, the pipeline's own keys and
    ``paths.*`` pass unchanged."""
    out = []
    for arg in args:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            out.append(arg)  # flags (--help, -m, --cfg job) and their values
            continue
        prefix, key, _ = _parse(arg)
        if _is_own(key) or key == "paths" or key.startswith("paths."):
            out.append(arg)
            continue
        if prefix == "~":
            raise ValueError(f"pc3d-img2cloud: {arg}: deleting a stage key is not supported; set it to null")
        stage = key.split(".", 1)[0]
        body = arg[len(prefix):]
        if stage in ("ae", "img") and "." in key:
            out.append(("++" if prefix == "" else prefix) + body)
        else:
            out.append(("++" if prefix == "" else prefix) + "both." + body)
    return out


def stage_overrides(task_overrides: Sequence[str]) -> list[str]:
    """Hydra's task overrides (as :func:`hydra_args` made them) back in the command-line form of
    :func:`split_overrides`: ``++ae.x=1`` -> ``ae.x=1``, ``++both.x=1`` -> ``x=1``,
    ``+both.x=1`` -> ``+x=1``; ``paths.*`` go to both stages; the pipeline's own keys are dropped."""
    out = []
    for arg in task_overrides:
        prefix, key, _ = _parse(arg)
        if _is_own(key):
            continue
        if key == "paths" or key.startswith("paths."):
            out.append(arg)
            continue
        stage_prefix = "" if prefix == "++" else prefix
        body = arg[len(prefix):]
        if body.startswith("both."):
            body = body[len("both."):]
        out.append(stage_prefix + body)
    return out


def split_overrides(args: Sequence[str]) -> dict[str, list[str]]:
    """Sort stage overrides into ``{"common", "ae", "img"}``: ``ae.<key>=<value>`` (stage 1 only),
    ``img.<key>=<value>`` (stage 2 only), anything else (both); prefixes (``+``, ``++``) are kept."""
    out: dict[str, list[str]] = {"common": [], "ae": [], "img": []}
    for arg in args:
        if "=" not in arg and not arg.startswith("~"):
            raise ValueError(f"pipeline: expected key=value overrides, got {arg!r}")
        prefix, key, _ = _parse(arg)
        if _is_own(key):
            raise ValueError(f"pipeline: {key} is a key of the pipeline config, not a stage override")
        for stage in ("ae", "img"):
            if key.startswith(stage + "."):
                out[stage].append(prefix + arg[len(prefix) + len(stage) + 1:])
                break
        else:
            out["common"].append(arg)
    return out


def _compose(overrides: list[str]):
    """``conf/train.yaml`` with ``overrides``; also inside the running ``@hydra.main`` app (whose global
    Hydra state :func:`pc3d.cli.system.compose_train` puts back afterwards)."""
    from pc3d.cli.system import compose_train

    return compose_train(overrides)


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


def output_dir(cfg: DictConfig) -> Path:
    """The pipeline's folder: ``out``, else the Hydra run folder (``paths.output_dir``), else (no
    Hydra run: a plain call) ``<paths.log_dir>/<task_name>/runs/<time>``."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.get("out"):
        return Path(str(cfg.out)).absolute()
    if HydraConfig.initialized():
        return Path(cfg.paths.output_dir).absolute()
    return Path(cfg.paths.log_dir, cfg.task_name, "runs", time.strftime("%Y-%m-%d_%H-%M-%S")).absolute()


def run_pipeline(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run both stages (and the baselines); see the module docstring.

    ``cfg`` is ``conf/pipeline.yaml`` composed (``out``, ``retrieval``, ``ae_experiment``,
    ``img_experiment``, ``paths``); ``overrides`` are the stage overrides in their command-line
    form (``ae.<key>=<value>``, ``img.<key>=<value>``, else both stages).
    Returns (and writes to ``<out>/results.json``) the checkpoints, times, metrics and tables.
    """
    from pc3d.callbacks.evaluation import ReconstructionMetrics
    from pc3d.cli.train import train

    parsed = split_overrides(overrides)
    parsed.update(out=cfg.get("out"), retrieval=bool(cfg.retrieval), ae_experiment=str(cfg.ae_experiment),
                  img_experiment=str(cfg.img_experiment))
    out = output_dir(cfg)
    t0 = time.perf_counter()
    cfg1 = _compose([f"experiment={parsed['ae_experiment']}", *parsed["common"], *parsed["ae"],
                     f"paths.output_dir={out / 'ae_pretrain'}"])
    res1 = train(cfg1)
    ae_ckpt = res1["best_ckpt"] or res1["last_ckpt"]
    if not ae_ckpt:
        raise RuntimeError("pipeline: stage 1 wrote no checkpoint (callbacks.model_checkpoint disabled?)")
    t1 = time.perf_counter()
    ae_ckpt_override = f"model.ae_ckpt_path={ae_ckpt}"
    cfg2 = _compose([f"experiment={parsed['img_experiment']}", ae_ckpt_override, *parsed["common"],
                     *parsed["img"], f"paths.output_dir={out / 'img2cloud'}"])
    res2 = train(cfg2)
    t2 = time.perf_counter()
    model, dm = res2["model"], res2["datamodule"]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    ev = next(c for c in res2["trainer"].callbacks if isinstance(c, ReconstructionMetrics))  # the test metrics
    if ev.results is not None:
        rows[f"image2cloud ({parsed['img_experiment']}, ae warm start)"] = ev.results
    if parsed["retrieval"]:
        rows.update(retrieval_rows(model, dm, metrics=ev.metrics, tau=ev.tau, emd_method=ev.emd_method))
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pipeline")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_pipeline(cfg, stage_overrides(HydraConfig.get().overrides.task))


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``pc3d-img2cloud`` (``argv``: the arguments, default ``sys.argv[1:]``)."""
    import logging

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.INFO)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        args = hydra_args(args)
    except ValueError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None
    hydra_entry("pc3d-img2cloud", "pipeline", _hydra_main, args)


if __name__ == "__main__":
    sys.exit(main())
