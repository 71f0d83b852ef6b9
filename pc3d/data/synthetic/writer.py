"""Generation of the built-in data set: seeds, splits, the per-category writer and the driver.

:func:`generate` builds what is missing under a root (in-process, or one category per task
in a ``spawn`` process pool), :func:`ensure_generated` returns at once when the root is
already complete. Every random draw comes from ``SeedSequence([seed, synset, index,
stream])`` (:func:`model_id` hashes the same triple into a model id).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.data.splits import SPLITS, split_counts
from pc3d.data.synthetic.categories import CATEGORIES, fine_class, shape_and_style, substyle_for
from pc3d.data.synthetic.fine_labels import collect_fine_labels, label_key, write_fine_labels
from pc3d.data.synthetic.lock import PARTS_DIRNAME, cleanup_tmp, install, locked, read_part, remove_category
from pc3d.data.synthetic.manifest import (
    MANIFEST_NAME,
    PC15K_DIRNAME,
    RENDERING_DIRNAME,
    category_intact,
    dataset_root,
    is_complete,
    normalize_params,
    param_mismatch,
    read_manifest,
    write_manifest,
    write_name_map,
)
from pc3d.data.synthetic.primitives import Mesh, sample_surface
from pc3d.data.synthetic.rendering import TURNTABLE_NAME, shape_color, turntable_frames, write_renderings, write_video

log = logging.getLogger(__name__)

__all__ = ["ensure_generated", "generate", "model_id"]

_POOL_MIN_SHAPES = 1000  # smaller jobs run in-process: a spawned worker takes ~8 s to import
_STREAM_SHAPE, _STREAM_POINTS, _STREAM_VIEWS, _STREAM_SPLIT = 0, 1, 2, 3


def model_id(seed: int, category: str, index: int) -> str:
    """Deterministic 32-hex-character model id of shape ``index`` of ``category``."""
    return hashlib.sha256(f"pc3d-synthetic/{seed}/{category}/{index}".encode()).hexdigest()[:32]


def _rng(seed: int, category: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, int(CATEGORIES[category]), index, stream]))


def rebuild_shape(params: dict[str, Any], category: str, index: int) -> tuple[Mesh, dict[str, Any]]:
    """The normalised mesh ``(V (V, 3) float64, F (T, 3) int64)`` and the style choices of shape
    ``index`` of ``category`` in a built-in set generated with ``params`` (its manifest's
    ``params``: ``seed``, and ``substyles`` for the variant set), exactly as the writer built it."""
    sub = substyle_for(category, index) if params.get("substyles") else None
    return shape_and_style(category, _rng(int(params["seed"]), category, int(index), _STREAM_SHAPE), sub)


def _split_assignment(seed: int, category: str, n: int, fractions: Sequence[float]) -> list[str]:
    """Split name of each shape index 0..n-1 (seeded permutation, cut by counts)."""
    perm = _rng(seed, category, 0, _STREAM_SPLIT).permutation(n)
    counts = split_counts(n, fractions)
    out = [""] * n
    start = 0
    for name, c in zip(SPLITS, counts):
        for i in perm[start : start + c]:
            out[int(i)] = name
        start += c
    return out


def _write_category(root: str, category: str, params: dict[str, Any], nthreads: int = 0) -> dict[str, Any]:
    """Build every shape of ``category`` into a fresh ``root/.tmp-<synset>-*`` folder.

    The folder gets ``pc/<split>/<id>.npy`` and (if ``n_views``) ``render/<id>/rendering/
    ...``; the caller moves them into place. Returns ``{"tmp": path, "counts": {split:
    n}, "fine": {"<synset>/<model_id>": fine label}, "seconds": float}``. On an exception the
    temporary folder is removed.
    """
    t0 = time.perf_counter()
    synset = CATEGORIES[category]
    seed, n = params["seed"], params["n_per_category"]
    n_points, n_views, size = params["n_points"], params["n_views"], params["image_size"]
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{synset}-", dir=root))
    try:
        splits = _split_assignment(seed, category, n, params["splits"])
        for s in SPLITS:
            (tmp / "pc" / s).mkdir(parents=True)
        counts = dict.fromkeys(SPLITS, 0)
        fine: dict[str, int] = {}
        for i in range(n):
            mid = model_id(seed, category, i)
            (v, f), style = rebuild_shape(params, category, i)
            fine[label_key(synset, mid)] = fine_class(category, style, bool(params.get("substyles")))
            pts = sample_surface((v, f), n_points, _rng(seed, category, i, _STREAM_POINTS))
            np.save(tmp / "pc" / splits[i] / f"{mid}.npy", pts)
            counts[splits[i]] += 1
            if n_views:
                write_renderings(
                    tmp / "render" / mid / "rendering",
                    v,
                    f,
                    n_views,
                    size,
                    _rng(seed, category, i, _STREAM_VIEWS),
                    nthreads,
                )
        return {"tmp": str(tmp), "counts": counts, "fine": fine, "seconds": time.perf_counter() - t0}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _say(progress: bool, msg: str) -> None:
    """Log ``msg``; with ``progress`` also print it, unless logging already reaches a handler (a pc3d-train
    run's console), where it would be shown twice."""
    log.info(msg)
    if progress and not (log.isEnabledFor(logging.INFO) and _console_logging()):
        print(f"[pc3d.data.synthetic] {msg}", file=sys.stderr, flush=True)


def _console_logging() -> bool:
    """Whether the root logger writes to the console (pc3d-train's Hydra logging does; pytest's capture
    handlers and an unconfigured logging module do not)."""
    consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in consoles
               for h in logging.getLogger().handlers)


