"""Issue 14: every malformed file gives one clear error naming the file and the problem, or is
skipped and listed (``bad_files``) with ``skip_bad``. The corpus is written by
:mod:`tests.data.malformed` into a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.malformed import CASES, N_POINTS, SYNSET, Case, build_case

_LIGHT = {
    "modelnet40": {"surface_points": 64, "split": "all"},
    "meshes": {"surface_points": 64, "cache_dir": False, "split": "all"},
    "latent3d": {"split": "all"},
    "shapenet_part": {"split": "train"},
}


def _dataset(case: Case, root, skip_bad: bool):
    from pc3d.data.layouts import layout_class

    layout = "pc15k" if case.layout == "renderings" else case.layout
    opts = {"split": "train", **_LIGHT.get(layout, {})}
    n_points = 32 if layout in ("modelnet40", "meshes") else N_POINTS  # surface_points=64 rows
    return layout_class(layout)(root, n_points=n_points, skip_bad=skip_bad, in_memory=not skip_bad, **opts)


def _read_everything(case: Case, root, skip_bad: bool) -> list[str]:
    """Build the reader the way training does and read every item; returns its bad_files."""
    ds = _dataset(case, root, skip_bad)
    if case.layout == "renderings":
        from pc3d.data.renderings import ImageCloudDataset

        ds = ImageCloudDataset(ds, root.parent / "ShapeNetRendering", view=0)
        for i in range(len(ds)):
            for v in range(ds.n_views[i]):
                ds.image(i, v)
    for i in range(len(ds)):
        ds[i]
    return list(ds.bad_files)


def _check_message(msg: str, case: Case, bad) -> None:
    assert str(bad) in msg, f"error does not name {bad}: {msg}"
    assert case.problem.lower() in msg.lower(), f"error does not say {case.problem!r}: {msg}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_file_is_named(case: Case, tmp_path):
    root, bad = build_case(case, tmp_path)
    with pytest.raises(ValueError) as info:
        _read_everything(case, root, skip_bad=False)
    _check_message(str(info.value), case, bad)


@pytest.mark.parametrize("case", [c for c in CASES if c.skippable], ids=[c.name for c in CASES if c.skippable])
def test_malformed_file_is_skipped_and_listed(case: Case, tmp_path):
    from pc3d.data.inspect import inspect_root

    root, bad = build_case(case, tmp_path)
    listed = _read_everything(case, root, skip_bad=True)
    assert len(listed) == 1, listed
    _check_message(listed[0], case, bad)
    assert listed[0].startswith(str(bad)), listed[0]
    # pc3d-data inspect lists it too (the renderings through the PC15k root's sibling folder)
    report = inspect_root(root, n_points=N_POINTS)
    assert [line for line in report["bad_files"] if str(bad) in line], report


def test_corpus_covers_every_format():
    fmts = {c.fmt for c in CASES}
    assert {"npy", "pts", "off", "ply", "obj", "glb", "png", "txt", "json"} <= fmts
    assert len(CASES) >= 30


def test_inspect_checks_against_n_points_and_reports_min_rows(tmp_path):
    from pc3d.cli.data import main
    from pc3d.data.inspect import inspect_root

    for split in ("train", "val", "test"):
        d = tmp_path / "pc" / SYNSET / split
        d.mkdir(parents=True)
        np.save(d / "a.npy", np.zeros((3000, 3), np.float32) + np.arange(3)[None])
    np.save(d / "short.npy", np.ones((100, 3), np.float32))
    report = inspect_root(tmp_path / "pc")
    assert report["n_points"] == 2048 and report["min_rows"] == 3000
    assert len(report["bad_files"]) == 1 and "short.npy" in report["bad_files"][0]
    assert "n_points=2048" in report["bad_files"][0]
    assert inspect_root(tmp_path / "pc", n_points=100)["bad_files"] == []
    assert inspect_root(tmp_path / "pc", n_points=100)["min_rows"] == 100
    assert main(["inspect", str(tmp_path / "pc")]) == 1
    assert main(["inspect", str(tmp_path / "pc"), "--n-points", "64"]) == 0


def test_inspect_rendering_root(tmp_path):
    from pc3d.data.inspect import inspect_root

    case = next(c for c in CASES if c.name == "png_truncated")
    root, bad = build_case(case, tmp_path)
    report = inspect_root(root.parent / "ShapeNetRendering")
    assert report["layout"] == "renderings"
    assert report["renderings"]["counts"] == {SYNSET: 1}
    assert len(report["bad_files"]) == 1 and report["bad_files"][0].startswith(str(bad))


def test_huge_npy_header_never_allocates(tmp_path):
    from pc3d.data.pc15k import check_npy_header, load_cloud

    case = next(c for c in CASES if c.name == "npy_huge_header")
    _, bad = build_case(case, tmp_path)
    for mmap in (True, False):
        with pytest.raises(ValueError, match="12000000000000 bytes"):
            load_cloud(bad, mmap=mmap)
    with pytest.raises(ValueError, match=str(bad).replace("\\", "\\\\")):
        check_npy_header(bad)


@pytest.mark.parametrize("kind", ["identical", "coplanar", "collinear"])
def test_export_degenerate_points_clear_error(kind, tmp_path):
    from pc3d.cli.export import main
    from pc3d.export import cloud_to_mesh

    rng = np.random.default_rng(0)
    pts = {
        "identical": np.ones((50, 3)),
        "coplanar": np.c_[rng.random((50, 2)), np.full(50, 0.3)] @ np.linalg.qr(rng.normal(size=(3, 3)))[0],
        "collinear": np.c_[np.linspace(0, 1, 50), np.zeros((50, 2))],
    }[kind]
    for method in ("alpha", "poisson", "ball-pivoting"):
        with pytest.raises(ValueError, match="distinct|coplanar|collinear"):
            cloud_to_mesh(pts, method)
    src = tmp_path / "flat.npy"
    np.save(src, pts.astype(np.float32))
    assert main([str(src), str(tmp_path / "out.ply"), "--method", "alpha"]) == 2
