"""Rebuild a pc3d model from a checkpoint written by ``pc3d-train``, safely."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch


def load_model(ckpt_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """Load a model checkpoint written by ``pc3d-train`` without unpickling arbitrary objects.

    The checkpoint is read with ``torch.load(weights_only=True)``; the networks are rebuilt from
    the plain-dict config stored under ``"pc3d_config"`` (see
    :class:`pc3d.callbacks.ConfigInCheckpoint`) and the weights loaded strictly. The model is
    returned in eval mode.
    """
    from hydra.utils import instantiate

    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    cfg = ckpt.get("pc3d_config")
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"{path}: no 'pc3d_config' with a 'model' entry; was it written by pc3d-train?")
    model = instantiate(cfg["model"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()
