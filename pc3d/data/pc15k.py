"""Reader for ShapeNetCore.v2.PC15k (PointFlow's point-cloud release) and the built-in set.

Layout on disk (the public PC15k layout; ``pc3d.data.synthetic`` writes the same one)::

    <root>/<synset>/{train,val,test}/<model_id>.npy     float array (P, 3), P = 15000
    <root>/synsetoffset2category.txt                    optional, lines "name<TAB>synset"

The real release has no name map; category names then resolve through
:data:`SHAPENET_SYNSETS` (ShapeNetCore's taxonomy) and :data:`SHAPENET_ALIASES`.

Items (see :class:`PC15kDataset`) are dicts::

    points    FloatTensor (n_points, 3)   normalized: (raw - shift) / scale
    category  LongTensor  ()              contiguous label, synsets in sorted order
    synset    str                         e.g. "03001627"
    model_id  str                         file name without ".npy"
    index     int                         position in the data set
    shift     FloatTensor (1, 3)
    scale     FloatTensor (1, 1)          raw = points * scale + shift

Normalization (``normalize=``), see also :mod:`pc3d.data.transforms`:

* ``"none"``: shift 0, scale 1.
* ``"unit_sphere"``: per shape; shift = centroid (mean point), scale = max distance from it.
* ``"unit_bbox"``: per shape; shift = bounding-box centre, scale = longest box side, so the
  shape fits in ``[-0.5, 0.5]^3`` with its longest side exactly 1 (3D-LMNet convention).
* ``"global"``: PointFlow's; shift = per-axis mean over all points of all *train* shapes of
  the selected categories, scale = one scalar std over all their coordinates (numpy's
  ``x.reshape(-1).std()``, population std). See :func:`compute_global_stats`.

Per-shape statistics are computed from **all rows of the file**, not from the sample, so a
shape's shift and scale do not depend on the draw (a sample's max norm is therefore <= 1,
not exactly 1, under ``unit_sphere``). Global statistics also use all rows of every train
file, as PointFlow does.

Sampling (``sampling=``): ``"random"`` draws ``n_points`` rows without replacement, fresh on
every call, from torch's global RNG (DataLoader workers seed it per worker and per epoch, so
draws differ across epochs and are reproducible under ``lightning.seed_everything``);
``"fixed"`` draws the same rows for an index every time (seeded by ``(seed, index)``).

``pointflow_split=True`` follows PointFlow: the train split samples from the first 10,000 rows
of each file and val/test sample from the remaining rows (5,000 in PC15k). With the default
``False`` every split samples from all rows.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pc3d.data.transforms import unit_bbox_stats, unit_sphere_stats

__all__ = [
    "NAME_MAP_FILE",
    "NORMALIZATIONS",
    "POINTFLOW_TRAIN_ROWS",
    "SAMPLINGS",
    "SHAPENET_ALIASES",
    "SHAPENET_SYNSETS",
    "SPLITS",
    "PC15kDataset",
    "compute_global_stats",
    "load_cloud",
    "read_name_map",
]

SPLITS = ("train", "val", "test")
SAMPLINGS = ("random", "fixed")
NORMALIZATIONS = ("none", "unit_sphere", "unit_bbox", "global")
NAME_MAP_FILE = "synsetoffset2category.txt"
POINTFLOW_TRAIN_ROWS = 10_000
#: Name of the manifest the built-in generator writes last, in the parent of the PC15k dir.
SYNTHETIC_MANIFEST = "pc3d_synthetic.json"

#: ShapeNetCore synset id -> name (ShapeNet's taxonomy; the 13 3D-R2N2 classes use the
#: R2N2 names: display, loudspeaker, telephone, vessel).
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash_bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file_cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorcycle",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "pot",
    "04004475": "printer",
    "04074963": "remote_control",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "vessel",
    "04554684": "washer",
}

#: Other names in use (PointFlow, ShapeNet-part, WordNet) -> synset id.
SHAPENET_ALIASES: dict[str, str] = {
    "plane": "02691156",
    "aeroplane": "02691156",
    "ashcan": "02747177",
    "trash_can": "02747177",
    "bookcase": "02871439",
    "tin_can": "02946921",
    "cellular_telephone": "02992529",
    "mobile_phone": "02992529",
    "monitor": "03211117",
    "file": "03337140",
    "speaker": "03691459",
    "motorbike": "03790512",
    "flowerpot": "03991062",
    "remote": "04074963",
    "couch": "04256520",
    "phone": "04401088",
    "watercraft": "04530566",
    "boat": "04530566",
    "ship": "04530566",
}

_SHAPENET_NAME_TO_SYNSET = {**SHAPENET_ALIASES, **{name: s for s, name in SHAPENET_SYNSETS.items()}}
_EXPECTED = "(P, 3) float array"


def _norm_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_name_map(path: str | Path) -> dict[str, str]:
    """Read a ``synsetoffset2category.txt`` (lines ``name<TAB>synset``) -> ``{name: synset}``.

    Names are lower-cased with spaces/hyphens turned into underscores. Lines without a tab
    split at their last whitespace. Blank lines and lines starting with ``#`` are skipped;
    any other line without exactly two fields raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # Tab-separated; without a tab the last whitespace-separated token is the synset.
        fields = line.split("\t") if "\t" in line else line.rsplit(None, 1)
        fields = [f.strip() for f in fields if f.strip()]
        if len(fields) != 2:
            raise ValueError(f"{path}: line {lineno}: expected 'name<TAB>synset', got {line!r}")
        out[_norm_name(fields[0])] = fields[1]
    return out


