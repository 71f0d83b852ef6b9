"""A corpus of malformed data files, written into a temporary folder by the tests (nothing binary is
committed). Each :class:`Case` puts one broken file into an otherwise valid small data set of the
layout that reads its format, and says which problem the error must name.

Used by ``tests/data/test_malformed.py``: every case must give one ``ValueError`` that names the
file and the problem, and (when :attr:`Case.skippable`) be skipped and listed under ``skip_bad``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.data.layouts import (
    box_mesh,
    write_glb,
    write_latent3d,
    write_mesh_folder,
    write_modelnet40,
    write_off,
    write_ply_points,
    write_shapenet_part,
)

SYNSET = "03001627"
N_POINTS = 128  # what the readers are asked for; good clouds have more rows


@dataclass(frozen=True)
class Case:
    """One malformed file.

    name: test id; fmt: the file format; layout: the data set it is put in (``pc15k``,
    ``shapenet_part``, ``modelnet40``, ``latent3d``, ``meshes``, ``renderings``);
    problem: words the error message must contain (case-insensitive); skippable: ``skip_bad``
    drops and lists it (``False``: a root-level file such as a split list, which is always an error);
    write: ``write(root) -> path`` breaks one file of the valid set at ``root``.
    """

    name: str
    fmt: str
    layout: str
    problem: str
    write: Callable[[Path], Path]
    skippable: bool = True


# ---------------------------------------------------------------------------------------- valid sets
def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def build_valid(layout: str, root: Path) -> Path:
    """Write a small valid data set of ``layout`` under ``root``; returns the reader's root."""
    if layout in ("pc15k", "renderings"):
        data = root / "ShapeNetCore.v2.PC15k"
        for k in range(2):
            d = data / SYNSET / "train"
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f"good{k}.npy", _rng().normal(size=(200, 3)).astype(np.float32))
        if layout == "renderings":
            for k in range(2):
                write_rendering_folder(root / "ShapeNetRendering" / SYNSET / f"good{k}" / "rendering")
        return data
    if layout == "shapenet_part":
        write_shapenet_part(root, {SYNSET: {"train": 2}})
        return root
    if layout == "modelnet40":
        write_modelnet40(root, {"chair": {"train": 2, "test": 1}})
        return root
    if layout == "latent3d":
        write_latent3d(root, {SYNSET: 2}, n_rows=200)
        return root
    if layout == "meshes":
        write_mesh_folder(root, {"chair": [".obj", ".glb"]})
        return root
    raise ValueError(layout)


def write_rendering_folder(folder: Path, n_views: int = 2, size: int = 16) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for v in range(n_views):
        img = np.zeros((size, size, 4), np.uint8)
        img[4:12, 4:12] = (200, 100, 50, 255)
        Image.fromarray(img, "RGBA").save(folder / f"{v:02d}.png")
    (folder / "renderings.txt").write_text("".join(f"{v:02d}.png\n" for v in range(n_views)))
    (folder / "rendering_metadata.txt").write_text("".join(f"{30.0 * v} 20.0 0 0.8 25\n" for v in range(n_views)))


# ---------------------------------------------------------------------------------------- npy
def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy(name: str, content: Callable[[], bytes | None]) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / SYNSET / "train" / name
        data = content()
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        return path

    return write


def _huge_header() -> bytes:
    b = _npy_bytes(np.zeros((5, 3), np.float32))
    return b.replace(b"(5, 3)", b"(1000000000000, 3)")


def _cloud(values=None, n: int = 200, dtype=np.float32) -> np.ndarray:
    a = _rng().normal(size=(n, 3)).astype(dtype)
    if values is not None:
        a[7, 1] = values
    return a


NPY_CASES = [
    Case("npy_huge_header", "npy", "pc15k", "header says shape (1000000000000, 3)", _npy("bad.npy", _huge_header)),
    Case("npy_truncated", "npy", "pc15k", "truncated", _npy("bad.npy", lambda: _npy_bytes(_cloud())[:-100])),
    Case("npy_empty", "npy", "pc15k", "empty or truncated .npy", _npy("bad.npy", lambda: b"")),
    Case("npy_bad_magic", "npy", "pc15k", "not a readable .npy", _npy("bad.npy", lambda: b"PK\x03\x04 not numpy" * 10)),
    Case("npy_garbled_header", "npy", "pc15k", "bad header",
         _npy("bad.npy", lambda: _npy_bytes(_cloud()).replace(b"'descr'", b"'dXscr'"))),
    Case("npy_pickle", "npy", "pc15k", "pickled",
         _npy("bad.npy", lambda: _npy_bytes(np.array([{"a": 1}] * 3, dtype=object)))),
    Case("npy_wrong_columns", "npy", "pc15k", "got shape (200, 4)",
         _npy("bad.npy", lambda: _npy_bytes(np.zeros((200, 4), np.float32)))),
    Case("npy_1d", "npy", "pc15k", "got shape (600,)", _npy("bad.npy", lambda: _npy_bytes(np.zeros(600, np.float32)))),
    Case("npy_strings", "npy", "pc15k", "dtype <U3",
         _npy("bad.npy", lambda: _npy_bytes(np.full((200, 3), "abc")))),
    Case("npy_nan", "npy", "pc15k", "non-finite", _npy("bad.npy", lambda: _npy_bytes(_cloud(np.nan)))),
    Case("npy_inf", "npy", "pc15k", "non-finite", _npy("bad.npy", lambda: _npy_bytes(_cloud(np.inf)))),
    Case("npy_3e38", "npy", "pc15k", "|x| > 1e+06", _npy("bad.npy", lambda: _npy_bytes(_cloud(3e38)))),
    Case("npy_int_huge", "npy", "pc15k", "|x| > 1e+06",
         _npy("bad.npy", lambda: _npy_bytes(np.full((200, 3), 10**12, np.int64)))),
    Case("npy_too_few_rows", "npy", "pc15k", f"n_points={N_POINTS}",
         _npy("bad.npy", lambda: _npy_bytes(_cloud(n=100)))),
    Case("npy_directory", "npy", "pc15k", "is a directory", _npy("bad.npy", lambda: None)),
]


