"""Reader for the latent_3d_points release (Achlioptas et al., ICML 2018).

Layout on disk::

    shape_net_core_uniform_samples_2048/<synset>/<model_id>.ply     2048 points per shape

Files are read with ``open3d.io.read_point_cloud`` (ASCII or binary PLY); an empty result
(Open3D warns instead of raising), NaN/inf or too few points is a bad file. Categories are
ShapeNet synsets (names resolve through ShapeNet's taxonomy).

Splits: the release has none. Each synset's files are assigned train/val/test by
:func:`pc3d.data.splits.holdout_split` with ``split_fractions`` (default 0.85/0.05/0.10, the
proportions the latent_3d_points paper uses), seeded by ``seed`` and the synset: the same files
and seed always give the same split, whatever the file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pc3d.data.base import PointCloudSet
from pc3d.data.splits import holdout_split

__all__ = ["Latent3DDataset", "read_ply_points"]


def read_ply_points(path: str | Path) -> np.ndarray:
    """Vertices of a PLY file -> float64 (P, 3); ``ValueError`` naming the file when none are read."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.io.read_point_cloud(str(path), format="ply")
    pts = np.asarray(cloud.points, dtype=np.float64)
    if pts.shape[0] == 0:
        raise ValueError(f"{path}: expected a PLY file with 'element vertex' x y z rows, Open3D read no points")
    return pts


class Latent3DDataset(PointCloudSet):
    """``shape_net_core_uniform_samples_2048/<synset>/<model_id>.ply``; see the module docstring.

    Args: as :class:`~pc3d.data.base.PointCloudSet`, plus ``split_fractions`` (train, val, test).
    """

    layout = "latent3d"

    def __init__(self, root, *args, split_fractions: Sequence[float] = (0.85, 0.05, 0.10), **kwargs):
        self.split_fractions = tuple(float(x) for x in split_fractions)
        super().__init__(root, *args, **kwargs)

    def _init_kwargs(self):
        return {**super()._init_kwargs(), "split_fractions": self.split_fractions}

    def _list_split(self, split: str) -> list[tuple[str, str, Path]]:
        out = []
        for synset in self._known_categories():
            files = {p.stem: p for p in sorted((self.root / synset).glob("*.ply")) if p.is_file()}
            split_of = holdout_split(list(files), self.split_fractions, self.seed, synset)
            out.extend((synset, m, p) for m, p in files.items() if split in ("all", split_of[m]))
        return out

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return read_ply_points(path), {}
