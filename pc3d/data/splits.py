"""Splits: their names, how shapes are assigned to them, and tree-GAN's per-shape index files.

* :data:`SPLITS` are the three partitions every on-disk layout uses (:data:`ALL_SPLITS` adds
  ``"all"``: every shape of the selected categories, whatever its split; tree-GAN trains on that).
* :func:`split_counts` is the largest-remainder rounding that turns split fractions into per-split
  item counts (used by the built-in generator and by :func:`holdout_split`).
* :func:`holdout_split` assigns the shapes of layouts without split folders (ModelNet's val,
  latent_3d_points, mesh folders) deterministically.
* :func:`drawn_index`, :func:`read_index_file` and :func:`write_index_files` are the fixed
  per-shape row sets of ``sampling="treegan"`` (see :mod:`pc3d.data.base`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pc3d.data.base import PointCloudSet

__all__ = [
    "ALL_SPLITS",
    "SPLITS",
    "drawn_index",
    "holdout_split",
    "read_index_file",
    "split_counts",
    "write_index_files",
]

SPLITS = ("train", "val", "test")
#: ``"all"``: every shape of the selected categories, whatever its split (tree-GAN trains on that).
ALL_SPLITS = (*SPLITS, "all")


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``; a split with a positive fraction
    gets at least one item when ``n`` allows it (taken from the largest split)."""
    raw = [n * fr for fr in fractions]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, fr in enumerate(fractions) if fr > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                j = max(range(len(counts)), key=lambda k: counts[k])
                counts[j] -= 1
                counts[i] += 1
    return counts


def holdout_split(keys: Sequence[str], fractions: Sequence[float], seed: int, salt: str) -> dict[str, str]:
    """Deterministic train/val/test assignment of ``keys`` (one category's model ids).

    The keys are sorted, permuted by ``numpy.random.default_rng((seed, crc32(salt)))`` and cut into
    ``round(n * fraction)`` blocks (largest remainders; a split with a positive fraction gets at
    least one key when there are enough), in ``train, val, test`` order. The result depends only on
    the set of keys, the fractions, the seed and the salt (e.g. the category), not on file order.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    ordered = sorted(keys)
    perm = np.random.default_rng((seed, zlib.crc32(salt.encode()))).permutation(len(ordered))
    out: dict[str, str] = {}
    start = 0
    for name, n in zip(SPLITS, split_counts(len(ordered), fractions), strict=True):
        for i in perm[start : start + n]:
            out[ordered[int(i)]] = name
        start += n
    return out


def drawn_index(seed: int, synset: str, model_id: str, n_rows: int, n_points: int) -> np.ndarray:
    """tree-GAN-style fixed index set of one shape: ``n_points`` rows in ``[0, n_rows)`` drawn with
    replacement from ``numpy.random.default_rng((seed, crc32("<synset>/<model_id>")))``; shape (n_points,)."""
    rng = np.random.default_rng((seed, zlib.crc32(f"{synset}/{model_id}".encode())))
    return rng.integers(0, n_rows, size=n_points)


def read_index_file(path: Path, n_points: int, n_rows: int) -> np.ndarray:
    """Read a tree-GAN index file (whitespace-separated integers) and check it: exactly
    ``n_points`` indices, each in ``[0, n_rows)``. Returns an int64 array of shape (n_points,)."""
    try:
        idx = np.loadtxt(path, dtype=np.float64, ndmin=1).reshape(-1)
    except ValueError as exc:
        raise ValueError(f"{path}: expected whitespace-separated integer row indices: {exc}") from exc
    if idx.shape != (n_points,):
        raise ValueError(f"{path}: expected {n_points} row indices (n_points), got {idx.size}")
    if not np.all(idx == np.round(idx)) or idx.min() < 0 or idx.max() >= n_rows:
        raise ValueError(f"{path}: expected integer row indices in [0, {n_rows}), got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


def write_index_files(dataset: PointCloudSet) -> list[Path]:
    """Write tree-GAN's fixed index file of every shape of ``dataset`` (atomically), where its layout
    has them and they are missing: ``n_points`` row indices drawn with replacement, one per line,
    from ``(seed, crc32("<synset>/<model_id>"))``. Returns the paths written."""
    from pc3d.io import atomic_write_text

    written = []
    for i in range(len(dataset)):
        path = dataset._index_file(dataset.synset_of_item[i], dataset.model_ids[i])
        if path is None or path.is_file():
            continue
        n_rows = dataset._cloud(i)[0].shape[0]
        rows = drawn_index(dataset.seed, dataset.synset_of_item[i], dataset.model_ids[i], n_rows, dataset.n_points)
        atomic_write_text(path, "".join(f"{r}\n" for r in rows))
        written.append(path)
    return written
