"""Metrics: pure functions first (probe, reconstruction, generative, FPD)."""

from pc3d.metrics.probe import ProbeResult, linear_probe

__all__ = ["ProbeResult", "linear_probe"]
