"""Fixture builders: small data sets in the exact public file formats (nothing is downloaded).

Each ``write_*`` returns what a test needs to check the reader against (model ids, arrays).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

#: ShapeNet-part-like name map (real synsets of two classes).
PART_NAMES = {"Airplane": "02691156", "Chair": "03001627"}


def _cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + rng.uniform(-3, 3, size=3)


def write_shapenet_part(root: Path, spec: dict[str, dict[str, int]], variant: str = "v0", seed: int = 0) -> dict:
    """ShapeNet-part v0 (``variant="v0"``) or its ``_normal`` variant under ``root``.

    ``spec`` is ``{synset: {split: n_shapes}}``; shape ``k`` of a synset has ``40 + 3 k`` points
    and part labels ``1 + (row % 3)`` (v0) or ``10 + (row % 3)`` (normal). Returns
    ``{(synset, model_id): {"points": (P, 3), "labels": (P,), "split": split}}``.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{n}\t{s}\n" for n, s in PART_NAMES.items()))
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    out = {}
    for synset, splits in spec.items():
        k = 0
        for split, n in splits.items():
            for _ in range(n):
                model_id = f"{synset[-3:]}{k:05d}abcdef"
                p = 40 + 3 * k
                pts = _cloud(rng, p)
                if variant == "v0":
                    labels = 1 + np.arange(p) % 3
                    path = root / synset / "points" / f"{model_id}.pts"
                    (root / synset / "points_label").mkdir(parents=True, exist_ok=True)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savetxt(path, pts, fmt="%.6f")
                    np.savetxt(root / synset / "points_label" / f"{model_id}.seg", labels, fmt="%d")
                else:
                    labels = 10 + np.arange(p) % 3
                    normals = rng.normal(size=(p, 3))
                    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
                    path = root / synset / f"{model_id}.txt"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savetxt(path, np.concatenate([pts, normals, labels[:, None]], axis=1), fmt="%.6f")
                pts = np.loadtxt(path)[:, :3]  # the values as written (6 decimals)
                lists[split].append(f"shape_data/{synset}/{model_id}")
                out[(synset, model_id)] = {"points": pts, "labels": labels, "split": split}
                k += 1
    (root / "train_test_split").mkdir(exist_ok=True)
    for split, entries in lists.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return out


def box_mesh(scale=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box: vertices (8, 3), triangles (12, 3) with outward winding."""
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    v = (v - 0.5) * np.asarray(scale) + np.asarray(offset)
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ],
        dtype=np.int64,
    )
    return v, f


def write_off(path: Path, v: np.ndarray, f: np.ndarray, glued_header: bool = False, quads: bool = False) -> None:
    """An OFF file; ``glued_header`` writes ModelNet's broken first line ``OFF<nv> <nf> 0``."""
    faces = [f"3 {a} {b} {c}" for a, b, c in f]
    if quads:  # merge triangle pairs (0,1), (2,3), ... into quads where they share an edge a-c
        faces = [f"4 {f[i][0]} {f[i][1]} {f[i][2]} {f[i + 1][2]}" for i in range(0, len(f), 2)]
    head = f"OFF{len(v)} {len(faces)} 0\n" if glued_header else f"OFF\n{len(v)} {len(faces)} 0\n"
    body = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v) + "".join(s + "\n" for s in faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body)


def write_modelnet40(root: Path, spec: dict[str, dict[str, int]], seed: int = 0) -> dict:
    """``<root>/<class>/{train,test}/<class>_NNNN.off`` boxes of random size; the first train file
    of the first class has the glued header. Returns ``{(class, model_id): (split, scale)}``."""
    rng = np.random.default_rng(seed)
    out = {}
    first = True
    for cls, splits in spec.items():
        k = 1
        for split, n in splits.items():
            for _ in range(n):
                model_id = f"{cls}_{k:04d}"
                scale = rng.uniform(0.5, 3.0, size=3)
                write_off(root / cls / split / f"{model_id}.off", *box_mesh(scale), glued_header=first)
                first = False
                out[(cls, model_id)] = (split, scale)
                k += 1
    return out


