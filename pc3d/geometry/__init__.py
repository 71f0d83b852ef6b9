"""Geometry with no learning in it: the camera model (:mod:`pc3d.geometry.camera`) and the
normalisation math (:mod:`pc3d.geometry.normalize`). The lowest layer of pc3d with pc3d.io: it
imports nothing from pc3d but pc3d.io."""
