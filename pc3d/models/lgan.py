"""Latent GAN (Achlioptas et al., ICML 2018) as a Lightning system: WGAN-GP in a frozen AE's latent space."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from pc3d.models._generation import ReferenceClouds, ReferenceEvaluation
from pc3d.models._guards import skip_flagged_batch
from pc3d.models._wgan import (
    batched_critic_mean,
    check_int,
    check_sample_args,
    generate_in_batches,
    in_batches,
    seeded_noise,
    wgan_gp_iteration,
    wgan_optimizers,
)

log = logging.getLogger("pc3d.lgan")

__all__ = ["LatentGAN", "load_autoencoder_for_lgan"]


def load_autoencoder_for_lgan(ae_ckpt_path: str | os.PathLike | None) -> tuple[nn.Module, dict | None, dict | None]:
    """The frozen autoencoder of ``ae_ckpt_path`` (a ``pc3d-train`` checkpoint), with its configs.

    Rebuilt by :func:`pc3d.models.image2cloud.load_frozen_autoencoder` (``weights_only=True``, eval
    mode, ``requires_grad=False``). Returns ``(autoencoder, model spec, data args)``: the checkpoint's
    model build spec and its data arguments (:mod:`pc3d.models.registry`; ``None`` when absent).
    Raises ``ValueError`` when ``ae_ckpt_path`` is not given and ``FileNotFoundError`` when the file
    does not exist, both naming the ``model.ae_ckpt_path`` key.
    """
    from pc3d.models.io import load_frozen_autoencoder, read_build
    from pc3d.models.registry import args_view

    if ae_ckpt_path is None or str(ae_ckpt_path) in ("", "???"):
        raise ValueError("LatentGAN: model.ae_ckpt_path is required: the checkpoint of a pretrained pc3d "
                         "Autoencoder, e.g. model.ae_ckpt_path=outputs/ae_synthetic/runs/<time>/checkpoints/last.ckpt "
                         "(train one with pc3d-train experiment=ae_synthetic)")
    from pc3d import pretrained

    path = pretrained.resolve(ae_ckpt_path)  # pretrained:<name>: shipped weights
    if not path.is_file():
        raise FileNotFoundError(f"LatentGAN: model.ae_ckpt_path={ae_ckpt_path}: no such checkpoint file "
                                "(train one with pc3d-train experiment=ae_synthetic)")
    try:
        ae = load_frozen_autoencoder(path)
    except ValueError as e:  # its messages name Image2Cloud: say which key points at the file
        raise ValueError(f"LatentGAN: model.ae_ckpt_path={ae_ckpt_path}: {e}") from e
    build = read_build(path) or {}  # the AE's build data (registered names, plain args; see pc3d.models.registry)
    data_cfg = args_view(build.get("data"))
    return ae, build.get("model"), (data_cfg if isinstance(data_cfg, dict) else None)


class LatentGAN(ReferenceEvaluation, L.LightningModule):
    """Latent GAN, l-GAN (Achlioptas, Diamanti, Mitliagkas, Guibas, ICML 2018, "Learning
    Representations and Generative Models for 3D Point Clouds"), trained as a WGAN-GP
    (Gulrajani et al., NeurIPS 2017) in the latent space of a frozen pretrained autoencoder.

    Networks: ``generator`` maps noise ``z ~ N(0, I)`` of shape ``(B, noise_dim)`` to latents
    ``(B, latent_dim)`` (:class:`pc3d.nn.LatentGenerator`), ``critic`` maps latents to scores
    ``(B, 1)`` (:class:`pc3d.nn.LatentCritic`). A cloud is ``Dec(G(z))`` with ``Dec`` the
    autoencoder's decoder (whatever the checkpoint holds: :class:`pc3d.nn.FCDecoder`,
    :class:`pc3d.nn.TreeGenerator`, ...).

    The autoencoder (``ae_ckpt_path``, a :class:`pc3d.models.Autoencoder` written by ``pc3d-train``,
    required) is loaded with :func:`pc3d.models.image2cloud.load_frozen_autoencoder` and kept
    **frozen**: ``requires_grad=False``, in no optimizer, and always in eval mode (:meth:`train`
    is overridden, and encoding sets eval mode again), so its BatchNorm statistics never change.
    It is a registered submodule (``autoencoder.*`` in ``state_dict``): a checkpoint holds all
    the weights it needs to sample, and, through :meth:`on_save_checkpoint`, the autoencoder's
    own build spec under ``pc3d_build["model"]["args"]["autoencoder"]``, so that
    :func:`pc3d.models.load_model` rebuilds the l-GAN (``autoencoder`` given, ``ae_ckpt_path`` not read)
    without the original autoencoder file. ``latent_dim`` (optional) must equal the autoencoder's.

    Training (manual optimization, one ``training_step`` = one iteration), as
    :class:`pc3d.models.TreeGAN` but in latent space: the real latents ``w = Enc(x)`` of the batch
    of B clouds are computed once under ``torch.no_grad()``; then ``n_critic`` critic steps, each
    with fresh noise and the same real latents, minimise

        L_D = mean D(G(z)) - mean D(w) + gp_lambda * GP        (GP on (B, latent_dim) latents:
                                                                :func:`pc3d.models.treegan.gradient_penalty`)

    then one generator step minimises ``L_G = -mean D(G(z))`` (B fresh noise vectors). Both nets
    use Adam, lr 1e-4, betas (0.5, 0.9) by default (the WGAN-GP paper's setting;
    ``optimizer_g`` / ``optimizer_d`` are partials ``params -> Optimizer``).
    ``gradient_clip_val`` (default off) clips each net's gradient norm before its step.
    ``latent_cache=True`` encodes each train item once (the first time its index is seen, from the
    points sampled then) and reuses that latent in later epochs: the frozen encoder is what an
    iteration costs, so this makes an iteration many times cheaper (the latents then no longer see
    the data's per-epoch resampling of points). Every
    ``optimizer.step()`` advances ``trainer.global_step``: one iteration is ``n_critic + 1`` steps.

    Logged every iteration (and as epoch means): ``train/d_loss`` (includes ``gp_lambda * gp``),
    ``train/gp``, ``train/wasserstein`` (``mean D(w) - mean D(G(z))``, the critic's estimate of
    the Wasserstein-1 distance between the real and generated latent distributions; these three
    are means over the critic steps) and ``train/g_loss``.

    Validation / test: the same protocol as :class:`~pc3d.models.TreeGAN`
    (:mod:`pc3d.models._generation`): the first ``eval_samples`` clouds of the loader are the
    references, ``|R|`` latents are generated with the seed ``eval_seed`` and ``val/wasserstein``
    is the critic's estimate between the encoded references and those latents, every
    ``eval_every_n_epochs`` epochs. The sample metrics (``val/mmd_cd``, ``val/cov_cd``,
    ``val/1nna_cd``, in the data module's normalised units) are the
    :class:`pc3d.callbacks.GenerationMetrics` callback's, wired by ``conf/model/lgan.yaml`` with
    the same settings. The autoencoder must have been trained on the
    same normalisation; ``setup`` checks it, and the number of points (the data's ``n_points``
    must be the decoder's ``n_points``), when both sides are known.

    Sampling: :meth:`sample` (same signature as ``TreeGAN.sample``, so ``pc3d-generate``,
    ``pc3d-eval`` and :class:`pc3d.viz.callbacks.LogMedia` work), :meth:`sample_fixed` from the
    ``fixed_noise`` buffer (``n_fixed_samples`` vectors, saved in checkpoints) for
    :class:`pc3d.callbacks.SaveGeneratedSamples`, :meth:`media_clouds` for ``LogMedia``.

    Shapes:
        batch["points"]: (B, N, 3) with N = the decoder's n_points
        forward(z): (B, noise_dim) -> (B, N, 3)
        encode(points): (B, N, 3) -> (B, latent_dim); decode(w): (B, latent_dim) -> (B, N, 3)
        sample(n): -> (n, N, 3)
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        ae_ckpt_path: str | None = None,
        noise_dim: int = 128,
        latent_dim: int | None = None,
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
        autoencoder: nn.Module | None = None,
        latent_cache: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.n_critic = check_int("LatentGAN", "n_critic", n_critic, 1)
        self.noise_dim = check_int("LatentGAN", "noise_dim", noise_dim, 1)
        n_fixed_samples = check_int("LatentGAN", "n_fixed_samples", n_fixed_samples, 0)
        self.eval_samples = check_int("LatentGAN", "eval_samples", eval_samples, 0)
        self.eval_every_n_epochs = check_int("LatentGAN", "eval_every_n_epochs", eval_every_n_epochs, 1)
        self.sample_batch_size = check_int("LatentGAN", "sample_batch_size", sample_batch_size, 1)
        if gp_lambda < 0:
            raise ValueError(f"LatentGAN: gp_lambda must be >= 0, got {gp_lambda}")

        # the frozen autoencoder: from the checkpoint file, or given (load_model passes one built from
        # the config stored in the l-GAN checkpoint; its weights then come from the l-GAN's state_dict)
        self._ae_config: dict | None = None
        self._ae_data: dict | None = None
        if autoencoder is None:
            autoencoder, self._ae_config, self._ae_data = load_autoencoder_for_lgan(ae_ckpt_path)
        if not (callable(getattr(autoencoder, "encode", None)) and isinstance(getattr(autoencoder, "decoder", None),
                                                                              nn.Module)):
            raise ValueError(f"LatentGAN: the autoencoder ({ae_ckpt_path}) is a {type(autoencoder).__name__}, "
                             "expected encode() and a decoder (a pc3d.models.Autoencoder)")
        autoencoder.eval()
        for p in autoencoder.parameters():
            p.requires_grad_(False)

        ae_dim = getattr(autoencoder, "latent_dim", None) or getattr(autoencoder.decoder, "latent_dim", None)
        if ae_dim is None:
            raise ValueError(f"LatentGAN: the autoencoder ({ae_ckpt_path}) has no latent_dim (nor has its decoder)")
        ae_dim = int(ae_dim)
        dims = {"latent_dim": latent_dim, "generator.latent_dim": getattr(generator, "latent_dim", None),
                "critic.latent_dim": getattr(critic, "latent_dim", None)}
        bad = {k: v for k, v in dims.items() if v is not None and int(v) != ae_dim}
        if bad:
            raise ValueError(f"LatentGAN: the autoencoder's latent size is {ae_dim} ({ae_ckpt_path}) but "
                             + ", ".join(f"{k}={v}" for k, v in bad.items())
                             + f"; set model.latent_dim={ae_dim}")
        gen_noise = getattr(generator, "noise_dim", noise_dim)
        if gen_noise != self.noise_dim:
            raise ValueError(f"LatentGAN: noise_dim={noise_dim} but generator.noise_dim={gen_noise}")

        self.generator = generator
        self.critic = critic
        self.autoencoder = autoencoder
        self.latent_dim = ae_dim
        n_points = getattr(autoencoder.decoder, "n_points", None)
        self.n_points = None if n_points is None else int(n_points)
        self.ae_ckpt_path = None if ae_ckpt_path is None else str(ae_ckpt_path)
        self.gp_lambda = float(gp_lambda)
        self.optimizer_g_factory = optimizer_g
        self.optimizer_d_factory = optimizer_d
        self.gradient_clip_val = None if gradient_clip_val is None else float(gradient_clip_val)
        self.eval_seed = int(eval_seed)
        self.register_buffer("fixed_noise", seeded_noise(n_fixed_samples, self.noise_dim, int(fixed_noise_seed)))
        self.save_hyperparameters(ignore=["generator", "critic", "optimizer_g", "optimizer_d", "autoencoder"])
        self._refs = ReferenceClouds(self.eval_samples)
        self.latent_cache = bool(latent_cache)
        self._cache_w: torch.Tensor | None = None  # (n_items, latent_dim) latents of the train items seen so far
        self._cache_known: torch.Tensor | None = None  # (n_items,) bool

    # ------------------------------------------------------------------ frozen autoencoder
    def train(self, mode: bool = True) -> LatentGAN:
        """Set the generator and critic to ``mode``; the autoencoder stays in eval mode."""
        super().train(mode)
        ae = self._modules.get("autoencoder")
        if ae is not None:
            ae.eval()
        return self

    @torch.no_grad()
    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """Latents of clouds by the frozen encoder (eval mode, no gradients): (B, N, 3) -> (B, latent_dim)."""
        if points.dim() != 3 or points.shape[2] != 3:
            raise ValueError(f"LatentGAN: expected clouds of shape (B, N, 3), got {tuple(points.shape)}")
        self.autoencoder.eval()
        return self.autoencoder.encode(points)

    @torch.no_grad()
    def decode(self, w: torch.Tensor) -> torch.Tensor:
        """Clouds of latents by the frozen decoder (no gradients): (B, latent_dim) -> (B, N, 3)."""
        if w.dim() != 2 or w.shape[1] != self.latent_dim:
            raise ValueError(f"LatentGAN: expected latents of shape (B, {self.latent_dim}), got {tuple(w.shape)}")
        self.autoencoder.eval()
        return self.autoencoder.decoder(w)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the autoencoder's build spec in ``pc3d_build["model"]["args"]["autoencoder"]`` (a copy;
        the callback's data is not touched), so that ``load_model`` needs no ``ae_ckpt_path`` file."""
        build = checkpoint.get("pc3d_build")
        model = build.get("model") if isinstance(build, dict) else None
        if self._ae_config is None or not isinstance(model, dict) or not isinstance(model.get("args"), dict):
            return
        checkpoint["pc3d_build"] = {**build, "model": {**model, "args": {**model["args"],
                                                                         "autoencoder": self._ae_config}}}

    # ------------------------------------------------------------------ generation
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(self.generator(z))

    def _latents(self, z: torch.Tensor, batch_size: int) -> torch.Tensor:
        return generate_in_batches(self.generator, z, batch_size, self.device, (self.latent_dim,))

    def _decode_all(self, w: torch.Tensor, batch_size: int) -> torch.Tensor:
        return in_batches(self.decode, w, batch_size, (self.n_points or 0, 3), self.device)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, batch_size: int = 100) -> torch.Tensor:
        """Generate ``n`` clouds ``Dec(G(z))``, (n, N, 3) on the model's device, generator in eval mode.

        The noise is drawn on the CPU, all at once (from ``torch.Generator().manual_seed(seed)``,
        or the global RNG when ``seed`` is None), so a fixed seed gives the same clouds whatever
        the device, and the same up to float rounding whatever ``batch_size``.
        """
        check_sample_args(n, batch_size)
        return self._decode_all(self._latents(seeded_noise(n, self.noise_dim, seed), batch_size), batch_size)

    def sample_fixed(self) -> torch.Tensor:
        """Clouds from the fixed noise buffer, (n_fixed_samples, N, 3)."""
        return self._decode_all(self._latents(self.fixed_noise, self.sample_batch_size), self.sample_batch_size)

    def media_clouds(self, batch: dict | None, outputs: Any = None, n: int = 16) -> dict[str, torch.Tensor]:
        """Rows for :class:`pc3d.viz.callbacks.LogMedia`: real clouds and their autoencoder
        reconstructions (when a batch is given; the l-GAN's quality ceiling) and the fixed-noise
        samples, each (k, N, 3)."""
        media = {}
        if isinstance(batch, Mapping) and batch.get("points") is not None:
            real = batch["points"][:n]
            media["real"] = real
            media["reconstruction"] = self.decode(self.encode(real))
        media["sample"] = self.sample_fixed()
        return media

    # ------------------------------------------------------------------ training
    def _check_points(self, points: torch.Tensor) -> None:
        if points.dim() != 3 or points.shape[2] != 3:
            raise ValueError(f"LatentGAN: expected batch['points'] of shape (B, N, 3), got {tuple(points.shape)}")
        if self.n_points is not None and points.shape[1] != self.n_points:
            raise ValueError(f"LatentGAN: batch['points'] has {points.shape[1]} points per cloud but the "
                             f"autoencoder's decoder makes {self.n_points}; set data.n_points={self.n_points}")

    def setup(self, stage: str) -> None:
        """Check the data against the autoencoder: ``n_points`` and, when the AE checkpoint records
        it, ``normalize`` (``ValueError`` naming the keys to set)."""
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if dm is None:
            return
        n = getattr(dm, "n_points", None)
        if n is not None and self.n_points is not None and int(n) != self.n_points:
            raise ValueError(f"LatentGAN: data.n_points={n} but the autoencoder's decoder ({self.ae_ckpt_path}) makes "
                             f"{self.n_points} points; set data.n_points={self.n_points}")
        norm, ae_norm = getattr(dm, "normalize", None), (self._ae_data or {}).get("normalize")
        if norm is not None and ae_norm is not None and norm != ae_norm:
            raise ValueError(f"LatentGAN: data.normalize={norm} but the autoencoder ({self.ae_ckpt_path}) was trained "
                             f"with data.normalize={ae_norm}; use the same normalisation")

    def generator_loss(self, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_G = -mean D(fake)`` on generated latents ``fake`` (B, latent_dim); no logged parts."""
        return -self.critic(fake).mean(), {}

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if skip_flagged_batch(self, n_steps=self.n_critic + 1):  # non-finite input under nan_policy=skip
            return
        points = batch["points"]
        self._check_points(points)
        real = self._real_latents(batch)  # (B, latent_dim), frozen encoder, no graph
        logs = wgan_gp_iteration(self, real, self.noise_dim, self.generator_loss)
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=points.shape[0])

    # ------------------------------------------------------------------ validation / test
    def on_fit_start(self) -> None:
        """Forget cached latents: a new fit may index other data."""
        self._cache_w = self._cache_known = None

    def _real_latents(self, batch: dict) -> torch.Tensor:
        """The batch's latents: encoded now, or with ``latent_cache`` looked up by ``batch["index"]`` (each
        train item is encoded the first time it is seen, from the points sampled that time, and reused).

        Shapes: batch["points"] (B, N, 3), batch["index"] (B,) -> (B, latent_dim)"""
        points = batch["points"]
        if not self.latent_cache:
            return self.encode(points)
        index = batch.get("index")
        if index is None:
            raise ValueError("LatentGAN: latent_cache=true needs the dataset index of every item (batch['index']), "
                             "which pc3d's point-cloud datasets provide; this batch has keys "
                             f"{sorted(batch)}; set model.latent_cache=false")
        index = torch.as_tensor(index, device=points.device).long().reshape(-1)
        need = int(index.max()) + 1
        if self._cache_w is None or self._cache_w.shape[0] < need or self._cache_w.device != points.device:
            size = max(need, 2 * (0 if self._cache_w is None else self._cache_w.shape[0]))  # grow geometrically
            w = torch.zeros(size, self.latent_dim, device=points.device)
            known = torch.zeros(size, dtype=torch.bool, device=points.device)
            if self._cache_w is not None:
                n_old = min(size, self._cache_w.shape[0])
                w[:n_old], known[:n_old] = self._cache_w[:n_old].to(w), self._cache_known[:n_old].to(known)
            self._cache_w, self._cache_known = w, known
        new = ~self._cache_known[index]
        if bool(new.any()):
            self._cache_w[index[new]] = self.encode(points[new])
            self._cache_known[index[new]] = True
        return self._cache_w[index].clone()

    def _evaluate_stage(self, stage: str) -> None:
        refs = self._refs.take(self, stage, self.eval_every_n_epochs)  # None: nothing to evaluate now
        if refs is None:
            return
        bs = self.sample_batch_size
        w_fake = self._latents(seeded_noise(len(refs), self.noise_dim, self.eval_seed), bs)
        w_real = in_batches(self.encode, refs, bs, (self.latent_dim,), self.device)
        wasserstein = batched_critic_mean(self.critic, w_real, bs) - batched_critic_mean(self.critic, w_fake, bs)
        self.log_dict({f"{stage}/wasserstein": float(wasserstein)}, sync_dist=True)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        return wgan_optimizers(self.generator, self.critic, self.optimizer_g_factory, self.optimizer_d_factory,
                               betas=(0.5, 0.9))

    def param_counts(self) -> dict[str, int]:
        """Parameters of each network (the autoencoder's are frozen)."""
        return {name: sum(p.numel() for p in getattr(self, name).parameters())
                for name in ("generator", "critic", "autoencoder")}
