"""Realistic partial inputs from the built-in data: single-view depth scans and ball holes.

Shape completion and single-view reconstruction need inputs that miss part of the shape. This
module makes them from the built-in procedural set (:mod:`pc3d.data.synthetic`), whose meshes are
rebuilt exactly from the generator's seeds, and writes them beside the complete clouds.

Kinds (:data:`PARTIAL_KINDS`)
-----------------------------
``scan``
    A single-view depth scan (:func:`depth_scan`): Open3D's ``RaycastingScene`` casts one ray
    through each pixel centre of a pinhole camera at a random eye (:func:`random_camera`:
    azimuth uniform in [0, 360), elevation in [-10, 45] degrees, distance from the origin in
    [1.2, 2.0]; looking at the origin, up +Y, 50 degree field of view, so the radius-0.5 shape
    is always entirely in view). Only the first hit of each ray is kept: the visible surface
    and nothing behind it. The writer casts 160 x 160 rays and doubles the resolution (up to
    1280) while fewer than ``n_points`` rays hit, then draws ``n_points`` hits without
    replacement, so a scan has no repeated points.
``hole``
    A ball hole (:func:`random_ball_hole`): ``4 * n_points`` fresh area-uniform samples of the
    mesh (not the complete cloud's points), minus every point closer than ``radius`` to a
    centre drawn among them, with ``radius`` chosen so that a fraction drawn from
    [0.15, 0.35] of the points goes; ``n_points`` of the rest, without replacement.

Noise (:func:`add_noise`): isotropic Gaussian of standard deviation ``sigma`` (in the cloud's
units: the shapes fit the sphere of radius 0.5) on every coordinate, added last. The noise of a
shape is one standard-normal draw scaled by each ``sigma``: noise levels of one shape differ in
amplitude only, and share the same scan or hole.

Layout under a built-in root ``root``
-------------------------------------
::

    root/
      ShapeNetCore.v2.PC15k/<synset>/<split>/<model_id>.npy             the complete clouds
      ShapeNetCore.v2.PC15k.partial/                                    PARTIAL_DIR
        <variant>/meta.json                                             what was written, how
        <variant>/<synset>/<split>/<model_id>.npy                       float32 (n_points, 3)

``<variant>`` is the kind for noise 0 (``scan``, ``hole``) and ``<kind>_noise<sigma>`` otherwise,
``sigma`` written with Python's ``format(sigma, "g")`` (``scan_noise0.01``, ``hole_noise0.005``;
:func:`variant_name`). The sigma applied is the one its folder names (rounded to 6 significant
digits). A partial cloud is in the same frame and units as the complete cloud with the same
``<synset>/<model_id>``: join the two trees by path. ``meta.json`` (one per variant, written
last, atomically)::

    {"format": "pc3d-partial", "format_version": 1, "kind": "scan", "noise": 0.01,
     "params": {"seed": 0, "n_points": 2048, "dataset": {seed, n_per_category, n_points, splits},
                "kind": {...the kind's constants: camera ranges / hole fractions...}},
     "splits": {"test": 80},                                        shapes written per split
     "shapes": {"<synset>/<model_id>": {"category": "chair", "split": "test", "index": 7,
                "seed": 0, "noise": 0.01,
                scan: "eye": [x, y, z], "target": [0, 0, 0], "width": 160, "height": 160,
                      "fov_deg": 50.0, "n_hits": 5321
                hole: "center": [x, y, z], "radius": 0.21, "frac": 0.27, "n_dense": 8192}}}

Writing another split with the same parameters adds to a variant (its ``meta.json`` lists both);
a variant written with other parameters (seed, ``n_points``, another data set) is replaced.

Determinism
-----------
Every draw of one shape comes from ``SeedSequence([seed, dataset_seed, synset, index, stream])``
(one stream for the scan, one for the hole, one per kind for the noise): the same call writes
byte-identical files, a shape's partial does not depend on which other shapes, splits, kinds or
noise levels are written. Every ``.npy`` is written to a temporary file and renamed; the writer
holds the root's generation lock (:func:`pc3d.data.synthetic.lock.locked`) while it works.

Only the built-in set has the meshes: :func:`write_partial_set` refuses any other root. Command
line: ``pc3d-data partial --root data/pc3d_synthetic --kinds scan,hole --splits test --noise 0,0.01``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "PARTIAL_DIR",
    "PARTIAL_KINDS",
    "PartialItem",
    "add_noise",
    "ball_hole",
    "depth_scan",
    "random_ball_hole",
    "random_camera",
    "read_partial_set",
    "variant_name",
    "write_partial_set",
]

PARTIAL_KINDS = ("scan", "hole")
PARTIAL_DIR = "ShapeNetCore.v2.PC15k.partial"
META_NAME = "meta.json"

_FORMAT = "pc3d-partial"
_FORMAT_VERSION = 1
_STREAMS = {"scan": 100, "hole": 101, "noise/scan": 102, "noise/hole": 103}
_SCAN = {"distance": (1.2, 2.0), "elevation_deg": (-10.0, 45.0), "fov_deg": 50.0, "min_px": 160, "max_px": 1280}
_HOLE = {"frac": (0.15, 0.35), "dense_factor": 4}
_CHECK_ROWS = 64  # rows of each stored cloud checked against the rebuilt mesh
# Open3D's float32 distance is off by up to 4.6e-4 on the long sliver triangles of some lamp shades (6 of the
# 720 train/val shapes of the default set; their exact float64 distances are <= 3e-10); a set made by another
# pc3d version is off by far more
_CHECK_TOL = 1e-3


class PartialItem(NamedTuple):
    """One partial cloud with its complete counterpart.

    Shapes:
        partial: (P, 3) float32, the partial input (``P = n_points`` of the writer).
        complete: (N, 3) float32, the stored complete cloud (same frame and units).
    ``meta`` is the shape's entry of the variant's ``meta.json`` (scan: ``eye``, ``target``,
    ``width``, ``height``, ``fov_deg``, ``n_hits``; hole: ``center``, ``radius``, ``frac``,
    ``n_dense``; both: ``noise``, ``seed``, ``index``, ``split``, ``category``).
    """

    category: str
    synset: str
    model_id: str
    partial: np.ndarray
    complete: np.ndarray
    meta: dict


# ----------------------------------------------------------------------------- validation


def _cloud(points: Any, name: str = "points", min_points: int = 1) -> np.ndarray:
    """``points`` as a floating (N, 3) array (float32/float64 kept, anything else float64)."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name}: expected an array of shape (N, 3), got shape {arr.shape}")
    if arr.shape[0] < min_points:
        what = "is empty (0 points)" if arr.shape[0] == 0 else f"has {arr.shape[0]} point(s)"
        raise ValueError(f"{name} {what}; expected shape (N, 3) with N >= {min_points}")
    if not np.issubdtype(arr.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates; expected finite values")
    return arr


def _vec3(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected 3 numbers, shape (3,), got {x!r}") from None
    if arr.shape != (3,):
        raise ValueError(f"{name}: expected 3 numbers, shape (3,), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values: {arr.tolist()}")
    return arr


def _number(x: Any, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if isinstance(x, bool) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {x!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {x!r}")
    return v


def _int(x: Any, name: str, lo: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or int(x) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {x!r}")
    return int(x)


def _range(r: Any, name: str, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {r!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or not lo <= a <= b <= hi:
        raise ValueError(f"{name} must be a pair low <= high within [{lo}, {hi}], got {r!r}")
    return a, b


def _mesh(vertices: Any, faces: Any) -> tuple[np.ndarray, np.ndarray]:
    v = _cloud(vertices, "vertices", min_points=3)
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"faces: expected a non-empty integer array of shape (F, 3), got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected integer vertex indices, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"faces: vertex indices must lie in [0, {len(v) - 1}], got [{f.min()}, {f.max()}]")
    return v, f


# ----------------------------------------------------------------------------- scans


def _scene(v: np.ndarray, f: np.ndarray):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(v, dtype=np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(f, dtype=np.uint32)))
    return scene


def _cast(scene, eye: np.ndarray, target: np.ndarray, width: int, height: int, fov_deg: float) -> np.ndarray:
    """First hits, front-facing only, in pixel order (row-major): (H, 3) float64."""
    import open3d as o3d

    forward = target - eye
    up = np.array([0.0, 1.0, 0.0])
    if abs(float(np.dot(forward, up))) > 0.999 * float(np.linalg.norm(forward)):
        up = np.array([0.0, 0.0, 1.0])  # looking straight up or down: +Y cannot be the image's up
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        fov_deg=float(fov_deg), center=target.tolist(), eye=eye.tolist(), up=up.tolist(),
        width_px=int(width), height_px=int(height),
    )
    ans = scene.cast_rays(rays)
    t = ans["t_hit"].numpy().reshape(-1)
    r = rays.numpy().reshape(-1, 6).astype(np.float64)
    n = ans["primitive_normals"].numpy().reshape(-1, 3)
    # a first hit on a face turned away from the camera only happens where faces coincide (merged
    # parts sharing a plane) or are inconsistently oriented: drop it, every point faces the camera
    keep = np.isfinite(t) & (np.einsum("ij,ij->i", n, r[:, 3:]) < 0)
    return r[keep, :3] + t[keep, None] * r[keep, 3:]


def _subsample(points: np.ndarray, n_points: int | None, rng: np.random.Generator) -> np.ndarray:
    if n_points is None:
        return points
    idx = rng.choice(len(points), size=int(n_points), replace=len(points) < n_points)
    return points[idx]


def depth_scan(
    vertices: Any,
    faces: Any,
    eye: Any,
    *,
    target: Any = (0.0, 0.0, 0.0),
    width: int = 160,
    height: int = 160,
    fov_deg: float = 50.0,
    n_points: int | None = 2048,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Single-view depth scan of a triangle mesh: the surface points a pinhole camera at ``eye`` sees.

    One ray through each pixel centre of a ``width x height`` pinhole camera (Open3D's
    ``RaycastingScene.create_rays_pinhole``: ``fov_deg`` is the horizontal field of view, the
    camera looks from ``eye`` at ``target`` with +Y up, or +Z up when looking straight along Y);
    the first hit of each ray is kept (the visible surface only, nothing behind it), except hits
    on a face turned away from the camera (only where faces coincide or are inconsistently
    oriented), so every point lies on a triangle facing the camera. The hits are then resampled
    to ``n_points`` with ``rng`` (without replacement; with replacement only when fewer rays hit).

    Shapes:
        vertices: (V, 3) float, faces: (F, 3) integer indices into ``vertices``;
        eye, target: (3,); returns (P, 3) float32 with ``P = n_points``, or every hit (in pixel
        order, row-major from the top) when ``n_points`` is None.

    Args:
        rng: draws the resample; None means ``np.random.default_rng(0)`` (deterministic).

    Raises:
        ValueError: bad shapes, NaN or infinite coordinates, out-of-range face indices, ``eye ==
            target``, a bad size or field of view, or no ray hits the mesh (the mesh is out of view).
    """
    v, f = _mesh(vertices, faces)
    eye_, target_ = _vec3(eye, "eye"), _vec3(target, "target")
    if np.linalg.norm(eye_ - target_) == 0:
        raise ValueError(f"eye and target must differ, both are {eye_.tolist()}")
    w, h = _int(width, "width", 1), _int(height, "height", 1)
    fov = _number(fov_deg, "fov_deg", 0.0, 179.0, lo_open=True)
    if n_points is not None:
        n_points = _int(n_points, "n_points", 1)
    hits = _cast(_scene(v, f), eye_, target_, w, h, fov)
    if len(hits) == 0:
        raise ValueError(
            f"no ray of the {w}x{h} camera at eye {eye_.tolist()} looking at {target_.tolist()} "
            f"(fov {fov} deg) hits the mesh: it is out of view"
        )
    return _subsample(hits, n_points, np.random.default_rng(0) if rng is None else rng).astype(np.float32)


def random_camera(
    rng: np.random.Generator,
    *,
    distance: tuple[float, float] = (1.2, 2.0),
    elevation_deg: tuple[float, float] = (-10.0, 45.0),
) -> np.ndarray:
    """A random eye position looking at the origin, in pc3d's camera convention.

    Azimuth ``a`` uniform in [0, 360) degrees (about +Y, from +Z towards +X), elevation ``e``
    uniform in ``elevation_deg``, distance ``d`` uniform in ``distance``; the eye is
    ``d * (cos e sin a, sin e, cos e cos a)`` (:mod:`pc3d.geometry.camera`). From ``d >= 1.2`` a
    50 degree field of view holds the whole sphere of radius 0.5 the built-in shapes fit.

    Shapes:
        returns (3,) float64.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    d0, d1 = _range(distance, "distance", 1e-6, math.inf)
    e0, e1 = _range(elevation_deg, "elevation_deg", -90.0, 90.0)
    a = math.radians(rng.uniform(0.0, 360.0))
    e = math.radians(rng.uniform(e0, e1))
    d = rng.uniform(d0, d1)
    return d * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])


# ----------------------------------------------------------------------------- holes and noise


def ball_hole(points: Any, center: Any, radius: float) -> np.ndarray:
    """The points at distance ``>= radius`` from ``center`` (those strictly inside the ball go).

    Shapes:
        points: (N, 3); center: (3,); returns (M, 3), M <= N, same dtype and order as ``points``.
    """
    p = _cloud(points)
    c = _vec3(center, "center")
    r = _number(radius, "radius", 0.0)
    d2 = ((p.astype(np.float64) - c) ** 2).sum(axis=1)
    return p[d2 >= r * r]


def random_ball_hole(
    points: Any, rng: np.random.Generator, *, frac: tuple[float, float] = (0.15, 0.35)
) -> tuple[np.ndarray, np.ndarray, float]:
    """Cut a ball hole around a random point of the cloud, removing a random fraction of it.

    The centre is a point of the cloud drawn uniformly; a fraction ``q`` is drawn uniformly in
    ``frac`` and ``k = clip(round(q N), 1, N - 1)``; the radius is halfway between the k-th and
    (k+1)-th smallest distances to the centre, so exactly ``k`` points go (fewer only when those
    two distances tie). See :func:`ball_hole`.

    Shapes:
        points: (N, 3) with N >= 2; returns ``(kept (N - k, 3), center (3,) float64, radius)``.
    """
    p = _cloud(points, min_points=2)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    q0, q1 = _range(frac, "frac", 0.0, 1.0)
    n = len(p)
    center = p[int(rng.integers(n))].astype(np.float64)
    k = min(max(int(round(rng.uniform(q0, q1) * n)), 1), n - 1)
    d = np.sqrt(((p.astype(np.float64) - center) ** 2).sum(axis=1))
    part = np.partition(d, (k - 1, k))
    radius = float(0.5 * (part[k - 1] + part[k]))
    return p[d >= radius], center, radius


def add_noise(points: Any, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``points + sigma * z`` with ``z`` standard normal per coordinate (isotropic Gaussian noise).

    The draw is ``rng.standard_normal((N, 3))`` (made even when ``sigma == 0``, so a generator is
    advanced the same way at every level).

    Shapes:
        points: (N, 3); returns (N, 3), float32 for float32 input (float64 otherwise).
    """
    p = _cloud(points)
    s = _number(sigma, "sigma", 0.0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    z = rng.standard_normal(p.shape)
    return (p.astype(np.float64) + s * z).astype(p.dtype)


# ----------------------------------------------------------------------------- the writer


def variant_name(kind: str, noise: float = 0.0) -> str:
    """Folder of ``kind`` at noise ``noise``: ``kind`` for 0, ``<kind>_noise<format(noise, 'g')>`` else."""
    if kind not in PARTIAL_KINDS:
        raise ValueError(f"unknown partial kind {kind!r}; expected one of {list(PARTIAL_KINDS)}")
    s = _number(noise, "noise", 0.0)
    return kind if s == 0 else f"{kind}_noise{format(s, 'g')}"


def _names(x: str | Iterable[Any], name: str) -> list[str]:
    items = x.split(",") if isinstance(x, str) else list(x)
    out = [str(i).strip() for i in items if str(i).strip()]
    if not out:
        raise ValueError(f"{name} must name at least one, got {x!r}")
    return list(dict.fromkeys(out))


def _noises(noise: float | str | Iterable[Any]) -> list[float]:
    items = noise.split(",") if isinstance(noise, str) else [noise] if np.isscalar(noise) else list(noise)
    out: dict[str, float] = {}
    for x in items:
        s = _number(x.strip() if isinstance(x, str) else x, "noise", 0.0)
        s = float(format(s, "g"))  # the sigma applied is the one the folder names
        out.setdefault(format(s, "g"), s)
    if not out:
        raise ValueError(f"noise must list at least one sigma >= 0, got {noise!r}")
    return list(out.values())


def _shape_rng(seed: int, dataset_seed: int, synset: str, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_seed, int(synset), index, _STREAMS[stream]]))


def _builtin(root: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The dataset root and its manifest; ValueError for a root that is not a complete built-in set."""
    from pc3d.data.synthetic.manifest import MANIFEST_NAME, dataset_root, read_manifest

    root = dataset_root(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder (expected the root of the built-in data set)")
    man = read_manifest(root)
    if man is None or not isinstance(man.get("params"), dict) or not isinstance(man.get("categories"), dict):
        raise ValueError(
            f"{root} is not a complete built-in pc3d data set (no readable {MANIFEST_NAME}): partial scans "
            "and holes need the meshes, which only the built-in set can rebuild (pc3d-data generate --root ...)"
        )
    return root, man


def _builtin_shapes(root: Path, man: dict[str, Any], splits: Sequence[str]) -> Iterator[tuple[str, str, int, str, str]]:
    """``(category, synset, index, model_id, split)`` of every shape of ``splits`` in a built-in root,
    by replaying the generator's split assignment."""
    from pc3d.data.synthetic.categories import CATEGORIES
    from pc3d.data.synthetic.writer import _split_assignment, model_id

    p = man["params"]
    seed, n = int(p["seed"]), int(p["n_per_category"])
    for c in CATEGORIES:
        if c not in man["categories"]:
            continue
        assignment = _split_assignment(seed, c, n, p["splits"])
        for i in range(n):
            if assignment[i] in splits:
                yield c, CATEGORIES[c], i, model_id(seed, c, i), assignment[i]


def _builtin_mesh(dataset_seed: int, category: str, index: int,
                  substyles: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The mesh (V, 3) float64, (F, 3) int64 of shape ``index`` of ``category``, rebuilt from the
    generator's shape stream (the mesh its complete cloud was sampled from; ``substyles``: the
    variant set's interior sub-styles)."""
    from pc3d.data.synthetic.writer import rebuild_shape

    return rebuild_shape({"seed": dataset_seed, "substyles": substyles}, category, index)[0]


def _complete_path(root: Path, synset: str, split: str, mid: str) -> Path:
    from pc3d.data.taxonomy import PC15K_DIRNAME

    return root / PC15K_DIRNAME / synset / split / f"{mid}.npy"


def _load_cloud(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: {what} is missing") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read {what} ({err})") from None
    return _cloud(arr, f"{path} ({what})")


def _check_mesh(scene, cloud: np.ndarray, path: Path, man: dict[str, Any]) -> None:
    import open3d as o3d

    rows = cloud[:_CHECK_ROWS].astype(np.float32)
    dist = float(scene.compute_distance(o3d.core.Tensor(rows)).numpy().max())
    if dist > _CHECK_TOL:
        raise ValueError(
            f"{path}: the stored cloud is {dist:.2e} away from the mesh rebuilt from its seed (expected "
            f"<= {_CHECK_TOL}); the set was made by another pc3d version ({man.get('pc3d_version')!r}): "
            "regenerate it (pc3d-data generate --overwrite)"
        )


def _scan(scene, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    eye = random_camera(rng, distance=_SCAN["distance"], elevation_deg=_SCAN["elevation_deg"])
    target = np.zeros(3)
    px = _SCAN["min_px"]
    while True:
        hits = _cast(scene, eye, target, px, px, _SCAN["fov_deg"])
        if len(hits) >= n_points or px >= _SCAN["max_px"]:
            break
        px *= 2
    if len(hits) == 0:
        raise ValueError(f"the scan from {eye.tolist()} hits nothing")
    meta = {"eye": eye.tolist(), "target": target.tolist(), "width": px, "height": px,
            "fov_deg": _SCAN["fov_deg"], "n_hits": len(hits)}
    return _subsample(hits, n_points, rng).astype(np.float32), meta


def _hole(v: np.ndarray, f: np.ndarray, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    from pc3d.data.synthetic.primitives import sample_surface

    n_dense = _HOLE["dense_factor"] * n_points
    dense = sample_surface((v, f), n_dense, rng)
    kept, center, radius = random_ball_hole(dense, rng, frac=_HOLE["frac"])
    meta = {"center": center.tolist(), "radius": radius, "frac": 1.0 - len(kept) / n_dense, "n_dense": n_dense}
    return _subsample(kept, n_points, rng).astype(np.float32), meta


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(doc.get("shapes"), dict):
        return None
    return doc


def _say(progress: bool, msg: str) -> None:
    log.info(msg)
    if progress:
        print(f"[pc3d.data.partial] {msg}", file=sys.stderr, flush=True)


def write_partial_set(
    root: str | os.PathLike,
    *,
    kinds: str | Sequence[str] = ("scan", "hole"),
    splits: str | Sequence[str] = ("test",),
    noise: float | str | Sequence[float] = (0.0,),
    n_points: int = 2048,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write partial clouds of the built-in set under ``root`` beside the complete ones.

    For every shape of ``splits`` the mesh is rebuilt from the generator's seeds (and checked
    against the stored complete cloud), each kind's partial is made once and written at every
    noise level: ``<root>/ShapeNetCore.v2.PC15k.partial/<variant>/<synset>/<split>/<model_id>.npy``
    plus ``<variant>/meta.json`` (see the module docstring). The complete set is only read.

    Shapes:
        each file is float32 (n_points, 3).

    Args:
        root: a complete built-in root (or its ``ShapeNetCore.v2.PC15k`` folder).
        kinds: names in :data:`PARTIAL_KINDS` (a list, or one comma-separated string).
        splits: names in ``("train", "val", "test")`` (list or comma-separated string).
        noise: Gaussian sigmas >= 0 (a number, a list, or a comma-separated string).
        n_points: points per partial cloud.
        seed: seed of the partial draws (cameras, holes, resampling, noise); integer >= 0.
        progress: print a line per variant and split to stderr.

    Returns:
        ``<root>/ShapeNetCore.v2.PC15k.partial``.

    Raises:
        ValueError: bad arguments, a root that is not a complete built-in set, a stored cloud that
            does not lie on its rebuilt mesh (a set made by another pc3d version).
    """
    from pc3d.data.splits import SPLITS
    from pc3d.data.synthetic.lock import locked
    from pc3d.io import atomic_save_npy, atomic_write_text

    kinds_ = _names(kinds, "kinds")
    bad = [k for k in kinds_ if k not in PARTIAL_KINDS]
    if bad:
        raise ValueError(f"unknown partial kind(s) {bad}; expected names from {list(PARTIAL_KINDS)}")
    splits_ = _names(splits, "splits")
    bad = [s for s in splits_ if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; expected names from {list(SPLITS)}")
    sigmas = _noises(noise)
    n_points = _int(n_points, "n_points", 1)
    seed = _int(seed, "seed", 0)
    root, man = _builtin(root)
    dp = man["params"]
    dataset_seed = int(dp["seed"])
    out = root / PARTIAL_DIR
    t0 = time.perf_counter()

    with locked(root):
        variants: dict[tuple[str, float], dict[str, Any]] = {}
        for kind in kinds_:
            for s in sigmas:
                name = variant_name(kind, s)
                params = {
                    "seed": seed,
                    "n_points": n_points,
                    "dataset": {k: dp.get(k) for k in ("seed", "n_per_category", "n_points", "splits")},
                    "kind": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in (_SCAN if kind == "scan" else _HOLE).items()},
                }
                old = _read_meta(out / name / META_NAME)
                if old is None or old.get("params") != params or old.get("kind") != kind:
                    if (out / name).exists():  # stale (other parameters) or unfinished: replace it
                        trash = out / f".tmp-{name}-del-{os.getpid()}"
                        os.replace(out / name, trash)
                        shutil.rmtree(trash, ignore_errors=True)
                    old = None
                shapes = {} if old is None else {
                    k: m for k, m in old["shapes"].items() if m.get("split") not in splits_
                }
                variants[(kind, s)] = {"name": name, "kind": kind, "noise": s, "params": params, "shapes": shapes}

        counts: dict[str, int] = dict.fromkeys(splits_, 0)
        for c, synset, i, mid, split in _builtin_shapes(root, man, splits_):
            complete = _complete_path(root, synset, split, mid)
            v, f = _builtin_mesh(dataset_seed, c, i, bool(man["params"].get("substyles")))
            scene = _scene(v, f)
            _check_mesh(scene, _load_cloud(complete, "complete cloud"), complete, man)
            for kind in kinds_:
                rng = _shape_rng(seed, dataset_seed, synset, i, kind)
                base, meta = _scan(scene, n_points, rng) if kind == "scan" else _hole(v, f, n_points, rng)
                for s in sigmas:
                    noise_rng = _shape_rng(seed, dataset_seed, synset, i, f"noise/{kind}")
                    pts = base if s == 0 else add_noise(base, s, noise_rng)
                    var = variants[(kind, s)]
                    atomic_save_npy(out / var["name"] / synset / split / f"{mid}.npy", pts)
                    var["shapes"][f"{synset}/{mid}"] = {
                        "category": c, "split": split, "index": i, "seed": seed, "noise": s, **meta,
                    }
            counts[split] += 1

        for var in variants.values():
            shapes = {k: var["shapes"][k] for k in sorted(var["shapes"])}
            per_split = {sp: sum(1 for m in shapes.values() if m["split"] == sp) for sp in SPLITS}
            doc = {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "kind": var["kind"],
                "noise": var["noise"],
                "params": var["params"],
                "splits": {sp: n for sp, n in per_split.items() if n},
                "shapes": shapes,
            }
            atomic_write_text(out / var["name"] / META_NAME, json.dumps(doc, indent=1) + "\n")
            _say(progress, f"{out / var['name']}: " + ", ".join(f"{sp} {counts[sp]}" for sp in splits_) + " shapes")
    _say(progress, f"{out}: {len(variants)} variant(s) in {time.perf_counter() - t0:.1f} s")
    return out


# ----------------------------------------------------------------------------- the reader


def _written_noises(out: Path, kind: str) -> dict[float, str]:
    found: dict[float, str] = {}
    if out.is_dir():
        for d in sorted(out.iterdir()):
            if d.name == kind or d.name.startswith(f"{kind}_noise"):
                doc = _read_meta(d / META_NAME)
                if doc is not None and doc.get("kind") == kind:
                    found[float(doc.get("noise", 0.0))] = d.name
    return found


def read_partial_set(
    root: str | os.PathLike, kind: str, split: str, noise: float | None = None
) -> list[PartialItem]:
    """Read one written variant and split: each partial cloud with its complete cloud.

    Args:
        root: the built-in root the partial set was written under (or its PC15k folder).
        kind: one of :data:`PARTIAL_KINDS`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        noise: the sigma of the variant; None means 0 when the noise-free variant was written,
            else the only noise level written for ``kind`` (ValueError if there are several).

    Returns:
        :class:`PartialItem` per shape of the split, ordered by synset then model id.

    Shapes:
        ``item.partial``: (P, 3) float32; ``item.complete``: (N, 3) float32.

    Raises:
        ValueError: unknown kind or split, a variant or split that was not written (the message
            lists what was), a missing or malformed ``.npy`` (named).
    """
    from pc3d.data.splits import SPLITS
    from pc3d.data.synthetic.manifest import dataset_root

    if kind not in PARTIAL_KINDS:
        raise ValueError(f"unknown partial kind {kind!r}; expected one of {list(PARTIAL_KINDS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    root = dataset_root(root)
    out = root / PARTIAL_DIR
    written = _written_noises(out, kind)
    how = f"write it with: pc3d-data partial --root {root} --kinds {kind} --splits {split}"
    if noise is None:
        if 0.0 in written:
            noise = 0.0
        elif len(written) == 1:
            noise = next(iter(written))
        elif not written:
            raise ValueError(f"{out}: no partial set of kind {kind!r} was written; {how}")
        else:
            raise ValueError(f"{out}: {kind!r} was written at several noise levels {sorted(written)}; pass noise=")
    name = variant_name(kind, noise)
    doc = _read_meta(out / name / META_NAME)
    if doc is None:
        levels = f"noise levels written for {kind!r}: {sorted(written)}" if written else f"no {kind!r} set written"
        raise ValueError(f"{out / name}: no partial set {name!r} with a readable {META_NAME} ({levels}); {how}")
    shapes = {k: m for k, m in doc["shapes"].items() if isinstance(m, dict) and m.get("split") == split}
    if not shapes and split not in doc.get("splits", {}):
        raise ValueError(
            f"{out / name}: split {split!r} was not written (written: {sorted(doc.get('splits', {}))}); "
            f"{how} --noise {noise:g}"
        )
    items = []
    for key in sorted(shapes):
        synset, mid = key.split("/", 1)
        m = shapes[key]
        partial = _load_cloud(out / name / synset / split / f"{mid}.npy", f"partial cloud ({name})")
        complete = _load_cloud(_complete_path(root, synset, split, mid), "complete cloud")
        items.append(PartialItem(str(m.get("category", "")), synset, mid, partial, complete, dict(m)))
    return items
