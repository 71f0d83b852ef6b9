"""Plain MLP building blocks shared by the fully connected networks (FCDecoder, the l-GAN nets)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["linear_stack", "reset_linears"]


def linear_stack(sizes: Sequence[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    """``Linear`` between consecutive ``sizes``, a fresh ``activation()`` after each but the last
    (a linear output). The Linears sit at the even indices (``0.weight``, ``2.weight``, ...).

    Shapes:
        input: (B, sizes[0]); output: (B, sizes[-1])
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def reset_linears(module: nn.Module) -> None:
    """Re-initialise every ``Linear`` directly inside ``module`` (PyTorch's default init)."""
    for m in module.children():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
