"""Built-in procedural dataset: parametrized shapes written in the public ShapeNet layouts.

pc3d runs out of the box on this data set. Every shape is an Open3D ``TriangleMesh``
assembled from parametrized primitives (boxes, cylinders, cones, spheres, tori and
surfaces of revolution, made with ``o3d.geometry.TriangleMesh.create_*`` or as a lathe,
then scaled, sheared, rotated and merged), with real variation inside each category
drawn from a seeded :class:`numpy.random.Generator`. The files are written in exactly
the layouts users have for real ShapeNet, so the same readers serve both.

Categories
----------
pc3d's own synset ids (``9xxxxxxx`` never collide with ShapeNet's ``0xxxxxxx``):

========  ==========  ===============================================================
name      synset      what varies
========  ==========  ===============================================================
airplane  90000001    fuselage length/radius, nose; wing span, chord, taper, sweep,
                      dihedral, low/mid/high mount; tail (conventional, T, V, twin
                      fin); engines (none, 2 or 4 under the wings, 2 at the rear)
chair     90000002    seat size/height/thickness; 3, 4 or 5 legs (round or square,
                      splayed) or a pedestal (disk or star base); back height, tilt
                      and style (panel, vertical or horizontal slats); arms or none
table     90000003    rectangular, square or round top; 4 legs, 2 trestle panels,
                      3 legs or 1 pedestal; apron; lower shelf; height, thickness
lamp      90000004    base (disk, box, dome, frustum); straight pole with a
                      cone/cylinder shade, or a desk lamp with 2-3 arm segments,
                      joints and a conical head
sofa      90000005    2-4 seats; depth, base and cushion heights; back height, tilt,
                      back cushions; box, rolled or no arms; legs or a plinth
car       90000006    body length/width/height, ground clearance, hood slope; cabin
                      length, height, position and windscreen slopes (sedan, SUV,
                      pickup with a bed); wheel radius/width/base; spoiler; mirrors
mug       90000007    radius, height, taper, wall thickness; torus handle (size,
                      height, how far it sticks out, oval) or a squared handle
bench     90000008    length, depth, height; plank or slatted seat; 4 or 6 legs or
                      2 side panels; backrest (slats, tilt) or none; arms
========  ==========  ===============================================================

Axis convention
---------------
Right-handed, **Y up**, objects **facing +Z** (airplane nose, car front, the side a
person sits down from on chairs, sofas and benches, the reach of a desk lamp all point
to +Z; a mug's handle is on +X). Each shape is centred at the origin (centre of its
axis-aligned bounding box) and scaled so that its farthest vertex is at distance 0.5:
it fits the sphere of radius 0.5, like ShapeNet's normalised models fit a unit-diagonal
box.

Layout under a dataset root ``root``
------------------------------------
::

    root/
      pc3d_synthetic.json                           completion manifest, written LAST
      ShapeNetCore.v2.PC15k/
        synsetoffset2category.txt                   "name<TAB>synset" per line
        <synset>/{train,val,test}/<model_id>.npy    float32 (n_points, 3)
      ShapeNetRendering/
        synsetoffset2category.txt
        <synset>/<model_id>/rendering/
          00.png 01.png ...                         RGBA, image_size x image_size
          renderings.txt                            one PNG file name per line
          rendering_metadata.txt                    one line per view

* ``.npy`` files hold area-uniform samples of the mesh surface (:func:`sample_surface`),
  exactly the ShapeNetCore.v2.PC15k layout (15000 points by default).
* Model ids are 32 lowercase hex characters, a hash of (seed, category, index)
  (:func:`model_id`), like ShapeNet's.
* Every model is rendered (whatever its split), like 3D-R2N2's ``ShapeNetRendering``;
  join the two trees by model id. With ``n_views=0`` no rendering tree is written.

Camera convention (``rendering_metadata.txt``)
----------------------------------------------
Each line is ``azimuth elevation in_plane_rotation distance_ratio fov``, as in 3D-R2N2,
e.g. ``293.5396 25.6200 0 0.8179 25``:

* ``azimuth`` (degrees, [0, 360)): rotation of the camera about +Y, measured from +Z
  towards +X (azimuth 0 looks at the front of the object from +Z, azimuth 90 from +X).
* ``elevation`` (degrees, drawn from [15, 35]): angle of the camera above the XZ plane.
* ``in_plane_rotation``: always 0 (the image's up is world +Y projected).
* ``distance_ratio`` (drawn from [0.8, 1.0]): the camera distance from the origin is
  ``distance_ratio * MAX_CAMERA_DISTANCE`` (``MAX_CAMERA_DISTANCE = 2.9``; at ratio 0.8
  the sphere of radius 0.5 just fills the frame).
* ``fov``: the **vertical** (= horizontal, images are square) field of view in degrees
  (always 25).

In formulas (see :func:`camera_pose` and :func:`camera_intrinsics`), with
``a = azimuth``, ``e = elevation``, ``d = distance_ratio * MAX_CAMERA_DISTANCE``:
the eye is ``d * (cos e sin a, sin e, cos e cos a)``, looking at the origin;
``forward = -eye / |eye|``, ``right = normalize(forward x +Y)``,
``up = right x forward``. A world point ``p`` has camera coordinates
``(x, y, z) = ((p - eye).right, (p - eye).up, (p - eye).forward)`` (``z > 0`` in front)
and lands at pixel ``(col, row) = (cx + f x / z, cy - f y / z)`` with
``f = (S / 2) / tan(fov / 2)``, ``cx = cy = S / 2`` for an ``S x S`` image, pixel
``(i, j)`` covering ``[j, j+1) x [i, i+1)`` (row 0 at the top).

Images are rendered with Open3D's ``RaycastingScene`` (CPU, no display): one ray
through each pixel centre, Lambertian shading from the hit triangle's normal (turned
towards the camera) with a light fixed in the camera frame (from the upper left, behind
the camera) plus ambient light, on a per-shape colour. Pixels that hit nothing are
``(255, 255, 255, 0)`` (transparent white), object pixels have alpha 255. Everything is
deterministic given the seed.

Determinism, splits, caching and atomicity
------------------------------------------
Every random draw comes from ``SeedSequence([seed, synset, index, stream])``, with
separate streams for the geometry, the point samples, the views and the split, so the
same seed gives byte-identical files (on the same platform and library versions)
whatever the number of worker processes, and a shape's geometry does not depend on
``n_points`` or ``n_views``. The split of a
category is a seeded permutation cut by the largest-remainder rule (80/10/10 by
default; when a split with a positive fraction would be empty and there are enough
shapes, one shape moves to it from the largest split).

Each category is built in a temporary folder ``root/.tmp-<synset>-<random>`` and moved
into place with ``os.replace`` (its point clouds, then its renderings); a marker
``root/.pc3d_synthetic.parts/<synset>.json`` then records it; the manifest
``root/pc3d_synthetic.json`` (parameters, categories, counts per split, pc3d version,
camera constants) is written last, by write-to-temp-then-rename, and the markers are
removed. A root without the manifest is not complete (:func:`is_complete`), and readers
must refuse built-in synsets there (:func:`read_manifest`). A killed run leaves
``.tmp-*`` folders (removed by the next run), finished categories with their markers
(reused by the next run with the same parameters) and at most one category moved in
without its marker (rebuilt). Generation holds an exclusive ``flock`` on the root folder
(POSIX), so concurrent calls on one root queue up instead of mixing.

Speed: about 25 ms per shape on one core at the default size (15000 points, 4 views of
137 px): 8 x 100 shapes take ~20 s and ~141 MiB. With ``workers > 1`` jobs of at least
``_POOL_MIN_SHAPES`` shapes use a ``spawn`` process pool, one category per task; smaller
jobs run in-process, because a spawned worker spends seconds importing (Open3D and
whatever ``pc3d.data`` imports).

Public API
----------
:func:`generate`, :func:`ensure_generated` (what ``prepare_data`` calls),
:func:`is_complete`, :func:`read_manifest`, :data:`MANIFEST_NAME`, :data:`CATEGORIES`;
building blocks: :func:`make_shape`, :func:`sample_surface`, :func:`render_view`,
:func:`camera_pose`, :func:`camera_intrinsics`, :func:`model_id`. Command line:
``pc3d-data generate`` (:mod:`pc3d.cli.data`).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "CATEGORIES",
    "FOV_DEG",
    "MANIFEST_NAME",
    "MAX_CAMERA_DISTANCE",
    "PC15K_DIRNAME",
    "RENDERING_DIRNAME",
    "SPLITS",
    "SYNSET_TO_NAME",
    "camera_intrinsics",
    "camera_pose",
    "ensure_generated",
    "generate",
    "is_complete",
    "make_shape",
    "model_id",
    "read_manifest",
    "render_view",
    "sample_surface",
]

CATEGORIES: dict[str, str] = {  # name -> synset id (pc3d's own ids)
    "airplane": "90000001",
    "chair": "90000002",
    "table": "90000003",
    "lamp": "90000004",
    "sofa": "90000005",
    "car": "90000006",
    "mug": "90000007",
    "bench": "90000008",
}
SYNSET_TO_NAME: dict[str, str] = {v: k for k, v in CATEGORIES.items()}

MANIFEST_NAME = "pc3d_synthetic.json"
PC15K_DIRNAME = "ShapeNetCore.v2.PC15k"
RENDERING_DIRNAME = "ShapeNetRendering"
NAME_MAP_FILENAME = "synsetoffset2category.txt"
SPLITS = ("train", "val", "test")

MAX_CAMERA_DISTANCE = 2.9
FOV_DEG = 25.0
ELEVATION_RANGE = (15.0, 35.0)
DISTANCE_RATIO_RANGE = (0.8, 1.0)
AMBIENT = 0.3

_FORMAT = "pc3d-synthetic"
_FORMAT_VERSION = 1
_PARTS_DIRNAME = ".pc3d_synthetic.parts"
_POOL_MIN_SHAPES = 1000  # smaller jobs run in-process: a spawned worker takes ~8 s to import
_STREAM_SHAPE, _STREAM_POINTS, _STREAM_VIEWS, _STREAM_SPLIT = 0, 1, 2, 3

Mesh = tuple[np.ndarray, np.ndarray]  # (V, 3) float64 vertices, (T, 3) int64 triangles


# ----------------------------------------------------------------------------------------
# Geometry helpers: primitives as (vertices, triangles) arrays
# ----------------------------------------------------------------------------------------


def _unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _rot_between(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Rotation matrix taking unit direction ``a`` to unit direction ``b`` (Rodrigues)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: rotate by pi about any axis orthogonal to a
        axis = _unit(np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0]))
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


@cache
def _o3d_unit(kind: str, res: int = 0) -> Mesh:
    """Unit primitives from Open3D, cached as read-only arrays.

    ``box``: cube [-0.5, 0.5]^3; ``cyl``: radius 1, z in [-0.5, 0.5]; ``cone``: base
    radius 1 at z=0, apex at z=1; ``sphere``: radius 1.
    """
    import open3d as o3d

    tm = o3d.geometry.TriangleMesh
    if kind == "box":
        m = tm.create_box(1.0, 1.0, 1.0)
        shift = np.array([-0.5, -0.5, -0.5])
    elif kind == "cyl":
        m = tm.create_cylinder(radius=1.0, height=1.0, resolution=res, split=1)
        shift = np.zeros(3)
    elif kind == "cone":
        m = tm.create_cone(radius=1.0, height=1.0, resolution=res, split=1)
        shift = np.zeros(3)
    elif kind == "sphere":
        m = tm.create_sphere(radius=1.0, resolution=res)
        shift = np.zeros(3)
    else:  # pragma: no cover - internal
        raise KeyError(kind)
    v = np.asarray(m.vertices, dtype=np.float64) + shift
    f = np.asarray(m.triangles, dtype=np.int64)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def _o3d_torus(ring_radius: float, tube_radius: float, radial_res: int, tubular_res: int) -> Mesh:
    """Open3D torus in the XY plane about +Z (not cached: its shape varies per call)."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=ring_radius,
        tube_radius=tube_radius,
        radial_resolution=radial_res,
        tubular_resolution=tubular_res,
    )
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.triangles, dtype=np.int64)


