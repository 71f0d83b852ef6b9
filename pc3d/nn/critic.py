"""The tree-GAN critic (discriminator): a PointNet without normalisation layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CRITIC_MODES = ("faithful", "fixed")


class PointCritic(nn.Module):
    """WGAN critic of tree-GAN (Shu et al., ICCV 2019): per-point MLP, max-pool, MLP head -> score.

    ``h_i = LReLU(C_5 ... LReLU(C_1 p_i))`` for each point ``p_i`` (``C_k`` are ``Conv1d``
    with kernel 1, i.e. shared linear maps 3-64-128-256-512-1024, each followed by
    LeakyReLU(0.2)), ``g = max_i h_i``, then a head 1024-1024-512-512-1:

    * ``mode="faithful"`` (default): ``score = L_4 L_3 L_2 L_1 g``, no activation between the
      linears, exactly as the official code (the head is then one affine map in disguise);
      A side effect: the head's biases only add a constant to every score, which cancels out of
      the WGAN-GP losses, so they never receive a gradient;
    * ``mode="fixed"``: ``score = L_4 s(L_3 s(L_2 s(L_1 g)))`` with ``s = LeakyReLU(0.2)``,
      which is what the head was presumably meant to be.

    The per-point layers are stored as ``Conv1d`` (the official layout, weights ``(out, in, 1)``)
    but applied as linear maps on ``(B, N, C)``, which is the same computation.

    Both modes have the same parameters (2,536,065 with the defaults) and state-dict layout.
    No normalisation layers (they would break the per-sample gradient penalty of WGAN-GP).
    Parameters use PyTorch's default ``Conv1d``/``Linear`` init (``reset_parameters``).

    Args:
        in_dim: point dimension.
        conv: widths of the shared per-point layers.
        head: widths of the hidden linears of the head (the output has width 1).
        mode: ``"faithful"`` or ``"fixed"``.
        negative_slope: slope of the LeakyReLUs.

    Shapes:
        points: (B, N, in_dim)
        returns: (B, 1) scores (unbounded)
    """

    def __init__(
        self,
        in_dim: int = 3,
        conv: Sequence[int] = (64, 128, 256, 512, 1024),
        head: Sequence[int] = (1024, 512, 512),
        mode: str = "faithful",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if mode not in CRITIC_MODES:
            raise ValueError(f"PointCritic: mode must be one of {CRITIC_MODES}, got {mode!r}")
        conv = [int(c) for c in conv]
        head = [int(h) for h in head]
        if in_dim <= 0 or not conv or any(c <= 0 for c in (*conv, *head)):
            raise ValueError(f"PointCritic: sizes must be positive, got in_dim={in_dim}, conv={conv}, head={head}")
        self.in_dim = int(in_dim)
        self.conv_sizes = tuple(conv)
        self.head_sizes = tuple(head)
        self.mode = mode
        self.negative_slope = float(negative_slope)
        widths = [self.in_dim, *conv]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size=1) for a, b in zip(widths[:-1], widths[1:]))
        widths = [conv[-1], *head, 1]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def reset_parameters(self) -> None:
        for m in (*self.convs, *self.head):
            m.reset_parameters()

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """Max-pooled global feature, (B, N, in_dim) -> (B, conv[-1])."""
        if points.dim() != 3 or points.shape[2] != self.in_dim:
            raise ValueError(f"PointCritic: expected points of shape (B, N, {self.in_dim}), got {tuple(points.shape)}")
        # A kernel-1 Conv1d is a per-point linear map: apply its weights to the (B, N, C) layout
        # directly (same numbers, much faster on CPU than the convolution kernels).
        h = points
        for conv in self.convs:
            h = F.leaky_relu(F.linear(h, conv.weight[:, :, 0], conv.bias), self.negative_slope)
        return h.amax(dim=1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        h = self.features(points)
        last = len(self.head) - 1
        for k, lin in enumerate(self.head):
            h = lin(h)
            if self.mode == "fixed" and k < last:
                h = F.leaky_relu(h, self.negative_slope)
        return h

    def extra_repr(self) -> str:
        conv = "-".join(str(c) for c in (self.in_dim, *self.conv_sizes))
        head = "-".join(str(c) for c in (self.conv_sizes[-1], *self.head_sizes, 1))
        return f"mode={self.mode!r}, conv={conv} (LeakyReLU {self.negative_slope}), max-pool, head={head}"