def _describe_load_error(exc: BaseException) -> str:
    msg = str(exc)
    if isinstance(exc, EOFError):
        return f"empty or truncated .npy file (no array data: {msg})"
    low = msg.lower()
    if "object" in low or "pickle" in low:
        return f"holds pickled Python objects, which are refused (allow_pickle=False): {msg}"
    if "mmap length" in low or "fully written" in low or "could only read" in low:
        return f"truncated .npy file (shorter than its header says): {msg}"
    return f"not a readable .npy array: {msg}"


def load_cloud(path: str | Path, *, mmap: bool = True) -> np.ndarray:
    """Load one ``.npy`` cloud safely; ``(P, 3)`` is checked by the caller.

    Uses ``np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)`` and turns
    numpy's errors (``ValueError`` for truncated or pickled files, ``EOFError`` for empty
    ones, ``OSError``) into a ``ValueError`` whose message starts with the full path and
    says what is wrong.
    """
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: {_describe_load_error(exc)}") from exc


def _parse_global_stats(stats: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
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


class PC15kDataset(Dataset):
    """ShapeNetCore.v2.PC15k point clouds (real release or the built-in set), one split.

    Args:
        root: the PC15k directory, holding ``<synset>/{train,val,test}/*.npy`` (for the
            built-in set: ``<builtin_root>/ShapeNetCore.v2.PC15k``).
        categories: ``"all"`` (every synset directory that has ``split``), a name
            (``"chair"``), a synset id (``"03001627"``), or a list mixing them. Names resolve
            through ``<root>/synsetoffset2category.txt`` when present, then through
            :data:`SHAPENET_SYNSETS` / :data:`SHAPENET_ALIASES`; case-insensitive.
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_points: points per item, drawn without replacement.
        sampling: ``"random"`` (fresh draw every call, torch global RNG) or ``"fixed"``
            (same draw per index, seeded by ``(seed, index)``).
        normalize: ``"none"``, ``"unit_sphere"``, ``"unit_bbox"`` or ``"global"`` (see the
            module docstring for the exact definitions).
        global_stats: for ``"global"``: ``{"mean": 3 values, "std": scalar}`` from
            :func:`compute_global_stats` on the train split; pass the train statistics to
            val/test so every split shares them. ``None`` computes them from the train
            split of the same root and categories.
        pointflow_split: train samples from rows ``[0, 10000)``, val/test from rows
            ``[10000, P)`` (PointFlow); ``False`` samples from all rows.
        in_memory: load (and validate) every file once at construction; otherwise files are
            memory-mapped per item and each is checked the first time it is read.
        seed: seed of the ``"fixed"`` sampling.
        transform: optional callable ``(n_points, 3) tensor -> (n_points, 3) tensor``
            applied after normalization (e.g. :class:`pc3d.data.transforms.RandomRotateY`).

    Attributes:
        synsets: selected synset ids, sorted; ``label = synsets.index(synset)``.
        names: a name per synset (name map, then ShapeNet's table, else the id itself).
        label_of: ``{synset: label}``.
        counts: ``{synset: number of files}`` in this split.
        files: the ``.npy`` paths, grouped by synset then sorted by model id.
        global_stats: the plain-dict statistics used by ``"global"`` (else ``None``).

    Errors: ``FileNotFoundError`` for a missing root; ``ValueError`` (message naming the
    full path and the problem) for a root without ``<synset>/<split>`` dirs, unmatched
    categories, an empty category/split, an unreadable, truncated, empty or pickled
    ``.npy``, a wrong shape, too few rows, NaN/inf coordinates, or an incomplete built-in
    set.
    """

    def __init__(
        self,
        root: str | Path,
        categories: str | Sequence[str] = "all",
        split: str = "train",
        n_points: int = 2048,
        sampling: str = "random",
        normalize: str = "none",
        global_stats: Mapping[str, Any] | None = None,
        pointflow_split: bool = False,
        in_memory: bool = False,
        seed: int = 0,
        transform=None,
    ):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
            raise ValueError(f"n_points must be a positive int, got {n_points!r}")
        if pointflow_split and split == "train" and n_points > POINTFLOW_TRAIN_ROWS:
            raise ValueError(f"n_points={n_points} exceeds the {POINTFLOW_TRAIN_ROWS} train rows of pointflow_split")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if global_stats is not None and normalize != "global":
            raise ValueError(f"global_stats is only used with normalize='global', got normalize={normalize!r}")

        self.root = Path(root).expanduser().absolute()
        self.split = split
        self.n_points = n_points
        self.sampling = sampling
        self.normalize = normalize
        self.pointflow_split = bool(pointflow_split)
        self.in_memory = bool(in_memory)
        self.seed = seed
        self.transform = transform

        _check_root(self.root)
        self._name_map = self._read_name_map()
        self.synsets = self._resolve_categories(categories)
        builtin = sorted(set(self.synsets) & _builtin_synsets())
        if builtin and not (self.root.parent / SYNTHETIC_MANIFEST).exists():
            raise _incomplete_builtin(self.root.parent, f"built-in synsets {', '.join(builtin)} are present")
        self.label_of = {s: i for i, s in enumerate(self.synsets)}
        self.names = [self._name_of(s) for s in self.synsets]

        self.files: list[Path] = []
        self._labels: list[int] = []
        self.counts: dict[str, int] = {}
        for synset in self.synsets:
            split_dir = self.root / synset / split
            found = sorted(p for p in split_dir.iterdir() if p.suffix == ".npy" and p.is_file())
            if not found:
                raise ValueError(
                    f"{split_dir}: no .npy files (category {self._name_of(synset)!r}, split {split!r} is empty)"
                )
            self.files.extend(found)
            self._labels.extend([self.label_of[synset]] * len(found))
            self.counts[synset] = len(found)
        self.model_ids = [p.stem for p in self.files]
        self.synset_of_item = [p.parent.parent.name for p in self.files]

        # Per-process caches (rebuilt in each DataLoader worker): files already checked for
        # NaN/inf, and per-shape (shift, scale).
        self._checked: set[int] = set()
        self._shape_stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        self.global_stats: dict[str, Any] | None = None
        self._global_shift = self._global_scale = None
        if normalize == "global":
            if global_stats is None:
                global_stats = compute_global_stats(self.root, self.synsets, split="train")
            self.set_global_stats(global_stats)

        self._arrays: list[np.ndarray] | None = None
        if self.in_memory:
            arrays = []
            for i, path in enumerate(self.files):
                arr = load_cloud(path, mmap=False)
                self._check_array(path, arr)
                self._check_finite(path, arr)
                self._checked.add(i)
                arrays.append(arr)
            self._arrays = arrays

    # ------------------------------------------------------------------ names / categories
    def _read_name_map(self) -> dict[str, str]:
        path = self.root / NAME_MAP_FILE
        return read_name_map(path) if path.is_file() else {}

    def _name_of(self, synset: str) -> str:
        for name, s in self._name_map.items():
            if s == synset:
                return name
        return SHAPENET_SYNSETS.get(synset, synset)

    def _describe_available(self, synsets: Iterable[str]) -> str:
        return ", ".join(f"{s} ({self._name_of(s)})" if self._name_of(s) != s else s for s in synsets) or "none"

    def _resolve_categories(self, categories: str | Sequence[str]) -> list[str]:
        dirs = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        with_split = [d for d in dirs if (self.root / d / self.split).is_dir()]
        any_split = [d for d in dirs if any((self.root / d / s).is_dir() for s in SPLITS)]
        if not any_split:
            hint = ""
            if (self.root / "ShapeNetCore.v2.PC15k").is_dir():
                hint = f"; did you mean {self.root / 'ShapeNetCore.v2.PC15k'}?"
            raise ValueError(f"{self.root}: not a PC15k root: no <synset>/{{train,val,test}} directories found{hint}")
        if not with_split:
            raise ValueError(
                f"{self.root}: no category has a {self.split!r} split (categories with other splits: "
                f"{self._describe_available(any_split)})"
            )
        if isinstance(categories, str):
            if categories.strip().lower() == "all":
                return with_split
            categories = [categories]
        categories = list(categories)
        if not categories:
            raise ValueError("categories is empty; pass 'all', a name, a synset id or a list of them")

        resolved: list[str] = []
        unmatched: list[str] = []
        for cat in categories:
            if not isinstance(cat, str):
                raise ValueError(f"categories must be strings, got {cat!r}")
            key = cat.strip()
            if key in dirs:
                synset = key
            elif _norm_name(key) in self._name_map:
                synset = self._name_map[_norm_name(key)]
            elif _norm_name(key) in _SHAPENET_NAME_TO_SYNSET:
                synset = _SHAPENET_NAME_TO_SYNSET[_norm_name(key)]
            elif key in SHAPENET_SYNSETS:
                synset = key
            else:
                unmatched.append(cat)
                continue
            if synset not in with_split:
                if synset in dirs:
                    problem = f"{self.root / synset}: category {cat!r} (synset {synset}) has no {self.split!r} split"
                else:
                    problem = f"{self.root}: category {cat!r} (synset {synset}) is not in this root"
                raise ValueError(f"{problem}; available for {self.split!r}: {self._describe_available(with_split)}")
            if synset not in resolved:
                resolved.append(synset)
        if unmatched:
            raise ValueError(
                f"{self.root}: no category matched {unmatched}; available for {self.split!r}: "
                f"{self._describe_available(with_split)}"
            )
        return sorted(resolved)

    # ------------------------------------------------------------------ checks
    def _row_range(self, n_rows: int) -> tuple[int, int]:
        if not self.pointflow_split:
            return 0, n_rows
        if self.split == "train":
            return 0, POINTFLOW_TRAIN_ROWS
        return POINTFLOW_TRAIN_ROWS, n_rows

    def _check_array(self, path: Path, arr: np.ndarray) -> None:
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"{path}: expected a {_EXPECTED}, got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{path}: expected a {_EXPECTED}, got dtype {arr.dtype}")
        n_rows = arr.shape[0]
        if self.pointflow_split:
            if n_rows < POINTFLOW_TRAIN_ROWS:
                raise ValueError(
                    f"{path}: pointflow_split needs at least {POINTFLOW_TRAIN_ROWS} rows, got shape {arr.shape}"
                )
            lo, hi = self._row_range(n_rows)
            if hi - lo < self.n_points:
                raise ValueError(
                    f"{path}: pointflow_split {self.split!r} rows [{lo}, {hi}) hold {hi - lo} points, fewer "
                    f"than n_points={self.n_points} (shape {arr.shape})"
                )
        elif n_rows < self.n_points:
            raise ValueError(
                f"{path}: expected a {_EXPECTED} with P >= n_points={self.n_points}, got shape {arr.shape}"
            )

    @staticmethod
    def _check_finite(path: Path, arr: np.ndarray) -> None:
        if arr.dtype.kind != "f":
            return
        finite = np.isfinite(arr)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=1))
            raise ValueError(
                f"{path}: {int((~finite).sum())} non-finite coordinates (NaN or inf) in {bad_rows.size} rows, "
                f"first at row {int(bad_rows[0])}"
            )

    def _array(self, index: int) -> np.ndarray:
        """The (checked) array of item ``index``: in memory, or memory-mapped."""
        if self._arrays is not None:
            return self._arrays[index]
        path = self.files[index]
        arr = load_cloud(path, mmap=True)
        self._check_array(path, arr)
        if index not in self._checked:
            self._check_finite(path, arr)
            self._checked.add(index)
        return arr

    def validate(self, raise_on_error: bool = True) -> list[str]:
        """Check every file (readable, ``(P, 3)``, enough rows, finite).

        Returns the list of problems (``"<path>: <problem>"``); with ``raise_on_error`` a
        non-empty list raises one ``ValueError`` listing them (the first 20 in full).
        """
        problems = []
        for i, path in enumerate(self.files):
            try:
                arr = self._arrays[i] if self._arrays is not None else load_cloud(path, mmap=True)
                self._check_array(path, arr)
                self._check_finite(path, arr)
            except ValueError as exc:
                problems.append(str(exc))
            else:
                self._checked.add(i)
        if problems and raise_on_error:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ValueError(f"{len(problems)} of {len(self.files)} files in {self.root} are invalid:\n  {shown}{more}")
        return problems

    def variant(self, *, sampling: str | None = None, transform=..., seed: int | None = None) -> PC15kDataset:
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
        self._global_shift, self._global_scale, self.global_stats = _parse_global_stats(stats)

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
    def _sample_rows(self, index: int, n_rows: int) -> np.ndarray:
        lo, hi = self._row_range(n_rows)
        if self.sampling == "random":
            rows = torch.randperm(hi - lo)[: self.n_points].numpy()
        else:
            rng = np.random.default_rng((self.seed, index))
            rows = rng.choice(hi - lo, size=self.n_points, replace=False)
        return rows + lo

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        arr = self._array(index)
        rows = self._sample_rows(index, arr.shape[0])
        raw = np.asarray(arr[rows], dtype=np.float64)
        shift, scale = self._shift_scale(index, arr)
        points = ((raw - shift.astype(np.float64)) / scale.astype(np.float64)).astype(np.float32)
        points_t = torch.from_numpy(points)
        if self.transform is not None:
            points_t = self.transform(points_t)
        return {
            "points": points_t,
            "category": torch.tensor(self._labels[index], dtype=torch.int64),
            "synset": self.synset_of_item[index],
            "model_id": self.model_ids[index],
            "index": index,
            "shift": torch.from_numpy(shift.copy()),
            "scale": torch.from_numpy(scale.copy()),
        }

    def __repr__(self) -> str:
        cats = ", ".join(f"{n}={self.counts[s]}" for s, n in zip(self.synsets, self.names, strict=True))
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n_items={len(self)}, "
            f"n_points={self.n_points}, sampling={self.sampling!r}, normalize={self.normalize!r}, "
            f"pointflow_split={self.pointflow_split}, categories=[{cats}])"
        )


