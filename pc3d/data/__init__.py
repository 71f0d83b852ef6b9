"""Data: PC15k reader, transforms and the Lightning DataModule.

``pc3d.data.synthetic`` (the built-in procedural set) is imported on demand, not here.
"""

from pc3d.data.datamodule import PC15K_DIRNAME, PointCloudDataModule, collate
from pc3d.data.pc15k import (
    NAME_MAP_FILE,
    SHAPENET_ALIASES,
    SHAPENET_SYNSETS,
    PC15kDataset,
    compute_global_stats,
    load_cloud,
    read_name_map,
)
from pc3d.data.transforms import (
    Compose,
    RandomRotateY,
    RandomScaleShift,
    apply_normalization,
    denormalize,
    normalize_unit_bbox,
    normalize_unit_sphere,
    unit_bbox_stats,
    unit_sphere_stats,
)

__all__ = [
    "NAME_MAP_FILE",
    "PC15K_DIRNAME",
    "SHAPENET_ALIASES",
    "SHAPENET_SYNSETS",
    "Compose",
    "PC15kDataset",
    "PointCloudDataModule",
    "RandomRotateY",
    "RandomScaleShift",
    "apply_normalization",
    "collate",
    "compute_global_stats",
    "denormalize",
    "load_cloud",
    "normalize_unit_bbox",
    "normalize_unit_sphere",
    "read_name_map",
    "unit_bbox_stats",
    "unit_sphere_stats",
]
