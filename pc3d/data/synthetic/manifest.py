"""Names, parameters and the completion manifest of a built-in root.

The dataset-root layout names (:data:`MANIFEST_NAME`, :data:`PC15K_DIRNAME`,
:data:`RENDERING_DIRNAME`), the validation of generation parameters
(:func:`normalize_params`), the manifest itself (:func:`read_manifest`,
:func:`write_manifest`), the ``synsetoffset2category.txt`` name maps and the completeness
check (:func:`is_complete`) that does no mesh work.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pc3d.data.splits import SPLITS, split_counts
from pc3d.data.synthetic.categories import CATEGORIES, SYNSET_TO_NAME
from pc3d.data.taxonomy import NAME_MAP_FILE, PC15K_DIRNAME, SYNTHETIC_MANIFEST
from pc3d.geometry.camera import FOV_DEG, MAX_CAMERA_DISTANCE
from pc3d.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_NAME",
    "NAME_MAP_FILENAME",
    "PC15K_DIRNAME",
    "RENDERING_DIRNAME",
    "category_intact",
    "dataset_root",
    "is_complete",
    "normalize_params",
    "param_mismatch",
    "read_manifest",
    "write_manifest",
    "write_name_map",
]

MANIFEST_NAME = SYNTHETIC_MANIFEST
RENDERING_DIRNAME = "ShapeNetRendering"
NAME_MAP_FILENAME = NAME_MAP_FILE

_FORMAT = "pc3d-synthetic"
_FORMAT_VERSION = 1


def dataset_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if root.name in (PC15K_DIRNAME, RENDERING_DIRNAME) and not (root / MANIFEST_NAME).exists():
        return root.parent
    return root


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The completion manifest of a built-in root, or None if there is none.

    ``root`` may be the dataset root or its ``ShapeNetCore.v2.PC15k`` /
    ``ShapeNetRendering`` subfolder (the manifest lives in the dataset root). A readable
    manifest means every category it lists was completely written with its ``params``.
    Keys: ``format``, ``format_version``, ``pc3d_version``, ``params`` (n_per_category,
    n_points, n_views, image_size, seed, splits), ``categories`` (name -> synset),
    ``counts`` (name -> {split: n}), ``camera`` (max_distance, fov, axis conventions).
    """
    path = dataset_root(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable manifest %s: %s", path, err)
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    return data


def normalize_params(
    n_per_category: int,
    n_points: int,
    n_views: int,
    image_size: int,
    seed: int,
    categories: str | Iterable[str] | None,
    splits: Sequence[float],
    substyles: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    def as_int(name: str, value: Any, lo: int) -> int:
        if isinstance(value, bool) or int(value) != value or int(value) < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        return int(value)

    params = {
        "n_per_category": as_int("n_per_category", n_per_category, 1),
        "n_points": as_int("n_points", n_points, 1),
        "n_views": as_int("n_views", n_views, 0),
        "image_size": as_int("image_size", image_size, 8),
        "seed": as_int("seed", seed, 0),
    }
    fr = [float(x) for x in splits]
    if len(fr) != 3 or any(x < 0 for x in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(
            f"splits must be 3 non-negative fractions (train, val, test) summing to 1, got {tuple(splits)!r}"
        )
    params["splits"] = fr
    if not isinstance(substyles, bool):
        raise ValueError(f"substyles must be true or false, got {substyles!r}")
    if substyles:  # recorded only when set, so the default set's manifests stay as they were
        params["substyles"] = True
    if categories is None:
        cats = list(CATEGORIES)
    else:
        if isinstance(categories, str):
            categories = [c for c in categories.split(",") if c.strip()]
        wanted = set()
        for c in categories:
            c = c.strip()
            c = SYNSET_TO_NAME.get(c, c)
            if c not in CATEGORIES:
                raise ValueError(
                    f"unknown category {c!r}; expected names from {list(CATEGORIES)} (or their synset ids)"
                )
            wanted.add(c)
        if not wanted:
            raise ValueError("categories is empty")
        cats = [c for c in CATEGORIES if c in wanted]
    return params, cats


def param_mismatch(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    keys = list(want) + [k for k in have if k not in want and k == "substyles"]  # a variant set is no default set
    return [f"{k}: on disk {have.get(k)!r}, requested {want.get(k)!r}" for k in keys if have.get(k) != want.get(k)]


def category_intact(root: Path, category: str, params: dict[str, Any], counts: dict[str, int] | None) -> bool:
    """Cheap check that a category's folders exist with the expected file counts."""
    synset = CATEGORIES[category]
    expect = counts or dict(zip(SPLITS, split_counts(params["n_per_category"], params["splits"])))
    pc = root / PC15K_DIRNAME / synset
    for s in SPLITS:
        d = pc / s
        if not d.is_dir() or sum(1 for e in os.scandir(d) if e.name.endswith(".npy")) != expect[s]:
            return False
    if params["n_views"]:
        rd = root / RENDERING_DIRNAME / synset
        if not rd.is_dir() or sum(1 for e in os.scandir(rd) if e.is_dir()) != params["n_per_category"]:
            return False
    return True


def is_complete(
    root: str | os.PathLike,
    *,
    n_per_category: int = 100,
    n_points: int = 15000,
    n_views: int = 4,
    image_size: int = 137,
    seed: int = 0,
    categories: str | Iterable[str] | None = None,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    substyles: bool = False,
) -> bool:
    """True if ``root`` holds a complete built-in data set with these parameters.

    Complete means: the manifest exists, its parameters equal these, it lists every
    requested category (a root generated with more categories also satisfies a request
    for a subset) and their folders hold the expected number of files. Does no mesh work.
    Arguments as for :func:`generate`.
    """
    params, cats = normalize_params(n_per_category, n_points, n_views, image_size, seed, categories, splits,
                                    substyles)
    root = dataset_root(root)
    man = read_manifest(root)
    if man is None or param_mismatch(man.get("params", {}), params):
        return False
    have = man.get("categories", {})
    return all(c in have and category_intact(root, c, params, man.get("counts", {}).get(c)) for c in cats)


def write_name_map(root: Path, tree: str, cats: Iterable[str]) -> None:
    """(Re)write ``<tree>/synsetoffset2category.txt``: foreign lines kept, ours appended."""
    path = root / tree / NAME_MAP_FILENAME
    ours = set(CATEGORIES.values())
    keep = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if line.strip() and not (len(parts) >= 2 and parts[1] in ours):
                keep.append(line)
    lines = keep + [f"{c}\t{CATEGORIES[c]}" for c in CATEGORIES if c in set(cats)]
    if lines:
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")
    else:
        path.unlink(missing_ok=True)


def write_manifest(root: Path, params: dict[str, Any], done: dict[str, dict[str, int]], all_cats: list[str]) -> None:
    """Write the completion manifest ``root/pc3d_synthetic.json`` (atomically; the last file
    :func:`~pc3d.data.synthetic.generate` writes): ``params``, the categories ``all_cats``
    with their split counts from ``done``, the pc3d version and the camera constants."""
    from pc3d import __version__

    manifest = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "pc3d_version": __version__,
        "params": params,
        "categories": {c: CATEGORIES[c] for c in all_cats},
        "counts": {c: {s: int(done[c][s]) for s in SPLITS} for c in all_cats},
        "camera": {
            "max_distance": MAX_CAMERA_DISTANCE,
            "fov_deg": FOV_DEG,
            "azimuth": "about +Y from +Z towards +X",
            "up": "+Y",
            "front": "+Z",
            "metadata": "azimuth elevation in_plane_rotation distance_ratio fov",
        },
    }
    atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