def write_modelnet40_normal(root: Path, spec: dict[str, dict[str, int]], n_rows: int = 50, seed: int = 0) -> dict:
    """``modelnet40_normal_resampled``: shape names, train/test lists, comma-separated rows."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    out = {}
    for cls, splits in spec.items():
        k = 1
        for split, n in splits.items():
            for _ in range(n):
                model_id = f"{cls}_{k:04d}"
                table = np.concatenate([_cloud(rng, n_rows), rng.normal(size=(n_rows, 3))], axis=1)
                (root / cls).mkdir(exist_ok=True)
                np.savetxt(root / cls / f"{model_id}.txt", table, fmt="%.6f", delimiter=",")
                lists[split].append(model_id)
                out[(cls, model_id)] = np.loadtxt(root / cls / f"{model_id}.txt", delimiter=",")[:, :3]
                k += 1
    (root / "modelnet40_shape_names.txt").write_text("".join(f"{c}\n" for c in spec))
    for split, ids in lists.items():
        (root / f"modelnet40_{split}.txt").write_text("".join(f"{m}\n" for m in ids))
    return out


def write_ply_points(path: Path, pts: np.ndarray, binary: bool = False) -> None:
    """A PLY point cloud (``element vertex`` with float x y z), ASCII or binary little-endian."""
    fmt = "binary_little_endian" if binary else "ascii"
    props = "".join(f"property float {c}\n" for c in "xyz")
    head = f"ply\nformat {fmt} 1.0\nelement vertex {len(pts)}\n{props}end_header\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary:
        path.write_bytes(head.encode() + np.asarray(pts, "<f4").tobytes())
    else:
        path.write_text(head + "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in pts))


def write_latent3d(root: Path, spec: dict[str, int], n_rows: int = 2048, seed: int = 0) -> dict:
    """``<root>/<synset>/<model_id>.ply`` with ``n_rows`` points (binary and ASCII alternate)."""
    rng = np.random.default_rng(seed)
    out = {}
    for synset, n in spec.items():
        for k in range(n):
            model_id = f"{synset}{k:04d}"
            pts = _cloud(rng, n_rows).astype(np.float32)
            write_ply_points(root / synset / f"{model_id}.ply", pts, binary=k % 2 == 0)
            out[(synset, model_id)] = pts
    return out


def write_glb(path: Path, v: np.ndarray, f: np.ndarray) -> None:
    """A minimal binary glTF 2.0 (one mesh: float32 POSITION + uint32 indices)."""
    vb = np.asarray(v, np.float32).tobytes()
    ib = np.asarray(f, np.uint32).reshape(-1).tobytes()
    binary = vb + ib
    binary += b"\x00" * (-len(binary) % 4)
    v32 = np.asarray(v, np.float32)
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(vb), "target": 34962},
            {"buffer": 0, "byteOffset": len(vb), "byteLength": len(ib), "target": 34963},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(v32),
                "type": "VEC3",
                "min": v32.min(0).tolist(),
                "max": v32.max(0).tolist(),
            },
            {"bufferView": 1, "componentType": 5125, "count": int(np.asarray(f).size), "type": "SCALAR"},
        ],
    }
    js = json.dumps(gltf).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)


def write_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> None:
    """Write a mesh in the format of ``path``'s suffix (OFF and GLB by hand, the rest with Open3D)."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".off":
        write_off(path, v, f)
    elif suffix == ".glb":
        write_glb(path, v, f)
    else:
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
        if suffix == ".stl":  # Open3D's STL writer needs them; its OBJ writer warns about them
            mesh.compute_triangle_normals()
        if not o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=suffix in (".obj", ".ply")):
            raise RuntimeError(f"Open3D could not write {path}")


def write_mesh_folder(root: Path, spec: dict[str, list[str]], seed: int = 0) -> dict:
    """``<root>/<class>/<name>.<ext>`` boxes, one per suffix in ``spec[class]`` (e.g. [".obj", ".glb"]);
    a suffix given as ``"sub/.ply"`` goes into a subfolder. Returns ``{(class, model_id): scale}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for cls, suffixes in spec.items():
        for k, suffix in enumerate(suffixes):
            sub, _, ext = suffix.rpartition("/")
            rel = f"{sub}/" if sub else ""
            name = f"{rel}{cls}{k:02d}{ext}"
            scale = rng.uniform(0.5, 3.0, size=3)
            write_mesh(root / cls / name, *box_mesh(scale, offset=rng.uniform(-2, 2, size=3)))
            out[(cls, name.replace("/", "__"))] = scale
    return out
