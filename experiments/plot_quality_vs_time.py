"""Validation quality against wall-clock time for the runs of ``experiments/generators_side_by_side.py``.

Reads every GAN stage of a side-by-side output folder (``<out>/<variant>/stage.json`` and the CSV log
``<out>/<variant>/csv/metrics.csv`` that Lightning's ``CSVLogger`` writes with ``save_dir=<run dir>,
name="csv", version=""``) and plots ``val/mmd_cd`` (log scale) and ``val/1nna_cd`` (100 samples vs
the first 100 VAL chairs, the models' own validation) against wall-clock seconds, one line per
variant, to a PNG (default ``docs/generators_quality_vs_time.png``).

Time axis (seconds from the start of the variant, its autoencoder stage included): the measured
seconds of the autoencoder stage the GAN stage started from (``ae_seconds`` in its ``stage.json``; 0
for ``faithful``) plus ``time/elapsed_s``, which the side-by-side script's ``WallClock`` callback logs
at every validation: seconds since the start of the stage's ``train(cfg)`` call (data loading and
every earlier validation included), taken before that validation's own metrics are computed. A log
without that column (an older run) falls back to ``(epoch + 1) / epochs_started * stage seconds``,
which assumes equally long epochs; the legend marks such lines "(epoch-scaled)". The dashed line is
the budget.

    python experiments/plot_quality_vs_time.py outputs/generators/side_by_side [--png docs/...png]

Needs matplotlib (``pip install -e ".[plots]"``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ("faithful", "treegan_warm", "lgan_fc", "lgan_tree", "treegan_warm_unif")
METRICS = (("val/mmd_cd", "val MMD-CD (squared units)", True), ("val/1nna_cd", "val 1-NNA-CD (0.5 is ideal)", False))


def _float(x: str | None) -> float | None:
    try:
        return None if x in (None, "") else float(x)
    except ValueError:
        return None


def read_curves(out: Path) -> dict[str, dict]:
    """``{variant: {"t": [...], "val/mmd_cd": [...], "val/1nna_cd": [...], "scaled": bool}}`` of every GAN
    stage in ``out`` (variants in the side-by-side order, then any other run dir with a stage.json)."""
    summary = out / "side_by_side.json"
    order = list(VARIANTS)
    if summary.is_file():
        order = list(json.loads(summary.read_text()).get("variants", order))
    dirs = [out / v for v in order] + sorted(d for d in out.iterdir() if d.is_dir() and d.name not in order)
    curves: dict[str, dict] = {}
    for d in dirs:
        stage, log = d / "stage.json", d / "csv" / "metrics.csv"
        if not (stage.is_file() and log.is_file()):
            continue
        rec = json.loads(stage.read_text())
        offset = float(rec.get("ae_seconds") or 0.0)
        with open(log, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if _float(r.get(METRICS[0][0])) is not None]
        if not rows:  # an autoencoder stage (val/cd only) or a run without validations
            continue
        scaled = _float(rows[0].get("time/elapsed_s")) is None
        curve: dict = {"t": [], "scaled": scaled, **{m: [] for m, _, _ in METRICS}}
        for r in rows:
            if scaled:
                epochs = max(1, int(rec.get("epochs_started") or 1))
                t = (int(float(r["epoch"])) + 1) / epochs * float(rec["seconds"])
            else:
                t = float(r["time/elapsed_s"])
            curve["t"].append(offset + t)
            for m, _, _ in METRICS:
                curve[m].append(_float(r.get(m)))
        curve["ae_seconds"] = offset
        curves[d.name] = curve
    return curves


def plot(curves: dict[str, dict], png: Path, budget: float | None = None, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pc3d.io import atomic_write

    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2), constrained_layout=True)
    for ax, (metric, label, log_y) in zip(axes, METRICS):
        for name, c in curves.items():
            pts = [(t, y) for t, y in zip(c["t"], c[metric]) if y is not None]
            if not pts:
                continue
            t, y = zip(*pts)
            ax.plot(t, y, marker="o", markersize=3, label=name + (" (epoch-scaled)" if c["scaled"] else ""))
        if budget:
            ax.axvline(budget, color="gray", linestyle="--", linewidth=1)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("wall-clock seconds from the variant's start (AE stage included)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="--out folder of experiments/generators_side_by_side.py")
    p.add_argument("--png", default=str(ROOT / "docs" / "generators_quality_vs_time.png"))
    args = p.parse_args(argv)
    out = Path(args.out)
    curves = read_curves(out)
    if not curves:
        raise SystemExit(f"{out}: no GAN stage with a csv/metrics.csv and validation metrics")
    budget = title = None
    summary = out / "side_by_side.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        budget = s.get("budget_s")
        n = (s.get("data") or {}).get("counts", {}).get("val")
        title = f"built-in chairs, budget {budget:.0f} s per variant; validation on {n} val chairs"
    png = plot(curves, Path(args.png), budget, title)
    for name, c in curves.items():
        print(f"{name}: {len(c['t'])} validations, t = {c['t'][0]:.0f} .. {c['t'][-1]:.0f} s")
    print(f"plot: {png}")
    return png


if __name__ == "__main__":
    main()
