"""Issue 18 (b): a two-task CPU DDP job (gloo) through ``hydra/launcher=submitit_slurm``: srun starts two
tasks (``tasks_per_node = ${trainer.devices}``), Lightning's SLURM environment takes their ranks from srun,
both join one process group of world size 2, and they share one run dir, in which only rank 0 writes."""

from __future__ import annotations

import math
import re

import pytest
import torch

from tests.cluster.helpers import BATCH_SIZE, SLURM, TRAIN_SHAPES, run_train, task_logs, tiny_overrides, wait_for

pytestmark = pytest.mark.slow


def test_ddp_job_two_ranks_one_process_group_one_run_dir(slurm, tiny_builtin, tmp_path):
    sweep = tmp_path / "ddp"
    run_train(["-m", *SLURM, *tiny_overrides(tiny_builtin), "trainer=ddp", "trainer.devices=2",
               "trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
               "test=false", f"hydra.sweep.dir={sweep}"])  # no out=: the ranks share the sweep's job dir
    wait_for(lambda: not slurm.jobs(), 60, "the job to leave the queue")

    # one SLURM job of two tasks ...
    jobs = [p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)
            and any(p.glob("*_log.*"))]
    assert len(jobs) == 1, jobs
    logs = task_logs(sweep)
    rank_logs = [logs.get(f"{jobs[0]}_{t}_log.err", "") + logs.get(f"{jobs[0]}_{t}_log.out", "") for t in (0, 1)]
    for task, text in enumerate(rank_logs):  # each task ran the job as rank <task> of 2 ...
        assert f"global_rank={task}(2)" in text, text[-3000:]
        assert f"GLOBAL_RANK: {task}, MEMBER: {task + 1}/2" in text, text[-3000:]
    # ... in one gloo process group of world size 2
    assert "distributed_backend=gloo" in rank_logs[0] and "Starting with 2 processes" in rank_logs[0], rank_logs[0]

    # ... and one run dir (the sweep's job 0), in which only rank 0 wrote train.log
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == ["0"], runs
    run = sweep / "0"
    train_log = (run / "train.log").read_text()
    assert "MEMBER: 1/2" in train_log and "MEMBER: 2/2" not in train_log
    # each rank trained on half of the data (DistributedSampler): half the optimizer steps of one process
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == math.ceil(TRAIN_SHAPES / 2 / BATCH_SIZE) == 3
    assert (run / "final_metrics.json").is_file() and (run / "csv" / "metrics.csv").is_file()
