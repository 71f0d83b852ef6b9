"""Turntable videos of the built-in data (issue 16): off by default (the files are the same), on: one
MP4 per shape with the expected frame count and size, readable by pc3d-reconstruct's reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pc3d.data.synthetic import ensure_generated, generate

PARAMS = {"n_per_category": 2, "n_points": 500, "n_views": 2, "image_size": 33, "seed": 0,
          "categories": "chair,mug", "progress": False, "workers": 1}


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_knob_off_writes_the_same_files(tmp_path):
    a = generate(tmp_path / "a", **PARAMS)
    b = generate(tmp_path / "b", **PARAMS, turntable_video=False, turntable_frames=5)
    c = ensure_generated(tmp_path / "c", **PARAMS, turntable_video=False)
    da, db, dc = digest(a), digest(b), digest(c)
    assert da == db == dc
    assert not any(k.endswith(".mp4") for k in da)


def test_knob_on_writes_one_video_per_shape(tmp_path):
    import imageio.v2 as iio

    from pc3d.cli.reconstruct import read_video

    root = generate(tmp_path / "tt", **PARAMS)
    before = digest(root)
    ensure_generated(root, **PARAMS, turntable_video=True, turntable_frames=6)  # added to a complete root
    after = digest(root)
    videos = sorted(k for k in after if k.endswith("turntable.mp4"))
    assert len(videos) == 4  # 2 categories x 2 shapes
    assert {k: v for k, v in after.items() if not k.endswith(".mp4")} == before  # nothing else changed
    for v in videos:
        assert (root / v).parent.joinpath("rendering").is_dir()
    with iio.get_reader(root / videos[0], format="FFMPEG") as r:
        frames = [f for f in r]
    assert len(frames) == 6
    assert frames[0].shape == (34, 34, 3)  # 33 px views, padded to even sides for H.264 4:2:0
    assert not np.array_equal(frames[0], frames[3])  # the object turns
    assert read_video(root / videos[0], size=33).shape == (6, 3, 33, 33)
    # a second call keeps the videos (no rewrite)
    mtime = (root / videos[0]).stat().st_mtime_ns
    ensure_generated(root, **PARAMS, turntable_video=True, turntable_frames=6)
    assert (root / videos[0]).stat().st_mtime_ns == mtime


def test_knob_on_while_generating_and_bad_values(tmp_path):
    root = generate(tmp_path / "g", **{**PARAMS, "image_size": 32}, turntable_video=True, turntable_frames=3)
    assert len(list(root.glob("ShapeNetRendering/*/*/turntable.mp4"))) == 4
    with pytest.raises(ValueError, match="n_views"):
        generate(tmp_path / "x", **{**PARAMS, "n_views": 0}, turntable_video=True)
    with pytest.raises(ValueError, match="turntable_frames"):
        generate(tmp_path / "y", **PARAMS, turntable_video=True, turntable_frames=0)
