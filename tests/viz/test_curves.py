"""pc3d.viz.curves: metrics.csv -> curves.png, multirun summaries; the TrainingCurves callback."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from pc3d.viz.curves import (
    TEST_PANEL,
    Point,
    build_multirun_figure,
    build_run_figure,
    final_metrics,
    find_jobs,
    is_multirun_dir,
    metric_groups,
    plot_multirun_curves,
    plot_run_curves,
    print_summary_table,
    read_metrics_csv,
    summarize_multirun,
)

# What Lightning's CSVLogger writes: sorted columns, sparse rows (lr at step 0, train/loss every 2 steps,
# train/loss_epoch and val/* at the end of each epoch of 4 steps, test/* once at the end).
HEADER = ["epoch", "lr-Adam", "step", "test/cd", "test/linear_probe_acc", "train/loss_epoch", "train/loss_step",
          "val/cd", "val/fscore"]
ROWS = [
    {"lr-Adam": 0.001, "step": 0},
    {"epoch": 0, "step": 1, "train/loss_step": 0.5},
    {"epoch": 0, "step": 3, "train/loss_step": 0.25},
    {"epoch": 0, "step": 3, "val/cd": 0.04, "val/fscore": 0.2},
    {"epoch": 0, "step": 3, "train/loss_epoch": 0.375},
    {"lr-Adam": 0.0005, "step": 4},
    {"epoch": 1, "step": 5, "train/loss_step": 0.125},
    {"epoch": 1, "step": 7, "train/loss_step": 0.0625},
    {"epoch": 1, "step": 7, "val/cd": 0.02, "val/fscore": 0.4},
    {"epoch": 1, "step": 7, "train/loss_epoch": 0.09375},
    {"epoch": 1, "step": 8, "test/cd": 0.019, "test/linear_probe_acc": 0.75},
]


def write_metrics_csv(path: Path, rows=ROWS, header=HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in header])
    return path


def make_run(root: Path, rows=ROWS, overrides: list[str] | None = None, header=HEADER) -> Path:
    write_metrics_csv(root / "csv" / "metrics.csv", rows, header)
    if overrides is not None:
        (root / ".hydra").mkdir(parents=True, exist_ok=True)
        (root / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return root


def expected(key: str, rows=ROWS) -> list[Point]:
    return [Point(r["step"], r.get("epoch"), float(r[key])) for r in rows if key in r]


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") and p.is_file()]


# --------------------------------------------------------------------------------------- reading

def test_read_metrics_csv_returns_exactly_the_written_values(tmp_path):
    series = read_metrics_csv(write_metrics_csv(tmp_path / "metrics.csv"))
    assert set(series) == {k for k in HEADER if k not in ("epoch", "step")}
    for key in series:
        assert series[key] == expected(key), key
    assert series["lr-Adam"][0].epoch is None  # LearningRateMonitor rows carry no epoch


def test_read_metrics_csv_skips_metrics_never_logged(tmp_path):
    series = read_metrics_csv(write_metrics_csv(tmp_path / "m.csv", ROWS, [*HEADER, "val/emd"]))
    assert "val/emd" not in series


@pytest.mark.parametrize("text, match", [
    ("", r"not a Lightning metrics.csv"),
    ("a,b\n1,2\n", r"'step' column"),
    ("epoch,step,val/cd\n0,3,abc\n", r"line 2, column 'val/cd': 'abc' is not a number"),
    ("epoch,step\n0,1,2,3\n", r"line 2 has 4 cells for 2 columns"),
])
def test_read_metrics_csv_names_the_file_when_not_lightning(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        read_metrics_csv(path)
    assert str(path) in str(info.value)


def test_read_metrics_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_metrics_csv(tmp_path / "nope.csv")


def test_final_metrics_from_csv_then_json(tmp_path):
    run = make_run(tmp_path / "run")
    m = final_metrics(run)
    assert m == {"lr-Adam": 0.0005, "test/cd": 0.019, "test/linear_probe_acc": 0.75, "train/loss_epoch": 0.09375,
                 "train/loss_step": 0.0625, "val/cd": 0.02, "val/fscore": 0.4}
    (run / "final_metrics.json").write_text(json.dumps({"val/cd": 0.0199, "test/emd": 0.5}))
    m = final_metrics(run)
    assert m["val/cd"] == 0.0199 and m["test/emd"] == 0.5 and m["val/fscore"] == 0.4  # JSON first, CSV fills in
    eval_run = tmp_path / "eval"
    eval_run.mkdir()
    (eval_run / "metrics.json").write_text(json.dumps({"task": "generation", "metrics": {"mmd_cd": 0.1, "n": 3}}))
    assert final_metrics(eval_run) == {"mmd_cd": 0.1, "n": 3.0}


# --------------------------------------------------------------------------------------- figures

def test_metric_groups():
    keys = [k for k in HEADER if k not in ("epoch", "step")]
    assert metric_groups(keys) == [
        ("losses", ["train/loss_epoch", "train/loss_step"]),
        ("cd", ["val/cd", "test/cd"]),
        ("fscore", ["val/fscore"]),
        (TEST_PANEL, ["test/linear_probe_acc"]),
        ("learning rate", ["lr-Adam"]),
    ]
    assert metric_groups(["train/loss", "val/loss", "val/emd"])[0] == ("losses", ["train/loss", "val/loss"])


def test_run_figure_lines_equal_the_csv(tmp_path):
    series = read_metrics_csv(write_metrics_csv(tmp_path / "metrics.csv"))
    fig = build_run_figure(series)
    axes = [ax for ax in fig.axes if ax.get_title()]  # the panels (not the secondary epoch axes)
    assert [ax.get_title() for ax in axes] == ["losses", "cd", "fscore", TEST_PANEL, "learning rate"]
    by_title = {ax.get_title(): ax for ax in axes}
    for title, keys in metric_groups(list(series)):
        if title == TEST_PANEL:
            assert "test/linear_probe_acc = 0.75" in by_title[title].texts[0].get_text()
            continue
        lines = {ln.get_label(): ln for ln in by_title[title].get_lines()}
        assert set(lines) == set(keys)
        for key in keys:
            assert list(lines[key].get_xdata()) == [p.step for p in expected(key)]
            assert list(lines[key].get_ydata()) == [p.value for p in expected(key)]
    assert by_title["losses"].get_yscale() == "log" and by_title["cd"].get_yscale() == "log"
    assert by_title["fscore"].get_yscale() == "linear"


def test_losses_that_go_negative_stay_linear():
    series = {"train/loss_d": [Point(0, 0, -1.0), Point(1, 0, 2.0)], "train/loss_g": [Point(0, 0, 1.0)]}
    fig = build_run_figure(series)
    (ax,) = [ax for ax in fig.axes if ax.get_title() == "losses"]
    assert ax.get_yscale() == "linear"


def test_build_run_figure_needs_metrics():
    with pytest.raises(ValueError, match="no metrics"):
        build_run_figure({})


def test_plot_run_curves_writes_a_png_atomically(tmp_path):
    run = make_run(tmp_path / "run", overrides=["model.latent_dim=16"])
    path = plot_run_curves(run)
    assert path == run / "curves.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 0 and im.size[1] > 0
    assert _no_temp_files(run)
    # a metrics.csv path works too, and --out style destinations
    out = plot_run_curves(run / "csv" / "metrics.csv", out=tmp_path / "pics" / "x.png")
    assert out.is_file() and _no_temp_files(tmp_path / "pics")


def test_plot_run_curves_does_not_touch_pyplot(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plot_run_curves(make_run(tmp_path / "run"))
    assert matplotlib.get_backend() == backend


def test_plot_run_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        plot_run_curves(tmp_path)
    write_metrics_csv(tmp_path / "csv" / "metrics.csv", rows=[])
    with pytest.raises(ValueError, match="no metric values"):
        plot_run_curves(tmp_path)


# --------------------------------------------------------------------------------------- multiruns

def make_multirun(root: Path) -> Path:
    """Jobs 0, 1, 2, 10 (numeric order is not text order) and a job without metrics (a crashed one)."""
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for job, lr in [(0, 0.001), (1, 0.002), (2, 0.004), (10, 0.008)]:
        rows = [dict(r) for r in ROWS]
        for r in rows:  # each job its own numbers: scale the validation Chamfer by the job number
            if "val/cd" in r:
                r["val/cd"] = r["val/cd"] * (job + 1)
        make_run(root / str(job), rows, overrides=[f"model.optimizer.lr={lr}", "trainer.max_epochs=2"])
    (root / "3" / ".hydra").mkdir(parents=True)  # no metrics
    (root / "10" / "final_metrics.json").write_text(json.dumps({"test/emd": 1.5}))
    return root


def test_summarize_multirun_rows_and_csv(tmp_path):
    sweep = make_multirun(tmp_path / "sweep")
    assert is_multirun_dir(sweep) and not is_multirun_dir(sweep / "0")
    assert [p.name for p in find_jobs(sweep)] == ["0", "1", "2", "10"]
    rows, path = summarize_multirun(sweep)
    assert path == sweep / "summary.csv" and _no_temp_files(sweep)
    assert [r["job"] for r in rows] == [0, 1, 2, 10]
    assert rows[1]["overrides"] == "model.optimizer.lr=0.002 trainer.max_epochs=2"
    assert rows[2]["val/cd"] == pytest.approx(0.02 * 3)
    with open(path, newline="") as fh:
        table = list(csv.DictReader(fh))
    columns = list(table[0])
    metrics = ["lr-Adam", "test/cd", "test/emd", "test/linear_probe_acc", "train/loss_epoch", "train/loss_step",
               "val/cd", "val/fscore"]
    assert columns == ["job", "overrides", *metrics]
    assert [t["job"] for t in table] == ["0", "1", "2", "10"]
    assert [t["overrides"] for t in table] == [r["overrides"] for r in rows]
    for t, r in zip(table, rows):
        for m in metrics:
            assert (float(t[m]) if t[m] else None) == r.get(m)
    assert table[0]["test/emd"] == "" and float(table[3]["test/emd"]) == 1.5


def test_summarize_multirun_without_metrics(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    assert summarize_multirun(tmp_path) == ([], None)
    assert not (tmp_path / "summary.csv").exists()
    assert plot_multirun_curves(tmp_path) is None


def test_print_summary_table(tmp_path):
    rows, _ = summarize_multirun(make_multirun(tmp_path / "sweep"))
    buf = io.StringIO()
    print_summary_table(rows, file=buf, metrics=["val/cd", "test/emd"])
    text = buf.getvalue()
    lines = [ln for ln in text.splitlines() if "model.optimizer.lr=" in ln]
    assert len(lines) == 4
    assert "0.002" in lines[1] and "0.06" in lines[2] and "1.5" in lines[3]


def test_multirun_figure_one_line_per_job(tmp_path):
    sweep = make_multirun(tmp_path / "sweep")
    path = plot_multirun_curves(sweep)
    assert path == sweep / "curves.png" and _no_temp_files(sweep)
    with Image.open(path) as im:
        assert im.format == "PNG"
    jobs = [(str(j), read_metrics_csv(sweep / str(j) / "csv" / "metrics.csv")) for j in (0, 1, 2, 10)]
    fig = build_multirun_figure(jobs)
    assert [ax.get_title() for ax in fig.axes] == ["train/loss_epoch", "val/cd", "val/fscore"]
    lines = fig.axes[1].get_lines()
    assert [ln.get_label() for ln in lines] == ["0", "1", "2", "10"]
    assert list(lines[3].get_ydata()) == pytest.approx([0.04 * 11, 0.02 * 11])


# --------------------------------------------------------------------------------------- the callback

class _Logger:
    def __init__(self, path: Path) -> None:
        self.saved = 0
        self.experiment = type("E", (), {"metrics_file_path": str(path)})()

    def save(self) -> None:
        self.saved += 1


class _Trainer:
    def __init__(self, root: Path, loggers, rank0: bool = True) -> None:
        self.loggers = loggers
        self.default_root_dir = str(root)
        self.is_global_zero = rank0


def test_training_curves_callback(tmp_path, caplog):
    from pc3d.viz.callbacks import TrainingCurves

    run = make_run(tmp_path / "run")
    lg = _Logger(run / "csv" / "metrics.csv")
    cb = TrainingCurves(dirpath=run)
    with caplog.at_level(logging.INFO, logger="pc3d.viz"):
        cb.on_fit_end(_Trainer(run, [lg]), None)
    assert lg.saved == 1 and cb.written == run / "curves.png" and (run / "curves.png").is_file()
    assert f"training curves: {run / 'curves.png'}" in caplog.text
    # not rank 0: nothing
    other = TrainingCurves(dirpath=tmp_path / "other")
    other.on_fit_end(_Trainer(run, [lg], rank0=False), None)
    assert other.written is None


def test_training_curves_callback_never_fails_the_run(tmp_path, caplog):
    from pc3d.viz.callbacks import TrainingCurves

    bad = tmp_path / "bad"
    (bad / "csv").mkdir(parents=True)
    (bad / "csv" / "metrics.csv").write_text("no,header\n1,2\n")
    cb = TrainingCurves(dirpath=bad)
    with caplog.at_level(logging.WARNING, logger="pc3d.viz"):
        cb.on_exception(_Trainer(bad, []), None, RuntimeError("boom"))
    assert cb.written is None and "could not draw the training curves" in caplog.text
    empty = TrainingCurves(dirpath=tmp_path / "empty")  # nothing logged (fast_dev_run): quietly nothing
    assert empty.write(_Trainer(tmp_path / "empty", [])) is None
