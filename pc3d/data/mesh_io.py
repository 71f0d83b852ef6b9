"""Reading mesh files into one triangle mesh, and sampling its surface (trimesh).

:func:`read_mesh` turns a file as other tools write it into ``vertices (V, 3) float64`` and
``triangles (T, 3) int64``:

* ``.obj .ply .stl .glb .gltf`` are read with trimesh (``process=False``: no repair, no
  guessing); ``.off`` with :func:`read_off` (a small strict parser that tolerates ModelNet's
  ``OFF490 518 0`` header).
* Every object of a file (glTF nodes, OBJ ``o``/``g``/``usemtl`` parts, the ``solid`` blocks of an
  ASCII STL) is merged into one mesh, each placed by its scene-graph transform.
* Polygons are triangulated: convex ones as a fan, concave ones (OBJ and OFF) by ear clipping in
  their plane, so a triangulated face covers exactly the polygon. Other formats' polygons are fanned
  by trimesh (exact for convex polygons, which is what PLY exporters write). OBJ relative
  (negative) indices are resolved where they stand.
* Points and lines (OBJ ``p``/``l``, glTF point/line primitives) are ignored, and so are vertices
  no triangle uses; exact duplicate vertices (an STL's per-triangle corners, OBJ UV seams) are merged.
* Materials and textures are not read: a missing ``.mtl`` or texture is no error.
* A file that is broken (unparsable, truncated, no triangles, indices out of range, NaN vertices,
  vertex coordinates beyond ``|x| <=`` :data:`MAX_ABS_COORD` = 1e6, a directory named like a mesh)
  raises ``ValueError`` that starts with the path and says what is wrong.

Up axis. pc3d's frame is +Y up, front towards +Z (the built-in procedural set, and the renderer's
cameras, which orbit the Y axis). Per format:

=============  ==================================  ==========================================
format         up axis in the file                 what pc3d does
=============  ==================================  ==========================================
glTF / GLB     +Y up, +Z front, metres (the spec)  nothing to convert: node transforms are
                                                   applied and the result is already pc3d's
                                                   frame
OBJ            none (Blender's exporter and        coordinates used as stored
               ShapeNet write +Y up)
PLY, STL, OFF  none (CAD / 3D-printing tools and   coordinates used as stored
               Blender's PLY/STL exporters usually
               write +Z up)
=============  ==================================  ==========================================

pc3d never guesses an up axis from the geometry: a Z-up file lands lying on its back (its
``+Z`` is pc3d's front). Re-export it Y-up, or rotate the clouds, (x, y, z) -> (x, z, -y).
Units are not changed here either; the readers normalise each mesh afterwards.

:func:`sample_surface` samples area-uniformly with trimesh, from a seeded NumPy generator, so the
same mesh and generator state give the same points.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

__all__ = ["MESH_SUFFIXES", "read_mesh", "read_off", "sample_surface", "triangulate_polygon"]

MESH_SUFFIXES = (".obj", ".ply", ".off", ".glb", ".gltf", ".stl")

#: largest absolute vertex coordinate accepted (as :data:`pc3d.data.base.MAX_ABS_COORD`): larger
#: finite values (3e38 from a corrupt file) overflow areas and distances downstream
MAX_ABS_COORD = 1e6

#: polygons with more corners than this are fanned instead of ear-clipped (ear clipping is quadratic)
MAX_EAR_CLIP_CORNERS = 4096


# ------------------------------------------------------------------------------------- polygons
def _plane_coords(points: np.ndarray) -> np.ndarray | None:
    """(..., n, 3) polygon corners -> (..., n, 2) coordinates in the polygon's plane, oriented so
    the polygon winds counter-clockwise (Newell's normal); ``None`` for a single degenerate polygon."""
    nxt = np.roll(points, -1, axis=-2)
    normal = np.cross(points, nxt).sum(axis=-2)  # Newell: 2 * area * unit normal
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    if points.ndim == 2 and float(length[0]) == 0.0:
        return None
    normal = normal / np.where(length > 0, length, 1.0)
    # any vector not parallel to the normal gives the first in-plane axis
    helper = np.where(np.abs(normal[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    u = np.cross(normal, helper)
    u_len = np.linalg.norm(u, axis=-1, keepdims=True)
    u = u / np.where(u_len > 0, u_len, 1.0)  # degenerate polygons (batch case): all coordinates 0
    w = np.cross(normal, u)
    return np.stack([(points * u[..., None, :]).sum(-1), (points * w[..., None, :]).sum(-1)], axis=-1)


def _corner_turns(p2: np.ndarray) -> np.ndarray:
    """(..., n, 2) -> (..., n) z of (p_i - p_{i-1}) x (p_{i+1} - p_i): > 0 at convex corners."""
    a = p2 - np.roll(p2, 1, axis=-2)
    b = np.roll(p2, -1, axis=-2) - p2
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _is_convex(p2: np.ndarray) -> np.ndarray:
    """(..., n, 2) counter-clockwise polygons -> (...) bool: no reflex corner (up to round-off)."""
    scale = np.abs(p2 - p2.mean(axis=-2, keepdims=True)).max(axis=(-2, -1)) + 1e-300
    return (_corner_turns(p2) >= -1e-9 * scale[..., None] ** 2).all(axis=-1)


def _fan(n: int) -> np.ndarray:
    return np.stack([np.zeros(n - 2, np.int64), np.arange(1, n - 1), np.arange(2, n)], axis=1)


def triangulate_polygon(points: np.ndarray) -> np.ndarray:
    """Triangulate one planar (or nearly planar) simple polygon.

    Convex polygons are fanned from corner 0; concave ones are ear-clipped in the plane of
    Newell's normal, so the triangles tile the polygon without overlap. Degenerate polygons
    (zero area) and polygons with more than :data:`MAX_EAR_CLIP_CORNERS` corners are fanned.

    Args:
        points: (n, 3) corners in order, n >= 3.

    Returns:
        (n - 2, 3) int64 indices into ``points``, wound like the polygon.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"expected polygon corners of shape (n, 3) with n >= 3, got {points.shape}")
    n = len(points)
    if n == 3:
        return np.array([[0, 1, 2]], dtype=np.int64)
    p2 = _plane_coords(points)
    if p2 is None or n > MAX_EAR_CLIP_CORNERS or _is_convex(p2):
        return _fan(n)
    eps = 1e-12 * float(np.ptp(p2, axis=0).max()) ** 2
    idx = list(range(n))
    out = []
    guard = 0
    k = 0
    while len(idx) > 3:
        m = len(idx)
        i0, i1, i2 = idx[(k - 1) % m], idx[k % m], idx[(k + 1) % m]
        a, b, c = p2[i0], p2[i1], p2[i2]
        cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
        is_ear = cross > eps
        if is_ear:  # no other remaining corner inside (or on) triangle a b c
            others = np.array([j for j in idx if j not in (i0, i1, i2)], dtype=np.int64)
            q = p2[others]
            d0 = (b[0] - a[0]) * (q[:, 1] - a[1]) - (b[1] - a[1]) * (q[:, 0] - a[0])
            d1 = (c[0] - b[0]) * (q[:, 1] - b[1]) - (c[1] - b[1]) * (q[:, 0] - b[0])
            d2 = (a[0] - c[0]) * (q[:, 1] - c[1]) - (a[1] - c[1]) * (q[:, 0] - c[0])
            is_ear = not ((d0 >= -eps) & (d1 >= -eps) & (d2 >= -eps)).any()
        if is_ear:
            out.append((i0, i1, i2))
            del idx[k % m]
            guard = 0
            k = (k - 1) % (m - 1)  # the corner before the clipped one may have become an ear
        else:
            k += 1
            guard += 1
            if guard > m:  # no ear left (self-intersecting or numerically flat): fan the rest
                out.extend((idx[0], idx[j], idx[j + 1]) for j in range(1, m - 1))
                idx = []
                break
    if len(idx) == 3:
        out.append(tuple(idx))
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


# ------------------------------------------------------------------------------------------ OFF
def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh -> vertices (V, 3) float64, triangles (T, 3) int64.

    Comment (``#``) and blank lines are skipped; ``OFF`` and ``COFF`` headers are accepted, also
    glued to the counts (``OFF490 518 0``, as in ModelNet40). Extra vertex columns (colours) and
    trailing per-face colours are ignored; polygons are triangulated by :func:`triangulate_polygon`.
    Anything else that is wrong raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text OFF file ({exc})") from exc
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    head_match = re.match(r"C?OFF", lines[0]) if lines else None
    if head_match is None:
        raise ValueError(f"{path}: expected an OFF header line starting with 'OFF', got {lines[:1]}")
    glued = lines[0][head_match.end() :].split()
    head = glued or (lines[1].split() if len(lines) > 1 else [])
    start = 1 if glued else 2
    try:
        n_v, n_f = int(head[0]), int(head[1])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: expected 'OFF' then counts '<n_vertices> <n_faces> <n_edges>'") from exc
    if n_v <= 0 or n_f <= 0 or len(lines) < start + n_v + n_f:
        raise ValueError(
            f"{path}: header says {n_v} vertices and {n_f} faces, the file has {len(lines) - start} data lines"
        )
    try:
        v = np.array([ln.split()[:3] for ln in lines[start : start + n_v]], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: vertex lines must hold 3 numbers: {exc}") from exc
    if v.shape != (n_v, 3):
        raise ValueError(f"{path}: vertex lines must hold 3 numbers, got vertices of shape {v.shape}")
    tris = []
    for k, ln in enumerate(lines[start + n_v : start + n_v + n_f]):
        tok = ln.split()
        try:
            n = int(tok[0])
            idx = np.array([int(t) for t in tok[1 : 1 + n]], dtype=np.int64)
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}: face {k}: expected '<n> i1 ... in', got {ln!r}") from exc
        if n < 3 or len(idx) != n:
            raise ValueError(f"{path}: face {k}: expected '<n> i1 ... in' with n >= 3, got {ln!r}")
        if n == 3:
            tris.append(idx[None])
        elif idx.min() < 0 or idx.max() >= n_v:
            tris.append(idx[_fan(n)])  # out of range: reported by _checked_mesh below
        else:
            tris.append(idx[triangulate_polygon(v[idx])])
    return _checked_mesh(path, v, np.concatenate(tris))


def _checked_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"{path}: expected vertices of shape (V, 3) with V > 0, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"{path}: expected triangles of shape (T, 3) with T > 0, got {f.shape} (no faces?)")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"{path}: triangle indices must be in [0, {v.shape[0]}), got [{f.min()}, {f.max()}]")
    used = v[np.unique(f)]
    bad = int((~np.isfinite(used)).sum())
    if bad:
        raise ValueError(f"{path}: {bad} non-finite vertex coordinates")
    big = float(np.abs(used).max())
    if big > MAX_ABS_COORD:
        raise ValueError(
            f"{path}: vertex coordinates up to {big:.3g}, beyond |x| <= {MAX_ABS_COORD:g} (corrupt file? "
            f"coordinates are bounded by pc3d.data.mesh_io.MAX_ABS_COORD)"
        )
    return v, f


# ------------------------------------------------------------------------------------------ OBJ
_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)", re.MULTILINE)
_OBJ_UV = re.compile(rb"^[ \t]*vt[ \t]", re.MULTILINE)
_OBJ_NORMAL = re.compile(rb"^[ \t]*vn[ \t]", re.MULTILINE)
# face lines that need work: polygons (4+ corners) and relative (negative) indices
_OBJ_FACE_TO_FIX = re.compile(
    rb"^f[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]+\S+[^\n]*|^f[ \t][^\n]*[ \t/]-[0-9][^\n]*", re.MULTILINE
)


# a face line with fewer than 3 corners
_OBJ_SHORT_FACE = re.compile(rb"^[ \t]*f(?:[ \t]+[^\s#]+){0,2}[ \t]*\r?$", re.MULTILINE)


def _obj_prepass(data: bytes) -> bytes:
    """OBJ bytes with the face lines trimesh would misread rewritten; everything else byte for byte.

    * relative (negative) indices ``f -4 -3 -2 -1`` are made absolute (trimesh resolves them from
      the end of the file, which is wrong as soon as more vertices follow);
    * a concave polygon (4+ corners, one reflex) becomes the ``f`` lines of its ear-clipped
      triangles (trimesh fans polygons, which is right only for convex ones).

    Corner tokens keep their ``v/vt/vn`` form.
    """
    faces = list(_OBJ_FACE_TO_FIX.finditer(data))
    if not faces:
        return data
    v_matches = list(_OBJ_VERTEX.finditer(data))
    try:
        verts = np.array([m.groups() for m in v_matches], dtype=np.float64).reshape(-1, 3)
    except ValueError:
        return data  # unparsable vertices: trimesh reports the file
    starts = [
        np.array([m.start() for m in ms], dtype=np.int64)
        for ms in (v_matches, _OBJ_UV.finditer(data), _OBJ_NORMAL.finditer(data))
    ]
    lines = [m.group(0) for m in faces]
    replace: dict[int, bytes] = {}
    # relative indices (rare): resolved line by line
    relative = [k for k, line in enumerate(lines) if b"-" in line]
    if relative:
        at = np.array([faces[k].start() for k in relative], dtype=np.int64)
        seen = np.stack([np.searchsorted(st, at) for st in starts], axis=1)  # v, vt, vn before each
        for r, k in enumerate(relative):
            try:
                fixed = [
                    b"/".join(
                        c if not c or int(c) >= 0 else str(int(seen[r, j]) + int(c) + 1).encode()
                        for j, c in enumerate(t.split(b"/")[:3])
                    )
                    for t in lines[k].split()[1:]
                ]
            except ValueError:
                continue  # not numbers (a comment?): left for trimesh
            lines[k] = replace[k] = b"f " + b" ".join(fixed)
    # polygons: corner positions gathered per corner count, convexity checked at once
    n_corners = np.array([len(line.split()) - 1 for line in lines], dtype=np.int64)
    for n in np.unique(n_corners[n_corners >= 4]).tolist():
        rows = np.flatnonzero(n_corners == n)
        blob = re.sub(rb"/\S*", b"", b" ".join(lines[k][1:] for k in rows))  # vertex index of each corner
        try:
            ids = np.array(blob.split(), dtype=np.bytes_).astype(np.int64).reshape(len(rows), n) - 1
        except ValueError:
            continue  # not numbers (a comment?): left for trimesh
        ok = (ids >= 0).all(axis=1) & (ids < len(verts)).all(axis=1)
        concave = ok.copy()
        concave[ok] = ~_is_convex(_plane_coords(verts[ids[ok]]))
        for k, row in zip(rows[concave], ids[concave], strict=True):
            tokens = lines[k].split()[1:]
            tris = triangulate_polygon(verts[row])
            replace[k] = b"\n".join(b"f " + b" ".join(tokens[j] for j in t) for t in tris)
    if not replace:
        return data
    out, pos = [], 0
    for k, m in enumerate(faces):
        if k in replace:
            out += [data[pos : m.start()], replace[k]]
            pos = m.end()
    out.append(data[pos:])
    return b"".join(out)


# ---------------------------------------------------------------------------------- all formats
def _scene_triangles(scene) -> tuple[np.ndarray, np.ndarray]:
    """Every triangle mesh of a trimesh Scene, placed by its node transform, as one (V, F) pair."""
    import trimesh

    vs, fs, offset = [], [], 0
    for node in sorted(scene.graph.nodes_geometry):
        transform, name = scene.graph[node]
        geom = scene.geometry.get(name)
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue  # points, lines, empty meshes
        v = np.asarray(geom.vertices, dtype=np.float64)
        v = v @ np.asarray(transform[:3, :3], dtype=np.float64).T + np.asarray(transform[:3, 3], dtype=np.float64)
        vs.append(v)
        fs.append(np.asarray(geom.faces, dtype=np.int64) + offset)
        offset += len(v)
    if not vs:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vs), np.concatenate(fs)


def _compact(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge exactly equal vertices and drop unused ones, keeping first-use order."""
    used = np.unique(f)
    _, first, inverse = np.unique(v[used], axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    remap = np.zeros(len(v), dtype=np.int64)
    remap[used] = rank[inverse.reshape(-1)]
    return v[used][first[order]], remap[f]


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a mesh file (OBJ, PLY, STL, OFF, glTF, GLB) as one triangle mesh.

    Objects are merged with their scene-graph transforms applied, polygons triangulated, points
    and lines ignored, unused and exactly duplicated vertices removed (see the module docstring,
    also for the up axis: coordinates are returned as stored; glTF is already +Y up).

    Args:
        path: the file; the format is its suffix (one of :data:`MESH_SUFFIXES`, any case).

    Returns:
        vertices (V, 3) float64 and triangles (T, 3) int64 indices into them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported suffix, or a broken file; the message starts with the path and
            says what is wrong (unparsable, no triangles, indices out of range, NaN vertices).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh format {path.suffix!r}; expected one of {MESH_SUFFIXES}")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a {suffix[1:].upper()} file")
    if not path.is_file():
        raise FileNotFoundError(path)
    if suffix == ".off":
        v, f = read_off(path)
        return _checked_mesh(path, *_compact(v, f))
    import trimesh

    try:
        if suffix == ".obj":
            data = path.read_bytes()
            short = _OBJ_SHORT_FACE.search(data)
            if short is not None:  # trimesh drops these silently (a truncated file, for one)
                line = data[: short.start()].count(b"\n") + 1
                raise ValueError(
                    f"{path}: line {line}: face with fewer than 3 corners ({short.group(0).strip()[:60]!r}); "
                    f"truncated or corrupt OBJ file?"
                )
            data = _obj_prepass(data)
            scene = trimesh.load(
                io.BytesIO(data),
                file_type="obj",
                force="scene",
                process=False,
                skip_materials=True,
                resolver=trimesh.resolvers.FilePathResolver(str(path)),
            )
        else:
            scene = trimesh.load(str(path), file_type=suffix[1:], force="scene", process=False)
        v, f = _scene_triangles(scene)
    except Exception as exc:  # trimesh raises whatever its parsers hit on a broken file
        raise ValueError(f"{path}: not a readable {suffix[1:].upper()} file ({type(exc).__name__}: {exc})") from exc
    if len(f) == 0:
        raise ValueError(
            f"{path}: no triangles (empty, or only points/lines; corrupt or not a {suffix[1:].upper()} file?)"
        )
    if f.min() < 0 or f.max() >= len(v):
        return _checked_mesh(path, v, f)  # raises naming the bad range
    return _checked_mesh(path, *_compact(v, f))


# ------------------------------------------------------------------------------------- sampling
def sample_surface(v: np.ndarray, f: np.ndarray, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Sample ``n_points`` points area-uniformly on a triangle mesh with trimesh.

    Args:
        v: (V, 3) vertices; f: (T, 3) int triangles.
        n_points: number of samples N.
        rng: the NumPy generator trimesh draws from (deterministic given its state).

    Returns:
        float32 (N, 3).

    Raises:
        ValueError: the mesh has zero surface area.
    """
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64), process=False)
    if not len(mesh.faces) or not mesh.area > 0:
        raise ValueError("cannot sample a mesh with zero surface area")
    points, _ = trimesh.sample.sample_surface(mesh, int(n_points), seed=rng)
    return np.asarray(points, dtype=np.float32)
