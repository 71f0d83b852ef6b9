"""Issue 15, item 10: media grid captions and row labels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from pc3d.viz import render as R
from pc3d.viz.callbacks import default_media


class _Gan:
    def media_clouds(self, batch, outputs=None):
        return {"real": batch["points"], "sample": torch.rand(3, 32, 3)}


def test_gan_samples_are_not_captioned_with_the_real_shapes_ids():
    batch = {"points": torch.rand(3, 32, 3), "model_id": ["chair_a", "chair_b", "chair_c"]}
    media, caps = default_media(_Gan(), batch, None, n=3)
    assert caps["real"] == ["chair_a", "chair_b", "chair_c"]
    assert caps["sample"] == ["sample #0", "sample #1", "sample #2"]


def _ink_columns(img: np.ndarray) -> int:
    return int((img.min(axis=(0, 2)) < 200).sum())


def test_long_row_label_is_drawn_whole():
    clouds = torch.rand(2, 64, 3)
    rows = {"input": clouds, "reconstruction": clouds}
    g = R.render_grid(rows, image_size=64, backend="numpy")
    assert g.shape == (2 * 64, 64 // 2 + 2 * 64, 3)  # the label column keeps its width
    label = g[64:128, : 64 // 2]
    # the drawn label is as tall as the whole word at the font used, not a clipped "reconstruc…"
    fs = max(10, 64 // 12)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    clipped = R._clip_text(draw, "reconstruction", R._font(fs), 64 // 2 - 4)
    assert clipped.endswith("…")
    rows_with_ink = np.nonzero(label.min(axis=(1, 2)) < 200)[0]
    assert rows_with_ink.size and rows_with_ink.max() - rows_with_ink.min() > draw.textlength(clipped, font=R._font(fs))
    # a short label is still drawn horizontally
    assert _ink_columns(g[:64, : 64 // 2]) > 10
