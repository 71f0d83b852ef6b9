"""What every point-cloud reader of pc3d shares: categories, sampling, normalization, items, bad files.

A reader (:class:`~pc3d.data.PC15kDataset`, :class:`~pc3d.data.shapenet_part.ShapeNetPartDataset`,
the ModelNet40, latent_3d_points and mesh-folder readers) is a :class:`PointCloudSet`: it lists the
files of one split (``_list_split``) and reads one of them into a ``(P, 3)`` array plus optional
per-point extras (``_read``); everything else lives here, so every layout behaves the same way.

Items are dicts::

    points      FloatTensor (n_points, 3)   normalized: (raw - shift) / scale
    category    LongTensor  ()              contiguous label, categories in sorted order
    synset      str                         category id (ShapeNet synset, or class folder name)
    model_id    str                         shape id (file name without its extension)
    index       int                         position in the data set
    shift       FloatTensor (1, 3)
    scale       FloatTensor (1, 1)          raw = points * scale + shift
    part_label  LongTensor  (n_points,)     only for layouts with per-point labels (ShapeNet-part)

Sampling (``sampling=``):

* ``"random"``: ``n_points`` rows without replacement, fresh on every call (torch's global RNG);
* ``"fixed"``: the same rows for an index every time, without replacement, seeded by ``(seed, index)``;
* ``"treegan"``: tree-GAN's protocol: one fixed index set per shape, drawn **with replacement**. The
  set is read from the layout's index file when it has one (ShapeNet-part: ``<synset>/sampling/
  <id>.sam``, ``n_points`` integers), else drawn once from ``(seed, crc32("<synset>/<model_id>"))``,
  so it does not depend on which categories are selected. :func:`~pc3d.data.splits.write_index_files`
  writes them.

Shapes with fewer than ``n_points`` rows (``few_points=``): ``"error"`` (the default of most
layouts: a ``ValueError`` naming the file) or ``"repeat"`` (the default for ShapeNet-part, whose
shapes have a varying number of points): every row once, in random
(``"random"``) or seeded (``"fixed"``) order, then the missing rows drawn with replacement.

Normalization (``normalize=``): ``"none"``, ``"unit_sphere"``, ``"unit_bbox"`` (per shape, from all
rows of the file) or ``"global"`` (PointFlow's: per-axis mean and one scalar std over every row of
every train file); see :mod:`pc3d.data.pc15k`.

Bad files: a file that cannot be read (also: a directory named like one, a ``.npy`` header that
disagrees with the file size, text that is not UTF-8), has the wrong shape, too few rows, NaN/inf
coordinates or coordinates beyond ``|x| <=`` :data:`MAX_ABS_COORD` (1e6) raises a ``ValueError``
whose message starts with its path and says what was expected. With
``skip_bad=True`` every file of the split is read once at construction, bad ones are dropped and
listed in :attr:`PointCloudSet.bad_files` (``"<path>: <problem>"``); never a silent wrong sample.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from pc3d.data.splits import ALL_SPLITS, drawn_index, read_index_file
from pc3d.data.taxonomy import (
    NAME_MAP_FILE,
    SHAPENET_NAME_TO_SYNSET,
    SHAPENET_SYNSETS,
    norm_name,
    read_name_map,
    read_text_lines,
)
from pc3d.geometry.normalize import NORMALIZATIONS, unit_bbox_stats, unit_sphere_stats

__all__ = [
    "FEW_POINTS",
    "MAX_ABS_COORD",
    "NORMALIZATIONS",
    "SAMPLINGS",
    "PointCloudSet",
    "check_coordinate_range",
    "check_dataset_args",
    "compute_set_stats",
    "item_index",
    "parse_global_stats",
    "read_text_lines",
]

SAMPLINGS = ("random", "fixed", "treegan")
FEW_POINTS = ("error", "repeat")
_EXPECTED = "(P, 3) float array"


#: Largest absolute coordinate a reader accepts. Real data (metres, millimetres) is far below it;
#: larger finite values (3e38 from a corrupt float32 file) would overflow squared distances in the
#: nearest-neighbour ops, so they are refused at the reader with the file's name.
MAX_ABS_COORD = 1e6


def check_coordinate_range(path: Path | str, arr: np.ndarray) -> None:
    """``ValueError`` naming ``path`` when a coordinate of ``arr`` has ``|x| > MAX_ABS_COORD``."""
    if arr.size == 0 or arr.dtype.kind not in "fiu":
        return
    big = np.abs(arr) > MAX_ABS_COORD
    if big.any():
        rows = np.flatnonzero(big.reshape(len(arr), -1).any(axis=1)) if arr.ndim >= 1 else np.zeros(1, int)
        raise ValueError(
            f"{path}: {int(big.sum())} coordinates with |x| > {MAX_ABS_COORD:g} (largest "
            f"{float(np.abs(arr).max()):.3g}) in {rows.size} rows, first at row {int(rows[0])}; "
            f"coordinates are bounded by pc3d.data.base.MAX_ABS_COORD"
        )


def check_dataset_args(split: str, sampling: str, normalize: str, n_points: int, seed: int, global_stats) -> None:
    """Raise ``ValueError`` naming the argument for any invalid common reader argument."""
    if split not in ALL_SPLITS:
        raise ValueError(f"split must be one of {ALL_SPLITS}, got {split!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"n_points must be a positive int, got {n_points!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if global_stats is not None and normalize != "global":
        raise ValueError(f"global_stats is only used with normalize='global', got normalize={normalize!r}")


def parse_global_stats(stats: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Mapping with ``mean`` (3 values) and ``std`` (scalar) -> shift (1,3), scale (1,1), plain dict."""
    if not isinstance(stats, Mapping) or "mean" not in stats or "std" not in stats:
        raise ValueError(f"global_stats must be a mapping with keys 'mean' (3 values) and 'std', got {stats!r}")
    mean = stats["mean"]
    std = stats["std"]
    if isinstance(mean, torch.Tensor):
        mean = mean.detach().cpu().numpy()
    if isinstance(std, torch.Tensor):
        std = std.detach().cpu().numpy()
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape != (3,) or std_arr.shape != (1,):
        raise ValueError(
            f"global_stats: expected 'mean' with 3 values and a scalar 'std', got mean shape "
            f"{mean.shape} and std shape {std_arr.shape}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(std_arr).all() and std_arr[0] > 0):
        raise ValueError(f"global_stats must be finite with std > 0, got mean={mean.tolist()}, std={std_arr[0]}")
    plain = {"mean": [float(v) for v in mean], "std": float(std_arr[0])}
    for key in ("n_shapes", "n_points"):
        if key in stats:
            plain[key] = int(stats[key])
    return mean.reshape(1, 3).astype(np.float32), std_arr.reshape(1, 1).astype(np.float32), plain


def compute_set_stats(arrays: Iterable[tuple[Path, np.ndarray]]) -> dict[str, Any]:
    """PointFlow's global statistics over ``(path, (P, 3) array)`` pairs.

    ``mean``: per-axis mean over all rows; ``std``: population std of all coordinates taken together
    (numpy's ``x.reshape(-1).std()``). Accumulated in float64 per file and merged exactly (Chan et
    al.), so no more than one file is held at a time. Returns plain types (``mean``, ``std``,
    ``n_shapes``, ``n_points``).
    """
    axis_sum = np.zeros(3, dtype=np.float64)
    count = 0  # coordinates
    mean = 0.0
    m2 = 0.0
    n_points = 0
    n_shapes = 0
    for path, arr in arrays:
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "fiu" or arr.shape[0] == 0:
            raise ValueError(f"{path}: expected a {_EXPECTED}, got shape {arr.shape} and dtype {arr.dtype}")
        x = np.asarray(arr, dtype=np.float64)
        PointCloudSet._check_finite(path, x)
        n_shapes += 1
        n_points += x.shape[0]
        axis_sum += x.sum(axis=0)
        n_i = x.size
        mean_i = float(x.mean())
        m2_i = float(((x - mean_i) ** 2).sum())
        total = count + n_i
        delta = mean_i - mean
        mean += delta * n_i / total
        m2 += m2_i + delta * delta * count * n_i / total
        count = total
    if count == 0:
        raise ValueError("compute_global_stats: no files selected")
    return {
        "mean": [float(v) for v in axis_sum / n_points],
        "std": math.sqrt(m2 / count),
        "n_shapes": n_shapes,
        "n_points": n_points,
    }


def item_index(index: Any, n: int) -> int:
    """``index`` (any int-like, negative counts from the end) as a position in ``[0, n)``;
    ``IndexError`` naming the range otherwise."""
    index = operator.index(index)
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for {n} items")
    return index


class PointCloudSet(Dataset):
    """Base class of every reader: one split of one layout, as a map-style data set.

    Subclasses set :attr:`layout` and implement ``_list_split(split) -> [(synset, model_id, path)]``
    (the files of one split, any order) and ``_read(path) -> (points (P, 3), extras {name: (P, ...)})``
    (raising ``ValueError`` that names the file). Optional: ``_known_categories() -> [synset]``
    (every category of the layout; default: the root's subfolders), ``_read_name_map()`` (default:
    ``synsetoffset2category.txt`` when present), ``_index_file(synset, model_id)`` (tree-GAN index
    files), ``_check_options()`` (layout-specific arguments), ``_check_root()``, ``_select(categories)
    -> (synsets, entries)`` (instead of ``_list_split``: list the files of the chosen categories only),
    ``_check_rows(path, arr)``, ``_default_global_stats()``.

    Args:
        root: the layout's root folder.
        categories: ``"all"``, a name, a category id or a list mixing them; names resolve through
            the layout's name map (e.g. ``synsetoffset2category.txt``), then ShapeNet's taxonomy;
            case-insensitive.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (every shape of the categories).
        n_points: points per item. sampling: ``"random" | "fixed" | "treegan"``.
        normalize: ``"none" | "unit_sphere" | "unit_bbox" | "global"``. global_stats: see
            :class:`~pc3d.data.PC15kDataset`.
        in_memory: read (and check) every file once at construction and keep them.
        seed: seed of ``"fixed"``/``"treegan"`` sampling (and of layouts' hold-out splits).
        transform: optional ``(n_points, 3) -> (n_points, 3)`` tensor callable after normalization.
        skip_bad: read every file at construction; drop and list (:attr:`bad_files`) the bad ones.
        few_points: ``"error"`` or ``"repeat"`` for shapes with fewer than ``n_points`` rows
            (see the module docstring); ``None``: the layout's default (:attr:`default_few_points`).

    Attributes: ``synsets``, ``names``, ``label_of``, ``counts``, ``files``, ``model_ids``,
    ``synset_of_item``, ``global_stats``, ``bad_files`` (as in :class:`~pc3d.data.PC15kDataset`).
    """

    layout: ClassVar[str] = ""
    default_few_points: ClassVar[str] = "error"

    def __init__(
        self,
        root: str | Path,
        categories: str | Sequence[str] = "all",
        split: str = "train",
        n_points: int = 2048,
        sampling: str = "random",
        normalize: str = "none",
        global_stats: Mapping[str, Any] | None = None,
        in_memory: bool = False,
        seed: int = 0,
        transform=None,
        skip_bad: bool = False,
        few_points: str | None = None,
    ):
        super().__init__()
        check_dataset_args(split, sampling, normalize, n_points, seed, global_stats)
        self.few_points = self.default_few_points if few_points is None else few_points
        if self.few_points not in FEW_POINTS:
            raise ValueError(f"few_points must be one of {FEW_POINTS} or None, got {few_points!r}")
        self.split = split
        self.n_points = n_points
        self.sampling = sampling
        self.normalize = normalize
        self.in_memory = bool(in_memory)
        self.seed = seed
        self.transform = transform
        self.skip_bad = bool(skip_bad)
        self.bad_files: list[str] = []
        #: fewest rows of a usable file (set when every file is read: ``skip_bad`` or ``in_memory``)
        self.min_rows: int | None = None
        self._check_options()
        self.root = Path(root).expanduser()
        self._check_root()
        self._init_caches()

        self._name_map = self._read_name_map()
        self.synsets, entries = self._select(categories)
        self.label_of = {s: i for i, s in enumerate(self.synsets)}
        self.names = [self._name_of(s) for s in self.synsets]
        chosen = sorted((e for e in entries if e[0] in self.label_of), key=lambda e: (self.synsets.index(e[0]), e[1]))
        self._set_items([(s, m, Path(p)) for s, m, p in chosen])

        self._loaded: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] | None = None
        if self.skip_bad or self.in_memory:
            self._load_all()
        for synset in self.synsets:
            if not self.counts.get(synset):
                why = " (every file was bad, see bad_files)" if self.bad_files else ""
                exc = ValueError(
                    f"{self.root}: category {self._name_of(synset)!r} ({synset}) has no usable shapes in the "
                    f"{split!r} split{why}"
                )
                exc.bad_files = list(self.bad_files)  # type: ignore[attr-defined]  # for pc3d-data inspect
                raise exc
        self.global_stats: dict[str, Any] | None = None
        self._global_shift = self._global_scale = None
        if normalize == "global":
            if global_stats is None:
                global_stats = self._default_global_stats()
            self.set_global_stats(global_stats)

    # ------------------------------------------------------------------ hooks for subclasses
    def _check_options(self) -> None:
        """Check layout-specific arguments (set as attributes before ``__init__``)."""

    def _check_root(self) -> None:
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a directory"
            raise FileNotFoundError(f"{self.root}: data set root {what}")

    def _select(self, categories: str | Sequence[str]) -> tuple[list[str], list[tuple[str, str, Path]]]:
        """The sorted category ids ``categories`` resolves to and the files of the split (any order
        within a model id; entries of other categories are dropped)."""
        entries = self._list_split(self.split)
        available = sorted({s for s, _, _ in entries})
        return self._match_categories(categories, known=self._known_categories(), available=available), entries

    def _list_split(self, split: str) -> list[tuple[str, str, Path]]:
        raise NotImplementedError

    def _known_categories(self) -> list[str]:
        """Every category of the layout (default: the visible subfolders of the root)."""
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def _read_name_map(self) -> dict[str, str]:
        """``{name: category id}`` from ``<root>/synsetoffset2category.txt`` when present."""
        path = self.root / NAME_MAP_FILE
        return read_name_map(path) if path.is_file() else {}

    def _index_file(self, synset: str, model_id: str) -> Path | None:
        return None

    def _init_kwargs(self) -> dict[str, Any]:
        """Constructor keywords of a reader over another split of the same files (for global stats)."""
        return {
            "root": self.root,
            "categories": self.synsets,
            "n_points": 1,
            "seed": self.seed,
            "few_points": self.few_points,
        }

    def _sibling(self, split: str) -> PointCloudSet:
        return type(self)(**self._init_kwargs(), split=split, skip_bad=self.skip_bad)

    def _default_global_stats(self) -> dict[str, Any]:
        """``normalize="global"`` statistics when none are given: the train split's (this set's
        own for ``"train"``/``"all"``)."""
        source = self if self.split in ("train", "all") else self._sibling("train")
        return compute_set_stats(source._iter_arrays())

    # ------------------------------------------------------------------ bookkeeping
    def _init_caches(self) -> None:
        # Per-process caches (rebuilt in each DataLoader worker): items already checked for
        # NaN/inf, and per-shape (shift, scale).
        self._checked: set[int] = set()
        self._shape_stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _set_items(self, items: Sequence[tuple[str, str, Path]]) -> None:
        self.files = [p for _, _, p in items]
        self.model_ids = [m for _, m, _ in items]
        self.synset_of_item = [s for s, _, _ in items]
        self._labels = [self.label_of[s] for s in self.synset_of_item]
        self.counts = {s: 0 for s in self.synsets}
        for s in self.synset_of_item:
            self.counts[s] += 1

    def _load_all(self) -> None:
        """Read every file once: keep them (``in_memory``) and/or drop the bad ones (``skip_bad``)."""
        keep: list[int] = []
        loaded: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        for i, path in enumerate(self.files):
            try:
                data = self._read_checked(path)
            except ValueError as exc:
                if not self.skip_bad:
                    raise
                self.bad_files.append(str(exc))
                continue
            rows = int(data[0].shape[0])
            self.min_rows = rows if self.min_rows is None else min(self.min_rows, rows)
            if self.in_memory:
                loaded[len(keep)] = data
            keep.append(i)
        if len(keep) != len(self.files):
            items = list(zip(self.synset_of_item, self.model_ids, self.files, strict=True))
            self._set_items([items[i] for i in keep])
        self._checked = set(range(len(self.files)))
        self._loaded = loaded if self.in_memory else None

    # ------------------------------------------------------------------ names / categories
    def _name_of(self, synset: str) -> str:
        for name, s in self._name_map.items():
            if s == synset:
                return name
        return SHAPENET_SYNSETS.get(synset, synset)

    def _describe_available(self, synsets: Iterable[str]) -> str:
        return ", ".join(f"{s} ({self._name_of(s)})" if self._name_of(s) != s else s for s in synsets) or "none"

    def _where(self, synset: str) -> Path:
        """The path an error about ``synset`` names (the root; PC15k: the category folder)."""
        return self.root

    def _match_categories(
        self, categories: str | Sequence[str], known: Sequence[str], available: Sequence[str]
    ) -> list[str]:
        """Resolve ``categories`` to sorted ids among ``available`` (those with files in this split)."""
        if not available:
            raise ValueError(
                f"{self.root}: no category has a {self.split!r} split (categories in this {self.layout or 'root'}: "
                f"{self._describe_available(known)})"
            )
        if isinstance(categories, str):
            if categories.strip().lower() == "all":
                return sorted(available)
            categories = [categories]
        categories = list(categories)
        if not categories:
            raise ValueError("categories is empty; pass 'all', a name, a synset id or a list of them")
        by_norm = {norm_name(k): k for k in known}
        resolved: list[str] = []
        unmatched: list[str] = []
        for cat in categories:
            if not isinstance(cat, str):
                raise ValueError(f"categories must be strings, got {cat!r}")
            key = cat.strip()
            if key in known:
                synset = key
            elif norm_name(key) in self._name_map:
                synset = self._name_map[norm_name(key)]
            elif norm_name(key) in by_norm:
                synset = by_norm[norm_name(key)]
            elif norm_name(key) in SHAPENET_NAME_TO_SYNSET:
                synset = SHAPENET_NAME_TO_SYNSET[norm_name(key)]
            elif key in SHAPENET_SYNSETS:
                synset = key
            else:
                unmatched.append(cat)
                continue
            if synset not in available:
                if synset in known:
                    problem = f"{self._where(synset)}: category {cat!r} (synset {synset}) has no {self.split!r} split"
                else:
                    problem = f"{self.root}: category {cat!r} (synset {synset}) is not in this root"
                raise ValueError(f"{problem}; available for {self.split!r}: {self._describe_available(available)}")
            if synset not in resolved:
                resolved.append(synset)
        if unmatched:
            raise ValueError(
                f"{self.root}: no category matched {unmatched}; available for {self.split!r}: "
                f"{self._describe_available(available)}"
            )
        return sorted(resolved)

    # ------------------------------------------------------------------ checks
    def _row_range(self, n_rows: int) -> tuple[int, int]:
        return 0, n_rows

    def _check_array(self, path: Path, arr: np.ndarray) -> None:
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"{path}: expected a {_EXPECTED}, got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{path}: expected a {_EXPECTED}, got dtype {arr.dtype}")
        self._check_rows(path, arr)

    def _check_rows(self, path: Path, arr: np.ndarray) -> None:
        """Refuse a ``(P, 3)`` array with too few rows for the sampling."""
        need = 1 if self.sampling == "treegan" or self.few_points == "repeat" else self.n_points
        if arr.shape[0] < need:
            raise ValueError(f"{path}: expected a {_EXPECTED} with P >= n_points={need}, got shape {arr.shape}")

    @staticmethod
    def _check_finite(path: Path, arr: np.ndarray) -> None:
        """Refuse NaN/inf coordinates and coordinates beyond :data:`MAX_ABS_COORD` (naming the file)."""
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                bad_rows = np.flatnonzero(~finite.all(axis=1))
                raise ValueError(
                    f"{path}: {int((~finite).sum())} non-finite coordinates (NaN or inf) in {bad_rows.size} rows, "
                    f"first at row {int(bad_rows[0])}"
                )
        check_coordinate_range(path, arr)

    def _read_checked(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, not a {path.suffix or 'data'} file")
        try:
            arr, extras = self._read(path)
        except FileNotFoundError as exc:
            raise ValueError(f"{path}: missing file ({exc.filename or exc})") from exc
        except IsADirectoryError as exc:
            raise ValueError(f"{path}: is a directory, not a file ({exc.filename or exc})") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc
        self._check_array(path, arr)
        self._check_finite(path, arr)
        for name, values in extras.items():
            if len(values) != arr.shape[0]:
                raise ValueError(f"{path}: {name} has {len(values)} rows, expected one per point ({arr.shape[0]})")
        return arr, extras

    def _cloud(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The checked ``(P, 3)`` array of item ``index`` and its per-point extras."""
        if self._loaded is not None:
            arr, extras = self._loaded[index]
            self._check_array(self.files[index], arr)
            return arr, extras
        return self._read_checked(self.files[index])

    def _iter_arrays(self) -> Iterable[tuple[Path, np.ndarray]]:
        for i, path in enumerate(self.files):
            yield path, self._cloud(i)[0]

    def validate(self, raise_on_error: bool = True) -> list[str]:
        """Check every file (readable, ``(P, 3)``, enough rows, finite).

        Returns the list of problems (``"<path>: <problem>"``); with ``raise_on_error`` a
        non-empty list raises one ``ValueError`` listing them (the first 20 in full).
        """
        problems = []
        for i in range(len(self.files)):
            try:
                self._validate_one(i)
            except ValueError as exc:
                problems.append(str(exc))
            else:
                self._checked.add(i)
        if problems and raise_on_error:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ValueError(f"{len(problems)} of {len(self.files)} files in {self.root} are invalid:\n  {shown}{more}")
        return problems

    def _validate_one(self, index: int) -> None:
        self._cloud(index)

    def variant(self, *, sampling: str | None = None, transform=..., seed: int | None = None) -> PointCloudSet:
        """A shallow copy with another ``sampling``/``transform``/``seed``, sharing the file
        list, the statistics and (with ``in_memory``) the loaded arrays."""
        other = copy.copy(self)
        if sampling is not None:
            if sampling not in SAMPLINGS:
                raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
            other.sampling = sampling
        if transform is not ...:
            other.transform = transform
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seed must be a non-negative int, got {seed!r}")
            other.seed = seed
        other._checked = set(self._checked)
        other._shape_stats = dict(self._shape_stats)
        return other

    # ------------------------------------------------------------------ normalization
    def set_global_stats(self, stats: Mapping[str, Any]) -> None:
        """Use ``stats`` (``{"mean": 3 values, "std": scalar}``) for ``normalize="global"``."""
        if self.normalize != "global":
            raise ValueError(f"global stats are only used with normalize='global', not {self.normalize!r}")
        self._global_shift, self._global_scale, self.global_stats = parse_global_stats(stats)

    def _shift_scale(self, index: int, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.normalize == "none":
            return np.zeros((1, 3), np.float32), np.ones((1, 1), np.float32)
        if self.normalize == "global":
            return self._global_shift, self._global_scale
        cached = self._shape_stats.get(index)
        if cached is None:
            full = np.asarray(arr, dtype=np.float64)
            fn = unit_sphere_stats if self.normalize == "unit_sphere" else unit_bbox_stats
            shift, scale = fn(full)
            cached = (shift.astype(np.float32), scale.astype(np.float32))
            self._shape_stats[index] = cached
        return cached

    # ------------------------------------------------------------------ items
    def _treegan_rows(self, index: int, n_rows: int) -> np.ndarray:
        synset, model_id = self.synset_of_item[index], self.model_ids[index]
        path = self._index_file(synset, model_id)
        if path is not None and path.is_file():
            return read_index_file(path, self.n_points, n_rows)
        return drawn_index(self.seed, synset, model_id, n_rows, self.n_points)

    def _sample_rows(self, index: int, n_rows: int) -> np.ndarray:
        lo, hi = self._row_range(n_rows)
        n, missing = hi - lo, self.n_points - (hi - lo)
        if self.sampling == "treegan":
            rows = self._treegan_rows(index, n)
        elif self.sampling == "random":
            rows = torch.randperm(n)[: self.n_points].numpy()
            if missing > 0:  # few_points="repeat" (else _check_array refused the file)
                rows = np.concatenate([rows, torch.randint(n, (missing,)).numpy()])
        else:
            rng = np.random.default_rng((self.seed, index))
            if missing > 0:
                rows = np.concatenate([rng.permutation(n), rng.integers(0, n, size=missing)])
            else:
                rows = rng.choice(n, size=self.n_points, replace=False)
        return rows + lo

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = item_index(index, len(self))
        arr, extras = self._cloud(index)
        rows = self._sample_rows(index, arr.shape[0])
        raw = np.asarray(arr[rows], dtype=np.float64)
        shift, scale = self._shift_scale(index, arr)
        points = ((raw - shift.astype(np.float64)) / scale.astype(np.float64)).astype(np.float32)
        points_t = torch.from_numpy(points)
        if self.transform is not None:
            points_t = self.transform(points_t)
        item = {
            "points": points_t,
            "category": torch.tensor(self._labels[index], dtype=torch.int64),
            "synset": self.synset_of_item[index],
            "model_id": self.model_ids[index],
            "index": index,
            "shift": torch.from_numpy(shift.copy()),
            "scale": torch.from_numpy(scale.copy()),
        }
        for name, values in extras.items():
            item[name] = torch.from_numpy(np.asarray(values)[rows].copy())
        return item

    def __repr__(self) -> str:
        cats = ", ".join(f"{n}={self.counts[s]}" for s, n in zip(self.synsets, self.names, strict=True))
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n_items={len(self)}, "
            f"n_points={self.n_points}, sampling={self.sampling!r}, normalize={self.normalize!r}, "
            f"categories=[{cats}])"
        )
