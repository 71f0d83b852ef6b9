"""tree-GAN (Shu, Park, Kwon, ICCV 2019) as a Lightning system: TreeGCN generator, PointNet critic, WGAN-GP."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from pc3d.models._generation import ReferenceClouds, ReferenceEvaluation
from pc3d.models._guards import skip_flagged_batch
from pc3d.models._uniformity import check_uniformity_args
from pc3d.models._wgan import (
    batched_critic_mean,
    check_int,
    check_sample_args,
    generate_in_batches,
    seeded_noise,
    wgan_gp_iteration,
    wgan_optimizers,
)

# gradient_penalty: re-exported (public here; shared with the latent GAN and Image2Cloud)
from pc3d.models._wgan import gradient_penalty as gradient_penalty
from pc3d.ops import uniformity_loss

log = logging.getLogger("pc3d.treegan")

__all__ = ["TreeGAN", "gradient_penalty", "load_generator_weights"]


def load_generator_weights(generator: nn.Module, ckpt_path: str | os.PathLike, prefix: str | None = None) -> str:
    """Load generator weights from a checkpoint into ``generator`` (strict names and shapes).

    The file is read with ``torch.load(weights_only=True)``; it may be a Lightning checkpoint
    (weights under ``"state_dict"``) or a bare state dict. The weights are those under
    ``prefix`` (e.g. ``"decoder."`` for an :class:`~pc3d.models.Autoencoder` whose decoder is a
    :class:`~pc3d.nn.TreeGenerator`, ``"generator."`` for a :class:`TreeGAN`); with ``prefix=None``
    the first of ``"generator."``, ``"decoder."`` that has keys is used, or the whole dict if its
    keys already match. Raises ``FileNotFoundError`` / ``ValueError`` with the mismatching keys
    and shapes. Returns the prefix used.
    """
    from pc3d import pretrained

    path = pretrained.resolve(ckpt_path)  # pretrained:<name>: shipped weights
    if not path.is_file():
        raise FileNotFoundError(f"warm start: checkpoint not found: {path}")
    from pc3d.models.io import config_view, torch_load

    ckpt = torch_load(path)  # weights_only=True; refuses raw pickles, naming the file
    view = config_view(ckpt, path) if isinstance(ckpt, dict) else None  # refuses call keys in build data
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"warm start: {path} holds neither a Lightning checkpoint nor a state dict")
    own = generator.state_dict()
    candidates = [prefix] if prefix is not None else ["generator.", "decoder.", ""]
    for p in candidates:
        sub = {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
        if sub and (prefix is not None or p or set(sub) == set(own)):
            break
    else:
        raise ValueError(f"warm start: {path} has no weights under {candidates} (first keys: {list(state)[:5]})")
    missing = sorted(set(own) - set(sub))
    unexpected = sorted(set(sub) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(sub[k].shape)} vs generator {tuple(own[k].shape)}"
        for k in own
        if k in sub and sub[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"warm start: the weights under {p!r} in {path} do not fit the generator "
            f"({type(generator).__name__}); is the checkpoint's {p.rstrip('.') or 'model'} a TreeGenerator with "
            f"the same features/degrees/support? missing={missing[:5]}, unexpected={unexpected[:5]}, "
            f"shape mismatches={mismatched[:5]}"
        )
    _check_forward_rule(generator, view, p, path)
    generator.load_state_dict(sub, strict=True)
    return p


def _check_forward_rule(generator: nn.Module, cfg: Any, prefix: str, path: Path) -> None:
    """Refuse weights trained under another forward rule (same shapes, different function).

    ``cfg``, the checkpoint's stored arguments (:func:`pc3d.models.io.config_view`, plain data), names
    the source network's arguments; those in the generator's ``RULE_ARGS`` (e.g. a TreeGenerator's
    ``ancestor_scale``) must agree, an absent one counting as its default.
    """
    rules = getattr(type(generator), "RULE_ARGS", {})
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    net_cfg = model_cfg.get(prefix.rstrip(".")) if isinstance(model_cfg, dict) and prefix else None
    if not isinstance(net_cfg, dict):
        return
    for key, default in rules.items():
        ours, theirs = getattr(generator, key), net_cfg.get(key, default)
        if ours != theirs:
            raise ValueError(
                f"warm start: {path} was trained with model.{prefix.rstrip('.')}.{key}={theirs!r} but this "
                f"generator has {key}={ours!r}; set model.generator.{key}={theirs!r} (the weights fit, the "
                f"function would not)"
            )


class TreeGAN(ReferenceEvaluation, L.LightningModule):
    """tree-GAN trained as a WGAN-GP (Shu et al., ICCV 2019; Gulrajani et al., NeurIPS 2017).

    Networks come in built (Hydra ``_target_``): ``generator`` maps ``z ~ N(0, I)`` of shape
    ``(B, latent_dim)`` to clouds ``(B, N, 3)`` (:class:`pc3d.nn.TreeGenerator`), ``critic`` maps
    clouds to scores ``(B, 1)`` (:class:`pc3d.nn.PointCritic`).

    Training (manual optimization, one ``training_step`` = one tree-GAN iteration): for each
    real batch ``x`` of B clouds, ``n_critic`` critic steps, each with fresh noise but **the
    same real batch** (as the official code does), minimising

        L_D = mean D(G(z)) - mean D(x) + gp_lambda * GP        (GP: :func:`gradient_penalty`)

    then one generator step minimising ``L_G = -mean D(G(z))`` with fresh noise (B samples),
    plus ``uniformity_weight * U(G(z))`` when ``uniformity_weight > 0``: ``U`` is
    :func:`pc3d.ops.uniformity_loss` with ``k = uniformity_k`` (the squared coefficient of
    variation of each point's mean distance to its k nearest neighbours, batch mean; 0 for even
    spacing, large for tree-GAN's dense clumps with a sparse halo). The default 0 computes no
    such term (the plain tree-GAN loss, bit for bit).
    Both nets use Adam, lr 1e-4, betas (0.0, 0.99) by default (floats: PyTorch rejects the
    official integer 0). ``gradient_clip_val`` (default off, as in the paper) clips the
    gradient norm of each net before its step.

    Step counting: every ``optimizer.step()`` advances ``trainer.global_step``, so one
    iteration counts ``n_critic + 1`` steps (6 by default): ``trainer.max_steps`` and
    ``every_n_train_steps`` are in that unit, while ``limit_train_batches`` counts iterations.

    Logged every iteration (and as epoch means): ``train/d_loss`` and ``train/gp`` (means over
    the iteration's critic steps, ``d_loss`` includes ``gp_lambda * gp``), ``train/wasserstein``
    (``mean D(x) - mean D(G(z))``, the critic's estimate of the Wasserstein-1 distance, mean over
    the critic steps) and ``train/g_loss`` (the whole generator loss, including the weighted
    uniformity term), plus ``train/g_uniformity`` (``U(G(z))``, unweighted) when
    ``uniformity_weight > 0``.

    Validation: the first ``eval_samples`` validation clouds (in loader order; gathered over
    ranks) are the references ``R``; every ``eval_every_n_epochs`` epochs, ``|R|`` clouds are
    generated with the fixed seed ``eval_seed`` and the critic's estimate on the two sets is
    logged as ``val/wasserstein`` (``test/wasserstein`` at test). The sample metrics
    (``val/mmd_cd``, ``val/cov_cd``, ``val/1nna_cd``, ``val/fpd``) are the
    :class:`pc3d.callbacks.GenerationMetrics` callback's (``conf/model/treegan.yaml`` wires it
    with the same ``eval_*`` settings). Samples and references are in the data module's
    **normalised units** (the generator learns the clouds the loaders give).
    When a checkpoint monitors a ``val/`` key, keep ``eval_every_n_epochs=1`` and set the
    cadence with ``trainer.check_val_every_n_epoch``.
    Samples from the fixed noise buffer ``fixed_noise`` (``n_fixed_samples`` latents, saved in
    checkpoints) are written by the :class:`pc3d.callbacks.SaveGeneratedSamples` callback.

    Warm start: ``warm_start_ckpt_path`` is a checkpoint path whose generator weights are loaded at the
    start of fitting (not on resume, where the checkpoint restores everything), e.g. an
    :class:`~pc3d.models.Autoencoder` trained with ``model/decoder=treegcn`` (its ``decoder.*``);
    see :func:`load_generator_weights`.

    Shapes:
        batch["points"]: (B, N, 3)
        forward(z): (B, latent_dim) -> (B, N, 3)
        sample(n): -> (n, N, 3)
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        latent_dim: int = 96,
        n_critic: int = 5,
        gp_lambda: float = 10.0,
        optimizer_g: Callable[..., torch.optim.Optimizer] | None = None,
        optimizer_d: Callable[..., torch.optim.Optimizer] | None = None,
        gradient_clip_val: float | None = None,
        n_fixed_samples: int = 16,
        fixed_noise_seed: int = 0,
        eval_samples: int = 100,
        eval_every_n_epochs: int = 1,
        eval_seed: int = 1234,
        sample_batch_size: int = 100,
        warm_start_ckpt_path: str | None = None,
        warm_start_prefix: str | None = None,
        uniformity_weight: float = 0.0,
        uniformity_k: int = 8,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        gen_dim = getattr(generator, "latent_dim", latent_dim)
        if gen_dim != latent_dim:
            raise ValueError(f"TreeGAN: latent_dim={latent_dim} but generator.latent_dim={gen_dim}")
        for name, value, low in (
            ("n_critic", n_critic, 1),
            ("n_fixed_samples", n_fixed_samples, 0),
            ("eval_samples", eval_samples, 0),
            ("eval_every_n_epochs", eval_every_n_epochs, 1),
            ("sample_batch_size", sample_batch_size, 1),
        ):
            check_int("TreeGAN", name, value, low)
        if gp_lambda < 0:
            raise ValueError(f"TreeGAN: gp_lambda must be >= 0, got {gp_lambda}")
        self.uniformity_weight, self.uniformity_k = check_uniformity_args(
            "TreeGAN", uniformity_weight, uniformity_k, getattr(generator, "n_points", None)
        )
        self.generator = generator
        self.critic = critic
        self.latent_dim = int(latent_dim)
        self.n_critic = int(n_critic)
        self.gp_lambda = float(gp_lambda)
        self.optimizer_g_factory = optimizer_g
        self.optimizer_d_factory = optimizer_d
        self.gradient_clip_val = None if gradient_clip_val is None else float(gradient_clip_val)
        self.eval_samples = int(eval_samples)
        self.eval_every_n_epochs = int(eval_every_n_epochs)
        self.eval_seed = int(eval_seed)
        self.sample_batch_size = int(sample_batch_size)
        self.warm_start_ckpt_path = None if warm_start_ckpt_path is None else str(warm_start_ckpt_path)
        self.warm_start_prefix = warm_start_prefix
        self.register_buffer("fixed_noise", seeded_noise(n_fixed_samples, self.latent_dim, int(fixed_noise_seed)))
        self.save_hyperparameters(ignore=["generator", "critic", "optimizer_g", "optimizer_d"])
        self._refs = ReferenceClouds(self.eval_samples)

    # ------------------------------------------------------------------ generation
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, batch_size: int = 100) -> torch.Tensor:
        """Generate ``n`` clouds, (n, N, 3) on the model's device, with the generator in eval mode.

        The latents are drawn on the CPU, all at once (from ``torch.Generator().manual_seed(seed)``,
        or the global RNG when ``seed`` is None), so a fixed seed gives the same clouds whatever
        ``batch_size`` or device.
        """
        check_sample_args(n, batch_size)
        return self._generate(seeded_noise(n, self.latent_dim, seed), batch_size)

    def _generate(self, z: torch.Tensor, batch_size: int) -> torch.Tensor:
        empty_shape = (getattr(self.generator, "n_points", 0), 3)
        return generate_in_batches(self.generator, z, batch_size, self.device, empty_shape)

    def sample_fixed(self) -> torch.Tensor:
        """Clouds from the fixed noise buffer, (n_fixed_samples, N, 3)."""
        return self._generate(self.fixed_noise, self.sample_batch_size)

    def media_clouds(self, batch: dict | None, outputs: Any = None) -> dict[str, torch.Tensor]:
        """Rows for :class:`pc3d.viz.callbacks.LogMedia`: real clouds (when a batch is given) and
        the fixed-noise samples, each (k, N, 3)."""
        media = {}
        if isinstance(batch, dict) and batch.get("points") is not None:
            media["real"] = batch["points"]
        media["sample"] = self.sample_fixed()
        return media

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        trainer = self._trainer
        resuming = trainer is not None and bool(trainer.ckpt_path)
        if stage == "fit" and self.warm_start_ckpt_path and not resuming:
            prefix = load_generator_weights(self.generator, self.warm_start_ckpt_path, self.warm_start_prefix)
            log.info("TreeGAN: generator warm-started from %s (%s weights)", self.warm_start_ckpt_path,
                     prefix or "all")

    def generator_loss(self, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The generator's loss on its own samples ``fake`` (B, N, 3), and the logged parts.

        ``L_G = -mean D(fake)``, plus ``uniformity_weight * uniformity_loss(fake, k=uniformity_k)``
        when ``uniformity_weight > 0`` (then the parts hold ``{"g_uniformity": U}``, detached;
        otherwise they are empty). Returns ``(scalar loss, parts)``.
        """
        g_loss = -self.critic(fake).mean()
        if self.uniformity_weight == 0:
            return g_loss, {}
        u = uniformity_loss(fake, k=self.uniformity_k)
        return g_loss + self.uniformity_weight * u, {"g_uniformity": u.detach()}

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if skip_flagged_batch(self, n_steps=self.n_critic + 1):  # non-finite input under nan_policy=skip
            return
        real = batch["points"]
        if real.dim() != 3 or real.shape[2] != 3:
            raise ValueError(f"TreeGAN: expected batch['points'] of shape (B, N, 3), got {tuple(real.shape)}")
        logs = wgan_gp_iteration(self, real, self.latent_dim, self.generator_loss)
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=real.shape[0])

    # ------------------------------------------------------------------ validation / test
    def _evaluate_stage(self, stage: str) -> None:
        refs = self._refs.take(self, stage, self.eval_every_n_epochs)  # None: nothing to evaluate now
        if refs is None:
            return
        bs = self.sample_batch_size
        samples = self.sample(len(refs), seed=self.eval_seed, batch_size=bs)
        wasserstein = batched_critic_mean(self.critic, refs, bs) - batched_critic_mean(self.critic, samples, bs)
        self.log_dict({f"{stage}/wasserstein": float(wasserstein)}, sync_dist=True)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        return wgan_optimizers(self.generator, self.critic, self.optimizer_g_factory, self.optimizer_d_factory,
                               betas=(0.0, 0.99))

    def param_counts(self) -> dict[str, int]:
        """Parameters of each network (all, including frozen ones)."""
        return {
            "generator": sum(p.numel() for p in self.generator.parameters()),
            "critic": sum(p.numel() for p in self.critic.parameters()),
        }
