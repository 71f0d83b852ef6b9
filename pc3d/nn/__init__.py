"""Plain ``nn.Module`` networks (no Lightning): encoders, decoders, generators, critics."""

from pc3d.nn.decoder import FCDecoder
from pc3d.nn.pointnet import PointNetEncoder

__all__ = ["FCDecoder", "PointNetEncoder"]
