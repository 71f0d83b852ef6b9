"""pc3d-generate: clouds from a trained tree-GAN checkpoint, .npy and .ply, reproducible."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.cli._common import CONFIG_DIR, plain_config
from pc3d.cli.generate import generate
from tests.helpers import compose_train

TINY_GAN = ["experiment=treegan_synthetic", "data.categories=all", "data.n_points=64", "model.latent_dim=8",
            "model.generator.features=[8,16,8,3]", "model.generator.degrees=[2,4,8]", "model.generator.support=2",
            "model.critic.conv=[8,16]", "model.critic.head=[16,8]", "model.eval_samples=4",
            "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1", "trainer.num_sanity_val_steps=0",
            "trainer.max_time=null", "callbacks.progress_bar=null", "callbacks.model_summary=null", "test=false"]


@pytest.fixture(scope="module")
def gan_run(tiny_builtin, tmp_path_factory):
    from pc3d.cli.train import train

    out = tmp_path_factory.mktemp("treegan_run")
    return train(compose_train(TINY_GAN, out, tiny_builtin))


def gen_cfg(ckpt, out, **kw):
    from hydra import compose, initialize_config_dir

    overrides = [f"ckpt_path={ckpt}", f"out={out}", *(f"{k}={v}" for k, v in kw.items())]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("generate", overrides=overrides)


def test_training_run_saved_samples_and_a_loadable_checkpoint(gan_run):
    out = Path(gan_run["output_dir"])
    assert sorted((out / "samples").glob("epoch_0000-step_*.npy"))
    ckpt = torch.load(gan_run["last_ckpt"], weights_only=True)
    assert ckpt["pc3d_build"]["model"]["name"] == "treegan" and "pc3d_config" not in ckpt  # data, not code
    assert gan_run["best_ckpt"]  # monitored val/1nna_cd


def test_generate_writes_npy_and_ply_reproducibly(gan_run, tmp_path):
    import open3d as o3d

    ckpt = gan_run["last_ckpt"]
    a = generate(gen_cfg(ckpt, tmp_path / "a", n_samples=5, seed=7, batch_size=2, npy_per_cloud=True))
    clouds = np.load(tmp_path / "a" / "samples.npy")
    assert clouds.shape == (5, 64, 3) and clouds.dtype == np.float32
    assert np.array_equal(clouds, a["samples"])
    plys = sorted((tmp_path / "a" / "ply").glob("*.ply"))
    assert [p.name for p in plys] == [f"sample_{i:04d}.ply" for i in range(5)]
    back = np.asarray(o3d.io.read_point_cloud(str(plys[3])).points)
    assert np.allclose(back, clouds[3], atol=1e-6)
    assert np.array_equal(np.load(tmp_path / "a" / "npy" / "sample_0002.npy"), clouds[2])
    assert not list((tmp_path / "a").rglob("*.tmp*"))  # no temp files left behind

    # same seed, other batch size: same clouds; other seed: different clouds
    b = generate(gen_cfg(ckpt, tmp_path / "b", n_samples=5, seed=7, batch_size=5, ply=False))
    assert np.allclose(b["samples"], clouds, atol=1e-6) and b["ply"] == []
    c = generate(gen_cfg(ckpt, tmp_path / "c", n_samples=5, seed=8, ply=False))
    assert not np.allclose(c["samples"], clouds)
    # the run's model with the checkpoint's weights samples what pc3d-generate wrote
    import copy

    model = copy.deepcopy(gan_run["model"])
    model.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    assert np.allclose(model.sample(5, seed=7).numpy(), clouds, atol=1e-6)


def test_generate_rejects_non_generators_and_bad_input(tiny_builtin, tmp_path):
    from hydra.utils import instantiate

    cfg = compose_train(["model.latent_dim=8", "data.n_points=32"], tmp_path, tiny_builtin)
    ae = instantiate(cfg.model)
    ckpt = tmp_path / "ae.ckpt"
    torch.save({"state_dict": ae.state_dict(), "pc3d_config": plain_config(cfg)}, ckpt)
    with pytest.raises(ValueError, match="not a generator"):
        generate(gen_cfg(ckpt, tmp_path / "o"))
    with pytest.raises(FileNotFoundError):
        generate(gen_cfg(tmp_path / "missing.ckpt", tmp_path / "o"))
    with pytest.raises(ValueError, match="n_samples must be"):
        generate(gen_cfg(ckpt, tmp_path / "o", n_samples=0))


def test_hydra_entry_point_writes_only_under_out(gan_run, tmp_path, monkeypatch):
    """`pc3d-generate ckpt_path=... n_samples=... out=...` (the @hydra.main wrapper, run in-process)."""
    from pc3d.cli.generate import main

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "cli"
    argv = ["pc3d-generate", f"ckpt_path={gan_run['last_ckpt']}", "n_samples=2", f"out={out}", "ply=false"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    assert np.load(out / "samples.npy").shape == (2, 64, 3)
    assert list(cwd.iterdir()) == []  # no run folder, no .hydra, no log file