def _incomplete_builtin(parent: Path, why: str) -> ValueError:
    return ValueError(
        f"{parent}: the built-in data set is incomplete ({why}, and no {SYNTHETIC_MANIFEST}: generation "
        f"was interrupted or is still running); regenerate it with "
        f"pc3d.data.synthetic.ensure_generated({str(parent)!r}, ...) using the same parameters "
        f"(or overwrite=True)"
    )


def _builtin_synsets() -> set[str]:
    """Synset ids of the built-in procedural set ({} if pc3d.data.synthetic is unavailable)."""
    try:
        from pc3d.data.synthetic import CATEGORIES
    except ImportError:  # pragma: no cover - the module ships with pc3d
        return set()
    return set(CATEGORIES.values())


def _check_root(root: Path) -> None:
    """Missing root -> FileNotFoundError; interrupted built-in generation -> ValueError.

    The built-in generator writes ``<parent>/pc3d_synthetic.json`` last and works in
    ``<parent>/.tmp-*`` folders: ``.tmp-*`` folders without the manifest mean an interrupted
    (or running) generation. Built-in synset ids without the manifest are refused too, in
    :class:`PC15kDataset` once the categories are known.
    """
    parent = root.parent
    if parent.is_dir() and not (parent / SYNTHETIC_MANIFEST).exists():
        tmp = sorted(p.name for p in parent.glob(".tmp-*") if p.is_dir())
        if tmp:
            raise _incomplete_builtin(parent, f"found {', '.join(tmp)}")
    if not root.exists():
        raise FileNotFoundError(f"{root}: data set root does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data set root is not a directory")


