"""Meshes as point clouds: reading (OBJ, PLY, OFF, GLB, STL), area-uniform sampling, a cache, renderings.

A folder of meshes with one subfolder per class is a data set (:class:`MeshFolderDataset`)::

    <root>/<class>/**/<name>.{obj,ply,off,glb,gltf,stl}     any depth below the class folder

Every mesh is normalized like the built-in set (zero-area triangles and unused vertices
dropped, bounding-box centre at the origin, farthest vertex at radius 0.5: the frame the
renderer's cameras expect) and sampled once, area-uniformly, into ``surface_points`` points
(seeded by ``(seed, crc32(<relative path>))``, so the sample is deterministic); items then draw
``n_points`` rows of that dense sample as in every pc3d reader (fresh rows in train, fixed rows
in val/test). OFF files go through torch_geometric's OFF parser (tolerating the ModelNet header
glued to its counts, ``OFF490 518 0``), the other formats through Open3D.

The dense samples are cached in the PC15k layout, so a cache is itself a data set for
``layout=pc15k``::

    <cache>/ShapeNetCore.v2.PC15k/<class>/<split>/<model_id>.npy     (surface_points, 3) float32
    <cache>/ShapeNetCore.v2.PC15k/<class>/<split>/<model_id>.json    source path, size, mtime_ns,
                                                                     sha256, surface_points, seed

written atomically; an entry is reused while the source's size and mtime match (or, when they
changed, its SHA-256 still does) and the sampling parameters are the same. ``model_id`` is the
path below the class folder with ``/`` turned into ``__`` (extension kept, so ``a.obj`` and
``a.ply`` stay distinct). :func:`render_meshes` writes the R2N2 layout
(``ShapeNetRendering/<class>/<model_id>/rendering/NN.png`` + ``renderings.txt`` +
``rendering_metadata.txt``) with the built-in set's renderer.

Splits: no split folders; each class's files are assigned train/val/test by
:func:`pc3d.data.base.holdout_split` (``split_fractions``, default 0.8/0.1/0.1, seeded by ``seed``
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

from pc3d.data.base import PointCloudSet, holdout_split
from pc3d.data.pc15k import load_cloud

__all__ = [
    "MESH_SUFFIXES",
    "MeshFolderDataset",
    "MeshSampler",
    "normalize_mesh",
    "read_mesh",
    "read_off",
    "render_meshes",
]

MESH_SUFFIXES = (".obj", ".ply", ".off", ".glb", ".gltf", ".stl")
CACHE_PC15K = "ShapeNetCore.v2.PC15k"


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh with torch_geometric's parser -> vertices (V, 3) float64, triangles (T, 3) int64.

    Before parsing, comment (``#``) and blank lines are dropped and line ends stripped; faces
    with more than 4 corners are fan-triangulated and trailing per-face colours cut, since the
    parser keeps only triangles and quads. A header glued to its counts (``OFF490 518 0``, as in
    ModelNet40) is accepted. Anything else that is wrong raises ``ValueError`` naming the file.
    """
    from torch_geometric.io.off import parse_off

    path = Path(path)
    try:
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(errors="strict").splitlines()]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text OFF file ({exc})") from exc
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].startswith("OFF"):
        raise ValueError(f"{path}: expected an OFF header line starting with 'OFF', got {lines[:1]}")
    head = lines[0][3:].split() or (lines[1].split() if len(lines) > 1 else [])
    start = 1 if lines[0][3:].split() else 2
    try:
        n_v, n_f = int(head[0]), int(head[1])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: expected 'OFF' then counts '<n_vertices> <n_faces> <n_edges>'") from exc
    if n_v <= 0 or n_f <= 0 or len(lines) < start + n_v + n_f:
        raise ValueError(
            f"{path}: header says {n_v} vertices and {n_f} faces, the file has {len(lines) - start} data lines"
        )
    faces = []
    for k, ln in enumerate(lines[start + n_v : start + n_v + n_f]):
        tok = ln.split()
        try:
            n = int(tok[0])
            idx = [int(t) for t in tok[1 : 1 + n]]
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}: face {k}: expected '<n> i1 ... in', got {ln!r}") from exc
        if n < 3 or len(idx) != n:
            raise ValueError(f"{path}: face {k}: expected '<n> i1 ... in' with n >= 3, got {ln!r}")
        faces.extend(f"3 {idx[0]} {idx[j]} {idx[j + 1]}" for j in range(1, n - 1))
    src = ["OFF", f"{n_v} {len(faces)} 0", *lines[start : start + n_v], *faces]
    try:
        data = parse_off(src)
        v = data.pos.numpy().astype(np.float64)
        f = data.face.t().numpy().astype(np.int64)
    except Exception as exc:  # the parser raises whatever int()/torch raise on bad numbers
        raise ValueError(f"{path}: not a readable OFF mesh: {type(exc).__name__}: {exc}") from exc
    return _checked_mesh(path, v, f)


