"""The ``substyles=True`` variant of the built-in set (issue 16): interior sub-styles, 18 fine classes.

The default set must not change (tests/data/test_fine_labels.py keeps its reference hashes); the variant
adds parts inside each shape's outline, records the sub-style, and is a different data set parameter."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from scipy.spatial import Delaunay

pytest.importorskip("open3d")

from pc3d.data import PC15kDataset  # noqa: E402
from pc3d.data.synthetic import (  # noqa: E402
    CATEGORIES,
    FINE_CLASSES,
    FINE_LABELS_NAME,
    PC15K_DIRNAME,
    SUBSTYLE_CLASSES,
    SUBSTYLES,
    ensure_fine_labels,
    fine_classes,
    generate,
    is_complete,
    rebuild_shape,
    replay_fine_labels,
)
from pc3d.data.synthetic.categories import build_parts, substyle_for  # noqa: E402
from pc3d.data.synthetic.writer import _STREAM_SHAPE, _rng, model_id  # noqa: E402

TINY = {"n_per_category": 3, "n_points": 200, "n_views": 0, "seed": 0}


@pytest.fixture(scope="module")
def variant_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sub") / "root", progress=False, workers=1, substyles=True, **TINY)


def test_class_list():
    assert len(SUBSTYLE_CLASSES) == 18 == len(set(SUBSTYLE_CLASSES))
    assert fine_classes(True) == SUBSTYLE_CLASSES and fine_classes(False) == FINE_CLASSES
    for c in CATEGORIES:
        names = [n for n in SUBSTYLE_CLASSES if n == c or n.startswith(c + "/")]
        assert names == ([f"{c}/{s}" for s in SUBSTYLES[c]] if c in SUBSTYLES else [c])


def test_substyle_cycles_through_the_options():
    for c, subs in SUBSTYLES.items():
        assert [substyle_for(c, i) for i in range(7)] == [subs[i % 3] for i in range(7)]
    assert substyle_for("car", 5) is None


def _plain(c: str) -> str:
    return SUBSTYLES[c][0]


# sub-styles whose builder draws exactly what the first (plain) one draws (a sofa's back cushions draw
# their thickness, which shifts its later draws: arm height, leg shapes)
SAME_DRAWS = [(c, s) for c, subs in SUBSTYLES.items() for s in subs[1:] if (c, s) != ("sofa", "back-cushions")]


@pytest.mark.parametrize("c,sub", SAME_DRAWS)
def test_substyle_adds_parts_inside_the_outline(c, sub):
    """Same draws, one more part: the plain shape's vertices come first, unchanged; the added vertices
    stay inside the plain shape's bounding box and (mostly) its convex hull."""
    for i in range(4):
        plain = build_parts(c, _rng(0, c, i, _STREAM_SHAPE), _plain(c)).mesh()[0]
        more = build_parts(c, _rng(0, c, i, _STREAM_SHAPE), sub).mesh()[0]
        assert len(more) > len(plain)
        # the added part sits where the builder adds it (before the later parts): find the plain
        # vertices as a contiguous prefix + suffix of the sub-styled ones
        k = len(more) - len(plain)
        start = next(j for j in range(len(plain) + 1) if j == len(plain) or not np.array_equal(more[j], plain[j]))
        np.testing.assert_array_equal(more[:start], plain[:start])
        np.testing.assert_array_equal(more[start + k:], plain[start:])
        added = more[start:start + k]
        lo, hi = plain.min(0), plain.max(0)
        assert (added >= lo - 1e-9).all() and (added <= hi + 1e-9).all(), f"{c}/{sub} #{i} leaves the bounding box"
        inside = Delaunay(plain).find_simplex(added, tol=1e-9) >= 0
        assert inside.mean() >= 0.75, f"{c}/{sub} #{i}: only {inside.mean():.0%} of the added part inside the hull"


def test_default_set_is_untouched_by_the_variant_code():
    """sub=None is the default set's build (its reference hashes: tests/data/test_fine_labels.py)."""
    from pc3d.data.synthetic.categories import shape_arrays

    for c in CATEGORIES:
        v0, f0 = shape_arrays(c, _rng(0, c, 3, _STREAM_SHAPE))  # the default set's build
        for params in ({"seed": 0}, {"seed": 0, "substyles": False}):
            (v, f), style = rebuild_shape(params, c, 3)
            np.testing.assert_array_equal(v, v0)
            np.testing.assert_array_equal(f, f0)
            assert "sub" not in style
        if c in SUBSTYLES:  # and the variant does differ (a default shape may draw the same part by chance)
            assert any(not np.array_equal(rebuild_shape({"seed": 0, "substyles": True}, c, i)[0][0],
                                          shape_arrays(c, _rng(0, c, i, _STREAM_SHAPE))[0]) for i in (1, 2, 4, 5))


def test_variant_labels_and_manifest(variant_root):
    man = json.loads((variant_root / "pc3d_synthetic.json").read_text())
    assert man["params"]["substyles"] is True
    doc = json.loads((variant_root / FINE_LABELS_NAME).read_text())
    assert doc["classes"] == list(SUBSTYLE_CLASSES) and doc["params"]["substyles"] is True
    labels = ensure_fine_labels(variant_root)
    assert labels == {k: int(v) for k, v in doc["labels"].items()}
    for c, synset in CATEGORIES.items():
        replayed = replay_fine_labels(0, c, 3, substyles=True)
        assert all(labels[k] == v for k, v in replayed.items())
        for i in range(3):
            name = SUBSTYLE_CLASSES[labels[f"{synset}/{model_id(0, c, i)}"]]
            assert name == (f"{c}/{substyle_for(c, i)}" if c in SUBSTYLES else c)
    ds = PC15kDataset(variant_root / PC15K_DIRNAME, split="train", n_points=64)
    got = collections.Counter(int(ds[i]["fine_label"]) for i in range(len(ds)))
    assert set(got) <= set(range(len(SUBSTYLE_CLASSES))) and -1 not in got


def test_variant_and_default_roots_do_not_mix(variant_root, tmp_path):
    assert is_complete(variant_root, substyles=True, **TINY)
    assert not is_complete(variant_root, **TINY)
    with pytest.raises(ValueError, match="substyles: on disk True"):
        generate(variant_root, progress=False, workers=1, **TINY)
    plain = generate(tmp_path / "plain", progress=False, workers=1, **TINY)
    with pytest.raises(ValueError, match="substyles"):
        generate(plain, progress=False, workers=1, substyles=True, **TINY)
    with pytest.raises(ValueError, match="substyles must be true or false"):
        generate(tmp_path / "bad", progress=False, workers=1, substyles="yes", **TINY)


def test_variant_clouds_are_the_rebuilt_meshes(variant_root):
    """What the writer stored for a sub-styled shape lies on the mesh rebuild_shape gives (the
    partial-scan writer and other tools rebuild meshes this way)."""
    import open3d as o3d

    c, i = "mug", 2  # "full": the drink's surface inside
    (v, f), style = rebuild_shape({"seed": 0, "substyles": True}, c, i)
    assert style["sub"] == "full"
    mid = model_id(0, c, i)
    path = next((variant_root / PC15K_DIRNAME / CATEGORIES[c]).glob(f"*/{mid}.npy"))
    pts = np.load(path)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    d = scene.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy()
    assert d.max() < 1e-5
