"""Readers for ModelNet40: the OFF meshes and the ``modelnet40_normal_resampled`` point clouds.

Layouts on disk::

    ModelNet40/<class>/{train,test}/<class>_NNNN.off                OFF meshes (some headers glue
                                                                     the counts to "OFF": "OFF490 518 0")

    modelnet40_normal_resampled/modelnet40_shape_names.txt          one class name per line
    modelnet40_normal_resampled/modelnet40_{train,test}.txt         one shape id per line ("chair_0001")
    modelnet40_normal_resampled/<class>/<class>_NNNN.txt            rows "x,y,z,nx,ny,nz" (10,000)

Categories are the class names (``"chair"``, ``"night_stand"``; labels in sorted order). Meshes
are read with torch_geometric's OFF parser and sampled area-uniformly once per shape into
``surface_points`` points (deterministic: seeded by ``(seed, crc32(<relative path>))``, optionally
cached like :mod:`pc3d.data.meshes`); items draw ``n_points`` rows of it (fresh in train, fixed in
val/test). Normals of the resampled release are read and checked, not returned.

Splits: ModelNet40 has train and test only. ``"val"`` is a deterministic hold-out of the official
train split: ``val_fraction`` (default 0.1) of each class's train shapes, chosen by
:func:`pc3d.data.splits.holdout_split` with ``seed`` and the class name; ``"train"`` is the rest;
``"test"`` is the official test split; ``"all"`` is everything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.data.base import PointCloudSet
from pc3d.data.meshes import CACHE_PC15K, MeshSampler, cache_root_for
from pc3d.data.shapenet_part import load_txt_rows
from pc3d.data.splits import holdout_split
from pc3d.data.taxonomy import read_text_lines

__all__ = ["ModelNet40Dataset", "ModelNet40NormalDataset", "SHAPE_NAMES_FILE"]

SHAPE_NAMES_FILE = "modelnet40_shape_names.txt"


class _TrainValHoldout(PointCloudSet):
    """Official train/test lists; val = a seeded hold-out of train (``val_fraction`` per class)."""

    def __init__(self, root, *args, val_fraction: float = 0.1, **kwargs):
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        super().__init__(root, *args, **kwargs)

    def _init_kwargs(self):
        return {**super()._init_kwargs(), "val_fraction": self.val_fraction}

    def _official(self, split: str) -> list[tuple[str, str, Path]]:
        raise NotImplementedError

    def _list_split(self, split: str) -> list[tuple[str, str, Path]]:
        if split in ("test", "all"):
            test = self._official("test")
            if split == "test":
                return test
        train = self._official("train")
        if split == "all":
            return train + test
        by_class: dict[str, list[str]] = {}
        for c, m, _ in train:
            by_class.setdefault(c, []).append(m)
        fractions = (1.0 - self.val_fraction, self.val_fraction, 0.0)
        assigned = {c: holdout_split(ms, fractions, self.seed, c) for c, ms in by_class.items()}
        return [(c, m, p) for c, m, p in train if assigned[c][m] == split]


class ModelNet40Dataset(_TrainValHoldout):
    """``ModelNet40/<class>/{train,test}/*.off``, sampled into point clouds.

    Args: as :class:`~pc3d.data.base.PointCloudSet`, plus ``val_fraction`` (see the module
        docstring), ``surface_points`` (dense sample per mesh, default 10000), ``cache_dir``
        (``None``: no cache; a folder: the PC15k-layout cache of :mod:`pc3d.data.meshes` in
        ``<cache_dir>/<root name>-<crc32 of the absolute root>``), ``normalize_mesh`` (default
        False: keep ModelNet's coordinates; ``normalize=`` still applies to the points).
    """

    layout = "modelnet40"

    def __init__(
        self,
        root,
        *args,
        surface_points: int = 10000,
        cache_dir: str | Path | None = None,
        normalize_mesh: bool = False,
        **kwargs,
    ):
        root = Path(root).expanduser()
        self.surface_points = surface_points
        self.cache_dir = cache_dir
        self.normalize_mesh = bool(normalize_mesh)
        cache_root = None if cache_dir is None else cache_root_for(root, cache_dir)
        self._sampler = MeshSampler(surface_points, kwargs.get("seed", 0), cache_root, normalize=self.normalize_mesh)
        super().__init__(root, *args, **kwargs)

    def _init_kwargs(self):
        return {
            **super()._init_kwargs(),
            "surface_points": self.surface_points,
            "cache_dir": self.cache_dir,
            "normalize_mesh": self.normalize_mesh,
        }

    def _known_categories(self) -> list[str]:
        return sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and any((d / s).is_dir() for s in ("train", "test"))
        )

    def _official(self, split: str) -> list[tuple[str, str, Path]]:
        out = []
        for c in self._known_categories():
            d = self.root / c / split
            if d.is_dir():
                # a directory named *.off is listed too: reading it is an error naming it
                out.extend((c, p.stem, p) for p in sorted(d.glob("*.off")) if p.is_file() or p.is_dir())
        return out

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rel = path.relative_to(self.root).as_posix()
        if self._sampler.cache_root is None:
            return self._sampler.sample(path, rel), {}
        cls, split = path.parent.parent.name, path.parent.name
        entry = self._sampler.cache_root / CACHE_PC15K / cls / split / f"{path.stem}.npy"
        return self._sampler.cached(path, rel, entry), {}


class ModelNet40NormalDataset(_TrainValHoldout):
    """``modelnet40_normal_resampled``: comma-separated ``x,y,z,nx,ny,nz`` rows per shape.

    Args: as :class:`~pc3d.data.base.PointCloudSet`, plus ``val_fraction``. The class of a shape
    id is the id without its trailing ``_NNNN``; it must be listed in ``modelnet40_shape_names.txt``.
    """

    layout = "modelnet40_normal"

    def _known_categories(self) -> list[str]:
        path = self.root / SHAPE_NAMES_FILE
        if not path.is_file():
            raise ValueError(f"{path}: missing; a modelnet40_normal_resampled root lists its classes there")
        return sorted({ln.strip() for ln in read_text_lines(path) if ln.strip()})

    def _official(self, split: str) -> list[tuple[str, str, Path]]:
        path = self.root / f"modelnet40_{split}.txt"
        if not path.is_file():
            raise ValueError(f"{path}: missing; expected one shape id ('chair_0001') per line")
        known = set(self._known_categories())
        out = []
        for lineno, line in enumerate(read_text_lines(path), start=1):
            shape = line.strip()
            if not shape:
                continue
            cls = shape.rsplit("_", 1)[0]
            if "_" not in shape or cls not in known:
                raise ValueError(
                    f"{path}: line {lineno}: {shape!r} is not '<class>_NNNN' with a class of {SHAPE_NAMES_FILE}"
                )
            out.append((cls, shape, self.root / cls / f"{shape}.txt"))
        return out

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        table = load_txt_rows(path, 6, "'x,y,z,nx,ny,nz'", delimiter=",")
        self._check_finite(path, table[:, 3:])
        return table[:, :3], {}
