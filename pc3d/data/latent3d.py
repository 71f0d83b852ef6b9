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


_PLY_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}


def check_ply_header(path: Path) -> int:
    """Parse a PLY header and check the file is as long as it says; returns the vertex count.

    ``ValueError`` naming the file: no ``ply`` magic / ``end_header``, no ``element vertex``, or a
    body shorter than the header's vertex count (binary: bytes of fixed-size elements up to the
    vertices; ASCII: lines). Open3D would otherwise fill a truncated body with garbage.
    """
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (expected 'ply' ... 'end_header' at the start)")
    body_at = head.index(b"\n", end) + 1 if b"\n" in head[end:] else len(head)
    fmt, elements = "", []
    for raw in head[:end].decode("ascii", "replace").splitlines():
        tok = raw.split()
        if tok[:1] == ["format"] and len(tok) > 1:
            fmt = tok[1]
        elif tok[:1] == ["element"] and len(tok) == 3:
            try:
                elements.append([tok[1], int(tok[2]), 0])
            except ValueError:
                raise ValueError(f"{path}: PLY header line {raw.strip()!r}: count is not an integer") from None
        elif tok[:1] == ["property"] and elements:
            size = None if tok[1:2] == ["list"] else _PLY_SIZES.get(tok[1] if len(tok) > 1 else "")
            elements[-1][2] = None if size is None or elements[-1][2] is None else elements[-1][2] + size
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None:
        raise ValueError(f"{path}: PLY header has no 'element vertex'")
    size = path.stat().st_size - body_at
    if fmt.startswith("binary"):
        need = 0
        for name, count, each in elements:
            if each is None:
                return vertex[1]  # a variable-size element first: Open3D's count is checked instead
            need += count * each
            if name == "vertex":
                break
        if size < need:
            raise ValueError(
                f"{path}: truncated PLY file: its header says {vertex[1]} vertices ({need} bytes), "
                f"the file holds {size} bytes after the header"
            )
    elif fmt == "ascii":
        with open(path, "rb") as fh:
            fh.seek(body_at)
            lines = sum(1 for ln in fh if ln.strip())
        if lines < vertex[1]:
            raise ValueError(
                f"{path}: truncated PLY file: its header says {vertex[1]} vertices, the file has {lines} data lines"
            )
    return vertex[1]


def read_ply_points(path: str | Path) -> np.ndarray:
    """Vertices of a PLY file -> float64 (P, 3); ``ValueError`` naming the file when it is not a PLY
    file, is shorter than its header says (:func:`check_ply_header`) or Open3D reads no points."""
    import open3d as o3d

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a PLY file")
    if not path.is_file():
        raise FileNotFoundError(path)
    n_vertices = check_ply_header(path)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.io.read_point_cloud(str(path), format="ply")
    pts = np.asarray(cloud.points, dtype=np.float64)
    if pts.shape[0] == 0:
        raise ValueError(f"{path}: expected a PLY file with 'element vertex' x y z rows, Open3D read no points")
    if pts.shape[0] != n_vertices:
        raise ValueError(f"{path}: its header says {n_vertices} vertices, Open3D read {pts.shape[0]}")
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
            # a directory named *.ply is listed too: reading it is an error naming it
            files = {p.stem: p for p in sorted((self.root / synset).glob("*.ply")) if p.is_file() or p.is_dir()}
            split_of = holdout_split(list(files), self.split_fractions, self.seed, synset)
            out.extend((synset, m, p) for m, p in files.items() if split in ("all", split_of[m]))
        return out

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return read_ply_points(path), {}
