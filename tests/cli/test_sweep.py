"""Hyper-parameter sweeps: conf/hparams_search/*.yaml (Hydra's Optuna sweeper), train()'s objective,
experiments/sweep_table.py. The Optuna sweeper is the optional extra `pip install -e ".[sweep]"`."""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from pc3d.cli._common import CONFIG_DIR
from pc3d.cli.train import objective_value
from tests.helpers import TINY_SYNTHETIC

ROOT = Path(__file__).resolve().parents[2]
SEARCHES = sorted(p.stem for p in (Path(CONFIG_DIR) / "hparams_search").glob("*.yaml"))
# the experiment each search is written for (also what its defaults list selects)
EXPERIMENT = {"ae_treegcn_optuna": "ae_pretrain", "img2cloud_optuna": "img2cloud", "lgan_optuna": "lgan_synthetic"}


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_there_are_searches():
    assert {"ae_treegcn_optuna", "img2cloud_optuna", "lgan_optuna"} <= set(SEARCHES)


@pytest.mark.parametrize("with_experiment", [False, True], ids=["file_experiment", "cli_experiment"])
@pytest.mark.parametrize("search", SEARCHES)
def test_hparams_search_composes(search, with_experiment):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper")
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import get_class

    experiment = EXPERIMENT.get(search)
    overrides = [f"hparams_search={search}"] + ([f"experiment={experiment}"] if with_experiment else [])
    cfg = _compose(overrides)
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == "optuna"
    if experiment:
        assert cfg.hydra.runtime.choices["experiment"] == experiment
    assert cfg.optimized_metric and cfg.optimized_metric.startswith("val/")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "minimize" and sweeper.n_trials == 20 and sweeper.storage is None
    assert sweeper.study_name == search and sweeper.sampler._target_.endswith("TPESampler")
    assert sweeper.sampler.seed is not None
    assert any(k.endswith(".lr") for k in sweeper.params), "every search tunes a learning rate"
    parser = OverridesParser.create()
    for key, space in sweeper.params.items():
        # every searched key exists in the composed config ...
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        assert node is not None and leaf in node, f"{search}: {key} is not in the composed config"
        # ... and is an argument of the class it configures (a renamed knob fails here) ...
        if "_target_" in node:
            params = inspect.signature(get_class(node._target_)).parameters
            assert leaf in params or any(p.kind is p.VAR_KEYWORD for p in params.values()), (key, node._target_)
        # ... and its search space parses as a sweep
        (override,) = parser.parse_overrides([f"{key}={space}"])
        assert override.is_sweep_override(), (key, space)


# --- train()'s objective (no training needed) --------------------------------------------------------

def test_objective_is_optimized_metric_else_monitor():
    metrics = {"val/cd": 0.5, "val/emd": 0.25, "test/cd": 0.75}
    cfg = OmegaConf.create({"monitor": "val/cd", "optimized_metric": "val/emd"})
    assert objective_value(cfg, metrics) == 0.25
    cfg.optimized_metric = None
    assert objective_value(cfg, metrics) == 0.5


def test_missing_optimized_metric_raises_naming_the_logged_metrics():
    cfg = OmegaConf.create({"monitor": "val/cd", "optimized_metric": "val/1nna_cd"})
    with pytest.raises(ValueError, match=r"optimized_metric='val/1nna_cd'.*val/cd"):
        objective_value(cfg, {"val/cd": 0.5})


def test_missing_monitor_outside_a_sweep_is_none():
    cfg = OmegaConf.create({"monitor": "val/fpd", "optimized_metric": None})
    assert objective_value(cfg, {"val/cd": 0.5}) is None


# --- a real 2-trial Optuna sweep, then the table --------------------------------------------------------

def _tiny(root: Path) -> list[str]:
    return [f"data.synthetic.root={root}", *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
            "data.batch_size=4", "callbacks.progress_bar=null", "callbacks.model_summary=null"]


@pytest.mark.slow
def test_optuna_sweep_two_trials_and_table(tiny_builtin, tmp_path):
    """`pc3d-train -m hparams_search=ae_treegcn_optuna experiment=ae_pretrain` on tiny data (~20 s).

    One short epoch instead of debug=fdr: fast_dev_run turns the loggers off, so it writes no metrics.csv.
    """
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper")
    env = {**os.environ, "PC3D_LOG_DIR": str(tmp_path / "outputs"), "WANDB_MODE": "offline",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    args = ["-m", "hparams_search=ae_treegcn_optuna", "experiment=ae_pretrain", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=1", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0",
            *_tiny(tiny_builtin)]
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.train", *args], cwd=tmp_path, env=env, timeout=170,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    sweeps = list((tmp_path / "outputs" / "ae_pretrain" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    sweep = sweeps[0]
    trials = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert trials == ["0", "1"]
    objectives = []
    for trial in trials:
        overrides = yaml.safe_load((sweep / trial / ".hydra" / "overrides.yaml").read_text())
        assert any(o.startswith("model.optimizer.lr=") for o in overrides), overrides
        assert "data.batch_size=4" in overrides  # fixed on the command line: out of the search space
        lines = (sweep / trial / "csv" / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        col = header.index("val/cd")
        values = [float(r.split(",")[col]) for r in lines[1:] if r.split(",")[col]]
        assert values and math.isfinite(values[-1])
        objectives.append(values[-1])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(objectives), rel=1e-6)
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.decoder.support", "model.decoder.init",
                                           "model.decoder.ancestor_scale"}  # data.batch_size: fixed above

    table = subprocess.run([sys.executable, str(ROOT / "experiments" / "sweep_table.py"), str(sweep),
                            "--out", str(tmp_path / "table.md")], env=env, timeout=60, capture_output=True,
                           text=True)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = [ln for ln in table.stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| rank")]
    assert len(rows) == 2
    best = trials[objectives.index(min(objectives))]
    assert rows[0].startswith(f"| 1 | {best} | ") and rows[1].startswith("| 2 | ")
    assert f"Winning trial {best} " in table.stdout
    rerun = table.stdout.split("Re-run it alone: ")[1].split()
    assert rerun[0] == "pc3d-train" and f"model.optimizer.lr={results['best_params']['model.optimizer.lr']}" in rerun
    assert "hparams_search=ae_treegcn_optuna" in rerun and rerun[-1] == "hydra.mode=RUN"
    assert (tmp_path / "table.md").read_text() == table.stdout
