"""Validation protocol shared by the generative systems (:class:`~pc3d.models.TreeGAN`,
:class:`~pc3d.models.LatentGAN`): which reference clouds, which metrics, computed how."""

from __future__ import annotations

import warnings

import lightning as L
import torch

__all__ = ["EVAL_KEYS", "ReferenceClouds", "ReferenceEvaluation", "generation_metrics"]

#: Metrics of ``pc3d.metrics.generative.evaluate_generation`` logged under ``val/`` / ``test/``.
EVAL_KEYS = ("mmd_cd", "cov_cd", "1nna_cd")

_warned_no_metrics = False


def generation_metrics(
    samples: torch.Tensor, refs: torch.Tensor, *, batch_size: int = 100, owner: str = "TreeGAN"
) -> dict[str, float]:
    """MMD-CD, COV-CD and 1-NNA-CD of ``samples`` against ``refs`` (keys :data:`EVAL_KEYS`, no stage).

    ``pc3d.metrics.generative.evaluate_generation`` with the Chamfer distance and
    ``normalize="none"`` (both sets are taken as they are, e.g. in the data module's
    normalised units). When that module cannot be imported the metrics are skipped with one
    warning per process (naming ``owner``) and ``{}`` is returned.

    Shapes:
        samples: (M, N, 3); refs: (M', N', 3)
    """
    global _warned_no_metrics
    try:
        from pc3d.metrics.generative import evaluate_generation
    except ImportError:
        if not _warned_no_metrics:
            warnings.warn(
                f"{owner}: pc3d.metrics.generative.evaluate_generation is not available; "
                f"skipping val/{', val/'.join(EVAL_KEYS)}",
                stacklevel=2,
            )
            _warned_no_metrics = True
        return {}
    metrics = evaluate_generation(samples, refs, distances=("cd",), normalize="none", batch_size=batch_size)
    return {k: float(metrics[k]) for k in EVAL_KEYS if k in metrics}


class ReferenceClouds:
    """The reference set of an evaluation: the first ``limit`` clouds of the validation (or
    test) loader, in loader order, gathered over ranks.

    ``reset()`` at the start of the epoch, ``add(batch["points"])`` at every step, and
    ``take(module, stage, every_n_epochs)`` at the end of the epoch, which empties the buffer and
    returns the references, or ``None`` when there is nothing to evaluate: no clouds, a sanity
    check, a validation epoch off the ``every_n_epochs`` cadence, or fewer than 2 clouds.

    Shapes:
        add(points): (B, N, 3); take(...) -> (M, N, 3) with M <= limit
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._clouds: list[torch.Tensor] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def reset(self) -> None:
        self._clouds.clear()
        self._n = 0

    def add(self, points: torch.Tensor) -> None:
        if self._n < self.limit:
            pts = points[: self.limit - self._n].detach()
            self._clouds.append(pts)
            self._n += len(pts)

    def take(self, module: L.LightningModule, stage: str, every_n_epochs: int = 1) -> torch.Tensor | None:
        refs = torch.cat(self._clouds) if self._clouds else None
        self.reset()
        if refs is None or module.trainer.sanity_checking:
            return None
        if stage == "val" and module.current_epoch % every_n_epochs:
            return None
        if module.trainer.world_size > 1:  # the distributed sampler pads the shards to equal sizes
            refs = module.all_gather(refs).flatten(0, 1)[: self.limit]
        return refs if len(refs) >= 2 else None


class ReferenceEvaluation:
    """The validation / test hooks of the protocol, mixed into a LightningModule (listed before
    ``L.LightningModule``): every step adds ``batch["points"]`` to ``self._refs`` (a
    :class:`ReferenceClouds`, reset at each epoch start) and each epoch end calls
    ``self._evaluate_stage("val" | "test")``, which the system defines.

    Shapes:
        batch["points"]: (B, N, 3)
    """

    _refs: ReferenceClouds

    def _evaluate_stage(self, stage: str) -> None:
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self._refs.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._refs.add(batch["points"])

    def on_validation_epoch_end(self) -> None:
        self._evaluate_stage("val")

    def on_test_epoch_start(self) -> None:
        self._refs.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._refs.add(batch["points"])

    def on_test_epoch_end(self) -> None:
        self._evaluate_stage("test")
