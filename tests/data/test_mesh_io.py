"""pc3d.data.mesh_io: meshes as other tools write them, read as one triangle mesh.

Every fixture is written here, as text or bytes, the way an exporter writes it.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from pc3d.data.mesh_io import read_mesh, sample_surface, triangulate_polygon
from pc3d.data.meshes import MeshFolderDataset, MeshSampler

# the unit cube [0, 1]^3: vertex 4x + 2y + z (1-based in OBJ), six quads
CUBE_V = np.array([(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
CUBE_QUADS = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
CUBE_NORMALS = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]


def box_distance(p: np.ndarray, lo, hi) -> np.ndarray:
    """Distance of points (N, 3) to the surface of the box [lo, hi] (closed form)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    inside = np.all((p >= lo) & (p <= hi), axis=1)
    d_in = np.minimum(p - lo, hi - p).min(axis=1)
    d_out = np.linalg.norm(np.maximum(lo - p, 0) + np.maximum(p - hi, 0), axis=1)
    return np.where(inside, d_in, d_out)


def area(v: np.ndarray, f: np.ndarray) -> float:
    t = v[f]
    return float(0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum())


def assert_unit_cube(v, f, lo=(0, 0, 0), hi=(1, 1, 1), n_vertices=8):
    assert v.dtype == np.float64 and f.dtype == np.int64
    assert v.shape == (n_vertices, 3) and f.shape == (12 * n_vertices // 8, 3)
    np.testing.assert_allclose(v.min(axis=0), lo, atol=1e-12)
    np.testing.assert_allclose(v.max(axis=0), hi, atol=1e-12)
    side = np.asarray(hi, float) - np.asarray(lo, float)
    np.testing.assert_allclose(
        area(v, f), 2 * (side[0] * side[1] + side[1] * side[2] + side[0] * side[2]) * n_vertices / 8
    )
    pts = sample_surface(v, f, 2000, np.random.default_rng(0))
    assert pts.shape == (2000, 3) and pts.dtype == np.float32
    if n_vertices == 8:
        assert box_distance(pts.astype(np.float64), lo, hi).max() < 1e-6


def blender_obj(material="Material", newline="\n", final_newline=True, long_lines=False) -> str:
    """A Blender 2.9x-style OBJ cube: quads with v/vt/vn corners, a material it never defines."""
    digits = 400 if long_lines else 6
    lines = ["# Blender v2.93.1 OBJ File: ''", "# www.blender.org", "mtllib cube.mtl", "o Cube"]
    if long_lines:
        lines.append("# " + "x" * 200_000)
    lines += [f"v {x:.{digits}f} {y:.{digits}f} {z:.{digits}f}" for x, y, z in CUBE_V]
    lines += ["vt 0.000000 0.000000", "vt 1.000000 0.000000", "vt 1.000000 1.000000", "vt 0.000000 1.000000"]
    lines += [f"vn {a:.4f} {b:.4f} {c:.4f}" for a, b, c in CUBE_NORMALS]
    lines += [f"usemtl {material}", "s off"]
    lines += ["f " + " ".join(f"{i}/{k + 1}/{n + 1}" for k, i in enumerate(q)) for n, q in enumerate(CUBE_QUADS)]
    return newline.join(lines) + (newline if final_newline else "")


def old_blender_ply(header_line: str) -> str:
    """Blender 2.49's ASCII PLY of the cube: 4 vertices per face (with normals), quads."""
    rows, faces = [], []
    for q, nrm in zip(CUBE_QUADS, CUBE_NORMALS, strict=True):
        faces.append("4 " + " ".join(str(len(rows) + k) for k in range(4)))
        rows += [" ".join(f"{c:.6f}" for c in (*CUBE_V[i - 1], *nrm)) for i in q]
    head = [
        "ply",
        "format ascii 1.0",
        header_line,
        f"element vertex {len(rows)}",
        *(f"property float {p}" for p in ("x", "y", "z", "nx", "ny", "nz")),
        f"element face {len(faces)}",
        "property list uchar uint vertex_indices",
        "end_header",
    ]
    return "\n".join(head + rows + faces) + "\n"


CUBE_FILES = {
    "quads_undefined_material.obj": blender_obj(),
    "material_with_spaces.obj": blender_obj(material="Material.001 with  spaces (copy)"),
    "no_final_newline.obj": blender_obj(final_newline=False),
    "crlf_no_final_newline.obj": blender_obj(newline="\r\n", final_newline=False),
    "very_long_lines.obj": blender_obj(long_lines=True, material="M" * 5000 + " tail"),
    "points_lines_faces.obj": "\n".join(
        ["v 0.5 0.5 7", *(f"v {x} {y} {z}" for x, y, z in CUBE_V), "p 1", "p 2 3", "l 1 2 3 4", "l 2 9"]
        + ["f " + " ".join(str(i + 1) for i in q) for q in CUBE_QUADS]
        + ["l 5 6", "p -1"]
    )
    + "\n",
    "blender249_comment.ply": old_blender_ply(
        "comment Created by Blender3D 249 - www.blender3d.org, source file: 'cube.blend'"
    ),
    "blender249_obj_info.ply": old_blender_ply("obj_info Created by Blender3D 249 - www.blender3d.org"),
}


@pytest.mark.parametrize("name", sorted(CUBE_FILES))
def test_cube_files_from_other_tools(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CUBE_FILES[name].encode())
    assert_unit_cube(*read_mesh(path))


def star(n=64, r_out=1.0, r_in=0.4):
    ang = np.arange(n) * 2 * np.pi / n
    r = np.where(np.arange(n) % 2 == 0, r_out, r_in)
    return np.c_[r * np.cos(ang), r * np.sin(ang), np.zeros(n)], n * 0.5 * r_out * r_in * np.sin(2 * np.pi / n)


def inside_star(p2: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Points (N, 2) inside the counter-clockwise star-shaped polygon ``corners`` (n, 2)."""
    n = len(corners)
    k = np.floor(np.mod(np.arctan2(p2[:, 1], p2[:, 0]), 2 * np.pi) / (2 * np.pi / n)).astype(int) % n
    a, b = corners[k], corners[(k + 1) % n]
    return (b[:, 0] - a[:, 0]) * (p2[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p2[:, 0] - a[:, 0]) >= -1e-9


def test_one_concave_64_gon_is_ear_clipped(tmp_path):
    corners, true_area = star()
    text = "".join(f"v {x:.9f} {y:.9f} {z:.9f}\n" for x, y, z in corners)
    (tmp_path / "star.obj").write_text(text + "f " + " ".join(str(i + 1) for i in range(64)))  # no final newline
    v, f = read_mesh(tmp_path / "star.obj")
    assert v.shape == (64, 3) and f.shape == (62, 3)
    np.testing.assert_allclose(area(v, f), true_area, rtol=1e-7)  # a fan would cover ~10x more
    pts = sample_surface(v, f, 3000, np.random.default_rng(1)).astype(np.float64)
    assert np.abs(pts[:, 2]).max() == 0 and inside_star(pts[:, :2], corners[:, :2]).all()
    # the same polygon in OFF, tilted out of its plane
    rot = np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)], [0, np.sin(0.7), np.cos(0.7)]])
    off = [
        "OFF",
        "64 1 0",
        *(" ".join(f"{c:.12f}" for c in p) for p in corners @ rot.T),
        "64 " + " ".join(map(str, range(64))),
    ]
    (tmp_path / "star.off").write_text("\n".join(off) + "\n")
    v, f = read_mesh(tmp_path / "star.off")
    np.testing.assert_allclose(area(v, f), true_area, rtol=1e-7)
    # and a concave quad (a dart) whose reflex corner is not corner 0 or 2
    dart = np.array([[0, 0, 0], [1, 0.2, 0], [2, 0, 0], [1, 1, 0]], dtype=float)
    np.testing.assert_allclose(area(dart, triangulate_polygon(dart)), 0.8)


def test_obj_objects_groups_and_relative_indices_merge(tmp_path):
    lines = []
    for name, offset in (("Box_A", 0.0), ("Box_B", 5.0)):
        lines += [f"o {name}", f"g {name}_group"]
        lines += [f"v {x + offset} {y} {z}" for x, y, z in CUBE_V]
        lines += ["f " + " ".join(str(i - 9) for i in q) for q in CUBE_QUADS]  # relative: -8 .. -1
    lines += ["g third", "o Box_C", *(f"v {x} {y + 3} {z}" for x, y, z in CUBE_V)]
    lines += ["f " + " ".join(str(i + 16) for i in q) for q in CUBE_QUADS]
    (tmp_path / "parts.obj").write_text("\n".join(lines) + "\n")
    v, f = read_mesh(tmp_path / "parts.obj")
    assert v.shape == (24, 3) and f.shape == (36, 3)
    np.testing.assert_allclose(v.min(axis=0), [0, 0, 0])
    np.testing.assert_allclose(v.max(axis=0), [6, 4, 1])
    np.testing.assert_allclose(area(v, f), 18.0)
    pts = sample_surface(v, f, 3000, np.random.default_rng(0)).astype(np.float64)
    d = np.min([box_distance(pts, lo, np.add(lo, 1)) for lo in ((0, 0, 0), (5, 0, 0), (0, 3, 0))], axis=0)
    assert d.max() < 1e-6


def test_ascii_stl_with_several_solids_merges(tmp_path):
    text = []
    for name, offset in (("cube_left", 0.0), ("cube right", 2.0)):
        text.append(f"solid {name}")
        for q, nrm in zip(CUBE_QUADS, CUBE_NORMALS, strict=True):
            for tri in ((q[0], q[1], q[2]), (q[0], q[2], q[3])):
                text += [f"  facet normal {nrm[0]:e} {nrm[1]:e} {nrm[2]:e}", "    outer loop"]
                text += [
                    f"      vertex {(CUBE_V[i - 1] + (offset, 0, 0))[0]:e} {CUBE_V[i - 1][1]:e} {CUBE_V[i - 1][2]:e}"
                    for i in tri
                ]
                text += ["    endloop", "  endfacet"]
        text.append(f"endsolid {name}")
    (tmp_path / "two.stl").write_text("\n".join(text) + "\n")
    v, f = read_mesh(tmp_path / "two.stl")
    assert v.shape == (16, 3) and f.shape == (24, 3)  # the per-triangle corners are merged
    np.testing.assert_allclose([v.min(axis=0), v.max(axis=0)], [[0, 0, 0], [3, 1, 1]])
    pts = sample_surface(v, f, 2000, np.random.default_rng(0)).astype(np.float64)
    assert np.minimum(box_distance(pts, (0, 0, 0), (1, 1, 1)), box_distance(pts, (2, 0, 0), (3, 1, 1))).max() < 1e-6


@pytest.mark.parametrize("file_type", ["glb", "gltf"])
def test_gltf_scene_with_several_nodes_merges_with_transforms(tmp_path, file_type):
    trimesh = pytest.importorskip("trimesh")
    tf = trimesh.transformations
    scene = trimesh.Scene()
    box = trimesh.creation.box(extents=(1, 2, 3))
    scene.add_geometry(box, node_name="moved", transform=tf.translation_matrix((10, 0, 0)))
    scene.add_geometry(box, node_name="turned", transform=tf.rotation_matrix(np.pi / 2, (1, 0, 0)))
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)), node_name="cube", transform=tf.translation_matrix((0, 5, 0))
    )
    scene.add_geometry(trimesh.PointCloud(np.full((4, 3), 99.0)), node_name="points")  # ignored
    if file_type == "glb":
        (tmp_path / "scene.glb").write_bytes(scene.export(file_type="glb"))
    else:
        files = scene.export(file_type="gltf")  # model.gltf + its .bin buffers
        for name, data in files.items():
            (tmp_path / ("scene.gltf" if name.endswith(".gltf") else name)).write_bytes(data)
        assert any(name.endswith(".bin") for name in files)
    v, f = read_mesh(tmp_path / f"scene.{file_type}")
    assert v.shape == (24, 3) and f.shape == (36, 3)
    np.testing.assert_allclose(v.min(axis=0), [-0.5, -1.5, -1.5], atol=1e-6)
    np.testing.assert_allclose(v.max(axis=0), [10.5, 5.5, 1.5], atol=1e-6)
    pts = sample_surface(v, f, 3000, np.random.default_rng(0)).astype(np.float64)
    d = np.min(
        [
            box_distance(pts, (9.5, -1, -1.5), (10.5, 1, 1.5)),
            box_distance(pts, (-0.5, -1.5, -1), (0.5, 1.5, 1)),  # +Y -> +Z: extents (1, 3, 2)
            box_distance(pts, (-0.5, 4.5, -0.5), (0.5, 5.5, 0.5)),
        ],
        axis=0,
    )
    assert d.max() < 1e-5


def _handwritten_gltf(path):
    """A .gltf with an embedded buffer: a 1 x 4 x 1 pillar standing on +Y at the scene root, and
    the same pillar under a parent translated to x=10, turned 90 degrees about +X (quaternion)."""
    lo, hi = np.array([-0.5, 0.0, -0.5]), np.array([0.5, 4.0, 0.5])
    pos = (lo + CUBE_V * (hi - lo)).astype(np.float32)
    idx = np.array([(q[0], q[1], q[2], q[0], q[2], q[3]) for q in CUBE_QUADS], dtype=np.uint16).reshape(-1) - 1
    blob = pos.tobytes() + idx.tobytes()
    s = float(np.sin(np.pi / 4))
    doc = {
        "asset": {"version": "2.0", "generator": "pc3d test, by hand"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1]}],
        "nodes": [
            {"name": "standing", "mesh": 0},
            {"name": "parent", "translation": [10.0, 0.0, 0.0], "children": [2]},
            {"name": "lying", "mesh": 0, "rotation": [s, 0.0, 0.0, s]},
        ],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "buffers": [
            {"byteLength": len(blob), "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": pos.nbytes, "target": 34962},
            {"buffer": 0, "byteOffset": pos.nbytes, "byteLength": idx.nbytes, "target": 34963},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 8,
                "type": "VEC3",
                "min": lo.tolist(),
                "max": hi.tolist(),
            },
            {"bufferView": 1, "componentType": 5123, "count": len(idx), "type": "SCALAR"},
        ],
    }
    path.write_text(json.dumps(doc))


def test_gltf_up_axis_is_kept_plus_y(tmp_path):
    """glTF is +Y up by spec, as pc3d: nothing is rotated; node rotations are applied."""
    _handwritten_gltf(tmp_path / "pillar.gltf")
    v, f = read_mesh(tmp_path / "pillar.gltf")
    assert v.shape == (16, 3) and f.shape == (24, 3)
    standing = v[v[:, 0] < 5]
    np.testing.assert_allclose(
        [standing.min(axis=0), standing.max(axis=0)], [[-0.5, 0, -0.5], [0.5, 4, 0.5]], atol=1e-6
    )
    lying = v[v[:, 0] > 5]  # +90 degrees about +X: (x, y, z) -> (x, -z, y), +Y goes to +Z
    np.testing.assert_allclose([lying.min(axis=0), lying.max(axis=0)], [[9.5, -0.5, 0], [10.5, 0.5, 4]], atol=1e-6)


def test_obj_ply_stl_off_coordinates_are_kept_as_stored(tmp_path):
    """No up axis in these formats: a Z-up pillar stays Z-up (pc3d never guesses)."""
    tall = CUBE_V * (1, 1, 4)
    (tmp_path / "z.obj").write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in tall) + "".join(f"f {a} {b} {c} {d}\n" for a, b, c, d in CUBE_QUADS)
    )
    (tmp_path / "z.off").write_text(
        "OFF\n8 6 0\n"
        + "".join(f"{x} {y} {z}\n" for x, y, z in tall)
        + "".join(f"4 {a - 1} {b - 1} {c - 1} {d - 1}\n" for a, b, c, d in CUBE_QUADS)
    )
    (tmp_path / "z.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 8\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 6\nproperty list uchar int vertex_indices\nend_header\n"
        + "".join(f"{x} {y} {z}\n" for x, y, z in tall)
        + "".join(f"4 {a - 1} {b - 1} {c - 1} {d - 1}\n" for a, b, c, d in CUBE_QUADS)
    )
    _binary_stl(
        tmp_path / "z.stl",
        tall,
        [t for q in CUBE_QUADS for t in ((q[0] - 1, q[1] - 1, q[2] - 1), (q[0] - 1, q[2] - 1, q[3] - 1))],
    )
    for name in ("z.obj", "z.off", "z.ply", "z.stl"):
        v, _ = read_mesh(tmp_path / name)
        np.testing.assert_allclose(v.max(axis=0), [1, 1, 4])


def _binary_stl(path, v, tris):
    body = b"".join(struct.pack("<12fH", 0, 0, 0, *v[list(t)].reshape(-1), 0) for t in tris)
    path.write_bytes(b"binary stl".ljust(80, b" ") + struct.pack("<I", len(tris)) + body)


BROKEN = {
    "text_not_ply.ply": b"this is not a ply file\n",
    "truncated.glb": b"glTF\x02\x00\x00\x00\xff\x00\x00\x00",
    "no_faces.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2 3\n",
    "garbage.obj": b"\x00\x01\x02 this is no OBJ \xff\xfe",
    "empty.stl": b"",
    "bad_index.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n",
    "json_not_gltf.gltf": b'{"hello": "world"}',
    "short.off": b"OFF\n8 12 0\n0 0 0\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_raise_value_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BROKEN[name])
    with pytest.raises(ValueError, match=f"^{path}: "):
        read_mesh(path)


def test_binary_stl_and_errors_for_missing_or_unknown_files(tmp_path):
    tris = [t for q in CUBE_QUADS for t in ((q[0] - 1, q[1] - 1, q[2] - 1), (q[0] - 1, q[2] - 1, q[3] - 1))]
    _binary_stl(tmp_path / "cube.stl", CUBE_V, tris)
    assert_unit_cube(*read_mesh(tmp_path / "cube.stl"))
    with pytest.raises(FileNotFoundError):
        read_mesh(tmp_path / "missing.obj")
    (tmp_path / "cube.fbx").write_bytes(b"Kaydara FBX Binary")
    with pytest.raises(ValueError, match="unsupported mesh format '.fbx'"):
        read_mesh(tmp_path / "cube.fbx")


def test_sampling_is_seeded_and_area_uniform(tmp_path):
    v = CUBE_V * (1, 1, 3)  # sides of area 1 (2x) and 3 (4x)
    f = np.array([t for q in CUBE_QUADS for t in ((q[0], q[1], q[2]), (q[0], q[2], q[3]))]) - 1
    a = sample_surface(v, f, 20000, np.random.default_rng((3, 7)))
    b = sample_surface(v, f, 20000, np.random.default_rng((3, 7)))
    c = sample_surface(v, f, 20000, np.random.default_rng((3, 8)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    on_ends = np.isclose(a[:, 2], 0) | np.isclose(a[:, 2], 3)
    assert abs(on_ends.mean() - 2 / 14) < 0.01
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, np.random.default_rng(0))


def test_mesh_folder_reads_other_tools_files_and_skips_broken_ones(tmp_path):
    root = tmp_path / "assets"
    for name, text in CUBE_FILES.items():
        (root / "cube" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "cube" / name).write_bytes(text.encode())
    broken = root / "cube" / "broken.glb"
    broken.write_bytes(BROKEN["truncated.glb"])
    opts = {"n_points": 256, "surface_points": 1000, "cache_dir": False, "split_fractions": (1.0, 0.0, 0.0)}
    with pytest.raises(ValueError, match=f"{broken}: not a readable GLB file"):
        MeshFolderDataset(root, split="train", in_memory=True, **opts)  # reads every file now
    ds = MeshFolderDataset(root, split="train", skip_bad=True, **opts)
    assert [b.split(": ")[0] for b in ds.bad_files] == [str(broken)]
    assert len(ds) == len(CUBE_FILES)
    h = 0.5 / np.sqrt(3)  # normalized: bounding box centred, farthest vertex at radius 0.5
    for i in range(len(ds)):
        pts = ds[i]["points"].numpy().astype(np.float64)
        assert pts.shape == (256, 3) and box_distance(pts, (-h, -h, -h), (h, h, h)).max() < 1e-6
    # seeded: the same file and seed give the same dense sample, another seed another one
    sampler = MeshSampler(500, seed=0, cache_root=None, normalize=True)
    path = root / "cube" / "material_with_spaces.obj"
    a, b = sampler.sample(path, "cube/x.obj"), sampler.sample(path, "cube/x.obj")
    c = MeshSampler(500, seed=1, cache_root=None, normalize=True).sample(path, "cube/x.obj")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
