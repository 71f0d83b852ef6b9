"""Every checkpoint read of pc3d, in one place, safely: a checkpoint never runs code (issue 14).

Files are read with ``torch.load(weights_only=True)`` (a raw pickle is refused with an error
naming the file), and models are rebuilt only from the *build data* ``ckpt["pc3d_build"]``: the
registered names, versions and plain arguments of :mod:`pc3d.models.registry`, never a Hydra
``_target_``. The run's Hydra config travels beside it as YAML text (``ckpt["pc3d_config_record"]``),
a record that is never instantiated. Old checkpoints (``ckpt["pc3d_config"]`` only) are converted
when every ``_target_`` in their ``model`` and ``data`` is a registered pc3d class with plain
arguments, and refused otherwise.

* :func:`load_model`: a ``pc3d-train`` model checkpoint -> the LightningModule;
* :func:`read_build`: the validated build data of a checkpoint (``None`` when absent);
* :func:`read_checkpoint_config`: its plain arguments (``{"model": ..., "data": ...}``, names dropped);
* :func:`build_datamodule`: the data module of a checkpoint's run, with overrides;
* :func:`load_frozen_autoencoder`: the same for an autoencoder, frozen (Image2Cloud, l-GAN);
* :func:`load_classifier`: the FPD feature network (a ``pc3d-train`` classifier checkpoint or a
  plain ``PointNetCls`` state_dict);
* :func:`fpd_scorer`: a :class:`pc3d.metrics.fpd.FPDScorer` built from files (the metric
  itself takes the network, so that pc3d.metrics never imports pc3d.models).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from pc3d.models.registry import (
    BUILD_KEY,
    BuildDataError,
    args_view,
    build,
    check_build,
    check_data,
    config_to_spec,
    is_spec,
    known_names,
)

__all__ = [
    "CheckpointError",
    "build_datamodule",
    "config_view",
    "fpd_scorer",
    "load_classifier",
    "load_frozen_autoencoder",
    "load_model",
    "read_build",
    "read_checkpoint_config",
    "torch_load",
]

LEGACY_KEY = "pc3d_config"


class CheckpointError(ValueError):
    """A file pc3d refuses to load as a checkpoint (the message names the file and the key)."""


def torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a missing file raises ``FileNotFoundError``, a pickle
    that needs arbitrary objects (or code) or an unreadable file a :class:`CheckpointError` naming it.
    ``pretrained:<name>`` and ``.safetensors`` files (:mod:`pc3d.pretrained`) are read as checkpoint-shaped
    dicts (``state_dict`` in float32 + ``pc3d_build``)."""
    from pc3d import pretrained

    path = pretrained.resolve(path)  # pretrained:<name> -> the shipped .safetensors file
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":  # tensors + string metadata: no pickle at all
        try:
            return pretrained.read_safetensors(path, map_location=map_location)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a pc3d checkpoint or an untrusted pickle; refusing to load "
                              f"(torch.load(weights_only=True): {first[:200]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: "
                              f"{str(e).strip()[:200]})") from None


def _build_data(ckpt: Any, path: Path) -> dict[str, Any] | None:
    """The validated build data of a loaded checkpoint: ``ckpt["pc3d_build"]``, or an old
    ``ckpt["pc3d_config"]`` converted (registered targets only); ``None`` when it has neither."""
    if not isinstance(ckpt, Mapping):
        return None
    if BUILD_KEY in ckpt:
        try:
            return check_build(ckpt[BUILD_KEY], source=str(path))
        except BuildDataError as e:
            raise CheckpointError(str(e)) from None
    if LEGACY_KEY not in ckpt:
        return None
    cfg = ckpt[LEGACY_KEY]
    try:
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("model"), Mapping):
            raise BuildDataError(f"{LEGACY_KEY}: no 'model' entry")
        out = {"format": "pc3d-checkpoint", "version": 1,
               "model": config_to_spec(cfg["model"], "model"),
               "data": config_to_spec(cfg["data"], "data") if cfg.get("data") else None}
        check_data(out["model"], "model")  # a spec, or plain arguments only (readable, not buildable)
        check_data(out["data"], "data")
        return out
    except BuildDataError as e:
        raise CheckpointError(
            f"{path}: an old-format checkpoint ({LEGACY_KEY!r}, no {BUILD_KEY!r}) that cannot be converted: {e}. "
            f"Only registered pc3d classes with plain arguments are rebuilt; refusing to load. If you trust "
            f"the file, re-save it with this pc3d (pc3d-train writes {BUILD_KEY!r})") from None


def read_build(ckpt_path: str | os.PathLike) -> dict[str, Any] | None:
    """The validated build data of the checkpoint ``ckpt_path`` (``{"format", "version", "model",
    "data"}``; ``None`` for a file without any, e.g. a bare state_dict). Raises
    :class:`CheckpointError` for refused content."""
    path = Path(ckpt_path)
    return _build_data(torch_load(path), path)


