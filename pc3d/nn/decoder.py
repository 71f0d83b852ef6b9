"""Point-cloud decoders (no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pc3d.nn._mlp import linear_stack, reset_linears


class FCDecoder(nn.Module):
    """Fully connected decoder: latent code -> N x 3 coordinates in one shot.

    The decoder of Achlioptas et al. (ICML 2018): ``latent -> 256 -> 256 -> N*3`` with ReLU
    between the hidden layers and a linear output layer, reshaped to N points:

        y = reshape(W_out ReLU(W_2 ReLU(W_1 z + b_1) + b_2) + b_out, (N, 3))

    Shapes:
        z: (B, latent_dim)
        returns: (B, n_points, 3)
    """

    def __init__(self, latent_dim: int = 128, n_points: int = 2048, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        if latent_dim <= 0 or n_points <= 0 or any(h <= 0 for h in hidden):
            raise ValueError(f"FCDecoder: sizes must be positive, got latent_dim={latent_dim}, "
                             f"n_points={n_points}, hidden={list(hidden)}")
        self.latent_dim = int(latent_dim)
        self.n_points = int(n_points)
        self.hidden = tuple(int(h) for h in hidden)
        # Linear / ReLU pairs, linear output: the weights are mlp.0, mlp.2, ... (checkpoint key names)
        self.mlp = linear_stack((self.latent_dim, *self.hidden, self.n_points * 3), lambda: nn.ReLU(inplace=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_linears(self.mlp)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"FCDecoder: expected z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.mlp(z).view(z.shape[0], self.n_points, 3)

    def extra_repr(self) -> str:
        sizes = " -> ".join(str(s) for s in (self.latent_dim, *self.hidden))
        return f"mlp={sizes} -> {self.n_points}x3"
