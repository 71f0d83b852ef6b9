"""Plain ``nn.Module`` networks (no Lightning): encoders, decoders, generators, critics."""

from pc3d.nn.critic import PointCritic
from pc3d.nn.decoder import FCDecoder
from pc3d.nn.generator import TreeGenerator
from pc3d.nn.image_encoder import ResNetImageEncoder
from pc3d.nn.latent_gan import LatentCritic, LatentGenerator
from pc3d.nn.pointnet import PointNetEncoder
from pc3d.nn.pointnet_cls import PointNetClassifier
from pc3d.nn.treegcn import TreeGCN
from pc3d.nn.view_pooling import AttentionViewPooling, mean_view_pooling

__all__ = [
    "AttentionViewPooling",
    "FCDecoder",
    "LatentCritic",
    "LatentGenerator",
    "PointCritic",
    "PointNetClassifier",
    "PointNetEncoder",
    "ResNetImageEncoder",
    "TreeGCN",
    "TreeGenerator",
    "mean_view_pooling",
]
