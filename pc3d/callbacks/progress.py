"""Progress for logs: plain text lines every N steps when stdout is not a terminal.

The rich progress bar redraws one terminal line; written to a file (a SLURM log, ``| tee``) it
shows nothing until the end. :class:`TextProgressBar` prints instead, every ``every_n_steps``
training batches, one line like::

    [train] epoch 3/100  batch 120/400  step 920  11.8 it/s  ETA 0:48:10  train/loss=0.01234

and one line per validation with the ``val/...`` metrics. :func:`progress_bar` (the
``callbacks.progress_bar`` entry of ``conf/callbacks/default.yaml``) picks the rich bar on a
terminal and the text lines otherwise. Nothing here changes what is learned.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

__all__ = ["TextProgressBar", "progress_bar"]


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _fmt_value(v: Any) -> str | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return f"{x:.4g}"


class TextProgressBar(ProgressBar):
    """Plain progress lines for non-terminal output (rank 0 only).

    Every ``every_n_steps`` training batches (and at the last batch of an epoch): epoch, batch
    in the epoch, optimizer step (``trainer.global_step``), speed in batches per second since the
    previous line, the ETA of the whole fit (when the number of batches is known: ``max_epochs``
    or ``max_steps`` set) and the latest logged training losses (``train/*loss*`` keys, at most
    ``max_metrics``). After each validation: one line with the ``val/*`` metrics (at most
    ``max_metrics``). Lines go to ``stream`` (default: ``sys.stdout`` at print time), flushed.

    Args:
        every_n_steps: training batches between lines (>= 1).
        max_metrics: at most this many metrics per line.
        stream: a text stream (tests), or None for the current ``sys.stdout``.
    """

    def __init__(self, every_n_steps: int = 50, max_metrics: int = 4, stream=None) -> None:
        super().__init__()
        if isinstance(every_n_steps, bool) or int(every_n_steps) < 1:
            raise ValueError(f"every_n_steps must be an int >= 1, got {every_n_steps!r}")
        self.every_n_steps = int(every_n_steps)
        self.max_metrics = int(max_metrics)
        self.stream = stream
        self._enabled = True
        self._batches_done = 0  # training batches in this fit
        self._last_time: float | None = None
        self._last_batches = 0
        self._rate: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(every_n_steps={self.every_n_steps})"

    # ProgressBar interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(*args, file=self.stream or sys.stdout, flush=True, **kwargs)

    # helpers
    @property
    def _epoch_batches(self) -> float:
        """Training batches per epoch (Lightning's ``total_train_batches`` counts down under ``max_steps``)."""
        return self.trainer.num_training_batches

    def _total_fit_batches(self, trainer: L.Trainer) -> float:
        per_epoch = self._epoch_batches
        totals = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and math.isfinite(per_epoch):
            totals.append(per_epoch * trainer.max_epochs)
        if trainer.max_steps is not None and trainer.max_steps > 0:
            # global_step counts optimizer steps; with one optimizer step per batch they are batches
            totals.append(trainer.max_steps)
        return min(totals) if totals else math.inf

    def _metrics(self, trainer: L.Trainer, prefix: str, need: str = "") -> list[str]:
        out = []
        for k, v in trainer.callback_metrics.items():
            if k.startswith(prefix) and need in k:
                s = _fmt_value(v)
                if s is not None:
                    out.append(f"{k}={s}")
            if len(out) >= self.max_metrics:
                break
        return out

    # hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches_done = 0
        self._last_batches = 0
        self._last_time = time.perf_counter()
        self._rate = None
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self.print(f"[train] start: {epochs} epoch(s) of {self._count(self._epoch_batches)} batches, "
                   f"a line every {self.every_n_steps} batches")

    @staticmethod
    def _count(n: float) -> str:
        return str(int(n)) if math.isfinite(n) else "?"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self._batches_done += 1
        per_epoch = self._epoch_batches
        last_of_epoch = math.isfinite(per_epoch) and batch_idx + 1 >= per_epoch
        if (batch_idx + 1) % self.every_n_steps and not last_of_epoch:
            return
        now = time.perf_counter()
        if self._last_time is not None and self._batches_done > self._last_batches and now > self._last_time:
            self._rate = (self._batches_done - self._last_batches) / (now - self._last_time)
        self._last_time, self._last_batches = now, self._batches_done
        total = self._total_fit_batches(trainer)
        eta = (total - self._batches_done) / self._rate if self._rate and math.isfinite(total) else math.nan
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"[train] epoch {trainer.current_epoch + 1}{epochs}",
                 f"batch {batch_idx + 1}/{self._count(per_epoch)}",
                 f"step {trainer.global_step}",
                 f"{self._rate:.3g} it/s" if self._rate else "? it/s",
                 f"ETA {_fmt_seconds(eta)}"]
        parts += self._metrics(trainer, "train/", "loss")
        self.print("  ".join(parts))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = self._metrics(trainer, "val/")
        if metrics:
            self.print(f"[val] epoch {trainer.current_epoch + 1}  step {trainer.global_step}  " + "  ".join(metrics))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = self._metrics(trainer, "test/")
        if metrics:
            self.print("[test] " + "  ".join(metrics))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print(f"[train] done: {self._batches_done} batches, step {trainer.global_step}")


def progress_bar(every_n_steps: int = 50, tty: bool | None = None, **rich_kwargs: Any) -> ProgressBar:
    """The progress callback for this process: :class:`~lightning.pytorch.callbacks.RichProgressBar`
    when stdout is a terminal (``tty=None``: ``sys.stdout.isatty()``), else :class:`TextProgressBar`
    printing every ``every_n_steps`` batches. ``rich_kwargs`` go to the rich bar."""
    if tty is None:
        tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
    if tty:
        return RichProgressBar(**rich_kwargs)
    return TextProgressBar(every_n_steps=every_n_steps)
