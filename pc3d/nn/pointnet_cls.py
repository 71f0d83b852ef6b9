"""The PointNet classifier in its widely used layout (the network behind tree-GAN's FPD).

Qi et al., "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation"
(CVPR 2017). The module and parameter names follow the common ``PointNetCls`` layout, so a
state_dict of that network with ``k`` classes (e.g. the ``k=16`` ShapeNet-part classifier
that tree-GAN's Frechet Point Distance uses) loads into :class:`PointNetClassifier` with
``strict=True``::

    feat.stn.{conv1,conv2,conv3,fc1,fc2,fc3,bn1,bn2,bn3,bn4,bn5}.*   input transform net (3x3)
    feat.fstn.*                                                      feature transform (64x64), optional
    feat.{conv1,conv2,conv3,bn1,bn2,bn3}.*                           shared MLP 3 -> 64 -> 128 -> 1024
    fc1.*, fc2.*, fc3.*, bn1.*, bn2.*                                head 1024 -> 512 -> 256 -> k

The per-point layers are ``Conv1d`` with kernel size 1 (weights ``(out, in, 1)``), which is
why the network transposes its ``(B, N, 3)`` input to ``(B, 3, N)`` internally.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pc3d.geometry.checks import check_cloud

__all__ = ["PointNetClassifier", "TransformNet"]


class TransformNet(nn.Module):
    """PointNet's T-Net: predicts a ``d x d`` matrix from a set of ``d``-dim points.

    ``T = I + fc3(ReLU(BN(fc2(ReLU(BN(fc1(max_i ReLU(BN(conv3(ReLU(BN(conv2(ReLU(BN(conv1(x_i))))))))))))))))``;
    ``fc3`` starts at zero so that the initial transform is the identity.

    Shapes:
        x: ``(B, d, N)`` -> ``(B, d, d)``.
    """

    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        self.dim = int(dim)
        self.conv1 = nn.Conv1d(self.dim, 64, 1)
        self.conv2 = nn.Conv1d(64, 128, 1)
        self.conv3 = nn.Conv1d(128, 1024, 1)
        self.fc1 = nn.Linear(1024, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, self.dim * self.dim)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(128)
        self.bn3 = nn.BatchNorm1d(1024)
        self.bn4 = nn.BatchNorm1d(512)
        self.bn5 = nn.BatchNorm1d(256)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.children():
            m.reset_parameters()
        nn.init.zeros_(self.fc3.weight)
        nn.init.zeros_(self.fc3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = x.amax(dim=2)
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x).view(-1, self.dim, self.dim)
        return x + torch.eye(self.dim, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _PointNetFeat(nn.Module):
    """The ``feat`` sub-module: transform net(s), shared MLP, max-pool (no ReLU after bn3)."""

    def __init__(self, feature_transform: bool) -> None:
        super().__init__()
        self.stn = TransformNet(3)
        self.conv1 = nn.Conv1d(3, 64, 1)
        self.conv2 = nn.Conv1d(64, 128, 1)
        self.conv3 = nn.Conv1d(128, 1024, 1)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(128)
        self.bn3 = nn.BatchNorm1d(1024)
        self.fstn = TransformNet(64) if feature_transform else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        trans = self.stn(x)  # (B, 3, 3)
        x = torch.bmm(trans.transpose(1, 2), x)  # row-vector points times trans: (B, 3, N)
        x = F.relu(self.bn1(self.conv1(x)))
        trans_feat = None
        if self.fstn is not None:
            trans_feat = self.fstn(x)
            x = torch.bmm(trans_feat.transpose(1, 2), x)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))  # no ReLU before pooling
        return x.amax(dim=2), trans, trans_feat


class PointNetClassifier(nn.Module):
    """PointNet classification network (input transform net, optional feature transform).

    ``global = max_i BN(conv3(ReLU(BN(conv2(ReLU(BN(conv1(T x_i))))))))`` (1024, no ReLU),
    ``h1 = ReLU(BN(fc1(global)))`` (512), ``h2 = ReLU(BN(dropout(fc2(h1))))`` (256),
    ``logits = fc3(h2)`` (k). Dropout (p=0.3) acts in training mode only.

    :meth:`features` returns tree-GAN's FPD features ``[global, h1, h2, logits]``
    (``1792 + k`` = 1808 for ``k=16``); call it in eval mode.

    Args:
        k: number of classes.
        feature_transform: add the 64x64 feature transform net (``feat.fstn``). Off in the
            tree-GAN-compatible variant.
        dropout: dropout probability before ``bn2``.

    Shapes:
        points: ``(B, N, 3)`` -> logits ``(B, k)``; features ``(B, 1792 + k)``.
    """

    def __init__(self, k: int = 16, feature_transform: bool = False, dropout: float = 0.3) -> None:
        super().__init__()
        if int(k) < 1:
            raise ValueError(f"PointNetClassifier: k must be >= 1, got {k}")
        self.k = int(k)
        self.feature_transform = bool(feature_transform)
        self.feat = _PointNetFeat(self.feature_transform)
        self.fc1 = nn.Linear(1024, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, self.k)
        self.dropout = nn.Dropout(p=float(dropout))
        self.bn1 = nn.BatchNorm1d(512)
        self.bn2 = nn.BatchNorm1d(256)
        self.reset_parameters()

    @property
    def feature_dim(self) -> int:
        """Size of :meth:`features`: 1024 + 512 + 256 + k."""
        return 1792 + self.k

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters") and not isinstance(m, TransformNet):
                m.reset_parameters()
        for m in self.modules():
            if isinstance(m, TransformNet):
                m.reset_parameters()

    def forward_all(self, points: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Every intermediate output.

        Shapes:
            points ``(B, N, 3)`` -> ``global (B, 1024)``, ``fc1 (B, 512)``, ``fc2 (B, 256)``,
            ``logits (B, k)``, ``trans (B, 3, 3)``, ``trans_feat (B, 64, 64)`` or ``None``.
        """
        check_cloud(points, "points", 3)
        x = points.transpose(1, 2)  # (B, 3, N)
        g, trans, trans_feat = self.feat(x)
        h1 = F.relu(self.bn1(self.fc1(g)))
        h2 = F.relu(self.bn2(self.dropout(self.fc2(h1))))
        logits = self.fc3(h2)
        return {"global": g, "fc1": h1, "fc2": h2, "logits": logits, "trans": trans, "trans_feat": trans_feat}

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_all(points)["logits"]

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """tree-GAN's FPD features: ``cat([global, fc1, fc2, logits], dim=1)``, ``(B, 1792 + k)``."""
        out = self.forward_all(points)
        return torch.cat([out["global"], out["fc1"], out["fc2"], out["logits"]], dim=1)

    def extra_repr(self) -> str:
        return f"k={self.k}, feature_transform={self.feature_transform}, features={self.feature_dim}"


def feature_transform_regularizer(trans: torch.Tensor) -> torch.Tensor:
    """``mean_b ||I - T_b T_b^T||_F`` (PointNet's orthogonality penalty). trans ``(B, d, d)`` -> ``()``."""
    eye = torch.eye(trans.shape[1], dtype=trans.dtype, device=trans.device)
    return (torch.bmm(trans, trans.transpose(1, 2)) - eye).flatten(1).norm(dim=1).mean()
