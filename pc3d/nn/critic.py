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

    Speed, ``critical_points=True`` (default): the score depends on the per-point features only
    through ``g``, and ``g = max_{i in S} h_i`` where ``S`` is the set of *critical points*, those
    attaining the max of at least one channel (all tied points included; at most ``conv[-1]``
    points, usually a few hundred). Whenever gradients are needed (grad mode on and the points or
    any parameter require grad) :meth:`features` therefore (1) runs the per-point layers on all
    ``N`` points without autograd to find ``S`` (:meth:`critical_mask`), (2) gathers the critical
    points of each cloud, padded to a common count ``M = max_b |S_b|`` with *non-critical* points
    of the same cloud, and (3) runs the differentiable per-point layers and the max-pool on those
    ``M`` points only. This is exact, not an approximation:

    * the forward value is the same max (the padding lies strictly below the max in every channel);
    * the max-pool's backward sends gradient only to the points attaining each channel's max,
      split evenly among ties; all of them are in the subset with the same multiplicities, so
      the gradient w.r.t. every point is the same (and exactly zero outside ``S``, where the
      gather's backward leaves zeros), and so is every parameter gradient;
    * the gradient penalty's double backward is ordinary autograd through the same graph
      (restricted to rows that carry nonzero gradient), so its value and parameter gradients are
      the same too.

    Up to float rounding (the subset's matrix products may round differently from the full
    ones, as any two layouts do). The backward passes (critic loss, gradient penalty, generator
    step) then cost ``M / N`` of the full ones, at the price of one extra gradient-free pass.
    Without gradients (inference) the plain one-pass path is used; ``critical_points=False``
    always uses it.

    Both modes have the same parameters (2,536,065 with the defaults) and state-dict layout
    (``critical_points`` changes neither).
    No normalisation layers (they would break the per-sample gradient penalty of WGAN-GP).
    Parameters use PyTorch's default ``Conv1d``/``Linear`` init (``reset_parameters``).

    Args:
        in_dim: point dimension.
        conv: widths of the shared per-point layers.
        head: widths of the hidden linears of the head (the output has width 1).
        mode: ``"faithful"`` or ``"fixed"``.
        negative_slope: slope of the LeakyReLUs.
        critical_points: compute gradients through the critical points only (see Speed).

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
        critical_points: bool = True,
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
        self.critical_points = bool(critical_points)
        widths = [self.in_dim, *conv]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size=1) for a, b in zip(widths[:-1], widths[1:]))
        widths = [conv[-1], *head, 1]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def reset_parameters(self) -> None:
        for m in (*self.convs, *self.head):
            m.reset_parameters()

    def _check(self, points: torch.Tensor) -> None:
        if points.dim() != 3 or points.shape[2] != self.in_dim:
            raise ValueError(f"PointCritic: expected points of shape (B, N, {self.in_dim}), got {tuple(points.shape)}")

    def point_features(self, points: torch.Tensor) -> torch.Tensor:
        """Per-point features before the max-pool, (B, N, in_dim) -> (B, N, conv[-1])."""
        self._check(points)
        # A kernel-1 Conv1d is a per-point linear map: apply its weights to the (B, N, C) layout
        # directly (same numbers, much faster on CPU than the convolution kernels).
        b, n, _ = points.shape
        h = points.reshape(b * n, self.in_dim)
        inplace = not torch.is_grad_enabled()
        for conv in self.convs:
            h = torch.addmm(conv.bias, h, conv.weight[:, :, 0].t())
            h = F.leaky_relu(h, self.negative_slope, inplace=inplace)
        return h.view(b, n, h.shape[1])

    @torch.no_grad()
    def critical_mask(self, points: torch.Tensor) -> torch.Tensor:
        """Critical points: ``mask[b, n]`` is True iff point ``n`` of cloud ``b`` attains the max of
        at least one channel of the max-pool (every tied point counts). No gradient.

        Shapes:
            points: (B, N, in_dim)
            returns: (B, N) bool
        """
        h = self.point_features(points.detach())
        return (h == h.amax(dim=1, keepdim=True)).any(dim=2)

    def uses_critical_points(self, points: torch.Tensor) -> bool:
        """Whether :meth:`features` takes the critical-point path for this input (see the class doc)."""
        return (self.critical_points and torch.is_grad_enabled()
                and (points.requires_grad or any(p.requires_grad for p in self.parameters())))

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """Max-pooled global feature, (B, N, in_dim) -> (B, conv[-1]); see the class doc for the paths."""
        self._check(points)
        if points.numel() > 0 and self.uses_critical_points(points):
            mask = self.critical_mask(points)  # (B, N)
            count = mask.sum(dim=1)
            m = int(count.max())
            if m < points.shape[1] and bool((count > 0).all()):  # (count 0 only with NaNs: use the plain path)
                # critical points first (stable order), then non-critical points of the same cloud as padding
                order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :m]  # (B, m)
                points = torch.gather(points, 1, order.unsqueeze(2).expand(-1, -1, self.in_dim))  # (B, m, in_dim)
        return self.point_features(points).amax(dim=1)

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
        return (f"mode={self.mode!r}, conv={conv} (LeakyReLU {self.negative_slope}), max-pool, head={head}, "
                f"critical_points={self.critical_points}")
