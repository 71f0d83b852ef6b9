"""The camera model of pc3d's renderings (3D-R2N2's ``rendering_metadata.txt`` convention).

World **Y up**, objects facing **+Z**. One metadata line ``azimuth elevation
in_plane_rotation distance_ratio fov`` places a camera: ``azimuth`` (degrees) about +Y from
+Z towards +X, ``elevation`` (degrees) above the XZ plane, the distance from the origin
``distance_ratio * MAX_CAMERA_DISTANCE`` (:data:`MAX_CAMERA_DISTANCE` = 2.9: at ratio 0.8
the sphere of radius 0.5 just fills the frame) and ``fov`` the **vertical** (= horizontal,
images are square) field of view in degrees (:data:`FOV_DEG` = 25 by default).

In formulas, with ``a = azimuth``, ``e = elevation``, ``d = distance_ratio * max_distance``:
the eye is ``d * (cos e sin a, sin e, cos e cos a)``, looking at the origin;
``forward = -eye / |eye|``, ``right = normalize(forward x +Y)``, ``up = right x forward``
(:func:`camera_pose`). A world point ``p`` has camera coordinates ``(x, y, z) = ((p -
eye).right, (p - eye).up, (p - eye).forward)`` (``z > 0`` in front) and lands at pixel
``(col, row) = (cx + f x / z, cy - f y / z)`` with ``f = (S / 2) / tan(fov / 2)``, ``cx =
cy = S / 2`` for an ``S x S`` image (:func:`camera_intrinsics`), pixel ``(i, j)`` covering
``[j, j+1) x [i, i+1)`` (row 0 at the top).

Used by the built-in data set's renderer (:mod:`pc3d.data.synthetic`), the renderings reader
(:mod:`pc3d.data.renderings`) and the point-cloud renderer (:mod:`pc3d.viz.render`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FOV_DEG", "MAX_CAMERA_DISTANCE", "camera_intrinsics", "camera_pose"]

MAX_CAMERA_DISTANCE = 2.9
FOV_DEG = 25.0


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
    right = np.cross(fwd, [0, 1.0, 0])
    right = right / np.linalg.norm(right)
    up = np.cross(right, fwd)
    return eye, np.stack([right, up, fwd])


def camera_intrinsics(image_size: int, fov: float = FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics K of shape (3, 3) for a square image with vertical ``fov``
    (degrees): ``f = (S / 2) / tan(fov / 2)``, principal point ``(S / 2, S / 2)``; image
    ``row`` grows downwards, so pixel ``= (cx + f x / z, cy - f y / z)`` for camera
    coordinates from :func:`camera_pose`."""
    f = (image_size / 2) / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0, image_size / 2], [0, f, image_size / 2], [0, 0, 1.0]])
