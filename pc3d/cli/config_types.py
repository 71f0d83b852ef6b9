"""Type checks of a composed run config against the signatures of the classes it builds.

Hydra passes ``trainer.max_epochs=abc`` on as the string ``"abc"``; Lightning then fails with a bare
``AssertionError`` or, under ``debug=fdr`` (``fast_dev_run`` overrides the epoch count), ignores it
silently. :func:`check_config_types` looks at every plain value under a node with a ``_target_``
(the trainer, the model and its networks, the data module) and compares it with the annotation of
the matching ``__init__`` argument. Only simple annotations are enforced: ``int``, ``float``,
``bool``, ``str``, ``None`` and unions of them (``int | None``, ``Optional[Union[int, float]]``);
an argument whose annotation names anything else (a class, a sequence, a callable) is left to the
class itself. ``int`` is accepted where ``float`` is; ``bool`` only where ``bool`` is named.

Raises ``ValueError`` naming every bad key, its value and what was expected::

    trainer.max_epochs='abc': expected int or null (Trainer.__init__ argument max_epochs)
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["check_config_types", "simple_types"]

_SIMPLE = {int: "int", float: "float", bool: "bool", str: "str", type(None): "null"}


def simple_types(annotation: Any) -> tuple[type, ...] | None:
    """The simple types an annotation allows, or ``None`` when it names anything else."""
    if annotation in _SIMPLE:
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(annotation):
            sub = simple_types(arg)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    return None


def _accepts(allowed: tuple[type, ...], value: Any) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return any(isinstance(value, t) for t in allowed)


def _target_hints(target: str) -> tuple[str, dict[str, Any]] | None:
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None  # Hydra's instantiate gives its own error for a bad target
    init = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable forward references: nothing to enforce
        return None
    name = obj.__name__ + (".__init__" if inspect.isclass(obj) else "")
    return name, hints


def check_config_types(cfg: DictConfig, keys: tuple[str, ...] = ("trainer", "model", "data")) -> None:
    """Check the plain values under ``cfg.<key>`` (recursively, every node with a ``_target_``).

    Raises ``ValueError`` listing every value whose type the target's annotation rules out.
    """
    errors: list[str] = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, ListConfig):
            for i, item in enumerate(node):
                visit(item, f"{path}[{i}]")
            return
        if not isinstance(node, DictConfig):
            return
        target = node.get("_target_") if "_target_" in node else None
        found = _target_hints(str(target)) if isinstance(target, str) else None
        for key in node.keys():
            key = str(key)
            if OmegaConf.is_missing(node, key):
                continue
            try:
                value = node[key]
            except Exception:  # an interpolation that fails resolves (and errors) at instantiate time
                continue
            if isinstance(value, (DictConfig, ListConfig)):
                visit(value, f"{path}.{key}")
                continue
            if found is None or key.startswith("_"):
                continue
            name, hints = found
            allowed = simple_types(hints[key]) if key in hints else None
            if allowed is not None and not _accepts(allowed, value):
                expected = " or ".join(_SIMPLE[t] for t in dict.fromkeys(allowed))
                errors.append(f"{path}.{key}={value!r}: expected {expected} ({name} argument {key})")

    for key in keys:
        if key in cfg and cfg[key] is not None:
            visit(cfg[key], key)
    if errors:
        raise ValueError("config values of the wrong type:\n  " + "\n  ".join(errors))
