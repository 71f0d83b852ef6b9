"""The classes a pc3d checkpoint may name, keyed by name and version (issue 14).

A checkpoint names no code. What to build is stored as *data* under ``ckpt["pc3d_build"]``::

    {"format": "pc3d-checkpoint", "version": 1,
     "model": {"name": "autoencoder", "version": 1,
               "args": {"latent_dim": 128,
                        "encoder": {"name": "pointnet_encoder", "version": 1, "args": {...}},
                        "optimizer": {"name": "adam", "version": 1, "args": {"lr": 0.0005}}, ...}},
     "data": {"name": "point_cloud_datamodule", "version": 1, "args": {...}} or None}

A *spec* is a dict with exactly the keys ``name``, ``version`` and ``args``; everything else is a plain
value (str / int / float / bool / None, lists and str-keyed dicts of those). :func:`build` makes
only the classes of :data:`REGISTRY` (pc3d's own systems, networks and data modules, and the torch
optimizers / schedulers as partials ``params -> Optimizer``), with arguments checked against the
class signature. Any Hydra call key (``_target_``, ``_partial_``, ``_args_``, ``_call_``, ... every
``_name_`` key) anywhere in build data is refused, naming the key path.

:func:`config_to_spec` converts a composed Hydra config (plain containers) into a spec at save
time, mapping every ``_target_`` to its registry name; an unregistered target raises
:class:`NotRegisteredError` (the checkpoint then keeps only the YAML record of the run).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILD_KEY",
    "FORMAT",
    "FORMAT_VERSION",
    "RECORD_KEY",
    "REGISTRY",
    "BuildDataError",
    "Entry",
    "NotRegisteredError",
    "args_view",
    "build",
    "check_build",
    "check_data",
    "check_spec",
    "config_to_build",
    "config_to_spec",
    "is_spec",
    "known_names",
    "register",
    "scan_forbidden",
]

FORMAT = "pc3d-checkpoint"
FORMAT_VERSION = 1
BUILD_KEY = "pc3d_build"  # ckpt[BUILD_KEY]: the build data (this module's format)
RECORD_KEY = "pc3d_config_record"  # ckpt[RECORD_KEY]: the run's Hydra config as YAML text, a record only
SPEC_KEYS = frozenset({"name", "version", "args"})
_CALL_KEY = re.compile(r"^_.+_$")  # _target_, _partial_, _args_, _call_, _convert_, _recursive_, ...
_PLAIN = (str, int, float, bool, type(None))


class BuildDataError(ValueError):
    """Build data that pc3d refuses to build (a call key, an unknown name or version, a bad argument)."""


class NotRegisteredError(BuildDataError):
    """A ``_target_`` that is not a registered pc3d class (raised when converting a config)."""


@dataclass(frozen=True)
class Entry:
    """A buildable class: ``path`` is its public dotted path (a constant of this module, never read
    from a checkpoint); ``kind`` is ``"module"`` (called) or ``"partial"`` (``functools.partial``,
    e.g. an optimizer factory); ``load_overrides`` are argument values forced when building (e.g.
    no report files written by a data module rebuilt from a checkpoint)."""

    name: str
    version: int
    path: str
    kind: str = "module"
    load_overrides: Mapping[str, Any] = field(default_factory=dict)
    cls_: Any = None  # set by register() for classes given directly

    def cls(self) -> Any:
        if self.cls_ is not None:
            return self.cls_
        module, _, attr = self.path.rpartition(".")
        return getattr(importlib.import_module(module), attr)


_DATA_OVERRIDES = {"bad_files_report": None}

REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in [
        # systems (LightningModules)
        Entry("autoencoder", 1, "pc3d.models.Autoencoder"),
        Entry("treegan", 1, "pc3d.models.TreeGAN"),
        Entry("lgan", 1, "pc3d.models.LatentGAN"),
        Entry("image2cloud", 1, "pc3d.models.Image2Cloud"),
        Entry("classifier", 1, "pc3d.models.PointCloudClassifier"),
        # networks
        Entry("pointnet_encoder", 1, "pc3d.nn.PointNetEncoder"),
        Entry("fc_decoder", 1, "pc3d.nn.FCDecoder"),
        Entry("tree_generator", 1, "pc3d.nn.TreeGenerator"),
        Entry("point_critic", 1, "pc3d.nn.PointCritic"),
        Entry("resnet_image_encoder", 1, "pc3d.nn.ResNetImageEncoder"),
        Entry("latent_generator", 1, "pc3d.nn.LatentGenerator"),
        Entry("latent_critic", 1, "pc3d.nn.LatentCritic"),
        Entry("pointnet_classifier", 1, "pc3d.nn.PointNetClassifier"),
        # data modules (pc3d-eval rebuilds the run's data)
        Entry("point_cloud_datamodule", 1, "pc3d.data.PointCloudDataModule", load_overrides=_DATA_OVERRIDES),
        Entry("image_cloud_datamodule", 1, "pc3d.data.renderings.ImageCloudDataModule",
              load_overrides=_DATA_OVERRIDES),
        Entry("mesh_datamodule", 1, "pc3d.data.renderings.mesh_datamodule", load_overrides=_DATA_OVERRIDES),
        # optimizer / scheduler factories (Hydra `_partial_: true` in conf/model/*.yaml)
        Entry("adam", 1, "torch.optim.Adam", kind="partial"),
        Entry("adamw", 1, "torch.optim.AdamW", kind="partial"),
        Entry("sgd", 1, "torch.optim.SGD", kind="partial"),
        Entry("rmsprop", 1, "torch.optim.RMSprop", kind="partial"),
        Entry("step_lr", 1, "torch.optim.lr_scheduler.StepLR", kind="partial"),
        Entry("multi_step_lr", 1, "torch.optim.lr_scheduler.MultiStepLR", kind="partial"),
        Entry("exponential_lr", 1, "torch.optim.lr_scheduler.ExponentialLR", kind="partial"),
        Entry("cosine_annealing_lr", 1, "torch.optim.lr_scheduler.CosineAnnealingLR", kind="partial"),
    ]
}


def register(name: str, version: int, cls: type, kind: str = "module") -> None:
    """Register ``cls`` (trusted code: already imported by the caller) under ``name``/``version``,
    e.g. a test's stand-in model. Names are unique."""
    if name in REGISTRY and REGISTRY[name].cls() is not cls:
        raise ValueError(f"registry name {name!r} is taken by {REGISTRY[name].path}")
    REGISTRY[name] = Entry(name, int(version), f"{cls.__module__}.{cls.__qualname__}", kind, {}, cls)


