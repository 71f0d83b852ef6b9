"""``pc3d-plot``: training curves as a picture, and sweep summaries.

Usage::

    pc3d-plot outputs/train/runs/<time>                # -> <run>/curves.png, prints the final metrics
    pc3d-plot outputs/train/runs/<time> --out ae.png
    pc3d-plot outputs/train/multiruns/<time>           # -> summary.csv + a printed table + curves.png

A *run* folder holds ``csv/metrics.csv`` (every ``pc3d-train`` run; a ``metrics.csv`` file may be given
instead): its curves are drawn into ``<run>/curves.png`` (or ``--out``) and its final metrics printed
(``final_metrics.json`` when the run wrote one, else the last value of each column). A *multirun* folder
(``pc3d-train -m``: ``multirun.yaml`` and numbered job folders) gets ``summary.csv`` (one row per job:
job, overrides, final metrics), the same table printed, ``curves.png`` (or ``--out``) with every job's
validation curves overlaid, and each job's own ``curves.png``. ``pc3d-train`` writes all of these
itself at the end of a run or sweep; this command redraws them at any time, also while a run is going
on. Exit status 0 on success, 2 when the folder is missing, holds no metrics, or its metrics.csv is
not one Lightning wrote (the message names the path and what was expected).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXPECTED = ("expected a run folder with csv/metrics.csv (pc3d-train), a metrics.csv file, or a multirun folder "
            "with multirun.yaml and numbered job folders (pc3d-train -m)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pc3d-plot",
        description="Draw the logged curves (losses, metrics, learning rate) of a pc3d-train run into "
        "<run>/curves.png and print its final metrics; for a multirun (-m) folder, write summary.csv "
        "(each job's overrides and final metrics), print it as a table and draw every job's validation "
        "curves into <multirun>/curves.png.",
        epilog="examples:\n"
        "  pc3d-plot outputs/train/runs/2026-12-01_10-00-00\n"
        "  pc3d-plot outputs/train/multiruns/2026-12-01_10-00-00 --out sweep.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="a run folder, its metrics.csv, or a multirun folder")
    p.add_argument("--out", type=Path, default=None,
                   help="the picture to write (default: <path>/curves.png; for a multirun the overlay of its jobs)")
    p.add_argument("--quiet", action="store_true", help="print only the paths written, no metrics or table")
    return p


def _error(message: str) -> int:
    print(f"pc3d-plot: error: {message}", file=sys.stderr)
    return 2


def _plot_run(path: Path, out: Path | None, quiet: bool) -> int:
    from pc3d.viz.curves import final_metrics, plot_run_curves, run_folder

    png = plot_run_curves(path, out=out)
    print(f"curves: {png.resolve()}")
    if not quiet:
        run = run_folder(path) if path.is_file() else path
        metrics = final_metrics(run)
        if metrics:
            width = max(len(k) for k in metrics)
            print("final metrics:")
            for key, value in metrics.items():
                print(f"  {key:<{width}} = {value:.6g}")
    return 0


def _plot_multirun(path: Path, out: Path | None, quiet: bool) -> int:
    from pc3d.viz.curves import (
        find_jobs,
        find_metrics_csv,
        plot_multirun_curves,
        plot_run_curves,
        print_summary_table,
        summarize_multirun,
    )

    rows, summary = summarize_multirun(path)
    if not rows:
        return _error(f"{path}: no job folder holds metrics ({EXPECTED})")
    for job in find_jobs(path):
        if find_metrics_csv(job) is not None:
            try:
                png = plot_run_curves(job)
            except ValueError as exc:  # a job that logged nothing yet: its row still counts
                print(f"pc3d-plot: warning: {exc}", file=sys.stderr)
                continue
            if not quiet:
                print(f"job {job.name} curves: {png.resolve()}")
    if not quiet:
        print_summary_table(rows, title=f"{path}: {len(rows)} job(s)")
    print(f"summary: {summary.resolve()}")
    try:
        png = plot_multirun_curves(path, out=out)
    except ValueError as exc:
        png = None
        print(f"pc3d-plot: warning: no sweep curves ({exc})", file=sys.stderr)
    if png is not None:
        print(f"curves: {png.resolve()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-plot``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from pc3d.viz.curves import find_metrics_csv, is_multirun_dir

    path: Path = args.path
    if not path.exists():
        return _error(f"{path}: no such file or folder ({EXPECTED})")
    try:
        if find_metrics_csv(path) is not None:
            return _plot_run(path, args.out, args.quiet)
        if is_multirun_dir(path):
            return _plot_multirun(path, args.out, args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        return _error(str(exc))
    return _error(f"{path}: no metrics found ({EXPECTED})")


if __name__ == "__main__":
    sys.exit(main())
