"""Image to point cloud: ResNet encoder -> latent -> tree-GAN generator (3D-LMNet-style training)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from pc3d.models._guards import skip_flagged_batch
from pc3d.models._wgan import critic_steps
from pc3d.models.io import load_frozen_autoencoder
from pc3d.nn.view_pooling import AttentionViewPooling, mean_view_pooling
from pc3d.ops import chamfer_distance

log = logging.getLogger("pc3d.image2cloud")

__all__ = ["Image2Cloud", "RetrievalGallery", "load_frozen_autoencoder", "pixel_features", "retrieval_baseline",
           "retrieval_gallery"]


class Image2Cloud(L.LightningModule):
    """One image -> its point cloud: ``encoder`` (image -> latent), ``decoder`` (latent -> cloud).

    The networks come in built (Hydra ``_target_``): by default a
    :class:`pc3d.nn.ResNetImageEncoder` and a :class:`pc3d.nn.TreeGenerator` (tree-GAN, Shu et
    al. 2019); ``model/decoder=fc`` selects the fully connected decoder. With ``z = E(I)`` and
    ``P = G(z)`` the generator loss of a batch is::

        L = w_cd * CD(P, X) + w_lat * mean |z - E_ae(X)| + w_emd * EMD(P_S, X_S) + w_adv * (-mean D(P))

    * ``CD``: :func:`pc3d.ops.chamfer_distance` (squared, sum of the two directional means,
      batch mean) to the ground-truth cloud ``X``;
    * latent L1 (3D-LMNet, Mandikal et al. 2018, stage 2): ``E_ae`` is the encoder of a
      pretrained point-cloud autoencoder (``ae_ckpt_path``), **frozen**: loaded in :meth:`setup`,
      eval mode, ``requires_grad=False``, not a registered submodule (so it is not in the
      optimizer, not in ``state_dict`` and not in checkpoints; inference does not need it);
    * EMD (optional, ``emd_weight > 0``): :func:`pc3d.ops.emd` (auction, euclidean, mean matched
      distance) between seeded random subsets of ``emd_points`` points of ``P`` and of ``X``
      (fresh subsets every step; the whole cloud when ``emd_points`` is ``None`` or >= N).
      Chamfer is blind to how densely a surface is covered (clumps cost little); the matching
      makes every predicted point answer for one true point, which spreads them evenly;
    * adversarial (optional, ``adv_weight > 0``): WGAN-GP with ``critic`` (a
      :class:`pc3d.nn.PointCritic`). The critic is **unconditional**: it scores clouds only.
      The image is already tied to the output by the CD and latent terms; the critic's job is
      a realism prior on how points cover surfaces (tree-GAN's role), and a conditional critic
      would need a second image branch, doubling the CPU cost. Each batch first takes
      ``n_critic`` critic steps on ``(X, P.detach())`` minimising
      ``mean D(P) - mean D(X) + gp_lambda * GP`` (:func:`pc3d.models.treegan.gradient_penalty`),
      then one generator step on ``L`` (critic frozen).

    Without ``ae_ckpt_path`` the latent term is off (``latent_weight`` is set to 0 with a warning) and
    the model trains from scratch with Chamfer only (the "no warm start" baseline).

    Warm start: with ``ae_ckpt_path`` and ``init_decoder_from_ae=True`` the decoder is initialized
    from the autoencoder's decoder at the start of fitting (not on resume), which needs the
    same class and the same parameter shapes (e.g. both ``TreeGenerator`` with the same
    features/degrees/support); otherwise a ``ValueError`` says what differs. The autoencoder's
    latent size must equal ``latent_dim``, and it must have been trained on clouds with the
    same normalization as this model's data.

    Optimization is manual (``automatic_optimization=False``): one generator optimizer over
    encoder + decoder (Adam 1e-4 by default) and, with a critic, one critic optimizer (Adam 1e-4,
    betas (0.5, 0.9) by default). Every ``optimizer.step()`` advances ``trainer.global_step``
    (``n_critic + 1`` per batch with the adversarial term). A ``scheduler`` (partial, on the
    generator optimizer) is stepped once per epoch.

    Logged: ``train/loss``, ``train/cd``, ``train/latent_l1``, and with a critic
    ``train/adv_g``, ``train/d_loss``, ``train/gp``, ``train/wasserstein``; ``val/cd`` (CD values
    squared, in the data's normalized units). ``test_step`` returns the predictions
    (``{"recon": (B, N, 3)}``); the test metrics (``test/cd``, ``test/emd``, ``test/fscore`` and
    ``test/<metric>_<category>``) are the :class:`pc3d.callbacks.ReconstructionMetrics`
    callback's, wired by ``conf/model/image2cloud.yaml``.

    Several views of one object (issue 16): each view is encoded, the per-view latents are fused
    into one (``fusion="mean"``: the masked mean; ``fusion="attention"``: a learned
    :class:`pc3d.nn.AttentionViewPooling`, a small scoring MLP with a softmax over the valid views)
    and decoded once. Batches with ``image`` (B, V, 3, H, W) and ``view_mask`` (B, V) (the data
    module's ``train_views`` / ``eval_views``) train and evaluate this way; ``views_per_step=[lo,
    hi]`` draws a random number of views k in [lo, min(hi, V)] per training step (the same k for
    the batch, a random subset of each object's valid views), so that one model serves any view
    count. The losses are those above, on the fused latent. Single-view batches (B, 3, H, W) take
    exactly the single-view path (``decoder(encoder(images))``); ``fusion="mean"`` adds no
    parameters, so checkpoints of single-view models load unchanged.

    Shapes:
        batch["image"]: (B, 3, H, W) or (B, V, 3, H, W) in [0, 1]; batch["view_mask"]: (B, V) bool
        (optional); batch["points"]: (B, N, 3); batch["category"]: (B,)
        encode(images) -> (B, latent_dim); forward(images) -> (B, N_out, 3)
        encode_views(images (B, V, 3, H, W)) -> (B, V, latent_dim); fuse(z, mask) -> (B, latent_dim)
        predict_cloud_from_views(images (V, 3, H, W)) -> (N_out, 3); (B, V, 3, H, W) -> (B, N_out, 3)
    """

    #: fusion modes of several views' latents
    FUSIONS = ("mean", "attention")

    #: what pc3d-eval feeds the model: the batch's images, not its points
    input_key = "image"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int = 128,
        ae_ckpt_path: str | None = None,
        init_decoder_from_ae: bool = True,
        cd_weight: float = 1.0,
        latent_weight: float = 1.0,
        adv_weight: float = 0.0,
        critic: nn.Module | None = None,
        n_critic: int = 1,
        gp_lambda: float = 10.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        optimizer_d: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        emd_weight: float = 0.0,
        emd_points: int | None = 256,
        fusion: str = "mean",
        fusion_hidden: int = 64,
        views_per_step: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.latent_dim = int(latent_dim)
        enc_dim = getattr(encoder, "latent_dim", self.latent_dim)
        dec_dim = getattr(decoder, "latent_dim", self.latent_dim)
        if enc_dim != self.latent_dim or dec_dim != self.latent_dim:
            raise ValueError(f"Image2Cloud: latent sizes disagree: latent_dim={self.latent_dim}, "
                             f"encoder.latent_dim={enc_dim}, decoder.latent_dim={dec_dim}")
        for name, w in (("cd_weight", cd_weight), ("latent_weight", latent_weight), ("adv_weight", adv_weight),
                        ("gp_lambda", gp_lambda), ("emd_weight", emd_weight)):
            if not float(w) >= 0:
                raise ValueError(f"Image2Cloud: {name} must be >= 0, got {w!r}")
        if float(latent_weight) > 0 and not ae_ckpt_path:
            warnings.warn("Image2Cloud: no ae_ckpt_path given, so no latent loss and no decoder warm start (Chamfer "
                          "only, from scratch); pass model.ae_ckpt_path=<autoencoder checkpoint> for the 3D-LMNet "
                          "stage 2, or set model.latent_weight=0 to silence this", stacklevel=2)
            latent_weight = 0.0
        if float(adv_weight) > 0 and critic is None:
            raise ValueError("Image2Cloud: adv_weight > 0 needs a critic (model.critic)")
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(f"Image2Cloud: n_critic must be an int >= 1, got {n_critic!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.critic = critic if float(adv_weight) > 0 else None
        self.ae_ckpt_path = None if not ae_ckpt_path else str(ae_ckpt_path)
        self.init_decoder_from_ae = bool(init_decoder_from_ae)
        self.cd_weight = float(cd_weight)
        self.latent_weight = float(latent_weight)
        self.adv_weight = float(adv_weight)
        self.n_critic = int(n_critic)
        self.gp_lambda = float(gp_lambda)
        if emd_points is not None and (isinstance(emd_points, bool) or int(emd_points) < 1):
            raise ValueError(f"Image2Cloud: emd_points must be a positive int or None, got {emd_points!r}")
        self.emd_weight = float(emd_weight)
        self.emd_points = None if emd_points is None else int(emd_points)
        if fusion not in self.FUSIONS:
            raise ValueError(f"Image2Cloud: fusion must be one of {self.FUSIONS}, got {fusion!r}")
        if isinstance(fusion_hidden, bool) or int(fusion_hidden) < 1:
            raise ValueError(f"Image2Cloud: fusion_hidden must be a positive int, got {fusion_hidden!r}")
        if views_per_step is not None:
            vps = [int(v) for v in views_per_step]
            if len(vps) != 2 or not 1 <= vps[0] <= vps[1]:
                raise ValueError(f"Image2Cloud: views_per_step must be [lo, hi] with 1 <= lo <= hi, got "
                                 f"{views_per_step!r}")
            views_per_step = vps
        self.fusion = fusion
        self.fusion_hidden = int(fusion_hidden)
        self.views_per_step = views_per_step
        # only the attention pooling has parameters: fusion="mean" keeps the single-view state_dict
        self.view_pooling = (AttentionViewPooling(self.latent_dim, self.fusion_hidden) if fusion == "attention"
                             else None)
        self.optimizer_factory = optimizer
        self.optimizer_d_factory = optimizer_d
        self.scheduler_factory = scheduler
        # plain types only in hparams (a Hydra ListConfig would break torch.load(weights_only=True))
        ae_ckpt_path = None if not ae_ckpt_path else str(ae_ckpt_path)
        self.save_hyperparameters(ignore=["encoder", "decoder", "critic", "optimizer", "optimizer_d", "scheduler"])
        self._ae: list[nn.Module] = []  # the frozen autoencoder, kept out of the module tree

    def emd_loss(self, pred: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """EMD term: auction EMD between random ``emd_points``-subsets of both clouds (batch mean).

        Shapes:
            pred: (B, N, 3), points: (B, M, 3) -> scalar
        """
        from pc3d.ops.emd import emd

        n = min(pred.shape[1], points.shape[1])
        k = n if self.emd_points is None else min(self.emd_points, n)
        b = pred.shape[0]

        def subset(x: torch.Tensor) -> torch.Tensor:
            if k == x.shape[1]:
                return x
            idx = torch.rand(b, x.shape[1], device=x.device).argsort(dim=1)[:, :k]
            return torch.gather(x, 1, idx.unsqueeze(-1).expand(b, k, 3))

        return emd(subset(pred), subset(points), method="auction", squared=False, reduction="mean")

    # ------------------------------------------------------------------ networks
    @property
    def generator(self) -> nn.Module:
        """The decoder (a tree-GAN generator by default)."""
        return self.decoder

    @property
    def frozen_autoencoder(self) -> nn.Module | None:
        """The frozen autoencoder once loaded (in :meth:`setup` or :meth:`attach_autoencoder`)."""
        return self._ae[0] if self._ae else None

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def encode_views(self, images: torch.Tensor) -> torch.Tensor:
        """Per-view latents: images (B, V, 3, H, W) -> (B, V, latent_dim) (one encoder pass over B*V)."""
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"Image2Cloud: expected views of shape (B, V, 3, H, W), got {tuple(images.shape)}")
        b, v = images.shape[:2]
        return self.encoder(images.flatten(0, 1)).view(b, v, -1)

    def fuse(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse per-view latents (B, V, D) with the view mask (B, V) (``None``: all valid) -> (B, D)."""
        if self.view_pooling is not None:
            return self.view_pooling(z, mask)
        return mean_view_pooling(z, mask)

    def view_weights(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The fusion's weights (B, V) over the views of ``z`` (B, V, D) (uniform over valid views for the mean)."""
        if self.view_pooling is not None:
            return self.view_pooling.weights(z, mask)
        m = torch.ones(z.shape[:2], device=z.device) if mask is None else mask.to(z.device, z.dtype)
        return m / m.sum(dim=1, keepdim=True)

    def encode_fused(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One latent per object: (B, 3, H, W) -> encoder; (B, V, 3, H, W) (+ mask (B, V)) -> fused (B, D)."""
        if images.dim() == 4:
            return self.encoder(images)
        return self.fuse(self.encode_views(images), mask)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N_out, 3) (single view); (B, V, 3, H, W) with ``mask`` (B, V) -> one cloud per object."""
        if images.dim() == 4:
            return self.decoder(self.encoder(images))
        return self.decoder(self.encode_fused(images, mask))

    @torch.no_grad()
    def predict_cloud_from_views(self, images: torch.Tensor, mask: torch.Tensor | None = None,
                                 batch_size: int = 32) -> torch.Tensor:
        """ONE cloud from several views of one object, in eval mode.

        ``images`` (V, 3, H, W) -> (N_out, 3); batched ``images`` (B, V, 3, H, W) with an optional
        ``mask`` (B, V) (False: padding) -> (B, N_out, 3). The views are encoded in chunks of
        ``batch_size`` images, fused (:meth:`fuse`) and decoded once per object.
        """
        single = images.dim() == 4
        if single:
            images = images.unsqueeze(0)
            mask = None if mask is None else mask.reshape(1, -1)
        if images.dim() != 5 or images.shape[2] != 3 or images.shape[1] < 1:
            raise ValueError(f"Image2Cloud: expected views of shape (V, 3, H, W) or (B, V, 3, H, W), got "
                             f"{tuple(images.shape)}")
        was = self.training
        self.eval()
        try:
            b, v = images.shape[:2]
            flat = images.flatten(0, 1)
            z = torch.cat([self.encoder(flat[i:i + batch_size].to(self.device))
                           for i in range(0, len(flat), batch_size)]).view(b, v, -1)
            out = self.decoder(self.fuse(z, None if mask is None else mask.to(self.device)))
        finally:
            self.train(was)
        return out[0] if single else out

    @torch.no_grad()
    def predict_clouds(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Clouds for ``images`` (M, 3, H, W) in eval mode, in chunks: -> (M, N, 3) on the model's device."""
        was = self.training
        self.eval()
        try:
            out = [self(images[i:i + batch_size].to(self.device)) for i in range(0, len(images), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out)

    # ------------------------------------------------------------------ frozen autoencoder
    def attach_autoencoder(self, ae: nn.Module, init_decoder: bool | None = None) -> None:
        """Use ``ae`` as the frozen autoencoder (frozen here) and optionally copy its decoder."""
        ae.eval()
        for p in ae.parameters():
            p.requires_grad_(False)
        ae_dim = getattr(ae, "latent_dim", None)
        if ae_dim is not None and int(ae_dim) != self.latent_dim:
            raise ValueError(f"Image2Cloud: the autoencoder's latent_dim={ae_dim} differs from latent_dim="
                             f"{self.latent_dim}")
        self._ae[:] = [ae]
        if self.init_decoder_from_ae if init_decoder is None else init_decoder:
            self._copy_decoder(ae.decoder)

    def _copy_decoder(self, src: nn.Module) -> None:
        if type(src) is not type(self.decoder):
            raise ValueError(f"Image2Cloud: cannot initialize the decoder ({type(self.decoder).__name__}) from the "
                             f"autoencoder's {type(src).__name__} ({self.ae_ckpt_path}); use the same decoder "
                             f"(model/decoder=...) or init_decoder_from_ae=false")
        for key in getattr(type(src), "RULE_ARGS", {}):  # same weights, different function: refuse
            theirs_rule, ours_rule = getattr(src, key, None), getattr(self.decoder, key, None)
            if theirs_rule != ours_rule:
                raise ValueError(f"Image2Cloud: the autoencoder's decoder ({self.ae_ckpt_path}) has {key}="
                                 f"{theirs_rule!r} but this decoder has {ours_rule!r}; set model.decoder.{key}")
        own, theirs = self.decoder.state_dict(), src.state_dict()
        diff = sorted(set(own) ^ set(theirs))
        bad = [f"{k}: ae {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
               if k in theirs and theirs[k].shape != v.shape]
        if diff or bad:
            raise ValueError(f"Image2Cloud: the autoencoder's decoder ({self.ae_ckpt_path}) does not have the shape of "
                             f"this decoder (same features/degrees/support or hidden sizes needed): keys only on one "
                             f"side {diff[:5]}, shape mismatches {bad[:5]}; or set init_decoder_from_ae=false")
        self.decoder.load_state_dict(theirs, strict=True)
        log.info("Image2Cloud: decoder initialized from the autoencoder's decoder (%s)", self.ae_ckpt_path)

    def _frozen_ae(self) -> nn.Module:
        if not self._ae:
            if not self.ae_ckpt_path:
                raise RuntimeError("Image2Cloud: the latent loss needs ae_ckpt_path")
            self.attach_autoencoder(load_frozen_autoencoder(self.ae_ckpt_path), init_decoder=False)
        ae = self._ae[0]
        if next(ae.parameters()).device != self.device:
            ae.to(self.device)
        ae.eval()
        return ae

    def setup(self, stage: str) -> None:
        if stage != "fit" or not self.ae_ckpt_path or self._ae:
            return
        trainer = self._trainer
        resuming = trainer is not None and bool(trainer.ckpt_path)
        need = self.latent_weight > 0 or (self.init_decoder_from_ae and not resuming)
        if need:
            self.attach_autoencoder(load_frozen_autoencoder(self.ae_ckpt_path),
                                    init_decoder=self.init_decoder_from_ae and not resuming)

    # ------------------------------------------------------------------ training
    @staticmethod
    def _check_batch(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        images, points = batch.get("image"), batch.get("points")
        if images is None:
            raise ValueError("Image2Cloud: batches need an 'image' entry (use data=renderings: ImageCloudDataModule)")
        if points is None or points.dim() != 3 or points.shape[2] != 3:
            raise ValueError(f"Image2Cloud: expected batch['points'] of shape (B, N, 3), got "
                             f"{None if points is None else tuple(points.shape)}")
        if images.dim() not in (4, 5):
            raise ValueError(f"Image2Cloud: expected batch['image'] of shape (B, 3, H, W) or (B, V, 3, H, W), got "
                             f"{tuple(images.shape)}")
        return images, points

    def _draw_views(self, images: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training views of a multi-view batch: k in [lo, min(hi, V)] (``views_per_step``; all V when
        unset), a random subset of each object's valid views (valid ones first). -> (B, k, 3, H, W), (B, k)."""
        b, v = images.shape[:2]
        mask = torch.ones(b, v, dtype=torch.bool, device=images.device) if mask is None else mask.bool()
        if self.views_per_step is None:
            return images, mask
        lo, hi = self.views_per_step
        hi = min(hi, v)
        k = int(torch.randint(min(lo, hi), hi + 1, ()).item())
        key = torch.rand(b, v, device=images.device) + mask.to(images.dtype)  # valid views rank first
        idx = key.argsort(dim=1, descending=True)[:, :k]
        sel = torch.gather(images, 1, idx.view(b, k, 1, 1, 1).expand(b, k, *images.shape[2:]))
        return sel, torch.gather(mask, 1, idx)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if skip_flagged_batch(self, n_steps=1 + (self.n_critic if self.critic is not None else 0)):
            return  # non-finite input under nan_policy=skip (pc3d.callbacks.nan_guard)
        images, points = self._check_batch(batch)
        b = points.shape[0]
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list | tuple) else (opts, None)
        if images.dim() == 5:  # several views per object: a random subset, fused
            images, mask = self._draw_views(images, batch.get("view_mask"))
            z = self.encode_fused(images, mask)
            logs_views = {"train/views": torch.tensor(float(images.shape[1]))}
        else:
            z = self.encoder(images)
            logs_views = {}
        pred = self.decoder(z)
        logs: dict[str, torch.Tensor] = dict(logs_views)

        if self.critic is not None:
            fake = pred.detach()
            logs.update(critic_steps(self, points, lambda: fake, opt_d, lambda opt: opt.step()))
            self.toggle_optimizer(opt_g)

        cd = chamfer_distance(pred, points)
        loss = self.cd_weight * cd
        logs["train/cd"] = cd.detach()
        if self.latent_weight > 0:
            with torch.no_grad():
                z_ae = self._frozen_ae().encode(points)
            lat = F.l1_loss(z, z_ae)
            loss = loss + self.latent_weight * lat
            logs["train/latent_l1"] = lat.detach()
        if self.emd_weight > 0:
            e = self.emd_loss(pred, points)
            loss = loss + self.emd_weight * e
            logs["train/emd_subset"] = e.detach()
        if self.critic is not None:
            adv = -self.critic(pred).mean()
            loss = loss + self.adv_weight * adv
            logs["train/adv_g"] = adv.detach()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        if self.critic is not None:
            self.untoggle_optimizer(opt_g)
        logs["train/loss"] = loss.detach()
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=b)

    def on_train_epoch_end(self) -> None:
        sch = self.lr_schedulers()
        if sch is not None:
            (sch[0] if isinstance(sch, list) else sch).step()

    # ------------------------------------------------------------------ validation / test
    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        images, points = self._check_batch(batch)
        pred = self(images, batch.get("view_mask")) if images.dim() == 5 else self(images)
        cd = chamfer_distance(pred, points, reduction="none")
        self.log("val/cd", cd.mean(), prog_bar=True, on_epoch=True, sync_dist=True, batch_size=points.shape[0])
        return {"recon": pred.detach(), "cd": cd.detach()}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        images, points = self._check_batch(batch)
        pred = self(images, batch.get("view_mask")) if images.dim() == 5 else self(images)
        return {"recon": pred.detach()}

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        pooling = self.view_pooling.parameters() if self.view_pooling is not None else ()
        params = [p for p in (*self.encoder.parameters(), *self.decoder.parameters(), *pooling) if p.requires_grad]
        opt_g = (self.optimizer_factory or (lambda ps: torch.optim.Adam(ps, lr=1e-4)))(params)
        opts = [opt_g]
        if self.critic is not None:
            opt_d = (self.optimizer_d_factory or (lambda ps: torch.optim.Adam(ps, lr=1e-4, betas=(0.5, 0.9))))(
                [p for p in self.critic.parameters() if p.requires_grad])
            opts.append(opt_d)
        if self.scheduler_factory is None:
            return opts
        return opts, [{"scheduler": self.scheduler_factory(opt_g), "interval": "epoch"}]


# ----------------------------------------------------------------------------- retrieval baseline


def pixel_features(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Downsampled pixels as a feature: (B, 3, H, W) in [0, 1] -> (B, 3 * size * size) (area resize)."""
    return F.adaptive_avg_pool2d(images, (size, size)).flatten(1)


class RetrievalGallery(NamedTuple):
    """The gallery of a nearest-neighbour retrieval baseline (see :func:`retrieval_gallery`).

    Shapes: ``features`` (G, D), one row per gallery image; ``owner`` (G,) the item each image
    belongs to; ``clouds`` (M, N, 3), one cloud per item.
    """

    features: torch.Tensor
    owner: torch.Tensor
    clouds: torch.Tensor

    def retrieve(self, features: torch.Tensor) -> torch.Tensor:
        """Item index (B,) of the gallery image nearest (euclidean) to each query feature (B, D)."""
        return self.owner[torch.cdist(features.float().cpu(), self.features).argmin(1)]


@torch.no_grad()
def retrieval_gallery(train_set, feature_fn: Callable[[torch.Tensor], torch.Tensor], *, all_views: bool = True,
                      batch_size: int = 64) -> RetrievalGallery:
    """Features of every view (``all_views``; else the seeded view) of every item of ``train_set``
    (an :class:`~pc3d.data.renderings.ImageCloudDataset`) and each item's cloud at fixed sampling.

    ``feature_fn`` maps (B, 3, H, W) images to (B, D) features (see :func:`retrieval_baseline`).
    """
    gallery = train_set.variant(sampling="fixed", transform=None, view="seeded", views=None)  # one view per item
    feats, owner, clouds = [], [], []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            feats.append(feature_fn(torch.stack(pending)).float().cpu())
            pending.clear()

    for i in range(len(gallery)):
        clouds.append(gallery[i]["points"])
        n_views = gallery.n_views[i] if all_views else 1
        views = range(n_views) if all_views else [gallery._view_index(i, gallery.n_views[i])]
        for v in views:
            pending.append(gallery.image(i, v))
            owner.append(i)
            if len(pending) >= batch_size:
                flush()
    flush()
    return RetrievalGallery(torch.cat(feats), torch.tensor(owner), torch.stack(clouds))


@torch.no_grad()
def retrieval_baseline(
    train_set,
    query_loader,
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    all_views: bool = True,
    metrics: Sequence[str] = ("cd", "emd", "fscore"),
    tau: float = 0.01,
    normalize: str = "none",
    emd_method: str = "exact",
    batch_size: int = 64,
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Nearest-neighbour retrieval: predict the training cloud whose image feature is nearest.

    The gallery (:func:`retrieval_gallery`) holds every view (``all_views``; else the seeded view)
    of every item of ``train_set`` (an :class:`~pc3d.data.renderings.ImageCloudDataset`), each with
    its cloud at fixed sampling; each query image of ``query_loader`` (batches with ``image``,
    ``points``, ``category``) gets the cloud of the gallery image at the smallest euclidean feature
    distance, scored against its ground truth with
    :func:`pc3d.metrics.reconstruction.reconstruction_metrics`.

    ``feature_fn`` maps (B, 3, H, W) images to (B, D) features, e.g. :func:`pixel_features`
    or a trained encoder's ``features``.

    Returns the :func:`~pc3d.metrics.reconstruction.per_category_means` table.
    """
    from pc3d.metrics.reconstruction import per_category_means, reconstruction_metrics

    gallery = retrieval_gallery(train_set, feature_fn, all_views=all_views, batch_size=batch_size)
    per_shape: dict[str, list[torch.Tensor]] = {}
    labels = []
    for batch in query_loader:
        pred = gallery.clouds[gallery.retrieve(feature_fn(batch["image"]))]
        vals = reconstruction_metrics(pred, batch["points"], metrics=metrics, tau=tau, normalize=normalize,
                                      emd_method=emd_method)
        for k, v in vals.items():
            per_shape.setdefault(k, []).append(v)
        labels.append(batch["category"])
    return per_category_means({k: torch.cat(v) for k, v in per_shape.items()}, torch.cat(labels), names=names)
