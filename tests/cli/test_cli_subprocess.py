"""The console scripts as users run them: Hydra multirun and CPU DDP with two processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import TINY_SYNTHETIC


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PC3D_LOG_DIR": str(cwd / "outputs"), "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.train", *args], cwd=cwd, env=env, timeout=timeout,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _tiny_data(root: Path) -> list[str]:
    return [f"data.synthetic.root={root}", *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
            "data.batch_size=4", "data.n_points=256", "callbacks.progress_bar=null"]


def test_multirun_writes_one_run_dir_per_job(tiny_builtin, tmp_path):
    proc = _run(["-m", "model.latent_dim=16,32", "debug=fdr", *_tiny_data(tiny_builtin)], tmp_path)
    sweeps = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for job, dim in zip(jobs, (16, 32)):
        cfg = (sweeps[0] / job / ".hydra" / "config.yaml").read_text()
        assert f"latent_dim: {dim}" in cfg
    assert proc.stdout.count("pc3d: final metrics") == 2


def test_ddp_on_cpu_runs_two_processes_in_one_run_dir(tiny_builtin, tmp_path):
    proc = _run(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "debug=fdr",
                 *_tiny_data(tiny_builtin)], tmp_path, timeout=400)
    log = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    runs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs  # the relaunched rank landed in the same run dir
    assert "test/linear_probe_acc" in log
