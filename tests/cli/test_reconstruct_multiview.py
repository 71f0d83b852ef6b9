"""pc3d-reconstruct with several views of one object: views=[...], views=<folder>, video=<file> -> ONE cloud."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pc3d.cli.reconstruct import read_image, read_video, reconstruct
from tests.cli.test_reconstruct import compose_reconstruct

ROOT = Path(__file__).resolve().parents[2]


def builtin_pngs(root: Path, n: int) -> list[Path]:
    return sorted((root / "ShapeNetRendering").glob("*/*/rendering/00.png"))[:n]


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 8) -> None:
    import imageio.v2 as iio

    with iio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                        macro_block_size=1, ffmpeg_log_level="error") as w:
        for fr in frames:
            w.append_data(fr)


def rgb_frames(pngs: list[Path]) -> list[np.ndarray]:
    out = []
    for p in pngs:
        with Image.open(p) as im:
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            arr = np.asarray(Image.alpha_composite(bg, im.convert("RGBA")).convert("RGB"))
        h, w = arr.shape[:2]
        out.append(np.ascontiguousarray(arr[: h - h % 2, : w - w % 2]))  # H.264 4:2:0: even sides
    return out


def test_several_images_give_one_cloud(img_ckpt, tiny_builtin, tmp_path):
    from pc3d.models import load_model

    pngs = builtin_pngs(tiny_builtin, 3)
    out = tmp_path / "one.ply"
    views = "[" + ",".join(str(p) for p in pngs) + "]"
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views={views}", f"out={out}"]))
    assert res["written"] == [out] and res["n_views"] == 3 and len(res["clouds"]) == 1
    import open3d as o3d

    back = np.asarray(o3d.io.read_point_cloud(str(out)).points)
    model = load_model(img_ckpt)  # a single-view checkpoint: fusion=mean
    stack = torch.stack([read_image(p, size=32) for p in pngs])
    expect = model.predict_cloud_from_views(stack).numpy()
    assert back.shape == expect.shape == (64, 3)
    np.testing.assert_allclose(back, expect, atol=1e-5)
    # one view through views= is the image= cloud
    one = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views=[{pngs[0]}]", f"out={tmp_path / 'a.npy'}"]))
    ref = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={pngs[0]}", f"out={tmp_path / 'b.npy'}"]))
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), atol=1e-6)
    assert len(one["clouds"]) == len(ref["clouds"]) == 1


def test_folder_of_frames_gives_one_cloud(img_ckpt, tiny_builtin, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, p in enumerate(builtin_pngs(tiny_builtin, 6)):
        (frames / f"frame_{i:03d}.png").write_bytes(p.read_bytes())
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views={frames}", f"out={tmp_path / 'out'}",
                                           "npy=true"]))
    assert res["n_views"] == 6
    assert res["written"] == [tmp_path / "out" / "frames.ply", tmp_path / "out" / "frames.npy"]
    assert np.load(tmp_path / "out" / "frames.npy").shape == (64, 3)
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views={frames}", "frame_stride=2",
                                           f"out={tmp_path / 's.ply'}"]))
    assert res["n_views"] == 3
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views={frames}", "max_frames=4",
                                           f"out={tmp_path / 'm.ply'}"]))
    assert res["n_views"] == 4


def test_video_gives_one_cloud(img_ckpt, tiny_builtin, tmp_path):
    frames = rgb_frames(builtin_pngs(tiny_builtin, 5)) * 2  # 10 frames of 32 x 32
    video = tmp_path / "turn.mp4"
    write_mp4(video, frames)
    got = read_video(video, size=32)
    assert got.shape == (10, 3, 32, 32) and got.dtype == torch.float32
    assert 0.0 <= float(got.min()) and float(got.max()) <= 1.0
    # lossy codec: close to the frames it was made of
    ref = torch.from_numpy(frames[0].astype(np.float32) / 255.0).permute(2, 0, 1)
    assert float((got[0] - ref).abs().mean()) < 0.05
    assert read_video(video, frame_stride=3).shape[0] == 4  # frames 0, 3, 6, 9
    assert read_video(video, max_frames=4).shape[0] == 4
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"video={video}", "max_frames=8",
                                           f"out={tmp_path / 'v'}"]))
    assert res["n_views"] == 8 and res["written"] == [tmp_path / "v" / "turn.ply"]
    cloud = res["clouds"][str(video)]
    assert cloud.shape == (64, 3) and np.isfinite(cloud).all()
    # a video passed as views= is read as a video too
    res = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views={video}", "max_frames=null",
                                           f"out={tmp_path / 'w.ply'}"]))
    assert res["n_views"] == 10


def test_clear_errors(img_ckpt, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match=r"broken\.mp4: not a readable video"):
        read_video(bad)
    with pytest.raises(ValueError, match=r"broken\.mp4: not a readable video"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"video={bad}", f"out={tmp_path / 'x.ply'}"]))
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"video={tmp_path / 'missing.mp4'}",
                                         f"out={tmp_path / 'x.ply'}"]))
    with pytest.raises(ValueError, match="exactly one of image="):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}"]))
    with pytest.raises(ValueError, match="exactly one of image="):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={bad}", f"video={bad}"]))
    with pytest.raises(FileNotFoundError, match="no such image file"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"views=[{tmp_path / 'nope.png'}]",
                                         f"out={tmp_path / 'x.ply'}"]))
    with pytest.raises(ValueError, match="frame_stride"):
        read_video(bad, frame_stride=0)


def test_help_names_the_new_keys():
    out = subprocess.run([sys.executable, "-m", "pc3d.cli.reconstruct", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for key in ("views=", "video=", "max_frames", "frame_stride"):
        assert key in out.stdout
