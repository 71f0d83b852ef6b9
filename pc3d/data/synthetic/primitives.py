"""Mesh building blocks of the built-in data set: primitives as ``(vertices, triangles)`` arrays.

:class:`Parts` accumulates boxes, cylinders, cones, ellipsoids, tori, lathes, frustums and
lifting surfaces (made from Open3D's ``TriangleMesh.create_*`` unit primitives, cached by
:func:`o3d_unit`) into one triangle soup; :func:`clean_and_normalize` drops degenerate
triangles and scales a shape into the sphere of radius 0.5; :func:`sample_surface` draws
area-uniform points on a mesh.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

__all__ = [
    "Mesh",
    "Parts",
    "as_arrays",
    "clean_and_normalize",
    "o3d_unit",
    "rot_x",
    "sample_surface",
    "unit",
]

Mesh = tuple[np.ndarray, np.ndarray]  # (V, 3) float64 vertices, (T, 3) int64 triangles


def unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _rot_between(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Rotation matrix taking unit direction ``a`` to unit direction ``b`` (Rodrigues)."""
    a, b = unit(a), unit(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: rotate by pi about any axis orthogonal to a
        axis = unit(np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0]))
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


@cache
def o3d_unit(kind: str, res: int = 0) -> Mesh:
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


class Parts:
    """Accumulates primitives (vertex/triangle arrays) into one triangle soup.

    ``style`` records the discrete choices a category builder made (e.g. ``{"support":
    "pedestal", "arms": False}``), set from values already drawn, never by drawing more; see
    :func:`pc3d.data.synthetic.categories.fine_class`.
    """

    def __init__(self) -> None:
        self.vs: list[np.ndarray] = []
        self.fs: list[np.ndarray] = []
        self.n = 0
        self.style: dict[str, object] = {}

    def add(self, v: np.ndarray, f: np.ndarray) -> None:
        self.vs.append(np.asarray(v, dtype=np.float64))
        self.fs.append(np.asarray(f, dtype=np.int64) + self.n)
        self.n += len(v)

    # -- primitives --------------------------------------------------------------------
    def box(self, size, center=(0, 0, 0), rot: np.ndarray | None = None) -> None:
        """Axis-aligned box of ``size`` (before ``rot``) centred at ``center``."""
        v, f = o3d_unit("box")
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
        side = unit(side)
        upv = np.cross(ax, side)
        rot = np.stack([side, upv, ax], axis=1)  # columns: local x, y, z -> world
        self.box((width, thickness, length), (p0 + p1) / 2, rot)

    def cylinder(self, p0, p1, radius: float, res: int = 16) -> None:
        """Closed cylinder with axis from ``p0`` to ``p1``."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        v, f = o3d_unit("cyl", res)
        v = v * np.array([radius, radius, length])
        v = v @ _rot_between([0, 0, 1.0], d).T
        self.add(v + (p0 + p1) / 2, f)

    def cone(self, base, apex, radius: float, res: int = 16) -> None:
        """Closed cone with base disk at ``base`` and tip at ``apex``."""
        base, apex = np.asarray(base, float), np.asarray(apex, float)
        d = apex - base
        v, f = o3d_unit("cone", res)
        v = v * np.array([radius, radius, float(np.linalg.norm(d))])
        v = v @ _rot_between([0, 0, 1.0], d).T
        self.add(v + base, f)

    def ellipsoid(self, center, radii, rot: np.ndarray | None = None, res: int = 8) -> None:
        v, f = o3d_unit("sphere", res)
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
        v, f = o3d_unit("box")
        x = v[:, 0] + 0.5  # along span, 0..1
        y = v[:, 1]  # thickness, -0.5..0.5
        z = v[:, 2] - 0.5  # chord, -1..0 (0 = leading edge)
        chord = c_root + (c_tip - c_root) * x
        sd, td, cd = (np.asarray(u, float) for u in (span_dir, thick_dir, chord_dir))
        sd, td, cd = unit(sd), unit(td), unit(cd)
        along_span = x * span
        along_chord = -along_span * math.tan(sweep) + z * chord
        across = y * thickness * (chord / c_root)
        out = np.asarray(root, float) + along_span[:, None] * sd + along_chord[:, None] * cd + across[:, None] * td
        if np.linalg.det(np.stack([sd, td, cd], axis=1)) < 0:  # mirrored frame
            f = f[:, ::-1]
        self.add(out, f)

    def mesh(self) -> Mesh:
        return np.concatenate(self.vs), np.concatenate(self.fs)


def clean_and_normalize(v: np.ndarray, f: np.ndarray) -> Mesh:
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


def as_arrays(mesh) -> Mesh:
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
    v, f = as_arrays(mesh)
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
