"""Clouds to files other tools open: meshes (PLY, OBJ, GLB) for Blender and game engines, and
coloured point clouds (PLY).

Meshing (Open3D). On the 2048-point clouds pc3d works with, thin parts (seats, backs,
wings) are sampled on both sides a few points apart: the alpha shape follows them best and is
the default; Poisson smooths and closes, but blobs thin parts; ball pivoting leaves holes
(``docs/export_{alpha,poisson,ball-pivoting}.png`` compare them on one chair).

* ``alpha`` (default): the alpha shape (``alpha`` default 8 x the mean nearest-neighbour
  distance; smaller values leave non-manifold edges); tight around thin parts.
* ``poisson``: normals estimated from ``k = 15`` nearest neighbours and oriented
  consistently (tangent-plane propagation, then flipped to point away from the centroid on
  average), screened Poisson reconstruction at octree ``depth``, then the vertices whose
  Poisson density is below the ``trim`` quantile (default 0.1) are removed (Poisson closes every surface,
  also where there are no points; the trim cuts those bubbles away). The untrimmed Poisson
  mesh is closed (``trim=0``; see below); trimming opens holes, so a trimmed mesh is not.
* ``ball-pivoting``: triangles from balls of radii ``radii`` (default 1, 2 and 4 times the
  mean nearest-neighbour distance) rolled over the points; keeps the points as vertices, has
  holes where sampling is sparse, never watertight in general.

Watertightness, as Open3D's ``is_watertight`` judges it (closed, edge- and vertex-manifold,
not self-intersecting): the untrimmed Poisson surface of a closed, well-sampled surface (a
sphere of 1000 points, depth 7 or 8) is; on thin ShapeNet-like shapes the Poisson surface
reaches its bounding box and is cut open there, and at some depths a few of its triangles
intersect, so do not rely on it for such shapes.

Formats by suffix: ``.ply`` and ``.obj`` by Open3D; ``.glb`` (binary glTF 2.0) by
:func:`write_glb` here (positions, normals, optional vertex colours; Open3D 0.20's own GLB
writer writes broken buffers). :func:`y_up_to_z_up` rotates pc3d's convention (Y up, objects
facing +Z) into Blender's (Z up, facing -Y, i.e. towards Blender's front view):
``(x, y, z) -> (x, -z, y)``.

Blender: ``pc3d-export --z-up`` writes what Blender's *default* importer of each format needs
for the object to stand on +Z (:func:`blender_needs_z_up`). The OBJ and glTF importers convert
Y-up files to Z-up themselves (OBJ: forward -Z, up Y by default; glTF is Y-up by definition),
so OBJ and GLB are written Y-up, unrotated; the PLY importer takes the file's axes as they
are, so PLY (and PCD) files are rotated. Rotating an OBJ too would make Blender rotate it a
second time: the object would come in lying on its back.

Shapes: clouds (N, 3); meshes are ``open3d.geometry.TriangleMesh``.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "BLENDER_Y_UP_FORMATS",
    "MESH_FORMATS",
    "METHODS",
    "alpha_shape_mesh",
    "ball_pivoting_mesh",
    "blender_needs_z_up",
    "cloud_to_mesh",
    "estimate_normals",
    "poisson_mesh",
    "read_glb",
    "write_cloud",
    "write_glb",
    "write_mesh",
    "y_up_to_z_up",
]

METHODS = ("alpha", "poisson", "ball-pivoting")
MESH_FORMATS = (".ply", ".obj", ".glb")
_Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # (x, y, z) -> (x, -z, y)

# Formats whose default Blender importer expects Y up and rotates to Z up itself (the object's (x, y, z)
# lands at Blender's (x, -z, y), i.e. exactly y_up_to_z_up):
# * OBJ: the Blender manual (Wavefront OBJ, Forward/Up Axis; https://docs.blender.org/manual/en/4.2/files/
#   import_export/obj.html) says Blender is Y forward / Z up and that Y-up files need -Z forward / Y up;
#   that is the OBJ exporter's default (https://github.com/cesiumgs/obj2gltf/issues/63) and the importer's
#   (wm.obj_import forward_axis=NEGATIVE_Z, up_axis=Y: from the operator, the manual page states no default).
# * glTF: Y-up by definition (glTF 2.0 spec); Blender's glTF importer converts to Z up.
# Everything else is written Z-up for Blender: its PLY importer takes the file's axes as they are. The
# Python add-on (Blender <= 3.5) had no import options at all (manual: the PLY import has no properties,
# https://docs.blender.org/manual/ja/2.90/addons/import_export/mesh_ply.html; bpy.ops.import_mesh.ply
# takes no axis arguments, https://docs.blender.org/api/2.83/bpy.ops.import_mesh.html); the C++ importer
# of 3.6+ has Forward/Up settings whose default is Blender's own Y forward / Z up, i.e. no conversion
# (https://docs.blender.org/manual/ca/4.3/files/import_export/ply.html lists the settings; the default
# values are from the operator, not stated on that page).
BLENDER_Y_UP_FORMATS = (".obj", ".glb", ".gltf")


def _cloud(points: Any) -> np.ndarray:
    from pc3d.viz.render import as_cloud

    a = as_cloud(points, "points")
    if len(a) < 4:
        raise ValueError(f"points: need at least 4 points to build a mesh, got shape {a.shape}")
    check_spans_3d(a)
    return a


def check_spans_3d(points: np.ndarray) -> None:
    """``ValueError`` when points (N, 3) do not span 3D (all identical, collinear or coplanar, up to
    a 1e-9 relative tolerance): every meshing method runs Qhull (Delaunay / normal orientation),
    which fails on such input with a precision error."""
    p = np.asarray(points, np.float64)
    distinct = len(np.unique(p, axis=0))
    if distinct < 4:
        raise ValueError(
            f"points: only {distinct} distinct point(s) among {len(p)}; a mesh needs at least 4 points "
            f"that span 3D (export them with --method points instead)"
        )
    sv = np.linalg.svd(p - p.mean(axis=0), compute_uv=False)
    if sv[2] <= 1e-9 * sv[0]:
        what = "collinear" if sv[1] <= 1e-9 * sv[0] else "coplanar"
        raise ValueError(
            f"points: all {len(p)} points are {what} (singular values {sv[0]:.3g}, {sv[1]:.3g}, {sv[2]:.3g}); "
            f"a surface mesh needs points that span 3D (Qhull cannot triangulate them); export them with "
            f"--method points instead"
        )


def _o3d():
    import open3d as o3d

    return o3d


def mean_spacing(points: np.ndarray) -> float:
    """Mean distance from each point (N, 3) to its nearest neighbour."""
    o3d = _o3d()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    d = np.asarray(pcd.compute_nearest_neighbor_distance())
    return float(d[d > 0].mean()) if (d > 0).any() else 1e-3


def estimate_normals(points: Any, k: int = 15):
    """Point cloud with unit normals estimated from ``k`` neighbours, consistently oriented and
    pointing outwards on average. Args: points (N, 3). Returns ``open3d.geometry.PointCloud``."""
    o3d = _o3d()
    p = _cloud(points)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=min(k, len(p) - 1)))
    pcd.orient_normals_consistent_tangent_plane(min(15, len(p) - 1))
    n = np.asarray(pcd.normals)
    if float(np.einsum("ij,ij->", n, p - p.mean(0))) < 0:
        pcd.normals = o3d.utility.Vector3dVector(-n)
    return pcd


def poisson_mesh(points: Any, depth: int = 8, trim: float = 0.1, k: int = 15):
    """Screened Poisson surface of points (N, 3) (see the module docstring).

    Args:
        depth: octree depth (8: ~2^8 cells across; more is finer and slower).
        trim: drop vertices whose density is below this quantile (0 keeps the watertight surface).
        k: neighbours for the normal estimate.
    Returns: ``open3d.geometry.TriangleMesh`` with vertex normals.
    """
    o3d = _o3d()
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must be a quantile in [0, 1), got {trim}")
    pcd = estimate_normals(points, k)
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=int(depth))
    dens = np.asarray(dens)
    if trim > 0:
        mesh.remove_vertices_by_mask(dens < np.quantile(dens, trim))
        mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    return mesh


def ball_pivoting_mesh(points: Any, radii: list[float] | None = None, k: int = 15):
    """Ball-pivoting mesh of points (N, 3); ``radii`` default: 1, 2, 4 x the mean spacing."""
    o3d = _o3d()
    pcd = estimate_normals(points, k)
    if radii is None:
        s = mean_spacing(np.asarray(pcd.points))
        radii = [s, 2 * s, 4 * s]
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(pcd, o3d.utility.DoubleVector(radii))
    mesh.compute_vertex_normals()
    return mesh


def alpha_shape_mesh(points: Any, alpha: float | None = None):
    """Alpha shape of points (N, 3); ``alpha`` default: 8 x the mean spacing."""
    o3d = _o3d()
    p = _cloud(points)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    if alpha is None:
        alpha = 8 * mean_spacing(p)
    level = o3d.utility.get_verbosity_level()
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    try:
        mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(pcd, float(alpha))
    finally:
        o3d.utility.set_verbosity_level(level)
    mesh.compute_vertex_normals()
    return mesh


def cloud_to_mesh(points: Any, method: str = "alpha", **kwargs: Any):
    """Mesh points (N, 3) with ``method`` in :data:`METHODS`; ``kwargs`` go to that function.
    Raises ``ValueError`` if the result has no triangles."""
    fns = {"poisson": poisson_mesh, "ball-pivoting": ball_pivoting_mesh, "alpha": alpha_shape_mesh}
    if method not in fns:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    try:
        mesh = fns[method](points, **kwargs)
    except RuntimeError as exc:  # Qhull (Delaunay / normal orientation) on degenerate input
        if "qhull" not in str(exc).lower():
            raise
        first = str(exc).strip().splitlines()[0][:200]
        raise ValueError(f"{method}: Qhull could not triangulate the points (degenerate input: {first})") from exc
    if len(mesh.triangles) == 0:
        raise ValueError(f"{method} produced no triangles (try other parameters or another method)")
    return mesh


def y_up_to_z_up(x: Any):
    """Rotate from pc3d's Y-up/+Z-front to Blender's Z-up/-Y-front: ``(x, y, z) -> (x, -z, y)``.
    Takes points (N, 3) (returns a new array) or an Open3D mesh / point cloud (rotated in place
    about the origin and returned)."""
    if hasattr(x, "rotate"):
        return x.rotate(_Z_UP, center=(0.0, 0.0, 0.0))
    return np.asarray(x, np.float64) @ _Z_UP.T


def blender_needs_z_up(path: str | os.PathLike) -> bool:
    """Whether a file written to ``path`` must be rotated by :func:`y_up_to_z_up` for Blender's default
    importer of its format to stand the object on +Z: False for OBJ and glTF/GLB (those importers turn
    Y up into Z up themselves), True otherwise (PLY: Blender keeps the file's axes)."""
    return Path(path).suffix.lower() not in BLENDER_Y_UP_FORMATS


def _vertex_colors(vertices: np.ndarray, colors: Any, n_branches: int | None = None) -> np.ndarray | None:
    if colors is None:
        return None
    from pc3d.viz.render import point_colors

    return point_colors(vertices, colors, n_branches)


def write_mesh(mesh, path: str | os.PathLike, *, z_up: bool = False, colors: Any = None) -> Path:
    """Write an Open3D ``TriangleMesh`` as ``.ply``, ``.obj`` or ``.glb`` (by suffix).

    Args:
        z_up: rotate into Z up first (:func:`y_up_to_z_up`; refused for ``.glb``: glTF is Y-up). For
            Blender, only PLY wants that: its OBJ importer rotates Y-up files itself, so a Z-up OBJ
            comes in lying down; use ``z_up=blender_needs_z_up(path)``.
        colors: optional vertex colouring, e.g. ``"height"`` (computed before any rotation) or
            an RGB triple; OBJ files do not keep vertex colours.
    Returns: the path. The mesh passed in is not modified.
    """
    import copy

    o3d = _o3d()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {', '.join(MESH_FORMATS)}, got {suffix!r}")
    if suffix == ".glb" and z_up:
        raise ValueError(f"{path}: glTF is Y-up by definition (Blender's importer rotates it to Z-up); "
                         "write .glb without --z-up, or use .ply/.obj with --z-up")
    mesh = copy.deepcopy(mesh)
    rgb = _vertex_colors(np.asarray(mesh.vertices), colors)
    if rgb is not None:
        mesh.vertex_colors = o3d.utility.Vector3dVector(rgb)
    if z_up:
        y_up_to_z_up(mesh)
    if not mesh.has_vertex_normals():
        mesh.compute_vertex_normals()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".glb":
        write_glb(np.asarray(mesh.vertices), np.asarray(mesh.triangles), path,
                  normals=np.asarray(mesh.vertex_normals),
                  colors=np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None)
        return path
    level = o3d.utility.get_verbosity_level()
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)  # "OBJ can not include triangle normals"
    try:
        ok = o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=False, write_vertex_colors=rgb is not None)
    finally:
        o3d.utility.set_verbosity_level(level)
    if not ok:
        raise OSError(f"{path}: Open3D could not write the mesh")
    return path