class _Parts:
    """Accumulates primitives (vertex/triangle arrays) into one triangle soup."""

    def __init__(self) -> None:
        self.vs: list[np.ndarray] = []
        self.fs: list[np.ndarray] = []
        self.n = 0

    def add(self, v: np.ndarray, f: np.ndarray) -> None:
        self.vs.append(np.asarray(v, dtype=np.float64))
        self.fs.append(np.asarray(f, dtype=np.int64) + self.n)
        self.n += len(v)

    # -- primitives --------------------------------------------------------------------
    def box(self, size, center=(0, 0, 0), rot: np.ndarray | None = None) -> None:
        """Axis-aligned box of ``size`` (before ``rot``) centred at ``center``."""
        v, f = _o3d_unit("box")
        v = v * np.asarray(size, dtype=np.float64)
        if rot is not None:
            v = v @ rot.T
        self.add(v + np.asarray(center, dtype=np.float64), f)

    def box_between(self, p0, p1, width: float, thickness: float, up=(0, 1.0, 0)) -> None:
        """Box whose long axis runs from ``p0`` to ``p1`` (a beam or plank)."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        ax = d / length
        side = np.cross(np.asarray(up, float), ax)
        if np.linalg.norm(side) < 1e-6:
            side = np.cross([1.0, 0, 0], ax)
        side = _unit(side)
        upv = np.cross(ax, side)
        rot = np.stack([side, upv, ax], axis=1)  # columns: local x, y, z -> world
        self.box((width, thickness, length), (p0 + p1) / 2, rot)

    def cylinder(self, p0, p1, radius: float, res: int = 16) -> None:
        """Closed cylinder with axis from ``p0`` to ``p1``."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        v, f = _o3d_unit("cyl", res)
        v = v * np.array([radius, radius, length])
        v = v @ _rot_between([0, 0, 1.0], d).T
        self.add(v + (p0 + p1) / 2, f)

    def cone(self, base, apex, radius: float, res: int = 16) -> None:
        """Closed cone with base disk at ``base`` and tip at ``apex``."""
        base, apex = np.asarray(base, float), np.asarray(apex, float)
        d = apex - base
        v, f = _o3d_unit("cone", res)
        v = v * np.array([radius, radius, float(np.linalg.norm(d))])
        v = v @ _rot_between([0, 0, 1.0], d).T
        self.add(v + base, f)

    def ellipsoid(self, center, radii, rot: np.ndarray | None = None, res: int = 8) -> None:
        v, f = _o3d_unit("sphere", res)
        v = v * np.asarray(radii, dtype=np.float64)
        if rot is not None:
            v = v @ rot.T
        self.add(v + np.asarray(center, float), f)

    def torus(
        self,
        center,
        ring_radius: float,
        tube_radius: float,
        rot=None,
        scale=(1.0, 1.0, 1.0),
        res=(24, 8),
        keep: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Torus (ring in the local XY plane), optionally keeping only some triangles.

        ``keep`` gets the (T, 3, 3) world triangle vertices and returns a (T,) bool mask.
        """
        v, f = _o3d_torus(ring_radius, tube_radius, res[0], res[1])
        v = v * np.asarray(scale, dtype=np.float64)
        if rot is not None:
            v = v @ rot.T
        v = v + np.asarray(center, float)
        if keep is not None:
            f = f[keep(v[f])]
        self.add(v, f)

    def lathe(self, profile: Sequence[tuple[float, float]], res: int = 24, base=(0, 0, 0), axis=(0, 1.0, 0)) -> None:
        """Surface of revolution of ``profile`` = [(r, y), ...] about the local +Y axis.

        The outward normal of a profile segment is its tangent ``(dr, dy)`` turned to
        ``(dy, -dr)``: list the profile bottom-centre -> outwards -> up -> inwards for a
        closed solid. Points with ``r == 0`` become single pole vertices (no degenerate
        triangles). The local +Y axis is then turned to ``axis`` and moved to ``base``.
        """
        th = 2 * np.pi * np.arange(res) / res
        s, c = np.sin(th), np.cos(th)
        verts: list[np.ndarray] = []
        rings: list[np.ndarray] = []
        n = 0
        for r, y in profile:
            if r <= 0:
                verts.append(np.array([[0.0, y, 0.0]]))
                rings.append(np.full(res, n))
                n += 1
            else:
                verts.append(np.stack([r * s, np.full(res, y), r * c], axis=1))
                rings.append(np.arange(n, n + res))
                n += res
        j = np.arange(res)
        jn = (j + 1) % res
        tris = []
        for k in range(len(profile) - 1):
            a, b = rings[k][j], rings[k][jn]
            cc, d = rings[k + 1][jn], rings[k + 1][j]
            pole0, pole1 = profile[k][0] <= 0, profile[k + 1][0] <= 0
            if pole0 and pole1:
                continue
            if pole0:
                tris.append(np.stack([a, cc, d], axis=1))
            elif pole1:
                tris.append(np.stack([a, b, cc], axis=1))
            else:
                tris.append(np.stack([a, b, cc], axis=1))
                tris.append(np.stack([a, cc, d], axis=1))
        v = np.concatenate(verts)
        rot = _rot_between([0, 1.0, 0], axis)
        self.add(v @ rot.T + np.asarray(base, float), np.concatenate(tris))

    def frustum(self, p0, p1, r0: float, r1: float, res: int = 20, wall: float | None = None) -> None:
        """Truncated cone from radius ``r0`` at ``p0`` to ``r1`` at ``p1``: solid, or with
        ``wall`` an open-ended shell of that thickness (a lamp shade, normals outward on
        the outside and towards the cavity on the inside)."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        length = float(np.linalg.norm(p1 - p0))
        if wall is None:
            prof = [(0.0, 0.0), (r0, 0.0), (r1, length), (0.0, length)]
        else:
            prof = [(r0, 0.0), (r1, length), (r1 - wall, length), (r0 - wall, 0.0), (r0, 0.0)]
        self.lathe(prof, res=res, base=p0, axis=p1 - p0)

    def surface(
        self,
        root,
        span_dir,
        thick_dir,
        span: float,
        c_root: float,
        c_tip: float,
        sweep: float,
        thickness: float,
        chord_dir=(0, 0, 1.0),
    ) -> None:
        """A lifting surface (wing, stabiliser, fin): a tapered, swept thin box.

        Leading edge of the root chord at ``root``; the chord runs from the leading edge
        along ``-chord_dir``; the span along ``span_dir``; the leading edge sweeps back
        by ``tan(sweep) * distance along the span``.
        """
        v, f = _o3d_unit("box")
        x = v[:, 0] + 0.5  # along span, 0..1
        y = v[:, 1]  # thickness, -0.5..0.5
        z = v[:, 2] - 0.5  # chord, -1..0 (0 = leading edge)
        chord = c_root + (c_tip - c_root) * x
        sd, td, cd = (np.asarray(u, float) for u in (span_dir, thick_dir, chord_dir))
        sd, td, cd = _unit(sd), _unit(td), _unit(cd)
        along_span = x * span
        along_chord = -along_span * math.tan(sweep) + z * chord
        across = y * thickness * (chord / c_root)
        out = np.asarray(root, float) + along_span[:, None] * sd + along_chord[:, None] * cd + across[:, None] * td
        if np.linalg.det(np.stack([sd, td, cd], axis=1)) < 0:  # mirrored frame
            f = f[:, ::-1]
        self.add(out, f)

    def mesh(self) -> Mesh:
        return np.concatenate(self.vs), np.concatenate(self.fs)


def _clean_and_normalize(v: np.ndarray, f: np.ndarray) -> Mesh:
    """Drop (near-)zero-area triangles and unused vertices; centre the bounding box at
    the origin and scale the farthest vertex to radius 0.5."""
    tri = v[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    scale_ref = float(np.ptp(v, axis=0).max())
    f = f[area2 > 1e-10 * scale_ref**2]
    used, inv = np.unique(f, return_inverse=True)
    v = v[used]
    f = inv.reshape(-1, 3)
    center = (v.min(axis=0) + v.max(axis=0)) / 2
    v = v - center
    v = v * (0.5 / float(np.linalg.norm(v, axis=1).max()))
    return v, f


# ----------------------------------------------------------------------------------------
# Category generators (real-world-ish units, Y up, facing +Z; normalised afterwards)
# ----------------------------------------------------------------------------------------


def _choice(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float]) -> Any:
    return options[int(rng.choice(len(options), p=np.asarray(p) / np.sum(p)))]


def _leg(parts: _Parts, top, bottom, r: float, square: bool) -> None:
    if square:
        parts.box_between(bottom, top, 2 * r, 2 * r, up=(0, 0, 1.0))
    else:
        parts.cylinder(bottom, top, r, res=12)


def _chair(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    w, d = rng.uniform(0.40, 0.60), rng.uniform(0.38, 0.55)
    h, t = rng.uniform(0.38, 0.50), rng.uniform(0.03, 0.08)
    p.box((w, t, d), (0, h - t / 2, 0))
    support = _choice(rng, ["legs4", "legs3", "legs5", "pedestal"], [0.6, 0.12, 0.1, 0.18])
    if support == "pedestal":
        col_r = rng.uniform(0.025, 0.045)
        base_y = rng.uniform(0.05, 0.09)
        p.cylinder((0, base_y, 0), (0, h - t, 0), col_r, res=14)
        p.cylinder((0, h - t - 0.02, 0), (0, h - t, 0), min(w, d) * 0.3, res=16)  # plate
        if rng.random() < 0.4:
            p.cylinder((0, 0, 0), (0, base_y, 0), rng.uniform(0.18, 0.28), res=24)
        else:
            k = int(rng.integers(4, 6))
            rad = rng.uniform(0.22, 0.3)
            off = rng.uniform(0, 2 * np.pi / k)
            for i in range(k):
                a = off + 2 * np.pi * i / k
                end = np.array([rad * math.sin(a), 0.035, rad * math.cos(a)])
                p.box_between((0, base_y, 0), end, 0.04, 0.03)
                p.ellipsoid(end - (0, 0.01, 0), (0.025,) * 3, res=6)
    else:
        lr = rng.uniform(0.014, 0.03)
        square = bool(rng.random() < 0.45)
        splay = rng.uniform(1.0, 1.25)
        inset = rng.uniform(0.02, 0.06)
        hx, hz = w / 2 - inset - lr, d / 2 - inset - lr
        if support == "legs4":
            tops = [(sx * hx, sz * hz) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            k = 3 if support == "legs3" else 5
            tops = [(hx * math.sin(2 * np.pi * i / k), hz * math.cos(2 * np.pi * i / k)) for i in range(k)]
        for x, z in tops:
            _leg(p, (x, h - t, z), (x * splay, 0, z * splay), lr, square)
        if support == "legs4" and rng.random() < 0.35:  # stretchers
            y = rng.uniform(0.1, 0.2)
            for sx in (-1, 1):
                p.cylinder((sx * hx, y, -hz), (sx * hx, y, hz), lr * 0.6, res=8)
    # back: rises from the rear edge of the seat, tilted backwards (towards -Z)
    bh = rng.uniform(0.30, 0.60)
    tilt = rng.uniform(0.0, np.deg2rad(20))
    bt = rng.uniform(0.02, 0.06)
    bw = w * rng.uniform(0.8, 1.0)
    rot = _rot_x(-tilt)
    pivot = np.array([0, h, -d / 2 + bt / 2])

    def back_box(size, local_center) -> None:
        p.box(size, pivot + rot @ np.asarray(local_center, float), rot)

    style = _choice(rng, ["panel", "vslats", "hslats"], [0.5, 0.25, 0.25])
    if style == "panel":
        back_box((bw, bh, bt), (0, bh / 2, 0))
    else:
        post = rng.uniform(0.03, 0.05)
        for sx in (-1, 1):
            back_box((post, bh, bt), (sx * (bw - post) / 2, bh / 2, 0))
        rail = rng.uniform(0.05, 0.1)
        back_box((bw, rail, bt), (0, bh - rail / 2, 0))
        k = int(rng.integers(2, 6))
        if style == "vslats":
            for i in range(k):
                x = -bw / 2 + post + (bw - 2 * post) * (i + 0.5) / k
                back_box((0.6 * (bw - 2 * post) / k, bh - rail, bt * 0.7), (x, (bh - rail) / 2, 0))
        else:
            k = min(k, 4)
            for i in range(k):
                y = (bh - rail) * (i + 0.5) / (k + 0.5)
                back_box((bw - 2 * post, 0.05, bt * 0.7), (0, y, 0))
    if rng.random() < 0.35:  # arms
        aw = rng.uniform(0.04, 0.07)
        ah = rng.uniform(0.18, 0.26)
        al = d * rng.uniform(0.7, 1.0)
        for sx in (-1, 1):
            x = sx * (w / 2 - aw / 2)
            p.box((aw, 0.03, al), (x, h + ah, -d / 2 + al / 2))
            _leg(p, (x, h + ah, -d / 2 + al - 0.04), (x, h, -d / 2 + al - 0.04), 0.015, bool(rng.random() < 0.5))
    return p


def _table(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    top = _choice(rng, ["rect", "square", "round"], [0.5, 0.2, 0.3])
    height = rng.uniform(0.55, 0.8)
    th = rng.uniform(0.025, 0.06)
    ytop = height - th / 2
    if top == "round":
        rad = rng.uniform(0.35, 0.65)
        p.cylinder((0, height - th, 0), (0, height, 0), rad, res=32)
        hw = hd = rad / math.sqrt(2)
    else:
        wd = rng.uniform(1.0, 1.8) if top == "rect" else rng.uniform(0.7, 1.1)
        dp = rng.uniform(0.55, 1.0) if top == "rect" else wd
        p.box((wd, th, dp), (0, ytop, 0))
        hw, hd = wd / 2, dp / 2
    ybot = height - th
    lr = rng.uniform(0.02, 0.05)
    square = bool(rng.random() < 0.5)
    if top == "round":
        legs = _choice(rng, [1, 3, 4], [0.5, 0.3, 0.2])
    else:
        legs = _choice(rng, [4, 2], [0.8, 0.2])
    if legs == 1:
        cr = rng.uniform(0.04, 0.08)
        p.cylinder((0, 0.03, 0), (0, ybot, 0), cr, res=16)
        if rng.random() < 0.5:
            p.cylinder((0, 0, 0), (0, 0.03, 0), rad * rng.uniform(0.45, 0.7), res=28)
        else:
            k = int(rng.integers(3, 5))
            for i in range(k):
                a = 2 * np.pi * i / k
                fr = rad * rng.uniform(0.5, 0.7)
                p.box_between((0, 0.05, 0), (fr * math.sin(a), 0.02, fr * math.cos(a)), 0.05, 0.04)
    elif legs in (3, 4) and top == "round":
        inset = rad * rng.uniform(0.55, 0.8)
        splay = rng.uniform(1.0, 1.25)
        for i in range(legs):
            a = 2 * np.pi * i / legs + (np.pi / 4 if legs == 4 else 0)
            x, z = inset * math.sin(a), inset * math.cos(a)
            _leg(p, (x, ybot, z), (x * splay, 0, z * splay), lr, square)
    elif legs == 4:
        inset = rng.uniform(0.03, 0.1)
        lx, lz = hw - inset - lr, hd - inset - lr
        for sx in (-1, 1):
            for sz in (-1, 1):
                _leg(p, (sx * lx, ybot, sz * lz), (sx * lx, 0, sz * lz), lr, square)
        if rng.random() < 0.4:  # apron
            ah = rng.uniform(0.06, 0.12)
            for sz in (-1, 1):
                p.box((2 * lx, ah, 0.02), (0, ybot - ah / 2, sz * lz))
            for sx in (-1, 1):
                p.box((0.02, ah, 2 * lz), (sx * lx, ybot - ah / 2, 0))
        if rng.random() < 0.2:  # lower shelf
            p.box((2 * lx, 0.02, 2 * lz), (0, rng.uniform(0.12, 0.25), 0))
    else:  # two trestle panels
        inset = rng.uniform(0.08, 0.2)
        pw = 2 * hd * rng.uniform(0.6, 0.9)
        for sx in (-1, 1):
            x = sx * (hw - inset)
            p.box((0.04, ybot, pw), (x, ybot / 2, 0))
            p.box((0.08, 0.04, 2 * hd * 0.9), (x, 0.02, 0))
        p.box((2 * (hw - inset), 0.06, 0.03), (0, rng.uniform(0.15, 0.35), 0))
    return p


def _lamp(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    base = _choice(rng, ["disk", "box", "dome", "frustum"], [0.35, 0.2, 0.2, 0.25])
    br = rng.uniform(0.08, 0.18)
    bh = rng.uniform(0.02, 0.06)
    if base == "disk":
        p.cylinder((0, 0, 0), (0, bh, 0), br, res=28)
    elif base == "box":
        p.box((2 * br, bh, 2 * br * rng.uniform(0.6, 1.0)), (0, bh / 2, 0))
    elif base == "dome":
        bh *= 1.5
        prof = (
            [(0.0, 0.0)]
            + [(br * math.cos(a), bh * math.sin(a)) for a in np.linspace(0, np.pi / 2 * 0.9, 6)]
            + [(0.0, bh)]
        )
        p.lathe(prof, res=24)
    else:
        p.frustum((0, 0, 0), (0, bh * 2, 0), br, br * rng.uniform(0.3, 0.7), res=24)
        bh *= 2
    if rng.random() < 0.5:  # straight pole, shade on top
        pole_h = rng.uniform(0.3, 1.2)
        pr = rng.uniform(0.008, 0.02)
        p.cylinder((0, bh, 0), (0, bh + pole_h, 0), pr, res=10)
        sr = rng.uniform(0.1, 0.25)
        top_r = sr * (rng.uniform(0.45, 0.85) if rng.random() < 0.7 else 1.0)
        sh = rng.uniform(0.12, 0.3)
        y0 = bh + pole_h - sh * rng.uniform(0.3, 0.6)
        p.frustum((0, y0, 0), (0, y0 + sh, 0), sr, top_r, res=28, wall=0.006)
        p.ellipsoid((0, y0 + sh * 0.35, 0), (0.035,) * 3, res=6)  # bulb
    else:  # desk lamp: 2-3 arm segments with joints, conical head
        n = int(rng.integers(2, 4))
        pt = np.array([0.0, bh, -br * rng.uniform(0.0, 0.6)])
        ar = rng.uniform(0.008, 0.016)
        angles = [rng.uniform(-np.deg2rad(25), np.deg2rad(15))]
        for _ in range(n - 1):
            angles.append(rng.uniform(np.deg2rad(35), np.deg2rad(100)))
        for a in angles:
            seg = rng.uniform(0.25, 0.42)
            nxt = pt + seg * np.array([0, math.cos(a), math.sin(a)])
            p.cylinder(pt, nxt, ar, res=10)
            p.ellipsoid(nxt, (ar * 2.2,) * 3, res=6)
            pt = nxt
        head_a = rng.uniform(np.deg2rad(10), np.deg2rad(60))  # from -Y towards +Z
        axis = np.array([0, -math.cos(head_a), math.sin(head_a)])
        hl = rng.uniform(0.1, 0.2)
        p.frustum(pt, pt + axis * hl, rng.uniform(0.025, 0.04), rng.uniform(0.07, 0.13), res=24, wall=0.004)
        p.ellipsoid(pt, (0.035,) * 3, res=6)
    return p


def _sofa(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    n = _choice(rng, [2, 3, 4], [0.35, 0.45, 0.2])
    sw = rng.uniform(0.5, 0.7)
    arms = _choice(rng, ["box", "rolled", "none"], [0.5, 0.3, 0.2])
    aw = rng.uniform(0.1, 0.25) if arms != "none" else 0.0
    inner = n * sw
    length = inner + 2 * aw
    depth = rng.uniform(0.75, 0.95)
    lh = rng.uniform(0.04, 0.12) if rng.random() < 0.7 else 0.0
    bh = rng.uniform(0.18, 0.28)
    ct = rng.uniform(0.1, 0.18)
    back_t = rng.uniform(0.15, 0.25)
    back_h = rng.uniform(0.3, 0.5)
    y_base = lh + bh
    p.box((length if arms == "none" else inner, bh, depth), (0, lh + bh / 2, 0))
    gap = rng.uniform(0.005, 0.02)
    for i in range(n):  # seat cushions
        x = -inner / 2 + sw * (i + 0.5)
        p.box((sw - gap, ct, depth - back_t), (x, y_base + ct / 2, back_t / 2))
    tilt = rng.uniform(0, np.deg2rad(12))
    rot = _rot_x(-tilt)
    pivot = np.array([0, y_base, -depth / 2 + back_t / 2])
    p.box((inner, back_h + ct, back_t), pivot + rot @ np.array([0, (back_h + ct) / 2, 0]), rot)
    if rng.random() < 0.5:  # back cushions
        bct = rng.uniform(0.08, 0.14)
        for i in range(n):
            x = -inner / 2 + sw * (i + 0.5)
            c = pivot + rot @ np.array([x, ct + back_h * 0.5, back_t / 2 + bct / 2])
            p.box((sw - gap, back_h * 0.8, bct), c, rot)
    ah = rng.uniform(0.1, 0.25)
    if arms != "none":
        for sx in (-1, 1):
            x = sx * (inner / 2 + aw / 2)
            top = y_base + ct + ah
            p.box((aw, top - lh, depth), (x, lh + (top - lh) / 2, 0))
            if arms == "rolled":
                p.cylinder((x, top, -depth / 2), (x, top, depth / 2), aw * 0.6, res=16)
    if lh > 0:
        legs_x = [-length / 2 + 0.06, length / 2 - 0.06] + ([0.0] if n >= 4 else [])
        for x in legs_x:
            for sz in (-1, 1):
                _leg(
                    p,
                    (x, lh, sz * (depth / 2 - 0.06)),
                    (x, 0, sz * (depth / 2 - 0.06)),
                    0.025,
                    bool(rng.random() < 0.5),
                )
    return p


def _car(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    length = rng.uniform(3.6, 5.0)
    width = rng.uniform(1.6, 1.95)
    wr = rng.uniform(0.28, 0.4)
    ww = rng.uniform(0.18, 0.3)
    clear = wr * rng.uniform(0.35, 0.7)
    body_h = rng.uniform(0.45, 0.75)
    kind = _choice(rng, ["sedan", "suv", "pickup"], [0.5, 0.3, 0.2])
    # body: a box whose front top edge is lowered (hood slope) and rear slightly
    v, f = _o3d_unit("box")
    v = v * np.array([width, body_h, length])
    hood = rng.uniform(0.0, 0.35) * body_h
    trunk = rng.uniform(0.0, 0.2) * body_h
    top = v[:, 1] > 0
    v[top & (v[:, 2] > 0), 1] -= hood
    v[top & (v[:, 2] < 0), 1] -= trunk
    p.add(v + np.array([0, clear + body_h / 2, 0]), f)
    ytop_body = clear + body_h - max(hood, trunk) * 0.5
    # cabin: a trapezoid prism (top face shorter than the bottom: windscreens)
    if kind == "suv":
        cl, ch, cz = length * rng.uniform(0.55, 0.7), rng.uniform(0.5, 0.7), rng.uniform(-0.15, 0.0)
    elif kind == "pickup":
        cl, ch, cz = length * rng.uniform(0.25, 0.35), rng.uniform(0.45, 0.6), rng.uniform(0.05, 0.15)
    else:
        cl, ch, cz = length * rng.uniform(0.38, 0.52), rng.uniform(0.35, 0.5), rng.uniform(-0.1, 0.05)
    cw = width * rng.uniform(0.8, 0.95)
    v, f = _o3d_unit("box")
    v = v * np.array([cw, ch, cl])
    topc = v[:, 1] > 0
    front_in = rng.uniform(0.1, 0.35) * cl
    rear_in = rng.uniform(0.02, 0.25) * cl
    v[topc & (v[:, 2] > 0), 2] -= front_in
    v[topc & (v[:, 2] < 0), 2] += rear_in
    v[topc, 0] *= rng.uniform(0.85, 1.0)
    p.add(v + np.array([0, ytop_body + ch / 2 - 0.02, cz * length]), f)
    if kind == "pickup":  # open bed behind the cabin
        bed_front = cz * length - cl / 2
        bed_back = -length / 2 + 0.05
        wall = rng.uniform(0.15, 0.3)
        yb = clear + body_h
        for sx in (-1, 1):
            p.box(
                (0.05, wall, bed_front - bed_back),
                (sx * (width / 2 - 0.025), yb + wall / 2, (bed_front + bed_back) / 2),
            )
        p.box((width, wall, 0.05), (0, yb + wall / 2, bed_back + 0.025))
    wb = length * rng.uniform(0.55, 0.68)
    zoff = rng.uniform(-0.05, 0.05) * length
    for sz in (-1, 1):
        for sx in (-1, 1):
            x = sx * (width / 2 - ww / 2 + rng.uniform(0.0, 0.04))
            p.cylinder((x - ww / 2, wr, sz * wb / 2 + zoff), (x + ww / 2, wr, sz * wb / 2 + zoff), wr, res=20)
    if kind == "sedan" and rng.random() < 0.25:  # spoiler
        ys = clear + body_h - trunk + 0.12
        p.box((width * 0.85, 0.03, 0.2), (0, ys, -length / 2 + 0.15))
        for sx in (-1, 1):
            p.box((0.04, 0.12, 0.06), (sx * width * 0.3, ys - 0.06, -length / 2 + 0.15))
    if rng.random() < 0.6:  # mirrors
        zm = cz * length + cl / 2 - front_in * 0.8
        for sx in (-1, 1):
            p.box((0.15, 0.08, 0.06), (sx * (width / 2 + 0.06), ytop_body + 0.08, zm))
    return p


def _mug(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    rb = rng.uniform(0.035, 0.055)
    height = rng.uniform(0.08, 0.13)
    rt = rb * rng.uniform(0.9, 1.15)
    wall = rng.uniform(0.003, 0.007)
    bot = rng.uniform(0.006, 0.012)
    rin_b = rb + (rt - rb) * bot / height - wall
    p.lathe([(0.0, 0.0), (rb, 0.0), (rt, height), (rt - wall, height), (rin_b, bot), (0.0, bot)], res=32)

    def radius_at(y: float) -> float:
        return rb + (rt - rb) * y / height

    yc = height * rng.uniform(0.42, 0.58)
    if rng.random() < 0.75:  # torus handle in the XY plane, on +X
        a = height * rng.uniform(0.22, 0.36)
        tube = rng.uniform(0.005, 0.011)
        sy = rng.uniform(1.0, 1.4)
        a = min(a, (height / 2 - tube) / sy * 0.98)
        xc = radius_at(yc) + a * rng.uniform(0.15, 0.55)

        def outside(tri: np.ndarray) -> np.ndarray:
            return (tri[:, :, 0] > radius_at(yc) - 1.5 * tube).any(axis=1)

        p.torus((xc, yc, 0), a, tube, scale=(1.0, sy, 1.0), res=(28, 8), keep=outside)
    else:  # squared handle from three bars
        r = rng.uniform(0.004, 0.008)
        hh = height * rng.uniform(0.45, 0.65) / 2
        out = rng.uniform(0.02, 0.035)
        x0 = radius_at(yc) - r
        x1 = radius_at(yc) + out
        p.cylinder((x0, yc + hh, 0), (x1, yc + hh, 0), r, res=10)
        p.cylinder((x0, yc - hh, 0), (x1, yc - hh, 0), r, res=10)
        p.cylinder((x1, yc - hh - r, 0), (x1, yc + hh + r, 0), r, res=10)
    return p


def _bench(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    length = rng.uniform(1.2, 2.0)
    depth = rng.uniform(0.3, 0.48)
    h = rng.uniform(0.4, 0.5)
    t = rng.uniform(0.03, 0.06)
    if rng.random() < 0.4:  # slats along X
        k = int(rng.integers(3, 6))
        sd = depth / k
        for i in range(k):
            p.box((length, t, sd * 0.8), (0, h - t / 2, -depth / 2 + sd * (i + 0.5)))
    else:
        p.box((length, t, depth), (0, h - t / 2, 0))
    legs = _choice(rng, ["legs", "panels"], [0.65, 0.35])
    lr = rng.uniform(0.02, 0.04)
    inset = rng.uniform(0.05, 0.2)
    xs = [-length / 2 + inset, length / 2 - inset]
    if legs == "legs":
        if length > 1.6 and rng.random() < 0.5:
            xs.append(0.0)
        square = bool(rng.random() < 0.5)
        for x in xs:
            for sz in (-1, 1):
                z = sz * (depth / 2 - lr - 0.02)
                _leg(p, (x, h - t, z), (x, 0, z), lr, square)
            if rng.random() < 0.5:
                p.box((0.03, 0.03, depth * 0.9), (x, rng.uniform(0.08, 0.2), 0))
    else:
        for x in xs:
            p.box((0.04, h - t, depth * rng.uniform(0.8, 1.0)), (x, (h - t) / 2, 0))
    if rng.random() < 0.5:  # backrest
        bh = rng.uniform(0.3, 0.45)
        tilt = rng.uniform(0, np.deg2rad(15))
        rot = _rot_x(-tilt)
        pivot = np.array([0, h, -depth / 2 + 0.03])
        for x in xs:
            p.box((0.04, bh, 0.04), pivot + rot @ np.array([x, bh / 2, 0]), rot)
        k = int(rng.integers(1, 4))
        sh = rng.uniform(0.05, 0.1)
        for i in range(k):
            y = bh - sh / 2 - i * (bh * 0.8 / k)
            p.box((length * 0.98, sh, 0.025), pivot + rot @ np.array([0, y, 0.03]), rot)
        if rng.random() < 0.4:  # arms
            ah = rng.uniform(0.18, 0.25)
            for x in (-length / 2 + 0.03, length / 2 - 0.03):
                p.box((0.05, 0.03, depth * 0.9), (x, h + ah, 0))
                p.box((0.03, ah, 0.03), (x, h + ah / 2, depth * 0.35))
    return p


def _airplane(rng: np.random.Generator) -> _Parts:
    p = _Parts()
    lf = rng.uniform(0.8, 1.2)
    rf = lf * rng.uniform(0.04, 0.07)
    z_front, z_back = lf * 0.3, -lf * 0.3
    p.cylinder((0, 0, z_back), (0, 0, z_front), rf, res=18)
    nose = lf * rng.uniform(0.08, 0.2)
    if rng.random() < 0.6:
        p.ellipsoid((0, 0, z_front), (rf, rf, nose), res=10)
    else:
        p.cone((0, 0, z_front), (0, -rf * 0.3, z_front + nose), rf, res=18)
    tail_len = lf * rng.uniform(0.15, 0.25)
    tail_tip = np.array([0, rf * rng.uniform(0.2, 0.7), z_back - tail_len])
    p.cone((0, 0, z_back), tail_tip, rf, res=18)
    # main wings
    span = lf * rng.uniform(0.4, 0.7)
    c_root = lf * rng.uniform(0.15, 0.3)
    c_tip = c_root * rng.uniform(0.25, 0.8)
    sweep = rng.uniform(0.0, np.deg2rad(40))
    dihedral = rng.uniform(np.deg2rad(-3), np.deg2rad(8))
    wt = c_root * rng.uniform(0.08, 0.14)
    mount = _choice(rng, [-0.6, 0.0, 0.6], [0.45, 0.25, 0.3]) * rf
    zw = lf * rng.uniform(-0.05, 0.15) + c_root / 2
    for sx in (-1, 1):
        sd = np.array([sx * math.cos(dihedral), math.sin(dihedral), 0])
        p.surface((0, mount, zw), sd, (0, 1.0, 0), span, c_root, c_tip, sweep, wt)
    # tail
    tail = _choice(rng, ["conventional", "t", "v", "twin"], [0.45, 0.2, 0.15, 0.2])
    hs = span * rng.uniform(0.25, 0.4)
    hc = c_root * rng.uniform(0.45, 0.7)
    fin_h = span * rng.uniform(0.25, 0.45)
    fc = c_root * rng.uniform(0.5, 0.8)
    fin_sweep = rng.uniform(np.deg2rad(20), np.deg2rad(50))
    z_tail = z_back - tail_len * 0.2
    if tail == "v":
        va = rng.uniform(np.deg2rad(30), np.deg2rad(50))
        for sx in (-1, 1):
            sd = np.array([sx * math.cos(va), math.sin(va), 0])
            p.surface(
                (0, rf * 0.3, z_tail),
                sd,
                np.cross(sd, [0, 0, 1.0]) * sx,
                hs * 1.1,
                hc,
                hc * 0.6,
                sweep * 0.8 + 0.1,
                hc * 0.1,
            )
    else:
        if tail != "twin":
            p.surface((0, rf * 0.5, z_tail), (0, 1.0, 0), (1.0, 0, 0), fin_h, fc, fc * 0.5, fin_sweep, fc * 0.1)
        y_h = rf * 0.3 if tail != "t" else rf * 0.5 + fin_h * 0.95
        z_h = z_tail if tail != "t" else z_tail - fin_h * 0.95 * math.tan(fin_sweep)
        for sx in (-1, 1):
            p.surface((0, y_h, z_h), (sx, 0, 0), (0, 1.0, 0), hs, hc, hc * 0.55, sweep * 0.8, hc * 0.1)
        if tail == "twin":
            for sx in (-1, 1):
                root = (sx * hs, y_h, z_h - hs * math.tan(sweep * 0.8))
                p.surface(root, (0, 1.0, 0), (1.0, 0, 0), fin_h * 0.7, hc * 0.55, hc * 0.35, fin_sweep, hc * 0.06)
    # engines
    eng = _choice(rng, ["none", "wing2", "wing4", "rear2"], [0.3, 0.4, 0.15, 0.15])
    er = rf * rng.uniform(0.35, 0.6)
    el = c_root * rng.uniform(0.6, 1.0)
    if eng in ("wing2", "wing4"):
        fracs = [rng.uniform(0.28, 0.42)] if eng == "wing2" else [0.25, 0.55]
        for fr in fracs:
            d = fr * span
            for sx in (-1, 1):
                x = sx * d * math.cos(dihedral)
                y = mount + d * math.sin(dihedral) - wt / 2 - er * 1.1
                zle = zw - d * math.tan(sweep)
                p.cylinder((x, y, zle - el * 0.6), (x, y, zle + el * 0.4), er, res=14)
                p.box((0.01 * lf, er * 1.1, el * 0.5), (x, y + er * 0.8, zle - el * 0.2))
    elif eng == "rear2":
        for sx in (-1, 1):
            x = sx * (rf + er * 1.2)
            y = rf * 0.4
            p.cylinder((x, y, z_back - el * 0.3), (x, y, z_back + el * 0.7), er, res=14)
            p.box((er * 1.2, 0.01 * lf, el * 0.5), (sx * (rf + er * 0.5), y, z_back + el * 0.2))
    return p


_BUILDERS: dict[str, Callable[[np.random.Generator], _Parts]] = {
    "airplane": _airplane,
    "chair": _chair,
    "table": _table,
    "lamp": _lamp,
    "sofa": _sofa,
    "car": _car,
    "mug": _mug,
    "bench": _bench,
}


def _shape_arrays(category: str, rng: np.random.Generator) -> Mesh:
    """Vertices (V, 3) float64 and triangles (T, 3) int64 of one normalised shape."""
    if category not in _BUILDERS:
        raise ValueError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}")
    v, f = _BUILDERS[category](rng).mesh()
    return _clean_and_normalize(v, f)


def make_shape(category: str, rng: np.random.Generator):
    """Build one random shape of ``category`` as an Open3D ``TriangleMesh``.

    Args:
        category: a name in :data:`CATEGORIES`.
        rng: the generator all shape parameters are drawn from.

    Returns:
        ``o3d.geometry.TriangleMesh`` centred at the origin, max vertex radius 0.5, Y up,
        facing +Z, with triangle normals computed.
    """
    import open3d as o3d

    v, f = _shape_arrays(category, rng)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
    mesh.compute_triangle_normals()
    return mesh


def _as_arrays(mesh) -> Mesh:
    if isinstance(mesh, tuple):
        v, f = mesh
    else:
        v, f = mesh.vertices, mesh.triangles
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def sample_surface(mesh, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Sample points uniformly by area on a triangle mesh.

    A triangle is picked with probability proportional to its area (inverse CDF on the
    cumulative areas), then a point uniformly inside it with the square-root
    barycentric map ``(1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v)``.

    Args:
        mesh: an ``o3d.geometry.TriangleMesh`` or a tuple ``(vertices (V, 3),
            triangles (T, 3))``.
        n_points: number of samples N.
        rng: the generator to draw from (deterministic given its state).

    Returns:
        float32 array of shape (N, 3).
    """
    v, f = _as_arrays(mesh)
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cdf = np.cumsum(area)
    if len(cdf) == 0 or cdf[-1] <= 0:
        raise ValueError("cannot sample a mesh with zero surface area")
    idx = np.searchsorted(cdf, rng.random(n_points) * cdf[-1], side="right")
    idx = np.minimum(idx, len(cdf) - 1)
    u, w = rng.random(n_points), rng.random(n_points)
    su = np.sqrt(u)
    b0, b1, b2 = 1.0 - su, su * (1.0 - w), su * w
    t = tri[idx]
    pts = b0[:, None] * t[:, 0] + b1[:, None] * t[:, 1] + b2[:, None] * t[:, 2]
    return pts.astype(np.float32)


# ----------------------------------------------------------------------------------------
# Camera and rendering
# ----------------------------------------------------------------------------------------


def camera_pose(
    azimuth: float, elevation: float, distance_ratio: float, max_distance: float = MAX_CAMERA_DISTANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and orientation for one ``rendering_metadata.txt`` line.

    Args:
        azimuth: degrees about +Y, from +Z towards +X.
        elevation: degrees above the XZ plane.
        distance_ratio: distance from the origin as a fraction of ``max_distance``.

    Returns:
        ``eye`` of shape (3,) and ``R`` of shape (3, 3) whose rows are the camera's
        ``right``, ``up`` and ``forward`` unit vectors in world coordinates (so camera
        coordinates are ``R @ (p - eye)``, z pointing into the scene).
    """
    a, e = math.radians(azimuth), math.radians(elevation)
    d = distance_ratio * max_distance
    eye = d * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    fwd = -eye / np.linalg.norm(eye)
    right = _unit(np.cross(fwd, [0, 1.0, 0]))
    up = np.cross(right, fwd)
    return eye, np.stack([right, up, fwd])


def camera_intrinsics(image_size: int, fov: float = FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics K of shape (3, 3) for a square image with vertical ``fov``
    (degrees): ``f = (S / 2) / tan(fov / 2)``, principal point ``(S / 2, S / 2)``; image
    ``row`` grows downwards, so pixel ``= (cx + f x / z, cy - f y / z)`` for camera
    coordinates from :func:`camera_pose`."""
    f = (image_size / 2) / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0, image_size / 2], [0, f, image_size / 2], [0, 0, 1.0]])


def _scene(v: np.ndarray, f: np.ndarray):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    return scene


def render_view(
    mesh,
    azimuth: float,
    elevation: float,
    distance_ratio: float,
    *,
    fov: float = FOV_DEG,
    image_size: int = 137,
    color: Sequence[float] = (0.7, 0.7, 0.7),
    scene=None,
    nthreads: int = 0,
) -> np.ndarray:
    """Render one RGBA view of a mesh with Open3D's ``RaycastingScene`` (CPU only).

    See the module docstring for the camera convention. Shading: Lambertian,
    ``color * (AMBIENT + (1 - AMBIENT) * max(0, n . l))`` with ``n`` the hit triangle's
    normal turned towards the camera and ``l`` a light direction fixed in the camera
    frame ``normalize(-forward + 0.7 up - 0.4 right)`` (upper left, behind the camera).

    Args:
        mesh: ``o3d.geometry.TriangleMesh`` or ``(vertices (V, 3), triangles (T, 3))``.
        azimuth, elevation, distance_ratio, fov: one metadata line (degrees).
        image_size: S, the output is S x S.
        color: RGB in [0, 1] of the object.
        scene: an existing ``RaycastingScene`` holding exactly this mesh (reused).
        nthreads: threads for the ray cast (0 = Open3D's default); no effect on output.

    Returns:
        uint8 array of shape (S, S, 4); background ``(255, 255, 255, 0)``.
    """
    import open3d as o3d

    if scene is None:
        scene = _scene(*_as_arrays(mesh))
    eye, rot = camera_pose(azimuth, elevation, distance_ratio)
    right, up, fwd = rot
    s = image_size
    tan = math.tan(math.radians(fov) / 2)
    c = (2 * (np.arange(s) + 0.5) / s - 1) * tan
    x = c[None, :]  # columns, left to right
    y = -c[:, None]  # rows, top to bottom
    dirs = fwd + x[..., None] * right + y[..., None] * up  # (S, S, 3)
    rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], axis=-1).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    hit = np.isfinite(ans["t_hit"].numpy())
    n = ans["primitive_normals"].numpy().astype(np.float64)
    flip = np.einsum("ijk,ijk->ij", n, dirs) > 0
    n[flip] *= -1
    light = _unit(-fwd + 0.7 * up - 0.4 * right)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ light, 0.0, 1.0)
    rgb = np.clip(shade[..., None] * np.asarray(color, float), 0.0, 1.0)
    img = np.full((s, s, 4), 255, dtype=np.uint8)
    img[..., 3] = 0
    img[hit, :3] = np.round(rgb[hit] * 255).astype(np.uint8)
    img[hit, 3] = 255
    return img


def _png_bytes(rgba: np.ndarray) -> bytes:
    """Encode an (H, W, 4) uint8 array as an 8-bit RGBA PNG (deterministic)."""
    h, w, _ = rgba.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgba.reshape(h, w * 4)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------------------
# Ids, seeds, splits
# ----------------------------------------------------------------------------------------


def model_id(seed: int, category: str, index: int) -> str:
    """Deterministic 32-hex-character model id of shape ``index`` of ``category``."""
    return hashlib.sha256(f"pc3d-synthetic/{seed}/{category}/{index}".encode()).hexdigest()[:32]


def _rng(seed: int, category: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, int(CATEGORIES[category]), index, stream]))


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``; a split with a positive fraction
    gets at least one item when ``n`` allows it (taken from the largest split)."""
    raw = [n * fr for fr in fractions]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, fr in enumerate(fractions) if fr > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                j = max(range(len(counts)), key=lambda k: counts[k])
                counts[j] -= 1
                counts[i] += 1
    return counts


def _split_assignment(seed: int, category: str, n: int, fractions: Sequence[float]) -> list[str]:
    """Split name of each shape index 0..n-1 (seeded permutation, cut by counts)."""
    perm = _rng(seed, category, 0, _STREAM_SPLIT).permutation(n)
    counts = _split_counts(n, fractions)
    out = [""] * n
    start = 0
    for name, c in zip(SPLITS, counts):
        for i in perm[start : start + c]:
            out[int(i)] = name
        start += c
    return out


# ----------------------------------------------------------------------------------------
# Per-category writer (runs in worker processes)
# ----------------------------------------------------------------------------------------


def _shape_color(rng: np.random.Generator) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.65, 0.95))


def _write_category(root: str, category: str, params: dict[str, Any], nthreads: int = 0) -> dict[str, Any]:
    """Build every shape of ``category`` into a fresh ``root/.tmp-<synset>-*`` folder.

    The folder gets ``pc/<split>/<id>.npy`` and (if ``n_views``) ``render/<id>/rendering/
    ...``; the caller moves them into place. Returns ``{"tmp": path, "counts": {split:
    n}, "seconds": float}``. On an exception the temporary folder is removed.
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
        for i in range(n):
            mid = model_id(seed, category, i)
            v, f = _shape_arrays(category, _rng(seed, category, i, _STREAM_SHAPE))
            pts = sample_surface((v, f), n_points, _rng(seed, category, i, _STREAM_POINTS))
            np.save(tmp / "pc" / splits[i] / f"{mid}.npy", pts)
            counts[splits[i]] += 1
            if n_views:
                _write_renderings(
                    tmp / "render" / mid / "rendering",
                    v,
                    f,
                    n_views,
                    size,
                    _rng(seed, category, i, _STREAM_VIEWS),
                    nthreads,
                )
        return {"tmp": str(tmp), "counts": counts, "seconds": time.perf_counter() - t0}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_renderings(
    folder: Path, v: np.ndarray, f: np.ndarray, n_views: int, size: int, rng: np.random.Generator, nthreads: int
) -> None:
    folder.mkdir(parents=True)
    color = _shape_color(rng)
    scene = _scene(v, f)
    names, lines = [], []
    for k in range(n_views):
        az = rng.uniform(0.0, 360.0)
        el = rng.uniform(*ELEVATION_RANGE)
        dr = rng.uniform(*DISTANCE_RATIO_RANGE)
        line = f"{az:.4f} {el:.4f} 0 {dr:.4f} {FOV_DEG:g}"
        az, el, _, dr, fov = (float(x) for x in line.split())  # render what the file says
        img = render_view((v, f), az, el, dr, fov=fov, image_size=size, color=color, scene=scene, nthreads=nthreads)
        name = f"{k:02d}.png"
        (folder / name).write_bytes(_png_bytes(img))
        names.append(name)
        lines.append(line)
    (folder / "renderings.txt").write_text("\n".join(names) + "\n")
    (folder / "rendering_metadata.txt").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------
# Manifest, completeness, generation
# ----------------------------------------------------------------------------------------


def _dataset_root(root: str | os.PathLike) -> Path:
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
    path = _dataset_root(root) / MANIFEST_NAME
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


def _normalize_params(
    n_per_category: int,
    n_points: int,
    n_views: int,
    image_size: int,
    seed: int,
    categories: str | Iterable[str] | None,
    splits: Sequence[float],
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


def _param_mismatch(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [f"{k}: on disk {have.get(k)!r}, requested {v!r}" for k, v in want.items() if have.get(k) != v]


def _category_intact(root: Path, category: str, params: dict[str, Any], counts: dict[str, int] | None) -> bool:
    """Cheap check that a category's folders exist with the expected file counts."""
    synset = CATEGORIES[category]
    expect = counts or dict(zip(SPLITS, _split_counts(params["n_per_category"], params["splits"])))
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
) -> bool:
    """True if ``root`` holds a complete built-in data set with these parameters.

    Complete means: the manifest exists, its parameters equal these, it lists every
    requested category (a root generated with more categories also satisfies a request
    for a subset) and their folders hold the expected number of files. Does no mesh work.
    Arguments as for :func:`generate`.
    """
    params, cats = _normalize_params(n_per_category, n_points, n_views, image_size, seed, categories, splits)
    root = _dataset_root(root)
    man = read_manifest(root)
    if man is None or _param_mismatch(man.get("params", {}), params):
        return False
    have = man.get("categories", {})
    return all(c in have and _category_intact(root, c, params, man.get("counts", {}).get(c)) for c in cats)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
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


def _remove_category(root: Path, category: str) -> None:
    synset = CATEGORIES[category]
    (root / _PARTS_DIRNAME / f"{synset}.json").unlink(missing_ok=True)
    for tree in (PC15K_DIRNAME, RENDERING_DIRNAME):
        d = root / tree / synset
        if d.exists():
            # rename first so a half-deleted folder never sits under its real name
            trash = root / f".tmp-{synset}-del-{os.getpid()}-{tree}"
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)


def _cleanup_tmp(root: Path) -> None:
    for e in os.scandir(root):
        if e.name.startswith(".tmp-"):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                Path(e.path).unlink(missing_ok=True)


def _write_name_map(root: Path, tree: str, cats: Iterable[str]) -> None:
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


def _install(root: Path, category: str, result: dict[str, Any], params: dict[str, Any]) -> None:
    """Move a finished temporary category folder into place and record it."""
    synset = CATEGORIES[category]
    tmp = Path(result["tmp"])
    for sub, tree in (("pc", PC15K_DIRNAME), ("render", RENDERING_DIRNAME)):
        if (tmp / sub).exists():
            (root / tree).mkdir(exist_ok=True)
            os.replace(tmp / sub, root / tree / synset)
    shutil.rmtree(tmp, ignore_errors=True)
    parts = root / _PARTS_DIRNAME
    parts.mkdir(exist_ok=True)
    atomic_write_text(parts / f"{synset}.json", json.dumps({"params": params, "counts": result["counts"]}, indent=1))


def _read_part(root: Path, category: str) -> dict | None:
    try:
        return json.loads((root / _PARTS_DIRNAME / f"{CATEGORIES[category]}.json").read_text())
    except (OSError, ValueError):
        return None


def _say(progress: bool, msg: str) -> None:
    log.info(msg)
    if progress:
        print(f"[pc3d.data.synthetic] {msg}", file=sys.stderr, flush=True)


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

    Returns:
        ``root`` as a ``Path``.

    Raises:
        ValueError: bad arguments, or ``root`` already holds a complete built-in data set
            made with different parameters (and ``overwrite`` is False).
    """
    params, cats = _normalize_params(n_per_category, n_points, n_views, image_size, seed, categories, splits)
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    root = _dataset_root(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _locked(root):
        man = read_manifest(root)
        if overwrite:
            if man is not None:
                (root / MANIFEST_NAME).unlink()
                man = None
            for c in CATEGORIES:
                _remove_category(root, c)
        elif man is not None:
            bad = _param_mismatch(man.get("params", {}), params)
            if bad:
                raise ValueError(
                    f"{root} already holds a complete pc3d synthetic data set made with "
                    f"different parameters ({'; '.join(bad)}). Use another root, the same "
                    f"parameters, or overwrite=True (CLI: --overwrite) to regenerate."
                )
        _cleanup_tmp(root)
        done: dict[str, dict[str, int]] = {}
        if man is not None:  # categories the manifest vouches for, still on disk
            for c in man.get("categories", {}):
                cnt = man.get("counts", {}).get(c)
                if c in CATEGORIES and _category_intact(root, c, params, cnt):
                    done[c] = cnt
        for c in cats:  # categories finished by an interrupted run with these params
            part = _read_part(root, c)
            if (
                c not in done
                and part is not None
                and part.get("params") == params
                and _category_intact(root, c, params, part.get("counts"))
            ):
                done[c] = part["counts"]
        todo = [c for c in cats if c not in done]
        if not todo and man is not None and set(done) == set(man.get("categories", {})):
            _say(progress, f"{root}: already complete ({', '.join(cats)}); nothing to do")
            return root
        if man is not None and set(todo) & set(man.get("categories", {})):
            (root / MANIFEST_NAME).unlink()  # it vouches for a category about to be rebuilt
        for c in todo:
            _remove_category(root, c)
        if todo:
            _say(
                progress,
                f"generating {', '.join(todo)} into {root} "
                f"({params['n_per_category']} shapes each, {params['n_points']} "
                f"points, {params['n_views']} views of {params['image_size']} px)",
            )
        results = _run_categories(root, todo, params, min(int(workers), len(todo)) or 1, progress)
        done.update(results)
        all_cats = [c for c in CATEGORIES if c in done]
        _write_name_map(root, PC15K_DIRNAME, all_cats)
        if params["n_views"] or (root / RENDERING_DIRNAME).exists():
            _write_name_map(root, RENDERING_DIRNAME, all_cats if params["n_views"] else [])
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
        shutil.rmtree(root / _PARTS_DIRNAME, ignore_errors=True)
    _say(progress, f"{root}: complete ({len(all_cats)} categories) in {time.perf_counter() - t0:.1f} s")
    return root


def ensure_generated(
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
) -> Path:
    """Make sure ``root`` holds the built-in data set with these parameters; what
    ``prepare_data`` calls.

    Returns at once (no mesh work, one message) when :func:`is_complete` holds; otherwise
    builds what is missing exactly like :func:`generate`, with the same arguments, the
    same return value and the same ``ValueError`` on a parameter mismatch.
    """
    kwargs = dict(
        n_per_category=n_per_category,
        n_points=n_points,
        n_views=n_views,
        image_size=image_size,
        seed=seed,
        categories=categories,
        splits=splits,
    )
    if not overwrite and is_complete(root, **kwargs):
        _say(progress, f"{_dataset_root(root)}: already complete; nothing to do")
        return _dataset_root(root)
    return generate(root, overwrite=overwrite, progress=progress, workers=workers, **kwargs)


def _run_categories(
    root: Path, todo: list[str], params: dict[str, Any], workers: int, progress: bool
) -> dict[str, dict[str, int]]:
    """Build and install categories, in-process (workers == 1) or in a spawn pool."""
    out: dict[str, dict[str, int]] = {}

    def finish(c: str, res: dict[str, Any]) -> None:
        _install(root, c, res, params)
        out[c] = res["counts"]
        _say(progress, f"  {c} ({CATEGORIES[c]}): {params['n_per_category']} shapes in {res['seconds']:.1f} s")

    if workers <= 1 or len(todo) < 2 or params["n_per_category"] * len(todo) < _POOL_MIN_SHAPES:
        try:
            for c in todo:
                finish(c, _write_category(str(root), c, params))
        except BaseException:
            _cleanup_tmp(root)
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
        _cleanup_tmp(root)
        raise error
    return out
