"""End-to-end: configs compose, every experiment runs, checkpoints resume, loggers write."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pc3d.cli._common import CONFIG_DIR
from pc3d.cli.train import train
from tests.helpers import compose_train, tiny_lgan_overrides

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def test_there_are_experiments():
    assert "ae_synthetic" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_smoke_runs(experiment, tiny_builtin, tmp_path):
    # the l-GAN needs a pretrained autoencoder checkpoint (model.ae_ckpt_path=???): a tiny one, written here
    extra = tiny_lgan_overrides(tmp_path) if experiment == "lgan_synthetic" else []
    cfg = compose_train([f"experiment={experiment}", "trainer.fast_dev_run=true", "trainer.accelerator=cpu",
                         "trainer.devices=1", "logger=csv", *extra], tmp_path, tiny_builtin)
    result = train(cfg)
    m = result["metrics"]
    assert any(k.startswith("train/") for k in m), m
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values()), m
    if cfg.model._target_ == "pc3d.models.Autoencoder":
        assert "val/cd" in m and "test/cd" in m


def test_main_job_config_defaults():
    """`pc3d-train` with no arguments: autoencoder on the built-in data, CSV logs, checkpoints."""
    cfg = compose_train([], Path("/tmp/unused"))
    assert cfg.model._target_ == "pc3d.models.Autoencoder"
    assert cfg.data.synthetic is not None and cfg.data.synthetic.n_per_category == 100
    assert cfg.model.decoder.n_points == cfg.data.n_points == 2048
    assert cfg.model.encoder.latent_dim == cfg.model.decoder.latent_dim == cfg.model.latent_dim
    assert set(cfg.logger) == {"csv"}
    assert cfg.callbacks.last_checkpoint.filename == "last" and cfg.callbacks.model_checkpoint.monitor == "val/cd"


def test_wandb_logger_is_offline_by_default():
    cfg = compose_train(["logger=wandb"], Path("/tmp/unused"))
    assert cfg.logger.wandb.offline is True and "csv" in cfg.logger


def _short(tmp_path, builtin, *extra):
    return compose_train(["trainer.accelerator=cpu", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                          "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1",
                          "trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null",
                          "callbacks.model_summary=null", "model.latent_dim=16", "data.n_points=256",
                          *extra], tmp_path, builtin)


def test_fit_writes_checkpoints_csv_and_reconstructions(tiny_builtin, tmp_path):
    result = train(_short(tmp_path, tiny_builtin, "test=true"))
    out = Path(result["output_dir"])
    assert Path(result["last_ckpt"]).name == "last.ckpt" and Path(result["best_ckpt"]).name.startswith("best-")
    assert (out / "csv" / "metrics.csv").read_text().startswith(("epoch", "lr", "step", "test", "train", "val"))
    recon = sorted((out / "reconstructions").glob("epoch_*/*_recon.npy"))
    assert recon and all(p.with_name(p.name.replace("_recon", "_input")).is_file() for p in recon)
    m = result["metrics"]
    assert 0.0 <= m["test/linear_probe_acc"] <= 1.0 and m["test/cd"] > 0


def test_checkpoint_loads_with_weights_only_and_rebuilds_model(tiny_builtin, tmp_path):
    from pc3d.models import load_model

    result = train(_short(tmp_path, tiny_builtin, "test=false"))
    ckpt = torch.load(result["last_ckpt"], weights_only=True)  # no arbitrary unpickling
    assert ckpt["pc3d_build"]["model"]["name"] == "autoencoder" and "pc3d_config" not in ckpt  # data, not code
    model = load_model(result["last_ckpt"])
    x = torch.rand(2, 256, 3)
    ref = result["model"].eval()
    assert torch.allclose(model(x), ref(x), atol=1e-6)


def test_resume_continues_epoch_and_step(tiny_builtin, tmp_path):
    first = train(_short(tmp_path / "a", tiny_builtin, "test=false"))
    assert first["trainer"].global_step == 4 and first["trainer"].current_epoch == 2
    ckpt = torch.load(first["last_ckpt"], weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4
    resumed = train(_short(tmp_path / "b", tiny_builtin, "test=false", "trainer.max_epochs=3",
                           f"ckpt_path={first['last_ckpt']}"))
    # one more epoch of 2 steps on top of the restored 4
    assert resumed["trainer"].global_step == 6 and resumed["trainer"].current_epoch == 3


def test_missing_resume_checkpoint_is_a_clear_error(tiny_builtin, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        train(_short(tmp_path, tiny_builtin, "ckpt_path=/nonexistent/last.ckpt"))


def test_wandb_offline_run_has_metrics(tiny_builtin, tmp_path):
    import csv
    import re
    import time

    result = train(_short(tmp_path, tiny_builtin, "logger=wandb", "test=false", "trainer.max_epochs=1"))
    out = Path(result["output_dir"])
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (record_file,) = runs[0].glob("*.wandb")
    # The run file is a log of protobuf records; a history record holds each key next to its
    # JSON value. The val/cd logged to CSV must be there with the very same value.
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    val_cd = next(r["val/cd"] for r in rows if r.get("val/cd"))
    # wandb.finish() hands the records to W&B's service process, which may still be writing the
    # file when it returns on a loaded machine: give it up to 60 s before judging the content.
    pattern = re.compile(rb"val/cd.{1,6}" + re.escape(val_cd.encode()), flags=re.S)
    deadline = time.monotonic() + 60
    while not pattern.search(record_file.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pattern.search(record_file.read_bytes())
