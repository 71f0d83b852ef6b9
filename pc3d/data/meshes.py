"""Meshes as point clouds: reading (OBJ, PLY, OFF, glTF/GLB, STL), area-uniform sampling, a cache, renderings.

A folder of meshes with one subfolder per class is a data set (:class:`MeshFolderDataset`)::

    <root>/<class>/**/<name>.{obj,ply,off,glb,gltf,stl}     any depth below the class folder

Every mesh is normalized like the built-in set (zero-area triangles and unused vertices
dropped, bounding-box centre at the origin, farthest vertex at radius 0.5: the frame the
renderer's cameras expect) and sampled once, area-uniformly, into ``surface_points`` points
(seeded by ``(seed, crc32(<relative path>))``, so the sample is deterministic); items then draw
``n_points`` rows of that dense sample as in every pc3d reader (fresh rows in train, fixed rows
in val/test). Files are read by :func:`pc3d.data.mesh_io.read_mesh` (trimesh; every object of a
file merged with its transforms, polygons triangulated, points and lines ignored, coordinates
kept as stored: glTF is +Y up like pc3d, OBJ/PLY/STL/OFF carry no up axis, see
:mod:`pc3d.data.mesh_io`) and sampled with trimesh. A broken file raises ``ValueError`` naming
it; with ``skip_bad`` it is skipped and listed.

The dense samples are cached in the PC15k layout, so a cache is itself a data set for
``layout=pc15k``::

    <cache>/ShapeNetCore.v2.PC15k/<class>/<split>/<model_id>.npy     (surface_points, 3) float32
    <cache>/ShapeNetCore.v2.PC15k/<class>/<split>/<model_id>.json    source path, size, mtime_ns,
                                                                     sha256, surface_points, seed,
                                                                     normalized, sampler

written atomically; an entry is reused while the source's size and mtime match (or, when they
changed, its SHA-256 still does) and the sampling parameters are the same. ``model_id`` is the
path below the class folder with ``/`` turned into ``__`` (extension kept, so ``a.obj`` and
``a.ply`` stay distinct). :func:`render_meshes` writes the R2N2 layout
(``ShapeNetRendering/<class>/<render_id>/rendering/NN.png`` + ``renderings.txt`` +
``rendering_metadata.txt``) with the built-in set's renderer, where ``render_id`` is the model id
without its mesh suffix (``chair__a`` for ``chair/a.obj``; :func:`render_ids`: only when two
files of a class differ by the suffix alone do they keep it). :attr:`MeshFolderDataset.render_ids`
gives each item's folder, which is how :class:`pc3d.data.renderings.ImageCloudDataset` pairs them
(``pc3d-train experiment=img2cloud data=meshes data.root=/my/assets`` renders and trains).

Splits: no split folders; each class's files are assigned train/val/test by
:func:`pc3d.data.splits.holdout_split` (``split_fractions``, default 0.8/0.1/0.1, seeded by ``seed``
and the class name: the same files and seed always give the same split).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.data.base import PointCloudSet
from pc3d.data.mesh_io import MESH_SUFFIXES, read_mesh, read_off, sample_surface
from pc3d.data.pc15k import load_cloud
from pc3d.data.splits import holdout_split
from pc3d.data.taxonomy import PC15K_DIRNAME

__all__ = [
    "MESH_SUFFIXES",
    "MeshFolderDataset",
    "MeshSampler",
    "normalize_mesh",
    "read_mesh",
    "read_off",
    "render_ids",
    "render_meshes",
]

CACHE_PC15K = PC15K_DIRNAME
#: names how cached samples are drawn; entries written by another sampler are drawn again
SAMPLER = "trimesh-area-uniform"


def normalize_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The built-in set's normalization (:func:`pc3d.data.synthetic.clean_and_normalize`):
    drop zero-area triangles and unused vertices, centre the bounding box, farthest vertex at
    radius 0.5. A mesh with no surface area raises ``ValueError`` naming the file."""
    from pc3d.data.synthetic import clean_and_normalize

    tri = v[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    extent = float(np.ptp(v, axis=0).max())
    if extent <= 0 or not (area2 > 1e-10 * extent**2).any():
        raise ValueError(f"{path}: the mesh has no surface area (all {len(f)} triangles are degenerate)")
    return clean_and_normalize(v, f)


def cache_root_for(root: Path, cache_dir: str | Path) -> Path:
    """The cache folder of data set ``root`` inside a shared ``cache_dir``:
    ``<cache_dir>/<root name>-<crc32 of the absolute root, 8 hex digits>``."""
    absolute = str(Path(root).expanduser().resolve())
    return Path(cache_dir).expanduser() / f"{Path(root).name}-{zlib.crc32(absolute.encode()):08x}"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class MeshSampler:
    """Dense, deterministic, cached surface samples of mesh files (shared by the mesh readers).

    Args:
        surface_points: points sampled per mesh (area-uniform).
        seed: the sample of ``<rel>`` is drawn from ``default_rng((seed, crc32(rel)))``.
        cache_root: folder of the PC15k-layout cache, or ``None`` for no cache.
        normalize: normalize the mesh first (:func:`normalize_mesh`).
    """

    def __init__(self, surface_points: int, seed: int, cache_root: Path | None, normalize: bool):
        if isinstance(surface_points, bool) or not isinstance(surface_points, int) or surface_points < 1:
            raise ValueError(f"surface_points must be a positive int, got {surface_points!r}")
        self.surface_points = surface_points
        self.seed = seed
        self.cache_root = None if cache_root is None else Path(cache_root)
        self.normalize = normalize

    def sample(self, path: Path, rel: str) -> np.ndarray:
        """Read (:func:`pc3d.data.mesh_io.read_mesh`), (normalize) and sample ``path`` -> float32
        (surface_points, 3), area-uniformly with trimesh from ``default_rng((seed, crc32(rel)))``."""
        v, f = read_mesh(path)
        if self.normalize:
            v, f = normalize_mesh(path, v, f)
        try:
            return sample_surface(
                v, f, self.surface_points, np.random.default_rng((self.seed, zlib.crc32(rel.encode())))
            )
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def _record(self, path: Path, rel: str, sha: str | None = None) -> dict[str, Any]:
        st = path.stat()
        return {
            "source": rel,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha or _file_sha256(path),
            "surface_points": self.surface_points,
            "seed": self.seed,
            "normalized": self.normalize,
            "sampler": SAMPLER,
        }

    def cached(self, path: Path, rel: str, entry: Path) -> np.ndarray:
        """The sample of ``path`` through the cache entry ``entry`` (``<...>/<model_id>.npy``)."""
        from pc3d.io import atomic_save_npy, atomic_write_json

        side = entry.with_suffix(".json")
        if entry.is_file() and side.is_file():
            try:
                rec = json.loads(side.read_text())
            except ValueError:
                rec = {}
            st = path.stat()
            same_params = all(
                rec.get(k) == v
                for k, v in (
                    ("surface_points", self.surface_points),
                    ("seed", self.seed),
                    ("normalized", self.normalize),
                    ("sampler", SAMPLER),
                )
            )
            if same_params and rec.get("source") == rel:
                fresh = rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns
                sha = None if fresh else _file_sha256(path)
                if fresh or sha == rec.get("sha256"):
                    try:
                        arr = load_cloud(entry, mmap=False)
                    except ValueError:
                        arr = None  # a damaged entry is rebuilt below
                    if arr is not None and arr.shape == (self.surface_points, 3):
                        if not fresh:
                            atomic_write_json(side, self._record(path, rel, sha))
                        return arr
        arr = self.sample(path, rel)
        atomic_save_npy(entry, arr)
        atomic_write_json(side, self._record(path, rel))
        return arr


def render_ids(model_ids: Sequence[str]) -> dict[str, str]:
    """Rendering folder name of each model id of one class: the id without its mesh suffix
    (``a.obj`` -> ``a``, ``sub__b.PLY`` -> ``sub__b``); ids that would then collide (``a.obj`` and
    ``a.ply``, or ``a`` and ``a.obj``) keep their full id, so every folder stays distinct."""
    def strip(m: str) -> str:
        suffix = Path(m).suffix
        return m[: -len(suffix)] if suffix and suffix.lower() in MESH_SUFFIXES and len(m) > len(suffix) else m

    stems: dict[str, int] = {}
    for m in model_ids:
        stems[strip(m)] = stems.get(strip(m), 0) + 1
    full = set(model_ids)
    return {m: strip(m) if stems[strip(m)] == 1 and (strip(m) == m or strip(m) not in full) else m
            for m in model_ids}


def _mesh_files(class_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in class_dir.rglob("*")
        # a directory named like a mesh file is listed too: reading it is an error naming it
        if p.suffix.lower() in MESH_SUFFIXES
        and (p.is_file() or p.is_dir())
        and not any(q.startswith(".") for q in p.parts[-3:])
    )


class MeshFolderDataset(PointCloudSet):
    """A folder of meshes, class = first-level subfolder; see the module docstring.

    Args: as :class:`~pc3d.data.base.PointCloudSet`, plus
        surface_points: dense sample size per mesh (default 10000).
        split_fractions: train/val/test fractions of each class (default 0.8, 0.1, 0.1).
        cache_dir: where the PC15k-layout cache goes: ``<cache_dir>/<root name>-<crc32 of the
            absolute root>/``; ``None`` (default): ``<root>/.pc3d_cache``; ``False``: no cache.
        render_views, image_size: what :meth:`prepare` renders (``render_views=0`` or ``None``:
            nothing) into ``<cache>/ShapeNetRendering``.

    Attributes (besides those of :class:`~pc3d.data.base.PointCloudSet`): ``render_ids``, each
    item's folder name under ``<cache>/ShapeNetRendering/<class>/`` (:func:`render_ids`).
    """

    layout = "meshes"

    def __init__(
        self,
        root,
        *args,
        surface_points: int = 10000,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        cache_dir: str | Path | bool | None = None,
        render_views: int | None = 0,
        image_size: int = 137,
        **kwargs,
    ):
        root = Path(root).expanduser()
        self.split_fractions = tuple(float(x) for x in split_fractions)
        self.surface_points = surface_points
        self.cache_dir = cache_dir
        self.render_views = int(render_views or 0)
        self.image_size = int(image_size)
        if cache_dir is False:
            self.cache_root = None
        elif cache_dir is None:
            self.cache_root = root / ".pc3d_cache"
        else:
            self.cache_root = cache_root_for(root, cache_dir)
        self._sampler = MeshSampler(surface_points, kwargs.get("seed", 0), self.cache_root, normalize=True)
        self._split_of: dict[str, str] = {}
        self._render_id: dict[tuple[str, str], str] = {}
        super().__init__(root, *args, **kwargs)

    @property
    def render_ids(self) -> list[str]:
        """Each item's rendering folder name (its model id without the mesh suffix, :func:`render_ids`)."""
        return [self._render_id[(s, m)] for s, m in zip(self.synset_of_item, self.model_ids, strict=True)]

    def _init_kwargs(self):
        return {
            **super()._init_kwargs(),
            "surface_points": self.surface_points,
            "split_fractions": self.split_fractions,
            "cache_dir": self.cache_dir,
        }

    def _all_entries(self) -> list[tuple[str, str, Path, str]]:
        """Every mesh: (class, model_id, path, split)."""
        out = []
        for cls in self._known_categories():
            files = _mesh_files(self.root / cls)
            ids = {p.relative_to(self.root / cls).as_posix().replace("/", "__"): p for p in files}
            split_of = holdout_split(list(ids), self.split_fractions, self.seed, cls)
            self._render_id.update(((cls, m), r) for m, r in render_ids(list(ids)).items())
            out.extend((cls, m, p, split_of[m]) for m, p in sorted(ids.items()))
        return out

    def _list_split(self, split: str) -> list[tuple[str, str, Path]]:
        entries = self._all_entries()
        self._split_of = {str(p): s for _, _, p, s in entries}
        return [(c, m, p) for c, m, p, s in entries if split in ("all", s)]

    def _cache_entry(self, path: Path) -> Path | None:
        if self.cache_root is None:
            return None
        cls = path.relative_to(self.root).parts[0]
        model_id = path.relative_to(self.root / cls).as_posix().replace("/", "__")
        return self.cache_root / CACHE_PC15K / cls / self._split_of[str(path)] / f"{model_id}.npy"

    def _read(self, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rel = path.relative_to(self.root).as_posix()
        entry = self._cache_entry(path)
        arr = self._sampler.sample(path, rel) if entry is None else self._sampler.cached(path, rel, entry)
        return arr, {}

    def prepare(self) -> dict[str, Any]:
        """Sample every mesh of every split into the cache (atomically), remove cache entries whose
        mesh is gone or moved to another split, and render the R2N2 layout if ``render_views``.
        A bad mesh never stops it: it is listed in ``bad_files`` (``"<path>: <problem>"``) and neither
        cached nor rendered (the caller decides whether that is an error: ``skip_bad``).
        Returns ``{"cached": n, "removed": n, "bad_files": [...], "rendered": n}``; run it once (rank 0)."""
        if self.cache_root is None:
            raise ValueError("prepare() needs a cache (cache_dir is False)")
        entries = self._all_entries()
        keep: set[Path] = set()
        bad: list[str] = []
        bad_paths: list[Path] = []
        for _, _, path, _ in entries:
            entry = self._cache_entry(path)
            keep.update((entry, entry.with_suffix(".json")))
            try:
                self._read_checked(path)
            except ValueError as exc:
                bad.append(str(exc))
                bad_paths.append(path)
        removed = 0
        pc_root = self.cache_root / CACHE_PC15K
        for p in list(pc_root.rglob("*")) if pc_root.is_dir() else []:
            if p.is_file() and p.suffix in (".npy", ".json") and p not in keep:
                p.unlink()
                removed += 1
        rendered = 0
        if self.render_views:
            render_bad: list[str] = []
            rendered = render_meshes(
                self.root, self.cache_root / "ShapeNetRendering", self.render_views, self.image_size, self.seed,
                skip=bad_paths, bad=render_bad,
            )
            bad.extend(render_bad)
        return {
            "cached": len(entries) - len(bad_paths),
            "removed": removed,
            "bad_files": bad,
            "rendered": rendered,
        }


def render_meshes(
    root: str | Path,
    out_dir: str | Path,
    n_views: int = 24,
    image_size: int = 137,
    seed: int = 0,
    *,
    skip: Sequence[str | Path] = (),
    bad: list[str] | None = None,
) -> int:
    """Render every mesh of a class-per-folder ``root`` into the R2N2 layout under ``out_dir``::

        <out_dir>/<class>/<render_id>/rendering/{00..}.png, renderings.txt, rendering_metadata.txt

    (``render_id``: the model id without its mesh suffix, see :func:`render_ids`)
    with the built-in set's renderer (:func:`pc3d.data.synthetic.render_view`: random azimuth,
    elevation and distance per view, seeded by ``(seed, crc32(<relative path>))``), on the mesh
    normalized as the point clouds are. Each model's folder is written in a temporary folder and
    renamed into place; models already rendered are skipped, and so are the files in ``skip``.
    An unreadable mesh raises ``ValueError`` naming it, or, when a list ``bad`` is given, is appended
    to it (``"<path>: <problem>"``) and skipped. Returns the number of models rendered.
    """
    from pc3d.data.synthetic import write_renderings

    root, out_dir = Path(root), Path(out_dir)
    skipped = {Path(p) for p in skip}
    done = 0
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = {path.relative_to(cls_dir).as_posix().replace("/", "__"): path for path in _mesh_files(cls_dir)}
        names = render_ids(list(files))
        for model_id, path in sorted(files.items()):
            if path in skipped:
                continue
            final = out_dir / cls_dir.name / names[model_id]
            if (final / "rendering" / "rendering_metadata.txt").is_file():
                continue
            try:
                v, f = normalize_mesh(path, *read_mesh(path))
            except ValueError as exc:
                if bad is None:
                    raise
                bad.append(str(exc))
                continue
            rel = path.relative_to(root).as_posix()
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
            try:
                rng = np.random.default_rng((seed, zlib.crc32(rel.encode()), 1))
                write_renderings(tmp / "rendering", v, f, n_views, image_size, rng, 0)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            done += 1
    return done
