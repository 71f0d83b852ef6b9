"""The tree-GAN generator: a stack of TreeGCN layers from one latent node to N points."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pc3d.nn.treegcn import TreeGCN


class TreeGenerator(nn.Module):
    """Tree-GAN generator (Shu et al., ICCV 2019): latent code -> point cloud via TreeGCN layers.

    The latent ``z`` is the single root node of a tree (level 0, ``F_0 = features[0]``); layer
    ``l`` (a :class:`TreeGCN`) maps level ``l`` to level ``l + 1`` with ``degrees[l]`` children
    per node, so level ``l`` has ``prod(degrees[:l])`` nodes and the leaves, ``N =
    prod(degrees)`` of them with ``features[-1] = 3`` features, are the points. Every layer
    branches; the last one has no bias and no activation.

    Defaults are the paper's: features [96, 256, 256, 256, 128, 128, 128, 3], degrees
    [1, 2, 2, 2, 2, 2, 64], support 10: node counts 1, 1, 2, 4, 8, 16, 32, 2048 and
    40,690,272 parameters (40,690,080 trainable; see :class:`TreeGCN` for the frozen bias of the
    last layer). Any lists with ``len(features) == len(degrees) + 1`` work.

    Args:
        features: feature size per tree level; ``features[0]`` is the latent size and
            ``features[-1]`` the point dimension (3).
        degrees: children per node for each layer.
        support: ``K`` of the loop term.
        n_points: optional; if given it must equal ``prod(degrees)`` (links configs to the data).
        negative_slope: slope of the LeakyReLUs.
        fuse_loop: see :class:`TreeGCN` (same outputs, faster).
        init, ancestor_scale: see :class:`TreeGCN`; ``"official"`` and ``"sum"`` are the paper's
            layout (experiments/RESULTS.md has the ablation).

    Attributes: ``latent_dim`` (= ``features[0]``), ``n_points`` (= ``prod(degrees)``),
    ``node_counts`` (nodes per level, ``len(features)`` entries).

    Shapes:
        z: (B, latent_dim) (or (B, 1, latent_dim))
        returns: (B, n_points, features[-1])
    """

    #: Arguments that change the function without changing any weight's shape, with their defaults:
    #: weights move between two generators (warm starts) only when these agree.
    RULE_ARGS = {"ancestor_scale": "sum"}

    def __init__(
        self,
        features: Sequence[int] = (96, 256, 256, 256, 128, 128, 128, 3),
        degrees: Sequence[int] = (1, 2, 2, 2, 2, 2, 64),
        support: int = 10,
        n_points: int | None = None,
        negative_slope: float = 0.2,
        fuse_loop: bool = True,
        init: str = "official",
        ancestor_scale: str = "sum",
    ) -> None:
        super().__init__()
        features = [int(f) for f in features]
        degrees = [int(d) for d in degrees]
        if len(features) != len(degrees) + 1 or not degrees:
            raise ValueError(f"TreeGenerator: need len(features) == len(degrees) + 1 >= 2, got "
                             f"features={features} and degrees={degrees}")
        if n_points is not None and int(n_points) != math.prod(degrees):
            raise ValueError(f"TreeGenerator: n_points={n_points} but the degrees {degrees} give "
                             f"prod(degrees)={math.prod(degrees)} points")
        self.features = tuple(features)
        self.degrees = tuple(degrees)
        self.support = int(support)
        self.init = init
        self.ancestor_scale = ancestor_scale
        self.latent_dim = features[0]
        self.n_points = math.prod(degrees)
        self.node_counts = tuple(math.prod(degrees[:j]) for j in range(len(features)))
        last = len(degrees) - 1
        self.layers = nn.ModuleList(
            TreeGCN(l, features, degrees, support=support, activation=l != last,
                    negative_slope=negative_slope, fuse_loop=fuse_loop, init=init,
                    ancestor_scale=ancestor_scale)
            for l in range(len(degrees))
        )

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, z: torch.Tensor, return_tree: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Generate clouds from latents; ``return_tree=True`` returns every level ``[x_0, .., x_L]``."""
        if z.dim() == 3 and z.shape[1] == 1:
            z = z[:, 0]
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"TreeGenerator: expected z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        tree = [z.unsqueeze(1)]
        for layer in self.layers:
            tree.append(layer(tree))
        return tree if return_tree else tree[-1]

    def extra_repr(self) -> str:
        return (f"features={list(self.features)}, degrees={list(self.degrees)}, support={self.support}, "
                f"nodes={list(self.node_counts)}, init={self.init!r}, ancestor_scale={self.ancestor_scale!r}")
