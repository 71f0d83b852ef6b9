"""Pretrained weights shipped inside the package: ``pc3d.pretrained.load(name)`` and ``ckpt_path=pretrained:<name>``.

Each model is two files in ``pc3d/pretrained/weights/``:

* ``<name>.safetensors``: the weights (floating tensors stored as float16, read back as float32),
  with the model's build data (``pc3d_build``, the same registered names and plain arguments a
  ``pc3d-train`` checkpoint holds, :mod:`pc3d.models.registry`) as JSON in the safetensors metadata.
  safetensors files hold tensors and strings only: loading one runs no code and unpickles nothing.
* ``<name>.json``: its model card: what it is, the data, the config and the command that trained
  it, the metrics of *these* (float16-stored) weights on the built-in test split, and the sha256 of
  the ``.safetensors`` file.

Every pc3d reader of checkpoints (:func:`pc3d.models.io.torch_load` and so ``load_model``,
``pc3d-eval``, ``pc3d-generate``, ``pc3d-reconstruct``, ``model.ae_ckpt_path`` ...) accepts
``pretrained:<name>`` and a path to any ``.safetensors`` file written by :func:`save_pretrained`.

Example::

    >>> import pc3d.pretrained
    >>> pc3d.pretrained.names()          # doctest: +SKIP
    ['autoencoder', 'image2cloud', 'lgan']
    >>> ae = pc3d.pretrained.load("autoencoder")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["PREFIX", "WEIGHTS_DIR", "card", "is_pretrained", "load", "names", "path", "read_safetensors",
           "resolve", "save_pretrained", "sha256"]

#: The prefix of a checkpoint argument naming shipped weights: ``ckpt_path=pretrained:autoencoder``.
PREFIX = "pretrained:"
#: Where the shipped files live (package data).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: safetensors metadata keys (values are strings).
FORMAT = "pc3d-pretrained"
_META_FORMAT, _META_BUILD, _META_NAME, _META_DTYPE = "format", "pc3d_build", "name", "stored_dtype"


def names() -> list[str]:
    """The shipped models' names (sorted)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def is_pretrained(spec: str | os.PathLike | None) -> bool:
    """Whether ``spec`` is a ``pretrained:<name>`` reference."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def path(name: str) -> Path:
    """The ``.safetensors`` file of the shipped model ``name``; ``ValueError`` listing the names when unknown."""
    name = name[len(PREFIX):] if is_pretrained(name) else name
    p = WEIGHTS_DIR / f"{name}.safetensors"
    if not name or "/" in name or not p.is_file():
        raise ValueError(f"pretrained:{name}: no such shipped model (known: {', '.join(names()) or 'none'}; "
                         f"files in {WEIGHTS_DIR})")
    return p


def resolve(spec: str | os.PathLike) -> Path:
    """``pretrained:<name>`` -> the shipped file; anything else -> ``Path(spec)``."""
    return path(str(spec)) if is_pretrained(str(spec)) else Path(spec)


def card(name: str) -> dict[str, Any]:
    """The model card of the shipped model ``name`` (``<name>.json``)."""
    p = path(name).with_suffix(".json")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read the model card ({type(e).__name__}: {e})") from None


def load(name: str, map_location: str | torch.device = "cpu"):
    """Build the shipped model ``name`` (a LightningModule in eval mode, float32) from its weights."""
    from pc3d.models.io import load_model

    return load_model(path(name), map_location=map_location)


def sha256(file: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_safetensors(file: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A ``.safetensors`` file written by :func:`save_pretrained` as a checkpoint-shaped dict:
    ``{"state_dict": {...float32...}, "pc3d_build": {...}, "pc3d_pretrained": {metadata}}``.

    Raises ``ValueError`` naming the file for anything that is not such a file (no pc3d metadata,
    unreadable JSON, a corrupt header)."""
    from safetensors import safe_open

    file = Path(file)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{file}: not a readable safetensors file ({type(e).__name__}: {str(e)[:200]})") from None
    if meta.get(_META_FORMAT) != FORMAT or _META_BUILD not in meta:
        raise ValueError(f"{file}: metadata: expected format={FORMAT!r} with {_META_BUILD!r} (a file written by "
                         f"pc3d.pretrained.save_pretrained), got keys {sorted(meta)}")
    try:
        build = json.loads(meta[_META_BUILD])
    except ValueError as e:
        raise ValueError(f"{file}: metadata {_META_BUILD!r}: not JSON ({e})") from None
    state = {k: (v.float() if v.is_floating_point() else v).to(map_location) for k, v in state.items()}
    return {"state_dict": state, "pc3d_build": build, "pc3d_pretrained": meta}


def save_pretrained(state_dict: Mapping[str, torch.Tensor], build: Mapping[str, Any], out: str | os.PathLike,
                    *, name: str, card: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float16
                    ) -> dict[str, Any]:
    """Write ``out`` (``<name>.safetensors``) and its model card ``out.with_suffix(".json")``, each atomically.

    Floating tensors are stored as ``dtype`` (float16 halves the file; they are read back as
    float32). ``build`` is the checkpoint's ``pc3d_build``. The card gets ``name``, ``file``,
    ``bytes``, ``sha256`` and ``stored_dtype`` added to ``card``. Returns the card.
    """
    from safetensors.torch import save_file

    from pc3d.io import atomic_write, atomic_write_json

    out = Path(out)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in state_dict.items()}
    meta = {_META_FORMAT: FORMAT, _META_BUILD: json.dumps(build, sort_keys=True), _META_NAME: name,
            _META_DTYPE: str(dtype).removeprefix("torch.")}
    atomic_write(out, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    out.chmod(0o644)  # package data, readable by everyone (the temp file was private)
    full = {"name": name, **dict(card or {}), "file": out.name, "bytes": out.stat().st_size,
            "sha256": sha256(out), "stored_dtype": meta[_META_DTYPE]}
    atomic_write_json(out.with_suffix(".json"), full)
    return full
