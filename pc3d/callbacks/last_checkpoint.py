"""``last.ckpt`` at the end of every fit and on every interruption, whatever the validation schedule.

The ``last_checkpoint`` callback of ``conf/callbacks/default.yaml`` saves at validation ends (and every
``every_n_train_steps``); a fit that never validates, or whose last epochs do not validate (e.g. a
tree-GAN run with ``check_val_every_n_epoch=10`` and ``max_epochs=2``), would end without a
``last.ckpt``. :class:`SaveLastCheckpoint` (which ``pc3d-train`` gives to every Trainer in place of
:class:`~pc3d.callbacks.checkpoint_io.SaveOnSigterm`, whose saving logic it reuses) also saves in
``on_train_end`` and on ``KeyboardInterrupt`` when ``last.ckpt`` does not already hold this step, and
warns when the monitored best checkpoint cannot exist (validation never runs, or the monitored key is
never logged).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from pc3d.callbacks.checkpoint_io import SaveOnSigterm

log = logging.getLogger("pc3d.checkpoint")


class SaveLastCheckpoint(SaveOnSigterm):
    """:class:`SaveOnSigterm`, plus ``last.ckpt`` at the end of every fit and on ``KeyboardInterrupt``.

    Args:
        last_checkpoint: the ``ModelCheckpoint`` that writes ``last.ckpt`` (or ``None``); when this
            callback saves, that callback's ``best_model_path`` is set to the file, so it reports it.
        fallback_dir: the folder of ``last.ckpt`` without such a callback.
        best_checkpoint: the monitored ``ModelCheckpoint`` (or ``None``): a warning when it cannot
            write anything (validation never runs; its key never logged).
    """

    def __init__(self, last_checkpoint: ModelCheckpoint | None, fallback_dir: str | os.PathLike,
                 best_checkpoint: ModelCheckpoint | None = None) -> None:
        super().__init__(last_checkpoint, fallback_dir)
        self.best_checkpoint = best_checkpoint

    def _save_and_record(self, trainer: L.Trainer) -> str | None:
        path = self.save(trainer)
        cb = self.last_checkpoint
        if path is not None and cb is not None and Path(path).is_file():
            cb.best_model_path = path
            cb._last_global_step_saved = trainer.global_step
        return path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = self.best_checkpoint
        if best is None or not best.monitor or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        every = trainer.check_val_every_n_epoch
        no_val = not trainer.limit_val_batches
        if not no_val and every and trainer.max_epochs is not None and trainer.max_epochs >= 0:
            no_val = trainer.max_epochs < every  # the first validation would come after the last epoch
        if no_val:
            log.warning("no best checkpoint will be written: it is chosen by %r, a validation metric, and this run "
                        "never validates (max_epochs=%s, check_val_every_n_epoch=%s, limit_val_batches=%s); "
                        "last.ckpt is still saved at the end", best.monitor, trainer.max_epochs, every,
                        trainer.limit_val_batches)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cb = self.last_checkpoint
        had = cb is not None and getattr(cb, "_last_global_step_saved", None) == trainer.global_step
        path = self._save_and_record(trainer)
        if path is not None and not had and trainer.is_global_zero:
            log.info("last checkpoint: %s (step %d)", path, trainer.global_step)
        best = self.best_checkpoint
        if (best is not None and best.monitor and not best.best_model_path and trainer.is_global_zero
                and not trainer.fast_dev_run):
            logged = sorted(k for k in trainer.callback_metrics if not k.startswith("train/"))
            log.warning("no best checkpoint: the monitored key %r was never logged (validation keys logged: %s)",
                        best.monitor, ", ".join(logged) or "none")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, KeyboardInterrupt):
            path = self._save_and_record(trainer)
            if path is not None and trainer.is_global_zero:
                log.warning("interrupted: saved %s (step %d); resume with ckpt_path=%s", path, trainer.global_step,
                            path)
