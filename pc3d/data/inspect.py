"""What is in a data folder: its layout, shapes per split and category, and the files that are bad.

:func:`inspect_root` backs ``pc3d-data inspect PATH``. It builds the layout's reader for each
split with ``skip_bad=True`` (so every file is read once and checked exactly as training would
read it) and collects the bad files and any split-level problem (a missing split list, a
category without a split). Mesh layouts are sampled with few points and nothing is cached, so
inspecting never writes into the data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pc3d.data.layouts import detect_layout, layout_class
from pc3d.data.splits import SPLITS

__all__ = ["inspect_root"]

#: Reader options that keep inspection light and read-only.
_LIGHT = {"meshes": {"surface_points": 64, "cache_dir": False}, "modelnet40": {"surface_points": 64}}


def inspect_root(root: str | Path, layout: str = "auto", check: bool = True) -> dict[str, Any]:
    """Inspect ``root``.

    Args:
        root: a data set folder in one of the layouts of :mod:`pc3d.data.layouts`.
        layout: ``"auto"`` (detect) or a layout name.
        check: read and check every file (``False``: list files only, which is fast).

    Returns:
        ``{"root": str, "layout": str, "detected": bool, "categories": {id: name},
        "counts": {id: {split: n}}, "bad_files": ["<path>: <problem>", ...],
        "problems": [str, ...]}``; ``counts`` holds the usable files (bad ones excluded).
    """
    root = Path(root).expanduser()
    detected = layout == "auto"
    if detected:
        layout = detect_layout(root)
    cls = layout_class(layout)
    options = _LIGHT.get(layout, {})
    report: dict[str, Any] = {
        "root": str(root),
        "layout": layout,
        "detected": detected,
        "categories": {},
        "counts": {},
        "bad_files": [],
        "problems": [],
    }
    for split in SPLITS:
        try:
            ds = cls(root, categories="all", split=split, n_points=1, skip_bad=check, **options)
        except (ValueError, FileNotFoundError) as exc:
            report["problems"].append(f"{split}: {exc}")
            continue
        report["bad_files"].extend(ds.bad_files)
        for synset, name in zip(ds.synsets, ds.names, strict=True):
            report["categories"][synset] = name
            report["counts"].setdefault(synset, dict.fromkeys(SPLITS, 0))[split] = ds.counts[synset]
    report["counts"] = dict(sorted(report["counts"].items()))
    report["categories"] = dict(sorted(report["categories"].items()))
    return report
