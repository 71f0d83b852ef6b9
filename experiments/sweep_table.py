"""Tabulate a Hydra/Optuna sweep: one row per trial, sorted by the objective, and the winner.

    python experiments/sweep_table.py outputs/ae_pretrain/multiruns/<time> [--metrics test/cd,epoch] [--out t.md]

Reads, in the multirun dir that ``pc3d-train -m hparams_search=...`` made:

* every trial dir ``<multirun>/<n>/``: its overrides (``.hydra/overrides.yaml``), its config
  (``.hydra/config.yaml``: ``optimized_metric``, else ``monitor``) and the final value of every
  metric in its CSV log (``csv/metrics.csv``, found anywhere under the trial dir: the last
  non-empty value of each column);
* Optuna's ``optimization_results.yaml`` (best value and parameters) and the sweeper's direction
  and search space from the trials' ``.hydra/hydra.yaml`` (``hydra.sweeper``; minimize if absent).

Prints a Markdown table (rank, trial, objective, every searched or varying parameter, the
``test/`` twin of the objective if logged, ``--metrics`` columns), then the winning overrides and
a ``pc3d-train`` command that re-runs the winner alone. ``--out`` also writes the Markdown to a
file (atomically). A trial without a CSV log or without the objective is listed last as failed.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def final_metrics(csv_path: Path) -> dict[str, float]:
    """The last non-empty value of every column of a Lightning ``metrics.csv`` (as floats)."""
    out: dict[str, float] = {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k is None or v in (None, ""):
                    continue
                try:
                    out[k] = float(v)
                except ValueError:
                    continue
    return out


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


def read_trial(trial_dir: Path) -> dict[str, Any]:
    """Overrides, sweeper config, objective name and final metrics of one trial dir."""
    overrides = _load_yaml(trial_dir / ".hydra" / "overrides.yaml") or []
    cfg = _load_yaml(trial_dir / ".hydra" / "config.yaml") or {}
    hydra_cfg = (_load_yaml(trial_dir / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    csvs = sorted(trial_dir.rglob("metrics.csv"))
    metrics = final_metrics(csvs[0]) if csvs else {}
    objective_name = cfg.get("optimized_metric") or cfg.get("monitor")
    value = metrics.get(objective_name) if objective_name else None
    if value is not None and math.isnan(value):
        value = None
    return {"trial": int(trial_dir.name), "dir": trial_dir, "overrides": [str(o) for o in overrides],
            "params": dict(_split(str(o)) for o in overrides), "metrics": metrics, "objective_name": objective_name,
            "objective": value, "sweeper": hydra_cfg.get("sweeper") or {},
            "csv": csvs[0] if csvs else None}


def read_sweep(multirun_dir: str | Path) -> dict[str, Any]:
    """Every trial of ``multirun_dir`` plus Optuna's results and the direction."""
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such multirun dir")
    trials = [read_trial(p) for p in sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
              if p.is_dir() and p.name.isdigit() and (p / ".hydra").is_dir()]
    if not trials:
        raise FileNotFoundError(f"{root}: no trial dirs (<n>/.hydra/) in this multirun dir")
    results = _load_yaml(root / "optimization_results.yaml") or {}
    sweeper = trials[0]["sweeper"] or (((_load_yaml(root / "multirun.yaml") or {}).get("hydra") or {})
                                       .get("sweeper")) or {}
    direction = str(sweeper.get("direction") or "minimize")
    searched = list((results.get("best_params") or {}).keys()) or list((sweeper.get("params") or {}).keys())
    return {"dir": root, "trials": trials, "results": results, "direction": direction, "searched": searched}


def sort_trials(trials: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Best first by the objective (``direction`` minimize | maximize); failed trials last."""
    sign = -1.0 if direction.lower().startswith("max") else 1.0
    return sorted(trials, key=lambda t: (t["objective"] is None, sign * (t["objective"] or 0.0), t["trial"]))


def _fmt(v: Any) -> str:
    """A table cell: floats (and override strings that are floats) to 6 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, str) and not v.lstrip("+-").isdigit():
        try:
            v = float(v)
        except ValueError:
            pass
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v).replace("|", "\\|")


