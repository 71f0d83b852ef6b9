"""pc3d-plot (pc3d.cli.plot), and the curves / sweep summary that pc3d-train writes by itself."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pc3d.cli.plot import main
from tests.helpers import TINY_SYNTHETIC, compose_train
from tests.viz.test_curves import ROWS, make_multirun, make_run, write_metrics_csv


def _is_png(path: Path) -> bool:
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] > 0 and im.size[1] > 0


def test_plot_a_run_prints_path_and_final_metrics(tmp_path, capsys):
    run = make_run(tmp_path / "run", overrides=["trainer.max_epochs=2"])
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    assert f"curves: {(run / 'curves.png').resolve()}" in out
    assert _is_png(run / "curves.png")
    assert "val/cd" in out and "0.02" in out and "test/linear_probe_acc" in out


def test_plot_out_and_quiet_and_a_csv_file(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    assert main([str(run / "csv" / "metrics.csv"), "--out", str(tmp_path / "a.png"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"curves: {(tmp_path / 'a.png').resolve()}"
    assert _is_png(tmp_path / "a.png") and not (run / "curves.png").exists()


def test_plot_a_multirun(tmp_path, capsys):
    sweep = make_multirun(tmp_path / "sweep")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert f"summary: {(sweep / 'summary.csv').resolve()}" in out
    assert _is_png(sweep / "curves.png")
    assert all(_is_png(sweep / j / "curves.png") for j in ("0", "1", "2", "10"))
    assert sum("model.optimizer.lr=" in ln for ln in out.splitlines()) == 4  # the printed table
    with open(sweep / "summary.csv", newline="") as fh:
        assert [r["job"] for r in csv.DictReader(fh)] == ["0", "1", "2", "10"]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or folder"),
    ("empty", "no metrics found"),
    ("bad_csv", "not a Lightning metrics.csv"),
    ("sweep_without_metrics", "no job folder holds metrics"),
])
def test_plot_bad_input_exits_2_naming_the_path(tmp_path, capsys, case, message):
    path = tmp_path / case
    if case == "empty":
        path.mkdir()
    elif case == "bad_csv":
        (path / "csv").mkdir(parents=True)
        (path / "csv" / "metrics.csv").write_text("a,b\n1,2\n")
    elif case == "sweep_without_metrics":
        (path / "0" / ".hydra").mkdir(parents=True)
        (path / "multirun.yaml").write_text("{}\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pc3d-plot: error: ") and str(path) in err and message in err
    assert "expected" in err


def test_plot_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.plot", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "pc3d-plot outputs/train/runs/" in proc.stdout
    assert 'pc3d-plot = "pc3d.cli.plot:main"' in (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()


def test_rows_used_here_are_lightning_like(tmp_path):
    # the fixture rows are sparse like Lightning's: no row fills every column
    path = write_metrics_csv(tmp_path / "m.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert len(rows) == len(ROWS) and all("" in r for r in rows)


# --------------------------------------------------------------------------------------- real runs

TINY = ["trainer.accelerator=cpu", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1", "trainer.num_sanity_val_steps=0",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.latent_dim=16", "data.n_points=256"]


def test_train_writes_curves_png(tiny_builtin, tmp_path):
    from pc3d.cli.train import train
    from pc3d.viz.curves import read_metrics_csv

    result = train(compose_train([*TINY, "test=true"], tmp_path, tiny_builtin))
    run = Path(result["output_dir"])
    assert _is_png(run / "curves.png")
    series = read_metrics_csv(run / "csv" / "metrics.csv")
    assert len(series["val/cd"]) == 2 and "test/cd" in series  # drawn again after test: all of it is there
    assert (run / "curves.png").stat().st_mtime >= (run / "csv" / "metrics.csv").stat().st_mtime


def test_multirun_writes_summary_csv(tiny_builtin, tmp_path):
    """`pc3d-train -m model.optimizer.lr=0.001,0.002` with 1 batch per job: summary.csv has both jobs."""
    env = {**os.environ, "PC3D_LOG_DIR": str(tmp_path / "outputs"), "WANDB_MODE": "offline",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    args = ["-m", "model.optimizer.lr=0.001,0.002", "experiment=ae_synthetic",
            "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false", "model.latent_dim=16",
            "data.n_points=256", "data.batch_size=4", "callbacks.progress_bar=null", "callbacks.model_summary=null",
            f"data.synthetic.root={tiny_builtin}", *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items())]
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.train", *args], cwd=tmp_path, env=env, timeout=170,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "outputs" / "ae_synthetic" / "multiruns").iterdir())
    with open(sweep / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job"] for r in rows] == ["0", "1"]
    assert [r["overrides"].split()[0] for r in rows] == ["model.optimizer.lr=0.001", "model.optimizer.lr=0.002"]
    assert all(float(r["val/cd"]) > 0 for r in rows)
    assert _is_png(sweep / "curves.png") and _is_png(sweep / "0" / "curves.png")
    assert "model.optimizer.lr=0.002" in proc.stdout  # the printed table


# --------------------------------------------------------------------------------------- the Hydra callback

def _hydra_config(sweep_dir: Path):
    from omegaconf import OmegaConf

    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})


def test_multirun_summary_callback(tmp_path, capsys):
    from pc3d.cli.hydra_callbacks import MultirunSummary

    sweep = make_multirun(tmp_path / "sweep")
    cb = MultirunSummary()
    cb.on_multirun_end(_hydra_config(sweep))
    assert cb.summary_csv == sweep / "summary.csv" and cb.curves_png == sweep / "curves.png"
    assert [r["job"] for r in cb.rows] == [0, 1, 2, 10]
    assert sum("model.optimizer.lr=" in ln for ln in capsys.readouterr().out.splitlines()) == 4


def test_multirun_summary_callback_is_quiet_without_metrics_and_never_raises(tmp_path, capsys, caplog):
    from pc3d.cli.hydra_callbacks import MultirunSummary

    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    cb = MultirunSummary()
    cb.on_multirun_end(_hydra_config(tmp_path))
    assert cb.rows == [] and not (tmp_path / "summary.csv").exists() and capsys.readouterr().out == ""
    bad = tmp_path / "bad"
    (bad / "0" / "csv").mkdir(parents=True)
    (bad / "0" / "csv" / "metrics.csv").write_text("not,lightning\n")
    MultirunSummary().on_multirun_end(_hydra_config(bad))  # logs a warning, raises nothing
    assert "could not summarise the sweep" in caplog.text


def test_multirun_summary_reads_eval_metrics_json(tmp_path):
    from pc3d.cli.hydra_callbacks import MultirunSummary

    for job, value in [(0, 0.5), (1, 0.25)]:
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(f"- split=val\n- seed={job}\n")
        (tmp_path / str(job) / "metrics.json").write_text(json.dumps({"task": "generation",
                                                                      "metrics": {"1nna_cd": value}}))
    cb = MultirunSummary(print_table=False)
    cb.on_multirun_end(_hydra_config(tmp_path))
    assert [(r["overrides"], r["1nna_cd"]) for r in cb.rows] == [("split=val seed=0", 0.5), ("split=val seed=1", 0.25)]
    assert cb.curves_png is None and (tmp_path / "summary.csv").is_file()
