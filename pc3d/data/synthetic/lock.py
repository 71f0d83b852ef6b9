"""Crash safety and locking of a built-in root.

Generation holds an exclusive ``flock`` on the root (:func:`locked`); each category is built
in a ``root/.tmp-<synset>-*`` folder, moved into place with ``os.replace`` and recorded by a
marker ``root/.pc3d_synthetic.parts/<synset>.json`` (:func:`install`, :func:`read_part`);
leftovers of a killed run are removed (:func:`cleanup_tmp`) and a category is taken out
without ever leaving a half-deleted folder under its real name (:func:`remove_category`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pc3d.data.synthetic.categories import CATEGORIES
from pc3d.data.synthetic.manifest import PC15K_DIRNAME, RENDERING_DIRNAME
from pc3d.io import atomic_write_text

__all__ = ["PARTS_DIRNAME", "cleanup_tmp", "install", "locked", "read_part", "remove_category"]

PARTS_DIRNAME = ".pc3d_synthetic.parts"


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Exclusive advisory lock on the root folder (POSIX ``flock``; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_category(root: Path, category: str) -> None:
    synset = CATEGORIES[category]
    (root / PARTS_DIRNAME / f"{synset}.json").unlink(missing_ok=True)
    for tree in (PC15K_DIRNAME, RENDERING_DIRNAME):
        d = root / tree / synset
        if d.exists():
            # rename first so a half-deleted folder never sits under its real name
            trash = root / f".tmp-{synset}-del-{os.getpid()}-{tree}"
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)


def cleanup_tmp(root: Path) -> None:
    for e in os.scandir(root):
        if e.name.startswith(".tmp-"):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                Path(e.path).unlink(missing_ok=True)


def install(root: Path, category: str, result: dict[str, Any], params: dict[str, Any]) -> None:
    """Move a finished temporary category folder into place and record it."""
    synset = CATEGORIES[category]
    tmp = Path(result["tmp"])
    for sub, tree in (("pc", PC15K_DIRNAME), ("render", RENDERING_DIRNAME)):
        if (tmp / sub).exists():
            (root / tree).mkdir(exist_ok=True)
            os.replace(tmp / sub, root / tree / synset)
    shutil.rmtree(tmp, ignore_errors=True)
    parts = root / PARTS_DIRNAME
    parts.mkdir(exist_ok=True)
    atomic_write_text(parts / f"{synset}.json", json.dumps({"params": params, "counts": result["counts"]}, indent=1))


def read_part(root: Path, category: str) -> dict | None:
    try:
        return json.loads((root / PARTS_DIRNAME / f"{CATEGORIES[category]}.json").read_text())
    except (OSError, ValueError):
        return None