def config_view(ckpt: Any, path: str | os.PathLike) -> dict[str, Any] | None:
    """The plain arguments of a loaded checkpoint's build data (``{"model": ..., "data": ...}``,
    nested networks as their argument dicts), ``None`` when it has none."""
    data = _build_data(ckpt, Path(path))
    return None if data is None else {"model": args_view(data["model"]), "data": args_view(data.get("data"))}


def read_checkpoint_config(ckpt_path: str | os.PathLike) -> dict | None:
    """The plain arguments stored in a checkpoint, ``{"model": {...}, "data": {...} or None}`` (names
    dropped; see :func:`config_view`), ``None`` when absent. Nothing is built."""
    return config_view(torch_load(ckpt_path), ckpt_path)


def _model_from(ckpt: Any, path: Path) -> L.LightningModule:
    data = _build_data(ckpt, path)
    if data is None:
        raise CheckpointError(f"{path}: no {BUILD_KEY!r} build data; was it written by pc3d-train? (a checkpoint "
                              f"whose config named unregistered classes keeps only a record and cannot be rebuilt)")
    if not is_spec(data["model"]):
        raise CheckpointError(f"{path}: model: no registered model class named (known: {known_names()})")
    try:
        model = build(data["model"], key="model", source=str(path))
    except BuildDataError as e:
        raise CheckpointError(str(e)) from None
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: no 'state_dict' of weights")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_model(ckpt_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """Load a model checkpoint written by ``pc3d-train``; the checkpoint runs no code.

    The file is read with ``torch.load(weights_only=True)``; the model is built from its build
    data (registered classes of :mod:`pc3d.models.registry`, plain arguments) and the weights
    loaded strictly. The model is returned in eval mode. Raises ``FileNotFoundError`` for a
    missing file and :class:`CheckpointError` (a ``ValueError``) naming the file and the key for
    anything refused.
    """
    path = Path(ckpt_path)
    return _model_from(torch_load(path, map_location=map_location), path)


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping) and not is_spec(over):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def build_datamodule(spec: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None,
                     source: str = "") -> Any:
    """The data module of a checkpoint's build data ``spec`` (``read_build(path)["data"]``), with the
    user's ``overrides`` (``data.*`` keys of ``pc3d-eval``; a ``_target_`` there must be a registered
    data module) merged over its arguments. Built by :func:`pc3d.models.registry.build`."""
    overrides = dict(overrides or {})
    name = version = None
    if "_target_" in overrides:
        try:
            user = config_to_spec(overrides, "data")
        except BuildDataError as e:
            raise ValueError(f"data: {e}") from None
        name, version, overrides = user["name"], user["version"], user["args"]
    else:
        try:
            overrides = config_to_spec(overrides, "data")
        except BuildDataError as e:
            raise ValueError(f"data: {e}") from None
    base = spec if spec is not None and not is_spec(spec) else None  # plain arguments, no name
    if base is not None:
        spec = None
    if spec is None and name is None:
        raise ValueError("no data config: the checkpoint has none; pass data._target_ and friends (see conf/data/)")
    args = _deep_merge(dict(spec["args"]) if spec is not None else dict(base or {}), overrides)
    merged = {"name": name or spec["name"], "version": version or spec["version"], "args": args}
    try:
        return build(merged, key="data", source=source)
    except BuildDataError as e:
        raise CheckpointError(str(e)) from None


def load_frozen_autoencoder(ckpt_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a ``pc3d-train`` autoencoder checkpoint (``weights_only=True``), frozen.

    The model is put in eval mode (its BatchNorm uses the running statistics) and every
    parameter gets ``requires_grad=False``. Raises ``FileNotFoundError`` / ``ValueError`` for a
    missing file or a model without ``encode`` and ``decoder``.
    """
    from pc3d import pretrained

    path = pretrained.resolve(ckpt_path)  # pretrained:autoencoder: the shipped autoencoder
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
    are read with ``torch.load(weights_only=True)``; a checkpoint's build data is checked as by
    :func:`load_model`.
    """
    from pc3d.nn.pointnet_cls import PointNetClassifier

    path = Path(path)
    obj = torch_load(path, map_location=map_location)
    if isinstance(obj, dict) and (BUILD_KEY in obj or LEGACY_KEY in obj):
        model = _model_from(obj, path)
        net = getattr(model, "net", model)
        if not isinstance(net, PointNetClassifier):
            raise ValueError(
                f"{path}: not a point-cloud classifier checkpoint (it holds a {type(model).__name__}); "
                "FPD needs a PointNet classifier: train one with pc3d-train experiment=fpd_classifier_synthetic "
                "or pass a PointNetCls state_dict"
            )
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
    from pc3d import pretrained
    from pc3d.metrics.fpd import FPDScorer

    path = pretrained.resolve(classifier_ckpt)  # pretrained:<name>: shipped weights
    if not path.is_file():
        raise FileNotFoundError(f"FPDScorer: classifier_ckpt not found: {path}")
    return FPDScorer(load_classifier(path), stats, classifier_ckpt=path, **kwargs)