def _checked_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"{path}: expected vertices of shape (V, 3) with V > 0, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"{path}: expected triangles of shape (T, 3) with T > 0, got {f.shape} (no faces?)")
    if not np.isfinite(v).all():
        raise ValueError(f"{path}: {int((~np.isfinite(v)).sum())} non-finite vertex coordinates")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"{path}: triangle indices must be in [0, {v.shape[0]}), got [{f.min()}, {f.max()}]")
    return v, f


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh -> vertices (V, 3) float64, triangles (T, 3) int64.

    ``.off`` through :func:`read_off` (torch_geometric); ``.obj .ply .glb .gltf .stl`` through
    ``open3d.io.read_triangle_mesh`` (which returns an empty mesh instead of raising: that, a
    mesh without faces, out-of-range indices or NaN vertices raise ``ValueError`` naming the file).
    """
    path = Path(path)
    if path.suffix.lower() == ".off":
        return read_off(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh format {path.suffix!r}; expected one of {MESH_SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(path)
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.triangles, dtype=np.int64)
    if v.shape[0] == 0:
        raise ValueError(f"{path}: Open3D read no vertices (corrupt or unsupported {path.suffix} file)")
    return _checked_mesh(path, v, f)


def normalize_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The built-in set's normalization (:func:`pc3d.data.synthetic._clean_and_normalize`):
    drop zero-area triangles and unused vertices, centre the bounding box, farthest vertex at
    radius 0.5. A mesh with no surface area raises ``ValueError`` naming the file."""
    from pc3d.data.synthetic import _clean_and_normalize

    tri = v[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    extent = float(np.ptp(v, axis=0).max())
    if extent <= 0 or not (area2 > 1e-10 * extent**2).any():
        raise ValueError(f"{path}: the mesh has no surface area (all {len(f)} triangles are degenerate)")
    return _clean_and_normalize(v, f)


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
        """Read, (normalize) and sample ``path`` -> float32 (surface_points, 3)."""
        from pc3d.data.synthetic import sample_surface

        v, f = read_mesh(path)
        if self.normalize:
            v, f = normalize_mesh(path, v, f)
        try:
            return sample_surface(
                (v, f), self.surface_points, np.random.default_rng((self.seed, zlib.crc32(rel.encode())))
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


def _mesh_files(class_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in class_dir.rglob("*")
        if p.suffix.lower() in MESH_SUFFIXES and p.is_file() and not any(q.startswith(".") for q in p.parts[-3:])
    )


class MeshFolderDataset(PointCloudSet):
    """A folder of meshes, class = first-level subfolder; see the module docstring.

    Args: as :class:`~pc3d.data.base.PointCloudSet`, plus
        surface_points: dense sample size per mesh (default 10000).
        split_fractions: train/val/test fractions of each class (default 0.8, 0.1, 0.1).
        cache_dir: where the PC15k-layout cache goes: ``<cache_dir>/<root name>-<crc32 of the
            absolute root>/``; ``None`` (default): ``<root>/.pc3d_cache``; ``False``: no cache.
        render_views, image_size: what :meth:`prepare` renders (``render_views=0``: nothing) into
            ``<cache>/ShapeNetRendering``.
    """

    layout = "meshes"

    def __init__(
        self,
        root,
        *args,
        surface_points: int = 10000,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        cache_dir: str | Path | bool | None = None,
        render_views: int = 0,
        image_size: int = 137,
        **kwargs,
    ):
        root = Path(root).expanduser()
        self.split_fractions = tuple(float(x) for x in split_fractions)
        self.surface_points = surface_points
        self.cache_dir = cache_dir
        self.render_views = int(render_views)
        self.image_size = int(image_size)
        if cache_dir is False:
            self.cache_root = None
        elif cache_dir is None:
            self.cache_root = root / ".pc3d_cache"
        else:
            self.cache_root = cache_root_for(root, cache_dir)
        self._sampler = MeshSampler(surface_points, kwargs.get("seed", 0), self.cache_root, normalize=True)
        self._split_of: dict[str, str] = {}
        super().__init__(root, *args, **kwargs)

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
        Returns ``{"cached": n, "removed": n, "bad_files": [...], "rendered": n}``; run it once (rank 0)."""
        if self.cache_root is None:
            raise ValueError("prepare() needs a cache (cache_dir is False)")
        entries = self._all_entries()
        keep: set[Path] = set()
        bad: list[str] = []
        for _, _, path, _ in entries:
            entry = self._cache_entry(path)
            keep.update((entry, entry.with_suffix(".json")))
            try:
                self._read_checked(path)
            except ValueError as exc:
                bad.append(str(exc))
        removed = 0
        pc_root = self.cache_root / CACHE_PC15K
        for p in list(pc_root.rglob("*")) if pc_root.is_dir() else []:
            if p.is_file() and p.suffix in (".npy", ".json") and p not in keep:
                p.unlink()
                removed += 1
        rendered = 0
        if self.render_views:
            rendered = render_meshes(
                self.root, self.cache_root / "ShapeNetRendering", self.render_views, self.image_size, self.seed
            )
        return {"cached": len(entries) - len(bad), "removed": removed, "bad_files": bad, "rendered": rendered}


def render_meshes(
    root: str | Path, out_dir: str | Path, n_views: int = 24, image_size: int = 137, seed: int = 0
) -> int:
    """Render every mesh of a class-per-folder ``root`` into the R2N2 layout under ``out_dir``::

        <out_dir>/<class>/<model_id>/rendering/{00..}.png, renderings.txt, rendering_metadata.txt

    with the built-in set's renderer (:func:`pc3d.data.synthetic.render_view`: random azimuth,
    elevation and distance per view, seeded by ``(seed, crc32(<relative path>))``), on the mesh
    normalized as the point clouds are. Each model's folder is written in a temporary folder and
    renamed into place; models already rendered are skipped; unreadable meshes raise ``ValueError``.
    Returns the number of models rendered.
    """
    from pc3d.data.synthetic import _write_renderings

    root, out_dir = Path(root), Path(out_dir)
    done = 0
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for path in _mesh_files(cls_dir):
            model_id = path.relative_to(cls_dir).as_posix().replace("/", "__")
            final = out_dir / cls_dir.name / model_id
            if (final / "rendering" / "rendering_metadata.txt").is_file():
                continue
            v, f = normalize_mesh(path, *read_mesh(path))
            rel = path.relative_to(root).as_posix()
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{model_id}-", dir=final.parent))
            try:
                rng = np.random.default_rng((seed, zlib.crc32(rel.encode()), 1))
                _write_renderings(tmp / "rendering", v, f, n_views, image_size, rng, 0)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            done += 1
    return done
