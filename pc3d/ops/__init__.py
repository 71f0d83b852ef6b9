"""Differentiable geometry kernels on batches of point clouds ``(B, N, 3)``."""

from pc3d.ops.chamfer import ChamferResult, chamfer_distance
from pc3d.ops.emd import EMDResult, emd
from pc3d.ops.knn import nearest_neighbors
from pc3d.ops.uniformity import uniformity_loss

__all__ = ["ChamferResult", "EMDResult", "chamfer_distance", "emd", "nearest_neighbors", "uniformity_loss"]
