"""``LogMedia``: sample clouds to W&B (3D panels and PNG grids) and PNG grids into the run dir.

What is shown comes from the model, so one callback serves every system:

1. ``pl_module.media_clouds(batch, outputs)`` if the model defines it: a dict
   ``{row name: tensor}`` where each tensor is clouds (k, N, 3) or images (k, 3, H, W) in
   [0, 1] (e.g. image-to-cloud: ``{"image": ..., "prediction": ..., "ground truth": ...}``).
   Cells are captioned with the batch's model ids, except rows of generated clouds (named
   ``sample...``, e.g. the GANs' fixed-noise samples), which are ``sample #k``.
   ``batch`` and ``outputs`` are the first validation batch and what ``validation_step``
   returned for it; both are ``None`` when it is called at the end of a training epoch
   without validation. Return ``{}`` for nothing.
2. otherwise, a ``validation_step`` output dict with ``"recon"`` (B, N, 3) (the autoencoder):
   rows ``input`` (``batch["points"]``) and ``reconstruction`` (captions: model id, and the
   per-sample Chamfer distance when ``outputs["cd"]`` is (B,)).
3. otherwise, a ``pl_module.sample(n, seed=...)`` method (tree-GAN): one row ``sample``
   (same seed every time, so epochs are comparable).

Every ``every_n_epochs`` epochs (counting from 1) and at the last epoch, at the first
validation batch (or at the end of the training epoch for models that only ``sample``),
global rank 0 only, the callback

* writes a PNG grid ``<dirpath>/epoch_<EEEE>.png`` (rows = the dict's entries, columns = the
  first ``n`` items; clouds of one column share one fit, so a reconstruction is shown at the
  scale of its input), when ``png=True``;
* with a :class:`~lightning.pytorch.loggers.WandbLogger` attached, logs ``media/<row>`` as a
  list of ``wandb.Object3D`` (each cloud subsampled to ``max_points`` by one fixed index set,
  coloured (N, 6) xyz + RGB as rendered) and ``media/grid`` as a ``wandb.Image``, at
  ``trainer.global_step``. In an offline run they land under ``<run>/files/media/``.

``only_with_wandb=True`` (what ``conf/callbacks/default.yaml`` sets) makes it a no-op unless
a W&B logger is attached; ``callbacks=media`` turns it on for CSV-only runs too. A failure
while rendering or logging is reported once as a warning and training goes on
(``strict=True`` raises instead).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)
_curves_log = logging.getLogger("pc3d.viz")  # TrainingCurves: "training curves: <path>"

__all__ = ["LogMedia", "TrainingCurves", "default_media"]


def _is_images(x: Any) -> bool:
    return hasattr(x, "shape") and len(x.shape) == 4


def _is_generated(row: str) -> bool:
    """A row of generated clouds (``sample``, ``samples``, ``sample (fixed noise)`` ...): not paired
    with the batch's shapes, so it is captioned ``sample #k``, never with their model ids."""
    return str(row).lower().startswith("sample")