def rerun_command(trial: dict[str, Any]) -> str:
    """A ``pc3d-train`` command that re-runs ``trial`` as a single run (no sweep).

    The trial's overrides, less the sweeper's own (``hydra.*``); the ``hparams_search`` file stays
    (it selects the experiment and may add the keys it searches), with ``hydra.mode=RUN``.
    """
    keep = [o for o in trial["overrides"] if not _split(o.lstrip("+~"))[0].startswith("hydra.")]
    if any(_split(o)[0] == "hparams_search" for o in keep):
        keep.append("hydra.mode=RUN")
    return " ".join(["pc3d-train", *keep])


def markdown(sweep: dict[str, Any], extra_metrics: list[str] | None = None) -> str:
    """The Markdown report: table of trials sorted by objective, then the winner."""
    trials = sort_trials(sweep["trials"], sweep["direction"])
    names = {t["objective_name"] for t in trials if t["objective_name"]}
    objective = names.pop() if len(names) == 1 else "objective"
    # searched keys first, then every other override that differs between trials
    keys = list(sweep["searched"])
    all_keys = sorted({k for t in trials for k in t["params"]})
    keys += [k for k in all_keys if k not in keys and len({t["params"].get(k) for t in trials}) > 1]
    fixed = [f"{k}={trials[0]['params'][k]}" for k in all_keys if k not in keys]
    metric_cols = []
    if objective.startswith("val/"):
        twin = "test/" + objective[len("val/"):]
        if any(twin in t["metrics"] for t in trials):
            metric_cols.append(twin)
    metric_cols += [m for m in (extra_metrics or []) if m not in metric_cols and m != objective]

    header = ["rank", "trial", objective, *keys, *metric_cols]
    lines = [f"Sweep {sweep['dir']} ({len(trials)} trials, {sweep['direction']} {objective})", ""]
    if fixed:
        lines += ["Fixed overrides: `" + " ".join(fixed) + "`", ""]
    align = ["---:"] * 3 + ["---"] * len(keys) + ["---:"] * len(metric_cols)
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for rank, t in enumerate(trials, 1):
        row = [str(rank) if t["objective"] is not None else "failed", str(t["trial"]), _fmt(t["objective"]),
               *(_fmt(t["params"].get(k)) for k in keys), *(_fmt(t["metrics"].get(m)) for m in metric_cols)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    results = sweep["results"]
    if "best_value" in results:
        lines.append(f"Optuna best value ({objective}): {_fmt(float(results['best_value']))}")
        best_params = results.get("best_params") or {}
        lines.append("Optuna best params: " + (" ".join(f"{k}={v}" for k, v in best_params.items()) or "—"))
    else:
        lines.append("No optimization_results.yaml (sweep unfinished, or not an Optuna sweep).")
    best = trials[0]
    if best["objective"] is not None:
        lines += [f"Winning trial {best['trial']} ({best['dir']}): {objective} = {_fmt(best['objective'])}",
                  "Winning overrides: " + " ".join(f"{k}={best['params'][k]}" for k in keys if k in best["params"]),
                  f"Re-run it alone: {rerun_command(best)}"]
    else:
        lines.append("No trial has the objective in its metrics.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", help="the sweep's dir: <log_dir>/<task>/multiruns/<time>")
    parser.add_argument("--metrics", default="", help="comma-separated extra metric columns (e.g. test/cd,epoch)")
    parser.add_argument("--out", default=None, help="also write the Markdown to this file (atomically)")
    args = parser.parse_args(argv)
    text = markdown(read_sweep(args.multirun_dir), [m for m in args.metrics.split(",") if m])
    print(text, end="")
    if args.out:
        from pc3d.io import atomic_write_text

        atomic_write_text(args.out, text)
    return text


if __name__ == "__main__":
    main()
