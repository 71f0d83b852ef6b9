"""Concurrent jobs never share a run folder: the timestamped default is claimed with an atomic mkdir."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from pc3d.cli._common import claim_dir, run_dir
from tests.helpers import TINY_SYNTHETIC

ROOT = Path(__file__).resolve().parents[2]

# Runs pc3d-train's real entry point with Hydra's clock frozen at one second, so that jobs started
# "together" certainly collide on the timestamped name.
FROZEN = textwrap.dedent("""
    import sys, datetime
    import hydra.core.utils as hcu

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2030, 1, 2, 3, 4, 5)

    hcu.datetime = Frozen
    import pc3d.cli.train as T
    if sys.argv[1] == "fake":  # no training: only the run folder Hydra gives the job
        from hydra.core.hydra_config import HydraConfig

        def fake(cfg):
            print("OUTPUT_DIR", cfg.paths.output_dir, HydraConfig.get().runtime.output_dir)
            return {"objective": None}
        T.train = fake
    sys.argv = ["pc3d-train", *sys.argv[2:]]
    T.main()
""")


def _env(log_dir: Path) -> dict[str, str]:
    return {**os.environ, "PC3D_LOG_DIR": str(log_dir), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def test_claim_dir_twice_in_the_same_second_gives_two_folders(tmp_path):
    base = tmp_path / "train" / "runs" / "2030-01-02_03-04-05"
    first, second, third = (claim_dir(base) for _ in range(3))
    assert [Path(p).name for p in (first, second, third)] == [base.name, f"{base.name}_1", f"{base.name}_2"]
    assert all(Path(p).is_dir() for p in (first, second, third))
    assert run_dir(None, str(base)) == str(base)  # the pure rule makes nothing


def test_resolver_claims_once_per_config_and_once_per_job(tmp_path, monkeypatch):
    from datetime import datetime

    import hydra.core.utils as hcu  # registers Hydra's `now` resolver

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2030, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hcu, "datetime", Frozen)
    hcu.setup_globals()
    spec = {"out": None, "dir": f"${{pc3d.run_dir:${{oc.select:out,null}},{tmp_path}/runs/${{now:%Y-%m-%d_%H-%M-%S}}}}"}
    a, b = OmegaConf.create(spec), OmegaConf.create(spec)
    assert a.dir == a.dir  # read twice, claimed once
    assert b.dir != a.dir and Path(b.dir).name == Path(a.dir).name + "_1"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["2030-01-02_03-04-05", "2030-01-02_03-04-05_1"]
    given = OmegaConf.create({**spec, "out": str(tmp_path / "mine")})
    assert given.dir == str(tmp_path / "mine") and not (tmp_path / "mine").exists()  # out= is taken as is


def test_two_pc3d_train_started_together_get_two_run_dirs(tiny_builtin, tmp_path):
    data = [f"data.synthetic.root={tiny_builtin}", *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
            "data.batch_size=4", "data.n_points=256", "data.num_workers=0", "callbacks.progress_bar=null",
            "callbacks.model_summary=null", "test=false"]
    procs = [subprocess.Popen([sys.executable, "-c", FROZEN, "real", "debug=fdr", f"seed={seed}", *data], cwd=tmp_path,
                              env=_env(tmp_path / "logs"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed in (11, 22)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    runs = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert [r.name for r in runs] == ["2030-01-02_03-04-05", "2030-01-02_03-04-05_1"]
    seeds = set()
    for r in runs:
        cfg = OmegaConf.load(r / ".hydra" / "config.yaml")
        seeds.add(cfg.seed)
        overrides = OmegaConf.load(r / ".hydra" / "overrides.yaml")
        assert f"seed={cfg.seed}" in overrides
        assert (r / "csv").is_dir() and (r / "train.log").is_file()
    assert seeds == {11, 22}


def test_multirun_sweep_dir_is_claimed_once_and_jobs_use_it(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FROZEN, "fake", "-m", "experiment=ae_synthetic", "seed=1,2"],
                          cwd=tmp_path,
                          env=_env(tmp_path / "logs"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweeps = sorted((tmp_path / "logs" / "ae_synthetic" / "multiruns").iterdir())
    assert [s.name for s in sweeps] == ["2030-01-02_03-04-05"]
    assert sorted(p.name for p in sweeps[0].iterdir() if p.is_dir()) == ["0", "1"]
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("OUTPUT_DIR")]
    assert [Path(ln[1]) for ln in lines] == [sweeps[0] / "0", sweeps[0] / "1"]
    assert not (tmp_path / "logs" / "ae_synthetic" / "runs").exists()  # no run folder claimed by a sweep


def test_out_is_used_as_given(tmp_path):
    out = tmp_path / "given_dir" / "metrics.json"
    proc = subprocess.run([sys.executable, "-c", FROZEN, "fake", "experiment=ae_synthetic", f"out={out}"], cwd=tmp_path,
                          env=_env(tmp_path / "logs"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln.split() for ln in proc.stdout.splitlines() if ln.startswith("OUTPUT_DIR"))
    assert Path(line[1]) == tmp_path / "given_dir"
    assert not (tmp_path / "logs").exists()
