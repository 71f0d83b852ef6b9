"""Issue 15 (11): one console line per log record, no third-party tips, the summary and errors in train.log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import TINY_SYNTHETIC


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    repo = str(Path(__file__).resolve().parents[2])  # this checkout's pc3d, whatever is installed
    env = {**os.environ, "PC3D_LOG_DIR": str(cwd / "outputs"), "WANDB_MODE": "offline",
           "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "pc3d.cli.train", *args], cwd=cwd, env=env, timeout=300,
                          capture_output=True, text=True)


def _tiny(root: Path) -> list[str]:
    return ["experiment=ae_synthetic", f"data.synthetic.root={root}",  # one run, not the whole system
            *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
            "data.batch_size=4", "data.num_workers=0", "data.n_points=256", "model.latent_dim=16",
            "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null",
            "test=false"]


def test_console_lines_once_no_tips_summary_in_train_log(tiny_builtin, tmp_path):
    run = tmp_path / "run"
    proc = _cli([*_tiny(tiny_builtin), f"out={run}"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "GPU available" in console
    assert console.count("GPU available") == 1, console  # not once from Lightning and once from Hydra
    assert "litlogger" not in console and "DeprecationWarning" not in console and "LeafSpec" not in console
    log = (run / "train.log").read_text()
    assert "pc3d: final metrics" in log and "last checkpoint:" in log and "val/cd" in log


def test_crashed_run_logs_the_error_in_train_log(tiny_builtin, tmp_path):
    run = tmp_path / "run"
    proc = _cli([*_tiny(tiny_builtin), f"out={run}", f"ckpt_path={tmp_path}/missing.ckpt"], tmp_path)
    assert proc.returncode != 0
    log = (run / "train.log").read_text()
    assert "Traceback" in log and "FileNotFoundError" in log and "missing.ckpt" in log
