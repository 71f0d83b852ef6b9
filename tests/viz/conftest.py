"""Small clouds for the viz/export tests (built from the procedural shapes, no files needed)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def chair_cloud() -> np.ndarray:
    """A procedural chair, 1024 surface points (1024, 3) float64, Y up, radius 0.5."""
    from pc3d.data.synthetic import make_shape, sample_surface

    mesh = make_shape("chair", np.random.default_rng(3))
    return sample_surface(mesh, 1024, np.random.default_rng(4)).astype(np.float64)


@pytest.fixture(scope="session")
def sphere_cloud() -> np.ndarray:
    """1000 points on a sphere of radius 0.4 (1000, 3)."""
    x = np.random.default_rng(0).normal(size=(1000, 3))
    return 0.4 * x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def open3d_backend() -> bool:
    """True when Open3D's OffscreenRenderer works here (detected once)."""
    from pc3d.viz.render import render_backend

    return render_backend("auto") == "open3d"
