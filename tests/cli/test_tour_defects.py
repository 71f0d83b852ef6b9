"""Defects found by re-walking the README tour from a fresh clone (issue 15, acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pc3d.cli.train import train
from tests.helpers import compose_train


@pytest.mark.parametrize("overrides,monitor,mode", [
    ([], "val/cd", "min"),
    (["model=treegan"], "val/1nna_cd", "min"),
    (["model=lgan"], "val/mmd_cd", "min"),
    (["model=pointnet_cls"], "val/acc", "max"),
    (["model=image2cloud", "data=renderings"], "val/cd", "min"),
    (["experiment=treegan_synthetic"], "val/mmd_cd", "min"),  # an experiment's own choice wins
    (["model=treegan", "monitor=val/mmd_cd"], "val/mmd_cd", "min"),  # and the command line's
])
def test_the_best_checkpoint_follows_the_chosen_model(overrides, monitor, mode):
    """D1: `pc3d-train model=treegan ...` kept the autoencoder's monitor val/cd, which a GAN never logs, and the
    fit crashed in ModelCheckpoint after the first validation."""
    cfg = compose_train(overrides, Path("/tmp/unused"))
    assert (cfg.monitor, cfg.monitor_mode) == (monitor, mode)
    assert cfg.callbacks.model_checkpoint.monitor == monitor and cfg.callbacks.model_checkpoint.mode == mode


def test_model_treegan_alone_fits_and_keeps_a_best_checkpoint(tiny_builtin, tmp_path):
    cfg = compose_train(["model=treegan", "trainer.accelerator=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                         "trainer.check_val_every_n_epoch=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null", "data.n_points=128",
                         "model.generator.features=[96,32,3]", "model.generator.degrees=[8,16]",
                         "model.eval_samples=8", "model.n_fixed_samples=2"], tmp_path, tiny_builtin)
    res = train(cfg)
    assert res["best_ckpt"] and Path(res["best_ckpt"]).is_file() and "val/1nna_cd" in res["metrics"]