def known_names() -> str:
    return ", ".join(f"{e.name} (v{e.version})" for e in REGISTRY.values())


def _entry_for_target(target: Any) -> Entry | None:
    """The entry whose public path, or whose class's defining module path, is ``target``."""
    if not isinstance(target, str):
        return None
    for e in REGISTRY.values():
        if e.path == target:
            return e
    for e in REGISTRY.values():  # e.g. pc3d.models.autoencoder.Autoencoder
        cls = e.cls()
        if f"{cls.__module__}.{cls.__qualname__}" == target:
            return e
    return None


def _join(key: str, sub: Any) -> str:
    return f"{key}.{sub}" if key else str(sub)


# ----------------------------------------------------------------------------- save time
def config_to_spec(cfg: Any, key: str = "") -> Any:
    """A Hydra config (plain containers) as build data: every ``{_target_: ..., ...}`` mapping becomes
    a spec of its registry name; ``_partial_: true`` is accepted for partial entries only;
    ``_convert_`` / ``_recursive_`` are dropped. Raises :class:`NotRegisteredError` naming ``key``
    for an unregistered target and :class:`BuildDataError` for other call keys or non-plain values."""
    if isinstance(cfg, Mapping):
        if "_target_" in cfg:
            target = cfg["_target_"]
            entry = _entry_for_target(target)
            if entry is None:
                raise NotRegisteredError(f"{_join(key, '_target_')}={target!r} is not a registered pc3d class "
                                         f"(known: {known_names()})")
            partial = cfg.get("_partial_", False)
            if bool(partial) != (entry.kind == "partial"):
                raise BuildDataError(f"{_join(key, '_partial_')}={partial!r} does not fit {entry.name} "
                                     f"(a {entry.kind})")
            args = {}
            for k, v in cfg.items():
                if k in ("_target_", "_partial_", "_convert_", "_recursive_"):
                    continue
                if not isinstance(k, str) or _CALL_KEY.match(k):
                    raise BuildDataError(f"{_join(key, k)}: call key not supported in a checkpoint")
                args[k] = config_to_spec(v, _join(key, k))
            return {"name": entry.name, "version": entry.version, "args": args}
        out = {}
        for k, v in cfg.items():
            if not isinstance(k, str) or _CALL_KEY.match(k):
                raise BuildDataError(f"{_join(key, k)}: call key (or non-string key) not supported in a checkpoint")
            out[k] = config_to_spec(v, _join(key, k))
        return out
    if isinstance(cfg, list | tuple):
        return [config_to_spec(v, _join(key, i)) for i, v in enumerate(cfg)]
    if isinstance(cfg, _PLAIN):
        return cfg
    raise BuildDataError(f"{key}: a {type(cfg).__name__} is not plain data")