def compute_global_stats(
    root: str | Path | PC15kDataset,
    categories: str | Sequence[str] = "all",
    split: str = "train",
) -> dict[str, Any]:
    """PointFlow's global normalization statistics over one split (the train split).

    ``mean`` is the per-axis mean over all rows of all files of the selected categories;
    ``std`` is one scalar: the population std of all their coordinates taken together
    (numpy's ``all_points.reshape(-1).std()``, around the mean of all coordinates). Sums are
    accumulated in float64, per file, and merged exactly (Chan et al.), so the result
    matches the naive numpy computation to float64 rounding without holding all files.

    Args:
        root: a PC15k root, or a :class:`PC15kDataset` whose files are used as they are
            (``categories``/``split`` are then ignored).
        categories, split: as in :class:`PC15kDataset`.

    Returns:
        ``{"mean": [mx, my, mz], "std": s, "n_shapes": int, "n_points": int}`` (plain
        types, so it can go into a checkpoint).
    """
    if isinstance(root, PC15kDataset):
        files = root.files
    else:
        files = PC15kDataset(root, categories=categories, split=split, n_points=1).files
    axis_sum = np.zeros(3, dtype=np.float64)
    count = 0  # coordinates
    mean = 0.0
    m2 = 0.0
    n_points = 0
    for path in files:
        arr = load_cloud(path, mmap=True)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "fiu" or arr.shape[0] == 0:
            raise ValueError(f"{path}: expected a {_EXPECTED}, got shape {arr.shape} and dtype {arr.dtype}")
        x = np.asarray(arr, dtype=np.float64)
        PC15kDataset._check_finite(path, x)
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
    std = math.sqrt(m2 / count)
    return {
        "mean": [float(v) for v in axis_sum / n_points],
        "std": std,
        "n_shapes": len(files),
        "n_points": n_points,
    }
