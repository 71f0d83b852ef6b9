"""Tree-structured graph convolution (TreeGCN), the layer of the tree-GAN generator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Initialisations of :class:`TreeGCN` (``"official"``: the published code's scales).
INITS = ("official", "node")
#: Scalings of the ancestor sum of eq. (2).
ANCESTOR_SCALES = ("sum", "mean")


class TreeGCN(nn.Module):
    """One level of the tree-GAN generator: graph convolution over ancestors, then branching.

    Shu, Park and Kwon, "3D Point Cloud Generative Adversarial Network Based on Tree Structured
    Graph Convolutions", ICCV 2019 (arXiv:1905.06292), eqs. (2)-(4); faithful to the layout of
    the official implementation (parameter shapes and initialisation).

    Layer ``l`` (``depth = l``) sees the whole tree so far ``[x_0, ..., x_l]``, where level ``j``
    holds ``x_j`` of shape ``(B, N_j, F_j)`` and node ``i`` of level ``l`` descends from node
    ``i // (N_l / N_j)`` of level ``j`` (children are stored consecutively). With
    ``F = F_l = in_features``, ``F' = F_{l+1} = out_features``, degree ``d`` and support ``K``:

    * ancestor term (eq. 2), one bias-free ``W_root_j : F_j -> F'`` per level ``j <= l``::

          a_i = sum_{j=0..l} W_root_j x_j[anc_j(i)]                      (B, N_l, F')

    * branching (eq. 4), one weight ``W_branch[i]`` of shape ``(F, d*F)`` per node ``i``::

          c_{i,k} = LeakyReLU_0.2( (x_l[i] W_branch[i])[k*F:(k+1)*F] )   k = 0..d-1

      giving ``N_l * d`` children, child ``k`` of node ``i`` at index ``i*d + k``;

    * loop term with support ``K`` (eq. 3): ``U = W_loop2 W_loop1`` with bias-free
      ``W_loop1 : F -> K*F`` and ``W_loop2 : K*F -> F'`` and nothing between them;

    * output::

          y_{i*d+k} = sigma( U c_{i,k} + a_i + b_k )                     (B, N_l*d, F')

      with ``sigma = LeakyReLU(0.2)``; the last layer (``activation=False``) uses neither
      the bias nor the activation: ``y = U c + a``.

    The bias has one row per child slot, ``b`` of shape ``(d, F')``, as in the official code.
    The official code also creates that bias in the last layer and never uses it; it is kept
    here as a *frozen* parameter (``requires_grad=False``) so that the parameter count
    (40,690,272 for the default generator) and the state-dict layout match the official model
    while optimizers and DDP ignore it.

    Speed: the loop term's two maps have nothing between them, so by default
    (``fuse_loop=True``) their product ``U`` (``F' x F``) is formed once per call and applied to
    the children, instead of going through the ``K*F``-wide hidden layer for every child. The
    parameters and the outputs are the same up to float rounding; ``fuse_loop=False`` applies
    the two maps one after the other like the official code.

    Init (``reset_parameters``), ``init="official"``: ``W_branch`` Xavier-uniform with the ReLU
    gain over the fans of the whole 3-D tensor as torch computes them (``fan_in = F * d*F``,
    ``fan_out = N_l * d*F``), ``b`` uniform(+-1/sqrt(F')), ``W_root_j`` and the loop maps
    PyTorch's default ``nn.Linear`` init. With those fans the branch weights are tiny (std
    ~0.01 in a 1024-point decoder), so at init every child sits on its parent and a whole cloud
    starts as one clump that Chamfer training has to pull apart (the clump-plus-halo
    reconstructions of a TreeGCN autoencoder, experiments/RESULTS.md).

    ``init="node"`` fixes the scale: each node's branch matrix ``(F, d*F)`` gets its own
    Xavier-uniform fans with the LeakyReLU gain (``fan_in = F``, ``fan_out = d*F``), and the
    loop product ``U`` is scaled to unit gain (``W_loop1`` Kaiming-uniform, ``W_loop2``
    Xavier-uniform over ``K*F -> F'``), so siblings differ from the first step on.

    Ancestor scale: ``ancestor_scale="sum"`` is eq. (2) as published; ``"mean"`` divides the
    sum of the ``l + 1`` ancestor terms by ``l + 1``, so the root term's scale does not grow
    with depth (one ancestor dominating every descendant's position is the other face of the
    clump).

    Args:
        depth: index ``l`` of this layer (it has ``l + 1`` ancestor maps).
        features: the generator's feature sizes ``[F_0, ..., F_L]``; this layer maps
            ``features[depth] -> features[depth + 1]``.
        degrees: the generator's branching degrees; this layer uses ``degrees[depth]`` and
            has ``prod(degrees[:depth])`` input nodes.
        support: ``K``, the width factor of the loop term.
        activation: ``False`` for the last layer (no bias, no activation).
        negative_slope: slope of the LeakyReLUs.
        fuse_loop: apply the product of the two loop maps (see Speed).
        init: ``"official"`` (the published code's scales) or ``"node"`` (per-node fans; see Init).
        ancestor_scale: ``"sum"`` (eq. 2) or ``"mean"`` (the sum divided by ``depth + 1``).

    Shapes:
        tree: a sequence of ``depth + 1`` tensors, ``tree[j]`` of shape
            ``(B, prod(degrees[:j]), features[j])``
        returns: ``(B, prod(degrees[:depth + 1]), features[depth + 1])``
    """

    def __init__(
        self,
        depth: int,
        features: Sequence[int],
        degrees: Sequence[int],
        support: int = 10,
        activation: bool = True,
        negative_slope: float = 0.2,
        fuse_loop: bool = True,
        init: str = "official",
        ancestor_scale: str = "sum",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"TreeGCN: init must be one of {INITS}, got {init!r}")
        if ancestor_scale not in ANCESTOR_SCALES:
            raise ValueError(f"TreeGCN: ancestor_scale must be one of {ANCESTOR_SCALES}, got {ancestor_scale!r}")
        features = [int(f) for f in features]
        degrees = [int(d) for d in degrees]
        if not 0 <= depth < len(features) - 1 or depth >= len(degrees):
            raise ValueError(f"TreeGCN: depth={depth} out of range for features={features}, degrees={degrees}")
        if any(f <= 0 for f in features) or any(d <= 0 for d in degrees) or support <= 0:
            raise ValueError(f"TreeGCN: sizes must be positive, got features={features}, "
                             f"degrees={degrees}, support={support}")
        self.depth = int(depth)
        self.in_features = features[depth]
        self.out_features = features[depth + 1]
        self.ancestor_features = tuple(features[: depth + 1])
        self.ancestor_nodes = tuple(math.prod(degrees[:j]) for j in range(depth + 1))
        self.degree = degrees[depth]
        self.nodes = self.ancestor_nodes[-1]
        self.support = int(support)
        self.activation = bool(activation)
        self.negative_slope = float(negative_slope)
        self.fuse_loop = bool(fuse_loop)
        self.init = init
        self.ancestor_scale = ancestor_scale

        f_in, f_out = self.in_features, self.out_features
        self.W_root = nn.ModuleList(nn.Linear(f, f_out, bias=False) for f in self.ancestor_features)
        self.W_branch = nn.Parameter(torch.empty(self.nodes, f_in, self.degree * f_in))
        self.W_loop = nn.Sequential(
            nn.Linear(f_in, self.support * f_in, bias=False),
            nn.Linear(self.support * f_in, f_out, bias=False),
        )
        # Unused (and frozen) in the last layer; kept for the official parameter layout.
        self.bias = nn.Parameter(torch.empty(self.degree, f_out), requires_grad=self.activation)
        self.reset_parameters()

    @property
    def out_nodes(self) -> int:
        """Number of nodes this layer outputs: ``nodes * degree``."""
        return self.nodes * self.degree

    def reset_parameters(self) -> None:
        for lin in self.W_root:
            lin.reset_parameters()
        for lin in self.W_loop:
            lin.reset_parameters()
        if self.init == "official":
            nn.init.xavier_uniform_(self.W_branch, gain=nn.init.calculate_gain("relu"))
        else:  # per-node fans: fan_in = F, fan_out = d*F
            gain = nn.init.calculate_gain("leaky_relu", self.negative_slope)
            f_in, f_br = self.W_branch.shape[1], self.W_branch.shape[2]
            bound = gain * math.sqrt(6.0 / (f_in + f_br))
            with torch.no_grad():
                self.W_branch.uniform_(-bound, bound)
            nn.init.kaiming_uniform_(self.W_loop[0].weight, a=self.negative_slope, nonlinearity="leaky_relu")
            nn.init.xavier_uniform_(self.W_loop[1].weight)
            with torch.no_grad():  # unit gain of U = W_loop2 W_loop1 (W_loop1's gain is ~sqrt(2))
                self.W_loop[0].weight.mul_(1.0 / nn.init.calculate_gain("leaky_relu", self.negative_slope))
        bound = 1.0 / math.sqrt(self.out_features)
        with torch.no_grad():
            self.bias.uniform_(-bound, bound)

    def _check(self, tree: Sequence[torch.Tensor]) -> None:
        if len(tree) != self.depth + 1:
            raise ValueError(f"TreeGCN(depth={self.depth}): expected a tree of {self.depth + 1} levels, "
                             f"got {len(tree)}")
        batch = tree[0].shape[0] if tree[0].dim() == 3 else None
        for j, (x, n, f) in enumerate(zip(tree, self.ancestor_nodes, self.ancestor_features)):
            if x.dim() != 3 or x.shape[1:] != (n, f) or x.shape[0] != batch:
                raise ValueError(f"TreeGCN(depth={self.depth}): tree[{j}] must have shape (B, {n}, {f}), "
                                 f"got {tuple(x.shape)}")

    def loop_weight(self) -> torch.Tensor:
        """The loop term as one matrix ``U = W_loop2 W_loop1`` of shape ``(F', F)``."""
        return self.W_loop[1].weight @ self.W_loop[0].weight

    def forward(self, tree: Sequence[torch.Tensor]) -> torch.Tensor:
        self._check(tree)
        x = tree[-1]
        b = x.shape[0]
        n, d, f_in, f_out = self.nodes, self.degree, self.in_features, self.out_features

        # ancestor term (B, N_l, F'): each ancestor level mapped, then repeated to its descendants
        root = None
        for lin, xj, nj in zip(self.W_root, tree, self.ancestor_nodes):
            term = lin(xj)  # (B, N_j, F')
            if nj != n:
                term = term.unsqueeze(2).expand(b, nj, n // nj, f_out).reshape(b, n, f_out)
            root = term if root is None else root + term
        if self.ancestor_scale == "mean" and len(tree) > 1:
            root = root / len(tree)

        # branching: per-node weights, (B, N, F) x (N, F, d*F) -> (B, N, d*F) -> (B, N*d, F)
        children = torch.einsum("bnf,nfg->bng", x, self.W_branch).reshape(b, n * d, f_in)
        children = F.leaky_relu(children, self.negative_slope)

        # loop term (B, N*d, F')
        if self.fuse_loop:
            loop = F.linear(children, self.loop_weight())
        else:
            loop = self.W_loop(children)

        out = loop.view(b, n, d, f_out) + root.unsqueeze(2)
        if self.activation:
            out = F.leaky_relu(out + self.bias, self.negative_slope)
        return out.reshape(b, n * d, f_out)

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, features={self.in_features}->{self.out_features}, "
                f"nodes={self.nodes}->{self.out_nodes} (degree {self.degree}), support={self.support}, "
                f"ancestors={list(self.ancestor_features)}, W_branch={tuple(self.W_branch.shape)}, "
                f"bias={tuple(self.bias.shape)}{'' if self.activation else ' (unused, frozen)'}, "
                f"activation={self.activation}, fuse_loop={self.fuse_loop}, init={self.init!r}, "
                f"ancestor_scale={self.ancestor_scale!r}")
