"""Data: readers of every layout (PC15k, ShapeNet-part, ModelNet40, latent_3d_points, mesh folders),
transforms, the Lightning DataModule and the built-in procedural set.

Names are imported lazily (PEP 562) so that ``pc3d-data`` and the generator's worker processes
do not pay for importing Lightning: ``from pc3d.data import PointCloudDataModule`` works as usual.
"""

from __future__ import annotations

from pc3d._lazy import lazy_exports

_EXPORTS = {
    "ImageCloudDataModule": "pc3d.data.renderings",
    "ImageCloudDataset": "pc3d.data.renderings",
    "check_silhouettes": "pc3d.data.renderings",
    "load_view": "pc3d.data.renderings",
    "read_rendering_folder": "pc3d.data.renderings",
    "PointCloudDataModule": "pc3d.data.datamodule",
    "collate": "pc3d.data.datamodule",
    "PC15kDataset": "pc3d.data.pc15k",
    "PointCloudSet": "pc3d.data.base",
    "ShapeNetPartDataset": "pc3d.data.shapenet_part",
    "ModelNet40Dataset": "pc3d.data.modelnet",
    "ModelNet40NormalDataset": "pc3d.data.modelnet",
    "Latent3DDataset": "pc3d.data.latent3d",
    "MeshFolderDataset": "pc3d.data.meshes",
    "read_mesh": "pc3d.data.meshes",
    "render_meshes": "pc3d.data.meshes",
    "LAYOUTS": "pc3d.data.layouts",
    "detect_layout": "pc3d.data.layouts",
    "make_dataset": "pc3d.data.layouts",
    "inspect_root": "pc3d.data.inspect",
    "compute_global_stats": "pc3d.data.pc15k",
    "load_cloud": "pc3d.data.pc15k",
    "NAME_MAP_FILE": "pc3d.data.taxonomy",
    "PC15K_DIRNAME": "pc3d.data.taxonomy",
    "SHAPENET_ALIASES": "pc3d.data.taxonomy",
    "SHAPENET_SYNSETS": "pc3d.data.taxonomy",
    "read_name_map": "pc3d.data.taxonomy",
    "write_index_files": "pc3d.data.splits",
    "Compose": "pc3d.data.transforms",
    "RandomRotateY": "pc3d.data.transforms",
    "RandomScaleShift": "pc3d.data.transforms",
    "apply_normalization": "pc3d.geometry.normalize",
    "denormalize": "pc3d.geometry.normalize",
    "normalize_unit_bbox": "pc3d.geometry.normalize",
    "normalize_unit_sphere": "pc3d.geometry.normalize",
    "unit_bbox_stats": "pc3d.geometry.normalize",
    "unit_sphere_stats": "pc3d.geometry.normalize",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("pc3d.data", _EXPORTS, globals())
