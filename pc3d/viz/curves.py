"""Training curves as pictures, and sweep summaries, from Lightning's ``metrics.csv``.

A run folder (``pc3d-train``) holds ``csv/metrics.csv`` (Lightning's CSVLogger: a header
``epoch,step,<metric>,...`` and *sparse* rows: each row fills only the metrics logged at that
step). A multirun folder (``pc3d-train -m``) holds ``multirun.yaml`` and one run folder per job
(``0/``, ``1/`` ...), each with ``.hydra/overrides.yaml``.

* :func:`read_metrics_csv`: ``{metric: [Point(step, epoch, value), ...]}`` in file order.
* :func:`final_metrics`: a run's final metrics: ``final_metrics.json`` when present (written by
  ``train()``), else an eval ``metrics.json``, else the last value of each column of ``metrics.csv``.
* :func:`build_run_figure` / :func:`plot_run_curves`: one figure, one panel per metric group
  (all losses together, train solid and val dashed; then one panel per other metric, its
  ``train/``, ``val/`` and ``test/`` values together; the learning rate last), x = global step
  (top axis: epochs done). Written to ``<run>/curves.png``.
* :func:`summarize_multirun`, :func:`print_summary_table`, :func:`plot_multirun_curves`: one row
  per job (job number, overrides ``a=b c=d``, final metrics) into ``<multirun>/summary.csv``, a
  printed table, and ``<multirun>/curves.png`` with every job's validation curves overlaid.

Every file is written atomically (a temp file in the same folder, then ``os.replace``). Figures
are plain :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas: pyplot and the
caller's matplotlib backend are never touched. Used by ``pc3d-plot``
(:mod:`pc3d.cli.plot`), the :class:`~pc3d.viz.callbacks.TrainingCurves` callback (every
``pc3d-train`` run) and the multirun Hydra callback (:mod:`pc3d.cli.hydra_callbacks`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from pc3d.io import atomic_open

__all__ = [
    "Point", "read_metrics_csv", "find_metrics_csv", "final_metrics", "run_overrides", "find_jobs",
    "is_multirun_dir", "build_run_figure", "plot_run_curves", "summarize_multirun", "write_summary_csv",
    "print_summary_table", "build_multirun_figure", "plot_multirun_curves", "metric_groups", "run_folder",
]

#: Columns of a Lightning metrics.csv that are not metrics.
INDEX_COLUMNS = ("epoch", "step")
#: File names of a run's final metrics, first found wins (``train()``'s, then ``pc3d-eval``'s).
FINAL_METRICS_FILES = ("final_metrics.json", "metrics.json")


class Point(NamedTuple):
    """One logged value: the global ``step``, the ``epoch`` (``None`` when the row has none) and the ``value``."""

    step: int
    epoch: int | None
    value: float


# --------------------------------------------------------------------------------------- reading

def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: line {line}, column {column!r}: {text!r} is not a number "
                         "(expected a Lightning CSVLogger metrics.csv)") from None


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[Point]]:
    """Read a Lightning ``metrics.csv``: ``{metric: [Point(step, epoch, value), ...]}`` in file order.

    Rows are sparse (each fills only some columns); empty cells are skipped, so every list holds
    exactly the values logged for its metric. Metrics never logged are left out. Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file (and the line) when
    it is not a Lightning metrics.csv (no ``step`` column, a non-numeric cell, an empty file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a Lightning metrics.csv)")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "step" not in header:
            raise ValueError(f"{path}: not a Lightning metrics.csv (expected a header with a 'step' column, "
                             f"got {header!r})")
        i_step = header.index("step")
        i_epoch = header.index("epoch") if "epoch" in header else None
        series: dict[str, list[Point]] = {}
        for lineno, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise ValueError(f"{path}: line {lineno} has {len(row)} cells for {len(header)} columns "
                                 "(expected a Lightning metrics.csv)")
            step_text = row[i_step].strip() if i_step < len(row) else ""
            step = int(_number(step_text, path, lineno, "step")) if step_text else 0
            epoch_text = row[i_epoch].strip() if i_epoch is not None and i_epoch < len(row) else ""
            epoch = int(_number(epoch_text, path, lineno, "epoch")) if epoch_text else None
            for i, cell in enumerate(row):
                name = header[i]
                if name in INDEX_COLUMNS or not cell.strip():
                    continue
                series.setdefault(name, []).append(Point(step, epoch, _number(cell.strip(), path, lineno, name)))
    return {k: series[k] for k in header if k in series}


