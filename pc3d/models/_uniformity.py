"""The optional density-uniformity term shared by the systems (tree-GAN's generator, the autoencoder)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_uniformity_args"]


def check_uniformity_args(owner: str, weight: Any, k: Any, n_points: Any = None) -> tuple[float, int]:
    """Check a system's ``uniformity_weight`` / ``uniformity_k`` and return them as ``(float, int)``.

    ``weight`` must be a finite number >= 0 (0 switches the term off) and ``k`` an int >= 1; when
    the term is on and the network declares its point count ``n_points``, ``k < n_points`` too
    (:func:`pc3d.ops.uniformity_loss` needs ``1 <= k < N``). ``owner`` names the system in errors.
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{owner}: uniformity_weight must be a finite number >= 0, got {weight!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{owner}: uniformity_k must be an int >= 1, got {k!r}")
    if weight > 0 and isinstance(n_points, int) and not k < n_points:
        raise ValueError(f"{owner}: uniformity_k must be < the number of generated points ({n_points}), got {k}")
    return float(weight), int(k)
