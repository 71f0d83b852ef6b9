"""Checkpoint files that survive kills, full disks and SIGTERM, wherever the run folder is.

Lightning's :class:`~lightning.fabric.plugins.io.TorchCheckpointIO` stages a checkpoint in the
system temp dir (an fsspec transaction) and moves it onto its final name. Across filesystems (a
run folder on another disk, a tmpfs, NFS) that move is a copy onto the final name: a SIGKILL or
a full disk during it leaves a truncated ``last.ckpt`` / ``best-*.ckpt`` (the previous good one
is already gone), and a kill before it leaks the staged file into ``/tmp``.

:class:`AtomicCheckpointIO` writes every local checkpoint in its own folder through
:func:`pc3d.io.atomic_open` (temp name ``.<stem>.<pid>.<hex>.pc3d-tmp.ckpt`` beside the target,
write, flush, fsync, ``os.replace``, fsync the folder). ``pc3d-train`` passes it to every Trainer
(:func:`checkpoint_plugins`) and removes temp files of killed saves at start
(:func:`remove_stale_checkpoint_temps`). :class:`SaveOnSigterm` writes ``last.ckpt`` when
Lightning stops a fit for a SIGTERM (``pc3d-train`` then exits with status 143).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from pc3d.io import atomic_open, fsync_dir, remove_stale_temp_files

log = logging.getLogger("pc3d.checkpoint")

#: Exit status of a run stopped by SIGTERM (128 + 15, what a shell reports for a SIGTERM'd job).
SIGTERM_EXIT_CODE = 143


def _is_local(path: _PATH) -> bool:
    """True for a plain path or a ``file://`` URL (anything else goes to fsspec, e.g. ``s3://``)."""
    s = str(path)
    return "://" not in s or s.startswith("file://")


def _local(path: _PATH) -> Path:
    s = str(path)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose local saves are atomic and durable in the target's own folder.

    ``save_checkpoint`` writes ``torch.save(checkpoint)`` through :func:`pc3d.io.atomic_open`:
    the final name holds the previous complete checkpoint until the new one is complete and
    fsynced, whatever kills the process (SIGKILL, OOM killer) or fills the disk; nothing is
    staged in the system temp dir. ``remove_checkpoint`` unlinks (a folder: removes the tree)
    and fsyncs the folder. Remote paths (``s3://`` ...) keep Lightning's behaviour. Loading is
    Lightning's.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"`Trainer.save_checkpoint(..., storage_options=...)` is not supported by "
                            f"{type(self).__name__}")
        if not _is_local(path):
            super().save_checkpoint(checkpoint, path)
            return
        with atomic_open(_local(path)) as fh:
            torch.save(checkpoint, fh)
        log.debug("saved checkpoint %s", path)

    def remove_checkpoint(self, path: _PATH) -> None:
        if not _is_local(path):
            super().remove_checkpoint(path)
            return
        p = _local(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink(missing_ok=True)
        else:
            return
        fsync_dir(p.parent)
        log.debug("removed checkpoint %s", path)


def checkpoint_plugins(plugins: Any = None) -> list[Any]:
    """``plugins`` (a Trainer ``plugins=`` value: ``None``, one plugin or a list) plus an
    :class:`AtomicCheckpointIO`, unless they already hold a :class:`CheckpointIO` (a user's own wins)."""
    if plugins is None:
        out: list[Any] = []
    elif isinstance(plugins, list | tuple):
        out = list(plugins)
    else:
        out = [plugins]
    if not any(isinstance(p, CheckpointIO) for p in out):
        out.append(AtomicCheckpointIO())
    return out


def remove_stale_checkpoint_temps(dirs: Iterable[str | os.PathLike | None]) -> list[Path]:
    """Remove the temp files of checkpoint saves killed mid-write from ``dirs`` (at the start of a run).

    Only files named by :data:`pc3d.io.TEMP_NAME` whose writer process is gone (or is this very
    process, which has not saved anything yet) are removed. Returns the removed paths.
    """
    removed: list[Path] = []
    for d in dict.fromkeys(str(Path(d)) for d in dirs if d):
        removed += remove_stale_temp_files(d, own_pid_is_stale=True)
    for p in removed:
        log.info("removed %s (a checkpoint save killed mid-write)", p)
    return removed


class SaveOnSigterm(L.Callback):
    """On SIGTERM during a fit, save the latest state as ``last.ckpt`` before Lightning stops.

    Lightning's signal connector turns SIGTERM into a flag; its loops then raise
    :class:`~lightning.pytorch.utilities.exceptions.SIGTERMException` at the next batch boundary
    and call every callback's ``on_exception``, where this one saves (atomically, through the
    Trainer's checkpoint plugin) to ``last_checkpoint``'s file (``dirpath``: the callback's folder;
    ``fallback_dir/last.ckpt`` when there is no such callback). Nothing is saved during a sanity
    check, ``fast_dev_run``, outside fitting, or when ``last.ckpt`` already holds this step.

    Args:
        last_checkpoint: the ``ModelCheckpoint`` that writes ``last.ckpt`` (or ``None``).
        fallback_dir: the folder of ``last.ckpt`` without such a callback.
    """

    def __init__(self, last_checkpoint: L.pytorch.callbacks.ModelCheckpoint | None, fallback_dir: str | os.PathLike):
        super().__init__()
        self.last_checkpoint = last_checkpoint
        self.fallback_dir = Path(fallback_dir)
        self.saved_path: str | None = None

    def last_path(self, trainer: L.Trainer) -> str:
        cb = self.last_checkpoint
        if cb is not None and cb.dirpath:
            return cb.format_checkpoint_name({"epoch": trainer.current_epoch, "step": trainer.global_step})
        return str(self.fallback_dir / "last.ckpt")

    def save(self, trainer: L.Trainer) -> str | None:
        """Save ``last.ckpt`` now (unless it already holds this step); returns its path, or ``None``."""
        from lightning.pytorch.trainer.states import TrainerFn

        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return None
        path = self.last_path(trainer)
        cb = self.last_checkpoint
        if (cb is not None and getattr(cb, "_last_global_step_saved", None) == trainer.global_step
                and getattr(cb, "best_model_path", "") == path and Path(path).is_file()):
            self.saved_path = path
            return path
        from pc3d.callbacks.nan_guard import nonfinite_tensors

        bad, total = nonfinite_tensors(trainer.lightning_module.state_dict().items())
        if bad:  # never replace a good last.ckpt with non-finite weights (the run still exits 143)
            log.warning("SIGTERM: not writing %s: %d of %d tensors are non-finite (%s); the previous file is kept",
                        path, len(bad), total, ", ".join(bad[:5]))
            return None
        trainer.save_checkpoint(path)
        self.saved_path = path
        return path

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            path = self.save(trainer)
            if path is not None and trainer.is_global_zero:
                log.warning("SIGTERM: saved %s (step %d); stopping", path, trainer.global_step)
