"""SaveReconstructions spreads its clouds over the categories of the validation loader (issue 15, 10c)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from pc3d.callbacks import SaveReconstructions


def _run(cb: SaveReconstructions, batches: list[dict]) -> None:
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=3, global_rank=0)
    cb.on_validation_epoch_start(trainer, None)
    for k, batch in enumerate(batches):
        cb.on_validation_batch_end(trainer, None, {"recon": batch["points"] * 2}, batch, k)
    cb.on_validation_epoch_end(trainer, None)


def _batch(cats: list[int], start: int) -> dict:
    n = len(cats)
    pts = torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1).expand(n, 5, 3).clone()
    return {"points": pts, "category": torch.tensor(cats), "model_id": [f"m{start + i}" for i in range(n)]}


def test_one_cloud_per_category_in_loader_order(tmp_path):
    # a sorted validation loader: 4 airplanes, then 4 chairs, then 4 tables
    batches = [_batch([0, 0, 0, 0], 0), _batch([1, 1, 1, 1], 4), _batch([2, 2, 2, 2], 8)]
    _run(SaveReconstructions(tmp_path, n=3), batches)
    names = sorted(p.name for p in (tmp_path / "epoch_0003").glob("*_input.npy"))
    assert names == ["00_m0_input.npy", "01_m4_input.npy", "02_m8_input.npy"]
    recon = np.load(tmp_path / "epoch_0003" / "01_m4_recon.npy")
    assert recon.shape == (5, 3) and np.all(recon == 8.0)  # the chair's reconstruction (2 x its points)


def test_fewer_categories_than_n_fills_with_the_next_clouds(tmp_path):
    _run(SaveReconstructions(tmp_path, n=4), [_batch([0, 0, 1], 0), _batch([1, 1], 3)])
    names = sorted(p.name for p in (tmp_path / "epoch_0003").glob("*_input.npy"))
    assert names == ["00_m0_input.npy", "01_m2_input.npy", "02_m1_input.npy", "03_m3_input.npy"]
