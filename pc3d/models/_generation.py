"""Validation references shared by the generative systems (:class:`~pc3d.models.TreeGAN`,
:class:`~pc3d.models.LatentGAN`, for their critic estimate ``val/wasserstein``) and by the
sample-metric callback :class:`pc3d.callbacks.GenerationMetrics` (MMD / COV / 1-NNA / FPD)."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["ReferenceClouds", "ReferenceEvaluation"]


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

    # the test epoch gathers its references the same way
    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step

    def on_test_epoch_end(self) -> None:
        self._evaluate_stage("test")
