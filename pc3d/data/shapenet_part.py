"""Reader for ShapeNet-part v0 (``shapenetcore_partanno_segmentation_benchmark_v0``), tree-GAN's data.

Layout on disk (both variants share the name map and the split lists)::

    <root>/synsetoffset2category.txt                          lines "Name<TAB>synset"
    <root>/train_test_split/shuffled_{train,val,test}_file_list.json
                                                              JSON lists of "shape_data/<synset>/<id>"
    v0:       <root>/<synset>/points/<id>.pts                 rows "x y z"
              <root>/<synset>/points_label/<id>.seg           one integer part label per row (1-based
                                                              within the category)
              <root>/<synset>/sampling/<id>.sam               optional: tree-GAN's fixed index files
    _normal:  <root>/<synset>/<id>.txt                        rows "x y z nx ny nz label" (the
                                                              ``..._v0_normal`` release; label is the
                                                              global part id 0..49)

The variant is detected from the files (``<synset>/points/`` folders mean v0). Shapes have a
varying number of points (a few thousand; readers of this release, tree-GAN's included, draw
with replacement), so ``n_points`` rows are sampled per item as in every pc3d reader, with
``few_points="repeat"`` by default (a shape with fewer rows gives each row once, then repeats
rows drawn with replacement; ``"error"`` refuses it), and the part label of each drawn row comes
along as ``part_label`` (LongTensor (n_points,)).
Normals of the ``_normal`` variant are read and checked but not returned.

Splits: ``"train"``, ``"val"``, ``"test"`` follow the official JSON lists; ``"all"`` is every
shape file of the category folders (v0: every ``<synset>/points/*.pts``), which is what tree-GAN
trains on (all files of the class, no split), with ``sampling="treegan"`` (a fixed index set
per shape drawn with replacement, read from ``<synset>/sampling/<id>.sam`` when present).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pc3d.data.base import PointCloudSet
from pc3d.data.splits import SPLITS

__all__ = ["SPLIT_DIR", "ShapeNetPartDataset", "is_shapenet_part", "load_txt_rows"]

SPLIT_DIR = "train_test_split"
_SPLIT_FILE = "shuffled_{}_file_list.json"


def is_shapenet_part(root: Path) -> bool:
    """A ShapeNet-part root has ``train_test_split/shuffled_*_file_list.json`` beside synset folders."""
    return any((root / SPLIT_DIR / _SPLIT_FILE.format(s)).is_file() for s in SPLITS)


def load_txt_rows(path: Path, n_cols: int, what: str, delimiter: str | None = None) -> np.ndarray:
    """Read a text table with exactly ``n_cols`` numeric columns -> float64 array (rows, n_cols).

    Any parse error, ragged row, wrong column count or empty file raises ``ValueError`` naming the
    file and the expected row format ``what``.
    """
    try:
        arr = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: expected rows of {what}: {exc}") from exc
    if arr.size == 0:
        raise ValueError(f"{path}: expected rows of {what}, got an empty file")
    if arr.shape[1] != n_cols:
        raise ValueError(f"{path}: expected rows of {what} ({n_cols} columns), got {arr.shape[1]} columns")
    return arr


class ShapeNetPartDataset(PointCloudSet):
    """ShapeNet-part v0 (or its ``_normal`` variant), one split; items carry ``part_label``.

    Args: as :class:`~pc3d.data.base.PointCloudSet` (``split`` may be ``"all"``), plus
        part_labels: return ``part_label`` per point; ``None`` (default): when the layout has
            them (the ``_normal`` variant always does, v0 when ``<synset>/points_label/`` exists
            for every selected category). A missing or mismatched label file is a bad file.

    Errors: ``FileNotFoundError`` for a missing root; ``ValueError`` naming the file for a
    missing split list, an entry that is not ``shape_data/<synset>/<id>``, a listed shape whose
    file is missing, unparsable rows, a label count that differs from the point count.
    """

    layout = "shapenet_part"
    default_few_points = "repeat"  # shapes have a varying number of points

    def __init__(self, root, *args, part_labels: bool | None = None, **kwargs):
        root = Path(root).expanduser()
        self.normal_variant = root.is_dir() and not any(root.glob("*/points"))
        self._want_labels = part_labels
        super().__init__(root, *args, **kwargs)

    def _init_kwargs(self):
        return {**super()._init_kwargs(), "part_labels": self.part_labels}

    # ------------------------------------------------------------------ listing
    def _known_categories(self) -> list[str]:
        return [d for d in super()._known_categories() if d != SPLIT_DIR]

    def _shape_path(self, synset: str, model_id: str) -> Path:
        if self.normal_variant:
            return self.root / synset / f"{model_id}.txt"
        return self.root / synset / "points" / f"{model_id}.pts"

    def _split_entries(self, split: str) -> list[tuple[str, str]]:
        path = self.root / SPLIT_DIR / _SPLIT_FILE.format(split)
        if not path.is_file():
            raise ValueError(
                f"{path}: split list missing: a ShapeNet-part root needs {SPLIT_DIR}/{_SPLIT_FILE.format(split)}"
            )
        try:
            entries = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(entries, list):
            raise ValueError(
                f"{path}: expected a JSON list of 'shape_data/<synset>/<id>', got {type(entries).__name__}"
            )
        out = []
        for k, entry in enumerate(entries):
            parts = entry.split("/") if isinstance(entry, str) else []
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise ValueError(f"{path}: entry {k} is {entry!r}, expected 'shape_data/<synset>/<id>'")
            out.append((parts[1], parts[2]))
        return out

    def _list_split(self, split: str) -> list[tuple[str, str, Path]]:
        if split == "all":
            pattern = "*.txt" if self.normal_variant else "points/*.pts"
            pairs = [(s, p.stem) for s in self._known_categories() for p in (self.root / s).glob(pattern)]
        else:  # listed shapes of the categories present (a partial download lists the others too)
            present = set(self._known_categories())
            pairs = [(s, m) for s, m in self._split_entries(split) if s in present]
        self.part_labels = self._decide_labels({s for s, _ in pairs})
        return [(s, m, self._shape_path(s, m)) for s, m in sorted(set(pairs))]

    def _decide_labels(self, synsets: set[str]) -> bool:
        if self.normal_variant:
            return self._want_labels is not False
        have = all((self.root / s / "points_label").is_dir() for s in synsets)
        if self._want_labels and not have:
            missing = sorted(s for s in synsets if not (self.root / s / "points_label").is_dir())
            raise ValueError(f"{self.root}: part_labels=True but {missing} have no points_label/ folder")
        return have if self._want_labels is None else bool(self._want_labels)

    def _index_file(self, synset: str, model_id: str) -> Path | None:
        return None if self.normal_variant else self.root / synset / "sampling" / f"{model_id}.sam"

    # ------------------------------------------------------------------ reading
    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self.normal_variant:
            table = load_txt_rows(path, 7, "'x y z nx ny nz label'")
            self._check_finite(path, table[:, 3:6])
            points, labels = table[:, :3], table[:, 6]
            label_path = path
        else:
            points = load_txt_rows(path, 3, "'x y z'")
            if not self.part_labels:
                return points, {}
            label_path = path.parent.parent / "points_label" / f"{path.stem}.seg"
            labels = load_txt_rows(label_path, 1, "one integer part label")[:, 0]
            if labels.shape[0] != points.shape[0]:
                raise ValueError(
                    f"{label_path}: expected one part label per point of {path.name} ({points.shape[0]}), "
                    f"got {labels.shape[0]}"
                )
        if not self.part_labels:
            return points, {}
        if not (np.isfinite(labels).all() and np.all(labels == np.round(labels)) and labels.min() >= 0):
            raise ValueError(f"{label_path}: expected non-negative integer part labels")
        return points, {"part_label": labels.astype(np.int64)}