def config_to_build(config: Mapping[str, Any], sections: tuple[str, ...] = ("model", "data")) -> dict[str, Any]:
    """The ``ckpt["pc3d_build"]`` entry of a composed run config: its ``model`` and ``data``
    converted with :func:`config_to_spec` (``data`` ``None`` when absent)."""
    out: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
    for s in sections:
        sub = config.get(s)
        out[s] = None if not sub else config_to_spec(sub, s)
    if not is_spec(out.get("model")):
        raise BuildDataError("model: no registered model (_target_) in the config")
    return out


# ----------------------------------------------------------------------------- load time
def is_spec(obj: Any) -> bool:
    return isinstance(obj, Mapping) and set(obj) == SPEC_KEYS and isinstance(obj.get("name"), str)


def scan_forbidden(obj: Any, key: str = "", source: str = "") -> None:
    """Refuse any call key (``_target_``, ``_partial_``, ``_args_``, ``_call_``, any ``_x_``),
    non-string key or non-plain value anywhere in ``obj``, naming ``source`` and the key path."""
    pre = f"{source}: " if source else ""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise BuildDataError(f"{pre}{_join(key, repr(k))}: non-string key in build data; refusing to load")
            if _CALL_KEY.match(k):
                raise BuildDataError(f"{pre}{_join(key, k)}: a call key in the checkpoint's build data; a pc3d "
                                     f"checkpoint names registered classes by name only; refusing to load")
            scan_forbidden(v, _join(key, k), source)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            scan_forbidden(v, _join(key, i), source)
    elif not isinstance(obj, _PLAIN):
        raise BuildDataError(f"{pre}{key}: a {type(obj).__name__} is not plain data; refusing to load")


def _entry(spec: Mapping[str, Any], key: str, pre: str) -> Entry:
    name, version = spec.get("name"), spec.get("version")
    entry = REGISTRY.get(name)
    if entry is None:
        raise BuildDataError(f"{pre}{_join(key, 'name')}={name!r} is not a registered pc3d class (known: "
                             f"{known_names()})")
    if isinstance(version, bool) or not isinstance(version, int) or version != entry.version:
        raise BuildDataError(f"{pre}{_join(key, 'version')}={version!r}: {name} is at version {entry.version} "
                             f"(known: {known_names()}); re-save the checkpoint with a matching pc3d")
    if not isinstance(spec.get("args"), Mapping):
        raise BuildDataError(f"{pre}{_join(key, 'args')}: expected a mapping of arguments")
    return entry


def _signature(entry: Entry) -> inspect.Signature:
    sig = inspect.signature(entry.cls())
    if entry.kind == "partial":  # the first parameter (params / optimizer) comes at call time
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def check_spec(spec: Any, key: str, source: str = "") -> None:
    """Validate a spec (recursively) without building anything: known names and versions, argument
    names in the class signature, plain values."""
    pre = f"{source}: " if source else ""
    if not is_spec(spec):
        raise BuildDataError(f"{pre}{key}: expected {{'name', 'version', 'args'}}, got "
                             f"{sorted(spec) if isinstance(spec, Mapping) else type(spec).__name__}")
    entry = _entry(spec, key, pre)
    params = _signature(entry).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for k, v in spec["args"].items():
        if not var_kw and (k not in params or params[k].kind in (inspect.Parameter.VAR_POSITIONAL,
                                                                 inspect.Parameter.POSITIONAL_ONLY)):
            raise BuildDataError(f"{pre}{_join(key, 'args.' + k)}: {entry.name} ({entry.path}) takes no argument "
                                 f"{k!r}")
        _check_value(v, _join(key, f"args.{k}"), source)


