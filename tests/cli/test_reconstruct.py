"""pc3d-reconstruct: round trip on a built-in image, folders, grayscale, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pc3d.cli.reconstruct import read_image, reconstruct

ROOT = Path(__file__).resolve().parents[2]


def compose_reconstruct(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("reconstruct", overrides=overrides)


def builtin_png(root: Path, k: int = 0) -> Path:
    return sorted((root / "ShapeNetRendering").glob("*/*/rendering/00.png"))[k]


def test_round_trip_on_a_builtin_image(img_ckpt, tiny_builtin, tmp_path):
    import open3d as o3d

    from pc3d.data.renderings import load_view
    from pc3d.models import load_model

    png = builtin_png(tiny_builtin)
    out = tmp_path / "cloud.ply"
    result = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={png}", f"out={out}"]))
    assert result["written"] == [out]
    back = np.asarray(o3d.io.read_point_cloud(str(out)).points)
    # the same cloud as the model on the view the data module feeds it (composited onto white)
    model = load_model(img_ckpt)
    with torch.no_grad():
        expect = model(load_view(png, (1.0, 1.0, 1.0), 32)[None])[0].numpy()
    assert back.shape == (64, 3)
    np.testing.assert_allclose(back, expect, atol=1e-5)
    # one image into a folder: <out>/<stem>.ply
    reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={png}", f"out={tmp_path / 'folder'}"]))
    assert (tmp_path / "folder" / "00.ply").is_file()
    npy = tmp_path / "cloud.npy"
    reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={png}", f"out={npy}"]))
    np.testing.assert_allclose(np.load(npy), expect, atol=1e-6)


def test_folder_with_grayscale_and_non_square_images(img_ckpt, tiny_builtin, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(builtin_png(tiny_builtin, 0), folder / "a.png")
    shutil.copy(builtin_png(tiny_builtin, 1), folder / "b.png")
    Image.open(folder / "a.png").convert("L").save(folder / "gray.png")
    Image.new("RGB", (40, 30), (10, 200, 30)).save(folder / "wide.jpg")
    (folder / "notes.txt").write_text("not an image, ignored")
    out = tmp_path / "clouds"
    result = reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={folder}", f"out={out}", "npy=true"]))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{e}" for s in ("a", "b", "gray", "wide")
                                                           for e in ("ply", "npy"))
    clouds = result["clouds"]
    assert not np.allclose(clouds[str(folder / "a.png")], clouds[str(folder / "b.png")])
    # grayscale is replicated to 3 equal channels
    g = read_image(folder / "gray.png", size=32)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    # non-square: padded with the background (default) or centre-cropped
    padded = read_image(folder / "wide.jpg", square="pad")
    assert padded.shape == (3, 40, 40) and torch.all(padded[:, :5] == 1.0)
    assert read_image(folder / "wide.jpg", square="crop").shape == (3, 30, 30)


def test_clear_errors(img_ckpt, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        read_image(bad)
    deep = tmp_path / "depth16.png"
    Image.fromarray(np.full((40, 40), 1000, np.uint16)).save(deep)
    with pytest.raises(ValueError, match="depth16.png: unsupported image mode 'I;16'"):
        read_image(deep)
    small = tmp_path / "small.png"
    Image.new("RGB", (8, 8)).save(small)
    with pytest.raises(ValueError, match="small.png: image of 8x8 px is too small"):
        read_image(small)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (40, 20)).save(wide)
    with pytest.raises(ValueError, match="not square"):
        read_image(wide, square="error")
    with pytest.raises(FileNotFoundError, match="no such"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={tmp_path / 'nope.png'}",
                                         f"out={tmp_path}/x.ply"]))
    with pytest.raises(ValueError, match="needs an output folder, not a .ply file"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={tmp_path}", f"out={tmp_path}/x.ply"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        reconstruct(compose_reconstruct([f"ckpt_path={img_ckpt}", f"image={empty}", f"out={tmp_path}/o"]))


def test_pc3d_eval_scores_an_image2cloud_checkpoint(img_ckpt, tmp_path):
    from hydra import compose, initialize_config_dir

    from pc3d.cli._common import CONFIG_DIR
    from pc3d.cli.eval import evaluate
    from pc3d.metrics.reconstruction import reconstruction_metrics
    from pc3d.models.io import load_model

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt_path={img_ckpt}", "metrics.reconstruction=[cd,emd,fscore]",
                                         "metrics.tau=0.05", f"paths.output_dir={tmp_path}", "device=cpu"])
    result = evaluate(cfg)
    assert result["task"] == "reconstruction" and result["split"] == "test"
    per_cat = result["per_category"]
    assert {"cd", "emd", "fscore"} <= set(per_cat["all"])
    assert per_cat["all"]["count"] == sum(r["count"] for k, r in per_cat.items() if k != "all") > 0
    # the same numbers as the model on the test split's fixed views
    from pc3d.cli.eval import _datamodule

    ckpt = torch.load(img_ckpt, map_location="cpu", weights_only=True)
    model = load_model(img_ckpt)
    dm = _datamodule(cfg, ckpt["pc3d_build"])
    cds = []
    with torch.no_grad():
        for batch in dm.probe_dataloader("test"):
            cds.append(reconstruction_metrics(model(batch["image"]), batch["points"], metrics=["cd"])["cd"])
    assert result["metrics"]["cd"] == pytest.approx(float(torch.cat(cds).mean()), rel=1e-6)


@pytest.mark.slow
def test_console_module(img_ckpt, tiny_builtin, tmp_path):
    out = tmp_path / "one.ply"
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.reconstruct", f"ckpt_path={img_ckpt}",
                           f"image={builtin_png(tiny_builtin)}", f"out={out}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 image(s) -> 1 file(s) of 64 points" in proc.stdout
    assert out.is_file()
