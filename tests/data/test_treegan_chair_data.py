"""`experiment=treegan_chair` on a ShapeNet-part v0 fixture: tree-GAN's data protocol, a few real steps."""

from __future__ import annotations

import math

from pc3d.cli.train import train
from pc3d.data.shapenet_part import ShapeNetPartDataset
from tests.data.layouts import write_shapenet_part
from tests.helpers import compose_train

SPEC = {"03001627": {"train": 6, "val": 3, "test": 2}, "02691156": {"train": 2, "val": 1, "test": 1}}


def test_treegan_chair_runs_a_few_steps_on_shapenet_part(tmp_path):
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0"
    write_shapenet_part(root, SPEC)
    cfg = compose_train(
        [
            "experiment=treegan_chair",
            f"data.root={root}",
            "data.n_points=64",
            "data.batch_size=4",
            "data.num_workers=0",
            "model.generator.features=[${model.latent_dim},32,16,3]",
            "model.generator.degrees=[1,2,32]",
            "model.critic.conv=[16,32]",
            "model.critic.head=[32]",
            "model.eval_samples=3",
            "model.n_fixed_samples=2",
            "model.sample_batch_size=4",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.check_val_every_n_epoch=1",
            "trainer.num_sanity_val_steps=0",
            "logger=csv",
            "callbacks.progress_bar=null",
            "test=false",
        ],
        tmp_path / "run",
    )
    assert cfg.data.layout == "auto" and cfg.data.train_split == "all" and cfg.data.train_sampling == "treegan"
    result = train(cfg)
    dm = result["datamodule"]
    assert dm.layout == "shapenet_part" and isinstance(dm.train_set, ShapeNetPartDataset)
    assert dm.synsets == ["03001627"] and len(dm.train_set) == 11 and len(dm.val_set) == 3  # all chair files
    assert dm.train_set.sampling == "treegan"
    # two tree-GAN iterations of 5 critic + 1 generator steps
    assert result["trainer"].global_step == 12
    metrics = result["metrics"]
    assert any(k.startswith("train/") for k in metrics) and "val/1nna_cd" in metrics
    assert all(math.isfinite(v) for v in metrics.values()), metrics
