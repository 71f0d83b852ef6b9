"""Metrics: pure functions first (probe, reconstruction, generative, FPD)."""

from pc3d.metrics.generative import (
    GenerationMetrics,
    distance_matrix,
    evaluate_generation,
    jsd_between_sets,
    mmd_cov,
    normalize_sets,
    one_nna,
)
from pc3d.metrics.probe import ProbeResult, linear_probe

__all__ = [
    "GenerationMetrics",
    "ProbeResult",
    "distance_matrix",
    "evaluate_generation",
    "jsd_between_sets",
    "linear_probe",
    "mmd_cov",
    "normalize_sets",
    "one_nna",
]
