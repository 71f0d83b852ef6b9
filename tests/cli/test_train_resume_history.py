"""Issue 15: a run resumed into its own run folder continues one history; last.ckpt is always written."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pc3d.cli.train import train, wandb_run_id
from tests.helpers import TINY_SYNTHETIC, compose_train

_SHORT = ["trainer.accelerator=cpu", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
          "trainer.check_val_every_n_epoch=1", "trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null",
          "callbacks.model_summary=null", "model.latent_dim=16", "data.n_points=256", "test=false",
          "trainer.log_every_n_steps=1"]


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _history(rows):
    """(epoch, step, sorted non-empty metric names) per row: what was logged when."""
    return sorted((r["epoch"], int(r["step"]), tuple(sorted(k for k, v in r.items() if v not in ("", None))))
                  for r in rows)


def test_resume_into_same_run_dir_keeps_csv_history(tiny_builtin, tmp_path):
    run, ref = tmp_path / "run", tmp_path / "ref"
    train(compose_train([*_SHORT, "trainer.max_epochs=2"], run, tiny_builtin))
    first = _rows(run)
    assert {r["epoch"] for r in first} >= {"0", "1"}
    train(compose_train([*_SHORT, "trainer.max_epochs=3", f"ckpt_path={run}/checkpoints/last.ckpt"], run,
                        tiny_builtin))
    train(compose_train([*_SHORT, "trainer.max_epochs=3"], ref, tiny_builtin))
    resumed = _rows(run)
    assert {r["epoch"] for r in resumed} >= {"0", "1", "2"}, "earlier epochs lost"
    # the same rows (what was logged when) as one uninterrupted run
    assert _history(resumed) == _history(_rows(ref))


def test_resume_wandb_continues_the_same_run_id(tiny_builtin, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(compose_train([*_SHORT, "trainer.max_epochs=1", "logger=wandb"], run, tiny_builtin))
    first_id = wandb_run_id(run)
    assert first_id
    result = train(compose_train([*_SHORT, "trainer.max_epochs=2", "logger=wandb",
                                  f"ckpt_path={run}/checkpoints/last.ckpt"], run, tiny_builtin))
    ids = {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").iterdir() if p.name.startswith(("run-", "offline-run-"))}
    assert ids == {first_id}, ids
    assert result["trainer"].current_epoch == 2


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    repo = str(Path(__file__).resolve().parents[2])  # this checkout's pc3d, whatever is installed
    env = {**os.environ, "PC3D_LOG_DIR": str(cwd / "outputs"), "WANDB_MODE": "offline",
           "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.train", *args], cwd=cwd, env=env, timeout=300,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _tiny_cli(root: Path) -> list[str]:
    return ["experiment=ae_synthetic", f"data.synthetic.root={root}",  # one run, not the whole system
            *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()), "data.batch_size=4", "data.num_workers=0",
            *_SHORT]


def test_cli_resume_keeps_first_hydra_config_and_history(tiny_builtin, tmp_path):
    run = tmp_path / "run"
    _cli([*_tiny_cli(tiny_builtin), "trainer.max_epochs=1", f"hydra.run.dir={run}"], tmp_path)
    first = (run / ".hydra" / "overrides.yaml").read_text()
    n_first = len(_rows(run))
    _cli([*_tiny_cli(tiny_builtin), "trainer.max_epochs=2", f"hydra.run.dir={run}",
          f"ckpt_path={run}/checkpoints/last.ckpt"], tmp_path)
    assert (run / ".hydra" / "overrides.yaml").read_text() == first  # the first run's config is kept
    resumed = (run / ".hydra" / "resume-1" / "overrides.yaml").read_text()
    assert "ckpt_path=" in resumed and "trainer.max_epochs=2" in resumed
    rows = _rows(run)
    assert len(rows) > n_first and {r["epoch"] for r in rows} >= {"0", "1"}


def test_short_run_without_validation_still_saves_last_ckpt(tiny_builtin, tmp_path, caplog):
    """A run whose validation never comes (check_val_every_n_epoch > max_epochs, like a 2-epoch tree-GAN)."""
    with caplog.at_level(logging.WARNING, logger="pc3d"):
        result = train(compose_train([*_SHORT, "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=10"],
                                     tmp_path, tiny_builtin))
    assert result["last_ckpt"] and Path(result["last_ckpt"]).name == "last.ckpt" and Path(result["last_ckpt"]).is_file()
    assert result["trainer"].global_step == 4
    assert result["best_ckpt"] is None
    assert "no best checkpoint" in caplog.text and "val/cd" in caplog.text
    # and it resumes
    again = train(compose_train([*_SHORT, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=10",
                                 f"ckpt_path={result['last_ckpt']}"], tmp_path, tiny_builtin))
    assert again["trainer"].global_step == 6


def test_treegan_two_epochs_saves_last_ckpt(tiny_builtin, tmp_path):
    result = train(compose_train(["experiment=treegan_synthetic", "trainer.max_epochs=2", "trainer.accelerator=cpu",
                                  "trainer.limit_train_batches=1", "callbacks.progress_bar=null",
                                  "callbacks.model_summary=null", "test=false", "logger=csv"], tmp_path, tiny_builtin))
    assert result["last_ckpt"] and Path(result["last_ckpt"]).is_file()
