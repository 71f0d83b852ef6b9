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

SLURM (``hydra/launcher=submitit_slurm``, or ``srun pc3d-train ...``): Lightning's SLURM environment
takes the ranks from srun; only rank 0 writes ``train.log``. Preemption and time limits are owned by
one mechanism, SLURM's requeue plus the SIGTERM path above (Lightning's own auto-requeue is turned
off: it writes an ``hpc_ckpt`` from inside the signal handler, mid-step; submitit's ``checkpoint()``
resubmits the job and exits mid-step without saving): during a fit the warning signal before the
time limit (``USR2``, submitit's ``--signal``, or ``USR1``) makes rank 0 run ``scontrol requeue``;
SLURM then sends SIGTERM to every task, ``last.ckpt`` is saved at the next batch boundary, and the
requeued job (``SLURM_RESTART_COUNT`` > 0, same run dir) resumes from it when no ``ckpt_path`` is
given. A preemption or an ``scontrol requeue`` from outside takes the same path.
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

from pc3d.cli._common import (
    CONFIG_DIR,
    hydra_entry,
    instantiate_group,
    log_to_files,
    plain_config,
    scalar_metrics,
    tidy_console_logging,
)

log = logging.getLogger("pc3d.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model, datamodule and trainer that ``cfg`` describes.

    Returns a dict with ``metrics`` (floats: the final ``train/…``, ``val/…`` and ``test/…``
    values), ``objective`` (the final value of ``cfg.optimized_metric``, null: of ``cfg.monitor``;
    see :func:`objective_value`), ``output_dir``, ``best_ckpt``, ``last_ckpt`` and the live
    ``model``, ``datamodule`` and ``trainer`` objects.

    Resuming into the run folder of the checkpoint (``ckpt_path=<run>/checkpoints/last.ckpt`` with
    ``out=<run>`` or ``hydra.run.dir=<run>``) continues that run's history: ``csv/metrics.csv`` keeps
    its rows up to the checkpoint's step and the new ones are appended; a W&B logger resumes the
    run id found in ``<run>/wandb`` (see :func:`prepare_resume`). An exception is logged with its
    traceback (to ``train.log`` under Hydra) before it propagates.
    """
    try:
        return _train(cfg)
    except Exception:
        log.exception("pc3d-train failed (run dir: %s); the traceback follows",
                      cfg.get("paths", {}).get("output_dir") if isinstance(cfg, DictConfig) else None)
        raise


def _train(cfg: DictConfig) -> dict[str, Any]:
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from pc3d.callbacks import ConfigInCheckpoint
    from pc3d.callbacks.checkpoint_io import SIGTERM_EXIT_CODE, checkpoint_plugins, remove_stale_checkpoint_temps
    from pc3d.callbacks.last_checkpoint import SaveLastCheckpoint
    from pc3d.cli.config_types import check_config_types

    tidy_console_logging()  # one console line per record, no third-party tips
    check_config_types(cfg)  # e.g. trainer.max_epochs=abc: an error naming the key, before any work
    rank = slurm_rank()
    if rank is not None and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and not cfg.get("out") \
            and _hydra_single_run():  # `srun pc3d-train ...`: each task would time-stamp its own run dir
        raise ValueError(f"pc3d-train in {os.environ['SLURM_NTASKS']} SLURM tasks needs out=<run dir> (one run dir "
                         "for every rank, and the one a requeued job resumes in), or run it as "
                         "pc3d-train -m hydra/launcher=submitit_slurm ...")
    if rank:  # a SLURM task other than rank 0: train.log is rank 0's (its console goes to its own task log)
        for h in list(logging.getLogger().handlers):
            if isinstance(h, logging.FileHandler):
                logging.getLogger().removeHandler(h)
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    torch.set_float32_matmul_precision("high")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    best_cb, last_cb = callbacks.get("model_checkpoint"), callbacks.get("last_checkpoint")
    # last.ckpt at every fit end, SIGTERM and Ctrl-C, whatever the validation schedule
    on_sigterm = SaveLastCheckpoint(
        last_cb if isinstance(last_cb, ModelCheckpoint) else None,
        output_dir / "checkpoints",
        best_cb if isinstance(best_cb, ModelCheckpoint) else None,
    )
    if rank is not None and not cfg.get("ckpt_path"):  # a requeued SLURM job continues its run
        requeued = slurm_requeue_checkpoint(Path(getattr(last_cb, "dirpath", None) or output_dir / "checkpoints"))
        if requeued:
            from omegaconf import open_dict

            with open_dict(cfg):
                cfg.ckpt_path = requeued
            log.info("requeued SLURM job (restart %s): resuming from %s", os.environ.get("SLURM_RESTART_COUNT"),
                     requeued)
    callbacks = [*callbacks.values(), ConfigInCheckpoint(plain_config(cfg)), on_sigterm]
    resume = prepare_resume(cfg, output_dir)
    loggers = list(instantiate_group(cfg.get("logger")).values())
    resume.restore_csv(loggers)
    # every checkpoint is written atomically in its own folder (AtomicCheckpointIO), wherever the run folder is
    plugins = checkpoint_plugins(instantiate(cfg.trainer.plugins) if cfg.trainer.get("plugins") else None)
    if rank is not None and not any(isinstance(p, ClusterEnvironment) for p in plugins):
        plugins.append(SLURMEnvironment(auto_requeue=False))  # requeues: _SlurmRequeue + SIGTERM (docstring)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    for lg in loggers:
        lg.log_hyperparams(plain_config(cfg))

    requeue = _SlurmRequeue(rank) if rank is not None else None
    try:
        if requeue is not None:
            requeue.install()
        ckpt_path = cfg.get("ckpt_path")
        if ckpt_path and str(ckpt_path).startswith("pretrained:"):
            raise ValueError(f"ckpt_path={ckpt_path}: shipped weights cannot resume a fit (they hold no optimizer "
                             f"state); to start from them use the model's warm-start keys, e.g. "
                             f"model.ae_ckpt_path={ckpt_path}, or score / sample them with pc3d-eval / pc3d-generate")
        if ckpt_path and not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        if ckpt_path:
            check_resumable(ckpt_path)
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
            last = last or on_sigterm.saved_path or ""
            if cfg.get("test") and not trainer.interrupted:
                trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
                metrics.update(scalar_metrics(trainer.callback_metrics))
        except SIGTERMException:
            log.warning("stopped by SIGTERM%s; exiting with status %d",
                        f" (resume: ckpt_path={on_sigterm.saved_path})" if on_sigterm.saved_path else "",
                        SIGTERM_EXIT_CODE)
            raise SystemExit(SIGTERM_EXIT_CODE) from None
    finally:
        if requeue is not None:
            requeue.uninstall()
        for lg in loggers:
            if isinstance(lg, WandbLogger):  # one W&B run per job, also under -m sweeps
                import wandb

                wandb.finish()
    result = {"metrics": metrics, "output_dir": str(output_dir), "best_ckpt": best or None,
              "last_ckpt": last or None, "model": model, "datamodule": datamodule, "trainer": trainer}
    result["objective"] = objective_value(cfg, metrics)
    if trainer.is_global_zero:
        write_final_metrics(output_dir, metrics, merge=bool(cfg.get("ckpt_path")))
        print_summary(result)
    return result


def check_resumable(ckpt_path: str) -> None:
    """Refuse, with what to do instead, a checkpoint that cannot resume a fit: a weights-only file
    (the run's best checkpoint, ``callbacks.model_checkpoint.save_weights_only``)."""
    import torch

    try:  # mmap: only the keys are read
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint: Lightning says what is wrong
        return
    if isinstance(ckpt, dict) and "state_dict" in ckpt and "optimizer_states" not in ckpt:
        raise ValueError(
            f"ckpt_path={ckpt_path}: a weights-only checkpoint (the model's weights, no optimizer / loop state: "
            f"a run's best checkpoint), which cannot resume a fit. Resume from the run's checkpoints/last.ckpt; "
            f"score or sample this one with pc3d-eval / pc3d-generate ckpt_path=<this>")


def write_final_metrics(output_dir: str | os.PathLike, metrics: dict[str, float], merge: bool = False) -> Path:
    """``<run>/final_metrics.json``: the run's final metrics (``{name: value}``, the table printed at the end),
    written atomically; ``pc3d-plot`` and multirun summaries read it. ``merge``: a run resumed into its own
    folder updates the earlier file (a finished run resumed only to test keeps its val/train values)."""
    import json

    from pc3d.io import atomic_write_json

    path = Path(output_dir) / "final_metrics.json"
    out: dict[str, float] = {}
    if merge and path.is_file():
        try:
            out = {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, TypeError, AttributeError):
            out = {}
    out.update({k: float(v) for k, v in metrics.items()})
    return atomic_write_json(path, out)


def _size(path: str | None) -> str:
    """`` (123.4 MB)`` for an existing file, else ``""``."""
    try:
        return f" ({os.path.getsize(path) / 1e6:.1f} MB)" if path else ""
    except OSError:
        return ""


class _Resume:
    """What :func:`prepare_resume` found: the earlier CSV rows to keep (per ``metrics.csv`` path)."""

    def __init__(self, step: int | None, csv_rows: dict[str, tuple[list[str], list[dict[str, str]]]]) -> None:
        self.step = step
        self.csv_rows = csv_rows

    def restore_csv(self, loggers: list[Any]) -> None:
        """Put the kept rows back into each CSV logger's ``metrics.csv`` (Lightning's writer deletes the
        file when it starts); the resumed run's rows are appended after them."""
        import csv

        from lightning.pytorch.loggers import CSVLogger
        from lightning.pytorch.utilities import rank_zero_only

        if getattr(rank_zero_only, "rank", 0) != 0:  # rank 0 writes the logs (a DDP rank's logger is a dummy)
            return
        for lg in loggers:
            if not isinstance(lg, CSVLogger):
                continue
            path = str(Path(lg.log_dir) / "metrics.csv")
            kept = self.csv_rows.get(path)
            if kept is None:
                continue
            header, rows = kept
            writer = lg.experiment  # created now: removes the old file
            writer.metrics_keys = list(header)
            with open(writer.metrics_file_path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=header)
                w.writeheader()
                w.writerows(rows)
            log.info("resumed: kept %d rows of %s (up to step %s)", len(rows), path, self.step)


def _checkpoint_step(ckpt_path: str) -> int | None:
    """The logging step of a Lightning checkpoint (batches that stepped; the global step when absent)."""
    import torch

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except (KeyError, TypeError, ValueError):
        step = ckpt.get("global_step")
        return int(step) if step is not None else None


def wandb_run_id(save_dir: str | os.PathLike) -> str | None:
    """The id of the newest W&B run under ``<save_dir>/wandb`` (``[offline-]run-<time>-<id>`` folders)."""
    root = Path(save_dir) / "wandb"
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(("run-", "offline-run-"))]
    if not runs:
        return None
    newest = max(runs, key=lambda p: p.name.removeprefix("offline-"))
    return newest.name.rsplit("-", 1)[-1] or None


def prepare_resume(cfg: DictConfig, output_dir: Path) -> _Resume:
    """When ``cfg.ckpt_path`` resumes into a run folder with an earlier history, keep that history.

    * CSV loggers writing into ``output_dir``: the rows of their ``metrics.csv`` up to the checkpoint's
      step are read here and written back by :meth:`_Resume.restore_csv` (earlier epochs stay; rows
      the earlier run logged after the checkpoint are dropped, the resumed run logs them again);
    * a W&B logger saving into ``output_dir`` whose ``wandb`` folder holds a run: ``id=<that id>`` and
      ``resume="allow"`` are set in ``cfg`` (unless the config gives an id), so the same run continues.
    """
    import csv

    from omegaconf import open_dict

    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path or not Path(ckpt_path).is_file():
        return _Resume(None, {})
    step = _checkpoint_step(str(ckpt_path))
    kept: dict[str, tuple[list[str], list[dict[str, str]]]] = {}
    for name, lg in (cfg.get("logger") or {}).items():
        if not lg:
            continue
        target = str(lg.get("_target_", ""))
        if target.endswith("CSVLogger") and step is not None:
            version = lg.get("version")
            version = "" if version is None else (f"version_{version}" if isinstance(version, int) else str(version))
            path = Path(str(lg.get("save_dir", output_dir))) / str(lg.get("name") or "") / version / "metrics.csv"
            if path.is_file():
                with open(path, newline="") as fh:
                    reader = csv.DictReader(fh)
                    header = list(reader.fieldnames or [])
                    rows = [r for r in reader if r.get("step") in (None, "") or float(r["step"]) <= step]
                if header:
                    kept[str(path)] = (header, rows)
        elif target.endswith("WandbLogger") and not lg.get("id"):
            run_id = wandb_run_id(str(lg.get("save_dir") or output_dir))
            if run_id:
                with open_dict(cfg):
                    cfg.logger[name].id = run_id
                    cfg.logger[name].resume = "allow"
                log.info("resumed: W&B run id %s", run_id)
    return _Resume(step, kept)


def slurm_rank() -> int | None:
    """This process' rank in its SLURM job (``SLURM_PROCID``), ``None`` outside a SLURM batch job (no
    ``SLURM_NTASKS``, or an interactive ``srun --pty bash`` / ``salloc`` shell: Lightning's own test)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    return int(os.environ.get("SLURM_PROCID", "0"))


def slurm_requeue_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """``<checkpoint_dir>/last.ckpt`` when this SLURM job was requeued (``SLURM_RESTART_COUNT`` > 0) and an
    earlier run of it left that file; else ``None`` (a fresh job starts from scratch)."""
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        restarts = 0
    path = Path(checkpoint_dir) / "last.ckpt"
    return str(path) if restarts > 0 and path.is_file() else None


def _hydra_single_run() -> bool:
    """True inside a Hydra job started without ``-m`` (its run dir is time-stamped per process)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN


class _SlurmRequeue:
    """During a fit in a SLURM job: the warning signals ``USR1`` / ``USR2`` (sent before the time limit,
    ``sbatch --signal``) make rank 0 requeue the job with ``scontrol requeue $SLURM_JOB_ID``; SLURM then
    sends SIGTERM to every task, which saves ``last.ckpt`` at the next batch boundary (see the module
    docstring). ``install`` / ``uninstall`` swap the handlers (main thread only) and restore the old ones
    (submitit's, outside the fit)."""

    SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.requested = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            return
        self.requested = True
        job = os.environ.get("SLURM_JOB_ID", "")
        log.warning("%s (the SLURM time limit is near, or a preemption): %s", signal.Signals(signum).name,
                    f"requeueing job {job}; the SIGTERM that follows saves last.ckpt" if self.rank == 0 else
                    "rank 0 requeues the job")
        if self.rank == 0 and job.isdigit():
            import subprocess

            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            if done.returncode != 0:
                log.warning("scontrol requeue %s failed (%d): %s", job, done.returncode, done.stderr.strip())


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
    console.print(f"run dir:         {os.path.abspath(result['output_dir'])}", soft_wrap=True)
    best = f"best checkpoint: {result['best_ckpt']}{_size(result['best_ckpt'])}"
    last = f"last checkpoint: {result['last_ckpt']}{_size(result['last_ckpt'])}"
    console.print(f"{best}  (weights: pc3d-eval / pc3d-generate ckpt_path=<this>)" if result["best_ckpt"] else best,
                  soft_wrap=True)  # paths whole on one line (copied into commands), also in logs
    console.print(f"{last}  (resume: pc3d-train ckpt_path=<this>)" if result["last_ckpt"] else
                  "last checkpoint: none (trainer.fast_dev_run, e.g. debug=fdr, writes no checkpoint)", soft_wrap=True)
    # the same summary in train.log (the console has it above)
    lines = ["pc3d: final metrics", *(f"  {k} = {v:.6g}" for k, v in result["metrics"].items()),
             f"run dir:         {os.path.abspath(result['output_dir'])}", best, last]
    log_to_files("\n".join(lines))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    # the final value of cfg.optimized_metric (null: cfg.monitor), for Hydra sweepers that optimise it
    if cfg.get("stages"):  # experiment=system: the whole system, stage after stage (pc3d.cli.system)
        from hydra.core.hydra_config import HydraConfig

        from pc3d.cli.system import run_system

        return run_system(cfg, HydraConfig.get().overrides.task)["objective"]
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
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.INFO)
    # third-party deprecation notices are for library authors, not for a training console
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # conf/hydra/launcher/submitit_*.yaml keep the plugin's names (its schema validates them)
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from pc3d.cli.system import is_system_run, system_args

    args = sys.argv[1:]
    # no experiment / model / data / debug choice and no ckpt_path: the whole system (conf/experiment/system.yaml)
    hydra_entry("pc3d-train", "train", _hydra_main, system_args(args) if is_system_run(args) else args)


if __name__ == "__main__":
    sys.exit(main())

