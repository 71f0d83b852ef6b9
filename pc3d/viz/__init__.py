"""Looking at clouds: headless renders, grids, turntables (:mod:`pc3d.viz.render`, its back-ends in
:mod:`pc3d.viz.backends`) and the media callback (:mod:`pc3d.viz.callbacks`). Mesh export lives
in :mod:`pc3d.export`.

Names are imported lazily (PEP 562): ``import pc3d.viz`` costs nothing, and Open3D is only
imported when the Open3D backend renders.
"""

from __future__ import annotations

from pc3d._lazy import lazy_exports

_EXPORTS = {
    "BACKENDS": "pc3d.viz.backends",
    "Camera": "pc3d.viz.render",
    "as_cloud": "pc3d.viz.render",
    "fit_clouds": "pc3d.viz.render",
    "point_colors": "pc3d.viz.render",
    "render_backend": "pc3d.viz.backends",
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


__getattr__, __dir__ = lazy_exports("pc3d.viz", _EXPORTS, globals())