# ---------------------------------------------------------------------------------------- pts / seg / json / txt
def _first_pts(root: Path) -> Path:
    return sorted((root / SYNSET / "points").glob("*.pts"))[0]


def _pts(content: bytes) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = _first_pts(root)
        path.write_bytes(content)
        return path

    return write


def _seg_mismatch(root: Path) -> Path:
    pts = _first_pts(root)
    seg = pts.parent.parent / "points_label" / f"{pts.stem}.seg"
    seg.write_text("1\n2\n")
    return seg


def _split_json(content: bytes) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / "train_test_split" / "shuffled_train_file_list.json"
        path.write_bytes(content)
        return path

    return write


def _name_map_pc15k(root: Path) -> Path:
    path = root / "synsetoffset2category.txt"
    path.write_bytes(b"chair\t03001627\nsof\xe4\t04256520\n")
    return path


PTS_CASES = [
    Case("pts_words", "pts", "shapenet_part", "expected rows of 'x y z'", _pts(b"hello world\nfoo bar baz\n")),
    Case("pts_ragged", "pts", "shapenet_part", "expected rows of 'x y z'", _pts(b"1 2 3\n4 5\n6 7 8\n")),
    Case("pts_two_columns", "pts", "shapenet_part", "2 columns", _pts(b"1 2\n3 4\n5 6\n")),
    Case("pts_empty", "pts", "shapenet_part", "empty file", _pts(b"")),
    Case("pts_nan", "pts", "shapenet_part", "non-finite", _pts(b"1 2 3\nnan 0 0\n" + b"0.5 0.5 0.5\n" * 38)),
    Case("pts_3e38", "pts", "shapenet_part", "|x| > 1e+06", _pts(b"1 2 3\n3e38 0 0\n" + b"0.5 0.5 0.5\n" * 38)),
    Case("pts_not_utf8", "pts", "shapenet_part", "expected rows of 'x y z'", _pts(b"1 2 3\n\xff\xfe\x00 1 2\n")),
    Case("seg_count_mismatch", "txt", "shapenet_part", "expected one part label per point", _seg_mismatch),
    Case("json_invalid", "json", "shapenet_part", "not valid JSON", _split_json(b"[\"shape_data/03001627/x\""),
         skippable=False),
    Case("json_not_list", "json", "shapenet_part", "expected a JSON list", _split_json(b"{\"a\": 1}"),
         skippable=False),
    Case("json_bad_entry", "json", "shapenet_part", "expected 'shape_data/<synset>/<id>'", _split_json(b"[42]"),
         skippable=False),
    Case("json_not_utf8", "json", "shapenet_part", "utf-8", _split_json(b"[\"shape_data/\xff\xfe\"]"),
         skippable=False),
    Case("txt_name_map_not_utf8", "txt", "pc15k", "line 2: not UTF-8", _name_map_pc15k, skippable=False),
]


# ---------------------------------------------------------------------------------------- off / ply / obj / glb
def _off(content: bytes) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / "chair" / "train" / "chair_0001.off"
        path.write_bytes(content)
        return path

    return write


def _off_huge(root: Path) -> Path:
    path = root / "chair" / "train" / "chair_0001.off"
    v, f = box_mesh()
    v[0, 0] = 3e38
    write_off(path, v, f)
    return path


def _ply(content: bytes | None) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / SYNSET / f"{SYNSET}0000.ply"
        if content is None:
            path.unlink()
            path.mkdir()
        else:
            path.write_bytes(content)
        return path

    return write


def _ply_values(value: float) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / SYNSET / f"{SYNSET}0000.ply"
        write_ply_points(path, _cloud(value).astype(np.float64))
        return path

    return write


def _ply_truncated(root: Path) -> Path:
    path = root / SYNSET / f"{SYNSET}0000.ply"
    data = path.read_bytes()  # binary (k = 0)
    path.write_bytes(data[: data.index(b"end_header\n") + 11 + 5])
    return path