def default_media(pl_module: Any, batch: Mapping | None, outputs: Any, n: int, seed: int = 0
                  ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What to show for ``pl_module`` (see the module docstring): ``({row: tensor}, {row: captions})``."""
    ids = None
    if isinstance(batch, Mapping) and batch.get("model_id") is not None:
        ids = [str(s)[:10] for s in list(batch["model_id"])[:n]]
    hook = getattr(pl_module, "media_clouds", None)
    if callable(hook):
        media = dict(hook(batch, outputs) or {})
        media = {k: v[:n] for k, v in media.items() if v is not None and len(v) > 0}
        caps = {k: ids[:len(v)] for k, v in media.items() if not _is_generated(k)} if ids else {}
        caps.update({k: [f"sample #{i}" for i in range(len(v))] for k, v in media.items() if _is_generated(k)})
        return media, caps
    if isinstance(outputs, Mapping) and outputs.get("recon") is not None and isinstance(batch, Mapping) \
            and batch.get("points") is not None:
        media = {"input": batch["points"][:n], "reconstruction": outputs["recon"][:n]}
        caps: dict[str, list[str]] = {}
        k = len(media["input"])
        if ids:
            caps["input"] = ids[:k]
        cd = outputs.get("cd")
        if isinstance(cd, torch.Tensor) and cd.ndim == 1 and len(cd) >= k:
            caps["reconstruction"] = [f"CD {float(c):.2e}" for c in cd[:k]]
        return media, caps
    sample = getattr(pl_module, "sample", None)
    if callable(sample):
        with torch.no_grad():
            return {"sample": sample(n, seed=seed)}, {"sample": [f"seed {seed} #{i}" for i in range(n)]}
    return {}, {}


class LogMedia(L.Callback):
    """Log sample clouds as W&B 3D objects and PNG grids, and write the grids into the run dir.

    Args:
        every_n_epochs: log at epochs k, 2k, ... (1-based) and at the last epoch.
        n: clouds (columns) per row.
        max_points: points per ``wandb.Object3D`` (fixed random subset; all if fewer).
        image_size: pixels per grid cell.
        dirpath: folder of the PNG grids (default ``<trainer.default_root_dir>/media``).
        png: write the PNG grids. wandb: log to a WandbLogger if one is attached.
        only_with_wandb: do nothing unless a WandbLogger is attached.
        colors, n_branches: point colouring (``"height"``; ``"branch"`` with ``n_branches`` for
            tree-GAN samples), see :func:`pc3d.viz.render.point_colors`.
        seed: for ``sample`` and the Object3D subset.
        backend: renderer, see :func:`pc3d.viz.render.render_backend`.
        strict: raise on rendering/logging errors instead of warning once.
    """

    def __init__(self, every_n_epochs: int = 1, n: int = 4, max_points: int = 2048, image_size: int = 160,
                 dirpath: str | os.PathLike | None = None, png: bool = True, wandb: bool = True,
                 only_with_wandb: bool = False, colors: Any = "height", n_branches: int | None = None,
                 seed: int = 0, backend: str = "auto", strict: bool = False) -> None:
        super().__init__()
        if every_n_epochs < 1 or n < 1 or max_points < 1:
            raise ValueError("every_n_epochs, n and max_points must be >= 1")
        self.every_n_epochs = int(every_n_epochs)
        self.n = int(n)
        self.max_points = int(max_points)
        self.image_size = int(image_size)
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.png = bool(png)
        self.wandb = bool(wandb)
        self.only_with_wandb = bool(only_with_wandb)
        self.colors = colors
        self.n_branches = n_branches
        self.seed = int(seed)
        self.backend = backend
        self.strict = bool(strict)
        self._done_epoch: int | None = None
        self._warned = False
        self.written: list[Path] = []  # PNG files written (rank 0), for tests and scripts

    # ------------------------------------------------------------------ scheduling
    @staticmethod
    def _wandb_logger(trainer):
        from lightning.pytorch.loggers import WandbLogger

        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    def _due(self, trainer) -> bool:
        if not trainer.is_global_zero or trainer.sanity_checking or self._done_epoch == trainer.current_epoch:
            return False
        if self.only_with_wandb and self._wandb_logger(trainer) is None:
            return False
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch == trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last or bool(trainer.fast_dev_run)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and self._due(trainer):
            self._run(trainer, pl_module, batch, outputs)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # models without a validation loop this epoch: only what needs no batch (media_clouds / sample)
        if self._due(trainer) and (callable(getattr(pl_module, "media_clouds", None))
                                   or callable(getattr(pl_module, "sample", None))):
            was_training = pl_module.training
            pl_module.eval()
            try:
                self._run(trainer, pl_module, None, None)
            finally:
                pl_module.train(was_training)

    # ------------------------------------------------------------------ work
    def _run(self, trainer, pl_module, batch, outputs) -> None:
        try:
            with torch.no_grad():
                media, captions = default_media(pl_module, batch, outputs, self.n, self.seed)
            if media:
                self._done_epoch = trainer.current_epoch
                self.log_media(trainer, media, captions)
        except Exception as exc:
            if self.strict:
                raise
            if not self._warned:
                rank_zero_warn(f"LogMedia: could not render or log media ({exc.__class__.__name__}: {exc}); "
                               "training goes on (set strict=True to raise)")
                self._warned = True

    def log_media(self, trainer, media: Mapping[str, Any], captions: Mapping[str, list[str]] | None = None) -> None:
        """Render ``media`` ({row: clouds (k, N, 3) | images (k, 3, H, W)}) into a grid, write
        it and log it (and the clouds as 3D objects) to W&B."""
        from pc3d.viz.render import point_colors, render_grid, save_png

        captions = dict(captions or {})
        rows = {k: v.detach().float().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)).float()
                for k, v in media.items()}
        width = max(len(v) for v in rows.values())
        caps = [list(captions.get(k, [])) + [""] * (len(v) - len(captions.get(k, []))) for k, v in rows.items()]
        show_caps = any(any(c) for c in caps)
        grid = render_grid(rows, captions=caps if show_caps else None, image_size=self.image_size,
                           colors=self.colors, n_branches=self.n_branches, backend=self.backend)
        epoch = trainer.current_epoch
        if self.png:
            folder = self.dirpath or Path(trainer.default_root_dir) / "media"
            self.written.append(save_png(grid, folder / f"epoch_{epoch:04d}.png"))
        wl = self._wandb_logger(trainer) if self.wandb else None
        if wl is None:
            return
        import wandb

        logged: dict[str, Any] = {
            "media/grid": wandb.Image(grid, caption=f"epoch {epoch}: {', '.join(rows)} ({width} columns)")}
        for name, v in rows.items():
            if _is_images(v):
                continue
            objs = []
            for i, cloud in enumerate(v.numpy().astype(np.float64)):
                if len(cloud) > self.max_points:
                    idx = np.sort(np.random.default_rng(self.seed).choice(len(cloud), self.max_points, replace=False))
                else:
                    idx = np.arange(len(cloud))
                rgb = point_colors(cloud, self.colors, self.n_branches)[idx]
                data = np.concatenate([cloud[idx], np.round(rgb * 255)], axis=1)
                cap = captions.get(name, [])
                objs.append(wandb.Object3D(data, caption=cap[i] if i < len(cap) and cap[i] else f"{name} {i}"))
            logged[f"media/{name.replace(' ', '_')}"] = objs
        wl.log_metrics(logged, step=trainer.global_step)


class TrainingCurves(L.Callback):
    """Draw the run's logged curves (``metrics.csv``) into ``<dirpath>/curves.png`` at the end of every fit.

    Written at the end of ``fit`` and again at the end of ``test`` (so the test metrics are on it),
    and when a run stops on an exception or Ctrl-C with metrics logged; global rank 0 only. The
    loggers are flushed first (``logger.save()``). The picture is :func:`pc3d.viz.curves.plot_run_curves`:
    losses, one panel per other metric, the learning rate; x = global step. Drawing never fails the
    run: an error is logged as a warning. The path goes to the log once: ``training curves: <path>``.

    Args:
        dirpath: the run folder (default ``trainer.default_root_dir``); its ``csv/metrics.csv`` is
            read when no CSVLogger is attached.
        filename: the picture's name in ``dirpath``.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, filename: str = "curves.png") -> None:
        super().__init__()
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.filename = str(filename)
        self.written: Path | None = None  # the last picture written, for tests and scripts

    def _metrics_csv(self, trainer, folder: Path) -> Path | None:
        for lg in trainer.loggers:
            path = getattr(getattr(lg, "experiment", None), "metrics_file_path", None)
            if path and Path(path).is_file():
                return Path(path)
        from pc3d.viz.curves import find_metrics_csv

        return find_metrics_csv(folder)

    def write(self, trainer) -> Path | None:
        """Flush the loggers and draw the curves; the picture's path, or ``None`` (nothing logged, not rank 0,
        or an error, logged as a warning)."""
        if not trainer.is_global_zero:
            return None
        try:
            for lg in trainer.loggers:
                lg.save()
            folder = self.dirpath or Path(trainer.default_root_dir)
            csv_path = self._metrics_csv(trainer, folder)
            if csv_path is None or csv_path.stat().st_size == 0:
                _curves_log.debug("TrainingCurves: no metrics.csv in %s; no curves drawn", folder)
                return None
            from pc3d.viz.curves import plot_run_curves, read_metrics_csv

            if not read_metrics_csv(csv_path):
                return None
            path = plot_run_curves(csv_path, out=folder / self.filename)
            if self.written is None:
                _curves_log.info("training curves: %s", path)
        except Exception as exc:  # a picture is never worth a failed run
            _curves_log.warning("could not draw the training curves (%s: %s); the run goes on",
                                exc.__class__.__name__, exc)
            return None
        self.written = path
        return path

    def on_fit_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.write(trainer)
