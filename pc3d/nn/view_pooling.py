"""Pooling of per-view latents into one latent per object (multi-view reconstruction, issue 16)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AttentionViewPooling", "check_view_mask", "mean_view_pooling"]


def check_view_mask(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Validate per-view latents ``z`` (B, V, D) and a view mask (B, V) (``None``: every view valid).

    Returns the mask as a bool tensor on ``z``'s device. Raises ``ValueError`` naming the expected
    shapes, or when an object has no valid view.
    """
    if z.dim() != 3:
        raise ValueError(f"view pooling: expected latents of shape (B, V, D), got {tuple(z.shape)}")
    if mask is None:
        return torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
    if tuple(mask.shape) != tuple(z.shape[:2]):
        raise ValueError(f"view pooling: expected a mask of shape (B, V) = {tuple(z.shape[:2])}, got "
                         f"{tuple(mask.shape)}")
    mask = mask.to(device=z.device, dtype=torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("view pooling: every object needs at least one valid view (a mask row is all False)")
    return mask


def mean_view_pooling(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean over views: ``sum_v m_v z_v / sum_v m_v``.

    Shapes:
        z: (B, V, D); mask: (B, V) bool or None -> (B, D)
    """
    mask = check_view_mask(z, mask)
    if bool(mask.all()):
        return z.mean(dim=1)
    m = mask.to(z.dtype).unsqueeze(-1)
    return (z * m).sum(dim=1) / m.sum(dim=1)


class AttentionViewPooling(nn.Module):
    """Learned attention pooling over views (Ilse et al., "Attention-based deep multiple instance
    learning", ICML 2018, the plain non-gated form).

    A small MLP scores each view's latent, a softmax over the valid views turns the scores into
    weights, and the pooled latent is the weighted sum::

        s_v = w_2^T tanh(W_1 z_v + b_1) + b_2,   a = softmax_{v: m_v}(s),   z = sum_v a_v z_v

    Masked views (``m_v`` False: padding when objects have different view counts) get weight 0.
    With one valid view the weight is exactly 1, so a single view passes through unchanged.

    Shapes:
        z: (B, V, latent_dim); mask: (B, V) bool or None
        forward -> (B, latent_dim); weights -> (B, V), rows summing to 1
    """

    def __init__(self, latent_dim: int, hidden: int = 64) -> None:
        super().__init__()
        if int(latent_dim) <= 0 or int(hidden) <= 0:
            raise ValueError(f"AttentionViewPooling: sizes must be positive, got latent_dim={latent_dim}, "
                             f"hidden={hidden}")
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.score = nn.Sequential(nn.Linear(self.latent_dim, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.score:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        nn.init.zeros_(self.score[2].weight)  # start as the mean; the scores are learned from there
        nn.init.zeros_(self.score[2].bias)

    def weights(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights (B, V) over the views of ``z`` (B, V, D); 0 on masked views."""
        mask = check_view_mask(z, mask)
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"AttentionViewPooling: expected latents of shape (B, V, {self.latent_dim}), got "
                             f"{tuple(z.shape)}")
        s = self.score(z).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.softmax(s, dim=1)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        a = self.weights(z, mask)
        return torch.einsum("bv,bvd->bd", a, z)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, hidden={self.hidden}"
