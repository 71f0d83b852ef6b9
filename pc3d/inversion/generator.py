"""The pretrained generator as an inversion prior: :class:`InvertibleGenerator`."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["InvertibleGenerator", "slerp"]


def slerp(z0: Tensor, z1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical interpolation of latents (the natural path between two Gaussian noise vectors:
    it keeps their norm near the shell where ``N(0, I)`` puts its mass). Falls back to linear
    interpolation for (nearly) parallel vectors; ``t = 0`` and ``t = 1`` return ``z0`` and ``z1`` exactly.

    Shapes:
        z0, z1: ``(D,)`` or ``(B, D)``; t: scalar or ``(T,)`` -> ``(D,)`` / ``(B, D)`` for a scalar,
        ``(T, D)`` / ``(T, B, D)`` for a vector of ``T`` values.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    if t.dim() == 1:
        return torch.stack([slerp(z0, z1, ti) for ti in t])
    if float(t) == 0.0:
        return z0.clone()
    if float(t) == 1.0:
        return z1.clone()
    a, b = z0 / z0.norm(dim=-1, keepdim=True).clamp_min(1e-12), z1 / z1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.acos((a * b).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    lin = (1 - t) * z0 + t * z1
    sph = torch.sin((1 - t) * omega) / so.clamp_min(1e-8) * z0 + torch.sin(t * omega) / so.clamp_min(1e-8) * z1
    return torch.where(so.abs() < 1e-6, lin, sph)


class InvertibleGenerator(nn.Module):
    """A pretrained point-cloud generator ``G: z -> cloud`` wrapped for GAN inversion (ShapeInversion,
    Zhang et al., CVPR 2021): the latent ``z`` (and, per shape, ``G``'s weights) are optimised so
    that ``G(z)`` matches an observed cloud.

    Parts:

    * ``net``: the generator network (a private copy: tuning never touches the loaded model).
      From an l-GAN (:class:`pc3d.models.LatentGAN`) it is ``decoder ∘ generator``: ``z`` is the
      l-GAN's noise ``(B, noise_dim)``, the l-GAN's MLP maps it to an autoencoder latent and the
      autoencoder's decoder to a cloud; both are tuned in the ``G`` stage (the decoder holds the
      shape detail). From a tree-GAN (:class:`pc3d.models.TreeGAN`) it is the
      :class:`pc3d.nn.TreeGenerator`.
    * ``feature_net``: the frozen cloud-level feature extractor of the "critic feature distance"
      (ShapeInversion's discriminator feature loss). Tree-GAN: the :class:`pc3d.nn.PointCritic`'s
      max-pooled global feature (``critic.features``, the input of its head). l-GAN: its critic
      sees autoencoder latents, not clouds, so the feature net is the autoencoder's PointNet
      **encoder** (its max-pooled latent; BatchNorm in eval mode) - the cloud-level features that
      the l-GAN's critic was trained on.
    * ``prior(z)``: the negative log-likelihood of the noise distribution ``N(0, I)`` up to a
      constant, normalised by the dimension: ``0.5 * ||z||^2 / z_dim``.

    Per-shape weights: :meth:`tunable_parameters` gives ``G``'s parameters; :meth:`forward` with
    ``params`` (each tensor with a leading batch axis, one copy per shape) evaluates every shape
    with its own weights through :func:`torch.func.functional_call`, vectorised by
    :func:`torch.func.vmap` (``batching="vmap"``) or looped shape by shape (``batching="loop"``;
    the fallback for networks vmap cannot trace).

    Shapes:
        forward(z, params=None): z ``(B, z_dim)`` -> ``(B, N, 3)``; params: ``{name: (B, *p.shape)}``
        features(clouds): ``(B, M, 3)`` -> ``(B, F)``
        prior(z): ``(B, z_dim)`` -> ``(B,)``
        sample_z(n): -> ``(n, z_dim)``
    """

    def __init__(self, net: nn.Module, feature_net: nn.Module, z_dim: int, n_points: int | None = None,
                 *, source: str = "", batching: str = "vmap") -> None:
        super().__init__()
        if batching not in ("vmap", "loop"):
            raise ValueError(f"batching must be vmap or loop, got {batching!r}")
        self.net = net.eval()
        self.feature_net = feature_net.eval()
        for p in self.feature_net.parameters():
            p.requires_grad_(False)
        for p in self.net.parameters():  # the base weights stay fixed; tuning works on per-shape copies
            p.requires_grad_(False)
        self.z_dim = int(z_dim)
        self.n_points = None if n_points is None else int(n_points)
        self.source = source
        self.batching = batching

    def train(self, mode: bool = True) -> InvertibleGenerator:
        """Always eval mode (BatchNorm statistics of the frozen parts never change)."""
        return super().train(False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model: nn.Module, *, source: str = "") -> InvertibleGenerator:
        """From a loaded :class:`pc3d.models.LatentGAN` or :class:`pc3d.models.TreeGAN` (copied)."""
        ae = getattr(model, "autoencoder", None)
        if ae is not None and hasattr(model, "noise_dim") and hasattr(model, "generator"):
            net = nn.Sequential(copy.deepcopy(model.generator), copy.deepcopy(ae.decoder))
            return cls(net, copy.deepcopy(ae.encoder), int(model.noise_dim), getattr(model, "n_points", None),
                       source=source)
        critic = getattr(model, "critic", None)
        gen = getattr(model, "generator", None)
        if gen is not None and critic is not None and callable(getattr(critic, "features", None)):
            return cls(copy.deepcopy(gen), _CriticFeatures(copy.deepcopy(critic)), int(model.latent_dim),
                       getattr(gen, "n_points", None), source=source)
        raise ValueError(f"{source or type(model).__name__}: cannot invert a {type(model).__name__}: expected an "
                         "l-GAN (pc3d.models.LatentGAN) or a tree-GAN (pc3d.models.TreeGAN) checkpoint")

    @classmethod
    def from_checkpoint(cls, spec: str | os.PathLike = "pretrained:lgan",
                        map_location: str | torch.device = "cpu") -> InvertibleGenerator:
        """From a ``pc3d-train`` checkpoint, a ``.safetensors`` file or ``pretrained:<name>`` (default: the
        shipped l-GAN). Raises ``FileNotFoundError`` / ``ValueError`` naming ``ckpt_path``."""
        from pc3d import pretrained
        from pc3d.models.io import load_model

        path = pretrained.resolve(str(spec))
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={spec}: no such checkpoint file")
        model = load_model(path, map_location=map_location)
        return cls.from_model(model, source=f"ckpt_path={spec}").to(map_location)

    # ------------------------------------------------------------------ the three functions
    def tunable_parameters(self) -> dict[str, Tensor]:
        """``G``'s parameters by name (detached views of the base weights)."""
        return {k: v.detach() for k, v in self.net.named_parameters()}

    def forward(self, z: Tensor, params: Mapping[str, Tensor] | None = None) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z: expected shape (B, {self.z_dim}), got {tuple(z.shape)}")
        if params is None:
            return self.net(z)
        from torch.func import functional_call, vmap

        params = dict(params)
        if self.batching == "vmap":
            def one(p: dict[str, Tensor], zb: Tensor) -> Tensor:
                return functional_call(self.net, p, (zb[None],))[0]

            return vmap(one)(params, z)
        return torch.cat([functional_call(self.net, {k: v[b] for k, v in params.items()}, (z[b: b + 1],))
                          for b in range(z.shape[0])])

    def features(self, clouds: Tensor) -> Tensor:
        """Cloud-level features of the frozen feature net (differentiable w.r.t. ``clouds``): (B, M, 3) -> (B, F)."""
        if clouds.dim() != 3 or clouds.shape[-1] != 3:
            raise ValueError(f"clouds: expected shape (B, M, 3), got {tuple(clouds.shape)}")
        return self.feature_net(clouds)

    def prior(self, z: Tensor) -> Tensor:
        """``0.5 * ||z||^2 / z_dim`` per latent: the N(0, I) negative log-likelihood (up to a constant) per dimension.

        Shapes: ``(B, z_dim)`` -> ``(B,)``."""
        return 0.5 * z.square().sum(-1) / self.z_dim

    def sample_z(self, n: int, seed: int | None = None, device: torch.device | str | None = None) -> Tensor:
        """``n`` latents from ``N(0, I)``, drawn on the CPU from ``torch.Generator().manual_seed(seed)``."""
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.z_dim, generator=gen).to(device or self._device())

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def expected_norm(self) -> float:
        """``E||z||`` ~ ``sqrt(z_dim)`` for N(0, I) noise."""
        return math.sqrt(self.z_dim)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, n_points={self.n_points}, source={self.source!r}, batching={self.batching!r}"


class _CriticFeatures(nn.Module):
    """A :class:`pc3d.nn.PointCritic`'s max-pooled global feature as a module (``critic.features``)."""

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = critic

    def forward(self, clouds: Tensor) -> Tensor:
        return self.critic.features(clouds)