def _mesh(name: str, content: Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root / "chair" / name
        path.write_bytes(content())
        return path

    return write


def _glb_truncated() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.glb"
        write_glb(p, *box_mesh())
        data = p.read_bytes()
    return data[: len(data) // 2]


def _glb_huge() -> bytes:
    import tempfile

    v, f = box_mesh()
    v[3, 2] = 3e38
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.glb"
        write_glb(p, v, f)
        return p.read_bytes()


MESH_CASES = [
    Case("off_no_header", "off", "modelnet40", "expected an OFF header", _off(b"1 2 3\n4 5 6\n")),
    Case("off_short", "off", "modelnet40", "header says 8 vertices and 12 faces",
         _off(b"OFF\n8 12 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")),
    Case("off_index_out_of_range", "off", "modelnet40", "triangle indices must be in [0, 3)",
         _off(b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")),
    Case("off_not_utf8", "off", "modelnet40", "not a text OFF file", _off(b"OFF\n\xff\xfe\x00\x01")),
    Case("off_3e38", "off", "modelnet40", "beyond |x| <= 1e+06", _off_huge),
    Case("ply_garbage", "ply", "latent3d", "not a PLY file", _ply(b"this is not a ply file\n")),
    Case("ply_truncated", "ply", "latent3d", "truncated PLY file", _ply_truncated),
    Case("ply_nan", "ply", "latent3d", "non-finite", _ply_values(np.nan)),
    Case("ply_3e38", "ply", "latent3d", "|x| > 1e+06", _ply_values(3e38)),
    Case("ply_directory", "ply", "latent3d", "is a directory", _ply(None)),
    Case("obj_no_faces", "obj", "meshes", "no triangles", _mesh("bad.obj", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\n")),
    Case("obj_bad_index", "obj", "meshes", "not a readable OBJ",
         _mesh("bad.obj", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")),
    Case("obj_3e38", "obj", "meshes", "beyond |x| <= 1e+06",
         _mesh("bad.obj", lambda: b"v 0 0 0\nv 3e38 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 3 4\n")),
    Case("glb_truncated", "glb", "meshes", "not a readable GLB", _mesh("bad.glb", _glb_truncated)),
    Case("glb_garbage", "glb", "meshes", "not a readable GLB", _mesh("bad.glb", lambda: b"glTF" + b"\x00" * 7)),
    Case("glb_3e38", "glb", "meshes", "beyond |x| <= 1e+06", _mesh("bad.glb", _glb_huge)),
]


# ---------------------------------------------------------------------------------------- renderings (png / txt)
def _render(file: str, content: bytes | None) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        path = root.parent / "ShapeNetRendering" / SYNSET / "good1" / "rendering" / file
        if content is None:
            path.unlink()
            path.mkdir()
        else:
            path.write_bytes(content)
        return path

    return write


def _png_truncated(root: Path) -> Path:
    path = root.parent / "ShapeNetRendering" / SYNSET / "good1" / "rendering" / "01.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


RENDER_CASES = [
    Case("png_truncated", "png", "renderings", "not a readable image", _png_truncated),
    Case("png_text", "png", "renderings", "not a readable image", _render("01.png", b"not a png at all\n")),
    Case("png_empty", "png", "renderings", "not a readable image", _render("00.png", b"")),
    Case("png_directory", "png", "renderings", "director", _render("01.png", None)),
    Case("txt_metadata_bad_line", "txt", "renderings", "line 2: expected 5 numbers",
         _render("rendering_metadata.txt", b"0 20 0 0.8 25\n30 twenty 0 0.8 25\n")),
    Case("txt_metadata_nan", "txt", "renderings", "line 1: expected 5 numbers",
         _render("rendering_metadata.txt", b"nan 20 0 0.8 25\n30 20 0 0.8 25\n")),
    Case("txt_metadata_count", "txt", "renderings", "1 metadata lines for 2 views",
         _render("rendering_metadata.txt", b"0 20 0 0.8 25\n")),
    Case("txt_metadata_not_utf8", "txt", "renderings", "line 2: not UTF-8",
         _render("rendering_metadata.txt", b"0 20 0 0.8 25\n\xff 20 0 0.8 25\n")),
    Case("txt_renderings_not_utf8", "txt", "renderings", "line 1: not UTF-8",
         _render("renderings.txt", b"0\xe9.png\n01.png\n")),
]

CASES: list[Case] = [*NPY_CASES, *PTS_CASES, *MESH_CASES, *RENDER_CASES]


def build_case(case: Case, tmp: Path) -> tuple[Path, Path]:
    """Write the valid set of ``case.layout`` under ``tmp`` and break one file: ``(root, bad path)``."""
    root = build_valid(case.layout, tmp / case.layout)
    return root, case.write(root)


def write_corpus(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """Every case of :data:`CASES`, each in its own folder under ``tmp``: ``{name: (root, bad path)}``."""
    return {case.name: build_case(case, tmp / case.name) for case in CASES}


__all__ = ["CASES", "N_POINTS", "SYNSET", "Case", "build_case", "build_valid", "write_corpus"]
