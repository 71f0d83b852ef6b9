"""``pc3d-train``: train any pc3d model from a Hydra config.

``train(cfg)`` is a plain function (usable from notebooks and tests); ``main`` is the thin
``@hydra.main`` wrapper behind the console script and ``python -m pc3d.cli.train``::

    pc3d-train experiment=ae_synthetic trainer.max_epochs=10 [out=outputs/my_ae]

The run folder is ``out`` when given, else ``${paths.log_dir}/<task_name>/runs/<time>`` (a
``_1``, ``_2`` ... suffix when another run took that name in the same second).

Checkpoints are written atomically in their own folder (:class:`pc3d.callbacks.checkpoint_io.AtomicCheckpointIO`,
given to every Trainer built here); temp files of saves killed mid-write are removed at start.
SIGTERM: Lightning stops at the next batch boundary, ``last.ckpt`` is saved and the process exits
with status 143 (a SIGTERM before or after fitting exits with 143 at once).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from pc3d.cli._common import CONFIG_DIR, hydra_entry, instantiate_group, plain_config, scalar_metrics

log = logging.getLogger("pc3d.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model, datamodule and trainer that ``cfg`` describes.

    Returns a dict with ``metrics`` (floats: the final ``train/…``, ``val/…`` and ``test/…``
    values), ``objective`` (the final value of ``cfg.optimized_metric``, null: of ``cfg.monitor``;
    see :func:`objective_value`), ``output_dir``, ``best_ckpt``, ``last_ckpt`` and the live
    ``model``, ``datamodule`` and ``trainer`` objects.
    """
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from pc3d.callbacks import ConfigInCheckpoint
    from pc3d.callbacks.checkpoint_io import (
        SIGTERM_EXIT_CODE,
        SaveOnSigterm,
        checkpoint_plugins,
        remove_stale_checkpoint_temps,
    )
    from pc3d.cli.config_types import check_config_types

    check_config_types(cfg)  # e.g. trainer.max_epochs=abc: an error naming the key, before any work
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    torch.set_float32_matmul_precision("high")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    best_cb, last_cb = callbacks.get("model_checkpoint"), callbacks.get("last_checkpoint")
    on_sigterm = SaveOnSigterm(last_cb if isinstance(last_cb, ModelCheckpoint) else None, output_dir / "checkpoints")
    callbacks = [*callbacks.values(), ConfigInCheckpoint(plain_config(cfg)), on_sigterm]
    loggers = list(instantiate_group(cfg.get("logger")).values())
    # every checkpoint is written atomically in its own folder (AtomicCheckpointIO), wherever the run folder is
    plugins = checkpoint_plugins(instantiate(cfg.trainer.plugins) if cfg.trainer.get("plugins") else None)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    for lg in loggers:
        lg.log_hyperparams(plain_config(cfg))

    try:
        ckpt_path = cfg.get("ckpt_path")
        if ckpt_path and not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        if trainer.is_global_zero:  # temp files of saves killed mid-write (SIGKILL, OOM) in a previous run
            remove_stale_checkpoint_temps([*(getattr(cb, "dirpath", None) for cb in trainer.checkpoint_callbacks),
                                           Path(ckpt_path).parent if ckpt_path else None])
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            if trainer.received_sigterm:  # arrived too late for the loops to stop: save, then stop like them
                on_sigterm.save(trainer)
                raise SIGTERMException
            metrics = scalar_metrics(trainer.callback_metrics)
            best = best_cb.best_model_path if isinstance(best_cb, ModelCheckpoint) else ""
            last = last_cb.best_model_path if isinstance(last_cb, ModelCheckpoint) else ""
            if cfg.get("test") and not trainer.interrupted:
                trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
                metrics.update(scalar_metrics(trainer.callback_metrics))
        except SIGTERMException:
            log.warning("stopped by SIGTERM%s; exiting with status %d",
                        f" (resume: ckpt_path={on_sigterm.saved_path})" if on_sigterm.saved_path else "",
                        SIGTERM_EXIT_CODE)
            raise SystemExit(SIGTERM_EXIT_CODE) from None
    finally:
        for lg in loggers:
            if isinstance(lg, WandbLogger):  # one W&B run per job, also under -m sweeps
                import wandb

                wandb.finish()
    result = {"metrics": metrics, "output_dir": str(output_dir), "best_ckpt": best or None,
              "last_ckpt": last or None, "model": model, "datamodule": datamodule, "trainer": trainer}
    result["objective"] = objective_value(cfg, metrics)
    if trainer.is_global_zero:
        print_summary(result)
    return result


def objective_value(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The final value of the metric a Hydra sweeper optimises, from the run's ``metrics``.

    The metric is ``cfg.optimized_metric`` (the ``conf/hparams_search/*.yaml`` files set it), or
    ``cfg.monitor`` when that is null. A missing metric raises ``ValueError`` naming the logged
    ones when the value is needed: ``optimized_metric`` set, or the job launched by a sweeper
    other than Hydra's basic one (Optuna); otherwise the objective is ``None``.
    """
    explicit = cfg.get("optimized_metric")
    name = explicit or cfg.get("monitor")
    if name and name in metrics:
        return metrics[name]
    if explicit or _under_optimizing_sweeper():
        raise ValueError(
            f"optimized_metric={name!r} is not among this run's final metrics {sorted(metrics)}: "
            "set optimized_metric= (or monitor=) to a metric the model logs, and make sure the run validates "
            "(e.g. trainer.limit_val_batches > 0)")
    return None


def _under_optimizing_sweeper() -> bool:
    """True inside a Hydra multirun job whose sweeper uses return values (any but the basic one)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hc = HydraConfig.get()
    target = str(hc.sweeper.get("_target_", ""))
    return hc.mode == RunMode.MULTIRUN and not target.endswith("BasicSweeper")


def print_summary(result: dict[str, Any]) -> None:
    """Print where the run's artefacts are and its final metrics (rank 0)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    table = Table(title="pc3d: final metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        table.add_row(k, f"{v:.6g}")
    console.print(table)
    console.print(f"run dir:         {os.path.abspath(result['output_dir'])}")
    console.print(f"best checkpoint: {result['best_ckpt']}")
    console.print(f"last checkpoint: {result['last_ckpt']}  (resume: pc3d-train ckpt_path=<this>)")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    # the final value of cfg.optimized_metric (null: cfg.monitor), for Hydra sweepers that optimise it
    return train(cfg)["objective"]


def _exit_on_sigterm(signum, frame) -> None:
    """``pc3d-train``'s SIGTERM handler outside a fit: exit with status 143 (``finally`` blocks run,
    so half-written atomic files are removed). During a fit Lightning's handler is installed in
    front of this one and calls it too: it then does nothing, and the run stops (and saves) at the
    next batch boundary."""
    if signal.getsignal(signal.SIGTERM) is _exit_on_sigterm:
        from pc3d.callbacks.checkpoint_io import SIGTERM_EXIT_CODE

        raise SystemExit(SIGTERM_EXIT_CODE)


def main() -> None:
    """Console entry point ``pc3d-train``."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    hydra_entry("pc3d-train", "train", _hydra_main)


if __name__ == "__main__":
    sys.exit(main())

