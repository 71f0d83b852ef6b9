"""What is in a data folder: its layout, shapes per split and category, and the files that are bad.

:func:`inspect_root` backs ``pc3d-data inspect PATH``. It builds the layout's reader for each
split with ``skip_bad=True`` (so every file is read once and checked exactly as training would
read it) and collects the bad files and any split-level problem (a missing split list, a
category without a split). Files are checked against the ``n_points`` training will draw (default
2048, every ``conf/data`` config's), so a cloud with fewer rows is listed as bad (layouts whose
default ``few_points`` is ``"repeat"``, ShapeNet-part, need one row); the fewest rows found is
reported (``min_rows``). Mesh layouts are sampled with few points and nothing is cached, so
inspecting never writes into the data folder.

Renderings: a ``ShapeNetRendering`` folder (``<synset>/<id>/rendering/``) is inspected as layout
``renderings``, and a point-cloud root with a ``ShapeNetRendering`` sibling (the built-in set)
gets its renderings checked too: every ``renderings.txt``, ``rendering_metadata.txt`` line and PNG
(fully decoded); broken ones are listed with the bad files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pc3d.data.layouts import detect_layout, layout_class
from pc3d.data.splits import SPLITS

__all__ = ["DEFAULT_N_POINTS", "inspect_root"]

#: ``n_points`` of every ``conf/data`` config: what inspection checks the clouds against by default.
DEFAULT_N_POINTS = 2048
#: Mesh layouts: rows are sampled (``surface_points``), not stored, so they are not checked against n_points.
_SAMPLED = ("meshes", "modelnet40")

#: Reader options that keep inspection light and read-only.
_LIGHT = {"meshes": {"surface_points": 64, "cache_dir": False}, "modelnet40": {"surface_points": 64}}


def inspect_root(
    root: str | Path, layout: str = "auto", check: bool = True, n_points: int = DEFAULT_N_POINTS
) -> dict[str, Any]:
    """Inspect ``root``.

    Args:
        root: a data set folder in one of the layouts of :mod:`pc3d.data.layouts`, or a
            ``ShapeNetRendering`` folder.
        layout: ``"auto"`` (detect), a layout name or ``"renderings"``.
        check: read and check every file (``False``: list files only, which is fast).
        n_points: the points per item training will use; clouds with fewer rows are bad files.

    Returns:
        ``{"root": str, "layout": str, "detected": bool, "categories": {id: name},
        "counts": {id: {split: n}}, "bad_files": ["<path>: <problem>", ...],
        "problems": [str, ...], "n_points": int, "min_rows": int | None, "renderings": {...} | None}``;
        ``counts`` holds the usable files (bad ones excluded); ``renderings`` is
        ``{"root": str, "counts": {synset: usable folders}}`` when renderings were checked.
    """
    from pc3d.data.renderings import RENDERING_DIRNAME, check_rendering_root, is_rendering_root

    root = Path(root).expanduser()
    detected = layout == "auto"
    if detected:
        layout = "renderings" if root.is_dir() and is_rendering_root(root) else detect_layout(root)
    report: dict[str, Any] = {
        "root": str(root),
        "layout": layout,
        "detected": detected,
        "categories": {},
        "counts": {},
        "bad_files": [],
        "problems": [],
        "n_points": n_points,
        "min_rows": None,
        "renderings": None,
    }
    if layout == "renderings":
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a directory"
            raise FileNotFoundError(f"{root}: data set root {what}")
        _inspect_renderings(root, report, check, check_rendering_root)
        return report
    cls = layout_class(layout)
    options = _LIGHT.get(layout, {})
    need = 1 if layout in _SAMPLED else n_points
    for split in SPLITS:
        try:
            parts = [cls(root, categories="all", split=split, n_points=need, skip_bad=check, **options)]
        except (ValueError, FileNotFoundError) as exc:
            # a category with no usable file fails the whole split: inspect the categories one by one,
            # so that the healthy ones are still counted and every bad file is listed
            parts = _per_category(cls, root, split, need, check, options, report, exc)
        for ds in parts:
            report["bad_files"].extend(ds.bad_files)
            rows = getattr(ds, "min_rows", None)
            if rows is not None and layout not in _SAMPLED:
                report["min_rows"] = rows if report["min_rows"] is None else min(report["min_rows"], rows)
            for synset, name in zip(ds.synsets, ds.names, strict=True):
                report["categories"][synset] = name
                report["counts"].setdefault(synset, dict.fromkeys(SPLITS, 0))[split] = ds.counts[synset]
    report["bad_files"] = list(dict.fromkeys(report["bad_files"]))  # a file shared by two splits is listed once
    report["counts"] = dict(sorted(report["counts"].items()))
    report["categories"] = dict(sorted(report["categories"].items()))
    sibling = root.parent / RENDERING_DIRNAME
    if layout == "pc15k" and sibling.is_dir():
        _inspect_renderings(sibling, report, check, check_rendering_root, own=False)
    return report


def _per_category(cls, root: Path, split: str, need: int, check: bool, options: dict, report: dict[str, Any],
                  exc: Exception) -> list:
    """The data sets of ``split``, one per category that has usable files, after the all-category
    data set failed with ``exc``. Each failing category adds a problem, its bad files and a zero count."""
    try:  # list the categories without reading any file
        synsets = cls(root, categories="all", split=split, n_points=need, skip_bad=False, **options).synsets
    except (ValueError, FileNotFoundError):
        report["problems"].append(f"{split}: {exc}")
        report["bad_files"].extend(getattr(exc, "bad_files", []))
        return []
    parts = []
    for synset in synsets:
        try:
            parts.append(cls(root, categories=[synset], split=split, n_points=need, skip_bad=check, **options))
        except (ValueError, FileNotFoundError) as one:
            report["problems"].append(f"{split}: {one}")
            report["bad_files"].extend(getattr(one, "bad_files", []))  # every file of the category was bad
            report["counts"].setdefault(synset, dict.fromkeys(SPLITS, 0))[split] = 0
            report["categories"].setdefault(synset, synset)
    return parts


def _inspect_renderings(render_root: Path, report: dict[str, Any], check: bool, check_root, own: bool = True) -> None:
    if check:
        found = check_root(render_root)
        counts, bad = found["counts"], found["bad_files"]
    else:
        counts = {
            d.name: sum(1 for m in d.iterdir() if (m / "rendering").is_dir())
            for d in sorted(render_root.iterdir())
            if d.is_dir() and not d.name.startswith(".")
        }
        bad = []
    report["bad_files"].extend(bad)
    report["renderings"] = {"root": str(render_root), "counts": counts}
    if own:
        from pc3d.data.taxonomy import SHAPENET_SYNSETS

        report["categories"] = {s: SHAPENET_SYNSETS.get(s, s) for s in counts}
        report["counts"] = {s: {"all": n} for s, n in counts.items()}
