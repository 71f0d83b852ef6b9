"""The latent-GAN networks of Achlioptas et al. (ICML 2018): MLP generator and critic on AE latents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pc3d.nn._mlp import linear_stack, reset_linears

__all__ = ["LatentCritic", "LatentGenerator"]


def _check_sizes(name: str, **sizes: int | Sequence[int]) -> None:
    bad = {k: v for k, v in sizes.items()
           if (isinstance(v, int) and v <= 0) or (not isinstance(v, int) and (any(h <= 0 for h in v)))}
    if bad:
        raise ValueError(f"{name}: sizes must be positive, got " + ", ".join(f"{k}={v!r}" for k, v in sizes.items()))


class LatentGenerator(nn.Module):
    """l-GAN generator (Achlioptas et al., ICML 2018, "Learning Representations and Generative
    Models for 3D Point Clouds"): an MLP from noise to the latent space of a pretrained autoencoder.

    ``h_0 = z``, ``h_k = ReLU(W_k h_{k-1} + b_k)`` for the hidden layers, and a linear output
    ``w = W_out h_K + b_out`` (no output activation: AE latents are not bounded to a range;
    the default PointNet encoder ends with a ReLU + max-pool, so they are >= 0, which the
    generator learns). Sizes default to ``noise 128 -> 256 -> 512 -> latent_dim``. The paper's
    own l-GAN used a narrower generator (128 -> 128 -> latent); the wider default is pc3d's.
    The generated latent is decoded into a cloud by the autoencoder's decoder (see
    :class:`pc3d.models.LatentGAN`).

    Parameters use PyTorch's default ``Linear`` init (:meth:`reset_parameters`).

    Args:
        noise_dim: size of the input noise ``z``.
        latent_dim: size of the output latent (the autoencoder's ``latent_dim``).
        hidden: widths of the hidden layers (may be empty: one linear map).

    Shapes:
        z: (B, noise_dim)
        returns: (B, latent_dim)
    """

    def __init__(self, noise_dim: int = 128, latent_dim: int = 128, hidden: Sequence[int] = (256, 512)) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        _check_sizes("LatentGenerator", noise_dim=int(noise_dim), latent_dim=int(latent_dim), hidden=hidden)
        self.noise_dim = int(noise_dim)
        self.latent_dim = int(latent_dim)
        self.hidden = hidden
        self.mlp = linear_stack((self.noise_dim, *hidden, self.latent_dim), lambda: nn.ReLU(inplace=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_linears(self.mlp)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"LatentGenerator: expected z of shape (B, {self.noise_dim}), got {tuple(z.shape)}")
        return self.mlp(z)

    def extra_repr(self) -> str:
        sizes = " -> ".join(str(s) for s in (self.noise_dim, *self.hidden, self.latent_dim))
        return f"mlp={sizes}, activation=ReLU, output=linear"


class LatentCritic(nn.Module):
    """l-GAN critic (Achlioptas et al., ICML 2018): an MLP from an AE latent to a WGAN score.

    ``h_0 = w``, ``h_k = LeakyReLU_s(W_k h_{k-1} + b_k)`` for the hidden layers (slope ``s``,
    0.2 by default) and a linear output ``D(w) = W_out h_K + b_out`` (an unbounded Wasserstein
    critic score, no sigmoid). Sizes default to ``latent_dim -> 512 -> 256 -> 1``. No
    normalisation layers: the WGAN-GP penalty (Gulrajani et al. 2017) is per sample and batch
    statistics would couple the samples.

    Parameters use PyTorch's default ``Linear`` init (:meth:`reset_parameters`).

    Args:
        latent_dim: size of the input latent.
        hidden: widths of the hidden layers (may be empty: one linear map).
        negative_slope: slope of the LeakyReLUs.

    Shapes:
        w: (B, latent_dim)
        returns: (B, 1)
    """

    def __init__(self, latent_dim: int = 128, hidden: Sequence[int] = (512, 256), negative_slope: float = 0.2) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        _check_sizes("LatentCritic", latent_dim=int(latent_dim), hidden=hidden)
        if negative_slope < 0:
            raise ValueError(f"LatentCritic: negative_slope must be >= 0, got {negative_slope}")
        self.latent_dim = int(latent_dim)
        self.hidden = hidden
        self.negative_slope = float(negative_slope)
        self.mlp = linear_stack((self.latent_dim, *hidden, 1), lambda: nn.LeakyReLU(self.negative_slope))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_linears(self.mlp)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.dim() != 2 or w.shape[1] != self.latent_dim:
            raise ValueError(f"LatentCritic: expected w of shape (B, {self.latent_dim}), got {tuple(w.shape)}")
        return self.mlp(w)

    def extra_repr(self) -> str:
        sizes = " -> ".join(str(s) for s in (self.latent_dim, *self.hidden, 1))
        return f"mlp={sizes}, activation=LeakyReLU({self.negative_slope}), output=linear"
