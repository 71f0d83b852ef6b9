"""Issue 15: built-in data generated only when read (3), absolute data paths in checkpoints (4),
experiments that force no device (8), a bounded ``debug=overfit`` (9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pc3d.cli._common import CONFIG_DIR
from pc3d.data.taxonomy import PC15K_DIRNAME
from tests.helpers import compose_train

CONF = Path(CONFIG_DIR)
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.fixture
def generated(monkeypatch) -> list[dict]:
    """Record the calls of ``ensure_generated`` (what ``prepare_data`` would generate) instead of running them."""
    import pc3d.data.synthetic as synthetic

    calls: list[dict] = []
    monkeypatch.setattr(synthetic, "ensure_generated", lambda **kw: calls.append(kw))
    return calls


def _datamodule(overrides: list[str], tmp_path: Path):
    cfg = compose_train([*overrides, f"paths.data_dir={tmp_path / 'data'}"], tmp_path / "run")
    return instantiate(cfg.data)


# ------------------------------------------------------------------ 3: generate only what is read
def test_data_root_elsewhere_generates_no_builtin_data(tiny_builtin, tmp_path, generated):
    dm = _datamodule(["debug=fdr", f"data.root={tiny_builtin / PC15K_DIRNAME}"], tmp_path)
    assert not dm.reads_builtin()
    dm.prepare_data()
    assert generated == []
    assert not (tmp_path / "data").exists()


def test_builtin_root_still_generates(tmp_path, generated):
    dm = _datamodule(["debug=fdr"], tmp_path)
    assert dm.reads_builtin()
    dm.prepare_data()
    assert len(generated) == 1 and generated[0]["root"] == str(tmp_path / "data" / "pc3d_synthetic")


def test_renderings_with_builtin_views_still_generate(tiny_builtin, tmp_path, generated):
    # clouds from elsewhere, but the views (render_root null) from the built-in set: it is read, so made
    dm = _datamodule(["data=renderings", f"data.root={tiny_builtin / PC15K_DIRNAME}"], tmp_path)
    assert dm.reads_builtin()
    dm.prepare_data()
    assert len(generated) == 1
    dm = _datamodule(["data=renderings", f"data.root={tiny_builtin / PC15K_DIRNAME}",
                      f"data.render_root={tiny_builtin / 'ShapeNetRendering'}"], tmp_path)
    assert not dm.reads_builtin()
    dm.prepare_data()
    assert len(generated) == 1


# ------------------------------------------------------------------ 4: absolute paths in the build data
def test_checkpoint_build_data_paths_are_absolute(tmp_path, monkeypatch):
    from pc3d.callbacks import ConfigInCheckpoint, absolute_data_paths
    from pc3d.cli._common import plain_config

    monkeypatch.chdir(tmp_path)
    cfg = compose_train(["paths.data_dir=data", "data=renderings"], Path("run"))
    assert not Path(cfg.data.root).is_absolute()  # relative in the config ...
    ckpt: dict = {}
    ConfigInCheckpoint(plain_config(cfg)).on_save_checkpoint(None, None, ckpt)
    args = ckpt["pc3d_build"]["data"]["args"]
    builtin = tmp_path / "data" / "pc3d_synthetic"
    assert args["root"] == str(builtin / PC15K_DIRNAME)  # ... absolute in the checkpoint
    assert args["synthetic"]["root"] == str(builtin)
    assert args["bad_files_report"] == str(tmp_path / "run" / "bad_files.json")
    assert "data/" in ckpt["pc3d_config_record"]  # the record stays as the run had it
    # values that are not paths are kept
    assert absolute_data_paths({"root": None, "cache_dir": False, "n_points": 3, "x": "rel"}) == {
        "root": None, "cache_dir": False, "n_points": 3, "x": "rel"}
    assert absolute_data_paths({"root": "/abs/x"}) == {"root": "/abs/x"}


def test_checkpoint_data_builds_from_another_directory(tiny_builtin, tmp_path, monkeypatch):
    """The data module of a checkpoint trained with a relative root builds from anywhere."""
    from pc3d.callbacks import ConfigInCheckpoint
    from pc3d.cli._common import plain_config
    from pc3d.models.io import build_datamodule

    monkeypatch.chdir(tiny_builtin.parent)
    cfg = compose_train(["debug=fdr", f"data.root={tiny_builtin.name}/{PC15K_DIRNAME}",
                         f"data.synthetic.root={tiny_builtin.name}"], Path("run"))
    ckpt: dict = {}
    ConfigInCheckpoint(plain_config(cfg)).on_save_checkpoint(None, None, ckpt)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    dm = build_datamodule(ckpt["pc3d_build"]["data"])
    assert dm.root == tiny_builtin / PC15K_DIRNAME
    dm.setup("test")
    assert len(dm.test_set) > 0


# ------------------------------------------------------------------ 8: experiments force no device
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_forces_no_device(experiment, tmp_path):
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    assert cfg.trainer.accelerator in ("auto", "cpu"), f"experiment={experiment} sets {cfg.trainer.accelerator}"
    # the device stays the user's choice
    assert compose_train([f"experiment={experiment}", "trainer=gpu"], tmp_path).trainer.accelerator == "gpu"
    assert compose_train([f"experiment={experiment}", "trainer=cpu"], tmp_path).trainer.accelerator == "cpu"


# ------------------------------------------------------------------ 9: debug=overfit is bounded
@pytest.mark.parametrize("model", MODELS)
def test_overfit_is_bounded_by_steps(model, tmp_path):
    cfg = compose_train([f"model={model}", "debug=overfit"], tmp_path)
    assert cfg.trainer.overfit_batches == 1
    assert 0 < cfg.trainer.max_steps <= 150, cfg.trainer.max_steps
    stop = cfg.callbacks.overfit_stop
    assert stop._target_ == "lightning.pytorch.callbacks.EarlyStopping"
    assert stop.monitor == "train/loss" and stop.stopping_threshold > 0 and stop.strict is False
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize(("model", "threshold", "steps"), [("autoencoder", 1e9, 1), ("autoencoder", 0.0, 4),
                                                            ("treegan", 1e9, 4)])
def test_overfit_stops_at_threshold_or_max_steps(model, threshold, steps, tiny_builtin, tmp_path):
    """The stop watches a key the model logs (autoencoder: stops after the first step under a huge
    threshold); a GAN (no train/loss) runs to max_steps."""
    from pc3d.cli.train import train
    from tests.cli.test_debug_matrix import TINY, _overrides

    cfg = compose_train([*_overrides("synthetic", model, "overfit", tmp_path / "ae.ckpt"), *TINY[model],
                         "trainer.max_steps=4", f"callbacks.overfit_stop.stopping_threshold={threshold}",
                         "trainer.accelerator=cpu", "callbacks.progress_bar=null", "callbacks.model_summary=null"],
                        tmp_path, tiny_builtin)
    assert train(cfg)["trainer"].global_step == steps
