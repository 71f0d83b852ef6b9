"""Self-supervised point-cloud autoencoder (the pretraining stage of pc3d)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from pc3d.models._guards import skip_flagged_batch
from pc3d.models._uniformity import check_uniformity_args
from pc3d.ops import chamfer_distance, uniformity_loss


class Autoencoder(L.LightningModule):
    """Point-cloud autoencoder trained with the Chamfer distance, no labels needed.

    ``encoder`` maps a cloud to a latent code, ``decoder`` maps the code back to a cloud; the
    loss is :func:`pc3d.ops.chamfer_distance` (squared, sum of the two directional means, batch
    mean) between input and reconstruction. Any decoder with the ``(B, latent_dim) -> (B, N, 3)``
    contract plugs in (the fully connected :class:`pc3d.nn.FCDecoder` by default; the tree-GAN
    generator later).

    Optional density-uniformity term: with ``uniformity_weight > 0`` the training loss is
    ``CD + uniformity_weight * U(recon)``, ``U`` being :func:`pc3d.ops.uniformity_loss` with
    ``k = uniformity_k`` (squared coefficient of variation of each reconstructed point's mean
    distance to its k nearest neighbours, batch mean), which pushes the decoder towards evenly
    spread points. The default 0 computes no such term (the plain Chamfer loss, bit for bit).
    Validation and test report the Chamfer distance only.

    Logged: ``train/loss`` (the training loss: CD, plus the weighted uniformity term when on,
    and then also ``train/cd`` and ``train/uniformity``, unweighted), ``val/cd``, ``test/cd``.
    CD values are in the units of the (normalised) data, squared. The validation and test steps
    return ``{"recon", "z", "cd"}``: the :class:`pc3d.callbacks.LinearProbe` callback (wired by
    ``conf/model/autoencoder.yaml``) uses the test latents ``z`` and :meth:`embed` for
    ``test/linear_probe_acc``.

    Shapes:
        batch["points"]: (B, N, 3); batch["category"]: (B,)
        forward(points) -> reconstruction (B, N_out, 3)
        encode(points) -> (B, latent_dim)
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int = 128,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        uniformity_weight: float = 0.0,
        uniformity_k: int = 8,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(latent_dim)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.uniformity_weight, self.uniformity_k = check_uniformity_args(
            "Autoencoder", uniformity_weight, uniformity_k, getattr(decoder, "n_points", None)
        )
        enc_dim = getattr(encoder, "latent_dim", self.latent_dim)
        dec_dim = getattr(decoder, "latent_dim", self.latent_dim)
        if enc_dim != self.latent_dim or dec_dim != self.latent_dim:
            raise ValueError(f"Autoencoder: latent sizes disagree: latent_dim={self.latent_dim}, "
                             f"encoder.latent_dim={enc_dim}, decoder.latent_dim={dec_dim}")
        self.save_hyperparameters(ignore=["encoder", "decoder", "optimizer", "scheduler"])

    # ------------------------------------------------------------------ networks
    def encode(self, points: torch.Tensor) -> torch.Tensor:
        return self.encoder(points)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(points))

    # ------------------------------------------------------------------ steps
    def reconstruction_loss(self, recon: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Training loss of a reconstruction ``recon`` (B, N_out, 3) of ``points`` (B, N, 3).

        ``CD(recon, points)``, plus ``uniformity_weight * uniformity_loss(recon, k=uniformity_k)``
        when ``uniformity_weight > 0`` (then the parts hold ``{"cd": CD, "uniformity": U}``,
        detached; otherwise they are empty). Returns ``(scalar loss, parts)``.
        """
        loss = chamfer_distance(recon, points)
        if self.uniformity_weight == 0:
            return loss, {}
        u = uniformity_loss(recon, k=self.uniformity_k)
        return loss + self.uniformity_weight * u, {"cd": loss.detach(), "uniformity": u.detach()}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if skip_flagged_batch(self):  # non-finite input under nan_policy=skip (pc3d.callbacks.nan_guard)
            return None
        points = batch["points"]
        loss, parts = self.reconstruction_loss(self(points), points)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True,
                 batch_size=points.shape[0])
        if parts:
            self.log_dict({f"train/{k}": v for k, v in parts.items()}, on_step=True, on_epoch=True, sync_dist=True,
                          batch_size=points.shape[0])
        return loss

    def _eval_step(self, batch: dict, stage: str) -> dict:
        points = batch["points"]
        z = self.encode(points)
        recon = self.decode(z)
        cd = chamfer_distance(recon, points, reduction="none")
        self.log(f"{stage}/cd", cd.mean(), prog_bar=stage == "val", on_epoch=True, sync_dist=True,
                 batch_size=points.shape[0])
        return {"recon": recon.detach(), "z": z.detach(), "cd": cd.detach()}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    @torch.no_grad()
    def embed(self, loader) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent codes and labels of every cloud in ``loader``: ((M, latent_dim), (M,))."""
        was_training = self.training
        self.eval()
        zs, ys = [], []
        for batch in loader:
            zs.append(self.encode(batch["points"].to(self.device)).cpu())
            ys.append(batch["category"].cpu())
        self.train(was_training)
        return torch.cat(zs), torch.cat(ys)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        factory = self.optimizer_factory or (lambda params: torch.optim.Adam(params, lr=5e-4))
        optimizer = factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
