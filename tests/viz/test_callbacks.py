"""LogMedia: PNG grids in the run dir, and W&B media in an offline run."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from pc3d.viz.callbacks import LogMedia
from tests.helpers import compose_train


def _short(tmp_path, builtin, *extra):
    return compose_train(["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                          "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
                          "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.latent_dim=16",
                          "data.n_points=256", *extra], tmp_path, builtin)


def test_autoencoder_media_in_offline_wandb_run(tiny_builtin, tmp_path, monkeypatch):
    from pc3d.cli.train import train

    monkeypatch.setenv("PC3D_RENDER_BACKEND", "numpy")  # the Open3D backend is covered in test_render
    cfg = _short(tmp_path, tiny_builtin, "logger=wandb", "callbacks.media.n=3", "callbacks.media.image_size=64",
                 "callbacks.media.max_points=100", "callbacks.media.strict=true")
    out = Path(train(cfg)["output_dir"])
    (grid,) = sorted((out / "media").glob("epoch_*.png"))  # PNG for CSV users too
    with Image.open(grid) as im:
        assert im.size[0] == 64 // 2 + 3 * 64  # row labels + 3 columns
    (run,) = (out / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    objs = sorted((media / "object3D").rglob("*.pts.json"))
    assert len(objs) == 6  # 3 inputs + 3 reconstructions
    pts = np.asarray(json.loads(objs[0].read_text()))
    assert pts.shape == (100, 6) and (pts[:, 3:] <= 255).all()  # subsampled, xyz + RGB
    pngs = list((media / "images").rglob("grid_*.png"))
    assert len(pngs) == 1
    with Image.open(pngs[0]) as im, Image.open(grid) as ref:
        assert im.size == ref.size


def test_media_config_defaults_and_opt_in(tmp_path):
    from hydra.utils import instantiate

    assert compose_train([], tmp_path).callbacks.media.only_with_wandb is True  # default: W&B runs only
    cfg = compose_train(["callbacks=media"], tmp_path)  # the default callbacks + media for CSV runs too
    assert "model_checkpoint" in cfg.callbacks and cfg.callbacks.media.only_with_wandb is False
    cb = instantiate(cfg.callbacks.media)
    assert isinstance(cb, LogMedia) and cb.dirpath == tmp_path / "media"


class _Sampler(L.LightningModule):
    """A GAN-like model: no validation loop, a ``sample`` method (points ordered by branch)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(2, 1), batch_size=1)

    def sample(self, n, *, seed=None, batch_size=100):
        g = torch.Generator().manual_seed(seed or 0)
        return torch.rand(n, 64, 3, generator=g)


class _ImageToCloud(_Sampler):
    def media_clouds(self, batch, outputs):
        return {"image": torch.rand(2, 3, 24, 24), "prediction": torch.rand(2, 64, 3),
                "ground truth": torch.rand(2, 64, 3)}


@pytest.mark.parametrize("model_cls,rows", [(_Sampler, 1), (_ImageToCloud, 3)])
def test_models_choose_what_to_show(tmp_path, model_cls, rows):
    cb = LogMedia(n=2, image_size=32, dirpath=tmp_path, colors="branch", n_branches=4, backend="numpy", strict=True,
                  every_n_epochs=2)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[cb], default_root_dir=tmp_path)
    trainer.fit(model_cls())
    assert [p.name for p in cb.written] == ["epoch_0001.png", "epoch_0002.png"]  # every 2nd epoch and the last
    with Image.open(cb.written[0]) as im:
        grid = np.asarray(im)
    assert grid.shape[0] == rows * (32 + 16) or grid.shape[0] == rows * 32
    assert (grid < 250).any()


def test_only_with_wandb_is_a_no_op_without_wandb(tmp_path):
    cb = LogMedia(dirpath=tmp_path, backend="numpy", strict=True, only_with_wandb=True)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[cb])
    trainer.fit(_Sampler())
    assert cb.written == [] and not list(tmp_path.iterdir())


def test_errors_warn_once_unless_strict(tmp_path):
    class Broken(_Sampler):
        def sample(self, n, *, seed=None, batch_size=100):
            return torch.zeros(n, 64, 2)  # wrong shape

    cb = LogMedia(dirpath=tmp_path, backend="numpy")
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[cb])
    with pytest.warns(UserWarning, match=r"LogMedia: could not render.*\(N, 3\)"):
        trainer.fit(Broken())
    cb = LogMedia(dirpath=tmp_path, backend="numpy", strict=True)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[cb])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        trainer.fit(Broken())
