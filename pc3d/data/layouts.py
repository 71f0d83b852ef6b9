"""The on-disk layouts pc3d reads, how each is recognised, and the reader of each.

* ``pc15k``: ``<synset>/{train,val,test}/<id>.npy``; :class:`~pc3d.data.PC15kDataset`.
* ``shapenet_part``: ``train_test_split/shuffled_*_file_list.json``, ``<synset>/points/<id>.pts``
  (or ``<synset>/<id>.txt``); :class:`~pc3d.data.shapenet_part.ShapeNetPartDataset`.
* ``modelnet40``: ``<class>/{train,test}/<class>_NNNN.off``; :class:`~pc3d.data.modelnet.ModelNet40Dataset`.
* ``modelnet40_normal``: ``modelnet40_shape_names.txt``, ``<class>/<class>_NNNN.txt``;
  :class:`~pc3d.data.modelnet.ModelNet40NormalDataset`.
* ``latent3d``: ``<synset>/<model_id>.ply`` (2048 points); :class:`~pc3d.data.latent3d.Latent3DDataset`.
* ``meshes``: ``<class>/**/<name>.{obj,ply,off,glb,gltf,stl}``; :class:`~pc3d.data.meshes.MeshFolderDataset`.

:func:`detect_layout` recognises them in this order: ShapeNet-part (its split lists),
``modelnet40_normal`` (its shape-names file), ModelNet40 (``.off`` files in ``<class>/train`` or
``<class>/test``), PC15k (``.npy`` files in ``<synset>/{train,val,test}``), latent3d (synset-id
folders holding only ``.ply`` files, or a root named ``shape_net_core_uniform_samples_2048``),
then a folder of meshes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pc3d.data.taxonomy import PC15K_DIRNAME

__all__ = ["LAYOUTS", "detect_layout", "layout_class", "make_dataset"]

#: layout name -> "module:Class" of its reader (imported on use).
LAYOUTS: dict[str, str] = {
    "pc15k": "pc3d.data.pc15k:PC15kDataset",
    "shapenet_part": "pc3d.data.shapenet_part:ShapeNetPartDataset",
    "modelnet40": "pc3d.data.modelnet:ModelNet40Dataset",
    "modelnet40_normal": "pc3d.data.modelnet:ModelNet40NormalDataset",
    "latent3d": "pc3d.data.latent3d:Latent3DDataset",
    "meshes": "pc3d.data.meshes:MeshFolderDataset",
}

_SYNSET = re.compile(r"^\d{8}$")
_WELL_KNOWN = {
    PC15K_DIRNAME: "pc15k",
    "shapenetcore_partanno_segmentation_benchmark_v0": "shapenet_part",
    "shapenetcore_partanno_segmentation_benchmark_v0_normal": "shapenet_part",
    "ModelNet40": "modelnet40",
    "modelnet40_normal_resampled": "modelnet40_normal",
    "shape_net_core_uniform_samples_2048": "latent3d",
}


def layout_class(layout: str) -> type:
    """The reader class of ``layout`` (one of :data:`LAYOUTS`)."""
    import importlib

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {sorted(LAYOUTS)}")
    module, name = LAYOUTS[layout].split(":")
    return getattr(importlib.import_module(module), name)


def _subdirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def detect_layout(root: str | Path) -> str:
    """Name of the layout of ``root`` (see the module docstring for the rules).

    Raises ``FileNotFoundError`` for a missing root and ``ValueError`` naming the root (and any
    well-known data set folder inside it) when nothing matches.
    """
    from pc3d.data.meshes import MESH_SUFFIXES
    from pc3d.data.modelnet import SHAPE_NAMES_FILE
    from pc3d.data.shapenet_part import is_shapenet_part

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: data set root {'does not exist' if not root.exists() else 'is not a directory'}"
        )
    if is_shapenet_part(root):
        return "shapenet_part"
    if (root / SHAPE_NAMES_FILE).is_file():
        return "modelnet40_normal"
    dirs = _subdirs(root)
    split_dirs = [d / s for d in dirs for s in ("train", "val", "test") if (d / s).is_dir()]
    if any(next(s.glob("*.off"), None) is not None for s in split_dirs):
        return "modelnet40"
    if any(next(s.glob("*.npy"), None) is not None for s in split_dirs):
        return "pc15k"
    if dirs and (root.name == "shape_net_core_uniform_samples_2048" or all(_SYNSET.match(d.name) for d in dirs)):
        files = [p for d in dirs for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
        if files and all(p.suffix.lower() == ".ply" for p in files):
            return "latent3d"
    for d in dirs:
        if any(p.suffix.lower() in MESH_SUFFIXES for p in d.rglob("*") if p.is_file()):
            return "meshes"
    inside = [f"{d} ({_WELL_KNOWN[d.name]})" for d in dirs if d.name in _WELL_KNOWN]
    hint = f"; did you mean {', '.join(inside)}?" if inside else ""
    raise ValueError(
        f"{root}: no known data set layout found (expected one of {sorted(LAYOUTS)}; see pc3d.data.layouts){hint}"
    )


def make_dataset(layout: str, root: str | Path, **kwargs: Any):
    """Build the reader of ``layout`` (``"auto"``: :func:`detect_layout`) over ``root``."""
    if layout == "auto":
        layout = detect_layout(root)
    return layout_class(layout)(root, **kwargs)
