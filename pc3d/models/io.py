"""Every checkpoint read of pc3d, in one place, safely (``torch.load(weights_only=True)``).

* :func:`load_model`: a ``pc3d-train`` model checkpoint -> the LightningModule;
* :func:`read_checkpoint_config`: the plain-dict run config stored in a checkpoint;
* :func:`load_frozen_autoencoder`: the same for an autoencoder, frozen (Image2Cloud, l-GAN);
* :func:`load_classifier`: the FPD feature network (a ``pc3d-train`` classifier checkpoint or a
  plain ``PointNetCls`` state_dict);
* :func:`fpd_scorer`: a :class:`pc3d.metrics.fpd.FPDScorer` built from files (the metric
  itself takes the network, so that pc3d.metrics never imports pc3d.models).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

__all__ = ["fpd_scorer", "load_classifier", "load_frozen_autoencoder", "load_model", "read_checkpoint_config"]


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


def read_checkpoint_config(ckpt_path: str | os.PathLike) -> dict | None:
    """The ``"pc3d_config"`` plain dict of a checkpoint (``None`` when absent), read with
    ``torch.load(weights_only=True)`` on the CPU."""
    obj = torch.load(Path(ckpt_path), map_location="cpu", weights_only=True)
    return obj.get("pc3d_config") if isinstance(obj, dict) else None


def load_frozen_autoencoder(ckpt_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a ``pc3d-train`` autoencoder checkpoint (``weights_only=True``), frozen.

    The model is put in eval mode (its BatchNorm uses the running statistics) and every
    parameter gets ``requires_grad=False``. Raises ``FileNotFoundError`` / ``ValueError`` for a
    missing file or a model without ``encode`` and ``decoder``.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"Image2Cloud: ae_ckpt not found: {path} (train one with experiment=ae_pretrain)")
    ae = load_model(path, map_location=map_location)
    if not (callable(getattr(ae, "encode", None)) and isinstance(getattr(ae, "decoder", None), nn.Module)):
        raise ValueError(
            f"Image2Cloud: {path} holds a {type(ae).__name__}, not an autoencoder (expected encode() and a decoder)"
        )
    ae.eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    return ae


def load_classifier(path: str | os.PathLike, *, k: int = 16, map_location: str | torch.device = "cpu") -> nn.Module:
    """The FPD feature network from a file, in eval mode.

    Accepts a ``pc3d-train`` checkpoint (``experiment=fpd_classifier_*``; its ``net`` is
    returned) or a plain state_dict of the common ``PointNetCls`` layout (e.g. tree-GAN's
    pretrained ``k = 16`` classifier), loaded strictly into ``PointNetClassifier(k)``. Both
    are read with ``torch.load(weights_only=True)``.
    """
    from pc3d.nn.pointnet_cls import PointNetClassifier

    path = Path(path)
    obj = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(obj, dict) and "pc3d_config" in obj:
        model = load_model(path, map_location=map_location)
        net = getattr(model, "net", model)
        return net.eval()
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a pc3d checkpoint or a state_dict")
    state = {k_.removeprefix("module."): v for k_, v in state.items()}
    if "fc3.weight" in state:
        k = int(state["fc3.weight"].shape[0])
    ft = any(key.startswith("feat.fstn.") for key in state)
    net = PointNetClassifier(k=k, feature_transform=ft)
    net.load_state_dict(state, strict=True)
    return net.eval()


def fpd_scorer(classifier_ckpt: str | os.PathLike, stats: Any, **kwargs: Any) -> Any:
    """A :class:`pc3d.metrics.fpd.FPDScorer` whose classifier is read from ``classifier_ckpt``
    with :func:`load_classifier`; ``stats`` and ``kwargs`` go to ``FPDScorer`` (``n_points``,
    ``normalize``, ``global_stats``, ``batch_size``, ``device``, ``seed``, ``check_n_points``).

    This is what ``model.fpd={classifier_ckpt: ..., stats: ...}`` of
    :class:`pc3d.models.TreeGAN` builds. Raises ``FileNotFoundError`` naming ``classifier_ckpt``
    when the file is missing.
    """
    from pc3d.metrics.fpd import FPDScorer

    path = Path(classifier_ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"FPDScorer: classifier_ckpt not found: {path}")
    return FPDScorer(load_classifier(path), stats, classifier_ckpt=path, **kwargs)
