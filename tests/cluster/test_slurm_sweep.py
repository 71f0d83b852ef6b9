"""Issue 18 (a): ``pc3d-train -m hydra/launcher=submitit_slurm ... debug=fdr`` with two sweep values runs
two SLURM jobs (one job array) on the local cluster; each writes its own run dir with its metrics, and
the sweep summary lists both."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from tests.cluster.helpers import SLURM, run_train, task_logs, tiny_overrides, wait_for

pytestmark = pytest.mark.slow


def test_sweep_runs_one_slurm_job_per_value(slurm, tiny_builtin, tmp_path):
    sweep = tmp_path / "sweep"
    run_train(["-m", *SLURM, *tiny_overrides(tiny_builtin), "debug=fdr", "model.latent_dim=8,16", f"out={sweep}"])

    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == ["0", "1"], runs
    for num, dim in (("0", 8), ("1", 16)):
        run = sweep / num
        assert f"model.latent_dim={dim}" in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["model"]["latent_dim"] == dim
        metrics = json.loads((run / "final_metrics.json").read_text())
        assert {"val/cd", "test/cd"} <= set(metrics), metrics
        assert any(k.startswith("train/") for k in metrics), metrics

    # two SLURM jobs: submitit's folders of the tasks <array>_0 and <array>_1 of one job array
    jobs = sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(jobs) == 2 and jobs[0].endswith("_0") and jobs[1] == jobs[0][:-1] + "1", jobs
    logs = task_logs(sweep)
    for job in jobs:  # each ran inside SLURM (submitit's job environment names the array task) and finished
        text = logs[f"{job}_0_log.err"] + logs.get(f"{job}_0_log.out", "")
        assert f"job_id={job}," in text and "Job completed successfully" in text, text[-2000:]
    wait_for(lambda: not slurm.jobs(), 60, "the jobs to leave the queue")

    # the sweep summary (MultirunSummary) has one row per job, with that job's own metrics
    with open(sweep / "summary.csv", newline="") as fh:
        rows = {r["job"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["0", "1"]
    for num in rows:
        final = json.loads((sweep / num / "final_metrics.json").read_text())
        assert float(rows[num]["val/cd"]) == pytest.approx(final["val/cd"], rel=1e-6)
    assert rows["0"]["val/cd"] != rows["1"]["val/cd"]
