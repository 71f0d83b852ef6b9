"""Shape checks shared by the public networks and ops."""

from __future__ import annotations

import torch


def check_cloud(x: torch.Tensor, name: str = "points", dims: int = 3) -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty ``(B, N, dims)`` floating tensor.

    Shapes:
        x: (B, N, dims)
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, N, {dims}), got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != dims:
        raise ValueError(f"{name}: expected shape (B, N, {dims}), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty (B, N, {dims}) tensor, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
