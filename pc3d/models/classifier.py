"""Supervised point-cloud classifier (the feature network of the Frechet Point Distance)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from pc3d.models._guards import skip_flagged_batch
from pc3d.nn.pointnet_cls import feature_transform_regularizer


class PointCloudClassifier(L.LightningModule):
    """Trains a classifier (``pc3d.nn.PointNetClassifier`` by default) on the category labels.

    Loss: cross-entropy on the logits, plus ``feature_transform_weight * ||I - A A^T||_F`` when
    the network has a feature transform (PointNet's regularizer; the 3x3 input transform is not
    regularized, as in the common implementation).

    BatchNorm recalibration (``bn_recalibration_batches > 0``): before every validation during
    fitting, the BatchNorm running statistics are recomputed as exact averages over that many
    training batches (train mode, no gradients). A PointNet trained for a few epochs otherwise
    has running statistics that lag far behind its weights (val accuracy at chance while the
    batch-statistics accuracy is > 80%); this changes no weight, only the BN buffers that eval
    mode, the checkpoints and the FPD features use. Under DDP each rank uses its own shard.

    Logged: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``,
    ``test/acc`` (accuracies are fractions in [0, 1]).

    Shapes:
        batch["points"]: (B, N, 3); batch["category"]: (B,) int64 in [0, net.k)
        forward(points) -> logits (B, k); features(points) -> (B, net.feature_dim)
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        feature_transform_weight: float = 0.001,
        bn_recalibration_batches: int = 0,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.feature_transform_weight = float(feature_transform_weight)
        self.bn_recalibration_batches = int(bn_recalibration_batches)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        k = getattr(self.net, "k", None)
        n = getattr(dm, "num_classes", None) if dm is not None else None
        if k is not None and isinstance(n, int) and n > k:
            raise ValueError(f"the data has {n} categories but the classifier has k={k} outputs; set model.net.k>={n}")

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.net(points)

    @torch.no_grad()
    def recalibrate_batchnorm(self, loader, n_batches: int) -> int:
        """Reset every BatchNorm's running statistics to the exact average over ``n_batches``.

        Returns the number of batches used.
        """
        bns = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns or n_batches <= 0:
            return 0
        momenta = [b.momentum for b in bns]
        was_training = self.net.training
        for b in bns:
            b.reset_running_stats()
            b.momentum = None  # cumulative average
        self.net.train()
        used = 0
        try:
            for batch in loader:
                if used >= n_batches:
                    break
                self.net(batch["points"].to(self.device))
                used += 1
        finally:
            for b, m in zip(bns, momenta):
                b.momentum = m
            self.net.train(was_training)
        return used

    def on_validation_epoch_start(self) -> None:
        trainer = self._trainer
        if (self.bn_recalibration_batches > 0 and trainer is not None and trainer.state.fn == "fit"
                and not trainer.sanity_checking and trainer.train_dataloader is not None):
            self.recalibrate_batchnorm(trainer.train_dataloader, self.bn_recalibration_batches)

    @torch.no_grad()
    def features(self, points: torch.Tensor) -> torch.Tensor:
        return self.net.features(points)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        points, labels = batch["points"], batch["category"]
        if hasattr(self.net, "forward_all"):
            out = self.net.forward_all(points)
            logits = out["logits"]
        else:
            out, logits = {}, self.net(points)
        loss = F.cross_entropy(logits, labels)
        if stage == "train" and out.get("trans_feat") is not None and self.feature_transform_weight > 0:
            loss = loss + self.feature_transform_weight * feature_transform_regularizer(out["trans_feat"])
        acc = (logits.argmax(dim=1) == labels).float().mean()
        bs = points.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", on_step=stage == "train", on_epoch=True,
                 sync_dist=True, batch_size=bs)
        self.log(f"{stage}/acc", acc, prog_bar=stage != "train", on_epoch=True, sync_dist=True, batch_size=bs)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if skip_flagged_batch(self):  # non-finite input under nan_policy=skip (pc3d.callbacks.nan_guard)
            return None
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        factory = self.optimizer_factory or (lambda params: torch.optim.Adam(params, lr=1e-3))
        optimizer = factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
