"""Looking at clouds: headless renders, grids, turntables (:mod:`pc3d.viz.render`) and the media
callback (:mod:`pc3d.viz.callbacks`). Mesh export lives in :mod:`pc3d.export`.

Names are imported lazily (PEP 562): ``import pc3d.viz`` costs nothing, and Open3D is only
imported when the Open3D backend renders.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BACKENDS": "pc3d.viz.render",
    "Camera": "pc3d.viz.render",
    "as_cloud": "pc3d.viz.render",
    "fit_clouds": "pc3d.viz.render",
    "point_colors": "pc3d.viz.render",
    "render_backend": "pc3d.viz.render",
    "render_cloud": "pc3d.viz.render",
    "render_clouds": "pc3d.viz.render",
    "render_grid": "pc3d.viz.render",
    "save_gif": "pc3d.viz.render",
    "save_png": "pc3d.viz.render",
    "turntable": "pc3d.viz.render",
    "load_clouds": "pc3d.viz.io",
    "LogMedia": "pc3d.viz.callbacks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pc3d.viz' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
