"""Hydra callbacks of every pc3d job (registered in ``conf/hydra/default.yaml`` under ``hydra.callbacks``).

:class:`MultirunSummary`: at the end of a sweep (``pc3d-train -m ...``, ``pc3d-eval -m ...``, any
sweeper), one row per job into ``<sweep dir>/summary.csv`` (job number, overrides ``a=b c=d``, final
metrics), the same table printed, and ``<sweep dir>/curves.png`` with every job's validation curves.
See :mod:`pc3d.viz.curves`; ``pc3d-plot <sweep dir>`` does the same afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("pc3d")

__all__ = ["MultirunSummary"]


class MultirunSummary(Callback):
    """Summarise a finished sweep: ``summary.csv``, a printed table and ``curves.png`` in its folder.

    Does nothing (quietly) when no job left metrics (``final_metrics.json``, an eval ``metrics.json``
    or ``csv/metrics.csv``). Never fails the sweep: an error is logged as a warning.

    Args:
        print_table: print the table to the console (stdout) as well.
        plot: also draw ``<sweep dir>/curves.png``.
    """

    def __init__(self, print_table: bool = True, plot: bool = True) -> None:
        self.print_table = bool(print_table)
        self.plot = bool(plot)
        self.rows: list[dict[str, Any]] = []
        self.summary_csv: Path | None = None
        self.curves_png: Path | None = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            self.summarize(sweep_dir)
        except Exception as exc:  # a summary is never worth a failed sweep
            log.warning("could not summarise the sweep (%s: %s)", exc.__class__.__name__, exc)

    def summarize(self, sweep_dir: Path) -> None:
        from pc3d.viz.curves import plot_multirun_curves, print_summary_table, summarize_multirun

        if not sweep_dir.is_dir():
            return
        self.rows, self.summary_csv = summarize_multirun(sweep_dir)
        if not self.rows:
            return
        if self.print_table:
            print_summary_table(self.rows, title=f"sweep summary: {len(self.rows)} job(s)")
        log.info("sweep summary: %s", self.summary_csv)
        if self.plot:
            try:
                self.curves_png = plot_multirun_curves(sweep_dir)
            except ValueError as exc:  # e.g. eval jobs: metrics but no curves
                log.debug("no sweep curves: %s", exc)
            if self.curves_png is not None:
                log.info("sweep curves: %s", self.curves_png)
