"""Fine-grained labels of the built-in set: ``<root>/fine_labels.json``.

Every built-in shape has, besides its category, a fine class (:data:`FINE_CLASSES`, e.g.
``"chair/pedestal"``, ``"car/pickup"``): the discrete style choices its builder made, recorded in
``Parts.style`` without drawing anything more (so the shapes are the ones written before fine
labels existed, bit for bit). The file, written atomically::

    {"format": "pc3d-synthetic-fine-labels", "format_version": 1,
     "params": {"seed": s, "n_per_category": n},
     "classes": ["airplane/no-engines", ...],               # FINE_CLASSES
     "labels": {"<synset>/<model_id>": class index, ...}}

:func:`~pc3d.data.synthetic.generate` writes it (labels recorded while building, just before the
manifest). A root generated before fine labels existed has no file: :func:`ensure_fine_labels`
(what :class:`~pc3d.data.PC15kDataset` calls on a built-in root) then replays each shape's
builder with its seed (``SeedSequence([seed, synset, index, 0])``, the mesh-building stream only:
no mesh cleaning, no sampling, no rendering; ~1 s per 100 shapes) and writes the file once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pc3d.data.synthetic.categories import CATEGORIES, fine_class, fine_classes, shape_style, substyle_for
from pc3d.data.synthetic.manifest import dataset_root, read_manifest

log = logging.getLogger(__name__)

__all__ = [
    "FINE_LABELS_NAME",
    "ensure_fine_labels",
    "read_fine_labels",
    "replay_fine_labels",
    "write_fine_labels",
]

FINE_LABELS_NAME = "fine_labels.json"
_FORMAT = "pc3d-synthetic-fine-labels"
_FORMAT_VERSION = 1
_REPLAYED: dict[tuple[str, int, int, tuple[str, ...]], dict[str, int]] = {}  # when the root is read-only


def label_key(synset: str, model_id: str) -> str:
    return f"{synset}/{model_id}"


def replay_fine_labels(seed: int, category: str, n_per_category: int, substyles: bool = False) -> dict[str, int]:
    """``{"<synset>/<model_id>": fine label}`` of the ``n_per_category`` shapes of ``category``
    generated with ``seed`` (and ``substyles``: the variant set), by replaying each shape's builder
    (no mesh, no sampling)."""
    from pc3d.data.synthetic.writer import _STREAM_SHAPE, _rng, model_id

    synset = CATEGORIES[category]
    out = {}
    for i in range(int(n_per_category)):
        sub = substyle_for(category, i) if substyles else None
        style = shape_style(category, _rng(seed, category, i, _STREAM_SHAPE), sub)
        out[label_key(synset, model_id(seed, category, i))] = fine_class(category, style, substyles)
    return out


def write_fine_labels(root: str | os.PathLike, params: dict[str, Any], labels: dict[str, int]) -> Path:
    """Write ``<root>/fine_labels.json`` atomically (``params``: the generation parameters; only
    ``seed`` and ``n_per_category`` are stored)."""
    from pc3d.io import atomic_write_text

    doc = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "params": {"seed": int(params["seed"]), "n_per_category": int(params["n_per_category"]),
                   **({"substyles": True} if params.get("substyles") else {})},
        "classes": list(fine_classes(bool(params.get("substyles")))),
        "labels": {k: int(labels[k]) for k in sorted(labels)},
    }
    path = dataset_root(root) / FINE_LABELS_NAME
    atomic_write_text(path, json.dumps(doc, indent=0) + "\n")
    return path


def read_fine_labels(root: str | os.PathLike, params: dict[str, Any] | None = None) -> dict[str, int] | None:
    """The labels of ``<root>/fine_labels.json``, or ``None`` when there is no such file, it is
    unreadable, its class list is not :data:`FINE_CLASSES` (:data:`SUBSTYLE_CLASSES` for the
    ``substyles`` variant), or (given ``params``) it was made with another ``seed`` /
    ``n_per_category`` / ``substyles``."""
    path = dataset_root(root) / FINE_LABELS_NAME
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("labels"), dict):
        return None
    have = doc.get("params") or {}
    if not isinstance(have, dict) or doc.get("classes") != list(fine_classes(bool(have.get("substyles")))):
        return None
    if params is not None:
        if (have.get("seed") != params.get("seed") or have.get("n_per_category") != params.get("n_per_category")
                or bool(have.get("substyles")) != bool(params.get("substyles"))):
            return None
    return {str(k): int(v) for k, v in doc["labels"].items()}


def collect_fine_labels(
    root: Path, params: dict[str, Any], categories: Iterable[str], recorded: dict[str, dict[str, int]] | None = None
) -> dict[str, int]:
    """Labels of every shape of ``categories``: ``recorded[category]`` where given, else those of an
    existing ``fine_labels.json`` made with the same parameters, else replayed."""
    recorded = recorded or {}
    old = read_fine_labels(root, params) or {}
    out: dict[str, int] = {}
    for c in categories:
        if c in recorded:
            out.update(recorded[c])
            continue
        prefix = CATEGORIES[c] + "/"
        have = {k: v for k, v in old.items() if k.startswith(prefix)}
        out.update(
            have
            if len(have) == int(params["n_per_category"])
            else replay_fine_labels(params["seed"], c, params["n_per_category"], bool(params.get("substyles")))
        )
    return out


def ensure_fine_labels(root: str | os.PathLike) -> dict[str, int] | None:
    """``{"<synset>/<model_id>": fine label}`` of a complete built-in root, or ``None`` for a root
    without a usable manifest (not built-in, or incomplete).

    Reads ``<root>/fine_labels.json``; when it is missing (a set generated before fine labels
    existed) or stale, replays the generator (:func:`replay_fine_labels`) for the manifest's
    categories and writes the file atomically (once, logged). A root that cannot be written keeps
    the replayed labels in memory for this process (with a warning).
    """
    root = dataset_root(root)
    man = read_manifest(root)
    params = man.get("params") if isinstance(man, dict) else None
    cats = man.get("categories") if isinstance(man, dict) else None
    if not isinstance(params, dict) or not isinstance(cats, dict):
        return None
    try:
        seed, n = int(params["seed"]), int(params["n_per_category"])
    except (KeyError, TypeError, ValueError):
        return None
    cats = [c for c in CATEGORIES if c in cats]
    labels = read_fine_labels(root, params)
    if labels is not None and all(sum(1 for k in labels if k.startswith(CATEGORIES[c] + "/")) == n for c in cats):
        return labels
    key = (str(root.absolute()), seed, n, tuple(cats))
    if key in _REPLAYED:
        return _REPLAYED[key]
    log.info(
        "%s: no %s (a set made before fine labels); replaying the generator for %d categories x %d shapes",
        root,
        FINE_LABELS_NAME,
        len(cats),
        n,
    )
    labels = collect_fine_labels(root, params, cats)
    try:
        path = write_fine_labels(root, params, labels)
    except OSError as exc:
        log.warning("%s: could not write %s (%s); fine labels kept in memory", root, FINE_LABELS_NAME, exc)
        _REPLAYED[key] = labels
    else:
        n_classes = len(fine_classes(bool(params.get("substyles"))))
        log.info("wrote %s (%d shapes, %d classes)", path, len(labels), n_classes)
    return labels
