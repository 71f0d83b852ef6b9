"""Issue 18, fast part (no cluster): the submitit launcher configs compose as documented, and the SLURM
requeue helpers of pc3d-train (rank, requeued checkpoint, the warning-signal handler) behave."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from omegaconf import OmegaConf

from pc3d.cli import train as train_cli
from pc3d.cli._common import CONFIG_DIR


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"), pytest.warns(UserWarning,
                                                                                          match="ConfigStore schema"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_one_task_per_device_on_every_node():
    cfg = _compose(["hydra/launcher=submitit_slurm", "experiment=ae_synthetic", "trainer=ddp", "trainer.devices=4",
                    "trainer.num_nodes=3"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 3)
    assert launcher.additional_parameters == {"requeue": True}
    assert launcher.max_num_timeout == 0 and launcher.signal_delay_s > 0
    # the plain default trainer: one task, one GPU, one node
    launcher = _compose(["hydra/launcher=submitit_slurm", "experiment=ae_synthetic"]).hydra.launcher
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (1, 1, 1)
    assert OmegaConf.select(cfg, "hydra.launcher.submitit_folder", throw_on_resolution_failure=False) is not None


def test_local_launcher_composes():
    launcher = _compose(["hydra/launcher=submitit_local", "experiment=ae_synthetic"]).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert launcher.tasks_per_node == 1 and launcher.gpus_per_node is None


@pytest.fixture
def slurm_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("SLURM_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_slurm_rank(slurm_env):
    assert train_cli.slurm_rank() is None
    slurm_env.setenv("SLURM_NTASKS", "2")
    slurm_env.setenv("SLURM_PROCID", "1")
    slurm_env.setenv("SLURM_JOB_NAME", "train")
    assert train_cli.slurm_rank() == 1
    slurm_env.setenv("SLURM_JOB_NAME", "bash")  # an interactive allocation: not a SLURM job step
    assert train_cli.slurm_rank() is None


def test_requeued_checkpoint_only_after_a_restart(slurm_env, tmp_path):
    assert train_cli.slurm_requeue_checkpoint(tmp_path) is None
    (tmp_path / "last.ckpt").write_bytes(b"x")
    assert train_cli.slurm_requeue_checkpoint(tmp_path) is None  # a fresh job never resumes by itself
    slurm_env.setenv("SLURM_RESTART_COUNT", "0")
    assert train_cli.slurm_requeue_checkpoint(tmp_path) is None
    slurm_env.setenv("SLURM_RESTART_COUNT", "2")
    assert train_cli.slurm_requeue_checkpoint(tmp_path) == str(tmp_path / "last.ckpt")
    (tmp_path / "last.ckpt").unlink()
    assert train_cli.slurm_requeue_checkpoint(tmp_path) is None


@pytest.mark.parametrize("rank", [0, 1])
def test_warning_signal_requeues_once_from_rank_zero(slurm_env, rank):
    calls = []
    slurm_env.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    slurm_env.setenv("SLURM_JOB_ID", "1234")
    before = {s: signal.getsignal(s) for s in train_cli._SlurmRequeue.SIGNALS}
    requeue = train_cli._SlurmRequeue(rank)
    requeue.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)  # a second warning: one requeue only
    finally:
        requeue.uninstall()
    assert requeue.requested
    assert calls == ([["scontrol", "requeue", "1234"]] if rank == 0 else [])
    assert {s: signal.getsignal(s) for s in train_cli._SlurmRequeue.SIGNALS} == before
