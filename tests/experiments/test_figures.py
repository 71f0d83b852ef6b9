"""experiments/img2cloud_figure.py and experiments/ae_recon_figure.py write PNG grids of the expected
pixel size from tiny inputs (numpy renderer, 40 px tiles), with the numbers the other tools report."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

S = 40  # tile size
CAP = max(10, S // 12) + 6  # caption strip of render_grid
LABEL = S // 2  # row-label column of render_grid


def _png_shape(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return im.height, im.width


def test_ae_recon_figure(tmp_path):
    from experiments import ae_recon_figure as fig

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(8, 64, 3)).astype(np.float32)
    for v in ("fc", "tree"):
        (tmp_path / v).mkdir()
        np.save(tmp_path / v / "input.npy", inputs)
        np.save(tmp_path / v / "recon.npy", (inputs + rng.normal(scale=0.1, size=inputs.shape)).astype(np.float32))
    out = tmp_path / "docs" / "recons.png"
    argv = [str(tmp_path), "--variants", "fc,tree", "--labels", "FC,tree (fixed)", "--out", str(out),
            "--size", str(S), "--backend", "numpy"]
    assert fig.main(argv) == out
    assert _png_shape(out) == (3 * (S + CAP), LABEL + 8 * S)
    assert fig.builtin_names() == ["airplane", "chair", "table", "lamp", "sofa", "car", "mug", "bench"]
    assert not [p for p in out.parent.iterdir() if p != out]  # written atomically: no temporary left
    # the variants must have scored the same shapes; labels one per variant
    np.save(tmp_path / "tree" / "input.npy", inputs[::-1])
    with pytest.raises(SystemExit, match="not scored on the same test shapes"):
        fig.main(argv)
    with pytest.raises(SystemExit, match="1 labels for 2 variants"):
        fig.main([*argv[:3], "--labels", "FC", *argv[5:]])


def test_img2cloud_figure(img_ckpt, tmp_path):
    import torch

    from experiments import img2cloud_figure as fig
    from pc3d.cli.eval import _datamodule, _load_ckpt_model
    from pc3d.models.image2cloud import pixel_features, retrieval_baseline
    from pc3d.ops import chamfer_distance

    out = tmp_path / "img2cloud.png"
    assert fig.main(["--ckpt", str(img_ckpt), "--out", str(out), "--size", str(S), "--backend", "numpy",
                     "--device", "cpu"]) == out
    assert _png_shape(out) == (3 * (S + CAP), LABEL + 8 * S)  # input, prediction, truth; 8 categories

    res = fig.figure(img_ckpt, size=S, retrieval=True, device="cpu", backend="numpy")
    assert res["image"].shape == (4 * (S + CAP), LABEL + 8 * S, 3)
    assert res["names"] == ["airplane", "chair", "table", "lamp", "sofa", "car", "mug", "bench"]
    # the tiny data has one test shape a category: the figure's CDs are pc3d-eval's / the baseline's per category
    model, ckpt_cfg = _load_ckpt_model(str(img_ckpt), "cpu")
    dm = _datamodule({}, ckpt_cfg)
    dm.setup("test")
    table = retrieval_baseline(dm.train_set, dm.probe_dataloader("test"), pixel_features, metrics=("cd",),
                               names=list(dm.names))
    assert res["cd_retrieval"] == pytest.approx([table[n]["cd"] for n in res["names"]], rel=1e-5)
    batch = next(iter(dm.probe_dataloader("test", batch_size=64)))
    with torch.no_grad():
        cd = chamfer_distance(model(batch["image"]), batch["points"], reduction="none")
    by_cat = {dm.names[c]: float(v) for c, v in zip(batch["category"].tolist(), cd)}
    assert res["cd"] == pytest.approx([by_cat[n] for n in res["names"]], rel=1e-5)