def find_metrics_csv(run_dir: str | os.PathLike) -> Path | None:
    """The ``metrics.csv`` of a run folder: ``csv/metrics.csv`` (pc3d's CSV logger), ``metrics.csv``, or
    the newest ``csv/version_*/metrics.csv`` / ``lightning_logs/version_*/metrics.csv``; ``None`` if none.
    ``run_dir`` may also be the ``metrics.csv`` file itself."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir if run_dir.suffix.lower() == ".csv" else None
    for candidate in (run_dir / "csv" / "metrics.csv", run_dir / "metrics.csv"):
        if candidate.is_file():
            return candidate
    versions = [*run_dir.glob("csv/version_*/metrics.csv"), *run_dir.glob("lightning_logs/version_*/metrics.csv")]
    return max(versions, key=lambda p: p.stat().st_mtime) if versions else None


def run_folder(path: Path) -> Path:
    """The run folder of a metrics.csv path (or a folder)."""
    if path.is_file():
        parent = path.parent
        if parent.name.startswith("version_"):
            parent = parent.parent
        return parent.parent if parent.name in ("csv", "lightning_logs") else parent
    return path


def _flat_numbers(obj: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in obj.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[str(key)] = float(value)
    return out


def _read_metrics_json(path: Path) -> dict[str, float]:
    """A flat ``{metric: number}`` JSON (``final_metrics.json``), or ``pc3d-eval``'s ``metrics.json``
    (its ``"metrics"`` entry)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    if isinstance(data.get("metrics"), Mapping):
        return _flat_numbers(data["metrics"])
    return _flat_numbers(data)


def last_values(series: Mapping[str, Sequence[Point]]) -> dict[str, float]:
    """The last logged value of every metric."""
    return {k: float(v[-1].value) for k, v in series.items() if v}


def final_metrics(run_dir: str | os.PathLike) -> dict[str, float]:
    """A run's final metrics ``{metric: value}``: ``<run>/final_metrics.json`` (written by ``train()``) when
    present, else an eval ``<run>/metrics.json``, else the last value of each column of its metrics.csv
    (values of the CSV missing from the JSON are added). ``{}`` when the run has none of them."""
    run_dir = Path(run_dir)
    metrics: dict[str, float] = {}
    for name in FINAL_METRICS_FILES:
        path = run_dir / name
        if path.is_file():
            metrics = _read_metrics_json(path)
            break
    csv_path = find_metrics_csv(run_dir)
    if csv_path is not None:
        for key, value in last_values(read_metrics_csv(csv_path)).items():
            metrics.setdefault(key, value)
    return dict(sorted(metrics.items()))


def has_metrics(run_dir: str | os.PathLike) -> bool:
    """Does ``run_dir`` hold a metrics source (a metrics.csv or a final / eval metrics JSON)?"""
    run_dir = Path(run_dir)
    return find_metrics_csv(run_dir) is not None or any((run_dir / n).is_file() for n in FINAL_METRICS_FILES)


def run_overrides(run_dir: str | os.PathLike) -> list[str]:
    """The command-line overrides of a run: ``<run>/.hydra/overrides.yaml`` (``[]`` when missing). In a
    multirun these are the job's own values (the sweep's and the command line's)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list of overrides, got {type(data).__name__}")
    return [str(o) for o in data]


def _job_sort_key(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def find_jobs(multirun_dir: str | os.PathLike) -> list[Path]:
    """The job folders of a multirun folder that hold metrics, sorted by job number (numeric names first)."""
    multirun_dir = Path(multirun_dir)
    if not multirun_dir.is_dir():
        return []
    jobs = [p for p in multirun_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and has_metrics(p)]
    return sorted(jobs, key=_job_sort_key)


def is_multirun_dir(path: str | os.PathLike) -> bool:
    """A Hydra multirun folder: it has ``multirun.yaml``, or numbered sub-folders that are runs."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "multirun.yaml").is_file():
        return True
    return any(p.name.isdigit() for p in find_jobs(path))


