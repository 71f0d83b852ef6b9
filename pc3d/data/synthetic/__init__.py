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
      fine_labels.json                              fine-grained class of every shape
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

* ``fine_labels.json`` gives every shape a fine-grained class besides its category
  (:data:`FINE_CLASSES`, 24 in all, 2-4 per category: ``"chair/pedestal"``, ``"car/pickup"``,
  ``"bench/panels+back"``...), from the discrete style choices its builder made; see
  :mod:`~pc3d.data.synthetic.fine_labels` (sets generated before it existed get it on first use,
  by replaying the builders: :func:`ensure_fine_labels`). The readers expose it as the item key
  ``fine_label``.
* ``substyles=True`` (``pc3d-data generate --substyles``, ``data.synthetic.substyles=true``) makes
  the *variant* set on which a linear probe can rank encoders: shape ``i`` of chair, table, sofa,
  mug and bench also gets interior sub-style ``i % 3`` (:data:`SUBSTYLES`: a board between chair legs
  or under the seat; a table's lower shelf or apron; a sofa's back cushions or bolster; a drink at
  half or 90 % height in a mug; a bench's low shelf or stretcher board), large parts *inside* the
  outline, so the silhouette says little about them. Its fine labels are the 18
  :data:`SUBSTYLE_CLASSES` (3 per such category, one for each other category). Not a superset of
  the default set: other draws follow the sub-style, so use another root.

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

The camera model itself lives in :mod:`pc3d.geometry.camera`. In formulas (see
:func:`~pc3d.geometry.camera.camera_pose` and :func:`~pc3d.geometry.camera.camera_intrinsics`), with
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
camera constants) is written last, by write-to-temp-then-rename (``fine_labels.json`` just
before it, the same way), and the markers are removed. A root without the manifest is not
complete (:func:`is_complete`), and readers must refuse built-in synsets there
(:func:`read_manifest`). A killed run leaves
``.tmp-*`` folders (removed by the next run), finished categories with their markers
(reused by the next run with the same parameters) and at most one category moved in
without its marker (rebuilt). Generation holds an exclusive ``flock`` on the root folder
(POSIX), so concurrent calls on one root queue up instead of mixing.

Speed: about 25 ms per shape on one core at the default size (15000 points, 4 views of
137 px): 8 x 100 shapes take ~20 s and ~141 MiB. With ``workers > 1`` jobs of at least
``_POOL_MIN_SHAPES`` shapes use a ``spawn`` process pool, one category per task; smaller
jobs run in-process, because a spawned worker spends seconds importing (Open3D and
whatever ``pc3d.data`` imports).

Modules
-------
:mod:`~pc3d.data.synthetic.primitives` (mesh building blocks, :func:`sample_surface`),
:mod:`~pc3d.data.synthetic.categories` (one seeded builder per category, :func:`make_shape`),
:mod:`~pc3d.data.synthetic.rendering` (:func:`render_view`, the ``rendering/`` folder writer),
:mod:`~pc3d.data.synthetic.manifest` (layout names, parameters, the manifest, :func:`is_complete`),
:mod:`~pc3d.data.synthetic.lock` (the root's lock, temporary folders and markers),
:mod:`~pc3d.data.synthetic.fine_labels` (``fine_labels.json``: write, read, replay) and
:mod:`~pc3d.data.synthetic.writer` (seeds, splits, :func:`generate`, :func:`ensure_generated`).

Public API
----------
:func:`generate`, :func:`ensure_generated` (what ``prepare_data`` calls),
:func:`is_complete`, :func:`read_manifest`, :data:`MANIFEST_NAME`, :data:`CATEGORIES`;
building blocks: :func:`make_shape`, :func:`sample_surface`, :func:`clean_and_normalize`,
:func:`render_view`, :func:`write_renderings`, :func:`model_id` (the camera:
:mod:`pc3d.geometry.camera`). Command line: ``pc3d-data generate`` (:mod:`pc3d.cli.data`).
"""

from __future__ import annotations

from pc3d.data.synthetic.categories import (
    CATEGORIES,
    FINE_CLASSES,
    SUBSTYLE_CLASSES,
    SUBSTYLES,
    SYNSET_TO_NAME,
    fine_class,
    fine_classes,
    make_shape,
)
from pc3d.data.synthetic.fine_labels import FINE_LABELS_NAME, ensure_fine_labels, read_fine_labels, replay_fine_labels
from pc3d.data.synthetic.manifest import MANIFEST_NAME, PC15K_DIRNAME, RENDERING_DIRNAME, is_complete, read_manifest
from pc3d.data.synthetic.primitives import clean_and_normalize, sample_surface
from pc3d.data.synthetic.rendering import render_view, write_renderings
from pc3d.data.synthetic.writer import ensure_generated, generate, model_id, rebuild_shape

__all__ = [
    "CATEGORIES",
    "FINE_CLASSES",
    "FINE_LABELS_NAME",
    "MANIFEST_NAME",
    "PC15K_DIRNAME",
    "RENDERING_DIRNAME",
    "SUBSTYLES",
    "SUBSTYLE_CLASSES",
    "SYNSET_TO_NAME",
    "clean_and_normalize",
    "ensure_fine_labels",
    "ensure_generated",
    "fine_class",
    "fine_classes",
    "generate",
    "is_complete",
    "make_shape",
    "model_id",
    "read_fine_labels",
    "read_manifest",
    "rebuild_shape",
    "render_view",
    "replay_fine_labels",
    "sample_surface",
    "write_renderings",
]