def _check_value(v: Any, key: str, source: str) -> None:
    if is_spec(v):
        check_spec(v, key, source)
    elif isinstance(v, Mapping):
        for k, x in v.items():
            _check_value(x, _join(key, k), source)
    elif isinstance(v, list | tuple):
        for i, x in enumerate(v):
            _check_value(x, _join(key, i), source)


def check_build(data: Any, source: str = "") -> dict[str, Any]:
    """Validate a ``ckpt["pc3d_build"]`` entry (format, version, call keys, names, versions,
    argument names); returns it. Raises :class:`BuildDataError` naming ``source`` and the key."""
    pre = f"{source}: " if source else ""
    scan_forbidden(data, BUILD_KEY, source)
    if not isinstance(data, Mapping):
        raise BuildDataError(f"{pre}{BUILD_KEY}: expected a mapping, got a {type(data).__name__}")
    extra = sorted(set(data) - {"format", "version", "model", "data"})
    if extra:
        raise BuildDataError(f"{pre}{BUILD_KEY}.{extra[0]}: unexpected key (a pc3d checkpoint builds only "
                             f"'model' and 'data'); refusing to load")
    if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
        raise BuildDataError(f"{pre}{BUILD_KEY}: format {data.get('format')!r} version {data.get('version')!r}; "
                             f"this pc3d reads {FORMAT!r} version {FORMAT_VERSION}")
    check_spec(data.get("model"), f"{BUILD_KEY}.model", source)
    check_data(data.get("data"), f"{BUILD_KEY}.data", source)
    return dict(data)


def check_data(data: Any, key: str, source: str = "") -> None:
    """``data`` of build data: ``None``, a spec, or plain arguments without a name (a partial data
    config: readable, buildable only with a data module named by the user)."""
    if data is None or (isinstance(data, Mapping) and "name" not in data and "args" not in data):
        return
    check_spec(data, key, source)


def build(spec: Any, key: str = "model", source: str = "") -> Any:
    """Build a spec: registered classes only, plain arguments checked against the signature;
    nested specs are built first. Partial entries give ``functools.partial(cls, **args)``."""
    scan_forbidden(spec, key, source)
    check_spec(spec, key, source)
    return _build(spec, key, source)


def _build(spec: Mapping[str, Any], key: str, source: str) -> Any:
    pre = f"{source}: " if source else ""
    entry = REGISTRY[spec["name"]]
    kwargs = {k: _value(v, _join(key, f"args.{k}"), source) for k, v in spec["args"].items()}
    kwargs.update(entry.load_overrides)
    cls = entry.cls()
    try:
        _signature(entry).bind_partial(**kwargs) if entry.kind == "partial" else _signature(entry).bind(**kwargs)
    except TypeError as e:
        raise BuildDataError(f"{pre}{key}: arguments do not fit {entry.name} ({entry.path}): {e}") from e
    if entry.kind == "partial":
        return functools.partial(cls, **kwargs)
    return cls(**kwargs)


def _value(v: Any, key: str, source: str) -> Any:
    if is_spec(v):
        return _build(v, key, source)
    if isinstance(v, Mapping):
        return {k: _value(x, _join(key, k), source) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_value(x, _join(key, i), source) for i, x in enumerate(v)]
    return v


def args_view(spec: Any) -> Any:
    """The plain arguments of build data, specs replaced by their ``args`` (recursively), e.g. to read
    ``model.generator.ancestor_scale`` of a checkpoint; ``None`` stays ``None``."""
    if is_spec(spec):
        return {k: args_view(v) for k, v in spec["args"].items()}
    if isinstance(spec, Mapping):
        return {k: args_view(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [args_view(v) for v in spec]
    return spec