# --------------------------------------------------------------------------------------- grouping

_SPLITS = ("train", "val", "test")
#: Title of the panel of test-only metrics (drawn as text: one value each).
TEST_PANEL = "test metrics"


def _split_of(key: str) -> str | None:
    head = key.split("/", 1)[0] if "/" in key else ""
    return head if head in _SPLITS else None


def _base_name(key: str) -> str:
    """``val/cd`` -> ``cd``; ``train/fscore_epoch`` -> ``fscore``."""
    base = key.split("/", 1)[1] if _split_of(key) else key
    return re.sub(r"_(step|epoch)$", "", base)


def _is_lr(key: str) -> bool:
    return key == "lr" or key.startswith("lr-") or key.endswith("/lr") or key.startswith("lr/")


def metric_groups(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Panels for a run figure: ``[(title, [metric keys]), ...]``.

    ``losses`` first (every key containing ``loss``), then one panel per other metric, named by its
    base name (``val/cd``, ``train/cd`` and ``test/cd`` share the panel ``cd``) in first-logged order,
    then ``test metrics`` (every ``test/*`` metric without a train/val panel of its own: their values
    as text), then ``learning rate`` (``lr-Adam`` ..., from LearningRateMonitor) when logged.
    """
    losses = [k for k in keys if "loss" in k and not _is_lr(k)]
    lrs = [k for k in keys if _is_lr(k)]
    others: dict[str, list[str]] = {}
    for k in keys:
        if k in losses or k in lrs or k in INDEX_COLUMNS:
            continue
        others.setdefault(_base_name(k), []).append(k)
    order = {None: 0, "train": 1, "val": 2, "test": 3}
    groups = [("losses", sorted(losses, key=lambda k: order[_split_of(k)]))] if losses else []
    test_only = [k for ks in others.values() if all(_split_of(k) == "test" for k in ks) for k in ks]
    groups += [(name, sorted(ks, key=lambda k: order[_split_of(k)])) for name, ks in others.items()
               if not all(k in test_only for k in ks)]
    if test_only:
        groups.append((TEST_PANEL, test_only))
    if lrs:
        groups.append(("learning rate", lrs))
    return groups


def _log_scale(title: str, values: Sequence[float]) -> bool:
    positive = bool(values) and all(v > 0 and math.isfinite(v) for v in values)
    if not positive:
        return False
    name = title.lower()
    return "loss" in name or name.startswith(("cd", "chamfer")) or "learning rate" in name or \
        (max(values) / min(values) > 100)


def _style(key: str) -> dict[str, Any]:
    split = _split_of(key)
    if split == "val":
        return {"linestyle": "--", "marker": "o", "markersize": 3}
    if split == "test":
        return {"linestyle": "none", "marker": "*", "markersize": 10}
    return {"linestyle": "-"}


def _epoch_axis(ax, series: Mapping[str, Sequence[Point]]) -> None:
    """A top x axis in epochs completed, when the run spans 2+ epochs of the same number of steps."""
    end_of: dict[int, int] = {}
    for key, points in series.items():
        if _split_of(key) == "test":  # logged after fit, at the last step: says nothing about epochs
            continue
        for p in points:
            if p.epoch is not None:
                end_of[p.epoch] = max(end_of.get(p.epoch, p.step), p.step)
    if len(end_of) < 2:
        return
    epochs = sorted(end_of)
    first, last = epochs[0], epochs[-1]
    per_epoch = (end_of[last] - end_of[first]) / max(1, last - first)
    if per_epoch <= 0 or any(abs(end_of[e] - end_of[first] - (e - first) * per_epoch) > 1 for e in epochs):
        return  # uneven epochs (a resumed run, limit_train_batches changed ...): steps only
    offset = end_of[first] - (first + 1) * per_epoch  # the step at which epoch 0 starts, about 0

    def to_epoch(s):
        return (s - offset) / per_epoch

    def to_step(e):
        return e * per_epoch + offset

    top = ax.secondary_xaxis("top", functions=(to_epoch, to_step))
    top.set_xlabel("epoch", fontsize=8)
    top.tick_params(labelsize=7)


def _new_figure(n_panels: int, ncols: int = 3, panel_size: tuple[float, float] = (4.6, 3.3)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = 2 if n_panels == 4 else max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def build_run_figure(series: Mapping[str, Sequence[Point]], title: str | None = None):
    """A :class:`matplotlib.figure.Figure` of one run's curves (see :func:`metric_groups` for the panels).

    Each metric is one line, x = global step, y = its values in file order (train solid, val
    dashed with dots, test a star). Losses, Chamfer distances and learning rates use a log y axis
    when all their values are positive. Raises ``ValueError`` when ``series`` holds no metric.
    """
    groups = metric_groups([k for k, v in series.items() if v])
    if not groups:
        raise ValueError("no metrics to plot")
    fig, axes = _new_figure(len(groups))
    for ax, (name, keys) in zip(axes, groups):
        if name == TEST_PANEL:
            _text_panel(ax, name, {k: series[k][-1].value for k in keys})
            continue
        values: list[float] = []
        for key in keys:
            pts = series[key]
            ax.plot([p.step for p in pts], [p.value for p in pts], label=key, **_style(key))
            values += [p.value for p in pts]
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(True, alpha=0.3)
        if _log_scale(name, values):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        _epoch_axis(ax, {k: series[k] for k in keys})
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _text_panel(ax, title: str, values: Mapping[str, float]) -> None:
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    text = "\n".join(f"{k} = {v:.4g}" for k, v in values.items())
    ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", ha="left", family="monospace", fontsize=8)


def _save_figure(fig, out: Path, dpi: int = 100) -> Path:
    out = Path(out)
    with atomic_open(out) as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return out


def _title(run_dir: Path, overrides: Sequence[str]) -> str:
    text = str(run_dir)
    if overrides:
        text += "\n" + " ".join(overrides)
    return text if len(text) < 200 else text[:197] + "..."


def plot_run_curves(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw a run's ``metrics.csv`` into ``out`` (default ``<run>/curves.png``), atomically; returns the path.

    ``run_dir`` is a run folder (``csv/metrics.csv``) or a metrics.csv file. Raises
    ``FileNotFoundError`` when there is no metrics.csv, ``ValueError`` (naming the file) when it
    is not a Lightning metrics.csv or logs nothing.
    """
    given = Path(run_dir)
    csv_path = find_metrics_csv(given)
    if csv_path is None:
        raise FileNotFoundError(f"{given}: no metrics.csv (expected a run folder with csv/metrics.csv)")
    run = run_folder(csv_path) if given.is_file() else given
    series = read_metrics_csv(csv_path)
    if not series:
        raise ValueError(f"{csv_path}: no metric values logged yet")
    fig = build_run_figure(series, title=_title(run, run_overrides(run)))
    return _save_figure(fig, Path(out) if out is not None else run / "curves.png")


# --------------------------------------------------------------------------------------- multiruns

def summarize_multirun(multirun_dir: str | os.PathLike, out: str | os.PathLike | None = None
                       ) -> tuple[list[dict[str, Any]], Path | None]:
    """One row per job of a multirun: ``{"job": ..., "overrides": "a=b c=d", <metric>: value, ...}``.

    Jobs are the sub-folders with a metrics source (see :func:`final_metrics`), sorted by job
    number. The rows are written to ``out`` (default ``<multirun>/summary.csv``, atomically) with
    the columns ``job, overrides`` and then every metric of any job, sorted (empty where a job
    lacks it). Returns ``(rows, path)``; ``([], None)`` and no file when no job has metrics.
    """
    multirun_dir = Path(multirun_dir)
    rows: list[dict[str, Any]] = []
    for job in find_jobs(multirun_dir):
        row: dict[str, Any] = {"job": int(job.name) if job.name.isdigit() else job.name,
                               "overrides": " ".join(run_overrides(job))}
        row.update(final_metrics(job))
        rows.append(row)
    if not rows:
        return [], None
    return rows, write_summary_csv(rows, Path(out) if out is not None else multirun_dir / "summary.csv")


def summary_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``job, overrides`` then the union of the rows' metric names, sorted."""
    metrics = sorted({k for r in rows for k in r if k not in ("job", "overrides")})
    return ["job", "overrides", *metrics]


def write_summary_csv(rows: Sequence[Mapping[str, Any]], out: str | os.PathLike) -> Path:
    """Write summary rows as CSV (see :func:`summary_columns`), atomically; floats in full precision."""
    columns = summary_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c])
                         for c in columns])
    out = Path(out)
    with atomic_open(out) as fh:
        fh.write(buf.getvalue().encode("utf-8"))
    return out


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_summary_table(rows: Sequence[Mapping[str, Any]], console: Any = None, file: IO[str] | None = None,
                        title: str | None = None, metrics: Sequence[str] | None = None) -> None:
    """Print summary rows as a table (rich): job, overrides, then ``metrics`` (default: every metric).

    Overrides shared by every job are left out of the rows and listed once, under the table.

    ``console``: a :class:`rich.console.Console`; else one writing to ``file`` (default stdout).
    """
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console(file=file)
        if not console.is_terminal:  # a log file or a pipe: wide enough for a dozen metrics
            console = Console(file=file, width=200)
    columns = summary_columns(rows) if metrics is None else ["job", "overrides", *metrics]
    tokens = [str(r.get("overrides") or "").split() for r in rows]
    common = [t for t in tokens[0] if all(t in ts for ts in tokens[1:])] if len(rows) > 1 else []
    rows = [{**r, "overrides": " ".join(t for t in ts if t not in common)} for r, ts in zip(rows, tokens)]
    table = Table(title=title, show_lines=False, caption=f"every job: {' '.join(common)}" if common else None)
    for c in columns:
        table.add_column(c, justify="right" if c not in ("overrides",) else "left",
                         overflow="fold")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in columns))
    console.print(table)


def _short_label(row: Mapping[str, Any], limit: int = 60) -> str:
    text = f"{row['job']}: {row.get('overrides') or '(no overrides)'}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def build_multirun_figure(jobs: Sequence[tuple[str, Mapping[str, Sequence[Point]]]], title: str | None = None):
    """A figure overlaying jobs' curves: one panel per validation metric (``val/*``) and per epoch-level
    training loss (``train/*loss*`` but ``*_step``) of any job, losses first, one line per job labelled
    ``jobs[i][0]``.
    ``jobs``: ``[(label, series), ...]``. Raises ``ValueError`` when there is nothing to plot."""
    keys: list[str] = []
    for _, series in jobs:
        keys += [k for k, v in series.items() if v and k not in keys]
    panels = [k for k in keys if _split_of(k) == "val"
              or (_split_of(k) == "train" and "loss" in k and not k.endswith("_step"))]
    if not panels:
        panels = [k for k in keys if "loss" in k]
    panels.sort(key=lambda k: (0 if "loss" in k else 1, keys.index(k)))
    if not panels:
        raise ValueError("no validation metrics or losses to plot")
    fig, axes = _new_figure(len(panels))
    for ax, key in zip(axes, panels):
        values: list[float] = []
        for label, series in jobs:
            pts = series.get(key) or []
            if not pts:
                continue
            ax.plot([p.step for p in pts], [p.value for p in pts], marker="o", markersize=3, label=label)
            values += [p.value for p in pts]
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(True, alpha=0.3)
        if _log_scale(_base_name(key) if "loss" not in key else key, values):
            ax.set_yscale("log")
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_multirun_curves(multirun_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path | None:
    """Overlay the validation curves of a multirun's jobs (legend: job number and overrides) into ``out``
    (default ``<multirun>/curves.png``), atomically. ``None`` (no file) when no job has a metrics.csv."""
    multirun_dir = Path(multirun_dir)
    found = []
    for job in find_jobs(multirun_dir):
        csv_path = find_metrics_csv(job)
        if csv_path is None:
            continue
        series = read_metrics_csv(csv_path)
        if series:
            found.append((job, run_overrides(job), series))
    common = [o for o in found[0][1] if all(o in f[1] for f in found[1:])] if len(found) > 1 else []
    jobs = [(_short_label({"job": job.name, "overrides": " ".join(o for o in overrides if o not in common)}),
             series) for job, overrides, series in found]
    if not jobs:
        return None
    title = f"{multirun_dir} ({len(jobs)} jobs)" + (f"\nevery job: {' '.join(common)}" if common else "")
    fig = build_multirun_figure(jobs, title=title if len(title) < 200 else title[:197] + "...")
    return _save_figure(fig, Path(out) if out is not None else multirun_dir / "curves.png")
