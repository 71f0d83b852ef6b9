"""Helpers shared by the Hydra entry points."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("pc3d")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def instantiate_group(group: DictConfig | None) -> dict[str, Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); ``null`` entries are skipped.

    Returns ``{entry name: object}`` in config order.
    """
    from hydra.utils import instantiate

    if not group:
        return {}
    out = {}
    for name, sub in group.items():
        if isinstance(sub, Mapping | DictConfig) and "_target_" in sub:
            out[name] = instantiate(sub)
        elif sub is not None:
            raise ValueError(f"config entry '{name}' has no _target_: {OmegaConf.to_yaml(sub)}")
    return out


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (safe for ``torch.load(weights_only=True)``)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Turn Lightning's ``callback_metrics`` (tensors) into a sorted ``{name: float}`` dict."""
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))