def write_cloud(points: Any, path: str | os.PathLike, *, colors: Any = "height", n_branches: int | None = None,
                z_up: bool = False) -> Path:
    """Write points (N, 3) as a (binary) PLY or PCD point cloud with per-point RGB colours.

    ``colors``: as :func:`pc3d.viz.render.point_colors` (computed in pc3d's Y-up frame, before
    ``z_up``), or ``None`` for no colours."""
    o3d = _o3d()
    from pc3d.viz.render import as_cloud

    path = Path(path)
    if path.suffix.lower() not in (".ply", ".pcd"):
        raise ValueError(f"{path}: clouds are written as .ply or .pcd, got {path.suffix!r}")
    p = as_cloud(points, "points")
    rgb = _vertex_colors(p, colors, n_branches)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(y_up_to_z_up(p) if z_up else p))
    if rgb is not None:
        pcd.colors = o3d.utility.Vector3dVector(rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_point_cloud(str(path), pcd, write_ascii=False):
        raise OSError(f"{path}: Open3D could not write the point cloud")
    return path


# ----------------------------------------------------------------------------------------
# GLB (binary glTF 2.0), written by hand: one mesh, one primitive, triangles
# ----------------------------------------------------------------------------------------

_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def write_glb(vertices: np.ndarray, triangles: np.ndarray, path: str | os.PathLike, *,
              normals: np.ndarray | None = None, colors: np.ndarray | None = None) -> Path:
    """Write a triangle mesh as a binary glTF 2.0 file.

    Args:
        vertices: (V, 3) positions (Y up, glTF's convention). triangles: (T, 3) vertex indices.
        normals: optional (V, 3) unit normals. colors: optional (V, 3) RGB in [0, 1].
    Returns: the path.
    """
    v = np.ascontiguousarray(vertices, np.float32).reshape(-1, 3)
    t = np.ascontiguousarray(triangles, np.uint32).reshape(-1, 3)
    if len(v) == 0 or len(t) == 0:
        raise ValueError(f"{path}: a GLB needs vertices and triangles, got {len(v)} and {len(t)}")
    if t.max() >= len(v):
        raise ValueError(f"{path}: triangle index {int(t.max())} out of range for {len(v)} vertices")
    blobs: list[bytes] = []
    views: list[dict] = []
    accessors: list[dict] = []

    def add(data: np.ndarray, target: int, ctype: int, kind: str, minmax: bool = False) -> int:
        offset = sum(len(b) for b in blobs)
        raw = data.tobytes()
        raw += b"\x00" * (-len(raw) % 4)
        blobs.append(raw)
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": data.nbytes, "target": target})
        acc = {"bufferView": len(views) - 1, "componentType": ctype, "count": int(data.shape[0]), "type": kind}
        if minmax:
            acc["min"] = data.min(0).astype(float).tolist()
            acc["max"] = data.max(0).astype(float).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    attrs = {"POSITION": add(v, _ARRAY_BUFFER, _FLOAT, "VEC3", minmax=True)}
    if normals is not None and len(normals) == len(v):
        n = np.asarray(normals, np.float32).reshape(-1, 3)
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        attrs["NORMAL"] = add(np.ascontiguousarray(np.where(norm > 0, n / np.maximum(norm, 1e-12), [0, 1, 0]),
                                                   np.float32), _ARRAY_BUFFER, _FLOAT, "VEC3")
    if colors is not None and len(colors) == len(v):
        attrs["COLOR_0"] = add(np.ascontiguousarray(np.clip(colors, 0, 1), np.float32), _ARRAY_BUFFER, _FLOAT, "VEC3")
    indices = add(t.reshape(-1), _ELEMENT_ARRAY_BUFFER, _UINT, "SCALAR")
    accessors[indices]["count"] = int(t.size)
    binary = b"".join(blobs)
    doc = {
        "asset": {"version": "2.0", "generator": "pc3d"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": Path(path).stem}],
        "meshes": [{"primitives": [{"attributes": attrs, "indices": indices, "mode": 4, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [0.8, 0.8, 0.8, 1.0], "metallicFactor": 0.0,
                                                "roughnessFactor": 0.8}, "doubleSided": True}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    out = (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
           + struct.pack("<I4s", len(binary), b"BIN\x00") + binary)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def read_glb(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read back the first primitive of a GLB written by :func:`write_glb`: vertices (V, 3)
    float32 and triangles (T, 3) int64 (a small reader for checks, not a general glTF loader)."""
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or total != len(data):
        raise ValueError(f"{path}: not a binary glTF 2.0 file")
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<I4s", data, 20 + jlen)
    if jtype != b"JSON" or btype != b"BIN\x00":
        raise ValueError(f"{path}: malformed GLB chunks")
    binary = data[28 + jlen:28 + jlen + blen]

    def get(i: int) -> np.ndarray:
        acc = doc["accessors"][i]
        view = doc["bufferViews"][acc["bufferView"]]
        dtype = {_FLOAT: np.float32, _UINT: np.uint32}[acc["componentType"]]
        width = {"SCALAR": 1, "VEC3": 3}[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        return np.frombuffer(binary, dtype, acc["count"] * width, start).reshape(acc["count"], width)

    prim = doc["meshes"][0]["primitives"][0]
    return get(prim["attributes"]["POSITION"]), get(prim["indices"]).reshape(-1, 3).astype(np.int64)