def generate(
    root: str | os.PathLike,
    *,
    n_per_category: int = 100,
    n_points: int = 15000,
    n_views: int = 4,
    image_size: int = 137,
    seed: int = 0,
    categories: str | Iterable[str] | None = None,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 2,
    turntable_video: bool = False,
    turntable_frames: int = 24,
    substyles: bool = False,
) -> Path:
    """Generate the built-in data set under ``root`` (see the module docstring).

    Only what is missing is built: categories already complete with the same parameters
    are kept, categories finished by an interrupted run are reused, leftovers of a killed
    run (``.tmp-*``) are removed. A second call with the same parameters does no mesh
    work and says so.

    Args:
        root: dataset root (created if needed); a path ending in ``ShapeNetCore.v2.PC15k`` or
            ``ShapeNetRendering`` (without a manifest inside) means its parent.
        n_per_category: shapes per category.
        n_points: points per ``.npy`` cloud (PC15k has 15000).
        n_views: rendered views per shape (0: no ``ShapeNetRendering`` tree).
        image_size: side S of the S x S RGBA renderings.
        seed: non-negative integer; same seed -> byte-identical files.
        categories: names (or synset ids) as a list or comma-separated string; None = all.
            A root may be extended with more categories under the same parameters.
        splits: (train, val, test) fractions per category.
        overwrite: remove every built-in category (and the manifest) under ``root`` first,
            and rebuild. Foreign files (e.g. real ShapeNet synsets) are left alone.
        progress: print progress lines to stderr.
        workers: processes, one category at a time each (output does not depend on it).
        turntable_video: also write ``ShapeNetRendering/<synset>/<id>/turntable.mp4`` per shape
            (``turntable_frames`` frames at evenly spaced azimuths, elevation 25, distance ratio 0.9,
            the shape's colour, the views' renderer and size; 12 fps H.264). Off by default; it is
            not a data set parameter (not in the manifest; the other files do not change), videos
            already there are kept, missing ones are added to a complete root. Needs ``n_views`` > 0.
        substyles: the variant set with interior sub-styles
            (:data:`~pc3d.data.synthetic.categories.SUBSTYLES`: shape ``i`` of chair, table, sofa, mug
            and bench gets sub-style ``i % 3``) and their 18 fine classes
            (:data:`~pc3d.data.synthetic.categories.SUBSTYLE_CLASSES`), the set on which a linear probe
            can rank encoders. A data set parameter (recorded in the manifest only when true). Off by default.

    Returns:
        ``root`` as a ``Path``.

    Raises:
        ValueError: bad arguments, or ``root`` already holds a complete built-in data set
            made with different parameters (and ``overwrite`` is False).
    """
    params, cats = normalize_params(n_per_category, n_points, n_views, image_size, seed, categories, splits,
                                    substyles)
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    _check_turntable(turntable_video, turntable_frames, params)
    root = dataset_root(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with locked(root):
        man = read_manifest(root)
        if overwrite:
            if man is not None:
                (root / MANIFEST_NAME).unlink()
                man = None
            for c in CATEGORIES:
                remove_category(root, c)
        elif man is not None:
            bad = param_mismatch(man.get("params", {}), params)
            if bad:
                raise ValueError(
                    f"{root} already holds a complete pc3d synthetic data set made with "
                    f"different parameters ({'; '.join(bad)}). Use another root, the same "
                    f"parameters, or overwrite=True (CLI: --overwrite) to regenerate."
                )
        cleanup_tmp(root)
        done: dict[str, dict[str, int]] = {}
        if man is not None:  # categories the manifest vouches for, still on disk
            for c in man.get("categories", {}):
                cnt = man.get("counts", {}).get(c)
                if c in CATEGORIES and category_intact(root, c, params, cnt):
                    done[c] = cnt
        for c in cats:  # categories finished by an interrupted run with these params
            part = read_part(root, c)
            if (
                c not in done
                and part is not None
                and part.get("params") == params
                and category_intact(root, c, params, part.get("counts"))
            ):
                done[c] = part["counts"]
        todo = [c for c in cats if c not in done]
        if not todo and man is not None and set(done) == set(man.get("categories", {})):
            _say(progress, f"{root}: already complete ({', '.join(cats)}); nothing to do")
            if turntable_video:
                write_turntables(root, params, cats, turntable_frames, progress)
            return root
        if man is not None and set(todo) & set(man.get("categories", {})):
            (root / MANIFEST_NAME).unlink()  # it vouches for a category about to be rebuilt
        for c in todo:
            remove_category(root, c)
        if todo:
            _say(
                progress,
                f"generating {', '.join(todo)} into {root} "
                f"({params['n_per_category']} shapes each, {params['n_points']} "
                f"points, {params['n_views']} views of {params['image_size']} px)",
            )
        recorded: dict[str, dict[str, int]] = {}  # fine labels of the categories built now
        results = _run_categories(root, todo, params, min(int(workers), len(todo)) or 1, progress, recorded)
        done.update(results)
        all_cats = [c for c in CATEGORIES if c in done]
        write_fine_labels(root, params, collect_fine_labels(root, params, all_cats, recorded))
        write_name_map(root, PC15K_DIRNAME, all_cats)
        if params["n_views"] or (root / RENDERING_DIRNAME).exists():
            write_name_map(root, RENDERING_DIRNAME, all_cats if params["n_views"] else [])
        write_manifest(root, params, done, all_cats)
        shutil.rmtree(root / PARTS_DIRNAME, ignore_errors=True)
        if turntable_video:
            write_turntables(root, params, cats, turntable_frames, progress)
    _say(progress, f"{root}: complete ({len(all_cats)} categories) in {time.perf_counter() - t0:.1f} s")
    return root


def ensure_generated(
    root: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 2,
    **params: Any,
) -> Path:
    """Make sure ``root`` holds the built-in data set with these parameters; what
    ``prepare_data`` calls.

    ``params`` are the data set parameters of :func:`generate` (``n_per_category``,
    ``n_points``, ``n_views``, ``image_size``, ``seed``, ``categories``, ``splits``), with its
    defaults. Returns at once (no mesh work, one message) when :func:`is_complete` holds;
    otherwise builds what is missing exactly like :func:`generate`, with the same arguments,
    the same return value and the same ``ValueError`` on a parameter mismatch.
    """
    turntable = {k: params.pop(k) for k in ("turntable_video", "turntable_frames") if k in params}
    if not overwrite and is_complete(root, **params):
        _say(progress, f"{dataset_root(root)}: already complete; nothing to do")
        if turntable.get("turntable_video"):  # videos are no data set parameter: add the missing ones
            return generate(root, overwrite=False, progress=progress, workers=workers, **params, **turntable)
        return dataset_root(root)
    return generate(root, overwrite=overwrite, progress=progress, workers=workers, **params, **turntable)


def _check_turntable(turntable_video: bool, turntable_frames: int, params: dict[str, Any]) -> None:
    if not isinstance(turntable_video, bool):
        raise ValueError(f"turntable_video must be true or false, got {turntable_video!r}")
    if isinstance(turntable_frames, bool) or int(turntable_frames) != turntable_frames or turntable_frames < 1:
        raise ValueError(f"turntable_frames must be an integer >= 1, got {turntable_frames!r}")
    if turntable_video and not params["n_views"]:
        raise ValueError("turntable_video needs renderings (n_views > 0): the videos live in ShapeNetRendering/")


def write_turntables(root: Path, params: dict[str, Any], cats: Sequence[str], n_frames: int,
                     progress: bool = False) -> int:
    """Write the missing ``ShapeNetRendering/<synset>/<id>/turntable.mp4`` of ``cats`` (called under the
    root's lock). Each shape is rebuilt from its seeds (the same mesh and colour as its views).
    Returns the number of videos written."""
    t0 = time.perf_counter()
    seed, size, written = params["seed"], params["image_size"], 0
    for c in cats:
        synset = CATEGORIES[c]
        for i in range(params["n_per_category"]):
            path = root / RENDERING_DIRNAME / synset / model_id(seed, c, i) / TURNTABLE_NAME
            if path.is_file() or not path.parent.is_dir():
                continue
            (v, f), _ = rebuild_shape(params, c, i)
            color = shape_color(_rng(seed, c, i, _STREAM_VIEWS))
            write_video(path, turntable_frames(v, f, int(n_frames), size, color))
            written += 1
    if written:
        _say(progress, f"{root}: {written} turntable video(s) of {n_frames} frames in {time.perf_counter() - t0:.1f} s")
    return written


def _run_categories(
    root: Path,
    todo: list[str],
    params: dict[str, Any],
    workers: int,
    progress: bool,
    fine: dict[str, dict[str, int]] | None = None,
) -> dict[str, dict[str, int]]:
    """Build and install categories, in-process (workers == 1) or in a spawn pool; the fine labels
    recorded while building go to ``fine[category]``."""
    out: dict[str, dict[str, int]] = {}

    def finish(c: str, res: dict[str, Any]) -> None:
        install(root, c, res, params)
        out[c] = res["counts"]
        if fine is not None:
            fine[c] = res["fine"]
        _say(progress, f"  {c} ({CATEGORIES[c]}): {params['n_per_category']} shapes in {res['seconds']:.1f} s")

    if workers <= 1 or len(todo) < 2 or params["n_per_category"] * len(todo) < _POOL_MIN_SHAPES:
        try:
            for c in todo:
                finish(c, _write_category(str(root), c, params))
        except BaseException:
            cleanup_tmp(root)
            raise
        return out
    error: BaseException | None = None
    ctx = multiprocessing.get_context("spawn")  # no fork after Open3D/TBB threads started
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        futures = {ex.submit(_write_category, str(root), c, params, 1): c for c in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in finished:
                try:
                    finish(futures[fut], fut.result())
                except BaseException as err:  # keep installing the others that finished
                    if error is None:
                        error = err
                        for p in pending:
                            p.cancel()
    if error is not None:
        cleanup_tmp(root)
        raise error
    return out
