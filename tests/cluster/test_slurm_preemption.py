"""Issue 18 (c): preemption on the local SLURM cluster. A running pc3d-train job (through
``hydra/launcher=submitit_slurm``) is requeued mid-fit, by ``scontrol requeue`` from outside (what an
admin or a preempting job does) or by the warning signal SLURM sends before the time limit
(``USR2``, submitit's ``--signal=USR2@signal_delay_s``, sent here with ``scancel --signal``). The
SIGTERM that SLURM sends saves ``last.ckpt`` at a batch boundary, SLURM starts the job again, the job
resumes from that checkpoint in the same run dir, and it ends with the same parameters and optimizer
state, bit for bit, as an uninterrupted run of the same config."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch

from tests.cluster.helpers import BATCH_SIZE, SLURM, TRAIN_SHAPES, run_train, start_train, tiny_overrides, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 4
STEPS = EPOCHS * TRAIN_SHAPES // BATCH_SIZE  # 24 optimizer steps, 6 per epoch
#: a fit of a few seconds (the sleep changes no number), validated at every epoch end (last.ckpt)
FIT = [f"trainer.max_epochs={EPOCHS}", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
       "+callbacks.throttle._target_=tests.cluster.helpers.Throttle", "+callbacks.throttle.seconds=0.4"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_builtin, tmp_path_factory):
    """The final checkpoint of the same fit run without SLURM, in one go."""
    out = tmp_path_factory.mktemp("uninterrupted")
    run_train([*tiny_overrides(tiny_builtin), *FIT, f"out={out}"])
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _assert_same_tensors(a, b, where: str = "") -> int:
    """Every tensor of ``a`` equals its counterpart in ``b`` exactly; returns how many were compared."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), where
        return 1
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, sorted(a), sorted(b))
        return sum(_assert_same_tensors(a[k], b[k], f"{where}.{k}") for k in a)
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        return sum(_assert_same_tensors(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    return 0


@pytest.mark.parametrize("interrupt", ["scontrol_requeue", "time_limit_signal"])
def test_requeued_job_resumes_to_the_same_parameters(slurm, tiny_builtin, tmp_path, uninterrupted, interrupt):
    sweep = tmp_path / "sweep"
    run = sweep / "0"
    proc = start_train(["-m", *SLURM, *tiny_overrides(tiny_builtin), *FIT, f"out={sweep}"], tmp_path / "submit.log")
    try:
        # the first validation wrote last.ckpt (step 6 of 24): interrupt the fit now
        wait_for(lambda: (run / "checkpoints" / "last.ckpt").is_file() or proc.poll() is not None, 300,
                 "the job's first last.ckpt")
        assert proc.poll() is None, (tmp_path / "submit.log").read_text()[-4000:]
        (job,) = [j for j, state in slurm.jobs() if state == "RUNNING"]
        if interrupt == "scontrol_requeue":
            subprocess.run(["scontrol", "requeue", job], check=True)
        else:  # what sbatch --signal=USR2@<s> sends to the job's tasks <s> seconds before the time limit
            subprocess.run(["scancel", "--signal=USR2", job], check=True)
        proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    submit_log = (tmp_path / "submit.log").read_text()
    assert proc.returncode == 0, submit_log[-4000:]

    # the job ran twice: stopped by SLURM's SIGTERM with a checkpoint mid-fit, then resumed from it
    assert slurm.job_info(job).get("Restarts") == "1", slurm.job_info(job)
    log = (run / "train.log").read_text()
    if interrupt == "time_limit_signal":
        assert "USR2 (the SLURM time limit is near, or a preemption): requeueing job" in log, log[-3000:]
    saved = [int(s) for s in re.findall(r"SIGTERM: saved \S+last\.ckpt \(step (\d+)\)", log)]
    assert len(saved) == 1 and 0 < saved[0] < STEPS, (saved, log[-3000:])
    assert f"requeued SLURM job (restart 1): resuming from {run / 'checkpoints' / 'last.ckpt'}" in log, log[-3000:]
    assert len(list(sweep.glob("[0-9]*"))) == 1, "one run dir for both runs of the job"

    # ... and ended exactly where the uninterrupted run ended
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == uninterrupted["global_step"] == STEPS
    n = _assert_same_tensors(final["state_dict"], uninterrupted["state_dict"], "state_dict")
    assert n == len(uninterrupted["state_dict"]) > 0
    assert _assert_same_tensors(final["optimizer_states"], uninterrupted["optimizer_states"], "optimizer_states") > 0
