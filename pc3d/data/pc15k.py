"""Reader for ShapeNetCore.v2.PC15k (PointFlow's point-cloud release) and the built-in set.

Layout on disk (the public PC15k layout; ``pc3d.data.synthetic`` writes the same one)::

    <root>/<synset>/{train,val,test}/<model_id>.npy     float array (P, 3), P = 15000
    <root>/synsetoffset2category.txt                    optional, lines "name<TAB>synset"

The real release has no name map; category names then resolve through
:data:`~pc3d.data.taxonomy.SHAPENET_SYNSETS` (ShapeNetCore's taxonomy) and
:data:`~pc3d.data.taxonomy.SHAPENET_ALIASES`.

Items (see :class:`PC15kDataset`) are dicts::

    points    FloatTensor (n_points, 3)   normalized: (raw - shift) / scale
    category  LongTensor  ()              contiguous label, synsets in sorted order
    synset    str                         e.g. "03001627"
    model_id  str                         file name without ".npy"
    index     int                         position in the data set
    shift     FloatTensor (1, 3)
    scale     FloatTensor (1, 1)          raw = points * scale + shift
    fine_label LongTensor ()              built-in set only: index into
                                          ``pc3d.data.synthetic.FINE_CLASSES`` (-1 for a shape
                                          the built-in root's ``fine_labels.json`` does not list)

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
``"fixed"`` draws the same rows for an index every time (seeded by ``(seed, index)``);
``"treegan"`` uses one fixed index set per shape drawn with replacement (see :mod:`pc3d.data.base`).

``pointflow_split=True`` follows PointFlow: the train split samples from the first 10,000 rows
of each file and val/test sample from the remaining rows (5,000 in PC15k). With the default
``False`` every split samples from all rows. ``split="all"`` reads the files of every split
(sampled as the train split).

The sampling, normalization, item and bad-file machinery is shared with every other layout's
reader through :class:`pc3d.data.base.PointCloudSet`; this module adds the PC15k listing, the
memory-mapped ``.npy`` loading and the PointFlow row split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pc3d.data.base import PointCloudSet, compute_set_stats
from pc3d.data.splits import SPLITS
from pc3d.data.taxonomy import PC15K_DIRNAME, SYNTHETIC_MANIFEST

__all__ = [
    "POINTFLOW_TRAIN_ROWS",
    "PC15kDataset",
    "compute_global_stats",
    "check_npy_header",
    "load_cloud",
]

POINTFLOW_TRAIN_ROWS = 10_000


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


def check_npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the header of a ``.npy`` file and check it against the file's size.

    Returns ``(shape, dtype)``. Raises ``ValueError`` naming the file when it is not a ``.npy``
    file (bad magic or header), holds Python objects (pickles are refused), or is shorter than
    its header says (``prod(shape) * itemsize`` bytes of data), so a header claiming a huge
    shape is refused before anything is allocated or memory-mapped. ``IsADirectoryError`` and
    ``FileNotFoundError`` propagate (the callers name them).
    """
    path = Path(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:  # (3, 0): utf-8 header, same fields (no public reader)
                try:
                    from numpy.lib._format_impl import _read_array_header
                except ImportError:  # numpy < 2
                    from numpy.lib.format import _read_array_header
                shape, _, dtype = _read_array_header(fh, version)
        except EOFError as exc:
            raise ValueError(f"{path}: empty or truncated .npy file (incomplete header: {exc})") from exc
        except (ValueError, SyntaxError, TypeError) as exc:
            if str(exc).startswith("EOF"):  # numpy's read_magic / header reads on a short file
                raise ValueError(f"{path}: empty or truncated .npy file (incomplete header: {exc})") from exc
            raise ValueError(f"{path}: not a readable .npy file (bad header: {exc})") from exc
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(
            f"{path}: holds pickled Python objects (dtype {dtype}), which are refused (allow_pickle=False)"
        )
    if any(int(d) < 0 for d in shape):
        raise ValueError(f"{path}: .npy header has a negative dimension, shape {shape}")
    need = math.prod(int(d) for d in shape) * dtype.itemsize
    if size - offset < need:
        raise ValueError(
            f"{path}: truncated or corrupt .npy file: its header says shape {shape} dtype {dtype} "
            f"({need} bytes of data) but the file holds {size - offset} bytes after the header"
        )
    return shape, dtype


def load_cloud(path: str | Path, *, mmap: bool = True) -> np.ndarray:
    """Load one ``.npy`` cloud safely; ``(P, 3)`` is checked by the caller.

    The header is read and checked first (:func:`check_npy_header`: no pickles, data as long as
    the header says, so a corrupt header never triggers a huge allocation); then
    ``np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)``. numpy's errors
    (``ValueError`` for truncated or pickled files, ``EOFError`` for empty ones, ``OSError``) and
    a directory named ``*.npy`` become a ``ValueError`` whose message starts with the full path
    and says what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a .npy file")
    try:
        check_npy_header(path)
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise
    except ValueError as exc:
        if str(exc).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: {_describe_load_error(exc)}") from exc
    except (EOFError, OSError, MemoryError) as exc:
        raise ValueError(f"{path}: {_describe_load_error(exc)}") from exc


class PC15kDataset(PointCloudSet):
    """ShapeNetCore.v2.PC15k point clouds (real release or the built-in set), one split.

    Args:
        root: the PC15k directory, holding ``<synset>/{train,val,test}/*.npy`` (for the
            built-in set: ``<builtin_root>/ShapeNetCore.v2.PC15k``).
        categories: ``"all"`` (every synset directory that has ``split``), a name
            (``"chair"``), a synset id (``"03001627"``), or a list mixing them. Names resolve
            through ``<root>/synsetoffset2category.txt`` when present, then through
            :mod:`pc3d.data.taxonomy`; case-insensitive.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (the files of every split).
        n_points: points per item, drawn without replacement (with replacement for ``"treegan"``).
        sampling: ``"random"`` (fresh draw every call, torch global RNG), ``"fixed"``
            (same draw per index, seeded by ``(seed, index)``) or ``"treegan"`` (one fixed set
            per shape, with replacement; see :mod:`pc3d.data.base`).
        normalize: ``"none"``, ``"unit_sphere"``, ``"unit_bbox"`` or ``"global"`` (see the
            module docstring for the exact definitions).
        global_stats: for ``"global"``: ``{"mean": 3 values, "std": scalar}`` from
            :func:`compute_global_stats` on the train split; pass the train statistics to
            val/test so every split shares them. ``None`` computes them from the train
            split of the same root and categories (from this set itself for ``split="all"``).
        pointflow_split: (keyword only) train samples from rows ``[0, 10000)``, val/test from
            rows ``[10000, P)`` (PointFlow); ``False`` samples from all rows.
        in_memory: load (and validate) every file once at construction; otherwise files are
            memory-mapped per item and each is checked the first time it is read.
        seed: seed of the ``"fixed"`` sampling.
        transform: optional callable ``(n_points, 3) tensor -> (n_points, 3) tensor``
            applied after normalization (e.g. :class:`pc3d.data.transforms.RandomRotateY`).
        skip_bad: check every file at construction; bad ones are dropped and listed in
            :attr:`bad_files` instead of raising.
        few_points: as in :class:`~pc3d.data.base.PointCloudSet` (PC15k files have 15,000
            rows, so only ``n_points > 15000`` meets it; default ``"error"``).

    Every argument but ``root`` and ``pointflow_split`` goes to
    :class:`~pc3d.data.base.PointCloudSet` (positionally in this order after ``root``).

    Attributes:
        synsets: selected synset ids, sorted; ``label = synsets.index(synset)``.
        names: a name per synset (name map, then ShapeNet's table, else the id itself).
        label_of: ``{synset: label}``.
        counts: ``{synset: number of files}`` in this split.
        files: the ``.npy`` paths, grouped by synset then sorted by model id.
        global_stats: the plain-dict statistics used by ``"global"`` (else ``None``).
        bad_files: ``"<path>: <problem>"`` of every file dropped by ``skip_bad``.

    Errors: ``FileNotFoundError`` for a missing root; ``ValueError`` (message naming the
    full path and the problem) for a root without ``<synset>/<split>`` dirs, unmatched
    categories, an empty category/split, an unreadable, truncated, empty or pickled
    ``.npy``, a wrong shape, too few rows, NaN/inf coordinates, or an incomplete built-in
    set.
    """

    layout = "pc15k"

    def __init__(self, root: str | Path, *args, pointflow_split: bool = False, **kwargs):
        self.pointflow_split = bool(pointflow_split)
        super().__init__(root, *args, **kwargs)
        #: ``{"<synset>/<model_id>": fine label}`` of a complete built-in root (then items carry
        #: ``fine_label``), else ``None``
        self.fine_labels: dict[str, int] | None = _builtin_fine_labels(self.root)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        if self.fine_labels is not None:
            label = self.fine_labels.get(f"{item['synset']}/{item['model_id']}", -1)
            item["fine_label"] = torch.tensor(label, dtype=torch.int64)
        return item

    # ------------------------------------------------------------------ hooks
    def _check_options(self) -> None:
        if self.pointflow_split and self.split in ("train", "all") and self.n_points > POINTFLOW_TRAIN_ROWS:
            raise ValueError(
                f"n_points={self.n_points} exceeds the {POINTFLOW_TRAIN_ROWS} train rows of pointflow_split"
            )

    def _check_root(self) -> None:
        """Missing root -> FileNotFoundError; interrupted built-in generation -> ValueError.

        The built-in generator writes ``<parent>/pc3d_synthetic.json`` last and works in
        ``<parent>/.tmp-*`` folders: ``.tmp-*`` folders without the manifest mean an interrupted
        (or running) generation. Built-in synset ids without the manifest are refused too, in
        :meth:`_select` once the categories are known.
        """
        parent = self.root.parent
        if parent.is_dir() and not (parent / SYNTHETIC_MANIFEST).exists():
            tmp = sorted(p.name for p in parent.glob(".tmp-*") if p.is_dir())
            if tmp:
                raise _incomplete_builtin(parent, f"found {', '.join(tmp)}")
        super()._check_root()

    def _select(self, categories: str | Sequence[str]) -> tuple[list[str], list[tuple[str, str, Path]]]:
        """Resolve the categories among the synset folders, then list the ``.npy`` files of those only."""
        synsets = self._resolve_categories(categories)
        builtin = sorted(set(synsets) & _builtin_synsets())
        if builtin and not (self.root.parent / SYNTHETIC_MANIFEST).exists():
            raise _incomplete_builtin(self.root.parent, f"built-in synsets {', '.join(builtin)} are present")
        items: list[tuple[str, str, Path]] = []
        for synset in synsets:
            dirs = [self.root / synset / s for s in (SPLITS if self.split == "all" else (self.split,))]
            found = sorted(
                # a directory named *.npy is listed too: reading it is an error naming it (skip_bad lists it)
                (
                    p
                    for d in dirs
                    if d.is_dir()
                    for p in d.iterdir()
                    if p.suffix == ".npy" and (p.is_file() or p.is_dir())
                ),
                key=lambda p: (p.stem, str(p)),
            )
            if not found:
                where = self.root / synset / self.split if self.split != "all" else self.root / synset
                raise ValueError(
                    f"{where}: no .npy files (category {self._name_of(synset)!r}, split {self.split!r} is empty)"
                )
            items.extend((synset, p.stem, p) for p in found)
        return synsets, items

    def _default_global_stats(self) -> dict[str, Any]:
        return compute_global_stats(self if self.split == "all" else self._sibling("train"))

    # ------------------------------------------------------------------ names / categories
    def _where(self, synset: str) -> Path:
        return self.root / synset

    def _resolve_categories(self, categories: str | Sequence[str]) -> list[str]:
        dirs = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        any_split = [d for d in dirs if any((self.root / d / s).is_dir() for s in SPLITS)]
        if self.split == "all":
            with_split = any_split
        else:
            with_split = [d for d in dirs if (self.root / d / self.split).is_dir()]
        if not any_split:
            hint = ""
            if (self.root / PC15K_DIRNAME).is_dir():
                hint = f"; did you mean {self.root / PC15K_DIRNAME}?"
            raise ValueError(f"{self.root}: not a PC15k root: no <synset>/{{train,val,test}} directories found{hint}")
        if not with_split:
            raise ValueError(
                f"{self.root}: no category has a {self.split!r} split (categories with other splits: "
                f"{self._describe_available(any_split)})"
            )
        return self._match_categories(categories, known=dirs, available=with_split)

    # ------------------------------------------------------------------ checks
    def _row_range(self, n_rows: int) -> tuple[int, int]:
        if not self.pointflow_split:
            return 0, n_rows
        if self.split in ("train", "all"):
            return 0, POINTFLOW_TRAIN_ROWS
        return POINTFLOW_TRAIN_ROWS, n_rows

    def _check_rows(self, path: Path, arr: np.ndarray) -> None:
        if not self.pointflow_split:
            return super()._check_rows(path, arr)
        n_rows = arr.shape[0]
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

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return load_cloud(path, mmap=False), {}

    def _cloud(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The checked array of item ``index`` (in memory, or memory-mapped) and no extras."""
        if self._loaded is not None:
            return self._loaded[index]
        path = self.files[index]
        arr = load_cloud(path, mmap=True)
        self._check_array(path, arr)
        if index not in self._checked:
            self._check_finite(path, arr)
            self._checked.add(index)
        return arr, {}

    def _validate_one(self, index: int) -> None:
        path = self.files[index]
        arr = self._loaded[index][0] if self._loaded is not None else load_cloud(path, mmap=True)
        self._check_array(path, arr)
        self._check_finite(path, arr)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, pointflow_split={self.pointflow_split})"


def _incomplete_builtin(parent: Path, why: str) -> ValueError:
    return ValueError(
        f"{parent}: the built-in data set is incomplete ({why}, and no {SYNTHETIC_MANIFEST}: generation "
        f"was interrupted or is still running); regenerate it with "
        f"pc3d.data.synthetic.ensure_generated({str(parent)!r}, ...) using the same parameters "
        f"(or overwrite=True)"
    )


def _builtin_fine_labels(root: Path) -> dict[str, int] | None:
    """Fine labels of the built-in root holding the PC15k folder ``root`` (written on first use for a
    set generated before they existed), or ``None`` when ``root`` is not in a complete built-in root."""
    if not (root.parent / SYNTHETIC_MANIFEST).is_file():
        return None
    from pc3d.data.synthetic.fine_labels import ensure_fine_labels

    return ensure_fine_labels(root.parent)


def _builtin_synsets() -> set[str]:
    """Synset ids of the built-in procedural set."""
    from pc3d.data.synthetic import CATEGORIES

    return set(CATEGORIES.values())


def compute_global_stats(
    root: str | Path | PointCloudSet,
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
        root: a PC15k root, or a data set (:class:`PC15kDataset` or any other
            :class:`~pc3d.data.base.PointCloudSet`) whose files are used as they are
            (``categories``/``split`` are then ignored).
        categories, split: as in :class:`PC15kDataset`.

    Returns:
        ``{"mean": [mx, my, mz], "std": s, "n_shapes": int, "n_points": int}`` (plain
        types, so it can go into a checkpoint).
    """
    if not isinstance(root, PointCloudSet):
        root = PC15kDataset(root, categories=categories, split=split, n_points=1)
    if isinstance(root, PC15kDataset) and root._loaded is None:
        return compute_set_stats((path, load_cloud(path, mmap=True)) for path in root.files)
    return compute_set_stats(root._iter_arrays())
