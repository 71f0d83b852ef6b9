"""Property-based tests of the readers (hypothesis): finite clouds round-trip through pc3d's writers
and readers, and every proper prefix of a valid file fails with a ``ValueError`` naming the file
(or, when only trailing whitespace was cut, reads back the same data) -- never another exception
type, never a hang. OBJ has no element counts, so a prefix cut exactly at a line end is itself a
valid OBJ holding the faces before the cut; that is the one accepted exception."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from pc3d.data.base import MAX_ABS_COORD  # noqa: E402
from pc3d.data.latent3d import read_ply_points  # noqa: E402
from pc3d.data.mesh_io import read_mesh  # noqa: E402
from pc3d.data.pc15k import load_cloud  # noqa: E402
from pc3d.data.shapenet_part import load_txt_rows  # noqa: E402
from tests.data.layouts import box_mesh, write_off  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _clouds(dtype):
    # finite coordinates within the readers' documented bound |x| <= MAX_ABS_COORD
    elements = st.floats(-MAX_ABS_COORD, MAX_ABS_COORD, allow_nan=False, allow_infinity=False,
                         width=32 if dtype == np.float32 else 64)
    return arrays(dtype, st.tuples(st.integers(1, 64), st.just(3)), elements=elements)


@FAST
@given(_clouds(np.float32))
def test_npy_round_trip(cloud):
    from pc3d.io import atomic_save_npy

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.npy"
        atomic_save_npy(path, cloud)
        for mmap in (True, False):
            back = load_cloud(path, mmap=mmap)
            assert back.dtype == cloud.dtype and np.array_equal(back, cloud)


@FAST
@given(_clouds(np.float64))
def test_pts_round_trip(cloud):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pts"
        np.savetxt(path, cloud, fmt="%.17g")  # ShapeNet-part's text rows, full precision
        back = load_txt_rows(path, 3, "'x y z'")
        assert np.array_equal(back, cloud)


@FAST
@given(_clouds(np.float64))
def test_ply_round_trip(cloud):
    from pc3d.cli.generate import save_ply

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.ply"
        save_ply(path, cloud)
        assert np.array_equal(read_ply_points(path), cloud)


# ---------------------------------------------------------------------------------------- prefixes
def _valid_bytes(fmt: str, scale: np.ndarray) -> bytes:
    v, f = box_mesh(tuple(scale))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x.{fmt}"
        if fmt == "npy":
            buf = io.BytesIO()
            np.save(buf, (np.random.default_rng(0).normal(size=(50, 3)) * scale).astype(np.float32))
            return buf.getvalue()
        if fmt == "ply":
            from pc3d.cli.generate import save_ply

            save_ply(path, np.random.default_rng(0).normal(size=(50, 3)) * scale)
        elif fmt == "off":
            write_off(path, v, f)  # box: single-digit indices, so no cut leaves a different valid index
        else:
            path.write_text(
                "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v)
                + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f)
            )
        return path.read_bytes()


def _read(fmt: str, path: Path):
    if fmt == "npy":
        arr = load_cloud(path, mmap=False)
        return (np.asarray(arr),)
    if fmt == "ply":
        return (read_ply_points(path),)
    return read_mesh(path)


@pytest.mark.parametrize("fmt", ["npy", "ply", "off", "obj"])
def test_every_proper_prefix_fails_cleanly(fmt):
    @FAST
    @given(scale=arrays(np.float64, 3, elements=st.floats(0.1, 100.0)), data=st.data())
    def check(scale, data):
        full = _valid_bytes(fmt, scale)
        cut = data.draw(st.integers(0, len(full) - 1), label="prefix length")
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"x.{fmt}"
            path.write_bytes(full)
            whole = _read(fmt, path)
            path.write_bytes(full[:cut])
            try:
                got = _read(fmt, path)
            except ValueError as exc:
                assert str(path) in str(exc), str(exc)
                return
            assert fmt in ("off", "obj"), f"prefix of {cut}/{len(full)} bytes read"
            if fmt == "obj" and full[cut:].strip():
                # OBJ has no counts: a cut at a line end is itself a valid OBJ with the faces before it
                assert full[cut:cut + 1] == b"\n", f"prefix of {cut}/{len(full)} bytes read"
                assert len(got[1]) == full[:cut].count(b"\nf ") + full[:cut].startswith(b"f ")
                return
            # only trailing whitespace was cut: the same data must come back
            assert not full[cut:].strip(), f"prefix of {cut}/{len(full)} bytes read"
            assert all(np.array_equal(a, b) for a, b in zip(got, whole, strict=True))

    check()
